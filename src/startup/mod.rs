//! Start-up and shutdown of the appliance: EAL, ports, mempools, workers,
//! the control loop, and the final report. Every check that needs no
//! hardware runs before EAL starts.

use crate::cli::{Options, eal_uses_no_huge, free_hugepages};
use crate::config::{Config, RouteSpec, parse_listen_addr};
use crate::control::governance::GovernanceControl;
use crate::control::metrics::{
    Exposition, GovernanceSnapshot, MempoolSource, MetricsListener, MetricsSources, PortSource,
};
use crate::control::report::{self, FinalReport, MempoolReport, PortReport, WorkerReport};
use crate::control::{ControlLoop, WorkerView};
use crate::dataplane::control_flags::ControlFlags;
use crate::dataplane::counters::PublishedCounters;
use crate::dataplane::routes::{Hop, MAX_PORTS, RouteTable};
use crate::dataplane::worker::Worker;
use crate::dpdk::{
    self, Eal, Mempool, Port, PortConfig, RcuCell, RssSupport, TelemetryReply, TelemetryValue, format_mac,
    launch_on_lcore, wait_all_lcores,
};
use crate::topology::{self, PortPlacement};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Mbufs each lcore's mempool cache may hold.
const MEMPOOL_CACHE: u32 = 256;
/// The smallest pool: net_pcap's infinite_rx keeps the whole capture in mbufs.
const MIN_POOL_MBUFS: u32 = 32767;

/// An error a person can act on, printed as one line.
pub type AppResult<T> = Result<T, String>;

/// Everything validated before EAL starts.
pub struct Prepared {
    pub options: Options,
    pub config: Config,
    pub eal_args: Vec<String>,
    /// The bound `/metrics` socket, unless metrics are off.
    pub metrics: Option<MetricsListener>,
}

/// `--plan`: prints the placement plan and returns, without starting EAL.
pub fn print_plan(options: &Options, eal_args: &[String]) -> AppResult<()> {
    let config = match &options.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    let ports: Vec<PortPlacement> = if !options.plan_port.is_empty() {
        options
            .plan_port
            .iter()
            .map(|p| PortPlacement::parse_cli(p).map_err(|e| format!("--plan-port: {e}")))
            .collect::<Result<_, _>>()?
    } else {
        config
            .ports
            .iter()
            .map(|p| PortPlacement::from_config(&format!("port{}", p.id), p.pci.as_deref(), p.numa_node))
            .collect()
    };
    let text = topology::plan_command(eal_args, &ports, &options.plan_request(), options.plan_json)
        .map_err(|e| e.to_string())?;
    print!("{text}");
    Ok(())
}

/// Parses the config and checks files and hugepages, touching no hardware.
pub fn prepare(options: Options, eal_args: Vec<String>) -> AppResult<Prepared> {
    let config = match &options.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(path) = &options.stats_json {
        // Fail now, not after a long run, if the report cannot be written.
        std::fs::write(path, b"{}\n").map_err(|e| format!("--stats-json {}: cannot write: {e}", path.display()))?;
    }
    if !eal_uses_no_huge(&eal_args) && free_hugepages() == Some(0) {
        return Err("no free hugepages: reserve some (as root: echo 512 > /proc/sys/vm/nr_hugepages, \
                    or dpdk-hugepages.py --setup 1G) or pass --no-huge -m 512 among the EAL arguments"
            .into());
    }
    let metrics = metrics_listener(&options, &config)?;
    Ok(Prepared { options, config, eal_args, metrics })
}

/// Binds the metrics socket now, so that an address in use fails before EAL
/// starts: `--no-metrics`, else `--metrics ADDR`, else `[metrics]`.
fn metrics_listener(options: &Options, config: &Config) -> AppResult<Option<MetricsListener>> {
    let addr = match &options.metrics {
        _ if options.no_metrics => return Ok(None),
        Some(text) => parse_listen_addr(text).map_err(|e| format!("--metrics: {e}"))?,
        None if !config.metrics.enabled => return Ok(None),
        None => parse_listen_addr(&config.metrics.listen).map_err(|e| format!("metrics.listen: {e}"))?,
    };
    MetricsListener::bind(addr).map(Some).map_err(|e| e.to_string())
}

