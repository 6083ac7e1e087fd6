//! The control side's view of the workers: which lcore each runs on and the
//! counter block it publishes. Metrics, telemetry, the live line and the final
//! report all read workers through this, never through the workers themselves.

use crate::dataplane::counters::{PublishedCounters, Snapshot};
use std::sync::Arc;

/// What the control side knows of a worker.
#[derive(Clone)]
pub struct WorkerView {
    pub index: usize,
    pub lcore: u32,
    pub socket: u32,
    pub counters: Arc<PublishedCounters>,
}

/// Sums the workers' published counters.
pub fn total(workers: &[WorkerView]) -> Snapshot {
    workers.iter().fold(Snapshot::default(), |acc, w| acc.plus(&w.counters.snapshot()))
}
