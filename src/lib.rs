//! Tachyon: a DPDK data plane that governs a message bus at the packet level.
//!
//! Module map: `dpdk` (the only FFI), `wire` (zero-copy header views),
//! `classify` (one PROTOCOL.md reason per dropped packet), `reason`,
//! `metrics` (Prometheus `/metrics`) and `telemetry` (DPDK telemetry commands).
pub mod app;
pub mod classify;
pub mod cli;
pub mod config;
pub mod control;
pub mod dpdk;
pub mod governance;
pub mod governor;
pub mod metrics;
pub mod reason;
pub mod report;
pub mod stats;
pub mod telemetry;
pub mod topology;
pub mod traffic;
pub mod wire;
pub mod worker;
