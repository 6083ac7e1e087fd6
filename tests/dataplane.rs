//! The real `tachyon` binary forwarding Tachyon traffic between DPDK
//! virtual devices: pcap in, pcap out, every packet accounted for.

#![deny(unsafe_code)]

mod common;

use common::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use tachyon::dataplane::reason::DropReason;
use tachyon::traffic::{FrameSpec, PARSER_REASONS, malformed};

/// A mixed capture: valid frames (1 and many records, with and without a
/// VLAN tag) and `per_reason` malformed packets for every parser reason, in
/// a seeded random order. Returns (all packets, the valid ones in order, messages).
fn mixed_traffic(seed: u64, valid: usize, per_reason: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tagged: Vec<(bool, Vec<u8>, u64)> = Vec::new();
    for i in 0..valid {
        let records: Vec<Vec<u8>> = (0..1 + (i % 7) * 3).map(|r| vec![(i + r) as u8; 1 + (r * 5) % 40]).collect();
        let spec = FrameSpec {
            vlan: (i % 3 == 0).then_some(100 + i as u16 % 7),
            topic_id: i as u32 % 17,
            sender_id: i as u32 % 5,
            seq: i as u64,
            src_port: 40000 + i as u16 % 64,
            timestamp_ns: (i % 2 == 0).then_some(1_000 + i as u64),
            records,
            ..FrameSpec::default()
        };
        tagged.push((true, spec.build(), spec.msg_count() as u64));
    }
    for (k, reason) in PARSER_REASONS.iter().enumerate() {
        for j in 0..per_reason {
            let base = FrameSpec { vlan: (j % 2 == 1).then_some(9), topic_id: k as u32, ..FrameSpec::default() };
            tagged.push((false, malformed(*reason, &base, &mut rng).expect("parser reason"), 0));
        }
    }
    tagged.shuffle(&mut rng);
    let msgs = tagged.iter().map(|t| t.2).sum();
    let valid_pkts = tagged.iter().filter(|t| t.0).map(|t| t.1.clone()).collect();
    (tagged.into_iter().map(|t| t.1).collect(), valid_pkts, msgs)
}

#[test]
fn pcap_in_pcap_out_forwards_exactly_the_valid_frames() {
    let _g = dpdk_lock();
    let dir = scratch_dir("pcap-forward");
    let (all, valid, msgs) = mixed_traffic(7, 300, 3);
    let (input, output, stats_path) = (dir.join("in.pcap"), dir.join("out.pcap"), dir.join("stats.json"));
    write_pcap(&input, &all);
    let vdev = format!("net_pcap0,rx_pcap={},tx_pcap={}", input.display(), output.display());
    let out = run_tachyon(
        &eal_args(&[vdev]),
        &strings(&["--duration", "2", "--quiet", "--stats-json", stats_path.to_str().unwrap()]),
    );
    assert!(out.status.success(), "tachyon failed: {}", String::from_utf8_lossy(&out.stderr));

    let stats = read_json(&stats_path);
    let totals = &stats["totals"];
    assert_eq!(counter(totals, "rx_packets"), all.len() as u64);
    assert_eq!(counter(totals, "tx_packets"), valid.len() as u64);
    assert_eq!(counter(totals, "frames_received"), valid.len() as u64);
    assert_eq!(counter(totals, "msgs_received"), msgs);
    assert_eq!(counter(totals, "msgs_admitted"), msgs);
    for reason in DropReason::ALL {
        let expected = if PARSER_REASONS.contains(&reason) { 3 } else { 0 };
        assert_eq!(drops(totals, reason), expected, "drops for {reason}");
        assert_eq!(stats["drops"][reason.name()], expected, "top-level drops for {reason}");
    }
    assert_conserved(totals);
    assert_no_mbuf_leak(&stats);

    // A lone port sends back out of itself: source MAC = the port's own, destination = default next hop.
    let port_mac = mac(stats["ports"][0]["mac"].as_str().unwrap());
    let sent = read_pcap(&output);
    let expected: Vec<Vec<u8>> = valid.iter().map(|p| with_macs(p, [2, 0, 0, 0, 0, 0], port_mac)).collect();
    assert_eq!(sent.len(), expected.len());
    for (i, (got, want)) in sent.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "frame {i} differs beyond the MAC rewrite");
    }
}

