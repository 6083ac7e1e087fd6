//! Watches the real `tachyon` the way an operator does: scrapes `/metrics`
//! over HTTP, validates it with `promtool`, lets a real Prometheus server
//! scrape it, and asks DPDK telemetry (`dpdk-telemetry.py`) for the
//! `/tachyon/*` commands. Runs on DPDK virtual devices with `--no-huge`.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package, which
//! `scripts/setup.sh` installs: without them these tests fail, they do not skip.

#![deny(unsafe_code)]

mod common;

use common::{dpdk_lock, file_prefix as unique_prefix, free_loopback_port, scratch_dir, telemetry};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The drop reasons of PROTOCOL.md, in its order.
const REASONS: [&str; 17] = [
    "not_ipv4",
    "ip_malformed",
    "ip_checksum",
    "ip_fragment",
    "not_udp",
    "udp_malformed",
    "not_tachyon",
    "bad_magic",
    "bad_version",
    "bad_header",
    "truncated",
    "trailing_bytes",
    "rule_drop",
    "topic_limited",
    "sender_limited",
    "no_route",
    "tx_full",
];

/// A unique EAL file prefix that names the test it belongs to.
fn prefix_for(name: &str) -> String {
    format!("{}-{name}", unique_prefix())
}

fn scratch(name: &str) -> PathBuf {
    scratch_dir(&format!("obs-{name}"))
}

/// Writes `frames` packets with `malformed` of them spread over the parser's reasons.
fn make_pcap(path: &Path, frames: u32, malformed: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_tachyon-gen"))
        .args(["pcap", "--frames", &frames.to_string(), "--malformed", malformed, "--seed", "7", "--out"])
        .arg(path)
        .output()
        .expect("tachyon-gen runs");
    assert!(out.status.success(), "tachyon-gen: {}", String::from_utf8_lossy(&out.stderr));
}

/// Fails the test, with the fix, when a tool the test needs is missing.
fn require_tool(tool: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("{tool} not found: install Debian's `prometheus` package (apt-get install prometheus; scripts/setup.sh does)")
    })
}

/// A running `tachyon`; killed if the test ends before it does.
struct Appliance {
    child: Child,
    stderr_lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Appliance {
    fn start(prefix: &str, vdevs: &[String], app: &[&str]) -> Appliance {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tachyon"));
        cmd.args(["-l", "0-1", "--no-huge", "-m", "512", "--no-pci", "--log-level", "lib.eal:error"])
            .args(["--file-prefix", prefix]);
        for v in vdevs {
            cmd.args(["--vdev", v]);
        }
        cmd.arg("--").args(app).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("tachyon starts");
        let (tx, stderr_lines) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (pipe, all) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                all.lock().unwrap().push_str(&(line.clone() + "\n"));
                let _ = tx.send(line);
            }
        });
        Appliance { child, stderr_lines, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The address from "metrics on http://ADDR/metrics".
    fn metrics_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Ok(line) = self.stderr_lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if let Some(rest) = line.strip_prefix("tachyon: metrics on http://") {
                return rest.trim_end_matches("/metrics").parse().expect("an IP:PORT");
            }
        }
        panic!("tachyon never said where its metrics are:\n{}", self.stderr());
    }

    fn wait(mut self, limit: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the stderr reader drain
                return (status, self.stderr());
            }
            assert!(Instant::now() < deadline, "tachyon did not exit in {limit:?}:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Threads of the process: (name, CPUs allowed).
    fn threads(&self) -> Vec<(String, String)> {
        let task = PathBuf::from(format!("/proc/{}/task", self.child.id()));
        std::fs::read_dir(task)
            .unwrap()
            .flatten()
            .map(|t| {
                let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
                let cpus = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap_or("");
                (comm.trim().to_string(), cpus.trim().to_string())
            })
            .collect()
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A plain HTTP/1.1 GET: (status code, headers, body).
fn http_get(addr: SocketAddr, path: &str, accept: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status code");
    (status, head.to_string(), body.to_string())
}

fn scrape(addr: SocketAddr) -> String {
    let (status, head, body) = http_get(addr, "/metrics", "*/*");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body
}

/// Series (name with labels) -> value, from the text format.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series value");
            (series.to_string(), value.parse().unwrap_or_else(|_| panic!("value of {l}")))
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("no series {series}"))
}

