//! The only place that talks to DPDK. Every `unsafe` block of the appliance
//! (apart from the shared-memory ring) lives under this module, behind safe
//! types: [`Eal`], [`Port`], [`Mempool`], [`Mbuf`], [`RxBurst`], [`TxBuffer`].

pub mod sys;

mod eal;
mod mbuf;
mod mempool;
mod port;

pub use eal::{Eal, EalError, LcoreId, launch_on_lcore, wait_all_lcores};
pub use mbuf::{FreeBatch, MAX_BURST, Mbuf, RxBurst, TxBuffer};
pub use mbuf::{TxOutcome, ip_checksum_flags};
pub use mempool::Mempool;
pub use port::{LinkStatus, Port, PortCaps, PortConfig, PortStats, RssSupport, RxQueue, TxQueue, format_mac};

/// Reads DPDK's per-thread `rte_errno` and renders it as text.
pub fn last_error() -> String {
    // SAFETY: both functions only read thread-local state and return a pointer
    // to a static string owned by DPDK.
    unsafe {
        let errno = sys::tachyon_errno();
        let msg = sys::rte_strerror(errno);
        if msg.is_null() {
            return format!("errno {errno}");
        }
        std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned()
    }
}

/// Renders a negative DPDK return code (`-errno`) as text.
pub fn error_text(code: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local string.
    unsafe {
        let msg = sys::rte_strerror(code.abs());
        if msg.is_null() {
            return format!("error {code}");
        }
        std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned()
    }
}

/// The time-stamp counter: cheap, monotonic on constant-TSC machines.
#[inline(always)]
pub fn tsc() -> u64 {
    // SAFETY: reads the CPU's time-stamp counter; no memory is touched.
    unsafe { sys::tachyon_rdtsc() }
}

/// TSC ticks per second, as calibrated by EAL (valid after [`Eal::init`]).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value EAL calibrated at init.
    unsafe { sys::rte_get_tsc_hz() }
}

/// The DPDK release string, e.g. "DPDK 22.11.11".
pub fn version() -> String {
    // rte_version() is static inline in the headers; the macro values are bound.
    format!("DPDK {}.{}.{}", sys::RTE_VER_YEAR, sys::RTE_VER_MONTH, sys::RTE_VER_MINOR)
}
