//! The ring protocol over a heap buffer, for the loom model (`tests/loom.rs`).
//! Compiled under `cfg(loom)` (and for this crate's unit tests): the control words and every record length word are
//! loom atomics, the payload bytes a plain heap buffer, and the claim / commit / drain /
//! unblock code is the production code in `ring.rs`.

use std::cell::UnsafeCell;

use crate::ring::{self, BLOCK_HDR, ConsumerCore, Ctr, HDR, Message, PartClaim, RingMem, msg_bytes};
use crate::sync::{AtomicI32, AtomicU64, Ordering};

/// A ring on the heap.
pub struct HeapRing {
    cap: u64,
    tail: AtomicU64,
    head: AtomicU64,
    ctrs: Vec<AtomicU64>,
    lens: Vec<AtomicI32>,
    data: Box<[UnsafeCell<u8>]>,
}

// SAFETY: the bytes are handed out by the ring protocol to one party at a time.
unsafe impl Sync for HeapRing {}
// SAFETY: as above.
unsafe impl Send for HeapRing {}

// SAFETY: `data` holds `cap` bytes, `lens` one word per 8 bytes; cap is a power of two ≥ 64.
unsafe impl RingMem for HeapRing {
    fn cap(&self) -> u64 {
        self.cap
    }
    fn tail(&self) -> &AtomicU64 {
        &self.tail
    }
    fn head(&self) -> &AtomicU64 {
        &self.head
    }
    fn ctr(&self, c: Ctr) -> &AtomicU64 {
        &self.ctrs[c as usize]
    }
    fn len_word(&self, idx: u64) -> &AtomicI32 {
        &self.lens[(idx / 8) as usize]
    }
    fn data(&self) -> *mut u8 {
        UnsafeCell::raw_get(self.data.as_ptr())
    }
    fn zero(&self, idx: u64, len: u64) {
        for i in (idx..idx + len).step_by(8) {
            self.lens[(i / 8) as usize].store(0, Ordering::Relaxed);
        }
        // SAFETY: in bounds; the consumer owns the bytes it releases.
        unsafe { std::ptr::write_bytes(self.data().add(idx as usize), 0, len as usize) };
    }
}

impl HeapRing {
    /// A ring of `cap` bytes (power of two ≥ 64).
    pub fn new(cap: u64) -> HeapRing {
        assert!(cap.is_power_of_two() && cap >= 64);
        HeapRing {
            cap,
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            ctrs: (0..7).map(|_| AtomicU64::new(0)).collect(),
            lens: (0..cap / 8).map(|_| AtomicI32::new(0)).collect(),
            data: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
        }
    }

    /// Publish one block of messages; `Err` carries the refusal reason.
    pub fn publish(&self, msgs: &[(u32, u32, &[u8])]) -> Result<(), String> {
        let len = HDR + BLOCK_HDR + msgs.iter().map(|m| msg_bytes(m.2.len() as u64)).sum::<u64>();
        let c = ring::claim(self, len).map_err(|e| format!("{e:?}"))?;
        ring::fill_and_commit(self, &c, msgs.len() as u32, 0, |out| ring::pack_messages(out, msgs.iter().copied()))
            .map_err(|e| format!("{e:?}"))
    }

    /// A ring whose head and tail start at `pos` (8-aligned), as if `pos` bytes had
    /// already been published and consumed. Create consumers after this.
    pub fn at(cap: u64, pos: u64) -> HeapRing {
        let r = HeapRing::new(cap);
        r.tail.store(pos, Ordering::Relaxed);
        r.head.store(pos, Ordering::Relaxed);
        r
    }

    fn claim_part(&self, msgs: &[(u32, u32, &[u8])]) -> Result<PartClaim, String> {
        let size = |i: usize| msg_bytes(msgs[i].2.len() as u64);
        let len = HDR + BLOCK_HDR + (0..msgs.len()).map(size).sum::<u64>();
        let largest = (0..msgs.len()).map(size).max().unwrap_or(0);
        ring::claim_part(self, msgs.len(), size, len, largest).map_err(|e| format!("{e:?}"))
    }

    /// Publish one part the way `Bridge::publish_batch` does (split at the buffer end when
    /// it is over half the ring). `Ok(true)` when it was split into HEAD + CONT.
    pub fn publish_part(&self, msgs: &[(u32, u32, &[u8])]) -> Result<bool, String> {
        let c = self.claim_part(msgs)?;
        let split = matches!(c, PartClaim::Split { .. });
        ring::fill_and_commit_part(self, &c, msgs.len() as u32, 0, |out, a, b| {
            ring::pack_messages(out, msgs[a..b].iter().copied())
        })
        .map_err(|e| format!("{e:?}"))?;
        Ok(split)
    }

