//! Tachyon: a DPDK data plane that governs a message bus at the packet level.
pub mod dpdk;
pub mod reason;
