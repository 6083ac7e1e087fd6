//! Read-copy-update publication on DPDK's quiescent-state RCU (`rte_rcu_qsbr`).
//!
//! The control side builds a new value off the hot path and [`RcuCell::publish`]es
//! it with one pointer swap; workers pick it up at their next burst without
//! blocking. An old value is freed by [`RcuCell::reclaim`] only after every
//! registered reader has reported a quiescent state since the swap, so no
//! reader can still hold it.

use super::{Eal, RcuError, sys};
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};

/// A value shared read-mostly between the control lcore (the only writer)
/// and `readers` worker lcores.
pub struct RcuCell<T: Send + Sync> {
    qsbr: NonNull<sys::rte_rcu_qsbr>,
    current: AtomicPtr<T>,
    /// Values swapped out, with the RCU token to wait for before freeing them.
    retired: Mutex<Vec<(u64, Box<T>)>>,
    max_readers: u32,
}

// SAFETY: the QSBR variable is designed for concurrent use by registered
// threads; the current pointer is atomic; retired values sit behind a Mutex
// used by the control side only. T itself is Send + Sync.
unsafe impl<T: Send + Sync> Send for RcuCell<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for RcuCell<T> {}

impl<T: Send + Sync> RcuCell<T> {
    /// Creates the cell holding `initial`, for up to `max_readers` readers.
    pub fn new(_eal: &Eal, initial: T, max_readers: u32) -> Result<Arc<Self>, RcuError> {
        // SAFETY: plain size computation.
        let size = unsafe { sys::rte_rcu_qsbr_get_memsize(max_readers) };
        let name = CString::new("tachyon_rcu").unwrap();
        // SAFETY: EAL is initialised; the memory is zeroed and cache-line aligned.
        let raw = unsafe { sys::rte_zmalloc(name.as_ptr(), size, sys::RTE_CACHE_LINE_SIZE) };
        let qsbr = NonNull::new(raw as *mut sys::rte_rcu_qsbr).ok_or(RcuError::Alloc { size })?;
        // SAFETY: qsbr points at `size` zeroed bytes, as rte_rcu_qsbr_init requires.
        let rc = unsafe { sys::rte_rcu_qsbr_init(qsbr.as_ptr(), max_readers) };
        if rc != 0 {
            // SAFETY: allocated above, not shared yet.
            unsafe { sys::rte_free(raw) };
            return Err(RcuError::Init(super::last_error()));
        }
        Ok(Arc::new(RcuCell {
            qsbr,
            current: AtomicPtr::new(Box::into_raw(Box::new(initial))),
            retired: Mutex::new(Vec::new()),
            max_readers,
        }))
    }

    /// Registers reader `id` (0-based, below `max_readers`) and puts it online.
    pub fn reader(self: &Arc<Self>, id: u32) -> Result<RcuReader<T>, RcuError> {
        if id >= self.max_readers {
            return Err(RcuError::ReaderOutOfRange { id, max: self.max_readers });
        }
        // SAFETY: id is in range; registration and going online only touch
        // this thread id's slot in the QSBR variable.
        unsafe {
            if sys::rte_rcu_qsbr_thread_register(self.qsbr.as_ptr(), id) != 0 {
                return Err(RcuError::Register { id, reason: super::last_error() });
            }
            sys::tachyon_rcu_online(self.qsbr.as_ptr(), id);
        }
        Ok(RcuReader { cell: self.clone(), id })
    }

    /// Publishes `new`; the previous value is retired until it is safe to free.
    /// Control side only.
    pub fn publish(&self, new: T) {
        let old = self.current.swap(Box::into_raw(Box::new(new)), Ordering::AcqRel);
        // SAFETY: the QSBR variable is valid; start only bumps its token.
        let token = unsafe { sys::tachyon_rcu_start(self.qsbr.as_ptr()) };
        // SAFETY: `old` came from Box::into_raw and is no longer reachable
        // through `current`; readers may still use it until the token passes.
        let old = unsafe { Box::from_raw(old) };
        self.retired.lock().unwrap().push((token, old));
    }

    /// Frees retired values every reader has moved past. Never blocks.
    /// Returns how many are still waiting.
    pub fn reclaim(&self) -> usize {
        let mut retired = self.retired.lock().unwrap();
        // SAFETY: non-blocking check of the token against every reader's counter.
        retired.retain(|(token, _)| unsafe { sys::tachyon_rcu_check(self.qsbr.as_ptr(), *token, 0) } == 0);
        retired.len()
    }

    /// The quiescent-state variable, for [`super::unmap_guard`] (which keeps
    /// the cell alive for as long as it uses it).
    pub(super) fn qsbr_ptr(&self) -> *mut sys::rte_rcu_qsbr {
        self.qsbr.as_ptr()
    }

    /// The current value, for the control side (the only writer, so it cannot
    /// be freed while this borrow lives: `publish` and `reclaim` run on the
    /// same thread).
    pub fn with_current<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: only the control side publishes or reclaims, and it is the
        // caller; the current pointer is never freed while it is current.
        f(unsafe { &*self.current.load(Ordering::Acquire) })
    }
}

impl<T: Send + Sync> Drop for RcuCell<T> {
    fn drop(&mut self) {
        // Every reader holds an Arc, so no reader exists any more.
        // SAFETY: current came from Box::into_raw and nobody else can reach it.
        drop(unsafe { Box::from_raw(self.current.load(Ordering::Acquire)) });
        self.retired.lock().unwrap().clear();
        // SAFETY: allocated with rte_zmalloc in new(); no reader is registered.
        unsafe { sys::rte_free(self.qsbr.as_ptr() as *mut _) };
    }
}

/// One worker's handle: read the current value during a burst, then report a
/// quiescent state. The borrow checker enforces the protocol: the reference
/// from [`RcuReader::read`] borrows the reader, and
/// [`RcuReader::quiescent`] needs it back.
pub struct RcuReader<T: Send + Sync> {
    cell: Arc<RcuCell<T>>,
    id: u32,
}

impl<T: Send + Sync> RcuReader<T> {
    /// The current value; valid until the next `quiescent`.
    #[inline(always)]
    pub fn read(&mut self) -> &T {
        // SAFETY: the pointed-to value is freed only after this reader calls
        // quiescent() following the swap, which needs `&mut self` and so
        // cannot happen while the returned reference is alive.
        unsafe { &*self.cell.current.load(Ordering::Acquire) }
    }

    /// Reports that this reader holds no reference into the cell.
    #[inline(always)]
    pub fn quiescent(&mut self) {
        // SAFETY: id is registered and online; the store goes to this
        // reader's own cache line of the QSBR variable.
        unsafe { sys::tachyon_rcu_quiescent(self.cell.qsbr.as_ptr(), self.id) }
    }
}

impl<T: Send + Sync> Drop for RcuReader<T> {
    fn drop(&mut self) {
        // SAFETY: id was registered in reader(); going offline and
        // unregistering stop the writer from waiting for this reader.
        unsafe {
            sys::tachyon_rcu_offline(self.cell.qsbr.as_ptr(), self.id);
            sys::rte_rcu_qsbr_thread_unregister(self.cell.qsbr.as_ptr(), self.id);
        }
    }
}
