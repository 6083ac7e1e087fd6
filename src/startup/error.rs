//! Why start-up, the run or shutdown stopped: one line a person can act on,
//! printed by `main` as `tachyon: error: {e}`.

use crate::dpdk::{EalError, MempoolError, PortError, RcuError};
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StartupError {
    /// The config file or a value in it (the text names the key and file).
    #[error("{0}")]
    Config(String),
    /// `--plan` could not plan (the text says why).
    #[error(transparent)]
    Plan(#[from] crate::topology::PlacementError),
    #[error("--plan-port: {0}")]
    PlanPort(String),
    #[error("--stats-json {}: cannot write: {reason}", path.display())]
    StatsJsonUnwritable { path: PathBuf, reason: String },
    #[error("--stats-json {}: {reason}", path.display())]
    StatsJsonWrite { path: PathBuf, reason: String },
    #[error(
        "no free hugepages: reserve some (as root: echo 512 > /proc/sys/vm/nr_hugepages, \
         or dpdk-hugepages.py --setup 1G) or pass --no-huge -m 512 among the EAL arguments"
    )]
    NoHugepages,
    #[error("--metrics: {0}")]
    MetricsFlag(String),
    #[error("metrics.listen: {0}")]
    MetricsListen(String),
    /// Binding the metrics socket or starting its server thread.
    #[error(transparent)]
    Metrics(#[from] crate::control::metrics::MetricsError),
    #[error("metrics: the thread starting the server panicked")]
    MetricsStarterPanicked,
    #[error("{source}{hint}")]
    Eal { source: EalError, hint: &'static str },
    #[error("port ids above {max} are not supported")]
    PortIdTooLarge { max: usize },
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("workers.lcores: lcore {0} is EAL's main lcore, which runs the control loop")]
    WorkerIsMainLcore(u32),
    #[error(
        "workers.lcores: lcore {lcore} is not enabled in EAL (enabled workers: {enabled:?}); add it to -l/--lcores"
    )]
    WorkerLcoreNotEnabled { lcore: u32, enabled: Vec<u32> },
    #[error("placement: {0}")]
    Placement(String),
    #[error("no worker lcores: EAL enabled only the main lcore {main}; pass at least two, e.g. -l 0-1")]
    NoWorkerLcores { main: u32 },
    #[error(transparent)]
    Mempool(#[from] MempoolError),
    /// Creating the bridge region or a worker's stage (the text names the path or key).
    #[error("{0}")]
    Bridge(String),
    #[error("governance: {0}")]
    Governance(String),
    /// Setting up reloads (e.g. the SIGHUP handler).
    #[error("{0}")]
    GovernanceControl(String),
    #[error(transparent)]
    Rcu(#[from] RcuError),
    #[error("cannot install the {signal} handler: {reason}")]
    Signal { signal: &'static str, reason: String },
    #[error("internal: RX queue {queue} of port position {port} assigned twice")]
    QueueAssignedTwice { port: usize, queue: u16 },
    #[error(transparent)]
    Launch(EalError),
    /// A failure injected by the tests through `TACHYON_TEST_FAIL_AT`.
    #[error("failure injected at {0} (TACHYON_TEST_FAIL_AT, for tests only)")]
    Injected(&'static str),
}
