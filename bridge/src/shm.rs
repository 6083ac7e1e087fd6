//! The shared mapping, OFD locks, and the ring memory views over the mapping.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::sync::Arc;

use crate::error::BridgeError;
use crate::ring::{Ctr, RingMem};
use crate::sync::{AtomicI32, AtomicU32, AtomicU64};

/// A shared read-write mapping of a whole bridge file; unmapped on drop.
/// The file stays open as long as the mapping lives (the appliance's liveness lock is
/// an OFD lock on this open file description, so it lives exactly as long).
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    file: File,
}

// SAFETY: the mapping is plain shared memory; all concurrent access to it goes through
// atomics or through regions that the ring protocols hand to exactly one party.
unsafe impl Send for Mapping {}
// SAFETY: see above.
unsafe impl Sync for Mapping {}

impl Mapping {
    pub(crate) fn map(file: File, len: u64) -> Result<Mapping, BridgeError> {
        let len = usize::try_from(len).map_err(|_| BridgeError::BadHeader("region too large".into()))?;
        // SAFETY: mmap of a valid fd with no address hint; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(BridgeError::last_os("mmap bridge file"));
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| BridgeError::BadHeader("mmap returned null".into()))?;
        Ok(Mapping { ptr, len, file })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Pointer to `off`, checked to leave `size` bytes in bounds.
    pub(crate) fn ptr(&self, off: u64, size: u64) -> *mut u8 {
        assert!(off.checked_add(size).is_some_and(|e| e <= self.len as u64), "offset {off}+{size} out of mapping");
        // SAFETY: in bounds of the mapping (checked above).
        unsafe { self.ptr.as_ptr().add(off as usize) }
    }

    pub(crate) fn u64_at(&self, off: u64) -> &AtomicU64 {
        assert!(off.is_multiple_of(8));
        // SAFETY: in bounds and 8-aligned (the mapping is page-aligned); the word is only
        // accessed atomically by every party for as long as `self` lives.
        unsafe { AtomicU64::from_ptr(self.ptr(off, 8).cast()) }
    }

    pub(crate) fn u32_at(&self, off: u64) -> &AtomicU32 {
        assert!(off.is_multiple_of(4));
        // SAFETY: as for `u64_at`, 4-aligned.
        unsafe { AtomicU32::from_ptr(self.ptr(off, 4).cast()) }
    }

    /// The header page, for decoding.
    pub(crate) fn bytes(&self, off: u64, len: u64) -> &[u8] {
        let p = self.ptr(off, len);
        // SAFETY: in bounds; the header is written once before the region is published.
        unsafe { std::slice::from_raw_parts(p, len as usize) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped; no references outlive `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn ofd(fd: RawFd, cmd: libc::c_int, typ: libc::c_int, start: u64) -> std::io::Result<libc::flock> {
    // SAFETY: flock is plain old data; zero is a valid value (l_pid must be 0 for OFD locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = typ as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = 1;
    // SAFETY: fcntl with a valid flock pointer.
    let r = unsafe { libc::fcntl(fd, cmd, &mut fl as *mut libc::flock) };
    if r == -1 { Err(std::io::Error::last_os_error()) } else { Ok(fl) }
}

/// Try to take an OFD write lock on one byte; Ok(false) if someone else holds it.
pub(crate) fn try_lock(fd: RawFd, byte: u64) -> Result<bool, BridgeError> {
    match ofd(fd, libc::F_OFD_SETLK, libc::F_WRLCK, byte) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(BridgeError::io("F_OFD_SETLK", e)),
    }
}

/// Release an OFD lock on one byte.
pub(crate) fn unlock(fd: RawFd, byte: u64) {
    let _ = ofd(fd, libc::F_OFD_SETLK, libc::F_UNLCK, byte);
}

/// Whether another open file description holds a lock on the byte.
pub(crate) fn is_locked(fd: RawFd, byte: u64) -> Result<bool, BridgeError> {
    let fl = ofd(fd, libc::F_OFD_GETLK, libc::F_WRLCK, byte).map_err(|e| BridgeError::io("F_OFD_GETLK", e))?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Control block offsets inside an ingress area.
pub(crate) mod ictl {
    pub const TAIL: u64 = 0;
    pub const HEAD: u64 = 64;
    pub const ACCEPTED_MSGS: u64 = 128;
    pub const ACCEPTED_BATCHES: u64 = 136;
    pub const REFUSED_BATCHES: u64 = 144;
    pub const UNBLOCKED: u64 = 192;
    pub const MALFORMED_MSGS: u64 = 200;
    pub const MALFORMED_BLOCKS: u64 = 208;
    pub const CONSUMED_MSGS: u64 = 216;
}

/// An ingress ring inside the mapping.
#[derive(Clone)]
pub(crate) struct ShmRing {
    map: Arc<Mapping>,
    ctl: u64,
    data: *mut u8,
    cap: u64,
}

// SAFETY: the raw pointer points into `map`, which is Send + Sync and kept alive.
unsafe impl Send for ShmRing {}
// SAFETY: see above.
unsafe impl Sync for ShmRing {}

impl ShmRing {
    pub(crate) fn new(map: Arc<Mapping>, area_off: u64, ctl_bytes: u64, cap: u64) -> ShmRing {
        let data = map.ptr(area_off + ctl_bytes, cap);
        ShmRing { map, ctl: area_off, data, cap }
    }
}

// SAFETY: `data` covers `cap` bytes of the mapping (checked in `new`), cap is a power of
// two (validated layout), and length words live in the data at each record start.
unsafe impl RingMem for ShmRing {
    fn cap(&self) -> u64 {
        self.cap
    }
    fn tail(&self) -> &AtomicU64 {
        self.map.u64_at(self.ctl + ictl::TAIL)
    }
    fn head(&self) -> &AtomicU64 {
        self.map.u64_at(self.ctl + ictl::HEAD)
    }
    fn ctr(&self, c: Ctr) -> &AtomicU64 {
        let o = match c {
            Ctr::AcceptedMsgs => ictl::ACCEPTED_MSGS,
            Ctr::AcceptedBatches => ictl::ACCEPTED_BATCHES,
            Ctr::RefusedBatches => ictl::REFUSED_BATCHES,
            Ctr::Unblocked => ictl::UNBLOCKED,
            Ctr::MalformedMsgs => ictl::MALFORMED_MSGS,
            Ctr::MalformedBlocks => ictl::MALFORMED_BLOCKS,
            Ctr::ConsumedMsgs => ictl::CONSUMED_MSGS,
        };
        self.map.u64_at(self.ctl + o)
    }
    fn len_word(&self, idx: u64) -> &AtomicI32 {
        assert!(idx < self.cap && idx.is_multiple_of(8));
        // SAFETY: idx is 8-aligned and inside the data area; length words are accessed atomically.
        unsafe { AtomicI32::from_ptr(self.data.add(idx as usize).cast()) }
    }
    fn data(&self) -> *mut u8 {
        self.data
    }
    fn zero(&self, idx: u64, len: u64) {
        assert!(idx + len <= self.cap);
        // SAFETY: in bounds; the consumer owns [head, tail) bytes it is releasing.
        unsafe { std::ptr::write_bytes(self.data.add(idx as usize), 0, len as usize) };
    }
}

/// Monotonic clock in nanoseconds (CLOCK_MONOTONIC), for the consumer's `now_ns`.
pub fn monotonic_ns() -> u64 {
    // SAFETY: timespec is plain data; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
