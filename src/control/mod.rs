//! The control plane: everything that runs on EAL's main (control) lcore and
//! its helper threads, and never touches a packet.
//!
//! - [`control_loop`]: the loop that ticks governance, watches links, prints
//!   the live line and decides when to stop;
//! - [`governance`]: the control side of governance (reconciliation, reloads,
//!   RCU publication of new tables);
//! - [`workers`]: the control side's read-only view of each worker;
//! - [`metrics`]: Prometheus `/metrics`, computed at scrape time;
//! - [`telemetry`]: the `/tachyon/*` DPDK telemetry commands;
//! - [`report`]: the final report and `--stats-json`.

pub mod control_loop;
pub mod governance;
pub mod metrics;
pub mod report;
pub mod telemetry;
pub mod workers;

pub use control_loop::ControlLoop;
pub use workers::{WorkerView, total};
