//! The mempools the layout lists (one per NUMA node with workers), sized for
//! the rings and bursts that draw from each.

use super::StartupError;
use super::layout::{PoolPlan, WorkerLayout};
use crate::config::Config;
use crate::dpdk::{self, Eal, Mempool};
use std::sync::Arc;

/// Mbufs each lcore's mempool cache may hold.
const MEMPOOL_CACHE: u32 = 256;
/// The smallest pool: net_pcap's infinite_rx keeps the whole capture in mbufs.
const MIN_POOL_MBUFS: u32 = 32767;

/// A created pool and what it feeds. Shared (`Arc`) with the metrics thread,
/// which the shutdown guard stops before the pools are freed.
pub(super) struct PlannedPool {
    pub plan: PoolPlan,
    pub pool: Arc<Mempool>,
}

/// Creates every pool of `layout`, in order.
pub(super) fn create(
    eal: &Eal,
    config: &Config,
    layout: &WorkerLayout,
    ports: usize,
) -> Result<Vec<PlannedPool>, StartupError> {
    let mut out = Vec::with_capacity(layout.pools.len());
    for plan in &layout.pools {
        let size = pool_size(config, plan, ports);
        let pool = Mempool::create(eal, &plan.name(), size, MEMPOOL_CACHE, plan.socket)?;
        crate::log_err!(
            "tachyon: mempool {} on socket {}: {size} mbufs for worker lcore(s) {:?}, RX queues {}",
            plan.name(),
            plan.socket,
            plan.workers,
            plan.rx_queues.iter().map(|(p, q)| format!("{p}:{q}")).collect::<Vec<_>>().join(" ")
        );
        out.push(PlannedPool { plan: plan.clone(), pool: Arc::new(pool) });
    }
    Ok(out)
}

/// Mbufs for the pool's RX rings, its workers' TX rings on every port, and
/// what those workers hold in flight; `mbufs_per_pool` overrides.
fn pool_size(config: &Config, plan: &PoolPlan, ports: usize) -> u32 {
    if config.dataplane.mbufs_per_pool != 0 {
        return config.dataplane.mbufs_per_pool;
    }
    let d = &config.dataplane;
    let workers = plan.workers.len();
    let rings = plan.rx_queues.len() * d.rx_descriptors as usize + workers * ports * d.tx_descriptors as usize;
    // A frame at the MTU may be a chain of several mbufs; each ring
    // descriptor holds one segment, but a burst in flight holds whole chains.
    let segments = dpdk::max_frame_len(d.mtu).div_ceil(dpdk::MBUF_DATA_ROOM as u32) as usize;
    let in_flight = workers * (dpdk::MAX_BURST * (2 + ports) * segments + MEMPOOL_CACHE as usize);
    let wanted = (rings + in_flight + 4096).max(MIN_POOL_MBUFS as usize);
    // DPDK's mempool is most memory-efficient at 2^k - 1 elements.
    ((wanted + 1).next_power_of_two() - 1) as u32
}
