//! The MPSC ingress ring protocol (claim / commit / unblock), generic over where the
//! ring's memory lives: the shared mapping in production, a heap buffer under loom.
//!
//! Record format (every record 8-byte aligned, never straddling the end of the buffer):
//!
//! ```text
//! +0  len  : i32   total record length incl. this header; 0 = unwritten,
//!                  <0 = claimed and being written, >0 = committed (stored last, Release)
//! +4  kind : u32   low byte = tag (BLOCK or PAD), upper 24 bits = (position >> 3) & 0xFFFFFF
//! block only:
//! +8  msg_count   : u32
//! +12 producer_pid: u32
//! +16 messages    : msg_count × { topic u32, sender u32, len u32, payload[len], pad to 8 }
//! ```
//!
//! The position stamp in `kind` lets the consumer tell a record written for the current
//! lap from stale bytes left behind by a writer that was unblocked (treated as unwritten).

use crate::sync::{AtomicI32, AtomicU64, Ordering};

/// Record header size.
pub(crate) const HDR: u64 = 8;
/// Block sub-header size (after the record header).
pub(crate) const BLOCK_HDR: u64 = 8;
/// Per-message header inside a block: topic, sender, len.
pub(crate) const MSG_HDR: u64 = 12;
pub(crate) const TAG_BLOCK: u32 = 0xB1;
pub(crate) const TAG_PAD: u32 = 0xA7;
/// CAS retries on the tail before a producer gives up on a shard (hostile contention).
const MAX_CAS_RETRIES: u32 = 10_000;

/// Round up to a multiple of 8.
#[inline]
pub(crate) const fn align8(x: u64) -> u64 {
    (x + 7) & !7
}

/// Bytes a message of `payload_len` bytes takes inside a block.
#[inline]
pub(crate) const fn msg_bytes(payload_len: u64) -> u64 {
    align8(MSG_HDR + payload_len)
}

#[inline]
pub(crate) fn kind_word(tag: u32, pos: u64) -> u32 {
    tag | ((((pos >> 3) as u32) & 0x00FF_FFFF) << 8)
}

/// Counters in the ring's control block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ctr {
    /// Messages in accepted parts (producers).
    AcceptedMsgs,
    /// Accepted parts (producers).
    AcceptedBatches,
    /// Refused parts (producers).
    RefusedBatches,
    /// Holes turned into padding by the unblocker (consumer).
    Unblocked,
    /// Malformed messages skipped (consumer).
    MalformedMsgs,
    /// Malformed records / insane control words (consumer).
    MalformedBlocks,
    /// Messages delivered (consumer); accepted - consumed estimates messages in flight.
    ConsumedMsgs,
}

/// Where a ring's words and bytes live.
///
/// # Safety
/// Implementors guarantee that `data()` points to `cap()` bytes valid for reads and
/// writes for as long as `self` lives, that `cap()` is a power of two ≥ 64, and that
/// `len_word(idx)` for any 8-aligned `idx < cap()` is the atomic length word of the
/// record header at `idx`.
pub(crate) unsafe trait RingMem {
    fn cap(&self) -> u64;
    fn tail(&self) -> &AtomicU64;
    fn head(&self) -> &AtomicU64;
    fn ctr(&self, c: Ctr) -> &AtomicU64;
    fn len_word(&self, idx: u64) -> &AtomicI32;
    fn data(&self) -> *mut u8;
    /// Zero `len` bytes at `idx` (8-aligned, in bounds), including the length words.
    fn zero(&self, idx: u64, len: u64);
}

/// Why a producer's part was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not enough free room.
    Full,
    /// The part is larger than half the ring.
    TooLarge,
    /// Control words are insane (hostile writer); the consumer will resynchronise.
    Corrupt,
    /// Lost the CAS race too many times.
    Contention,
    /// The consumer unblocked this record before it was committed (producer stalled
    /// longer than the unblock timeout); its messages were dropped.
    Unblocked,
}

/// A successful claim: where the block goes.
pub(crate) struct Claim {
    pub(crate) pos: u64,
    pub(crate) len: u64,
}

