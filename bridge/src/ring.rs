//! The MPSC ingress ring protocol (claim / commit / unblock), generic over where the
//! ring's memory lives: the shared mapping in production, a heap buffer under loom.
//!
//! Record format (every record 8-byte aligned, never straddling the end of the buffer):
//!
//! ```text
//! +0  len  : i32   total record length incl. this header; 0 = unwritten,
//!                  <0 = claimed and being written, >0 = committed (stored last, Release)
//! +4  kind : u32   low byte = tag (BLOCK, HEAD, CONT or PAD),
//!                  upper 24 bits = (position >> 3) & 0xFFFFFF
//! block only:
//! +8  msg_count   : u32
//! +12 producer_pid: u32
//! +16 messages    : msg_count × { topic u32, sender u32, len u32, payload[len], pad to 8 }
//! ```
//!
//! The position stamp in `kind` lets the consumer tell a record written for the current
//! lap from stale bytes left behind by a writer that was unblocked (treated as unwritten).
//!
//! A part larger than half the ring that would straddle the buffer end is written as a
//! HEAD block (the messages that fit before the end), padding, and a CONT block (the
//! rest, at offset 0), all claimed with one CAS. The producer commits CONT before HEAD,
//! so a consumer that sees HEAD committed sees CONT committed too; the consumer delivers a
//! CONT only right after delivering its HEAD (padding in between), and drops it otherwise
//! (its HEAD was unblocked): the part is delivered whole or not at all.

use crate::sync::{AtomicI32, AtomicU64, Ordering};

/// Record header size.
pub(crate) const HDR: u64 = 8;
/// Block sub-header size (after the record header).
pub(crate) const BLOCK_HDR: u64 = 8;
/// Per-message header inside a block: topic, sender, len.
pub(crate) const MSG_HDR: u64 = 12;
pub(crate) const TAG_BLOCK: u32 = 0xB1;
pub(crate) const TAG_PAD: u32 = 0xA7;
/// First block of a part split at the buffer end (followed by padding and a CONT block).
pub(crate) const TAG_HEAD: u32 = 0xB2;
/// Second block of a split part, at offset 0.
pub(crate) const TAG_CONT: u32 = 0xB3;
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

/// A successful claim for a whole part: one block, or a HEAD block holding the first
/// `head_msgs` messages and a CONT block holding the rest.
pub(crate) enum PartClaim {
    One(Claim),
    Split { head: Claim, head_msgs: u32, cont: Claim },
}

/// Largest part (block header plus messages, in bytes) that [`claim_part`] can ever fit in
/// a ring of `cap` bytes whose largest message takes `max_msg_bytes` inside a block: the
/// claim may add a second block header and less than one message of padding.
pub(crate) const fn max_part_len(cap: u64, max_msg_bytes: u64) -> u64 {
    cap.saturating_sub(HDR + BLOCK_HDR + max_msg_bytes)
}

/// Write a block record's kind word, then mark it in progress (`-len`, Release). The kind
/// is never written again, so a consumer that sees `-len` may read it.
fn start_block<M: RingMem>(m: &M, tag: u32, pos: u64, len: u64) {
    let idx = pos & (m.cap() - 1);
    // SAFETY: idx + 4 .. idx + 8 lies inside the claimed, in-bounds record.
    unsafe { m.data().add(idx as usize + 4).cast::<u32>().write_unaligned(kind_word(tag, pos)) };
    m.len_word(idx).store(-(len as i32), Ordering::Release);
}

/// Write a committed padding record of `len` bytes at `pos`.
fn write_pad<M: RingMem>(m: &M, pos: u64, len: u64) {
    let idx = pos & (m.cap() - 1);
    // SAFETY: idx + 4 .. idx + 8 lies inside the claimed, in-bounds padding record.
    unsafe { m.data().add(idx as usize + 4).cast::<u32>().write_unaligned(kind_word(TAG_PAD, pos)) };
    m.len_word(idx).store(len as i32, Ordering::Release);
}

