//! The placement plan: which lcore becomes a worker, which port queues it polls,
//! and where mempools live. A pure function of topology, ports, EAL lcores and
//! the request, so every rule below is tested without hardware.
//!
//! Rules, in order of precedence:
//! - one worker per physical core; a second worker on an SMT sibling only with `allow_smt`;
//! - never a worker on the control (main) lcore's core;
//! - workers come from the nodes the ports sit on ("home nodes"); a worker elsewhere
//!   would poll across the interconnect, so it needs `allow_cross_node`;
//! - a port's queues are served by the workers on the port's node; a port on a node
//!   without workers is refused unless `allow_cross_node`, and then named;
//! - a port whose node is unknown is served by every worker;
//! - one mempool per node that has workers; a worker's RX queues draw from its node's pool.
//!
//! This file holds the plan's types and queries; `build.rs` the planner
//! ([`plan`]), `error.rs` the refusals, `tests.rs` the rules' tests; the
//! text and JSON rendering is [`super::report`].

use std::fmt;

use serde::Serialize;

use super::cpulist::format_cpu_list;
use super::eal_args::LcoreId;
use super::model::{CpuId, NodeId};

mod build;
mod error;
#[cfg(test)]
mod tests;

pub use build::plan;
pub use error::{PlanError, RefusalReason};

/// A DPDK port id: the port's index in the slice given to [`plan`].
pub type PortId = u16;
/// An RX/TX queue index on one port; worker-served RX queue q pairs with TX queue q.
pub type QueueId = u16;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanRequest {
    /// How many workers; `None` uses every enabled lcore the rules allow.
    pub workers: Option<u16>,
    /// Allow two workers on SMT siblings of one core (warned about loudly).
    pub allow_smt: bool,
    /// Allow a worker to poll a port on another NUMA node (named in the report).
    pub allow_cross_node: bool,
}

/// The control (EAL main) lcore and the cores it occupies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlPlacement {
    pub lcore: LcoreId,
    pub cpus: Vec<CpuId>,
    /// Cores kept free of workers because the control lcore may run there.
    pub cores: Vec<u32>,
    pub numa_nodes: Vec<NodeId>,
}

/// One worker lcore, where it runs and what it polls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerPlacement {
    pub lcore: LcoreId,
    pub cpu: CpuId,
    pub core: u32,
    pub numa_node: NodeId,
    pub package: u32,
    pub l3: Option<u32>,
    /// Other workers on the same physical core; non-empty only with `allow_smt`.
    pub shares_core_with: Vec<LcoreId>,
    /// (port, queue) pairs this worker polls: RX queue q and TX queue q of that port.
    pub queues: Vec<(PortId, QueueId)>,
}

/// One (worker, port, queue) assignment, flattened for checks and wiring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueAssignment {
    pub lcore: LcoreId,
    pub port: PortId,
    pub queue: QueueId,
    pub worker_node: NodeId,
    /// The port's node when known and present on this machine.
    pub port_node: Option<NodeId>,
    /// The worker polls a NIC on another node (only with `allow_cross_node`).
    pub cross_node: bool,
}

/// How many queues a port gets and from which nodes they are polled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortQueues {
    pub port: PortId,
    pub name: String,
    /// The node used for planning; `None` means "any node".
    pub numa_node: Option<NodeId>,
    /// The node the port reported, when the machine has no such node.
    pub reported_missing_node: Option<NodeId>,
    /// RX and TX queue count for this port.
    pub queues: QueueId,
    /// Worker lcores by queue index.
    pub workers: Vec<LcoreId>,
}

/// One mempool (and the per-worker arenas) on a node with workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MempoolPlacement {
    pub numa_node: NodeId,
    pub workers: Vec<LcoreId>,
    /// RX queues whose mbufs come from this pool.
    pub rx_queues: Vec<(PortId, QueueId)>,
}

/// Why an enabled lcore gets no work; DPDK still starts it, so it should be dropped from `-l`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum IdleReason {
    /// It runs on the control lcore's core.
    SharesControlCore { control_lcore: LcoreId },
    /// Its thread may run on several CPUs, so it has no fixed core.
    FloatsOverCpus,
    /// Another lcore is mapped to the very same CPU.
    SharesCpu { with_lcore: LcoreId },
    /// It is an SMT sibling of a core that already has (or could have) a worker.
    SmtSibling { core: u32 },
    /// Its node has no port, so its worker would poll across nodes.
    AwayFromPorts { numa_node: NodeId },
    /// Enough workers were placed before it.
    NotNeeded { workers: usize },
}

impl fmt::Display for IdleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdleReason::SharesControlCore { control_lcore } => {
                write!(f, "on the core of control lcore {control_lcore}")
            }
            IdleReason::FloatsOverCpus => write!(f, "floats over several CPUs; a worker needs one"),
            IdleReason::SharesCpu { with_lcore } => {
                write!(f, "on the same CPU as lcore {with_lcore}")
            }
            IdleReason::SmtSibling { core } => {
                write!(f, "another hardware thread of core {core}; one worker per core (--allow-smt would use it)")
            }
            IdleReason::AwayFromPorts { numa_node } => {
                write!(f, "on node {numa_node}, which has no port (--allow-cross-node would use it)")
            }
            IdleReason::NotNeeded { workers } => write!(f, "not needed for {workers} workers"),
        }
    }
}

