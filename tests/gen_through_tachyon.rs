//! `tachyon-gen` traffic through the real `tachyon`: a generated pcap is
//! accounted for packet by packet, and live mode over net_memif gets its
//! frames back with loss, order and latency measured.

#![deny(unsafe_code)]

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tachyon::dataplane::reason::DropReason;
use tachyon::traffic::PARSER_REASONS;

fn gen_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tachyon-gen")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Every reason's drops, parser reasons apart from the rest.
fn drops_split(stats: &Value) -> (u64, u64) {
    DropReason::ALL.iter().fold((0, 0), |(parser, other), r| {
        let n = u(&stats["drops"][r.name()]);
        if PARSER_REASONS.contains(r) { (parser + n, other) } else { (parser, other + n) }
    })
}

#[test]
fn tachyon_fed_a_generated_pcap_accounts_for_every_packet() {
    let _g = dpdk_lock();
    let dir = scratch_dir("gen-pcap-through");
    let (pcap, summary_path, stats_path) = (dir.join("t.pcap"), dir.join("summary.json"), dir.join("stats.json"));
    let out = Command::new(gen_bin())
        .args(["pcap", "--frames", "3000", "--topics", "500", "--dist", "zipf", "--senders", "50", "--records", "1-6"])
        .args(["--malformed", "0.12", "--vlan", "5", "--src-ips", "8", "--timestamps", "--seed", "9"])
        .arg("--out")
        .arg(&pcap)
        .arg("--summary-json")
        .arg(&summary_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = read_json(&summary_path);
    let vdevs = vec![format!("net_pcap0,rx_pcap={}", pcap.display()), "net_null0,no-rx=1".to_string()];
    let run = run_tachyon(
        &eal_args(&vdevs),
        &strings(&["--duration", "2", "--quiet", "--stats-json", stats_path.to_str().unwrap()]),
    );
    assert!(run.status.success());
    let stats = read_json(&stats_path);
    let totals = &stats["totals"];
    assert_eq!(u(&totals["rx_packets"]), u(&summary["frames_total"]));
    assert_eq!(u(&totals["tx_packets"]), u(&summary["valid_frames"]));
    assert_eq!(u(&totals["frames_received"]), u(&summary["valid_frames"]));
    assert_eq!(u(&totals["msgs_received"]), u(&summary["messages"]));
    assert_eq!(u(&totals["rx_packets"]), u(&totals["tx_packets"]) + u(&totals["dropped"]));
    assert!(u(&summary["malformed_frames"]) > 0, "the capture should hold malformed packets");
    for reason in DropReason::ALL {
        let expected = summary["malformed"].get(reason.name()).map(u).unwrap_or(0);
        assert_eq!(u(&stats["drops"][reason.name()]), expected, "drops for {reason}");
    }
}

/// Waits for a memif server's socket file (created when tachyon probes its port).
fn wait_for(path: &Path, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(child.try_wait().unwrap().is_none(), "tachyon exited before creating {}", path.display());
        assert!(Instant::now() < deadline, "no memif socket {} after 30 s", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn live_mode_through_tachyon_over_memif_measures_loss_order_and_latency() {
    let _g = dpdk_lock();
    let dir = scratch_dir("gen-live-memif");
    let (sock, t_stats, g_stats) = (dir.join("memif.sock"), dir.join("tachyon.json"), dir.join("gen.json"));
    let common_eal = ["--no-huge", "--no-pci", "--log-level", "lib.eal:error", "--file-prefix"];
    let mut tachyon = Command::new(tachyon_bin())
        .args(["--lcores", "0@0,1@1", "-m", "512"])
        .args(common_eal)
        .arg(file_prefix())
        .arg("--vdev")
        .arg(format!("net_memif0,role=server,socket={},socket-abstract=no", sock.display()))
        .args(["--", "--no-metrics", "--duration", "60", "--quiet", "--stats-json", t_stats.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&sock, &mut tachyon);
    let generator = Command::new(gen_bin())
        .args(["live", "--lcores", "0@0", "-m", "256"])
        .args(common_eal)
        .arg(file_prefix())
        .arg("--vdev")
        .arg(format!("net_memif0,role=client,socket={},socket-abstract=no", sock.display()))
        .args(["--", "--rx-port", "0", "--rate", "100000", "--duration", "2", "--latency", "--quiet"])
        .args(["--settle-ms", "1500", "--linger", "30"])
        .args(["--topics", "1000", "--dist", "zipf", "--senders", "100", "--records", "1-4", "--malformed", "0.05"])
        .args(["--pool-frames", "1000", "--stats-json", g_stats.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Results first; the generator then holds the memif link until tachyon has stopped
    // polling it, because net_memif unmaps the rings of the side that leaves.
    let deadline = Instant::now() + Duration::from_secs(90);
    while !g_stats.exists() && Instant::now() < deadline && tachyon.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill").args(["-INT", &tachyon.id().to_string()]).status().unwrap();
    let t_out = tachyon.wait_with_output().unwrap();
    let gen_out = generator.wait_with_output().unwrap();
    assert!(gen_out.status.success(), "tachyon-gen live: {}", String::from_utf8_lossy(&gen_out.stderr));
    assert!(killed.success() && t_out.status.success(), "tachyon: {}", String::from_utf8_lossy(&t_out.stderr));
    let stdout = String::from_utf8_lossy(&gen_out.stdout);
    assert!(stdout.contains("latency over"), "no latency summary in: {stdout}");

    let report = read_json(&g_stats);
    let stats = read_json(&t_stats);
    let totals = &stats["totals"];
    let sent = u(&report["tx"]["packets"]);
    // About 2 s at 100 kpps; a debug build on a busy machine may fall behind, but not to nothing.
    assert!(sent > 20_000, "sent only {sent}: {report}");
    assert!(u(&report["tx"]["malformed_frames"]) > 0);
    // Everything the port took reached tachyon, and everything tachyon sent came back.
    assert_eq!(u(&totals["rx_packets"]), sent, "tachyon rx vs generator tx");
    assert_eq!(u(&report["rx"]["packets"]), u(&totals["tx_packets"]), "generator rx vs tachyon tx");
    assert_eq!(u(&report["rx"]["tachyon_frames"]), u(&report["rx"]["packets"]), "only Tachyon frames come back");
    // Malformed packets are dropped under the reason they were built for.
    for reason in PARSER_REASONS {
        assert_eq!(u(&stats["drops"][reason.name()]), u(&report["tx"]["malformed"][reason.name()]), "{reason}");
    }
    // Loss = valid frames tachyon dropped for other reasons (e.g. tx_full), not parser drops.
    let (_, other_drops) = drops_split(&stats);
    assert_eq!(report["loss"]["lost"].as_i64().unwrap(), other_drops as i64, "loss not accounted: {report}");
    let (msgs_back, admitted) = (u(&report["rx"]["messages"]), u(&totals["msgs_admitted"]));
    assert!(msgs_back <= admitted && (other_drops > 0 || msgs_back == admitted), "{msgs_back} vs {admitted}");
    assert_eq!(u(&report["rx"]["reordered"]), 0, "one queue each way keeps order");
    let lat = &report["latency"];
    assert!(u(&lat["count"]) > 0, "no latency samples: {report}");
    let q = |k: &str| u(&lat[k]);
    assert!(q("min_ns") > 0 && q("min_ns") <= q("p50_ns"));
    assert!(q("p50_ns") <= q("p99_ns") && q("p99_ns") <= q("p999_ns") && q("p999_ns") <= q("max_ns"), "{lat}");
    // Transit through two memif hops takes microseconds, not seconds: a unit or clock mix-up would show.
    assert!(q("p50_ns") < 1_000_000_000, "{lat}");
}

#[test]
fn live_mode_refuses_bad_options_before_eal() {
    let out = Command::new(gen_bin()).args(["live", "--", "--burst", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--burst"));
    let out = Command::new(gen_bin()).args(["live", "-l", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "EAL arguments without `--` are taken as ours, and refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("EAL arguments go before `--`"));
    let help = Command::new(gen_bin()).args(["live", "--help"]).output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--rx-port"));
}
