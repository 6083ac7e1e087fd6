//! Subscriber slots and the SPSC egress rings (worker → subscriber).
//!
//! Egress record (8-aligned, never straddling the buffer end):
//! `len u32` (total, incl. this 16-byte header), `topic u32`, `sender u32`,
//! `payload_len u32` (`u32::MAX` marks padding up to the buffer end), payload, pad to 8.
//! A gap at the buffer end shorter than a header (8 bytes) is padding without
//! a header: the reader skips it by its size.

use std::sync::Arc;

use crate::layout::{EGRESS_HDR, Geometry, Header, MAX_FILTER_TOPICS};
use crate::ring::align8;
use crate::shm::Mapping;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Slot states.
pub(crate) const FREE: u32 = 0;
/// A client claimed the slot and is writing its filter.
pub(crate) const CLAIMED: u32 = 1;
/// Workers deliver to the slot.
pub(crate) const ACTIVE: u32 = 2;
/// Being released: workers stop writing and acknowledge, then the reaper resets it.
pub(crate) const RECLAIMING: u32 = 3;
pub(crate) const PAD_MARK: u32 = u32::MAX;

/// Offsets inside a slot.
pub(crate) mod slot {
    pub const STATE: u64 = 0;
    pub const GENERATION: u64 = 4;
    pub const PID: u64 = 8;
    /// The subscriber holds an OFD write lock on this byte of its slot while alive.
    pub const LOCK_BYTE: u64 = 12;
    pub const ALL: u64 = 64;
    pub const COUNT: u64 = 68;
    pub const TOPICS: u64 = 72;
}

/// Offsets inside an egress ring's control block.
pub(crate) mod ectl {
    /// Producer (worker) position.
    pub const TAIL: u64 = 0;
    /// Consumer (subscriber) position.
    pub const HEAD: u64 = 64;
    /// Messages dropped because the ring was full (worker only).
    pub const OVERFLOW: u64 = 128;
    /// generation + 1 once the worker has stopped writing for that generation (worker only).
    pub const QUIESCED: u64 = 136;
}

pub(crate) fn slot_off(g: &Geometry, s: u32) -> u64 {
    g.slots_offset + g.slot_stride * u64::from(s)
}

pub(crate) fn egress_off(g: &Geometry, shards: u32, s: u32, shard: u32) -> u64 {
    g.egress_offset + g.egress_stride * (u64::from(s) * u64::from(shards) + u64::from(shard))
}

pub(crate) struct SlotView<'a> {
    pub(crate) map: &'a Mapping,
    pub(crate) off: u64,
}

impl SlotView<'_> {
    pub(crate) fn state(&self) -> &AtomicU32 {
        self.map.u32_at(self.off + slot::STATE)
    }
    pub(crate) fn generation(&self) -> &AtomicU32 {
        self.map.u32_at(self.off + slot::GENERATION)
    }
    pub(crate) fn pid(&self) -> &AtomicU32 {
        self.map.u32_at(self.off + slot::PID)
    }
    pub(crate) fn lock_byte(&self) -> u64 {
        self.off + slot::LOCK_BYTE
    }
    /// Read the filter: (all, sorted topics). Hostile counts are clamped.
    pub(crate) fn filter(&self) -> (bool, Vec<u32>) {
        let all = self.map.u32_at(self.off + slot::ALL).load(Ordering::Relaxed) != 0;
        let n = (self.map.u32_at(self.off + slot::COUNT).load(Ordering::Relaxed) as usize).min(MAX_FILTER_TOPICS);
        let mut t: Vec<u32> =
            (0..n).map(|i| self.map.u32_at(self.off + slot::TOPICS + 4 * i as u64).load(Ordering::Relaxed)).collect();
        t.sort_unstable();
        t.dedup();
        (all, t)
    }
    pub(crate) fn write_filter(&self, topics: Option<&[u32]>) {
        self.map.u32_at(self.off + slot::ALL).store(u32::from(topics.is_none()), Ordering::Relaxed);
        let t = topics.unwrap_or(&[]);
        self.map.u32_at(self.off + slot::COUNT).store(t.len() as u32, Ordering::Relaxed);
        for (i, v) in t.iter().enumerate() {
            self.map.u32_at(self.off + slot::TOPICS + 4 * i as u64).store(*v, Ordering::Relaxed);
        }
    }
}

/// Worker-side view of one egress ring with locally cached positions.
pub(crate) struct EgressWriter {
    pub(crate) ctl: u64,
    pub(crate) data: *mut u8,
    pub(crate) cap: u64,
    pub(crate) tail: u64,
    pub(crate) head_cache: u64,
    pub(crate) overflow: u64,
    pub(crate) dirty: bool,
}

impl EgressWriter {
    pub(crate) fn new(map: &Mapping, off: u64, cap: u64) -> EgressWriter {
        let data = map.ptr(off + crate::layout::EGRESS_CTL_BYTES, cap);
        let tail = map.u64_at(off + ectl::TAIL).load(Ordering::Relaxed);
        let head_cache = map.u64_at(off + ectl::HEAD).load(Ordering::Acquire);
        let overflow = map.u64_at(off + ectl::OVERFLOW).load(Ordering::Relaxed);
        EgressWriter { ctl: off, data, cap, tail, head_cache, overflow, dirty: false }
    }