impl IdleReason {
    /// The reason without per-lcore detail, so a report can list many lcores on one line.
    pub fn group_label(&self) -> String {
        match self {
            IdleReason::SharesControlCore { control_lcore } => {
                format!("on the core of control lcore {control_lcore}")
            }
            IdleReason::FloatsOverCpus => "float over several CPUs; a worker needs one".into(),
            IdleReason::SharesCpu { .. } => "share a CPU with another lcore".into(),
            IdleReason::SmtSibling { .. } => "SMT siblings of lcores on the same cores; one worker per core \
                 (--allow-smt would use them)"
                .into(),
            IdleReason::AwayFromPorts { .. } => "on nodes without a port (--allow-cross-node would use them)".into(),
            IdleReason::NotNeeded { workers } => format!("not needed for {workers} workers"),
        }
    }
}

/// An enabled lcore that gets no work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdleLcore {
    pub lcore: LcoreId,
    pub cpus: Vec<CpuId>,
    pub reason: IdleReason,
}

/// Something in the plan that costs determinism or throughput.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PlanWarning {
    /// Workers share a physical core (allowed by `allow_smt`).
    SmtSharedCore { core: u32, lcores: Vec<LcoreId> },
    /// A worker polls a NIC on another node (allowed by `allow_cross_node`).
    CrossNode { lcore: LcoreId, worker_node: NodeId, port: PortId, port_node: NodeId, queue: QueueId },
    /// The port's node is unknown; every worker serves it.
    PortNodeUnknown { port: PortId, name: String },
    /// The port reported a node this machine does not have; treated as unknown.
    PortNodeMissing { port: PortId, name: String, numa_node: NodeId },
    /// No `-l`/`-c`/`--lcores`: EAL starts an lcore on every CPU.
    DefaultLcores,
    /// The control lcore may run on several CPUs.
    ControlFloats { lcore: LcoreId, cpus: Vec<CpuId> },
    /// No ports were given, so no queues are assigned.
    NoPorts,
}

impl fmt::Display for PlanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanWarning::SmtSharedCore { core, lcores } => write!(
                f,
                "SMT: workers {} share physical core {core}; each gets roughly half a core and \
                 their latencies disturb each other (allowed by --allow-smt)",
                join(lcores)
            ),
            PlanWarning::CrossNode { lcore, worker_node, port, port_node, queue } => write!(
                f,
                "cross-node: worker lcore {lcore} on node {worker_node} polls port {port} queue {queue} \
                 on node {port_node} (allowed by --allow-cross-node)"
            ),
            PlanWarning::PortNodeUnknown { port, name } => {
                write!(f, "port {port} ({name}): NUMA node unknown, treated as any node; every worker serves it")
            }
            PlanWarning::PortNodeMissing { port, name, numa_node } => write!(
                f,
                "port {port} ({name}) reports node {numa_node}, which this machine lacks; \
                 treated as any node"
            ),
            PlanWarning::DefaultLcores => {
                write!(f, "no -l/-c/--lcores given: EAL starts an lcore on every CPU, SMT siblings included")
            }
            PlanWarning::ControlFloats { lcore, cpus } => {
                write!(f, "control lcore {lcore} floats over CPUs {}; pin it to one CPU", format_cpu_list(cpus))
            }
            PlanWarning::NoPorts => write!(f, "no ports given: no queues assigned"),
        }
    }
}

/// EAL lcore arguments that would give a clean plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EalSuggestion {
    /// Ready to paste, e.g. `["-l", "0,2-16", "--main-lcore", "0"]`.
    pub args: Vec<String>,
    pub workers: usize,
}

impl fmt::Display for EalSuggestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} workers)", self.args.join(" "), self.workers)
    }
}

/// The placement plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub request: PlanRequest,
    pub control: ControlPlacement,
    /// Grouped by node, then by core.
    pub workers: Vec<WorkerPlacement>,
    pub ports: Vec<PortQueues>,
    pub assignments: Vec<QueueAssignment>,
    pub mempools: Vec<MempoolPlacement>,
    pub idle_lcores: Vec<IdleLcore>,
    pub warnings: Vec<PlanWarning>,
    /// CPUs for threads that are not workers (metrics, control helpers): no worker's core.
    pub helper_cpus: Vec<CpuId>,
    /// Better EAL lcore arguments, when the given ones are poor.
    pub suggested_eal: Option<EalSuggestion>,
}

impl Plan {
    /// RX (and TX) queues to configure on `port`; 0 for a port the plan does not know.
    pub fn queues_per_port(&self, port: PortId) -> QueueId {
        self.ports.get(usize::from(port)).map_or(0, |port| port.queues)
    }

    /// The (port, queue) pairs worker `lcore` polls; empty for a non-worker.
    pub fn assignments_for_worker(&self, lcore: LcoreId) -> &[(PortId, QueueId)] {
        self.workers.iter().find(|worker| worker.lcore == lcore).map_or(&[], |worker| worker.queues.as_slice())
    }

    /// Worker lcores in plan order.
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        self.workers.iter().map(|worker| worker.lcore).collect()
    }

    /// CPUs for threads that are not workers (metrics server, control helpers).
    pub fn non_worker_cpus(&self) -> &[CpuId] {
        &self.helper_cpus
    }

    /// The node whose mempool and arena worker `lcore` uses.
    pub fn memory_node_for_worker(&self, lcore: LcoreId) -> Option<NodeId> {
        self.workers.iter().find(|worker| worker.lcore == lcore).map(|worker| worker.numa_node)
    }
}

/// `a,b,c`, for the messages.
fn join<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}
