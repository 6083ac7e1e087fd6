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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde::Serialize;

use super::cpulist::format_cpu_list;
use super::eal_args::{LcoreId, LcoreLayout};
use super::model::{Core, CpuId, NodeId, Topology};
use super::ports::PortPlacement;

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

fn join<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// Builds the placement plan, or refuses with a reason a person can act on.
pub fn plan(
    topo: &Topology,
    ports: &[PortPlacement],
    layout: &LcoreLayout,
    req: &PlanRequest,
) -> Result<Plan, PlanError> {
    match plan_for_layout(topo, ports, layout, req) {
        Ok(mut plan) => {
            if given_lcores_are_poor(&plan, layout) {
                plan.suggested_eal = suggest_eal(topo, ports, layout, req);
            }
            Ok(plan)
        }
        Err(reason) => Err(PlanError { suggested_eal: suggest_eal(topo, ports, layout, req), reason }),
    }
}

/// Whether an operator should change the lcore arguments even though a plan exists.
fn given_lcores_are_poor(plan: &Plan, layout: &LcoreLayout) -> bool {
    !layout.explicit
        || !plan.idle_lcores.is_empty()
        || plan.assignments.iter().any(|a| a.cross_node)
        || plan.workers.iter().any(|w| !w.shares_core_with.is_empty())
        || plan.control.cpus.len() > 1
}

/// An enabled lcore that could run a worker.
#[derive(Debug, Clone, Copy)]
struct Candidate<'topo> {
    lcore: LcoreId,
    cpu: CpuId,
    core: &'topo Core,
}

/// Candidates in the order they are preferred; later tiers need a permission.
#[derive(Default)]
struct Tiers<'topo> {
    home_cores: BTreeMap<NodeId, VecDeque<Candidate<'topo>>>,
    home_siblings: BTreeMap<NodeId, VecDeque<Candidate<'topo>>>,
    away_cores: BTreeMap<NodeId, VecDeque<Candidate<'topo>>>,
    away_siblings: BTreeMap<NodeId, VecDeque<Candidate<'topo>>>,
}

fn tier_len(tier: &BTreeMap<NodeId, VecDeque<Candidate<'_>>>) -> usize {
    tier.values().map(VecDeque::len).sum()
}

/// Takes candidates node by node in turn, so a request for 4 workers on two port nodes gets 2 + 2.
fn take_round_robin<'topo>(
    tier: &mut BTreeMap<NodeId, VecDeque<Candidate<'topo>>>,
    chosen: &mut Vec<Candidate<'topo>>,
    target: usize,
) {
    while chosen.len() < target {
        let mut took_any = false;
        for queue in tier.values_mut() {
            if chosen.len() >= target {
                break;
            }
            if let Some(candidate) = queue.pop_front() {
                chosen.push(candidate);
                took_any = true;
            }
        }
        if !took_any {
            break;
        }
    }
}

