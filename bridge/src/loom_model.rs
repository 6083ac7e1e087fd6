//! The ring protocol over a heap buffer, for the loom model (`tests/loom.rs`).
//! Only compiled under `cfg(loom)`: the control words and every record length word are
//! loom atomics, the payload bytes a plain heap buffer, and the claim / commit / drain /
//! unblock code is the production code in `ring.rs`.

use std::cell::UnsafeCell;

use crate::ring::{self, BLOCK_HDR, ConsumerCore, Ctr, HDR, Message, RingMem, msg_bytes};
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
}