/// Claim room for a whole part of `n` messages (message `i` takes `size(i)` bytes, 8-aligned)
/// whose single-block length is `block_len`, with ONE CAS on the tail.
///
/// A part of at most half the ring is one block ([`claim`]). A larger part is one block if
/// it fits before the buffer end; otherwise a HEAD block with the messages that fit before
/// the end, padding for the rest of the buffer, and a CONT block at offset 0 with the rest
/// (if no message fits before the end: padding and one block at 0). Parts over
/// [`max_part_len`] are refused as `TooLarge`. Records are started CONT, padding, HEAD.
pub(crate) fn claim_part<M: RingMem>(
    m: &M,
    n: usize,
    size: impl Fn(usize) -> u64,
    block_len: u64,
    max_msg_bytes: u64,
) -> Result<PartClaim, Refusal> {
    let cap = m.cap();
    if block_len <= cap / 2 {
        return claim(m, block_len).map(PartClaim::One);
    }
    if block_len > max_part_len(cap, max_msg_bytes) {
        return Err(Refusal::TooLarge);
    }
    let mut retries = 0;
    loop {
        let (head, tail) = producer_positions(m)?;
        let to_end = cap - (tail & (cap - 1));
        // (bytes of the HEAD block, messages in it); (0, 0) when the part is not split.
        let (mut head_len, mut head_msgs) = (0u64, 0usize);
        let total = if block_len <= to_end {
            block_len
        } else {
            head_len = HDR + BLOCK_HDR;
            while head_msgs < n && head_len + size(head_msgs) <= to_end {
                head_len += size(head_msgs);
                head_msgs += 1;
            }
            if head_msgs == 0 {
                head_len = 0;
                to_end + block_len
            } else {
                to_end + (block_len - head_len + HDR + BLOCK_HDR)
            }
        };
        if tail + total - head > cap {
            return Err(Refusal::Full);
        }
        if m.tail().compare_exchange_weak(tail, tail + total, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            retries += 1;
            if retries >= MAX_CAS_RETRIES {
                return Err(Refusal::Contention);
            }
            continue;
        }
        if block_len <= to_end {
            start_block(m, TAG_BLOCK, tail, block_len);
            return Ok(PartClaim::One(Claim { pos: tail, len: block_len }));
        }
        let at0 = tail + to_end;
        if head_msgs == 0 {
            start_block(m, TAG_BLOCK, at0, block_len);
            write_pad(m, tail, to_end);
            return Ok(PartClaim::One(Claim { pos: at0, len: block_len }));
        }
        let cont_len = total - to_end;
        start_block(m, TAG_CONT, at0, cont_len);
        if head_len < to_end {
            write_pad(m, tail + head_len, to_end - head_len);
        }
        start_block(m, TAG_HEAD, tail, head_len);
        return Ok(PartClaim::Split {
            head: Claim { pos: tail, len: head_len },
            head_msgs: head_msgs as u32,
            cont: Claim { pos: at0, len: cont_len },
        });
    }
}