/// Claim room for a block of `block_len` bytes (8-aligned, incl. headers) with one CAS;
/// writes a padding record first when the block would straddle the buffer end.
pub(crate) fn claim<M: RingMem>(m: &M, block_len: u64) -> Result<Claim, Refusal> {
    let cap = m.cap();
    debug_assert!(block_len.is_multiple_of(8) && block_len >= HDR + BLOCK_HDR);
    if block_len > cap / 2 {
        return Err(Refusal::TooLarge);
    }
    let mut retries = 0;
    loop {
        let head = m.head().load(Ordering::Acquire);
        let tail = m.tail().load(Ordering::Acquire);
        if tail < head || tail - head > cap || !tail.is_multiple_of(8) {
            return Err(Refusal::Corrupt);
        }
        let idx = tail & (cap - 1);
        let to_end = cap - idx;
        let (pad, total) = if block_len > to_end { (to_end, to_end + block_len) } else { (0, block_len) };
        if tail + total - head > cap {
            return Err(Refusal::Full);
        }
        match m.tail().compare_exchange_weak(tail, tail + total, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => {
                if pad > 0 {
                    // SAFETY: idx + 4 .. idx + 8 lies inside the claimed, in-bounds padding record.
                    unsafe { m.data().add(idx as usize + 4).cast::<u32>().write_unaligned(kind_word(TAG_PAD, tail)) };
                    m.len_word(idx).store(pad as i32, Ordering::Release);
                }
                let pos = tail + pad;
                m.len_word(pos & (cap - 1)).store(-(block_len as i32), Ordering::Release);
                return Ok(Claim { pos, len: block_len });
            }
            Err(_) => {
                retries += 1;
                if retries >= MAX_CAS_RETRIES {
                    return Err(Refusal::Contention);
                }
            }
        }
    }
}

/// Fill a claimed block: `fill` receives the message area (after both headers) and
/// must write exactly `msg_count` messages. Then commit with a CAS from `-len` to `+len`.
pub(crate) fn fill_and_commit<M: RingMem>(
    m: &M,
    c: &Claim,
    msg_count: u32,
    pid: u32,
    fill: impl FnOnce(&mut [u8]),
) -> Result<(), Refusal> {
    let idx = c.pos & (m.cap() - 1);
    // SAFETY: the claim gives this producer exclusive use of [idx, idx + len) until it
    // commits; idx + len <= cap by construction of `claim`. The slice starts after the
    // atomic length word, which is only touched through atomics.
    let body = unsafe { std::slice::from_raw_parts_mut(m.data().add(idx as usize + 4), c.len as usize - 4) };
    body[0..4].copy_from_slice(&kind_word(TAG_BLOCK, c.pos).to_le_bytes());
    body[4..8].copy_from_slice(&msg_count.to_le_bytes());
    body[8..12].copy_from_slice(&pid.to_le_bytes());
    fill(&mut body[12..]);
    let l = c.len as i32;
    match m.len_word(idx).compare_exchange(-l, l, Ordering::Release, Ordering::Relaxed) {
        Ok(_) => Ok(()),
        Err(_) => Err(Refusal::Unblocked),
    }
}

/// Write messages `(topic, sender, payload)` packed into `out` (exactly sized).
pub(crate) fn pack_messages<'a>(out: &mut [u8], msgs: impl Iterator<Item = (u32, u32, &'a [u8])>) {
    let mut off = 0usize;
    for (topic, sender, p) in msgs {
        out[off..off + 4].copy_from_slice(&topic.to_le_bytes());
        out[off + 4..off + 8].copy_from_slice(&sender.to_le_bytes());
        out[off + 8..off + 12].copy_from_slice(&(p.len() as u32).to_le_bytes());
        out[off + 12..off + 12 + p.len()].copy_from_slice(p);
        let end = off + msg_bytes(p.len() as u64) as usize;
        out[off + 12 + p.len()..end].fill(0);
        off = end;
    }
    debug_assert_eq!(off, out.len());
}

/// One message delivered by the consumer, borrowed from the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Topic id.
    pub topic: u32,
    /// Sender id.
    pub sender: u32,
    /// Payload bytes (valid only inside the drain callback).
    pub payload: &'a [u8],
}

