//! The shutdown guard: once any DPDK resource of the run exists, every way out
//! of start-up (an error past `?`, a signal, the normal end, a panic that
//! unwinds) tears it down in the one safe order.

use super::pools::PlannedPool;
use super::ports::PortSetup;
use crate::control::metrics::MetricsServer;
use crate::control::report::{MempoolReport, PortReport};
use crate::dataplane::control_flags::ControlFlags;
use crate::dpdk::{Eal, wait_all_lcores};
use std::sync::Arc;
use std::time::Instant;

/// What start-up has brought up, torn down by [`DataPlane::shut_down`] (or by
/// `Drop` on an early exit) in this order, each step needing the one before:
///
/// 1. workers: asked to stop, then waited for; they flush their TX buffers and
///    free every mbuf they hold, so nothing polls a port after this;
/// 2. the metrics server: stopped and joined, since it reads ports and mempools;
/// 3. ports: counters read, then stopped and closed; drivers hand the mbufs of
///    their RX/TX rings back to the pools;
/// 4. mempools: the mbufs still in use counted (0: nothing leaked), then freed.
///
/// EAL itself is cleaned up by `startup::run`, after this guard is gone.
pub(super) struct DataPlane<'e> {
    eal: &'e Eal,
    pub flags: Arc<ControlFlags>,
    /// Set before the first worker launch: from then on, stop and wait.
    pub workers_launched: bool,
    pub metrics: Option<MetricsServer>,
    pub ports: Vec<PortSetup>,
    pub pools: Vec<PlannedPool>,
    done: bool,
}

/// What shutdown measured, for the final report.
pub(super) struct Teardown {
    /// When the last worker returned.
    pub workers_stopped: Instant,
    pub ports: Vec<PortReport>,
    pub mempools: Vec<MempoolReport>,
}

impl<'e> DataPlane<'e> {
    pub fn new(eal: &'e Eal) -> Self {
        DataPlane {
            eal,
            flags: Arc::new(ControlFlags::default()),
            workers_launched: false,
            metrics: None,
            ports: Vec::new(),
            pools: Vec::new(),
            done: false,
        }
    }

    /// Tears everything down in the documented order; the guard is empty afterwards.
    pub fn shut_down(&mut self) -> Teardown {
        self.done = true;
        // 1. Workers.
        if self.workers_launched {
            self.flags.request_stop();
            wait_all_lcores(self.eal);
            self.workers_launched = false;
        }
        let workers_stopped = Instant::now();
        // 2. Metrics.
        if let Some(server) = self.metrics.take() {
            server.stop();
        }
        // 3. Ports.
        let ports = self
            .ports
            .drain(..)
            .map(|s| {
                let report = PortReport {
                    id: s.port.id(),
                    name: s.port.caps().name.clone(),
                    mac: s.port.caps().mac,
                    stats: s.port.stats(),
                };
                s.port.close();
                report
            })
            .collect();
        // 4. Mempools: the metrics thread (the only other holder) is joined,
        // so dropping these frees them.
        let mempools = self
            .pools
            .drain(..)
            .map(|p| MempoolReport {
                socket: p.plan.socket,
                size: p.pool.size(),
                in_use: p.pool.in_use(),
                available: p.pool.available(),
            })
            .collect();
        Teardown { workers_stopped, ports, mempools }
    }
}

impl Drop for DataPlane<'_> {
    /// An early exit: tear down, and say on stderr whether every mbuf came back.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let names: Vec<String> = self.pools.iter().map(|p| p.plan.name()).collect();
        let teardown = self.shut_down();
        for (name, m) in names.iter().zip(&teardown.mempools) {
            crate::log_err!(
                "tachyon: shut down after an error: mempool {name} socket {} in_use={} of {}",
                m.socket,
                m.in_use,
                m.size
            );
        }
    }
}