/// The planner proper, for a given lcore layout; [`plan`] adds the EAL suggestion.
fn plan_for_layout(
    topo: &Topology,
    ports: &[PortPlacement],
    layout: &LcoreLayout,
    req: &PlanRequest,
) -> Result<Plan, RefusalReason> {
    if PortId::try_from(ports.len()).is_err() {
        return Err(RefusalReason::TooManyPorts { count: ports.len() });
    }
    if req.workers == Some(0) {
        return Err(RefusalReason::ZeroWorkers);
    }
    for (&lcore, cpus) in &layout.lcores {
        if let Some(&cpu) = cpus.iter().find(|&&cpu| topo.core_of_cpu(cpu).is_none()) {
            return Err(RefusalReason::LcoreOnMissingCpu { lcore, cpu, machine_cpus: topo.all_cpus() });
        }
    }
    let mut warnings = Vec::new();
    if !layout.explicit {
        warnings.push(PlanWarning::DefaultLcores);
    }

    let control = control_placement(topo, layout);
    if control.cpus.len() > 1 {
        warnings.push(PlanWarning::ControlFloats { lcore: control.lcore, cpus: control.cpus.clone() });
    }

    // Ports: the node used for planning, or None for "any node".
    let mut port_nodes: Vec<Option<NodeId>> = Vec::with_capacity(ports.len());
    for (index, port) in ports.iter().enumerate() {
        let port_id = index as PortId;
        let node = match port.numa_node {
            Some(node) if topo.has_node(node) => Some(node),
            Some(node) => {
                warnings.push(PlanWarning::PortNodeMissing { port: port_id, name: port.name.clone(), numa_node: node });
                None
            }
            None => {
                warnings.push(PlanWarning::PortNodeUnknown { port: port_id, name: port.name.clone() });
                None
            }
        };
        port_nodes.push(node);
    }
    if ports.is_empty() {
        warnings.push(PlanWarning::NoPorts);
    }
    let known_port_nodes: BTreeSet<NodeId> = port_nodes.iter().flatten().copied().collect();
    let home_nodes: BTreeSet<NodeId> =
        if known_port_nodes.is_empty() { topo.numa_nodes.iter().copied().collect() } else { known_port_nodes };

    let (mut tiers, mut idle_lcores) = classify_lcores(topo, layout, &control, &home_nodes);
    let allowed_total = tier_len(&tiers.home_cores)
        + if req.allow_smt { tier_len(&tiers.home_siblings) } else { 0 }
        + if req.allow_cross_node { tier_len(&tiers.away_cores) } else { 0 }
        + if req.allow_smt && req.allow_cross_node { tier_len(&tiers.away_siblings) } else { 0 };
    let target = req.workers.map_or(allowed_total, usize::from);
    if target == 0 {
        idle_lcores.extend(leftover_idle(&tiers, req, 0));
        idle_lcores.sort_by_key(|idle| idle.lcore);
        return Err(RefusalReason::NoWorkerLcore { idle: idle_lcores });
    }

    let mut chosen = Vec::new();
    take_round_robin(&mut tiers.home_cores, &mut chosen, target);
    if req.allow_smt {
        take_round_robin(&mut tiers.home_siblings, &mut chosen, target);
    }
    if req.allow_cross_node {
        take_round_robin(&mut tiers.away_cores, &mut chosen, target);
        if req.allow_smt {
            take_round_robin(&mut tiers.away_siblings, &mut chosen, target);
        }
    }
    if chosen.len() < target {
        let distinct_cores = chosen
            .iter()
            .filter(|c| home_nodes.contains(&c.core.numa_node))
            .map(|c| c.core.id)
            .collect::<BTreeSet<_>>()
            .len()
            + tier_len(&tiers.home_cores);
        return Err(RefusalReason::NotEnoughWorkers {
            requested: target,
            home_nodes: home_nodes.iter().copied().collect(),
            distinct_cores,
            smt_siblings: tier_len(&tiers.home_siblings) + tier_len(&tiers.away_siblings),
            away_from_ports: tier_len(&tiers.away_cores),
            allow_smt: req.allow_smt,
            allow_cross_node: req.allow_cross_node,
        });
    }
    idle_lcores.extend(leftover_idle(&tiers, req, target));
    idle_lcores.sort_by_key(|idle| idle.lcore);

    chosen.sort_by_key(|c| (c.core.numa_node, c.core.id, c.cpu, c.lcore));
    let mut workers: Vec<WorkerPlacement> = chosen
        .iter()
        .map(|c| WorkerPlacement {
            lcore: c.lcore,
            cpu: c.cpu,
            core: c.core.id,
            numa_node: c.core.numa_node,
            package: c.core.package,
            l3: c.core.l3,
            shares_core_with: chosen
                .iter()
                .filter(|other| other.core.id == c.core.id && other.lcore != c.lcore)
                .map(|other| other.lcore)
                .collect(),
            queues: Vec::new(),
        })
        .collect();
    let mut shared_cores: BTreeMap<u32, Vec<LcoreId>> = BTreeMap::new();
    for worker in workers.iter().filter(|w| !w.shares_core_with.is_empty()) {
        shared_cores.entry(worker.core).or_default().push(worker.lcore);
    }
    for (core, lcores) in shared_cores {
        warnings.push(PlanWarning::SmtSharedCore { core, lcores });
    }

    let (port_queues, assignments) = assign_queues(ports, &port_nodes, &home_nodes, &mut workers, req)?;
    for assignment in assignments.iter().filter(|a| a.cross_node) {
        warnings.push(PlanWarning::CrossNode {
            lcore: assignment.lcore,
            worker_node: assignment.worker_node,
            port: assignment.port,
            port_node: assignment.port_node.unwrap_or_default(),
            queue: assignment.queue,
        });
    }

    let mut mempools: BTreeMap<NodeId, MempoolPlacement> = BTreeMap::new();
    for worker in &workers {
        let pool = mempools.entry(worker.numa_node).or_insert_with(|| MempoolPlacement {
            numa_node: worker.numa_node,
            workers: Vec::new(),
            rx_queues: Vec::new(),
        });
        pool.workers.push(worker.lcore);
        pool.rx_queues.extend(worker.queues.iter().copied());
    }
    for pool in mempools.values_mut() {
        pool.rx_queues.sort_unstable();
    }

    let worker_core_cpus: BTreeSet<CpuId> =
        workers.iter().filter_map(|worker| topo.core(worker.core)).flat_map(|core| core.pus.iter().copied()).collect();
    let mut helper_cpus: Vec<CpuId> =
        topo.all_cpus().into_iter().filter(|cpu| !worker_core_cpus.contains(cpu)).collect();
    if helper_cpus.is_empty() {
        helper_cpus = control.cpus.clone();
    }

    Ok(Plan {
        request: *req,
        control,
        workers,
        ports: port_queues,
        assignments,
        mempools: mempools.into_values().collect(),
        idle_lcores,
        warnings,
        helper_cpus,
        suggested_eal: None,
    })
}

