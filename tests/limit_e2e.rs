//! `/tachyon/limit` on the real binary: a runtime topic limit set over DPDK
//! telemetry governs bridge messages like a configured one, survives a
//! reload, is cleared again, and bad parameters are refused without harm.
mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tachyon_bridge::Bridge;

fn limit(prefix: &str, params: &str) -> Value {
    let cmd = if params.is_empty() { "/tachyon/limit".to_string() } else { format!("/tachyon/limit,{params}") };
    telemetry(prefix, &[&cmd]).remove(0)["/tachyon/limit"].clone()
}

/// `n` messages in runs of 5, alternating `a` and `b`.
fn runs(n: usize, a: u32, b: u32) -> (Vec<u32>, Vec<u32>, Vec<u8>, Vec<u64>) {
    let (mut t, mut s, mut p, mut o) = (Vec::new(), Vec::new(), Vec::new(), vec![0u64]);
    for i in 0..n {
        t.push(if (i / 5) % 2 == 0 { a } else { b });
        s.push(9);
        p.extend_from_slice(format!("msg-{i}").as_bytes());
        o.push(p.len() as u64);
    }
    (t, s, p, o)
}

#[test]
fn a_runtime_topic_limit_governs_survives_a_reload_and_clears() {
    let _g = dpdk_lock();
    let dir = scratch_dir("runtime-limit");
    let empty = dir.join("empty.pcap");
    write_pcap(&empty, &[]);
    let cfg = dir.join("gov.toml");
    std::fs::write(&cfg, "[governance]\nreconcile_us = 1000\n").unwrap();
    let path = dir.join("t.bridge");
    let stats_path = dir.join("stats.json");
    let eal = eal_args(&[format!("net_pcap0,rx_pcap={},tx_pcap={}", empty.display(), dir.join("o.pcap").display())]);
    let prefix = eal[eal.iter().position(|a| a == "--file-prefix").unwrap() + 1].clone();
    let app = strings(&[
        "--duration",
        "30",
        "--quiet",
        "--config",
        cfg.to_str().unwrap(),
        "--bridge",
        path.to_str().unwrap(),
        "--stats-json",
        stats_path.to_str().unwrap(),
    ]);
    let mut child = Command::new(tachyon_bin())
        .args(&eal)
        .arg("--")
        .args(app_args(&app))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let bridge = loop {
        match Bridge::connect(&path) {
            Ok(b) => break b,
            Err(e) => {
                assert!(Instant::now() < deadline, "bridge never came up: {e}");
                assert!(child.try_wait().unwrap().is_none(), "tachyon exited early");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };

    // Bad parameters: refused with the reason, nothing changes.
    for (params, reason) in [
        ("", "no parameters"),
        ("queue,3,1,10", "unknown kind"),
        ("topic,3,0,10", "at least 1 msg/s"),
        ("topic,3,1,0", "burst 0 is outside"),
        ("topic,x,1,10", "topic id 'x'"),
        ("topic,3,1", "3 parameter(s)"),
    ] {
        let r = limit(&prefix, params);
        assert!(r["refused"].as_str().is_some_and(|t| t.contains(reason)), "{params}: {r}");
    }
    let r = limit(&prefix, "topic,3,1,10");
    let text = r["applied"].as_str().unwrap_or_else(|| panic!("{r}"));
    assert!(text.starts_with("topic 3: rate 1/s burst 10 (generation "), "{text}");
    // A reload rereads the file and keeps the runtime limit on top.
    let r = telemetry(&prefix, &["/tachyon/reload"]).remove(0)["/tachyon/reload"].clone();
    assert!(r["reloaded"].as_str().is_some_and(|t| t.contains("1 runtime limit(s) kept")), "{r}");

    let b = runs(200, 3, 4);
    assert!(bridge.publish_batch(&b.0, &b.1, &b.2, &b.3).unwrap().refused_shards.is_empty());
    std::thread::sleep(Duration::from_millis(500));
    let r = limit(&prefix, "topic,3,clear");
    assert!(r["applied"].as_str().is_some_and(|t| t.contains("topic 3: runtime limit cleared")), "{r}");
    let b = runs(100, 3, 3);
    assert!(bridge.publish_batch(&b.0, &b.1, &b.2, &b.3).unwrap().refused_shards.is_empty());
    std::thread::sleep(Duration::from_millis(300));

    assert!(child.try_wait().unwrap().is_none(), "the appliance keeps running");
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats = read_json(&stats_path);
    let t = &stats["totals"];
    let limited = t["bridge_drops"]["topic_limited"].as_u64().unwrap();
    let admitted = t["bridge_msgs_admitted"].as_u64().unwrap();
    assert_eq!(t["bridge_msgs_received"], 300, "{t}");
    assert_eq!(admitted + limited, 300, "{t}");
    // Topic 4's 100 and, after the clear, topic 3's 100 all pass; while limited,
    // topic 3 gets its burst (two runs of 5) plus at most one refilled run.
    assert!((200 + 10..=200 + 15).contains(&admitted), "admitted {admitted}: {t}");
    let g = &stats["governance"];
    assert_eq!(g["runtime_limits"], serde_json::json!({}), "{g}");
    assert_eq!(g["reloads_ok"], 1, "{g}");
}