/// The consumer's head and the producers' tail as a producer sees them before
/// claiming; `Corrupt` when they cannot describe a ring (a hostile write), so
/// a producer never claims from nonsense.
fn producer_positions<M: RingMem>(m: &M) -> Result<(u64, u64), Refusal> {
    let head = m.head().load(Ordering::Acquire);
    let tail = m.tail().load(Ordering::Acquire);
    // Why the last test: a claim adds up to two ring lengths to the tail
    // (padding to the end plus a block); a hostile client that writes a tail
    // near u64::MAX would make that sum overflow (a panic with overflow
    // checks; input in fuzz/regressions/bridge_ring/). Honest positions never get there:
    // 2^64 bytes is centuries of traffic.
    if tail < head || tail - head > m.cap() || !tail.is_multiple_of(8) || tail > u64::MAX - 2 * m.cap() {
        return Err(Refusal::Corrupt);
    }
    Ok((head, tail))
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
        let (head, tail) = producer_positions(m)?;
        let idx = tail & (cap - 1);
        let to_end = cap - idx;
        let (pad, total) = if block_len > to_end { (to_end, to_end + block_len) } else { (0, block_len) };
        if tail + total - head > cap {
            return Err(Refusal::Full);
        }
        match m.tail().compare_exchange_weak(tail, tail + total, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => {
                if pad > 0 {
                    write_pad(m, tail, pad);
                }
                let pos = tail + pad;
                start_block(m, TAG_BLOCK, pos, block_len);
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
/// must write exactly `msg_count` messages. The kind word was written by the claim.
pub(crate) fn fill<M: RingMem>(m: &M, c: &Claim, msg_count: u32, pid: u32, fill: impl FnOnce(&mut [u8])) {
    let idx = c.pos & (m.cap() - 1);
    // SAFETY: the claim gives this producer exclusive use of [idx, idx + len) until it
    // commits; idx + len <= cap by construction of `claim`. The slice starts after the
    // atomic length word and the kind word (written before `-len`, never again).
    let body = unsafe { std::slice::from_raw_parts_mut(m.data().add(idx as usize + 8), c.len as usize - 8) };
    body[0..4].copy_from_slice(&msg_count.to_le_bytes());
    body[4..8].copy_from_slice(&pid.to_le_bytes());
    fill(&mut body[8..]);
}

/// Commit a filled block with a CAS from `-len` to `+len` (fails if it was unblocked).
pub(crate) fn commit<M: RingMem>(m: &M, c: &Claim) -> Result<(), Refusal> {
    let l = c.len as i32;
    match m.len_word(c.pos & (m.cap() - 1)).compare_exchange(-l, l, Ordering::Release, Ordering::Relaxed) {
        Ok(_) => Ok(()),
        Err(_) => Err(Refusal::Unblocked),
    }
}

/// [`fill`] then [`commit`] one block.
pub(crate) fn fill_and_commit<M: RingMem>(
    m: &M,
    c: &Claim,
    msg_count: u32,
    pid: u32,
    f: impl FnOnce(&mut [u8]),
) -> Result<(), Refusal> {
    fill(m, c, msg_count, pid, f);
    commit(m, c)
}

/// Fill and commit a claimed part; `fill_msgs(out, from, to)` packs messages `from..to`
/// of the part into `out`. A split part commits CONT first, then HEAD: if either commit
/// fails (the consumer unblocked the part) the part is refused and, HEAD never being
/// delivered, the consumer drops CONT.
pub(crate) fn fill_and_commit_part<M: RingMem>(
    m: &M,
    c: &PartClaim,
    msg_count: u32,
    pid: u32,
    mut fill_msgs: impl FnMut(&mut [u8], usize, usize),
) -> Result<(), Refusal> {
    match c {
        PartClaim::One(c) => fill_and_commit(m, c, msg_count, pid, |out| fill_msgs(out, 0, msg_count as usize)),
        PartClaim::Split { head, head_msgs, cont } => {
            let k = *head_msgs as usize;
            fill(m, head, *head_msgs, pid, |out| fill_msgs(out, 0, k));
            fill(m, cont, msg_count - head_msgs, pid, |out| fill_msgs(out, k, msg_count as usize));
            commit(m, cont)?;
            commit(m, head)
        }
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
    /// The last non-padding record consumed was a delivered HEAD: a CONT may follow.
    expect_cont: bool,
    /// Consumed, unblocked, malformed messages, malformed blocks: kept here and
    /// stored (never added) into the shared counters, so a client that writes
    /// over them is corrected at the next drain instead of poisoning the sums.
    totals: [u64; 4],
}

impl ConsumerCore {
    pub(crate) fn new<M: RingMem>(m: &M, max_message_bytes: u32, unblock_timeout_ns: u64) -> Self {
        let head = m.head().load(Ordering::Acquire);
        ConsumerCore {
            max_message_bytes,
            unblock_timeout_ns,
            head,
            stall_pos: 0,
            stall_since: 0,
            stalled: false,
            expect_cont: false,
            totals: [0; 4],
        }
    }

    /// Whether a drain now would have nothing to do: no record published past our
    /// head, and the shared head word as we left it. The shared counters are not
    /// looked at: one a client wrote over is corrected at the next drain with work.
    pub(crate) fn is_idle<M: RingMem>(&self, m: &M) -> bool {
        m.tail().load(Ordering::Acquire) == self.head && m.head().load(Ordering::Relaxed) == self.head
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
            self.expect_cont = false;
        }
        let mut records = 0u32;
        while head < tail && rep.delivered < budget && records < 65_536 {
            records += 1;
            let idx = head & mask;
            let len = m.len_word(idx).load(Ordering::Acquire);
            let avail = (tail - head).min(cap - idx);
            // Whether a CONT block may be delivered here; every path that consumes a record
            // other than padding or a HEAD leaves it false, every path that stops restores it.
            let cont_ok = std::mem::take(&mut self.expect_cont);
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
                    self.expect_cont = cont_ok;
                    rep.stalled = true;
                    break;
                }
                match kind & 0xFF {
                    TAG_PAD => self.expect_cont = cont_ok,
                    TAG_CONT if !cont_ok => unblocked += 1, // its HEAD was skipped: drop the rest
                    tag @ (TAG_BLOCK | TAG_HEAD | TAG_CONT) if l >= HDR + BLOCK_HDR => {
                        let (n, bm, bb) = parse_block(rec, self.max_message_bytes, &mut f);
                        rep.delivered += n;
                        bad_msgs += bm;
                        bad_blocks += bb;
                        self.expect_cont = tag == TAG_HEAD;
                    }
                    _ => bad_blocks += 1,
                }
                self.stalled = false;
                head = self.skip(m, head, l);
            } else {
                // In progress (<0) or unwritten (0).
                let want = (len as i64).unsigned_abs();
                if len < 0 && !cont_ok && want.is_multiple_of(8) && want >= HDR + BLOCK_HDR && want <= avail {
                    // SAFETY: idx + 8 <= idx + want <= cap; the kind word is written before
                    // `-len` (Release, seen by the Acquire above) and never again.
                    let kind = unsafe { m.data().add(idx as usize + 4).cast::<u32>().read_unaligned() };
                    if kind == kind_word(TAG_CONT, head) {
                        // The rest of a part whose HEAD was skipped: it can never be delivered,
                        // so take it away now rather than after another timeout.
                        if m.len_word(idx).compare_exchange(len, 0, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                            unblocked += 1;
                            self.stalled = false;
                            head = self.skip(m, head, want);
                        }
                        continue;
                    }
                }
                if self.stall(head, now_ns, &mut unblocked) {
                    if len < 0 && want.is_multiple_of(8) && want >= HDR && want <= avail {
                        // Take the record away from its (dead or stalled) producer: its
                        // commit CAS (-len -> +len) now fails and it reports the part refused.
                        if m.len_word(idx).compare_exchange(len, 0, Ordering::AcqRel, Ordering::Acquire).is_err() {
                            self.expect_cont = cont_ok;
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
                self.expect_cont = cont_ok;
                rep.stalled = true;
                break;
            }
        }
        rep.released_bytes = head - start;
        self.head = head;
        if head != start || m.head().load(Ordering::Relaxed) != head {
            m.head().store(head, Ordering::Release);
        }
        let counts = [rep.delivered as u64, unblocked, bad_msgs, bad_blocks];
        let ctrs = [Ctr::ConsumedMsgs, Ctr::Unblocked, Ctr::MalformedMsgs, Ctr::MalformedBlocks];
        for ((total, add), c) in self.totals.iter_mut().zip(counts).zip(ctrs) {
            *total += add;
            if m.ctr(c).load(Ordering::Relaxed) != *total {
                m.ctr(c).store(*total, Ordering::Relaxed);
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