/// Two pcap ports: port 0 replays `input`, port 1 receives nothing; each
/// writes what it sends to its own capture.
fn two_pcap_ports(dir: &Path, input: &Path, out0: &Path, out1: &Path) -> Vec<String> {
    let empty = dir.join("empty.pcap");
    write_pcap(&empty, &[]);
    vec![
        format!("net_pcap0,rx_pcap={},tx_pcap={}", input.display(), out0.display()),
        format!("net_pcap1,rx_pcap={},tx_pcap={}", empty.display(), out1.display()),
    ]
}

/// What a run of two `net_pcap` ports left behind: the stats, and what
/// left by port 0 and by port 1.
type TwoPortRun = (serde_json::Value, Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Runs `frames` in through port 0 of two `net_pcap` ports under the
/// `config` TOML, for 2 s; checks that tachyon exited cleanly.
fn run_two_ports(dir: &Path, frames: &[Vec<u8>], config: &str) -> TwoPortRun {
    let (input, out0, out1, stats_path, cfg) =
        (dir.join("in.pcap"), dir.join("out0.pcap"), dir.join("out1.pcap"), dir.join("stats.json"), dir.join("c.toml"));
    write_pcap(&input, frames);
    std::fs::write(&cfg, config).unwrap();
    let out = run_with_config(&eal_args(&two_pcap_ports(dir, &input, &out0, &out1)), &cfg, 2, &stats_path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (read_json(&stats_path), read_pcap(&out0), read_pcap(&out1))
}

/// Runs `frames` in through port 0 of two `net_pcap` ports, whose default
/// route leaves by port 1 to next hop aa:bb:cc:00:00:01, under the
/// `governance` TOML; checks that every packet and mbuf is accounted for.
fn run_governed(dir: &Path, frames: &[Vec<u8>], governance: &str) -> TwoPortRun {
    let ports = "[[ports]]\nid = 0\nnext_hop_mac = \"aa:bb:cc:00:00:01\"\n\n[[ports]]\nid = 1\n\n";
    let (stats, out0, out1) = run_two_ports(dir, frames, &format!("{ports}{governance}"));
    assert_conserved(&stats["totals"]);
    assert_no_mbuf_leak(&stats);
    (stats, out0, out1)
}

/// Bursts of valid frames only go out whole, by the default hop, without
/// a second look at their packets: the L2 rewrite happens while they are
/// classified. The mixed captures above never fill a burst with valid
/// frames alone, so they do not reach that path.
#[test]
fn whole_bursts_of_valid_frames_leave_with_the_next_hop_addresses() {
    let _g = dpdk_lock();
    let dir = scratch_dir("whole-bursts");
    let (all, valid, msgs) = mixed_traffic(13, 640, 0);
    assert_eq!(all.len(), valid.len());
    let config = "[[ports]]\nid = 0\negress_port = 1\nnext_hop_mac = \"aa:bb:cc:00:00:01\"\n\n[[ports]]\nid = 1\n";
    let (stats, _, sent) = run_two_ports(&dir, &all, config);
    let totals = &stats["totals"];
    assert_conserved(totals);
    assert_no_mbuf_leak(&stats);
    assert!(counter(totals, "full_bursts") >= 10, "whole bursts of valid frames: {}", counter(totals, "full_bursts"));
    assert_eq!(counter(totals, "msgs_admitted"), msgs);
    assert_eq!(counter(totals, "tx_bytes"), counter(totals, "rx_bytes"), "TX bytes are the bytes received");
    let port1_mac = mac(stats["ports"][1]["mac"].as_str().unwrap());
    let expected: Vec<Vec<u8>> = valid.iter().map(|p| with_macs(p, [0xaa, 0xbb, 0xcc, 0, 0, 1], port1_mac)).collect();
    assert_eq!(sent.len(), expected.len());
    for (i, (got, want)) in sent.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "frame {i}");
    }
}

