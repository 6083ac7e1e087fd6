//! Start-up and shutdown of the appliance, as named steps that carry out the
//! placement plan `--plan` prints (see [`run_with_eal`]). Every check that
//! needs no hardware runs before EAL starts ([`prepare`]).
//!
//! - [`layout`]: workers, RX queue assignments and mempools, from the plan;
//! - [`ports`]: open, configure (each RX queue from its worker's pool), start;
//! - [`pools`]: the mempools the plan lists, one per worker NUMA node;
//! - [`observe`]: telemetry commands and the metrics server on a helper CPU;
//! - [`bridge`]: the shared-memory bridge region, one shard per worker;
//! - [`launch`]: governance, signal handlers, then the workers;
//! - [`shutdown`]: the guard that tears all of it down in a fixed order.

mod bridge;
mod error;
mod launch;
mod layout;
mod memif;
mod observe;
mod pools;
mod ports;
mod shutdown;

pub use error::StartupError;

use crate::cli::{Options, eal_uses_no_huge, free_hugepages};
use crate::config::{Config, parse_listen_addr};
use crate::control::ControlLoop;
use crate::control::metrics::{GovernanceSnapshot, MetricsListener};
use crate::control::report::{self, FinalReport, WorkerReport};
use crate::dpdk::Eal;
use crate::topology::{self, PortPlacement};
use shutdown::{DataPlane, Teardown};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything validated before EAL starts.
pub struct Prepared {
    pub options: Options,
    pub config: Config,
    pub eal_args: Vec<String>,
    /// The bound `/metrics` socket, unless metrics are off.
    pub metrics: Option<MetricsListener>,
}

/// `--plan`: prints the placement plan and returns, without starting EAL.
pub fn print_plan(options: &Options, eal_args: &[String]) -> Result<(), StartupError> {
    let config = match &options.config {
        Some(path) => Config::load(path).map_err(|e| StartupError::Config(e.to_string()))?,
        None => Config::default(),
    };
    let ports: Vec<PortPlacement> = if !options.plan_port.is_empty() {
        options
            .plan_port
            .iter()
            .map(|p| PortPlacement::parse_cli(p).map_err(|e| StartupError::PlanPort(e.to_string())))
            .collect::<Result<_, _>>()?
    } else {
        config
            .ports
            .iter()
            .map(|p| PortPlacement::from_config(&format!("port{}", p.id), p.pci.as_deref(), p.numa_node))
            .collect()
    };
    let text = topology::plan_command(eal_args, &ports, &options.plan_request(), options.plan_json)
        .map_err(StartupError::Plan)?;
    print!("{text}"); // --plan: a one-shot command, not the control lcore
    Ok(())
}

/// Parses the config and checks files and hugepages, touching no hardware.
pub fn prepare(options: Options, eal_args: Vec<String>) -> Result<Prepared, StartupError> {
    // First of all: a signal from here on stops the run (or reloads) instead
    // of killing the process with its default action.
    launch::install_signal_handlers()?;
    let config = match &options.config {
        Some(path) => Config::load(path).map_err(|e| StartupError::Config(e.to_string()))?,
        None => Config::default(),
    };
    if let Some(path) = &options.stats_json {
        // Fail now, not after a long run, if the report cannot be written.
        std::fs::write(path, b"{}\n")
            .map_err(|e| StartupError::StatsJsonUnwritable { path: path.clone(), reason: e.to_string() })?;
    }
    if !eal_uses_no_huge(&eal_args) && free_hugepages() == Some(0) {
        return Err(StartupError::NoHugepages);
    }
    let metrics = metrics_listener(&options, &config)?;
    for warning in memif::exposure_warnings(&eal_args) {
        crate::log_err!("{warning}");
    }
    Ok(Prepared { options, config, eal_args, metrics })
}

/// Binds the metrics socket now, so that an address in use fails before EAL
/// starts: `--no-metrics`, else `--metrics ADDR`, else `[metrics]`.
fn metrics_listener(options: &Options, config: &Config) -> Result<Option<MetricsListener>, StartupError> {
    let addr = match &options.metrics {
        _ if options.no_metrics => return Ok(None),
        Some(text) => parse_listen_addr(text).map_err(|e| StartupError::MetricsFlag(e.to_string()))?,
        None if !config.metrics.enabled => return Ok(None),
        None => parse_listen_addr(&config.metrics.listen).map_err(|e| StartupError::MetricsListen(e.to_string()))?,
    };
    MetricsListener::bind(addr).map(Some).map_err(StartupError::Metrics)
}

/// Runs the appliance to completion: returns once the final report is out.
pub fn run(prep: Prepared) -> Result<(), StartupError> {
    let Prepared { options, config, eal_args, metrics } = prep;
    let hint = if eal_uses_no_huge(&eal_args) {
        ""
    } else {
        " (no hugepages? pass --no-huge -m 512, or reserve them with dpdk-hugepages.py)"
    };
    // EAL's own log lines through the non-blocking sink, from its first one.
    if !crate::dpdk::route_log(|bytes| {
        crate::control::log::emit_raw(crate::control::log::Stream::Err, String::from_utf8_lossy(bytes).into_owned())
    }) {
        crate::log_err!("tachyon: WARNING: DPDK logs go straight to stderr (cannot make a log stream)");
    }
    let eal = Eal::init(&eal_args).map_err(|source| StartupError::Eal { source, hint })?;
    let result = run_with_eal(&eal, &options, &config, &eal_args, metrics);
    eal.cleanup();
    result
}

