//! Packet-buffer pools, one per NUMA socket in use.

use super::{Eal, MempoolError, sys};
use std::ffi::CString;
use std::ptr::NonNull;

/// Data bytes of each mbuf (after the headroom): DPDK's default, 2 KiB. A
/// frame longer than this arrives as a chain rather than every mbuf being
/// jumbo-sized (9 KiB each would quadruple the pools' memory for frames that
/// are mostly small).
pub const MBUF_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_DATAROOM as u16;

/// An `rte_pktmbuf` pool. DPDK's mempool is thread-safe (per-lcore caches plus
/// a lock-free ring), so the handle is `Send + Sync`.
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
    size: u32,
    socket: i32,
}

// SAFETY: rte_mempool operations used here are thread-safe by DPDK's design.
unsafe impl Send for Mempool {}
// SAFETY: as above; the counters read here are atomic or per-lcore.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `size` mbufs with default data room on `socket`.
    pub fn create(_eal: &Eal, name: &str, size: u32, cache: u32, socket: i32) -> Result<Mempool, MempoolError> {
        let cname = CString::new(name).map_err(|_| MempoolError::NameNul(name.to_string()))?;
        // SAFETY: EAL is initialised; the name is a valid C string copied by DPDK.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(cname.as_ptr(), size, cache, 0, sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16, socket)
        };
        match NonNull::new(raw) {
            Some(raw) => Ok(Mempool { raw, size, socket }),
            None => Err(MempoolError::Create { name: name.to_string(), size, socket, reason: super::last_error() }),
        }
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }

    /// Mbufs handed out (in queues, bursts, or leaked), including none in caches.
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid; the count is a racy but safe read.
        unsafe { sys::tachyon_mempool_in_use(self.raw.as_ptr()) }
    }

    /// Mbufs available (in the pool's ring and the per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: as in in_use().
        unsafe { sys::tachyon_mempool_avail(self.raw.as_ptr()) }
    }

    /// Data bytes each mbuf of the pool holds.
    pub fn data_room(&self) -> u16 {
        MBUF_DATA_ROOM
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    pub fn socket(&self) -> i32 {
        self.socket
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: dropped after every port using it is closed (owner order in main).
        unsafe { sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