fn control_placement(topo: &Topology, layout: &LcoreLayout) -> ControlPlacement {
    let cpus = layout.lcores.get(&layout.main_lcore).cloned().unwrap_or_default();
    let control_cores: Vec<&Core> = cpus.iter().filter_map(|&cpu| topo.core_of_cpu(cpu)).collect();
    let distinct = |values: Vec<u32>| -> Vec<u32> { values.into_iter().collect::<BTreeSet<_>>().into_iter().collect() };
    ControlPlacement {
        lcore: layout.main_lcore,
        cores: distinct(control_cores.iter().map(|core| core.id).collect()),
        numa_nodes: distinct(control_cores.iter().map(|core| core.numa_node).collect()),
        cpus,
    }
}

/// Sorts the non-control lcores into candidate tiers, and the unusable ones into idle.
fn classify_lcores<'topo>(
    topo: &'topo Topology,
    layout: &LcoreLayout,
    control: &ControlPlacement,
    home_nodes: &BTreeSet<NodeId>,
) -> (Tiers<'topo>, Vec<IdleLcore>) {
    let mut idle = Vec::new();
    let mut by_core: BTreeMap<u32, Vec<Candidate<'topo>>> = BTreeMap::new();
    for (&lcore, cpus) in &layout.lcores {
        if lcore == layout.main_lcore {
            continue;
        }
        let idle_because = |reason| IdleLcore { lcore, cpus: cpus.clone(), reason };
        let [cpu] = cpus.as_slice() else {
            idle.push(idle_because(IdleReason::FloatsOverCpus));
            continue;
        };
        // Checked by the caller: every lcore's CPU exists.
        let Some(core) = topo.core_of_cpu(*cpu) else {
            continue;
        };
        if control.cores.contains(&core.id) {
            idle.push(idle_because(IdleReason::SharesControlCore { control_lcore: control.lcore }));
            continue;
        }
        by_core.entry(core.id).or_default().push(Candidate { lcore, cpu: *cpu, core });
    }

    let mut tiers = Tiers::default();
    for candidates in by_core.into_values() {
        let mut candidates = candidates;
        // The core's first hardware thread is the preferred worker CPU.
        candidates.sort_by_key(|c| {
            let position = c.core.pus.iter().position(|&pu| pu == c.cpu);
            (position, c.lcore)
        });
        let mut used_cpus: BTreeMap<CpuId, LcoreId> = BTreeMap::new();
        for (rank, candidate) in candidates.into_iter().enumerate() {
            if let Some(&with_lcore) = used_cpus.get(&candidate.cpu) {
                idle.push(IdleLcore {
                    lcore: candidate.lcore,
                    cpus: vec![candidate.cpu],
                    reason: IdleReason::SharesCpu { with_lcore },
                });
                continue;
            }
            used_cpus.insert(candidate.cpu, candidate.lcore);
            let node = candidate.core.numa_node;
            let tier = match (home_nodes.contains(&node), rank == 0) {
                (true, true) => &mut tiers.home_cores,
                (true, false) => &mut tiers.home_siblings,
                (false, true) => &mut tiers.away_cores,
                (false, false) => &mut tiers.away_siblings,
            };
            tier.entry(node).or_default().push_back(candidate);
        }
    }
    (tiers, idle)
}

/// Says why each candidate left in the tiers was not used.
fn leftover_idle(tiers: &Tiers<'_>, req: &PlanRequest, workers: usize) -> Vec<IdleLcore> {
    let mut idle = Vec::new();
    let mut record = |tier: &BTreeMap<NodeId, VecDeque<Candidate<'_>>>,
                      reason_for: &dyn Fn(&Candidate<'_>) -> IdleReason| {
        for candidate in tier.values().flatten() {
            idle.push(IdleLcore { lcore: candidate.lcore, cpus: vec![candidate.cpu], reason: reason_for(candidate) });
        }
    };
    let not_needed = |_: &Candidate<'_>| IdleReason::NotNeeded { workers };
    let sibling = |c: &Candidate<'_>| {
        if req.allow_smt { IdleReason::NotNeeded { workers } } else { IdleReason::SmtSibling { core: c.core.id } }
    };
    let away = |c: &Candidate<'_>| {
        if req.allow_cross_node { sibling(c) } else { IdleReason::AwayFromPorts { numa_node: c.core.numa_node } }
    };
    let away_core = |c: &Candidate<'_>| {
        if req.allow_cross_node {
            IdleReason::NotNeeded { workers }
        } else {
            IdleReason::AwayFromPorts { numa_node: c.core.numa_node }
        }
    };
    record(&tiers.home_cores, &not_needed);
    record(&tiers.home_siblings, &sibling);
    record(&tiers.away_cores, &away_core);
    record(&tiers.away_siblings, &away);
    idle
}

