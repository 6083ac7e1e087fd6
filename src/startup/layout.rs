//! Which lcores run workers, which RX queues each polls, and which mempools
//! feed them: taken from the placement plan (`--plan` prints the same plan),
//! or from `workers.lcores` when the operator named the workers.

use super::StartupError;
use crate::cli::Options;
use crate::config::Config;
use crate::dpdk::Eal;
use crate::topology::{self, Plan, PortPlacement};
use std::collections::BTreeMap;

/// One mempool to create: the plan's `MempoolPlacement`, with DPDK's socket id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PoolPlan {
    /// The NUMA node (DPDK socket) the pool lives on.
    pub socket: i32,
    /// Worker lcores on that node.
    pub workers: Vec<u32>,
    /// (port position, queue) of the RX queues whose mbufs come from this pool.
    pub rx_queues: Vec<(usize, u16)>,
}

impl PoolPlan {
    /// The DPDK name of the pool, unique per socket.
    pub fn name(&self) -> String {
        format!("tachyon_mbufs_s{}", self.socket)
    }
}

/// The workers and the RX queues each polls: worker `w` runs on `lcores[w]`,
/// polls `rx_assignments[w]` as (port position, queue) pairs, and sends on TX
/// queue `w` of every port.
pub(super) struct WorkerLayout {
    pub lcores: Vec<u32>,
    pub rx_assignments: Vec<Vec<(usize, u16)>>,
    /// One per NUMA node with workers, in node order.
    pub pools: Vec<PoolPlan>,
    /// The plan the run carries out; `None` when `workers.lcores` overrides it.
    pub plan: Option<Plan>,
}

impl WorkerLayout {
    /// Per worker, the NUMA node (DPDK socket) of its lcore, as its pool has
    /// it; None when unknown.
    pub fn worker_nodes(&self) -> Vec<Option<u32>> {
        let node_of = |lcore: u32| {
            let pool = self.pools.iter().find(|p| p.workers.contains(&lcore))?;
            u32::try_from(pool.socket).ok()
        };
        self.lcores.iter().map(|&l| node_of(l)).collect()
    }

    /// RX queues to configure on the port at `port_pos`.
    pub fn rx_queues_of(&self, port_pos: usize) -> u16 {
        self.rx_assignments.iter().flatten().filter(|(p, _)| *p == port_pos).count() as u16
    }

    /// The pool RX queue `queue` of the port at `port_pos` draws from: the one
    /// on the node of the worker that polls it (the first pool for a queue no
    /// worker polls).
    pub fn pool_index_for(&self, port_pos: usize, queue: u16) -> usize {
        self.pools.iter().position(|p| p.rx_queues.contains(&(port_pos, queue))).unwrap_or(0)
    }

    /// The plan's layout: its workers, queue assignments and mempools, exactly.
    fn from_plan(plan: Plan) -> Self {
        let lcores = plan.worker_lcores();
        let rx_assignments = lcores
            .iter()
            .map(|&l| plan.assignments_for_worker(l).iter().map(|&(port, queue)| (usize::from(port), queue)).collect())
            .collect();
        let pools = plan
            .mempools
            .iter()
            .map(|m| PoolPlan {
                socket: m.numa_node as i32,
                workers: m.workers.clone(),
                rx_queues: m.rx_queues.iter().map(|&(port, queue)| (usize::from(port), queue)).collect(),
            })
            .collect();
        WorkerLayout { lcores, rx_assignments, pools, plan: Some(plan) }
    }

    /// `workers.lcores` as given, l2fwd style (worker i polls RX queue i of
    /// every port); mempools by the plan's rule all the same: one per node
    /// with workers (as EAL places the lcores), feeding its workers' queues.
    fn configured(lcores: Vec<u32>, ports: usize, socket_of: impl Fn(u32) -> i32) -> Self {
        let rx_assignments: Vec<Vec<(usize, u16)>> =
            (0..lcores.len()).map(|w| (0..ports).map(|p| (p, w as u16)).collect()).collect();
        let mut by_socket: BTreeMap<i32, PoolPlan> = BTreeMap::new();
        for (&lcore, queues) in lcores.iter().zip(&rx_assignments) {
            let socket = socket_of(lcore);
            let pool =
                by_socket.entry(socket).or_insert_with(|| PoolPlan { socket, workers: vec![], rx_queues: vec![] });
            pool.workers.push(lcore);
            pool.rx_queues.extend(queues.iter().copied());
        }
        for pool in by_socket.values_mut() {
            pool.rx_queues.sort_unstable();
        }
        WorkerLayout { lcores, rx_assignments, pools: by_socket.into_values().collect(), plan: None }
    }
}