    /// Claim and fill a part that must split, commit its CONT block and then die before
    /// committing its HEAD (a producer killed between the two commits).
    pub fn publish_part_dying_before_head_commit(&self, msgs: &[(u32, u32, &[u8])]) -> Result<(), String> {
        let c = self.claim_part(msgs)?;
        let PartClaim::Split { head, head_msgs, cont } = c else { return Err("part did not split".into()) };
        let k = head_msgs as usize;
        ring::fill(self, &head, head_msgs, 0, |out| ring::pack_messages(out, msgs[..k].iter().copied()));
        ring::fill(self, &cont, msgs.len() as u32 - head_msgs, 0, |out| {
            ring::pack_messages(out, msgs[k..].iter().copied())
        });
        ring::commit(self, &cont).map_err(|e| format!("{e:?}"))
    }

    /// Claim a part (split or not) and never fill or commit it (a producer killed right
    /// after claiming).
    pub fn claim_part_without_commit(&self, msgs: &[(u32, u32, &[u8])]) -> Result<bool, String> {
        self.claim_part(msgs).map(|c| matches!(c, PartClaim::Split { .. }))
    }

    /// Claim room for one message of `payload_len` bytes and never commit it.
    pub fn claim_without_commit(&self, payload_len: u64) -> Result<(), String> {
        ring::claim(self, HDR + BLOCK_HDR + msg_bytes(payload_len)).map(|_| ()).map_err(|e| format!("{e:?}"))
    }

    /// Counter: unblocked holes.
    pub fn unblocked(&self) -> u64 {
        self.ctr(Ctr::Unblocked).load(Ordering::Relaxed)
    }
}

/// The single consumer of a [`HeapRing`].
pub struct HeapConsumer(ConsumerCore);

impl HeapConsumer {
    /// A consumer with the given unblock timeout (in the caller's clock units).
    pub fn new(r: &HeapRing, unblock_timeout: u64) -> HeapConsumer {
        HeapConsumer(ConsumerCore::new(r, 1024, unblock_timeout))
    }

