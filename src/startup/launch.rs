//! Governance for the workers, the signal handlers, and the workers themselves:
//! one per layout lcore, owning its RX queues and one TX queue on every port.

use super::StartupError;
use super::bridge::BridgePlane;
use super::layout::WorkerLayout;
use super::shutdown::DataPlane;
use crate::cli::Options;
use crate::config::{Config, NonTachyon};
use crate::control::WorkerView;
use crate::control::governance::GovernanceControl;
use crate::control::metrics::GovernanceSnapshot;
use crate::dataplane::classify::ParseConfig;
use crate::dataplane::counters::PublishedCounters;
use crate::dataplane::routes::{Hop, RouteTable};
use crate::dataplane::worker::Worker;
use crate::dpdk::{self, Eal, RcuCell, launch_on_lcore};
use crate::governance::{Shard, Tables};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The control side's read-only view of each worker's published counters.
pub(super) fn worker_views(eal: &Eal, layout: &WorkerLayout) -> Vec<WorkerView> {
    layout
        .lcores
        .iter()
        .enumerate()
        .map(|(index, &lcore)| WorkerView {
            index,
            lcore,
            socket: eal.lcore_socket(lcore),
            counters: Arc::new(PublishedCounters::default()),
        })
        .collect()
}

/// Governance compiled for the workers: tables shared read-only through RCU,
/// one shard per worker, and the reconciler (with SIGHUP reloads) for the control lcore.
pub(super) struct Governance {
    pub control: GovernanceControl,
    pub rcu: Arc<RcuCell<Tables>>,
    pub shards: Vec<Shard>,
}

pub(super) fn governance(
    eal: &Eal,
    options: &Options,
    config: &Config,
    worker_nodes: &[Option<u32>],
    snapshot: &Arc<GovernanceSnapshot>,
) -> Result<Governance, StartupError> {
    let (tables, shards, reconciler) = config
        .governance
        .compile_placed(dpdk::tsc_hz(), worker_nodes)
        .map_err(|e| StartupError::Governance(e.to_string()))?;
    let rcu = RcuCell::new(eal, tables, worker_nodes.len() as u32)?;
    let control = GovernanceControl::new(
        reconciler,
        rcu.clone(),
        config.governance.clone(),
        options.config.clone(),
        dpdk::tsc_hz(),
        snapshot.clone(),
    )
    .map_err(StartupError::GovernanceControl)?;
    Ok(Governance { control, rcu, shards })
}

/// SIGINT, SIGTERM (stop; a second one exits at once) and SIGHUP (reload),
/// see [`crate::control::signals`]. Installed by [`super::prepare`] before the
/// config is read and EAL starts; later calls return the same stop flag.
pub(super) fn install_signal_handlers() -> Result<Arc<AtomicBool>, StartupError> {
    crate::control::signals::install()
        .map(|s| s.stop)
        .map_err(|(signal, e)| StartupError::Signal { signal, reason: e.to_string() })
}

/// Builds and launches one worker per layout lcore. The guard is marked
/// before the first launch, so any error from here on stops and waits for
/// the workers already running.
pub(super) fn workers(
    eal: &Eal,
    dp: &mut DataPlane,
    layout: &WorkerLayout,
    config: &Config,
    views: &[WorkerView],
    governance: &mut Governance,
    bridge: Option<&BridgePlane>,
) -> Result<(), StartupError> {
    let d = &config.dataplane;
    let port_macs: Vec<(u16, [u8; 6])> = dp.ports.iter().map(|s| (s.port.id(), s.port.caps().mac)).collect();
    let hops: Vec<(u16, Hop)> = dp
        .ports
        .iter()
        .map(|s| (s.route.ingress, Hop { egress: s.route.egress, next_hop: s.route.next_hop }))
        .collect();
    let table = RouteTable::new(&port_macs, &hops);
    let mut queues: Vec<_> = dp.ports.iter_mut().map(|s| s.port.take_queues()).collect();
    let parse = ParseConfig {
        tachyon_port: d.tachyon_udp_port,
        forward_non_tachyon: d.non_tachyon == NonTachyon::Forward,
        verify_ip_checksum: d.verify_ip_checksum,
    };
    let mut shards = std::mem::take(&mut governance.shards).into_iter();
    dpdk::guard_driver_unmaps(&governance.rcu);
    if !dpdk::unmap_hook_active() {
        crate::log_err!("tachyon: WARNING: munmap is not interposed; a memif peer that leaves may crash the workers");
    }
    dp.workers_launched = true;
    for (index, &lcore) in layout.lcores.iter().enumerate() {
        let mut rx = Vec::new();
        for &(port, queue) in &layout.rx_assignments[index] {
            let taken = queues[port].0.get_mut(queue as usize).and_then(Option::take);
            rx.push(taken.ok_or(StartupError::QueueAssignedTwice { port, queue })?);
        }
        let tx: Vec<_> = queues.iter_mut().map(|(_, t)| t[index].take().expect("one TX queue per worker")).collect();
        let bridge =
            bridge.map(|b| b.stage_for(index, lcore, &dp.pools, &dp.ports, &table, d.tachyon_udp_port)).transpose()?;
        let worker = Worker {
            index,
            lcore,
            rx,
            tx,
            routes: table.clone(),
            parse,
            burst_size: d.burst_size as usize,
            governance: shards.next().expect("one shard per worker"),
            tables: governance.rcu.reader(index as u32)?,
            counters: views[index].counters.clone(),
            control: dp.flags.clone(),
            bridge,
        };
        launch_on_lcore(eal, lcore, move || worker.run()).map_err(StartupError::Launch)?;
    }
    Ok(())
}