type QueuePlan = (Vec<PortQueues>, Vec<QueueAssignment>);

/// Gives each port one queue per serving worker and records it on both sides.
fn assign_queues(
    ports: &[PortPlacement],
    port_nodes: &[Option<NodeId>],
    home_nodes: &BTreeSet<NodeId>,
    workers: &mut [WorkerPlacement],
    req: &PlanRequest,
) -> Result<QueuePlan, RefusalReason> {
    let worker_nodes: Vec<NodeId> = workers.iter().map(|w| w.numa_node).collect::<BTreeSet<_>>().into_iter().collect();
    let mut port_queues = Vec::with_capacity(ports.len());
    let mut assignments = Vec::new();
    for (index, (port, node)) in ports.iter().zip(port_nodes).enumerate() {
        let port_id = index as PortId;
        let serving: Vec<usize> = match node {
            None => (0..workers.len()).collect(),
            Some(node) => {
                let local: Vec<usize> = (0..workers.len()).filter(|&w| workers[w].numa_node == *node).collect();
                if local.is_empty() {
                    if !req.allow_cross_node {
                        return Err(RefusalReason::PortWithoutLocalWorker {
                            port: port_id,
                            name: port.name.clone(),
                            numa_node: *node,
                            worker_nodes,
                        });
                    }
                    (0..workers.len()).collect()
                } else {
                    // Workers placed on port-less nodes (allowed cross-node) help every port.
                    (0..workers.len())
                        .filter(|&w| workers[w].numa_node == *node || !home_nodes.contains(&workers[w].numa_node))
                        .collect()
                }
            }
        };
        let mut serving_lcores = Vec::with_capacity(serving.len());
        for (queue, &w) in serving.iter().enumerate() {
            let queue = queue as QueueId;
            let worker = &mut workers[w];
            worker.queues.push((port_id, queue));
            serving_lcores.push(worker.lcore);
            assignments.push(QueueAssignment {
                lcore: worker.lcore,
                port: port_id,
                queue,
                worker_node: worker.numa_node,
                port_node: *node,
                cross_node: node.is_some_and(|node| node != worker.numa_node),
            });
        }
        port_queues.push(PortQueues {
            port: port_id,
            name: port.name.clone(),
            numa_node: *node,
            reported_missing_node: port.numa_node.filter(|_| node.is_none()),
            queues: serving.len() as QueueId,
            workers: serving_lcores,
        });
    }
    Ok((port_queues, assignments))
}

/// The EAL lcores an operator should pass: the control lcore where it was (or on
/// the first core) and one lcore per worker core, numbered like the CPUs (`-l`).
fn suggest_eal(
    topo: &Topology,
    ports: &[PortPlacement],
    layout: &LcoreLayout,
    req: &PlanRequest,
) -> Option<EalSuggestion> {
    let given_control_cpu = match layout.lcores.get(&layout.main_lcore)?.as_slice() {
        [cpu] if topo.core_of_cpu(*cpu).is_some() => Some(*cpu),
        _ => None,
    };
    let control_cpu = given_control_cpu.or_else(|| topo.cores.first()?.pus.first().copied())?;
    let control_core = topo.core_of_cpu(control_cpu)?.id;
    let mut lcores: BTreeMap<LcoreId, Vec<CpuId>> = BTreeMap::new();
    lcores.insert(control_cpu, vec![control_cpu]);
    for core in topo.cores.iter().filter(|core| core.id != control_core) {
        if let Some(&first) = core.pus.first() {
            lcores.insert(first, vec![first]);
        }
    }
    let ideal = LcoreLayout { lcores, main_lcore: control_cpu, explicit: true };
    // Keep the operator's worker count: asked for, or what the given lcores offer.
    let workers = req.workers.or_else(|| {
        if !layout.explicit {
            return None;
        }
        let offered = plan_for_layout(
            topo,
            ports,
            layout,
            &PlanRequest { workers: None, allow_smt: req.allow_smt, allow_cross_node: true },
        )
        .ok()?
        .workers
        .len();
        u16::try_from(offered).ok().filter(|&offered| offered > 0)
    });
    let ideal_request = PlanRequest { workers, allow_smt: false, allow_cross_node: req.allow_cross_node };
    let ideal_plan = plan_for_layout(topo, ports, &ideal, &ideal_request).ok()?;
    let worker_cpus: Vec<CpuId> = ideal_plan.workers.iter().map(|w| w.cpu).collect();
    let mut cpus = worker_cpus.clone();
    cpus.push(control_cpu);
    let args = if cpus.iter().all(|&cpu| cpu < EAL_MAX_LCORE) {
        vec!["-l".into(), format_cpu_list(&cpus), "--main-lcore".into(), control_cpu.to_string()]
    } else {
        // Lcore ids must stay below RTE_MAX_LCORE: number them 0.. and map them to CPUs.
        let mut map = vec![format!("0@{control_cpu}")];
        map.extend(worker_cpus.iter().enumerate().map(|(index, cpu)| format!("{}@{cpu}", index + 1)));
        vec!["--lcores".into(), map.join(","), "--main-lcore".into(), "0".into()]
    };
    Some(EalSuggestion { args, workers: ideal_plan.workers.len() })
}

