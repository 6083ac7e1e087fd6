//! Observation from the control side: DPDK telemetry commands and the
//! Prometheus `/metrics` server, on a helper thread pinned where the plan says.

use super::StartupError;
use super::shutdown::DataPlane;
use crate::control::WorkerView;
use crate::control::governance::{LimitRequests, ReloadRequests};
use crate::control::metrics::{
    Exposition, GovernanceSnapshot, MempoolSource, MetricsListener, MetricsServer, MetricsSources, PortSource,
};
use crate::dpdk::{self, Eal, TelemetryReply, TelemetryValue};
use crate::topology::{Plan, pin_helper_thread};
use std::sync::Arc;
use std::time::Duration;

/// Registers `/tachyon/stats`, `/tachyon/workers` and `/tachyon/rules`; a
/// failure only warns (the data plane runs without them).
pub(super) fn register_telemetry(eal: &Eal, views: &[WorkerView], governance: &Arc<GovernanceSnapshot>) {
    if let Err(e) = crate::control::telemetry::register(eal, views.to_vec(), governance.clone()) {
        crate::log_err!("tachyon: WARNING: DPDK telemetry commands unavailable: {e}");
    }
}

/// Registers `/tachyon/bridge` when the bridge is on; a failure only warns.
pub(super) fn register_bridge_telemetry(eal: &Eal, bridge: Option<&crate::bridge::BridgeHost>, views: &[WorkerView]) {
    let Some(bridge) = bridge else { return };
    if let Err(e) = crate::control::telemetry::register_bridge(eal, bridge.observer(), views.to_vec()) {
        crate::log_err!("tachyon: WARNING: /tachyon/bridge unavailable: {e}");
    }
}

/// Registers `/tachyon/reload`, answered by the control loop; a failure only warns.
pub(super) fn register_reload(eal: &Eal, requests: Arc<ReloadRequests>) {
    if let Err(e) = dpdk::register_telemetry_command(
        eal,
        "/tachyon/reload",
        "Reload rules and limits from the --config file; the old ones stay if it fails. No parameters.",
        move |_| {
            let mut reply = TelemetryReply::default();
            match requests.request_and_wait(Duration::from_secs(5)) {
                Ok(text) => reply.push("reloaded", TelemetryValue::Str(text)),
                Err(e) => reply.push("refused", TelemetryValue::Str(e)),
            }
            reply
        },
    ) {
        crate::log_err!("tachyon: WARNING: /tachyon/reload unavailable: {e}");
    }
}

/// Registers `/tachyon/limit`, answered by the control loop; a failure only warns.
pub(super) fn register_limit(eal: &Eal, requests: Arc<LimitRequests>) {
    if let Err(e) = dpdk::register_telemetry_command(
        eal,
        "/tachyon/limit",
        "Runtime limit: topic|sender,ID,RATE,BURST (msgs/s, msgs) or topic|sender,ID,clear. Kept over reloads.",
        move |params| crate::control::telemetry::limit_reply(&requests, params, Duration::from_secs(5)),
    ) {
        crate::log_err!("tachyon: WARNING: /tachyon/limit unavailable: {e}");
    }
}

/// Starts the metrics server on the guard's ports and pools (the guard stops
/// it before they go away) and, when the bridge is on, the region (read
/// through a [`BridgeObserver`](crate::bridge::host::BridgeObserver), which
/// does not keep it alive).
pub(super) fn start_metrics(
    listener: Option<MetricsListener>,
    dp: &DataPlane,
    views: &[WorkerView],
    governance: &Arc<GovernanceSnapshot>,
    bridge: Option<&crate::bridge::BridgeHost>,
    plan: Option<&Plan>,
) -> Result<Option<MetricsServer>, StartupError> {
    let Some(listener) = listener else { return Ok(None) };
    let sources = MetricsSources {
        workers: views.to_vec(),
        ports: dp
            .ports
            .iter()
            .map(|s| PortSource { reader: s.port.reader(), name: s.port.caps().name.clone() })
            .collect(),
        mempools: dp.pools.iter().map(|p| MempoolSource { socket: p.plan.socket, pool: p.pool.clone() }).collect(),
        governance: governance.clone(),
        tsc_hz: dpdk::tsc_hz(),
        dpdk_version: dpdk::version(),
        bridge: bridge.map(|b| b.observer()),
    };
    let server = serve_on_helper_cpus(listener, Exposition::new(sources), plan)?;
    crate::log_err!("tachyon: metrics on http://{}/metrics", server.local_addr());
    Ok(Some(server))
}

/// The server thread inherits the CPU affinity of the thread that spawns it.
/// With a plan, it is spawned from a short-lived thread pinned to the plan's
/// helper CPUs (`pin_helper_thread`); with `workers.lcores` given, from this
/// thread (EAL's main lcore), so it shares the control lcore's CPUs. Either
/// way it never runs on a worker's CPU. A failed pin only warns.
fn serve_on_helper_cpus(
    listener: MetricsListener,
    exposition: Exposition,
    plan: Option<&Plan>,
) -> Result<MetricsServer, StartupError> {
    let Some(plan) = plan else { return listener.serve(exposition).map_err(StartupError::Metrics) };
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Err(e) = pin_helper_thread(plan) {
                crate::log_err!("tachyon: WARNING: metrics thread stays on the control lcore's CPUs: {e}");
            }
            listener.serve(exposition)
        })
        .join()
        .map_err(|_| StartupError::MetricsStarterPanicked)?
        .map_err(StartupError::Metrics)
    })
}
