//! Governance in the real binary: a global topic limit held across two
//! workers, and rule reloads under traffic (SIGHUP and `/tachyon/reload`),
//! with a broken file leaving the running rules in force.

#![deny(unsafe_code)]

mod common;

use common::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tachyon::traffic::FrameSpec;

/// Frames of `topics` in turn, from 50 senders, `msgs` messages each, spread over flows.
fn frames(count: usize, topics: &[u32], msgs: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            FrameSpec {
                topic_id: topics[i % topics.len()],
                sender_id: 1 + (i % 50) as u32,
                seq: i as u64,
                src_port: 40000 + (i % 256) as u16,
                records: vec![vec![0x5a; 24]; msgs],
                ..FrameSpec::default()
            }
            .build()
        })
        .collect()
}

#[test]
fn a_topic_limit_holds_globally_across_two_workers() {
    let _g = dpdk_lock();
    let dir = scratch_dir("global-limit");
    // One topic, offered through both queues far above its limit (infinite replay).
    write_pcap(&dir.join("a.pcap"), &frames(2000, &[7], 4));
    write_pcap(&dir.join("b.pcap"), &frames(2000, &[7], 4));
    let (rate, burst) = (200_000u64, 2_000u64);
    let cfg = dir.join("limit.toml");
    std::fs::write(
        &cfg,
        format!(
            "[workers]\nlcores = [1, 2]\n\n[governance]\nreconcile_us = 1000\n\n\
             [[governance.topics]]\nid = 7\nrate = {rate}\nburst = {burst}\n"
        ),
    )
    .unwrap();
    let vdevs = vec![
        format!(
            "net_pcap0,rx_pcap={},rx_pcap={},infinite_rx=1",
            dir.join("a.pcap").display(),
            dir.join("b.pcap").display()
        ),
        "net_null0,no-rx=1".to_string(),
    ];
    let stats_path = dir.join("stats.json");
    let out = run_with_config(&eal_args_two_workers(&vdevs), &cfg, 4, &stats_path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats = read_json(&stats_path);
    let totals = &stats["totals"];
    assert_conserved(totals);
    let secs = stats["duration_secs"].as_f64().unwrap();
    let admitted = counter(totals, "msgs_admitted") as f64;
    let expected = rate as f64 * secs + burst as f64;
    let error = (admitted - expected) / expected;
    eprintln!("admitted {admitted} msgs in {secs:.3} s, expected {expected:.0}: error {:+.2} %", error * 100.0);
    assert!(error.abs() <= 0.05, "admitted {admitted} vs {expected:.0} ({:+.2} %)", error * 100.0);
    // Far above the limit on both workers: both were limited, both admitted.
    assert!(counter(totals, "msgs_received") as f64 > 5.0 * expected, "offered load too low: {totals}");
    for w in stats["workers"].as_array().unwrap() {
        assert!(w["drops"]["topic_limited"].as_u64().unwrap() > 0, "worker not limited: {w}");
        assert!(counter(w, "msgs_admitted") > 0, "worker admitted nothing: {w}");
        assert_conserved(w);
    }
}

fn sighup(child: &Child) {
    assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
}

fn reload_command(prefix: &str) -> Value {
    telemetry(prefix, &["/tachyon/reload"]).remove(0)["/tachyon/reload"].clone()
}

#[test]
fn rules_reload_under_traffic_and_a_broken_file_keeps_the_old_ones() {
    let _g = dpdk_lock();
    let dir = scratch_dir("reload");
    // Topics 7 and 8 alternate: a rule dropping one of them drops half the traffic.
    write_pcap(&dir.join("in.pcap"), &frames(1000, &[7, 8], 2));
    let cfg = dir.join("rules.toml");
    let write_rules = |text: &str| std::fs::write(&cfg, text).unwrap();
    write_rules("[[governance.rules]]\ntopic = 7\naction = \"drop\"\n");
    let eal = eal_args(&[
        format!("net_pcap0,rx_pcap={},infinite_rx=1", dir.join("in.pcap").display()),
        "net_null0,no-rx=1".to_string(),
    ]);
    let prefix = prefix_of(&eal);
    let stats_path = dir.join("stats.json");
    let mut child = Command::new(tachyon_bin())
        .args(&eal)
        .arg("--")
        .args(app_args(&strings(&[
            "--config",
            cfg.to_str().unwrap(),
            "--quiet",
            "--stats-json",
            stats_path.to_str().unwrap(),
        ])))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let window = Duration::from_millis(600);
    let settle = Duration::from_millis(300);

    let share = rule_drop_share(&prefix, window);
    assert!((share - 0.5).abs() < 0.05, "first rules should drop topic 7 (half): {share}");

    // A file that does not parse: refused, the running rule (drop topic 7) still acts.
    write_rules("[[governance.rules]\ntopic = 8\n");
    sighup(&child);
    std::thread::sleep(settle);
    let share = rule_drop_share(&prefix, window);
    assert!((share - 0.5).abs() < 0.05, "a broken file must leave topic 7 dropped (half): {share}");

    // SIGHUP with no rules: nothing is dropped by a rule any more.
    write_rules("[governance]\ndefault_action = \"allow\"\n");
    sighup(&child);
    std::thread::sleep(settle);
    let share = rule_drop_share(&prefix, window);
    assert!(share < 0.01, "after SIGHUP no rule should drop: {share}");

    // The control command: drop both topics.
    write_rules("[[governance.rules]]\ntopics = \"7-8\"\naction = \"drop\"\n");
    let answer = reload_command(&prefix);
    assert!(answer["reloaded"].as_str().is_some_and(|t| t.contains("1 rule")), "{answer}");
    std::thread::sleep(settle);
    let share = rule_drop_share(&prefix, window);
    assert!(share > 0.99, "after /tachyon/reload both topics are dropped: {share}");

    // A file that parses but does not validate: refused with the key, old rules stay.
    write_rules("[[governance.rules]]\ntopic = 8\naction = \"limit\"\nprofile = \"nope\"\n");
    let answer = reload_command(&prefix);
    let refused = answer["refused"].as_str().unwrap_or_else(|| panic!("expected a refusal: {answer}"));
    assert!(refused.contains("governance.rules[0]"), "{refused}");
    let share = rule_drop_share(&prefix, window);
    assert!(share > 0.99, "a refused reload must leave the rules in force: {share}");

    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("refused, the running rules stay"), "{stderr}");
    let stats = read_json(&stats_path);
    // No packet lost in the switches: every packet received is sent or counted.
    assert_conserved(&stats["totals"]);
    assert_eq!(stats["governance"]["reloads_ok"], 2, "{}", stats["governance"]);
    assert_eq!(stats["governance"]["reloads_failed"], 2, "{}", stats["governance"]);
    assert_eq!(stats["governance"]["rule_hits"].as_array().unwrap().len(), 1);
}

