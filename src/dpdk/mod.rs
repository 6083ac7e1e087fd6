//! The only place that talks to DPDK. Every `unsafe` block of the appliance
//! lives under this module (the crate root denies `unsafe_code` everywhere
//! else), behind safe types: [`Eal`], [`Port`], [`Mempool`], [`Mbuf`],
//! [`RxBurst`], [`TxBuffer`], [`RcuCell`], and the telemetry commands.

pub mod sys;

mod eal;
mod error;
mod log;
mod mbuf;
mod memory;
mod mempool;
mod port;
mod rcu;
mod telemetry;
mod unmap_guard;

pub use eal::{Eal, LcoreId, launch_on_lcore, wait_all_lcores};
pub use error::{EalError, MempoolError, PortError, RcuError, TelemetryError};
pub use log::route_log;
pub use mbuf::{Drain, PacketRef, Segments, TxOutcome, ip_checksum_flags};
pub use mbuf::{FreeBatch, MAX_BURST, Mbuf, RxBurst, TxBuffer};
pub use memory::HugeArray;
pub use mempool::{MBUF_DATA_ROOM, Mempool};
pub use port::{
    LinkStatus, MtuSetup, Port, PortCaps, PortConfig, PortReader, PortStats, RssSupport, RxQueue, TxQueue, format_mac,
    max_frame_len,
};
pub use rcu::{RcuCell, RcuReader};
pub use telemetry::{TelemetryReply, TelemetryValue, register_telemetry_command};
pub use unmap_guard::{guard_driver_unmaps, unmap_hook_active};

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
/// Inlined (not DPDK's rte_rdtsc through the shim) because it runs per burst.
#[inline(always)]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC only reads the CPU's time-stamp counter; no memory is touched.
    unsafe {
        std::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: reads the CPU's cycle counter through DPDK; no memory is touched.
    unsafe {
        sys::tachyon_rdtsc()
    }
}

/// Hints the CPU to pull the cache line at `p` into all cache levels.
#[inline(always)]
pub(crate) fn prefetch0(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: rte_prefetch0 is a hint and never faults.
    unsafe {
        sys::tachyon_prefetch0(p as *const _)
    }
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