/// A port opened and configured for `queues` workers.
struct PortSetup {
    port: Port,
    route: RouteSpec,
}

/// Runs the appliance to completion: returns once the final report is out.
pub fn run(prep: Prepared) -> AppResult<()> {
    let Prepared { options, config, eal_args, metrics } = prep;
    let eal = Eal::init(&eal_args).map_err(|e| {
        let hint = if eal_uses_no_huge(&eal_args) {
            ""
        } else {
            " (no hugepages? pass --no-huge -m 512, or reserve them with dpdk-hugepages.py)"
        };
        format!("{e}{hint}")
    })?;
    let result = run_with_eal(&eal, &options, &config, &eal_args, metrics);
    eal.cleanup();
    result
}

/// The workers and the RX queues each polls: worker `w` polls
/// `rx_assignments[w]` as (port position, queue) pairs, and sends on TX queue
/// `w` of every port.
struct WorkerLayout {
    lcores: Vec<u32>,
    rx_assignments: Vec<Vec<(usize, u16)>>,
}

impl WorkerLayout {
    /// l2fwd style: worker i polls RX queue i of every port.
    fn every_port(lcores: Vec<u32>, ports: usize) -> Self {
        let rx_assignments = (0..lcores.len()).map(|w| (0..ports).map(|p| (p, w as u16)).collect()).collect();
        WorkerLayout { lcores, rx_assignments }
    }

    fn rx_queues_of(&self, port_pos: usize) -> u16 {
        self.rx_assignments.iter().flatten().filter(|(p, _)| *p == port_pos).count() as u16
    }
}

/// Chooses worker lcores and queue assignments from the placement plan, or
/// from `workers.lcores` when the operator named them (the plan then only warns).
fn choose_layout(
    eal: &Eal,
    config: &Config,
    options: &Options,
    eal_args: &[String],
    placements: &[PortPlacement],
) -> AppResult<WorkerLayout> {
    let main = eal.main_lcore();
    let placement = topology::place(eal_args, placements, &options.plan_request());
    if !config.workers.lcores.is_empty() {
        for &l in &config.workers.lcores {
            if l == main {
                return Err(format!("workers.lcores: lcore {l} is EAL's main lcore, which runs the control loop"));
            }
            if !eal.lcore_enabled(l) {
                return Err(format!(
                    "workers.lcores: lcore {l} is not enabled in EAL (enabled workers: {:?}); add it to -l/--lcores",
                    eal.worker_lcores()
                ));
            }
        }
        match &placement {
            Ok(p) => {
                let planned = p.plan.worker_lcores();
                for l in config.workers.lcores.iter().filter(|l| !planned.contains(l)) {
                    eprintln!(
                        "tachyon: WARNING: worker lcore {l} from workers.lcores is not in the placement plan \
                         (it shares a core or CPU with another lcore); see `tachyon [EAL args] -- --plan`"
                    );
                }
            }
            Err(e) => eprintln!("tachyon: WARNING: placement plan refused ({e}); using workers.lcores as configured"),
        }
        return Ok(WorkerLayout::every_port(config.workers.lcores.clone(), placements.len()));
    }
    let placement = placement.map_err(|e| format!("placement: {e}"))?;
    eprint!("{}", placement.report(false));
    let plan = &placement.plan;
    let lcores = plan.worker_lcores();
    if lcores.is_empty() {
        return Err(format!(
            "no worker lcores: EAL enabled only the main lcore {main}; pass at least two, e.g. -l 0-1"
        ));
    }
    let rx_assignments = lcores
        .iter()
        .map(|&l| plan.assignments_for_worker(l).iter().map(|&(port, queue)| (port as usize, queue)).collect())
        .collect();
    Ok(WorkerLayout { lcores, rx_assignments })
}

