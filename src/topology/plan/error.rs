//! Why the planner refuses: the reason, and EAL arguments that would work.

use std::fmt;

use serde::Serialize;

use super::{EalSuggestion, IdleLcore, PortId, join};
use crate::topology::cpulist::format_cpu_list;
use crate::topology::eal_args::LcoreId;
use crate::topology::model::{CpuId, NodeId};

/// Why no acceptable plan exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RefusalReason {
    /// An lcore is mapped to a CPU the machine does not have.
    LcoreOnMissingCpu { lcore: LcoreId, cpu: CpuId, machine_cpus: Vec<CpuId> },
    /// `--workers 0`.
    ZeroWorkers,
    /// No enabled lcore can be a worker.
    NoWorkerLcore { idle: Vec<IdleLcore> },
    /// Fewer usable lcores than requested workers.
    NotEnoughWorkers {
        requested: usize,
        home_nodes: Vec<NodeId>,
        distinct_cores: usize,
        smt_siblings: usize,
        away_from_ports: usize,
        allow_smt: bool,
        allow_cross_node: bool,
    },
    /// A port's node has no worker and cross-node polling was not allowed.
    PortWithoutLocalWorker { port: PortId, name: String, numa_node: NodeId, worker_nodes: Vec<NodeId> },
    /// More ports than DPDK port ids.
    TooManyPorts { count: usize },
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalReason::LcoreOnMissingCpu { lcore, cpu, machine_cpus } => write!(
                f,
                "lcore {lcore} is mapped to CPU {cpu}, which this machine does not have \
                 (CPUs {}); fix -l/--lcores",
                format_cpu_list(machine_cpus)
            ),
            RefusalReason::ZeroWorkers => {
                write!(f, "--workers 0 leaves nothing to forward packets")
            }
            RefusalReason::NoWorkerLcore { idle } => {
                write!(f, "no enabled lcore can run a worker:")?;
                for lcore in idle {
                    write!(f, " lcore {} {};", lcore.lcore, lcore.reason)?;
                }
                write!(f, " enable lcores on other physical cores")
            }
            RefusalReason::NotEnoughWorkers {
                requested,
                home_nodes,
                distinct_cores,
                smt_siblings,
                away_from_ports,
                allow_smt,
                allow_cross_node,
            } => {
                write!(
                    f,
                    "{requested} workers requested, but the enabled lcores give only \
                     {distinct_cores} on distinct physical cores of node(s) {}",
                    join(home_nodes)
                )?;
                if *smt_siblings > 0 && !allow_smt {
                    write!(
                        f,
                        "; {smt_siblings} more sit on SMT siblings of those cores \
                         (--allow-smt would use them, at a cost to determinism)"
                    )?;
                }
                if *away_from_ports > 0 && !allow_cross_node {
                    write!(
                        f,
                        "; {away_from_ports} more are on nodes without a port \
                         (--allow-cross-node would use them)"
                    )?;
                }
                write!(f, "; enable more lcores on distinct cores or ask for fewer workers")
            }
            RefusalReason::PortWithoutLocalWorker { port, name, numa_node, worker_nodes } => write!(
                f,
                "port {port} ({name}) is on node {numa_node} but the workers are on node(s) {}; \
                 enable lcores on node {numa_node}, or pass --allow-cross-node to poll it from afar",
                join(worker_nodes)
            ),
            RefusalReason::TooManyPorts { count } => {
                write!(f, "{count} ports exceed DPDK's port id range")
            }
        }
    }
}

/// A refusal, with EAL arguments that would work when there are some.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanError {
    pub reason: RefusalReason,
    pub suggested_eal: Option<EalSuggestion>,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "placement refused: {}", self.reason)?;
        if let Some(suggestion) = &self.suggested_eal {
            write!(f, "\nsuggested EAL arguments: {suggestion}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanError {}