    /// Write one message or count it as overflow. No shared write until `flush`.
    pub(crate) fn push(&mut self, map: &Mapping, topic: u32, sender: u32, payload: &[u8]) {
        let rec = align8(EGRESS_HDR + payload.len() as u64);
        let idx = self.tail & (self.cap - 1);
        let to_end = self.cap - idx;
        let need = if rec > to_end { to_end + rec } else { rec };
        let free = |h: u64, t: u64, cap: u64| if h > t || t - h > cap { 0 } else { cap - (t - h) };
        if need > free(self.head_cache, self.tail, self.cap) {
            self.head_cache = map.u64_at(self.ctl + ectl::HEAD).load(Ordering::Acquire);
            if need > free(self.head_cache, self.tail, self.cap) {
                self.overflow += 1;
                self.dirty = true;
                return;
            }
        }
        let mut at = idx;
        if rec > to_end {
            // A gap shorter than a header (8 bytes) is padding without one: the
            // reader skips it by its size alone. Writing a header there would
            // run past the ring's end.
            if to_end >= EGRESS_HDR {
                // SAFETY: [idx, cap) is free ring space owned by this (single) producer, at least a header long.
                unsafe { write_hdr(self.data.add(idx as usize), to_end as u32, 0, 0, PAD_MARK) };
            }
            at = 0;
        }
        // SAFETY: [at, at + rec) is free ring space owned by this producer and in bounds.
        unsafe {
            let p = self.data.add(at as usize);
            write_hdr(p, rec as u32, topic, sender, payload.len() as u32);
            std::ptr::copy_nonoverlapping(payload.as_ptr(), p.add(EGRESS_HDR as usize), payload.len());
        }
        self.tail += need;
        self.dirty = true;
    }

    pub(crate) fn flush(&mut self, map: &Mapping) {
        if self.dirty {
            map.u64_at(self.ctl + ectl::OVERFLOW).store(self.overflow, Ordering::Relaxed);
            map.u64_at(self.ctl + ectl::TAIL).store(self.tail, Ordering::Release);
            self.dirty = false;
        }
    }
}

/// # Safety
/// `p` must be valid for 16 bytes of writes.
unsafe fn write_hdr(p: *mut u8, len: u32, topic: u32, sender: u32, plen: u32) {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[4..8].copy_from_slice(&topic.to_le_bytes());
    h[8..12].copy_from_slice(&sender.to_le_bytes());
    h[12..16].copy_from_slice(&plen.to_le_bytes());
    // SAFETY: guaranteed by the caller.
    unsafe { std::ptr::copy_nonoverlapping(h.as_ptr(), p, 16) };
}

/// Columnar output of a subscriber read.
#[derive(Default)]
pub(crate) struct Columns {
    pub(crate) topics: Vec<u32>,
    pub(crate) senders: Vec<u32>,
    pub(crate) offsets: Vec<u64>,
    pub(crate) payloads: Vec<u8>,
}

impl Columns {
    pub(crate) fn clear(&mut self) {
        self.topics.clear();
        self.senders.clear();
        self.offsets.clear();
        self.payloads.clear();
        self.offsets.push(0);
    }
}

/// Subscriber side: move everything in one egress ring into `out`, then publish head.
/// Returns false when the ring's control words are inconsistent (then it resyncs to tail).
pub(crate) fn read_ring(map: &Arc<Mapping>, h: &Header, off: u64, out: &mut Columns) -> bool {
    let cap = u64::from(h.layout.subscriber_ring_bytes);
    let data = map.bytes(off + crate::layout::EGRESS_CTL_BYTES, cap);
    let tail_w: &AtomicU64 = map.u64_at(off + ectl::TAIL);
    let head_w = map.u64_at(off + ectl::HEAD);
    let tail = tail_w.load(Ordering::Acquire);
    let mut head = head_w.load(Ordering::Relaxed);
    if tail < head || tail - head > cap {
        head_w.store(tail, Ordering::Release);
        return false;
    }
    let mut ok = true;
    while head < tail {
        let idx = (head & (cap - 1)) as usize;
        let r = |o: usize| u32::from_le_bytes(data[idx + o..idx + o + 4].try_into().unwrap());
        let to_end = cap - idx as u64;
        if to_end < EGRESS_HDR && tail - head > to_end {
            head += to_end; // a gap too short for a header: headerless padding
            continue;
        }
        let avail = (tail - head).min(to_end);
        if avail < EGRESS_HDR {
            ok = false;
            head = tail;
            break;
        }
        let len = u64::from(r(0));
        let plen = r(12);
        if len % 8 != 0 || len < EGRESS_HDR || len > avail {
            ok = false;
            head = tail;
            break;
        }
        if plen != PAD_MARK {
            if EGRESS_HDR + u64::from(plen) > len {
                ok = false;
                head = tail;
                break;
            }
            let p = idx + EGRESS_HDR as usize;
            out.topics.push(r(4));
            out.senders.push(r(8));
            out.payloads.extend_from_slice(&data[p..p + plen as usize]);
            out.offsets.push(out.payloads.len() as u64);
        }
        head += len;
    }
    head_w.store(head, Ordering::Release);
    ok
}
