//! Keeps a driver's interrupt thread from unmapping memory that a worker is
//! still reading inside an RX or TX burst (a memif peer that leaves).
//!
//! # What DPDK 22.11's net_memif does when its peer leaves
//!
//! The peer's disconnect message, or the end of file on the control socket
//! when the peer dies, is handled on EAL's interrupt thread
//! (`memif_intr_handler` → `memif_disconnect`, drivers/net/memif/memif_socket.c),
//! in this order, with no synchronisation with the data path:
//!
//! 1. `dev_link.link_status = DOWN`, `pmd->flags &= ~ETH_MEMIF_FLAG_CONNECTED`;
//! 2. sends its own disconnect message, unregisters the control channel and
//!    closes the queues' interrupt eventfds;
//! 3. `memif_free_regions`: for every shared region, `munmap(r->addr)`, then
//!    `rte_free(r)` and `regions[i] = NULL`;
//! 4. `memset(&pmd->run, 0)`.
//!
//! The bursts (`eth_memif_rx`/`eth_memif_tx`, rte_eth_memif.c) test
//! `ETH_MEMIF_FLAG_CONNECTED` once, on entry, and then read the ring and the
//! packet buffers in those regions. A worker that passed the test just before
//! step 1 is still copying from the rings when step 3 unmaps them: SIGSEGV.
//! The driver raises no link-state event at all (it never calls
//! `rte_eth_dev_callback_process` and does not set `RTE_ETH_DEV_INTR_LSC`),
//! so an LSC callback never runs, let alone before the unmap; stopping the
//! port from the control lcore cannot come first either, since the peer
//! decides when to leave. The only point between "flag cleared" and "memory
//! gone" that the application can reach is the `munmap` call itself.
//!
//! # The mechanism
//!
//! The executable defines `munmap` and exports it (build.rs passes
//! `--export-dynamic-symbol=munmap`), so the driver plugins, loaded later by
//! EAL, bind their `munmap` calls to it. On every thread but EAL's interrupt
//! thread it is the plain system call. On the interrupt thread, once
//! [`guard_driver_unmaps`] has installed the workers' quiescent-state
//! variable, it first waits (`rte_rcu_qsbr_synchronize`) until every worker
//! has reported a quiescent state, which workers do once per poll round,
//! outside any burst. That variable is the one the rule tables are already
//! published through ([`RcuCell`]): the report workers make for the tables
//! serves the guard too, so the guard costs the data path nothing.
//! (QSBR allows several writers; the control lcore's reloads and this wait
//! do not disturb each other.) A worker that reports after step 1 has finished the
//! burst that might have seen the old flag, and its next burst sees the flag
//! cleared (QSBR's release/acquire on the token orders the two) and returns
//! at once; so when the wait ends no worker can be inside the rings, and the
//! unmap, the `rte_free` of the region descriptors after it and the reset of
//! the run state are safe. The wait lasts one poll round (microseconds); a
//! worker that has stopped went offline and is not waited for.
//!
//! Left as it is: between steps 2 and 3 an RX burst may `read()` an
//! interrupt eventfd that was just closed (EBADF, harmless; the driver only
//! reads it when the peer asked for interrupts).

use super::{RcuCell, sys};
use std::ffi::{c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The workers' quiescent-state variable while guarded; never freed once
/// installed (its cell keeps one leaked reference), so the hook cannot see
/// it dangle.
static GUARD: AtomicPtr<sys::rte_rcu_qsbr> = AtomicPtr::new(std::ptr::null_mut());

/// Whether the dynamic linker binds `munmap` to the hook below (it does in
/// the `tachyon` binary; it would not if the export were missing).
pub fn unmap_hook_active() -> bool {
    // SAFETY: dlsym with RTLD_DEFAULT only looks the name up in the global scope.
    let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"munmap".as_ptr()) };
    let hook: unsafe extern "C" fn(*mut c_void, usize) -> c_int = munmap;
    found as usize == hook as usize
}

/// Makes every `munmap` on EAL's interrupt thread wait until every reader
/// of `workers` (the cell whose readers the workers hold, reporting once
/// per poll round) has passed a quiescent state.
pub fn guard_driver_unmaps<T: Send + Sync + 'static>(workers: &Arc<RcuCell<T>>) {
    // Leaked so that the variable outlives any unmap; a previous guard (a
    // second run in one process) stays allocated too.
    let kept: &'static RcuCell<T> = Box::leak(Box::new(Arc::clone(workers)));
    GUARD.store(kept.qsbr_ptr(), Ordering::Release);
}

/// The process's `munmap`, see the module comment.
///
/// # Safety
/// As `munmap(2)`: the range must not be used after the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: usize) -> c_int {
    let guard = GUARD.load(Ordering::Acquire);
    // SAFETY: rte_thread_is_intr compares thread ids only (false before EAL starts).
    if !guard.is_null() && unsafe { sys::rte_thread_is_intr() } != 0 {
        // SAFETY: a stored variable is never freed (see GUARD);
        // RTE_QSBR_THRID_INVALID: the caller is no reader, wait for all.
        unsafe { sys::rte_rcu_qsbr_synchronize(guard, u32::MAX) };
    }
    // SAFETY: forwarded unchanged; the caller upholds munmap's contract.
    unsafe { munmap_syscall(addr, len) }
}

unsafe extern "C" fn munmap_syscall(addr: *mut c_void, len: usize) -> c_int {
    // SAFETY: the raw system call, exactly what libc's munmap does (errno set on failure).
    unsafe { libc::syscall(libc::SYS_munmap, addr, len) as c_int }
}
