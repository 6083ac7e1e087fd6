//! Start-up carries out the plan `--plan` prints, and the shutdown guard leaves
//! nothing behind when start-up fails half-way (failures injected through
//! `TACHYON_TEST_FAIL_AT`, which exists for these tests only).

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use tachyon::traffic::FrameSpec;

/// An endless replay of valid frames into a sink: the worker always has mbufs in flight.
fn traffic_vdevs(dir: &Path) -> Vec<String> {
    let frames: Vec<Vec<u8>> = (0..256u32)
        .map(|i| FrameSpec { topic_id: i % 13, seq: u64::from(i), ..FrameSpec::default() }.build())
        .collect();
    let input = dir.join("in.pcap");
    write_pcap(&input, &frames);
    vec![format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()), "net_null0,no-rx=1".to_string()]
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `--plan --plan-json` for these EAL arguments (EAL is not started).
fn plan_json(eal: &[String]) -> Value {
    let out = Command::new(tachyon_bin()).args(eal).args(["--", "--plan", "--plan-json"]).output().unwrap();
    assert!(out.status.success(), "--plan failed: {}", stderr_of(&out));
    serde_json::from_slice(&out.stdout).expect("--plan-json prints JSON")
}

#[test]
fn the_run_creates_the_mempools_and_workers_the_plan_lists() {
    let _g = dpdk_lock();
    let dir = scratch_dir("plan-vs-run");
    let eal = eal_args(&traffic_vdevs(&dir));
    let plan = plan_json(&eal);
    let stats_path = dir.join("stats.json");
    let out =
        run_tachyon(&eal, &strings(&["--duration", "1", "--quiet", "--stats-json", stats_path.to_str().unwrap()]));
    assert!(out.status.success(), "tachyon failed: {}", stderr_of(&out));
    let stats = read_json(&stats_path);
    let err = stderr_of(&out);

    let planned = plan["plan"]["mempools"].as_array().expect("plan lists mempools");
    let created = stats["mempools"].as_array().expect("stats list mempools");
    assert!(!planned.is_empty());
    let planned_nodes: Vec<u64> = planned.iter().map(|p| p["numa_node"].as_u64().unwrap()).collect();
    let created_sockets: Vec<u64> = created.iter().map(|m| m["socket"].as_u64().unwrap()).collect();
    assert_eq!(created_sockets, planned_nodes, "mempools: stats {created:?} vs plan {planned:?}");

    // Each pool by name, with the plan's workers and RX queues, in the start-up log.
    for pool in planned {
        let node = pool["numa_node"].as_u64().unwrap();
        let workers: Vec<u64> = pool["workers"].as_array().unwrap().iter().map(|w| w.as_u64().unwrap()).collect();
        let queues: Vec<String> = pool["rx_queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pq| format!("{}:{}", pq[0].as_u64().unwrap(), pq[1].as_u64().unwrap()))
            .collect();
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("tachyon: mempool tachyon_mbufs_s{node} on socket {node}:")))
            .unwrap_or_else(|| panic!("no log line for the pool on node {node}:\n{err}"));
        assert!(line.contains(&format!("worker lcore(s) {workers:?}")), "{line} vs plan workers {workers:?}");
        assert!(line.ends_with(&format!("RX queues {}", queues.join(" "))), "{line} vs plan queues {queues:?}");
    }
    let plan_workers: Vec<u64> =
        plan["plan"]["workers"].as_array().unwrap().iter().map(|w| w["lcore"].as_u64().unwrap()).collect();
    let run_workers: Vec<u64> =
        stats["workers"].as_array().unwrap().iter().map(|w| w["lcore"].as_u64().unwrap()).collect();
    assert_eq!(run_workers, plan_workers);
}

/// Runs with a failure injected at `at` and checks: exit status 1 (no signal
/// death, no abort), one clear error line, and every mbuf back in its pool.
fn injected_failure_shuts_down_cleanly(at: &str) -> String {
    let _g = dpdk_lock();
    let dir = scratch_dir(&format!("fail-{at}"));
    let eal = eal_args(&traffic_vdevs(&dir));
    let out = Command::new(tachyon_bin())
        .args(&eal)
        .arg("--")
        .args(app_args(&strings(&["--duration", "5", "--quiet"])))
        .env("TACHYON_TEST_FAIL_AT", at)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "want exit 1, got {:?}; stderr:\n{err}", out.status);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("tachyon: error:")).collect();
    assert_eq!(errors, [format!("tachyon: error: failure injected at {at} (TACHYON_TEST_FAIL_AT, for tests only)")]);
    assert!(!err.contains("panicked"), "{err}");
    let pools: Vec<&str> = err.lines().filter(|l| l.contains("shut down after an error: mempool")).collect();
    assert!(!pools.is_empty(), "the guard reported no mempool:\n{err}");
    for line in &pools {
        assert!(line.contains(" in_use=0 of "), "mbufs not returned: {line}\n{err}");
    }
    err
}

#[test]
fn a_failure_after_the_ports_start_closes_them_and_frees_every_mbuf() {
    let err = injected_failure_shuts_down_cleanly("after_ports");
    assert!(err.contains("tachyon: port 0 started"), "{err}");
}

#[test]
fn a_failure_after_the_workers_launch_stops_them_first_and_frees_every_mbuf() {
    let err = injected_failure_shuts_down_cleanly("after_launch");
    assert!(err.contains("worker(s) on lcores"), "{err}");
}