/// Chooses worker lcores, queue assignments and mempools from the placement
/// plan, or from `workers.lcores` when the operator named them (the plan then
/// only warns).
pub(super) fn choose(
    eal: &Eal,
    config: &Config,
    options: &Options,
    eal_args: &[String],
    placements: &[PortPlacement],
) -> Result<WorkerLayout, StartupError> {
    let main = eal.main_lcore();
    let placement = topology::place(eal_args, placements, &options.plan_request());
    if !config.workers.lcores.is_empty() {
        check_configured_lcores(eal, &config.workers.lcores)?;
        match &placement {
            Ok(p) => {
                let planned = p.plan.worker_lcores();
                for l in config.workers.lcores.iter().filter(|l| !planned.contains(l)) {
                    crate::log_err!(
                        "tachyon: WARNING: worker lcore {l} from workers.lcores is not in the placement plan \
                         (it shares a core or CPU with another lcore); see `tachyon [EAL args] -- --plan`"
                    );
                }
            }
            Err(e) => {
                crate::log_err!("tachyon: WARNING: placement plan refused ({e}); using workers.lcores as configured")
            }
        }
        let socket_of = |l| eal.lcore_socket(l) as i32;
        return Ok(WorkerLayout::configured(config.workers.lcores.clone(), placements.len(), socket_of));
    }
    let placement = placement.map_err(|e| StartupError::Placement(e.to_string()))?;
    crate::log_err!("{}", placement.report(false).trim_end_matches('\n'));
    if placement.plan.workers.is_empty() {
        return Err(StartupError::NoWorkerLcores { main });
    }
    for w in &placement.plan.workers {
        let eal_socket = eal.lcore_socket(w.lcore);
        if eal_socket != w.numa_node {
            crate::log_err!(
                "tachyon: WARNING: the plan puts worker lcore {} on node {} but EAL on socket {eal_socket} \
                 (HWLOC_SYNTHETIC or HWLOC_XMLFILE set?); mempools follow the plan",
                w.lcore,
                w.numa_node
            );
        }
    }
    Ok(WorkerLayout::from_plan(placement.plan))
}

fn check_configured_lcores(eal: &Eal, lcores: &[u32]) -> Result<(), StartupError> {
    for &l in lcores {
        if l == eal.main_lcore() {
            return Err(StartupError::WorkerIsMainLcore(l));
        }
        if !eal.lcore_enabled(l) {
            return Err(StartupError::WorkerLcoreNotEnabled { lcore: l, enabled: eal.worker_lcores() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::model::{CpuNumbering, RegularShape};
    use crate::topology::{PlanRequest, Topology, parse_eal_args, plan};

    /// Two nodes, a NIC port on each, workers on both: a pool per node, each
    /// RX queue fed from the pool of the node of the worker that polls it.
    #[test]
    fn the_plan_layout_has_the_plans_pools_and_queues() {
        let topo = Topology::regular(RegularShape {
            packages: 2,
            nodes_per_package: 1,
            l3_per_node: 1,
            cores_per_l3: 4,
            threads_per_core: 1,
            numbering: CpuNumbering::SiblingsAdjacent,
        });
        let ports = vec![PortPlacement::on_node("0000:17:00.0", 0), PortPlacement::on_node("0000:b1:00.0", 1)];
        let args: Vec<String> = ["-l", "0-7"].iter().map(|a| a.to_string()).collect();
        let lcores = parse_eal_args(&args).unwrap().lcore_layout(&topo).unwrap();
        let plan = plan(&topo, &ports, &lcores, &PlanRequest::default()).unwrap();
        let layout = WorkerLayout::from_plan(plan.clone());
        assert_eq!(layout.lcores, plan.worker_lcores());
        let sockets: Vec<i32> = layout.pools.iter().map(|p| p.socket).collect();
        assert_eq!(sockets, vec![0, 1]);
        for (pool, planned) in layout.pools.iter().zip(&plan.mempools) {
            assert_eq!(pool.workers, planned.workers);
            assert_eq!(pool.rx_queues.len(), planned.rx_queues.len());
        }
        for (w, &lcore) in layout.lcores.iter().enumerate() {
            let node = plan.memory_node_for_worker(lcore).unwrap() as i32;
            for &(port, queue) in &layout.rx_assignments[w] {
                assert_eq!(layout.pools[layout.pool_index_for(port, queue)].socket, node);
            }
            // The worker's governance tables go where its mbufs come from.
            assert_eq!(layout.worker_nodes()[w], Some(node as u32));
        }
        assert!(layout.worker_nodes().contains(&Some(1)), "workers on both nodes");
        for port in 0..2u16 {
            assert_eq!(layout.rx_queues_of(usize::from(port)), plan.queues_per_port(port));
        }
    }

    #[test]
    fn configured_lcores_get_one_pool_per_node_with_their_queues() {
        let layout = WorkerLayout::configured(vec![1, 2, 5], 2, |l| if l < 4 { 0 } else { 1 });
        assert_eq!(layout.rx_assignments[2], vec![(0, 2), (1, 2)]);
        assert_eq!(
            layout.pools,
            vec![
                PoolPlan { socket: 0, workers: vec![1, 2], rx_queues: vec![(0, 0), (0, 1), (1, 0), (1, 1)] },
                PoolPlan { socket: 1, workers: vec![5], rx_queues: vec![(0, 2), (1, 2)] },
            ]
        );
        assert_eq!(layout.pool_index_for(1, 2), 1);
        assert_eq!(layout.rx_queues_of(0), 3);
        assert_eq!(layout.pools[1].name(), "tachyon_mbufs_s1");
    }
}
