//! A memif peer that connects, sends and leaves, over and over, while pcap
//! replay keeps tachyon's worker sending into the memif port at full rate.
//! DPDK 22.11's net_memif unmaps the shared rings from EAL's interrupt thread
//! when the peer leaves; without the guard in `src/dpdk/unmap_guard.rs` a
//! worker inside a burst then touches unmapped memory and the appliance dies
//! (SIGSEGV, typically within ten cycles here).
//!
//! `TACHYON_MEMIF_CHURN_CYCLES` sets the number of cycles (default 20; the
//! issue's 100 is a measurement run: `TACHYON_MEMIF_CHURN_CYCLES=100`).
//! Even cycles end cleanly (the peer stops and closes its port: disconnect
//! message); odd cycles kill the peer with SIGKILL while it sends (end of
//! file on the control socket).

#![deny(unsafe_code)]

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn gen_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tachyon-gen")
}

fn cycles() -> u32 {
    std::env::var("TACHYON_MEMIF_CHURN_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(20)
}

/// pcap replay (port 0) → memif (port 1) → null sink (port 2).
const ROUTES: &str = "[[ports]]\nid = 0\negress_port = 1\n\n[[ports]]\nid = 1\negress_port = 2\n\n\
                      [[ports]]\nid = 2\negress_port = 0\n";

fn start_tachyon(dir: &Path, sock: &Path, stats: &Path) -> Child {
    let pcap = dir.join("replay.pcap");
    let made = Command::new(gen_bin())
        .args(["pcap", "--frames", "512", "--topics", "64", "--records", "1-4", "--out"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let config = dir.join("churn.toml");
    std::fs::write(&config, ROUTES).unwrap();
    Command::new(tachyon_bin())
        .args(["--lcores", "0@0,1@1", "--no-huge", "-m", "512", "--no-pci", "--log-level", "lib.eal:error"])
        .arg("--file-prefix")
        .arg(file_prefix())
        .args(["--vdev", &format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display())])
        .args(["--vdev", &format!("net_memif0,role=server,socket={},socket-abstract=no", sock.display())])
        .args(["--vdev", "net_null0,no-rx=1", "--", "--no-metrics", "--quiet", "--config"])
        .arg(&config)
        .arg("--stats-json")
        .arg(stats)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The memif client: receives what tachyon forwards and sends its own frames.
fn peer(sock: &Path, secs: &str, stats: Option<&Path>) -> Command {
    let mut c = Command::new(gen_bin());
    c.args(["live", "--lcores", "0@0", "--no-huge", "-m", "256", "--no-pci", "--log-level", "lib.eal:error"])
        .arg("--file-prefix")
        .arg(file_prefix())
        .args(["--vdev", &format!("net_memif0,role=client,socket={},socket-abstract=no", sock.display())])
        .args(["--", "--rx-port", "0", "--duration", secs, "--drain-ms", "0", "--quiet", "--pool-frames", "256"]);
    if let Some(s) = stats {
        c.arg("--stats-json").arg(s);
    }
    c
}

fn wait_for_socket(path: &Path, tachyon: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(tachyon.try_wait().unwrap().is_none(), "tachyon exited before creating {}", path.display());
        assert!(Instant::now() < deadline, "no memif socket {} after 60 s", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A peer that runs 0.2 s and leaves cleanly; returns its report.
fn clean_cycle(sock: &Path, report: &Path) -> Value {
    let _ = std::fs::remove_file(report);
    let out = peer(sock, "0.2", Some(report)).output().unwrap();
    assert!(out.status.success(), "peer: {}", String::from_utf8_lossy(&out.stderr));
    read_json(report)
}

/// A peer killed with SIGKILL once its link is up and it has sent for a moment.
fn killed_cycle(sock: &Path) {
    let mut child = peer(sock, "30", None).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let sending = lines.by_ref().map_while(Result::ok).any(|l| l.contains("tachyon-gen live:"));
    assert!(sending, "the peer never connected (status {:?})", child.try_wait().unwrap());
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap();
    child.wait().unwrap();
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn memif_peer_churn_under_load_neither_crashes_nor_leaks() {
    let _g = dpdk_lock();
    let dir = scratch_dir("memif-churn");
    let (sock, stats, report) = (dir.join("memif.sock"), dir.join("tachyon.json"), dir.join("peer.json"));
    let mut tachyon = start_tachyon(&dir, &sock, &stats);
    wait_for_socket(&sock, &mut tachyon);
    let (mut peer_sent, mut peer_received) = (0, 0);
    let n = cycles();
    for cycle in 0..n {
        if cycle % 2 == 0 {
            let r = clean_cycle(&sock, &report);
            peer_sent += u(&r["tx"]["packets"]);
            peer_received += u(&r["rx"]["packets"]);
        } else {
            killed_cycle(&sock);
        }
        if let Some(status) = tachyon.try_wait().unwrap() {
            let err = String::from_utf8_lossy(&tachyon.wait_with_output().unwrap().stderr).into_owned();
            panic!("tachyon died after {} of {n} peer cycles: {status}\n{err}", cycle + 1);
        }
    }
    eprintln!("memif churn: {n} peer cycles survived");
    let stopped = Command::new("kill").args(["-INT", &tachyon.id().to_string()]).status().unwrap();
    let out = tachyon.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stopped.success() && out.status.success(), "tachyon: {stderr}");
    // A file socket (no abstract-socket warning) without a secret (warned about).
    assert!(stderr.contains("WARNING: net_memif0 has no secret"), "{stderr}");
    assert!(!stderr.contains("abstract socket"), "{stderr}");

    // The peers really exchanged traffic with tachyon, both ways.
    assert!(peer_sent > 0 && peer_received > 0, "peers sent {peer_sent}, received {peer_received}");
    let s = read_json(&stats);
    assert!(u(&s["totals"]["rx_packets"]) >= peer_sent, "tachyon missed peer traffic: {s}");
    assert_conserved(&s["totals"]);
    for w in s["workers"].as_array().expect("workers in the report") {
        assert_conserved(w);
    }
    assert_no_mbuf_leak(&s);
}