#[test]
fn configured_route_and_next_hop_are_applied() {
    let _g = dpdk_lock();
    let dir = scratch_dir("route");
    let (all, valid, _) = mixed_traffic(11, 50, 1);
    let config = "[[ports]]\nid = 0\negress_port = 1\nnext_hop_mac = \"aa:bb:cc:00:00:01\"\n\n[[ports]]\nid = 1\negress_port = 0\n";
    let (stats, out0, out1) = run_two_ports(&dir, &all, config);
    assert_conserved(&stats["totals"]);
    let port1_mac = mac(stats["ports"][1]["mac"].as_str().unwrap());
    assert!(out0.is_empty(), "nothing should go back out of port 0");
    let expected: Vec<Vec<u8>> = valid.iter().map(|p| with_macs(p, [0xaa, 0xbb, 0xcc, 0, 0, 1], port1_mac)).collect();
    assert_eq!(out1, expected);
}

#[test]
fn governed_frames_leave_by_their_verdicts() {
    // Long runs of frames that governance admits to the default route (the
    // worker sends such bursts whole) between runs of a dropped topic and
    // of a routed one (bursts whose verdicts it reads one by one): each
    // frame leaves where its verdict says, rewritten for that hop, in order.
    let _g = dpdk_lock();
    let dir = scratch_dir("governed-verdicts");
    let run_of = |topic: u32, n: usize, from: usize| -> Vec<Vec<u8>> {
        (from..from + n)
            .map(|i| {
                let spec = FrameSpec {
                    topic_id: topic + (i % 4) as u32,
                    sender_id: i as u32 % 6,
                    seq: i as u64,
                    records: vec![vec![i as u8; 8]; 1 + i % 3],
                    ..FrameSpec::default()
                };
                spec.build()
            })
            .collect()
    };
    // Topics 1-4 pass, 100-103 are dropped, 200-203 routed.
    let (plain1, dropped, plain2, routed, plain3) =
        (run_of(1, 200, 0), run_of(100, 40, 200), run_of(1, 160, 240), run_of(200, 40, 400), run_of(1, 100, 440));
    let all: Vec<Vec<u8>> = [&plain1, &dropped, &plain2, &routed, &plain3].into_iter().flatten().cloned().collect();
    let (stats, out0, out1) = run_governed(
        &dir,
        &all,
        r#"[governance]
[governance.topic_defaults]
rate = 1000000
burst = 100000
[governance.sender_defaults]
rate = 1000000
burst = 100000

[[governance.rules]]
topics = "100-103"
action = "drop"

[[governance.rules]]
topics = "200-203"
action = "route"
port = 0
next_hop = "02:00:00:00:00:09"
"#,
    );
    let totals = &stats["totals"];
    assert_eq!(drops(totals, DropReason::RuleDrop), dropped.len() as u64);
    assert_eq!(counter(totals, "frames_admitted"), (all.len() - dropped.len()) as u64);
    let (port0_mac, port1_mac) =
        (mac(stats["ports"][0]["mac"].as_str().unwrap()), mac(stats["ports"][1]["mac"].as_str().unwrap()));
    let by_default: Vec<Vec<u8>> = [&plain1, &plain2, &plain3]
        .into_iter()
        .flatten()
        .map(|p| with_macs(p, [0xaa, 0xbb, 0xcc, 0, 0, 1], port1_mac))
        .collect();
    let by_rule: Vec<Vec<u8>> = routed.iter().map(|p| with_macs(p, [2, 0, 0, 0, 0, 9], port0_mac)).collect();
    assert_eq!(out1, by_default, "admitted frames by the default route");
    assert_eq!(out0, by_rule, "frames a route rule sends back out of port 0");
}

