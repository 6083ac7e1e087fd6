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