    /// One drain call; returns the number of messages delivered.
    pub fn drain(&mut self, r: &HeapRing, now: u64, f: impl FnMut(Message<'_>)) -> usize {
        self.0.drain(r, usize::MAX, now, f).delivered
    }

    /// Whether a drain would find nothing to take or repair.
    pub fn is_idle(&self, r: &HeapRing) -> bool {
        self.0.is_idle(r)
    }

    /// One drain call with a message budget.
    pub fn drain_budget(&mut self, r: &HeapRing, budget: usize, now: u64, f: impl FnMut(Message<'_>)) -> usize {
        self.0.drain(r, budget, now, f).delivered
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const CAP: u64 = 256;
    const BASE: u64 = 4 * CAP; // start a few laps in, so position stamps are not trivial

    fn payloads(tag: u32, n: u32) -> Vec<[u8; 8]> {
        (0..n)
            .map(|k| {
                let mut p = [0u8; 8];
                p[..4].copy_from_slice(&tag.to_le_bytes());
                p[4..].copy_from_slice(&k.to_le_bytes());
                p
            })
            .collect()
    }

    fn msgs(ps: &[[u8; 8]]) -> Vec<(u32, u32, &[u8])> {
        ps.iter().enumerate().map(|(k, p)| (k as u32, 7, &p[..])).collect()
    }

    fn collect(c: &mut HeapConsumer, r: &HeapRing, now: u64) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        c.drain(r, now, |m| got.push(m.payload.to_vec()));
        got
    }

    /// 7 messages of 24 bytes: a 184-byte part, over half of a 256-byte ring.
    #[test]
    fn big_part_at_every_position_arrives_whole_and_in_order() {
        let big = payloads(1, 7);
        let mut splits = 0;
        for off in (0..CAP).step_by(8) {
            let r = HeapRing::at(CAP, BASE + off);
            let mut c = HeapConsumer::new(&r, 10);
            splits += usize::from(r.publish_part(&msgs(&big)).unwrap());
            let want: Vec<Vec<u8>> = big.iter().map(|p| p.to_vec()).collect();
            assert_eq!(collect(&mut c, &r, 0), want, "offset {off}");
            // The ring is consistent afterwards: a second big part fits and arrives too.
            r.publish_part(&msgs(&big)).unwrap();
            assert_eq!(collect(&mut c, &r, 0), want, "offset {off}, second part");
            assert_eq!(r.unblocked(), 0);
            assert_eq!(r.ctr(Ctr::MalformedBlocks).load(Ordering::Relaxed), 0);
            assert_eq!(r.tail.load(Ordering::Relaxed), r.head.load(Ordering::Relaxed));
        }
        assert!(splits > 10, "most offsets split the part ({splits})");
    }

    #[test]
    fn idle_means_nothing_to_take_or_repair() {
        let r = HeapRing::at(CAP, BASE);
        let mut c = HeapConsumer::new(&r, 10);
        assert!(c.is_idle(&r), "a fresh ring");
        r.publish(&msgs(&payloads(1, 2))).unwrap();
        assert!(!c.is_idle(&r), "a committed part waits");
        assert_eq!(collect(&mut c, &r, 0).len(), 2);
        assert!(c.is_idle(&r), "drained");
        // A claim never committed advances the tail: the drain must run for the
        // unblocker to time it out.
        r.claim_without_commit(8).unwrap();
        assert!(!c.is_idle(&r), "a claimed record waits for its commit or the unblocker");
        assert_eq!(c.drain(&r, 0, |_| {}), 0);
        assert_eq!(c.drain(&r, 100, |_| {}), 0);
        assert_eq!(r.unblocked(), 1);
        assert!(c.is_idle(&r), "the hole was skipped");
        // A client that wrote over the shared head is repaired by the next drain.
        let head = r.head.load(Ordering::Relaxed);
        r.head.store(head + 8, Ordering::Relaxed);
        assert!(!c.is_idle(&r), "the shared head differs from the consumer's");
        assert_eq!(c.drain(&r, 100, |_| {}), 0);
        assert_eq!(r.head.load(Ordering::Relaxed), head);
        assert!(c.is_idle(&r));
    }

    #[test]
    fn too_large_and_full_are_refused_whole() {
        // 9 messages: 232 bytes > 256 - 16 - 24.
        let huge = payloads(1, 9);
        let r = HeapRing::at(CAP, BASE + 200);
        assert_eq!(r.publish_part(&msgs(&huge)), Err("TooLarge".into()));
        let mut c = HeapConsumer::new(&r, 10);
        let small = payloads(2, 2);
        r.publish_part(&msgs(&small)).unwrap();
        let big = payloads(3, 7);
        assert_eq!(r.publish_part(&msgs(&big)), Err("Full".into()));
        assert_eq!(collect(&mut c, &r, 0).len(), 2, "only the small part is in the ring");
        r.publish_part(&msgs(&big)).unwrap();
        assert_eq!(collect(&mut c, &r, 0).len(), 7);
    }

    #[test]
    fn positions_a_claim_would_overflow_are_refused_as_corrupt() {
        // A hostile client wrote head and tail just below u64::MAX (as in
        // fuzz/regressions/bridge_ring/): claims refuse, they do not overflow.
        let r = HeapRing::at(CAP, u64::MAX - 15);
        assert_eq!(r.publish(&msgs(&payloads(1, 1))), Err("Corrupt".into()));
        assert_eq!(r.publish_part(&msgs(&payloads(2, 7))), Err("Corrupt".into()));
    }

    #[test]
    fn budget_stop_between_head_and_cont_still_delivers_cont() {
        let big = payloads(1, 7);
        let r = HeapRing::at(CAP, BASE + 200); // HEAD: 1 message, pad 16, CONT: 6 messages
        let mut c = HeapConsumer::new(&r, 10);
        assert!(r.publish_part(&msgs(&big)).unwrap());
        assert_eq!(c.drain_budget(&r, 1, 0, |_| {}), 1);
        assert_eq!(c.drain_budget(&r, 100, 0, |_| {}), 6);
        assert_eq!(r.unblocked(), 0);
    }

    #[test]
    fn producer_dying_between_cont_and_head_commit_delivers_nothing_of_the_part() {
        let big = payloads(1, 7);
        let r = HeapRing::at(CAP, BASE + 200);
        let mut c = HeapConsumer::new(&r, 10);
        r.publish_part_dying_before_head_commit(&msgs(&big)).unwrap();
        assert!(collect(&mut c, &r, 0).is_empty(), "stalled at the uncommitted HEAD");
        assert!(collect(&mut c, &r, 5).is_empty());
        // After the timeout: HEAD skipped, the committed CONT dropped with it.
        assert!(collect(&mut c, &r, 20).is_empty());
        assert_eq!(r.unblocked(), 2);
        assert_eq!(r.tail.load(Ordering::Relaxed), r.head.load(Ordering::Relaxed));
        let after = payloads(9, 1);
        r.publish_part(&msgs(&after)).unwrap();
        assert_eq!(collect(&mut c, &r, 20), vec![after[0].to_vec()]);
    }

    #[test]
    fn producer_dying_right_after_a_split_claim_costs_one_timeout() {
        let big = payloads(1, 7);
        let r = HeapRing::at(CAP, BASE + 200);
        let mut c = HeapConsumer::new(&r, 10);
        assert!(r.claim_part_without_commit(&msgs(&big)).unwrap());
        assert!(collect(&mut c, &r, 0).is_empty());
        // One timeout: the in-progress HEAD is taken away, then the in-progress CONT right
        // away (it can never be delivered), without waiting a second timeout.
        let after = payloads(9, 1);
        assert!(collect(&mut c, &r, 10).is_empty());
        assert_eq!(r.unblocked(), 2);
        r.publish_part(&msgs(&after)).unwrap();
        assert_eq!(collect(&mut c, &r, 10), vec![after[0].to_vec()]);
    }
}