/// DPDK's default `RTE_MAX_LCORE`: `-l` cannot name lcores (= CPUs) at or above it.
const EAL_MAX_LCORE: CpuId = 128;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::eal_args::parse_eal_args;
    use crate::topology::model::{CpuNumbering, RegularShape};

    fn dual_socket_smt() -> Topology {
        Topology::regular(RegularShape {
            packages: 2,
            nodes_per_package: 1,
            l3_per_node: 1,
            cores_per_l3: 16,
            threads_per_core: 2,
            numbering: CpuNumbering::SiblingsAdjacent,
        })
    }

    fn two_core_single_node() -> Topology {
        Topology::regular(RegularShape {
            packages: 1,
            nodes_per_package: 1,
            l3_per_node: 1,
            cores_per_l3: 2,
            threads_per_core: 1,
            numbering: CpuNumbering::SiblingsAdjacent,
        })
    }

    fn layout(topo: &Topology, eal: &str) -> LcoreLayout {
        let args: Vec<String> = eal.split_whitespace().map(str::to_string).collect();
        parse_eal_args(&args).unwrap().lcore_layout(topo).unwrap()
    }

    /// One dual-port NIC per socket.
    fn four_ports() -> Vec<PortPlacement> {
        vec![
            PortPlacement::on_node("0000:17:00.0", 0),
            PortPlacement::on_node("0000:17:00.1", 0),
            PortPlacement::on_node("0000:b1:00.0", 1),
            PortPlacement::on_node("0000:b1:00.1", 1),
        ]
    }

    fn request(workers: Option<u16>, allow_smt: bool, allow_cross_node: bool) -> PlanRequest {
        PlanRequest { workers, allow_smt, allow_cross_node }
    }

    /// The guarantees every plan must keep, whatever the inputs.
    fn assert_invariants(plan: &Plan, topo: &Topology, req: &PlanRequest) {
        let mut cores = BTreeSet::new();
        for worker in &plan.workers {
            let core = topo.core_of_cpu(worker.cpu).unwrap();
            assert_eq!(core.id, worker.core);
            assert_eq!(core.numa_node, worker.numa_node);
            assert!(!plan.control.cores.contains(&worker.core), "worker lcore {} on the control core", worker.lcore);
            if !cores.insert(worker.core) {
                assert!(req.allow_smt, "two workers on core {} without --allow-smt", worker.core);
            }
        }
        for port in &plan.ports {
            assert_eq!(usize::from(port.queues), port.workers.len());
            for queue in 0..port.queues {
                let servers: Vec<_> =
                    plan.assignments.iter().filter(|a| a.port == port.port && a.queue == queue).collect();
                assert_eq!(servers.len(), 1, "port {} queue {queue}", port.port);
            }
        }
        for assignment in &plan.assignments {
            assert!(plan.assignments_for_worker(assignment.lcore).contains(&(assignment.port, assignment.queue)));
            let crosses = assignment.port_node.is_some_and(|node| node != assignment.worker_node);
            assert_eq!(crosses, assignment.cross_node);
            assert!(!crosses || req.allow_cross_node, "{assignment:?} crosses nodes");
        }
        for cpu in &plan.helper_cpus {
            let core = topo.core_of_cpu(*cpu).unwrap().id;
            assert!(plan.workers.iter().all(|w| w.core != core) || plan.helper_cpus == plan.control.cpus);
        }
    }

    #[test]
    fn dual_socket_by_default_uses_every_free_core_near_its_ports() {
        let topo = dual_socket_smt();
        let req = PlanRequest::default();
        let plan = plan(&topo, &four_ports(), &layout(&topo, ""), &req).unwrap();
        assert_invariants(&plan, &topo, &req);
        assert_eq!(plan.control.lcore, 0);
        assert_eq!(plan.control.cores, vec![0]);
        // Node 0 loses core 0 to control: 15 workers; node 1 has 16.
        assert_eq!(plan.workers.len(), 31);
        assert_eq!(plan.workers[0].lcore, 2);
        assert_eq!(plan.workers[0].core, 1);
        assert_eq!(plan.workers[15].lcore, 32);
        assert_eq!(plan.workers[15].numa_node, 1);
        assert_eq!((0..4).map(|p| plan.queues_per_port(p)).collect::<Vec<_>>(), vec![15, 15, 16, 16]);
        assert_eq!(plan.assignments_for_worker(2), &[(0, 0), (1, 0)]);
        assert_eq!(plan.assignments_for_worker(32), &[(2, 0), (3, 0)]);
        assert_eq!(plan.assignments_for_worker(62), &[(2, 15), (3, 15)]);
        assert_eq!(plan.mempools.len(), 2);
        assert!(plan.warnings.contains(&PlanWarning::DefaultLcores));
        // The siblings EAL would start are idle, and better arguments are offered.
        assert!(
            plan.idle_lcores.iter().any(|idle| idle.lcore == 3 && idle.reason == IdleReason::SmtSibling { core: 1 })
        );
        assert_eq!(plan.idle_lcores[0].reason, IdleReason::SharesControlCore { control_lcore: 0 });
        let suggestion = plan.suggested_eal.unwrap();
        assert_eq!(suggestion.workers, 31);
        assert_eq!(suggestion.args[0], "-l");
        assert!(suggestion.args[1].starts_with("0,2,4,"), "{suggestion}");
    }

    #[test]
    fn four_workers_on_two_port_nodes_split_two_and_two() {
        let topo = dual_socket_smt();
        let req = request(Some(4), false, false);
        let plan = plan(&topo, &four_ports(), &layout(&topo, ""), &req).unwrap();
        assert_invariants(&plan, &topo, &req);
        type Row = (LcoreId, CpuId, u32, NodeId, Vec<(PortId, QueueId)>);
        let mapping: Vec<Row> =
            plan.workers.iter().map(|w| (w.lcore, w.cpu, w.core, w.numa_node, w.queues.clone())).collect();
        assert_eq!(
            mapping,
            vec![
                (2, 2, 1, 0, vec![(0, 0), (1, 0)]),
                (4, 4, 2, 0, vec![(0, 1), (1, 1)]),
                (32, 32, 16, 1, vec![(2, 0), (3, 0)]),
                (34, 34, 17, 1, vec![(2, 1), (3, 1)]),
            ]
        );
        assert_eq!(
            plan.mempools.iter().map(|pool| (pool.numa_node, pool.workers.clone())).collect::<Vec<_>>(),
            vec![(0, vec![2, 4]), (1, vec![32, 34])]
        );
    }

    #[test]
    fn clean_arguments_need_no_suggestion() {
        let topo = dual_socket_smt();
        let req = PlanRequest::default();
        let plan = plan(&topo, &four_ports(), &layout(&topo, "-l 0,2,4,32,34"), &req).unwrap();
        assert_invariants(&plan, &topo, &req);
        assert_eq!(plan.worker_lcores(), vec![2, 4, 32, 34]);
        assert!(plan.idle_lcores.is_empty());
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        assert_eq!(plan.suggested_eal, None);
    }

    #[test]
    fn helper_threads_avoid_every_hardware_thread_of_worker_cores() {
        let topo = dual_socket_smt();
        let req = PlanRequest::default();
        let plan = plan(&topo, &four_ports(), &layout(&topo, "-l 0,2,4,32,34"), &req).unwrap();
        for forbidden in [2, 3, 4, 5, 32, 33, 34, 35] {
            assert!(!plan.helper_cpus.contains(&forbidden), "cpu {forbidden}");
        }
        assert!(plan.helper_cpus.contains(&0) && plan.helper_cpus.contains(&1));
    }

    #[test]
    fn two_core_machine_puts_control_and_one_worker_on_separate_cores() {
        let topo = two_core_single_node();
        let ports = vec![PortPlacement::on_node("net0", 0)];
        let req = PlanRequest::default();
        let plan = plan(&topo, &ports, &layout(&topo, "-l 0-1"), &req).unwrap();
        assert_invariants(&plan, &topo, &req);
        assert_eq!(plan.control.cpus, vec![0]);
        assert_eq!(plan.worker_lcores(), vec![1]);
        assert_eq!(plan.queues_per_port(0), 1);
        assert_eq!(plan.assignments_for_worker(1), &[(0, 0)]);
        // Every CPU hosts a worker or the control lcore: helpers share the control CPU.
        assert_eq!(plan.helper_cpus, vec![0]);
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn two_core_machine_refuses_a_second_worker() {
        let topo = two_core_single_node();
        let ports = vec![PortPlacement::on_node("net0", 0)];
        let error = plan(&topo, &ports, &layout(&topo, "-l 0-1"), &request(Some(2), true, true)).unwrap_err();
        assert!(matches!(error.reason, RefusalReason::NotEnoughWorkers { requested: 2, distinct_cores: 1, .. }));
    }

    #[test]
    fn smt_siblings_are_refused_then_allowed_with_a_loud_warning() {
        let topo = dual_socket_smt();
        let ports = vec![PortPlacement::on_node("p0", 0)];
        // lcores 2,3 are siblings on core 1, lcores 4,5 on core 2.
        let given = layout(&topo, "-l 0,2-5");
        let refused = plan(&topo, &ports, &given, &request(Some(4), false, false)).unwrap_err();
        assert!(matches!(
            refused.reason,
            RefusalReason::NotEnoughWorkers { requested: 4, distinct_cores: 2, smt_siblings: 2, .. }
        ));
        let message = refused.to_string();
        assert!(message.contains("--allow-smt"), "{message}");
        assert!(message.contains("suggested EAL arguments: -l 0,2,4,6,8"), "{message}");

        let req = request(Some(4), true, false);
        let allowed = plan(&topo, &ports, &given, &req).unwrap();
        assert_invariants(&allowed, &topo, &req);
        assert_eq!(allowed.worker_lcores(), vec![2, 3, 4, 5]);
        assert_eq!(allowed.workers[0].shares_core_with, vec![3]);
        assert!(allowed.warnings.contains(&PlanWarning::SmtSharedCore { core: 1, lcores: vec![2, 3] }));
        assert!(allowed.suggested_eal.is_some());
    }

    #[test]
    fn without_a_count_siblings_stay_idle_unless_allowed() {
        let topo = dual_socket_smt();
        let ports = vec![PortPlacement::on_node("p0", 0)];
        let given = layout(&topo, "-l 0,2-5");
        let plan_default = plan(&topo, &ports, &given, &PlanRequest::default()).unwrap();
        assert_eq!(plan_default.worker_lcores(), vec![2, 4]);
        assert_eq!(
            plan_default.idle_lcores.iter().map(|idle| (idle.lcore, idle.reason.clone())).collect::<Vec<_>>(),
            vec![(3, IdleReason::SmtSibling { core: 1 }), (5, IdleReason::SmtSibling { core: 2 })]
        );
        let with_smt = plan(&topo, &ports, &given, &request(None, true, false)).unwrap();
        assert_eq!(with_smt.worker_lcores(), vec![2, 3, 4, 5]);
    }

    #[test]
    fn a_port_on_a_node_without_workers_is_refused_then_named() {
        let topo = dual_socket_smt();
        let given = layout(&topo, "-l 0-4");
        let refused = plan(&topo, &four_ports(), &given, &PlanRequest::default()).unwrap_err();
        assert_eq!(
            refused.reason,
            RefusalReason::PortWithoutLocalWorker {
                port: 2,
                name: "0000:b1:00.0".into(),
                numa_node: 1,
                worker_nodes: vec![0],
            }
        );
        // Keep the two workers the operator gave, one near each NIC.
        assert_eq!(refused.suggested_eal.unwrap().args, vec!["-l", "0,2,32", "--main-lcore", "0"]);

        let req = request(None, false, true);
        let allowed = plan(&topo, &four_ports(), &given, &req).unwrap();
        assert_invariants(&allowed, &topo, &req);
        assert_eq!(allowed.worker_lcores(), vec![2, 4]);
        assert_eq!(allowed.queues_per_port(2), 2);
        let crossing: Vec<(LcoreId, PortId, QueueId)> = allowed
            .warnings
            .iter()
            .filter_map(|warning| match warning {
                PlanWarning::CrossNode { lcore, port, queue, .. } => Some((*lcore, *port, *queue)),
                _ => None,
            })
            .collect();
        assert_eq!(crossing, vec![(2, 2, 0), (4, 2, 1), (2, 3, 0), (4, 3, 1)]);
        assert!(allowed.suggested_eal.is_some());
    }

    #[test]
    fn lcores_on_a_node_without_ports_stay_idle_unless_cross_node_is_allowed() {
        let topo = dual_socket_smt();
        let ports = vec![PortPlacement::on_node("p0", 0)];
        let given = layout(&topo, "-l 0,2,32");
        let strict = plan(&topo, &ports, &given, &PlanRequest::default()).unwrap();
        assert_eq!(strict.worker_lcores(), vec![2]);
        assert_eq!(strict.idle_lcores[0].reason, IdleReason::AwayFromPorts { numa_node: 1 });
        let refused = plan(&topo, &ports, &given, &request(Some(2), false, false)).unwrap_err();
        assert!(matches!(refused.reason, RefusalReason::NotEnoughWorkers { away_from_ports: 1, .. }));

        let req = request(Some(2), false, true);
        let crossing = plan(&topo, &ports, &given, &req).unwrap();
        assert_invariants(&crossing, &topo, &req);
        assert_eq!(crossing.assignments_for_worker(32), &[(0, 1)]);
        assert!(crossing.assignments.iter().any(|a| a.lcore == 32 && a.cross_node));
    }

    #[test]
    fn ports_of_unknown_node_are_served_from_anywhere() {
        let topo = dual_socket_smt();
        let ports = vec![PortPlacement::anywhere("net_null0"), PortPlacement::on_node("0000:99:00.0", 7)];
        let req = PlanRequest::default();
        let plan = plan(&topo, &ports, &layout(&topo, "-l 0,2,32"), &req).unwrap();
        assert_invariants(&plan, &topo, &req);
        assert_eq!(plan.worker_lcores(), vec![2, 32]);
        assert_eq!(plan.queues_per_port(0), 2);
        assert_eq!(plan.queues_per_port(1), 2);
        assert_eq!(plan.ports[1].reported_missing_node, Some(7));
        assert!(plan.assignments.iter().all(|a| !a.cross_node));
        assert!(plan.warnings.contains(&PlanWarning::PortNodeUnknown { port: 0, name: "net_null0".into() }));
    }

    #[test]
    fn control_core_sibling_and_floating_lcores_never_become_workers() {
        let topo = dual_socket_smt();
        let ports = vec![PortPlacement::on_node("p0", 0)];
        let given = layout(&topo, "--lcores 0@0,1@1,2@2,3@(4-5),4@2");
        let plan = plan(&topo, &ports, &given, &PlanRequest::default()).unwrap();
        assert_eq!(plan.worker_lcores(), vec![2]);
        let reasons: Vec<(LcoreId, IdleReason)> =
            plan.idle_lcores.iter().map(|idle| (idle.lcore, idle.reason.clone())).collect();
        assert_eq!(
            reasons,
            vec![
                (1, IdleReason::SharesControlCore { control_lcore: 0 }),
                (3, IdleReason::FloatsOverCpus),
                (4, IdleReason::SharesCpu { with_lcore: 2 }),
            ]
        );
    }

    #[test]
    fn lcores_on_cpus_the_machine_lacks_are_refused() {
        let topo = two_core_single_node();
        let error = plan(&topo, &[], &layout(&topo, "-l 0-3"), &PlanRequest::default()).unwrap_err();
        assert_eq!(error.reason, RefusalReason::LcoreOnMissingCpu { lcore: 2, cpu: 2, machine_cpus: vec![0, 1] });
    }

    #[test]
    fn nothing_to_run_a_worker_on_is_refused() {
        let topo = two_core_single_node();
        let error = plan(&topo, &[], &layout(&topo, "-l 0"), &PlanRequest::default()).unwrap_err();
        assert!(matches!(error.reason, RefusalReason::NoWorkerLcore { .. }));
        assert_eq!(
            plan(&topo, &[], &layout(&topo, "-l 0-1"), &request(Some(0), false, false)).unwrap_err().reason,
            RefusalReason::ZeroWorkers
        );
    }

    #[test]
    fn suggestions_beyond_128_cpus_remap_lcores() {
        let topo = Topology::regular(RegularShape {
            packages: 2,
            nodes_per_package: 1,
            l3_per_node: 1,
            cores_per_l3: 64,
            threads_per_core: 2,
            numbering: CpuNumbering::SiblingsAdjacent,
        });
        let ports = vec![PortPlacement::on_node("far", 1)];
        let suggestion =
            plan(&topo, &ports, &layout(&topo, ""), &request(Some(2), false, false)).unwrap().suggested_eal.unwrap();
        assert_eq!(suggestion.args, vec!["--lcores", "0@0,1@128,2@130", "--main-lcore", "0"]);
        // And the suggestion parses back into the same placement.
        let args: Vec<String> = suggestion.args.clone();
        let remapped = parse_eal_args(&args).unwrap().lcore_layout(&topo).unwrap();
        let again = plan(&topo, &ports, &remapped, &request(Some(2), false, false)).unwrap();
        assert_eq!(again.workers.iter().map(|w| (w.lcore, w.cpu)).collect::<Vec<_>>(), vec![(1, 128), (2, 130)]);
        assert_eq!(again.suggested_eal, None);
    }

    #[test]
    fn linux_style_numbering_picks_first_threads_and_skips_second_half() {
        let topo = Topology::regular(RegularShape {
            packages: 2,
            nodes_per_package: 1,
            l3_per_node: 1,
            cores_per_l3: 4,
            threads_per_core: 2,
            numbering: CpuNumbering::SiblingsInSecondHalf,
        });
        let ports = vec![PortPlacement::on_node("a", 0), PortPlacement::on_node("b", 1)];
        let req = PlanRequest::default();
        let plan = plan(&topo, &ports, &layout(&topo, ""), &req).unwrap();
        assert_invariants(&plan, &topo, &req);
        assert_eq!(plan.worker_lcores(), vec![1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(plan.suggested_eal.unwrap().args, vec!["-l", "0-7", "--main-lcore", "0"]);
    }
}