/// Messages admitted so far over all workers, read through telemetry, and
/// when the reply was in.
fn admitted_now(prefix: &str) -> (u64, Instant) {
    let stats = telemetry(prefix, &["/tachyon/stats"]).remove(0);
    (counter(&stats["/tachyon/stats"], "msgs_admitted"), Instant::now())
}

/// Issue 13: a reload used to refill every bucket, so reloading often
/// loosened every limit (here by a whole burst per reload). Under load far
/// above the limit, SIGHUP every 100 ms must keep the topic within ±2 % of
/// its rate, measured between two readings well after start-up (so the
/// start-up time, when no frame has reached the bucket yet, does not count).
/// One worker: the bucket is the global one, so the figure is the
/// limiter's alone, not the reconciliation's as well.
#[test]
fn reloads_every_100ms_under_full_load_keep_a_topic_within_2_percent_of_its_limit() {
    let _g = dpdk_lock();
    let dir = scratch_dir("reload-limit");
    write_pcap(&dir.join("in.pcap"), &frames(2000, &[7], 4));
    // A burst of 200 ms of the rate: a worker descheduled for less than
    // that loses no tokens, what the bucket holds at either reading is at
    // most 2.5 % of the window, and each refill by a reload would add 20 %.
    let (rate, burst) = (100_000u64, 20_000u64);
    let cfg = dir.join("limit.toml");
    std::fs::write(&cfg, format!("[[governance.topics]]\nid = 7\nrate = {rate}\nburst = {burst}\n")).unwrap();
    let eal = eal_args(&[
        format!("net_pcap0,rx_pcap={},infinite_rx=1", dir.join("in.pcap").display()),
        "net_null0,no-rx=1".to_string(),
    ]);
    let prefix = prefix_of(&eal);
    let stats_path = dir.join("stats.json");
    let app = ["--config", cfg.to_str().unwrap(), "--quiet", "--stats-json"];
    let mut child = Command::new(tachyon_bin())
        .args(&eal)
        .arg("--")
        .args(app_args(&[strings(&app), vec![stats_path.to_str().unwrap().to_string()]].concat()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Start-up takes long on a busy machine: wait for telemetry, then for traffic.
    let socket = std::path::Path::new("/var/run/dpdk").join(&prefix).join("dpdk_telemetry.v2");
    let started = Instant::now();
    while !socket.exists() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The socket comes with EAL, the command once the appliance runs.
    while telemetry(&prefix, &["/tachyon/stats"])[0]["/tachyon/stats"].is_null() {
        assert!(started.elapsed() < Duration::from_secs(30), "the appliance never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let (first, t0) = admitted_now(&prefix);
    let mut reloads = 0;
    while t0.elapsed() < Duration::from_secs(8) {
        sighup(&child);
        reloads += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let (last, t1) = admitted_now(&prefix);
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");
    let stats = read_json(&stats_path);
    let totals = &stats["totals"];
    assert_conserved(totals);
    // SIGHUPs that arrive between two control ticks make one reload (many,
    // when the control lcore shares its CPU with a busy machine).
    let reloaded = stats["governance"]["reloads_ok"].as_u64().unwrap();
    assert!(reloaded >= 20, "{reloaded} of {reloads} SIGHUPs reloaded: {}", stats["governance"]);
    assert!(counter(totals, "msgs_received") > 5 * counter(totals, "msgs_admitted"), "offered load too low: {totals}");
    let secs = (t1 - t0).as_secs_f64();
    let admitted = (last - first) as f64;
    let expected = rate as f64 * secs;
    let error = (admitted - expected) / expected;
    eprintln!(
        "{reloads} SIGHUPs: admitted {admitted} msgs in {secs:.3} s, expected {expected:.0}: error {:+.2} %",
        error * 100.0
    );
    assert!(error.abs() <= 0.02, "admitted {admitted} vs {expected:.0} ({:+.2} %)", error * 100.0);
}