/// What one drain call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Messages delivered to the callback.
    pub delivered: usize,
    /// Bytes of ring released to producers.
    pub released_bytes: u64,
    /// True when the call stopped at a stalled record (in progress or unwritten).
    pub stalled: bool,
}

#[inline]
fn rd32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Consumer-side state of one ingress ring (single consumer).
pub(crate) struct ConsumerCore {
    pub(crate) max_message_bytes: u32,
    pub(crate) unblock_timeout_ns: u64,
    /// Our head: the consumer is its only writer, so the shared word is never read back
    /// (a hostile write to it is simply overwritten at the next drain).
    head: u64,
    stall_pos: u64,
    stall_since: u64,
    stalled: bool,
}

impl ConsumerCore {
    pub(crate) fn new<M: RingMem>(m: &M, max_message_bytes: u32, unblock_timeout_ns: u64) -> Self {
        let head = m.head().load(Ordering::Acquire);
        ConsumerCore { max_message_bytes, unblock_timeout_ns, head, stall_pos: 0, stall_since: 0, stalled: false }
    }

    /// Consume up to `budget` messages (whole records; the record that reaches the
    /// budget is finished). Head is published once, with Release, at the end.
    pub(crate) fn drain<M: RingMem>(
        &mut self,
        m: &M,
        budget: usize,
        now_ns: u64,
        mut f: impl FnMut(Message<'_>),
    ) -> DrainReport {
        let cap = m.cap();
        let mask = cap - 1;
        let start = self.head;
        let mut head = start;
        let mut rep = DrainReport::default();
        let (mut unblocked, mut bad_msgs, mut bad_blocks) = (0u64, 0u64, 0u64);
        let mut tail = m.tail().load(Ordering::Acquire);
        if tail < head || tail - head > cap || !tail.is_multiple_of(8) {
            // Insane tail (hostile writer): put it back to head and wipe the buffer so no
            // stale bytes can pass for records. In-flight honest producers lose their parts.
            bad_blocks += 1;
            let _ = m.tail().compare_exchange(tail, head, Ordering::AcqRel, Ordering::Relaxed);
            m.zero(0, cap);
            tail = head;
        }
        let mut records = 0u32;
        while head < tail && rep.delivered < budget && records < 65_536 {
            records += 1;
            let idx = head & mask;
            let len = m.len_word(idx).load(Ordering::Acquire);
            let avail = (tail - head).min(cap - idx);
            if len > 0 {
                let l = len as u64;
                if !l.is_multiple_of(8) || l < HDR || l > avail {
                    // Garbage length: drop everything up to tail.
                    bad_blocks += 1;
                    head = self.skip(m, head, tail - head);
                    continue;
                }
                // SAFETY: [idx, idx + l) is in bounds (l <= cap - idx) and committed (Acquire above).
                let rec = unsafe { std::slice::from_raw_parts(m.data().add(idx as usize), l as usize) };
                let kind = rd32(rec, 4);
                if (kind >> 8) != kind_word(0, head) >> 8 {
                    // Stale bytes from an earlier lap: the real writer has not got here yet.
                    if self.stall(head, now_ns, &mut unblocked) {
                        head = self.unstall_scan(m, head, tail, idx);
                        continue;
                    }
                    rep.stalled = true;
                    break;
                }
                match kind & 0xFF {
                    TAG_PAD => {}
                    TAG_BLOCK if l >= HDR + BLOCK_HDR => {
                        let (n, bm, bb) = parse_block(rec, self.max_message_bytes, &mut f);
                        rep.delivered += n;
                        bad_msgs += bm;
                        bad_blocks += bb;
                    }
                    _ => bad_blocks += 1,
                }
                self.stalled = false;
                head = self.skip(m, head, l);
            } else {
                // In progress (<0) or unwritten (0).
                if self.stall(head, now_ns, &mut unblocked) {
                    let want = (len as i64).unsigned_abs();
                    if len < 0 && want.is_multiple_of(8) && want >= HDR && want <= avail {
                        // Take the record away from its (dead or stalled) producer: its
                        // commit CAS (-len -> +len) now fails and it reports the part refused.
                        if m.len_word(idx).compare_exchange(len, 0, Ordering::AcqRel, Ordering::Acquire).is_err() {
                            continue; // committed meanwhile: consume it normally
                        }
                        head = self.skip(m, head, want);
                    } else if len < 0 {
                        bad_blocks += 1;
                        head = self.skip(m, head, tail - head);
                    } else {
                        head = self.unstall_scan(m, head, tail, idx);
                    }
                    continue;
                }
                rep.stalled = true;
                break;
            }
        }
        rep.released_bytes = head - start;
        self.head = head;
        if head != start || m.head().load(Ordering::Relaxed) != head {
            m.head().store(head, Ordering::Release);
        }
        if rep.delivered > 0 {
            m.ctr(Ctr::ConsumedMsgs).fetch_add(rep.delivered as u64, Ordering::Relaxed);
        }
        for (c, v) in [(Ctr::Unblocked, unblocked), (Ctr::MalformedMsgs, bad_msgs), (Ctr::MalformedBlocks, bad_blocks)]
        {
            if v > 0 {
                m.ctr(c).fetch_add(v, Ordering::Relaxed);
            }
        }
        rep
    }

    /// Record that `head` is stalled; true once it has been stalled for the timeout
    /// (then `unblocked` is counted and the caller must skip the hole).
    fn stall(&mut self, head: u64, now_ns: u64, unblocked: &mut u64) -> bool {
        if !self.stalled || self.stall_pos != head {
            self.stalled = true;
            self.stall_pos = head;
            self.stall_since = now_ns;
            return self.unblock_timeout_ns == 0 && {
                *unblocked += 1;
                self.stalled = false;
                true
            };
        }
        if now_ns.saturating_sub(self.stall_since) >= self.unblock_timeout_ns {
            *unblocked += 1;
            self.stalled = false;
            return true;
        }
        false
    }

    /// Skip an unwritten hole: scan forward in 8-byte steps (up to tail and the buffer
    /// end) for the next non-zero header; the hole becomes padding.
    fn unstall_scan<M: RingMem>(&mut self, m: &M, head: u64, tail: u64, idx: u64) -> u64 {
        let end = (tail - head).min(m.cap() - idx);
        let mut step = HDR;
        while step < end && m.len_word(idx + step).load(Ordering::Acquire) == 0 {
            step += HDR;
        }
        self.skip(m, head, step)
    }

    /// Release `n` bytes at `head` (zeroing them), returning the new head.
    fn skip<M: RingMem>(&mut self, m: &M, head: u64, n: u64) -> u64 {
        let cap = m.cap();
        let mut left = n;
        let mut pos = head;
        while left > 0 {
            let idx = pos & (cap - 1);
            let chunk = left.min(cap - idx);
            m.zero(idx, chunk);
            pos += chunk;
            left -= chunk;
        }
        pos
    }
}

/// Parse a committed block record; returns (delivered, malformed messages, malformed blocks).
fn parse_block(rec: &[u8], max_msg: u32, f: &mut impl FnMut(Message<'_>)) -> (usize, u64, u64) {
    let count = rd32(rec, 8);
    let mut off = (HDR + BLOCK_HDR) as usize;
    let mut delivered = 0;
    let mut bad_msgs = 0;
    for _ in 0..count {
        if off + MSG_HDR as usize > rec.len() {
            return (delivered, bad_msgs + 1, 1);
        }
        let topic = rd32(rec, off);
        let sender = rd32(rec, off + 4);
        let plen = rd32(rec, off + 8) as usize;
        let end = off as u64 + msg_bytes(plen as u64);
        if end > rec.len() as u64 {
            return (delivered, bad_msgs + 1, 1);
        }
        if plen > max_msg as usize {
            bad_msgs += 1;
        } else {
            let p = off + MSG_HDR as usize;
            f(Message { topic, sender, payload: &rec[p..p + plen] });
            delivered += 1;
        }
        off = end as usize;
    }
    (delivered, bad_msgs, u64::from(off != rec.len()))
}

/// Occupancy of a ring: (bytes between head and tail, clamped to the capacity).
pub(crate) fn depth<M: RingMem>(m: &M) -> u64 {
    let head = m.head().load(Ordering::Acquire);
    let tail = m.tail().load(Ordering::Acquire);
    tail.saturating_sub(head).min(m.cap())
}