#[test]
fn without_a_default_profile_only_the_named_ids_are_limited() {
    // Topics 1-10 and sender 7 have limits, topics 100-199 get one from a
    // `limit` rule; every other id has none, and its frames skip the bucket
    // tables altogether. Topic 50 shares a 4,096-id block with the named
    // range and topic 2^24 + 5 a bit of the screen that finds unlimited ids:
    // both must still pass whole. The rates are 1 msg/s, so the bursts are
    // all the limited ids get during the run.
    let _g = dpdk_lock();
    let dir = scratch_dir("named-ids-only");
    let cases: [(u32, u32, usize); 6] =
        [(5, 1, 5), (150, 1, 3), (9000, 7, 4), (50, 1, 40), ((1 << 24) + 5, 1, 40), (9000, 2, 40)];
    let all: Vec<(usize, Vec<u8>)> = (0..40)
        .flat_map(|i| {
            cases.iter().enumerate().map(move |(case, &(topic, sender, _))| {
                let spec = FrameSpec { topic_id: topic, sender_id: sender, seq: i as u64, ..FrameSpec::default() };
                (case, spec.build())
            })
        })
        .collect();
    let frames: Vec<Vec<u8>> = all.iter().map(|(_, p)| p.clone()).collect();
    let (stats, out0, out1) = run_governed(
        &dir,
        &frames,
        r#"[governance.profiles]
tight = { rate = 1, burst = 3 }

[[governance.topics]]
ids = "1-10"
rate = 1
burst = 5

[[governance.senders]]
id = 7
rate = 1
burst = 4

[[governance.rules]]
topics = "100-199"
action = "limit"
profile = "tight"
"#,
    );
    let totals = &stats["totals"];
    assert_eq!(drops(totals, DropReason::TopicLimited), (40 - 5) + (40 - 3));
    assert_eq!(drops(totals, DropReason::SenderLimited), 40 - 4);
    // Each case's first `admitted` frames leave, in their order.
    let port1_mac = mac(stats["ports"][1]["mac"].as_str().unwrap());
    let mut seen = [0usize; 6];
    let expected: Vec<Vec<u8>> = all
        .iter()
        .filter(|(case, _)| {
            seen[*case] += 1;
            seen[*case] <= cases[*case].2
        })
        .map(|(_, p)| with_macs(p, [0xaa, 0xbb, 0xcc, 0, 0, 1], port1_mac))
        .collect();
    assert!(out0.is_empty(), "nothing leaves by port 0");
    assert_eq!(out1, expected);
}

#[test]
fn non_tachyon_traffic_is_forwarded_when_configured() {
    let _g = dpdk_lock();
    let dir = scratch_dir("forward-other");
    let other = FrameSpec { dst_port: 5353, ..FrameSpec::default() }.build();
    let tach = FrameSpec::default().build();
    let (input, output, stats_path, cfg) =
        (dir.join("in.pcap"), dir.join("out.pcap"), dir.join("stats.json"), dir.join("c.toml"));
    write_pcap(&input, &[other.clone(), tach.clone(), other.clone()]);
    std::fs::write(&cfg, "[dataplane]\nnon_tachyon = \"forward\"\n").unwrap();
    let vdev = format!("net_pcap0,rx_pcap={},tx_pcap={}", input.display(), output.display());
    let out = run_tachyon(
        &eal_args(&[vdev]),
        &strings(&[
            "--config",
            cfg.to_str().unwrap(),
            "--duration",
            "1",
            "--quiet",
            "--stats-json",
            stats_path.to_str().unwrap(),
        ]),
    );
    assert!(out.status.success());
    let stats = read_json(&stats_path);
    assert_eq!(counter(&stats["totals"], "other_forwarded"), 2);
    assert_eq!(counter(&stats["totals"], "tx_packets"), 3);
    assert_eq!(drops(&stats["totals"], DropReason::NotTachyon), 0);
    assert_eq!(read_pcap(&output).len(), 3);
}

