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
//! - [`report`]: the final report and `--stats-json`;
//! - [`log`]: output that never blocks or kills the control lcore;
//! - [`signals`]: the process's signal handlers, installed first.

pub mod control_loop;
pub mod governance;
pub mod log;
pub mod metrics;
pub mod report;
pub mod signals;
pub mod telemetry;
pub mod workers;

pub use control_loop::ControlLoop;
pub use workers::{WorkerView, total};
