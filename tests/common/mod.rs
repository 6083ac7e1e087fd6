//! Shared helpers for the integration tests that start the real `tachyon`
//! binary on DPDK virtual devices (`--no-huge`, so no hugepages needed).
#![allow(dead_code)]

use serde_json::Value;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use tachyon::dataplane::reason::DropReason;

/// Only one DPDK process at a time per test binary: the machine has two
/// cores and every run busy-polls one of them.
static DPDK_LOCK: Mutex<()> = Mutex::new(());

pub fn dpdk_lock() -> MutexGuard<'static, ()> {
    DPDK_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn tachyon_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tachyon")
}

/// A fresh directory for one test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A file prefix unique to this process and call, so EAL runs never collide.
pub fn file_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("tachyon-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// EAL arguments for a vdev-only run on lcores 0 (control) and 1 (worker).
pub fn eal_args(vdevs: &[String]) -> Vec<String> {
    let mut a: Vec<String> =
        ["-l", "0-1", "--no-huge", "-m", "512", "--no-pci", "--log-level", "lib.eal:error", "--file-prefix"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    a.push(file_prefix());
    for v in vdevs {
        a.push("--vdev".into());
        a.push(v.clone());
    }
    a
}

/// App options plus `--no-metrics` unless the test asks for metrics, so
/// tests never compete for the default metrics port.
pub fn app_args(app: &[String]) -> Vec<String> {
    let mut v = app.to_vec();
    if !v.iter().any(|a| a.starts_with("--metrics") || a == "--no-metrics" || a == "--plan") {
        v.push("--no-metrics".into());
    }
    v
}

/// EAL arguments for two workers on this two-CPU machine: lcore 2 shares
/// CPU 0 with the control lcore (config `[workers] lcores = [1, 2]`).
pub fn eal_args_two_workers(vdevs: &[String]) -> Vec<String> {
    let mut a = eal_args(vdevs);
    let l = a.iter().position(|x| x == "-l").expect("eal_args sets -l");
    a.splice(l..l + 2, strings(&["--lcores", "0@0,1@1,2@0"]));
    a
}

/// Runs `tachyon EAL -- --config CFG --duration SECS --quiet --stats-json STATS`.
pub fn run_with_config(eal: &[String], cfg: &Path, secs: u32, stats: &Path) -> Output {
    let app = strings(&[
        "--config",
        cfg.to_str().unwrap(),
        "--duration",
        &secs.to_string(),
        "--quiet",
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    run_tachyon(eal, &app)
}

/// Runs `tachyon EAL -- APP` to completion.
pub fn run_tachyon(eal: &[String], app: &[String]) -> Output {
    let out = Command::new(tachyon_bin()).args(eal).arg("--").args(app_args(app)).output().expect("start tachyon");
    if !out.status.success() {
        eprintln!("tachyon stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

pub fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

pub fn write_pcap(path: &Path, packets: &[Vec<u8>]) {
    use pcap_file::pcap::{PcapPacket, PcapWriter};
    let file = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::new(file).unwrap();
    for (i, p) in packets.iter().enumerate() {
        let ts = std::time::Duration::from_micros(i as u64);
        w.write_packet(&PcapPacket::new(ts, p.len() as u32, p)).unwrap();
    }
}

pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    use pcap_file::pcap::PcapReader;
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut r = PcapReader::new(file).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A counter of a stats JSON object (`--stats-json` totals or a worker,
/// or a `/tachyon/stats` reply); fails the test when it is missing.
pub fn counter(v: &Value, name: &str) -> u64 {
    v[name].as_u64().unwrap_or_else(|| panic!("no counter {name} in {v}"))
}

/// The drops of `reason`; fails the test when the reason is missing.
pub fn drops(v: &Value, reason: DropReason) -> u64 {
    v["drops"][reason.name()].as_u64().unwrap_or_else(|| panic!("no drop counter {reason} in {v}"))
}

/// rx = tx + every drop reason (each one present), for totals or one worker.
pub fn assert_conserved(v: &Value) {
    let dropped: u64 = DropReason::ALL.iter().map(|r| drops(v, *r)).sum();
    assert_eq!(counter(v, "dropped"), dropped, "dropped != sum of the reasons in {v}");
    assert_eq!(counter(v, "rx_packets"), counter(v, "tx_packets") + dropped, "rx != tx + drops in {v}");
}

/// Every mempool of the report got all its mbufs back at shutdown (and
/// there is at least one pool to look at).
pub fn assert_no_mbuf_leak(stats: &Value) {
    let pools = stats["mempools"].as_array().unwrap_or_else(|| panic!("no mempools in {stats}"));
    assert!(!pools.is_empty(), "no mempool in the report: {stats}");
    for pool in pools {
        assert_eq!(pool["in_use_after_shutdown"], 0, "mbufs not returned to {pool}");
    }
}

/// Parses "aa:bb:cc:dd:ee:ff".
pub fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    v.try_into().unwrap()
}

/// `pkt` as it should leave: MACs rewritten, everything else unchanged.
pub fn with_macs(pkt: &[u8], dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut p = pkt.to_vec();
    p[0..6].copy_from_slice(&dst);
    p[6..12].copy_from_slice(&src);
    p
}

/// A loopback address with a port nobody listens on right now.
pub fn free_loopback_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Sends each command to DPDK telemetry through `dpdk-telemetry.py`; one JSON reply per command.
pub fn telemetry(prefix: &str, commands: &[&str]) -> Vec<serde_json::Value> {
    let mut child = Command::new("dpdk-telemetry.py")
        .args(["-f", prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py (Debian package dpdk) runs");
    let input: String = commands.iter().map(|c| format!("{c}\n")).collect();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let replies: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(
        replies.len(),
        commands.len(),
        "dpdk-telemetry.py said:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    replies
}

/// What every run must show at exit (issue 13, item 6): each worker and the
/// totals conserved (rx = tx + every drop reason), the workers adding up to
/// the totals, and every mbuf back in its pool.
pub fn assert_run_consistent(stats: &Value) {
    let totals = &stats["totals"];
    assert_conserved(totals);
    let workers = stats["workers"].as_array().unwrap_or_else(|| panic!("no workers in {stats}"));
    assert!(!workers.is_empty(), "no worker in the report: {stats}");
    for w in workers {
        assert_conserved(w);
    }
    for name in ["rx_packets", "tx_packets", "dropped", "bridge_msgs_received", "bridge_msgs_admitted"] {
        let sum: u64 = workers.iter().map(|w| counter(w, name)).sum();
        assert_eq!(sum, counter(totals, name), "workers' {name} do not add up to the total");
    }
    assert_no_mbuf_leak(stats);
}

/// No message the bridge accepted is lost: every message a shard accepted
/// was taken by its worker or is still in the ring, and every message taken
/// was admitted or dropped for a counted reason — per worker and in total.
pub fn assert_bridge_conserved(stats: &Value) {
    let shards = stats["bridge"]["shards"].as_array().unwrap_or_else(|| panic!("no bridge shards in {stats}"));
    let accepted: u64 = shards.iter().map(|s| counter(s, "accepted_msgs")).sum();
    let in_rings: u64 = shards.iter().map(|s| counter(s, "ring_depth_msgs")).sum();
    let totals = &stats["totals"];
    assert_eq!(
        accepted,
        counter(totals, "bridge_msgs_received") + in_rings,
        "accepted != taken + left in rings: {stats}"
    );
    for v in stats["workers"].as_array().unwrap().iter().chain([totals]) {
        let dropped: u64 = DropReason::ALL
            .iter()
            .map(|r| v["bridge_drops"][r.name()].as_u64().unwrap_or_else(|| panic!("no bridge drop {r} in {v}")))
            .sum();
        let lost = counter(v, "bridge_msgs_no_mbuf") + counter(v, "bridge_msgs_oversize");
        assert_eq!(
            counter(v, "bridge_msgs_received"),
            counter(v, "bridge_msgs_admitted") + dropped + lost,
            "bridge messages taken != admitted + counted drops in {v}"
        );
    }
}

/// The `--file-prefix` of EAL arguments made by [`eal_args`].
pub fn prefix_of(eal: &[String]) -> String {
    let p = eal.iter().position(|a| a == "--file-prefix").expect("eal_args sets --file-prefix");
    eal[p + 1].clone()
}

/// One telemetry command, or None when the appliance does not answer (yet).
pub fn try_telemetry(prefix: &str, command: &str) -> Option<Value> {
    let mut child = Command::new("dpdk-telemetry.py")
        .args(["-f", prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dpdk-telemetry.py (Debian package dpdk) runs");
    child.stdin.take().unwrap().write_all(format!("{command}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let reply: Value = String::from_utf8_lossy(&out.stdout).lines().find_map(|l| serde_json::from_str(l).ok())?;
    Some(reply[command].clone()).filter(|v| !v.is_null())
}

/// The fraction of the packets processed between two `/tachyon/stats`
/// readings that were dropped by a rule.
pub fn rule_drop_share(prefix: &str, window: std::time::Duration) -> f64 {
    let read = || {
        let r = &telemetry(prefix, &["/tachyon/stats"])[0]["/tachyon/stats"];
        (counter(r, "rx_packets"), r["drops"]["rule_drop"].as_u64().unwrap())
    };
    let (rx0, d0) = read();
    std::thread::sleep(window);
    let (rx1, d1) = read();
    assert!(rx1 > rx0 + 1000, "traffic stalled: {rx0} -> {rx1}");
    (d1 - d0) as f64 / (rx1 - rx0) as f64
}

/// A running appliance, killed if the test fails half-way.
pub struct Running {
    pub child: std::process::Child,
    pub prefix: String,
}

impl Running {
    /// Starts `tachyon EAL -- APP` with `env`; stderr is kept for [`Running::stop`].
    pub fn start(eal: &[String], app: &[String], env: &[(&str, &str)]) -> Running {
        let child = Command::new(tachyon_bin())
            .args(eal)
            .arg("--")
            .args(app_args(app))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tachyon");
        Running { child, prefix: prefix_of(eal) }
    }

    /// Waits until `command` answers through telemetry (the run is up).
    pub fn wait_for(&mut self, command: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("tachyon exited early ({status}): {}", self.stderr());
            }
            if let Some(v) = try_telemetry(&self.prefix, command) {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "telemetry never answered {command}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    }

    /// Sends `signal` (e.g. "-TERM") and waits for the exit; returns the
    /// status and everything written to stderr.
    pub fn stop(mut self, signal: &str) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
        let err = self.stderr();
        (self.child.wait().unwrap(), err)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