fn promtool_check(exposition: &str) {
    let mut child = Command::new(require_tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics objects:\n{said}");
}

#[test]
fn scrapes_match_the_stats_json_written_at_exit() {
    let _dpdk = dpdk_lock();
    let dir = scratch("agree");
    let pcap = dir.join("finite.pcap");
    const FRAMES: u32 = 30_000;
    make_pcap(&pcap, FRAMES, "0.12");
    let stats_path = dir.join("stats.json");
    // Without infinite_rx net_pcap replays the file once: counters stop moving,
    // so a scrape after the last packet must equal the report at exit.
    let app = Appliance::start(
        &prefix_for("agree"),
        &[format!("net_pcap0,rx_pcap={}", pcap.display()), "net_null0,no-rx=1".into()],
        &["--duration", "5", "--quiet", "--metrics", "127.0.0.1:0", "--stats-json", stats_path.to_str().unwrap()],
    );
    let addr = app.metrics_addr();
    let processed = |s: &BTreeMap<String, f64>| {
        s.iter().filter(|(k, _)| k.starts_with("tachyon_packets_processed_total{")).map(|(_, v)| *v).sum::<f64>()
    };
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut seen = Vec::new();
    let last = loop {
        let text = scrape(addr);
        let s = samples(&text);
        seen.push(processed(&s));
        if processed(&s) == FRAMES as f64 {
            break text;
        }
        assert!(Instant::now() < deadline, "processed packets never reached {FRAMES}: {seen:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "counters went backwards: {seen:?}");
    promtool_check(&last);
    let (status, head, openmetrics) = http_get(addr, "/metrics", "application/openmetrics-text;version=1.0.0");
    assert_eq!(status, 200);
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(openmetrics.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    assert!(openmetrics.contains("# TYPE tachyon_packets_processed counter\n"));

    let (status, stderr) = app.wait(Duration::from_secs(30));
    assert!(status.success(), "tachyon failed:\n{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
    let s = samples(&last);
    let workers = report["workers"].as_array().unwrap();
    assert!(!workers.is_empty());
    let counter_series = [
        ("rx_packets", "tachyon_packets_processed_total"),
        ("rx_bytes", "tachyon_bytes_processed_total"),
        ("tx_packets", "tachyon_packets_sent_total"),
        ("tx_bytes", "tachyon_bytes_sent_total"),
        ("frames_received", "tachyon_frames_received_total"),
        ("frames_admitted", "tachyon_frames_admitted_total"),
        ("other_forwarded", "tachyon_packets_other_forwarded_total"),
        ("rx_multi_segment", "tachyon_packets_multi_segment_total"),
        ("full_bursts", "tachyon_rx_full_bursts_total"),
        ("polls_busy", "tachyon_polls_total"),
        ("governance_frames", "tachyon_governance_duration_seconds_count"),
        ("bridge_msgs_received", "tachyon_bridge_msgs_received_total"),
        ("bridge_msgs_admitted", "tachyon_bridge_msgs_admitted_total"),
        ("bridge_frames_sent", "tachyon_bridge_frames_sent_total"),
        ("bridge_bytes_sent", "tachyon_bridge_bytes_sent_total"),
        ("bridge_frames_tx_full", "tachyon_bridge_frames_tx_full_total"),
        ("bridge_msgs_no_mbuf", "tachyon_bridge_msgs_no_mbuf_total"),
        ("bridge_msgs_oversize", "tachyon_bridge_msgs_oversize_total"),
    ];
    // The message families are split by source (the bridge is on by default).
    let by_source = [
        ("msgs_received", "tachyon_messages_received_total", "wire"),
        ("msgs_admitted", "tachyon_messages_admitted_total", "wire"),
        ("bridge_msgs_received", "tachyon_messages_received_total", "bridge"),
        ("bridge_msgs_admitted", "tachyon_messages_admitted_total", "bridge"),
    ];
    for w in workers {
        let core = w["lcore"].to_string();
        for (json_key, metric) in counter_series {
            let series = if json_key == "polls_busy" {
                format!("{metric}{{core=\"{core}\",result=\"busy\"}}")
            } else {
                format!("{metric}{{core=\"{core}\"}}")
            };
            assert_eq!(value(&s, &series), w[json_key].as_u64().unwrap() as f64, "{series} vs stats-json {json_key}");
        }
        for (json_key, metric, source) in by_source {
            let series = format!("{metric}{{core=\"{core}\",source=\"{source}\"}}");
            assert_eq!(value(&s, &series), w[json_key].as_u64().unwrap() as f64, "{series} vs stats-json {json_key}");
        }
        for reason in ["rule_drop", "topic_limited", "sender_limited", "no_route"] {
            let series = format!("tachyon_bridge_msgs_dropped_total{{core=\"{core}\",reason=\"{reason}\"}}");
            assert_eq!(value(&s, &series), w["bridge_drops"][reason].as_u64().unwrap() as f64, "{series}");
        }
        let mut dropped = 0.0;
        for reason in REASONS {
            let n = value(&s, &format!("tachyon_packets_dropped_total{{core=\"{core}\",reason=\"{reason}\"}}"));
            assert_eq!(n, w["drops"][reason].as_u64().unwrap() as f64, "drops of {reason} on core {core}");
            dropped += n;
        }
        assert_eq!(dropped, w["dropped"].as_u64().unwrap() as f64);
    }
    // The traffic had malformed packets under every parser reason, and totals agree.
    let totals = &report["totals"];
    assert_eq!(totals["rx_packets"], FRAMES);
    for reason in &REASONS[..12] {
        assert!(totals["drops"][reason].as_u64().unwrap() > 0, "no {reason} drops in the traffic");
    }
    let drop_reasons: BTreeSet<&str> = s
        .keys()
        .filter_map(|k| k.strip_prefix("tachyon_packets_dropped_total{"))
        .filter_map(|k| k.split("reason=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(drop_reasons, REASONS.iter().copied().collect(), "reason labels are PROTOCOL.md's names");
    for p in report["ports"].as_array().unwrap() {
        let labels = format!("{{port=\"{}\",name={}}}", p["port"], p["name"]);
        assert_eq!(value(&s, &format!("tachyon_port_rx_packets_total{labels}")), p["rx_packets"].as_f64().unwrap());
        assert_eq!(value(&s, &format!("tachyon_port_tx_packets_total{labels}")), p["tx_packets"].as_f64().unwrap());
        assert_eq!(value(&s, &format!("tachyon_port_rx_nombuf_total{labels}")), p["rx_nombuf"].as_f64().unwrap());
        assert_eq!(value(&s, &format!("tachyon_port_rx_missed_total{labels}")), p["rx_missed"].as_f64().unwrap());
    }
    for m in report["mempools"].as_array().unwrap() {
        let socket = format!("{{socket=\"{}\"}}", m["socket"]);
        let capacity = value(&s, &format!("tachyon_mempool_mbufs_capacity{socket}"));
        assert_eq!(capacity, m["size"].as_f64().unwrap());
        let in_use = value(&s, &format!("tachyon_mempool_mbufs_in_use{socket}"));
        assert!(in_use <= capacity, "in use {in_use} of {capacity}");
        assert_eq!(m["in_use_after_shutdown"], 0, "mbufs not returned to {m}");
    }
}

#[test]
fn a_full_bucket_table_shows_in_the_safeguard_counters() {
    let _dpdk = dpdk_lock();
    let dir = scratch("safeguards");
    let pcap = dir.join("topics.pcap");
    // 20,000 valid frames over 5,000 topics against a topic table of 64:
    // most topics find no room and share their profile's overflow bucket.
    let out = Command::new(env!("CARGO_BIN_EXE_tachyon-gen"))
        .args(["pcap", "--frames", "20000", "--topics", "5000", "--seed", "3", "--out"])
        .arg(&pcap)
        .output()
        .expect("tachyon-gen runs");
    assert!(out.status.success(), "tachyon-gen: {}", String::from_utf8_lossy(&out.stderr));
    let cfg = dir.join("small.toml");
    std::fs::write(
        &cfg,
        "[governance]\nmax_topics = 64\n[governance.topic_defaults]\nrate = 100000000\nburst = 1000000\n",
    )
    .unwrap();
    let stats_path = dir.join("stats.json");
    let app = Appliance::start(
        &prefix_for("safeguards"),
        &[format!("net_pcap0,rx_pcap={}", pcap.display()), "net_null0,no-rx=1".into()],
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--duration",
            "4",
            "--quiet",
            "--metrics",
            "127.0.0.1:0",
            "--stats-json",
            stats_path.to_str().unwrap(),
        ],
    );
    let addr = app.metrics_addr();
    let overflow = "tachyon_governance_safeguards_total{event=\"overflow_frames\"}";
    let deadline = Instant::now() + Duration::from_secs(3);
    let scraped = loop {
        let s = samples(&scrape(addr));
        if value(&s, overflow) > 0.0 {
            break s;
        }
        assert!(Instant::now() < deadline, "no overflow frames scraped: {s:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (status, stderr) = app.wait(Duration::from_secs(30));
    assert!(status.success(), "tachyon failed:\n{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
    let safeguards = &report["governance"]["safeguards"];
    let in_report = safeguards["overflow_frames"].as_u64().unwrap();
    // Every frame of a topic without a bucket of its own: at least the
    // frames of the topics beyond the table's 64.
    assert!(in_report >= 10_000, "overflow frames {in_report} in {safeguards}");
    assert!(value(&scraped, overflow) <= in_report as f64, "the scrape ran ahead of the report");
    // The full table also evicts idle buckets (any count); with one worker
    // nothing is reported or shared, so nothing of that is lost.
    let evicted = safeguards["evicted"].as_u64().unwrap() as f64;
    assert!(value(&scraped, "tachyon_governance_safeguards_total{event=\"evicted\"}") <= evicted);
    for event in ["reports_lost", "shares_lost", "listings_refused"] {
        assert_eq!(safeguards[event], 0, "{event} in {safeguards}");
        let series = format!("tachyon_governance_safeguards_total{{event=\"{event}\"}}");
        assert_eq!(value(&scraped, &series), 0.0, "{series}");
    }
}

#[test]
fn a_bridge_publish_shows_in_the_scrape() {
    let _dpdk = dpdk_lock();
    let dir = scratch("bridge");
    let region = dir.join("tachyon.bridge");
    let stats_path = dir.join("stats.json");
    let app = Appliance::start(
        &prefix_for("bridge"),
        &["net_null0,no-rx=1".into()],
        &[
            "--duration",
            "30",
            "--quiet",
            "--metrics",
            "127.0.0.1:0",
            "--bridge",
            region.to_str().unwrap(),
            "--stats-json",
            stats_path.to_str().unwrap(),
        ],
    );
    // Metrics start after the region exists, so the client can connect at once.
    let addr = app.metrics_addr();
    let client = tachyon_bridge::Bridge::connect(&region).unwrap_or_else(|e| panic!("{e}:\n{}", app.stderr()));
    let subscription = client.subscribe(None).unwrap();
    const N: usize = 1000;
    let topics: Vec<u32> = (0..N as u32).map(|i| 1 + i / 250).collect();
    let senders = vec![7u32; N];
    let payloads = vec![b'x'; 16 * N];
    let offsets: Vec<u64> = (0..=N as u64).map(|i| 16 * i).collect();
    let report = client.publish_batch(&topics, &senders, &payloads, &offsets).unwrap();
    assert!(report.all_accepted(), "{report:?}");

    // One worker (lcore 1), so one shard (0).
    let deadline = Instant::now() + Duration::from_secs(10);
    let (text, s) = loop {
        let text = scrape(addr);
        let s = samples(&text);
        let received = s.get("tachyon_bridge_msgs_received_total{core=\"1\"}").copied();
        let depth = s.get("tachyon_bridge_ring_depth_msgs{shard=\"0\"}").copied();
        if received == Some(N as f64) && depth == Some(0.0) {
            break (text, s);
        }
        assert!(Instant::now() < deadline, "the scrape never showed the {N} messages:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    promtool_check(&text);
    for (series, want) in [
        ("tachyon_bridge_accepted_msgs_total{shard=\"0\"}", N as f64),
        ("tachyon_bridge_accepted_batches_total{shard=\"0\"}", 1.0),
        ("tachyon_bridge_refused_batches_total{shard=\"0\"}", 0.0),
        ("tachyon_bridge_unblocked_total{shard=\"0\"}", 0.0),
        ("tachyon_bridge_malformed_msgs_total{shard=\"0\"}", 0.0),
        ("tachyon_bridge_malformed_blocks_total{shard=\"0\"}", 0.0),
        ("tachyon_bridge_ring_depth_bytes{shard=\"0\"}", 0.0),
        ("tachyon_bridge_subscribers_active", 1.0),
        ("tachyon_bridge_msgs_admitted_total{core=\"1\"}", N as f64),
        ("tachyon_messages_received_total{core=\"1\",source=\"bridge\"}", N as f64),
        ("tachyon_messages_admitted_total{core=\"1\",source=\"bridge\"}", N as f64),
        ("tachyon_messages_received_total{core=\"1\",source=\"wire\"}", 0.0),
        ("tachyon_bridge_msgs_dropped_total{core=\"1\",reason=\"topic_limited\"}", 0.0),
    ] {
        assert_eq!(value(&s, series), want, "{series}");
    }
    let overflow: Vec<&String> =
        s.keys().filter(|k| k.starts_with("tachyon_bridge_subscriber_overflow_total{")).collect();
    assert_eq!(overflow.len(), 1, "one series per active subscriber: {overflow:?}");
    // Runs of 250 messages of one topic and sender share frames.
    let frames = value(&s, "tachyon_bridge_frames_sent_total{core=\"1\"}");
    assert!((4.0..N as f64).contains(&frames), "frames sent: {frames}");
    assert!(value(&s, "tachyon_bridge_bytes_sent_total{core=\"1\"}") > (16 * N) as f64);

    drop(subscription);
    drop(client);
    let interrupted = Command::new("kill").args(["-INT", &app.child.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let (status, stderr) = app.wait(Duration::from_secs(30));
    assert!(status.success(), "tachyon failed:\n{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
    assert_eq!(report["totals"]["bridge_frames_sent"].as_f64().unwrap(), frames, "{report}");
    assert_eq!(report["bridge"]["shards"][0]["accepted_msgs"], N, "{report}");
    assert!(!region.exists(), "a clean exit removes the region");
}

/// A Prometheus server on loopback with its own storage; killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        let binary = require_tool("prometheus");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: tachyon\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = free_loopback_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let p = Prometheus { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() || http_get(addr, "/-/ready", "*/*").0 != 200 {
            assert!(Instant::now() < deadline, "prometheus not ready: {}", p.log(dir));
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn log(&self, dir: &Path) -> String {
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: labels -> (sample time, value) per series.
    fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64, f64)> {
        let encoded: String = promql
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let (status, _, body) = http_get(self.addr, &format!("/api/v1/query?query={encoded}"), "application/json");
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{body}");
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                let at = r["value"][0].as_f64().unwrap();
                let value = r["value"][1].as_str().unwrap().parse().unwrap();
                (labels, at, value)
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_sees_every_worker_core_rising_and_telemetry_answers() {
    let _dpdk = dpdk_lock();
    let dir = scratch("prom");
    let pcap = dir.join("loop.pcap");
    make_pcap(&pcap, 4096, "0.05");
    let prefix = prefix_for("prom");
    let stats_path = dir.join("stats.json");
    let app = Appliance::start(
        &prefix,
        &[format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display()), "net_null0,no-rx=1".into()],
        &["--duration", "60", "--quiet", "--metrics", "127.0.0.1:0", "--stats-json", stats_path.to_str().unwrap()],
    );
    let addr = app.metrics_addr();

    // The server thread runs where EAL put the main lcore (CPU 0 with -l 0-1), never on the worker's CPU.
    // A new thread names itself once it runs, so give it a moment to appear under its name.
    let mut threads = app.threads();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !threads.iter().any(|(n, _)| n == "tachyon-metrics") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        threads = app.threads();
    }
    let cpus_of = |name: &str| threads.iter().find(|(n, _)| n == name).map(|(_, c)| c.clone());
    assert_eq!(cpus_of("tachyon-metrics").as_deref(), Some("0"), "threads: {threads:?}");
    assert_eq!(cpus_of("rte-worker-1").as_deref(), Some("1"), "threads: {threads:?}");

    promtool_check(&scrape(addr));

    let prometheus = Prometheus::start(&dir, addr);
    // With -l 0-1, lcore 0 is the control lcore and lcore 1 the only worker.
    let worker_cores: BTreeSet<String> = ["1".to_string()].into();
    let mut first: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(18);
    let rising = loop {
        let now: BTreeMap<String, (f64, f64)> = prometheus
            .query("tachyon_packets_processed_total")
            .into_iter()
            .map(|(labels, at, v)| (labels["core"].clone(), (at, v)))
            .collect();
        if first.is_empty() && now.keys().cloned().collect::<BTreeSet<_>>() == worker_cores {
            first = now.clone();
        }
        let risen: BTreeSet<String> = now
            .iter()
            .filter(|(core, (_, v))| first.get(*core).is_some_and(|(_, v0)| v > v0))
            .map(|(c, _)| c.clone())
            .collect();
        if !first.is_empty() && risen == worker_cores {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not see every worker core {worker_cores:?} rising: first {first:?}, now {now:?}\n{}",
            prometheus.log(&dir)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(rising.values().all(|(_, v)| *v > 0.0));
    let up = prometheus.query("up{job=\"tachyon\"}");
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].2, 1.0, "Prometheus scrapes tachyon without error");
    let drops = prometheus.query("tachyon_packets_dropped_total");
    let reasons: BTreeSet<String> = drops.iter().map(|(l, _, _)| l["reason"].clone()).collect();
    assert_eq!(reasons, REASONS.iter().map(|r| r.to_string()).collect());
    assert!(!prometheus.query("tachyon_governance_duration_seconds_bucket").is_empty(), "the histogram is stored");

    // Every query of the Grafana dashboard is valid PromQL over these metrics, and the
    // core panels have data.
    let dashboard: Value = serde_json::from_str(include_str!("../dashboards/tachyon-grafana.json")).unwrap();
    // The bridge is on by default, so its shard's series exist (zeros) without a publisher.
    let must_show = [
        "Throughput per core",
        "Drops by reason",
        "Governance time per frame",
        "RX queue depth",
        "Bridge ring depth per shard",
        "Messages by source",
    ];
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let resolved = expr.replace("$instance", ".*").replace("$core", ".*").replace("$__rate_interval", "5s");
            let result = prometheus.query(&resolved);
            let title = panel["title"].as_str().unwrap();
            assert!(!must_show.contains(&title) || !result.is_empty(), "panel {title:?} has no data for {expr}");
        }
    }

    // DPDK telemetry: our commands sit beside DPDK's own.
    let replies = telemetry(&prefix, &["/", "/tachyon/stats", "/tachyon/workers", "/tachyon/rules"]);
    let commands: Vec<&str> = replies[0]["/"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for c in ["/ethdev/stats", "/tachyon/stats", "/tachyon/workers", "/tachyon/rules"] {
        assert!(commands.contains(&c), "{c} missing from {commands:?}");
    }
    let stats = &replies[1]["/tachyon/stats"];
    assert!(stats["rx_packets"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["workers"], 1);
    let reason_keys: BTreeSet<&str> = stats["drops"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(reason_keys, REASONS.iter().copied().collect());
    assert!(stats["drops"]["bad_magic"].as_u64().unwrap() > 0, "{stats}");
    assert!(replies[2]["/tachyon/workers"]["1"]["rx_packets"].as_u64().unwrap() > 0, "{}", replies[2]);
    assert_eq!(replies[3]["/tachyon/rules"]["hits"], serde_json::json!({}));

    // The PMD holds its copy of the looping capture in the pool while it runs,
    // so the in-use gauge is far from 0 now; a shutdown that leaked those (or
    // any packet in flight) would show in the report's count below.
    let s = samples(&scrape(addr));
    let in_use: f64 = s.iter().filter(|(k, _)| k.starts_with("tachyon_mempool_mbufs_in_use{")).map(|(_, v)| *v).sum();
    assert!(in_use >= 4096.0, "the capture's 4096 mbufs are in use while running: {in_use}");

    // Done: stop it the way an operator would, and check it ends cleanly.
    let interrupted = Command::new("kill").args(["-INT", &app.child.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let (status, stderr) = app.wait(Duration::from_secs(30));
    assert!(status.success(), "tachyon failed:\n{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
    let pools = report["mempools"].as_array().unwrap();
    assert!(!pools.is_empty(), "{report}");
    for pool in pools {
        assert_eq!(pool["in_use_after_shutdown"], 0, "mbufs not returned to {pool}");
    }
    let last_seen = rising["1"].1;
    assert!(report["workers"][0]["rx_packets"].as_f64().unwrap() >= last_seen, "{report}");
}

#[test]
fn a_metrics_address_in_use_stops_tachyon_before_it_starts() {
    let _dpdk = dpdk_lock();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let app =
        Appliance::start(&prefix_for("busy"), &["net_null0,no-rx=1".into()], &["--duration", "5", "--metrics", &addr]);
    let (status, stderr) = app.wait(Duration::from_secs(20));
    assert!(!status.success());
    assert!(stderr.contains(&format!("metrics: cannot listen on {addr}")) && stderr.contains("in use"), "{stderr}");
    assert!(!stderr.contains("worker(s) on lcores"), "failed before any worker started:\n{stderr}");

    let app = Appliance::start(&prefix_for("bad"), &[], &["--metrics", "localhost"]);
    let (status, stderr) = app.wait(Duration::from_secs(20));
    assert!(!status.success());
    assert!(stderr.contains("--metrics") && stderr.contains("IP:PORT"), "{stderr}");
}