fn pool_size(config: &Config, ports: usize, workers: usize) -> u32 {
    if config.dataplane.mbufs_per_pool != 0 {
        return config.dataplane.mbufs_per_pool;
    }
    let d = &config.dataplane;
    let rings = ports * workers * (d.rx_descriptors as usize + d.tx_descriptors as usize);
    let in_flight = workers * (dpdk::MAX_BURST * (2 + ports) + MEMPOOL_CACHE as usize);
    let wanted = (rings + in_flight + 4096).max(MIN_POOL_MBUFS as usize);
    // DPDK's mempool is most memory-efficient at 2^k - 1 elements.
    ((wanted + 1).next_power_of_two() - 1) as u32
}

fn run_with_eal(
    eal: &Eal,
    options: &Options,
    config: &Config,
    eal_args: &[String],
    metrics: Option<MetricsListener>,
) -> AppResult<()> {
    let routes = config.routes(&Port::probed_ids(eal)).map_err(|e| e.to_string())?;
    eprintln!("tachyon: {}; control lcore {}, {} port(s)", dpdk::version(), eal.main_lcore(), routes.len());

    let mut setups = Vec::new();
    for route in &routes {
        let port = Port::open(eal, route.ingress)?;
        let c = port.caps();
        eprintln!(
            "tachyon: port {} {} driver={} mac={} socket={} max_queues=rx{}/tx{} rss_offloads={:#x}",
            port.id(),
            c.name,
            c.driver,
            format_mac(&c.mac),
            c.socket,
            c.max_rx_queues,
            c.max_tx_queues,
            c.rss_offloads
        );
        setups.push(PortSetup { port, route: *route });
    }
    if routes.iter().any(|r| r.ingress as usize >= MAX_PORTS || r.egress as usize >= MAX_PORTS) {
        return Err(format!("port ids above {} are not supported", MAX_PORTS - 1));
    }
    let placements: Vec<PortPlacement> = setups
        .iter()
        .map(|s| PortPlacement::from_dpdk_socket(s.port.caps().name.clone(), s.port.caps().socket))
        .collect();
    let layout = choose_layout(eal, config, options, eal_args, &placements)?;
    let lcores = layout.lcores.clone();
    eprintln!("tachyon: {} worker(s) on lcores {:?}", lcores.len(), lcores);

    // One mempool per NUMA socket in use; a port of unknown socket uses the main lcore's.
    let fallback_socket = eal.lcore_socket(eal.main_lcore()) as i32;
    let socket_of = |p: &Port| {
        if p.caps().socket < 0 { fallback_socket } else { p.caps().socket }
    };
    // Shared with the metrics thread, which is joined before the pools drop.
    let mut pools: BTreeMap<i32, Arc<Mempool>> = BTreeMap::new();
    for s in &setups {
        let socket = socket_of(&s.port);
        if let std::collections::btree_map::Entry::Vacant(e) = pools.entry(socket) {
            let ports_here = setups.iter().filter(|o| socket_of(&o.port) == socket).count();
            let size = pool_size(config, ports_here, lcores.len());
            let pool = Mempool::create(eal, &format!("tachyon_mbufs_s{socket}"), size, MEMPOOL_CACHE, socket)?;
            eprintln!("tachyon: mempool on socket {socket}: {size} mbufs");
            e.insert(Arc::new(pool));
        }
    }

    let d = &config.dataplane;
    for (pos, s) in setups.iter_mut().enumerate() {
        let pool = &pools[&socket_of(&s.port)];
        let rx_queues = layout.rx_queues_of(pos).max(1);
        let cfg = PortConfig {
            rx_queues,
            tx_queues: lcores.len() as u16,
            rx_desc: d.rx_descriptors,
            tx_desc: d.tx_descriptors,
            rx_ip_checksum_offload: d.verify_ip_checksum,
        };
        let rss = s.port.configure(&cfg, pool)?;
        s.port.start()?;
        let link = s.port.link();
        let rss_text = match rss {
            RssSupport::SingleQueue => "single queue".to_string(),
            RssSupport::Hashing(hf) => format!("RSS over IP/UDP (hf {hf:#x})"),
            RssSupport::Unsupported => "several queues, device cannot hash (RSS off)".to_string(),
        };
        eprintln!(
            "tachyon: port {} started: {} RX / {} TX queue(s), {rss_text}; link {} {} Mbps -> egress port {} next hop {}",
            s.port.id(),
            rx_queues,
            lcores.len(),
            if link.up { "up" } else { "down" },
            link.speed_mbps,
            s.route.egress,
            format_mac(&s.route.next_hop)
        );
    }

    let flags = Arc::new(ControlFlags::default());
    flags.set_links_up(links_mask(&setups));

    // Queue i of every port goes to worker i.
    let port_macs: Vec<(u16, [u8; 6])> = setups.iter().map(|s| (s.port.id(), s.port.caps().mac)).collect();
    let hops: Vec<(u16, Hop)> =
        setups.iter().map(|s| (s.route.ingress, Hop { egress: s.route.egress, next_hop: s.route.next_hop })).collect();
    let table = RouteTable::new(&port_macs, &hops);
    let mut queues: Vec<_> = setups.iter_mut().map(|s| s.port.take_queues()).collect();
    let parse = crate::dataplane::classify::ParseConfig {
        tachyon_port: d.tachyon_udp_port,
        forward_non_tachyon: d.non_tachyon == crate::config::NonTachyon::Forward,
        verify_ip_checksum: d.verify_ip_checksum,
    };
    let views: Vec<WorkerView> = lcores
        .iter()
        .enumerate()
        .map(|(index, &lcore)| WorkerView {
            index,
            lcore,
            socket: eal.lcore_socket(lcore),
            counters: Arc::new(PublishedCounters::default()),
        })
        .collect();
    // Filled by the control loop once governance reports rule hits and reconciliations.
    let governance = Arc::new(GovernanceSnapshot::default());
    if let Err(e) = crate::control::telemetry::register(eal, views.clone(), governance.clone()) {
        eprintln!("tachyon: WARNING: DPDK telemetry commands unavailable: {e}");
    }
    let metrics_server = match metrics {
        Some(listener) => {
            let sources = MetricsSources {
                workers: views.clone(),
                ports: setups
                    .iter()
                    .map(|s| PortSource { reader: s.port.reader(), name: s.port.caps().name.clone() })
                    .collect(),
                mempools: pools
                    .iter()
                    .map(|(socket, pool)| MempoolSource { socket: *socket, pool: pool.clone() })
                    .collect(),
                governance: governance.clone(),
                tsc_hz: dpdk::tsc_hz(),
                dpdk_version: dpdk::version(),
            };
            // Spawned from this thread (EAL's main lcore), so it shares the
            // control lcore's CPUs and never runs on a worker's.
            let server = listener.serve(Exposition::new(sources)).map_err(|e| e.to_string())?;
            eprintln!("tachyon: metrics on http://{}/metrics", server.local_addr());
            Some(server)
        }
        None => None,
    };
    // Governance: tables shared read-only through RCU, one shard per worker,
    // the reconciler on this (control) lcore.
    let (gov_tables, shards, reconciler) =
        config.governance.compile(dpdk::tsc_hz(), lcores.len()).map_err(|e| format!("governance: {e}"))?;
    let gov_rcu = RcuCell::new(eal, gov_tables, lcores.len() as u32)?;
    let mut governor = GovernanceControl::new(
        reconciler,
        gov_rcu.clone(),
        options.config.clone(),
        dpdk::tsc_hz(),
        governance.clone(),
    )?;
    let requests = governor.requests();
    if let Err(e) = dpdk::register_telemetry_command(
        eal,
        "/tachyon/reload",
        "Reload rules and limits from the --config file; the old ones stay if it fails. No parameters.",
        move |_| {
            let mut reply = TelemetryReply::default();
            match requests.request_and_wait(std::time::Duration::from_secs(5)) {
                Ok(text) => reply.push("reloaded", TelemetryValue::Str(text)),
                Err(e) => reply.push("refused", TelemetryValue::Str(e)),
            }
            reply
        },
    ) {
        eprintln!("tachyon: WARNING: /tachyon/reload unavailable: {e}");
    }
    let mut shards = shards.into_iter();
    for (index, &lcore) in lcores.iter().enumerate() {
        let mut rx = Vec::new();
        for &(pos, q) in &layout.rx_assignments[index] {
            let queue = queues[pos].0.get_mut(q as usize).and_then(Option::take);
            rx.push(queue.ok_or_else(|| format!("internal: RX queue {q} of port position {pos} assigned twice"))?);
        }
        let tx: Vec<_> = queues.iter_mut().map(|(_, t)| t[index].take().expect("one TX queue per worker")).collect();
        let counters = views[index].counters.clone();
        let worker = Worker {
            index,
            lcore,
            rx,
            tx,
            routes: table.clone(),
            parse,
            burst_size: d.burst_size as usize,
            governance: shards.next().expect("one shard per worker"),
            tables: gov_rcu.reader(index as u32)?,
            counters,
            control: flags.clone(),
        };
        launch_on_lcore(eal, lcore, move || worker.run()).map_err(|e| e.to_string())?;
    }

    // SIGINT through ctrlc, SIGTERM through signal-hook (ctrlc's own SIGTERM
    // support would also take SIGHUP, which reloads the rules instead).
    let stop_signal = Arc::new(AtomicBool::new(false));
    {
        let s = stop_signal.clone();
        ctrlc::set_handler(move || s.store(true, Ordering::SeqCst))
            .map_err(|e| format!("cannot install the SIGINT handler: {e}"))?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, stop_signal.clone())
            .map_err(|e| format!("cannot install the SIGTERM handler: {e}"))?;
    }

    let started = Instant::now();
    let ports_ref: Vec<&Port> = setups.iter().map(|s| &s.port).collect();
    let mut control = ControlLoop {
        workers: &views,
        ports: &ports_ref,
        flags: &flags,
        stop_signal: &stop_signal,
        duration: (options.duration > 0).then(|| std::time::Duration::from_secs(options.duration)),
        stats_interval: (!options.quiet && config.control.stats_interval_ms > 0)
            .then(|| std::time::Duration::from_millis(config.control.stats_interval_ms)),
    };
    control.run(&mut governor);
    drop(ports_ref);

    // Shutdown: stop workers, then ports, then account for every mbuf.
    flags.request_stop();
    wait_all_lcores(eal);
    if let Some(server) = metrics_server {
        server.stop();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let worker_reports: Vec<WorkerReport> = views
        .iter()
        .map(|w| WorkerReport { index: w.index, lcore: w.lcore, socket: w.socket, counters: w.counters.snapshot() })
        .collect();
    let port_reports: Vec<PortReport> = setups
        .iter()
        .map(|s| PortReport {
            id: s.port.id(),
            name: s.port.caps().name.clone(),
            mac: s.port.caps().mac,
            stats: s.port.stats(),
        })
        .collect();
    for s in setups {
        s.port.close();
    }
    let mempool_reports: Vec<MempoolReport> = pools
        .iter()
        .map(|(socket, p)| MempoolReport {
            socket: *socket,
            size: p.size(),
            in_use: p.in_use(),
            available: p.available(),
        })
        .collect();
    drop(pools);

    let report = FinalReport {
        duration_secs: elapsed,
        workers: worker_reports,
        ports: port_reports,
        mempools: mempool_reports,
        governance: governor.report_json(),
    };
    report::print_final(&report);
    if let Some(path) = &options.stats_json {
        let text = serde_json::to_string_pretty(&report.to_json()).expect("json");
        std::fs::write(path, text + "\n").map_err(|e| format!("--stats-json {}: {e}", path.display()))?;
    }
    Ok(())
}

fn links_mask(setups: &[PortSetup]) -> u64 {
    setups.iter().filter(|s| s.port.link().up).fold(0, |m, s| m | 1 << s.port.id())
}