#[test]
fn two_workers_on_a_two_queue_device_both_carry_traffic() {
    let _g = dpdk_lock();
    let dir = scratch_dir("two-workers");
    let (a_all, a_valid, _) = mixed_traffic(1, 200, 2);
    let (b_all, b_valid, _) = mixed_traffic(2, 150, 1);
    let p = |n: &str| dir.join(n);
    write_pcap(&p("a.pcap"), &a_all);
    write_pcap(&p("b.pcap"), &b_all);
    let vdev = format!(
        "net_pcap0,rx_pcap={},rx_pcap={},tx_pcap={},tx_pcap={}",
        p("a.pcap").display(),
        p("b.pcap").display(),
        p("out-a.pcap").display(),
        p("out-b.pcap").display()
    );
    // Two workers on a two-CPU machine: lcore 2 shares CPU 0 with the control lcore.
    let cfg = p("workers.toml");
    std::fs::write(&cfg, "[workers]\nlcores = [1, 2]\n").unwrap();
    let stats_path = p("stats.json");
    let out = run_with_config(&eal_args_two_workers(&[vdev]), &cfg, 2, &stats_path);
    assert!(out.status.success());
    let stats = read_json(&stats_path);
    let workers = stats["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for w in workers {
        assert!(counter(w, "rx_packets") > 0, "worker carried no traffic: {w}");
        assert_conserved(w);
    }
    // Worker i polls RX queue i and sends on TX queue i.
    assert_eq!(counter(&workers[0], "rx_packets"), a_all.len() as u64);
    assert_eq!(counter(&workers[1], "rx_packets"), b_all.len() as u64);
    let totals = &stats["totals"];
    assert_conserved(totals);
    assert_eq!(counter(totals, "rx_packets"), (a_all.len() + b_all.len()) as u64);
    assert_eq!(counter(totals, "tx_packets"), (a_valid.len() + b_valid.len()) as u64);
    assert_no_mbuf_leak(&stats);
    let strip = |v: Vec<Vec<u8>>| v.into_iter().map(|p| p[12..].to_vec()).collect::<Vec<_>>();
    assert_eq!(strip(read_pcap(&p("out-a.pcap"))), strip(a_valid));
    assert_eq!(strip(read_pcap(&p("out-b.pcap"))), strip(b_valid));
}

#[test]
fn sigint_stops_cleanly_and_returns_every_mbuf() {
    stops_cleanly_on("-INT");
}

#[test]
fn sigterm_stops_cleanly_and_returns_every_mbuf() {
    stops_cleanly_on("-TERM");
}

fn stops_cleanly_on(signal: &str) {
    let _g = dpdk_lock();
    let dir = scratch_dir(&format!("signal{signal}"));
    let (all, _, _) = mixed_traffic(3, 500, 1);
    let input = dir.join("in.pcap");
    write_pcap(&input, &all);
    let stats_path = dir.join("stats.json");
    let vdevs = vec![format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()), "net_null0,no-rx=1".to_string()];
    let child = std::process::Command::new(tachyon_bin())
        .args(eal_args(&vdevs))
        .arg("--")
        .args(app_args(&strings(&["--stats-json", stats_path.to_str().unwrap()])))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let killed = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Mpps"), "no live line in: {stdout}");
    assert!(stdout.contains("final counters"), "no final counters in: {stdout}");
    let stats = read_json(&stats_path);
    assert!(counter(&stats["totals"], "rx_packets") > all.len() as u64, "infinite replay should loop");
    assert_conserved(&stats["totals"]);
    assert_no_mbuf_leak(&stats);
    // The report is the one written at exit, not the placeholder written at start.
    let workers = stats["workers"].as_array().expect("workers in the report");
    assert_eq!(workers.len(), 1, "{stats}");
    assert_conserved(&workers[0]);
}
