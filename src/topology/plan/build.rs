//! The planner: from topology, ports, EAL's lcores and the request to a
//! [`Plan`] or a [`PlanError`], following the rules in the module doc.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{
    ControlPlacement, EalSuggestion, IdleLcore, IdleReason, MempoolPlacement, Plan, PlanError, PlanRequest,
    PlanWarning, PortId, PortQueues, QueueAssignment, QueueId, RefusalReason, WorkerPlacement,
};
use crate::topology::cpulist::format_cpu_list;
use crate::topology::eal_args::{LcoreId, LcoreLayout};
use crate::topology::model::{Core, CpuId, NodeId, Topology};
use crate::topology::ports::PortPlacement;

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