/// The run, step by step. `dp` is the shutdown guard: from the first port
/// opened, any `?` below tears down what exists in the safe order.
fn run_with_eal(
    eal: &Eal,
    options: &Options,
    config: &Config,
    eal_args: &[String],
    metrics: Option<MetricsListener>,
) -> Result<(), StartupError> {
    // Installed by prepare() already; this returns its stop flag.
    let stop_signal = launch::install_signal_handlers()?;
    let mut dp = DataPlane::new(eal);
    ports::open(eal, config, &mut dp)?;
    let layout = layout::choose(eal, config, options, eal_args, &ports::placements(&dp.ports))?;
    crate::log_err!("tachyon: {} worker(s) on lcores {:?}", layout.lcores.len(), layout.lcores);
    dp.pools = pools::create(eal, config, &layout, dp.ports.len())?;
    ports::configure_and_start(&mut dp, &layout, config)?;
    dp.flags.set_links_up(ports::links_mask(&dp.ports));
    fail_point("after_ports")?;

    let views = launch::worker_views(eal, &layout);
    let snapshot = Arc::new(GovernanceSnapshot::default());
    observe::register_telemetry(eal, &views, &snapshot);
    let mut governance = launch::governance(eal, options, config, &layout.worker_nodes(), &snapshot)?;
    observe::register_reload(eal, governance.control.requests());
    observe::register_limit(eal, governance.control.limit_requests());
    // Just before launch: clients that connect find workers draining at once.
    let bridge = bridge::create(options, config, eal_args, layout.lcores.len())?;
    observe::register_bridge_telemetry(eal, bridge.as_ref().map(|b| &b.host), &views);
    // After the bridge, so that /metrics reads the region from its first scrape
    // (the socket was bound in `prepare`; only serving starts here).
    let bridge_host = bridge.as_ref().map(|b| &b.host);
    dp.metrics = observe::start_metrics(metrics, &dp, &views, &snapshot, bridge_host, layout.plan.as_ref())?;
    launch::workers(eal, &mut dp, &layout, config, &views, &mut governance, bridge.as_ref())?;
    fail_point("after_launch")?;

    let started = Instant::now();
    let mut bridge_host = bridge.as_ref().map(|b| b.host.clone());
    control_loop(&dp, options, config, &views, &stop_signal, &mut governance.control, bridge_host.as_mut());
    hang_point("hang_in_shutdown");
    let teardown = dp.shut_down();
    let bridge_json =
        bridge_host.map_or(serde_json::Value::Null, |b| crate::bridge::host::stats_json(&b.path(), &b.stats()));
    write_report(options, started, &views, teardown, governance.control.report_json(), bridge_json)
}

/// Runs the control loop (live line, links, reloads) until a signal or `--duration`.
fn control_loop(
    dp: &DataPlane,
    options: &Options,
    config: &Config,
    views: &[crate::control::WorkerView],
    stop_signal: &std::sync::atomic::AtomicBool,
    governor: &mut crate::control::governance::GovernanceControl,
    bridge: Option<&mut crate::bridge::BridgeHost>,
) {
    let ports: Vec<&crate::dpdk::Port> = dp.ports.iter().map(|s| &s.port).collect();
    let mut control = ControlLoop {
        workers: views,
        ports: &ports,
        flags: &dp.flags,
        stop_signal,
        duration: (options.duration > 0).then(|| Duration::from_secs(options.duration)),
        stats_interval: (!options.quiet && config.control.stats_interval_ms > 0)
            .then(|| Duration::from_millis(config.control.stats_interval_ms)),
        bridge,
    };
    control.run(governor);
}

/// Prints the final counters and writes `--stats-json`.
fn write_report(
    options: &Options,
    started: Instant,
    views: &[crate::control::WorkerView],
    teardown: Teardown,
    governance: serde_json::Value,
    bridge: serde_json::Value,
) -> Result<(), StartupError> {
    let workers: Vec<WorkerReport> = views
        .iter()
        .map(|w| WorkerReport { index: w.index, lcore: w.lcore, socket: w.socket, counters: w.counters.snapshot() })
        .collect();
    let report = FinalReport {
        duration_secs: teardown.workers_stopped.duration_since(started).as_secs_f64(),
        workers,
        ports: teardown.ports,
        mempools: teardown.mempools,
        governance,
        bridge,
    };
    report::print_final(&report);
    if let Some(path) = &options.stats_json {
        let text = serde_json::to_string_pretty(&report.to_json()).expect("json");
        std::fs::write(path, text + "\n")
            .map_err(|e| StartupError::StatsJsonWrite { path: path.clone(), reason: e.to_string() })?;
    }
    Ok(())
}

/// A hung shutdown injected by the integration tests
/// (`TACHYON_TEST_FAIL_AT=hang_in_shutdown`): only a second signal ends it.
fn hang_point(at: &'static str) {
    if std::env::var("TACHYON_TEST_FAIL_AT").is_ok_and(|v| v == at) {
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// A failure injected by the integration tests (`TACHYON_TEST_FAIL_AT=after_ports`
/// or `after_launch`) to check that the shutdown guard leaves no mbuf behind.
/// Unset, it does nothing.
fn fail_point(at: &'static str) -> Result<(), StartupError> {
    match std::env::var("TACHYON_TEST_FAIL_AT") {
        Ok(v) if v == at => {
            // Let the workers poll for a moment, so they hold mbufs when the error hits.
            std::thread::sleep(Duration::from_millis(200));
            Err(StartupError::Injected(at))
        }
        _ => Ok(()),
    }
}
