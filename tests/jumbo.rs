//! Jumbo frames through the real `tachyon` binary: Tachyon frames of 1,600
//! to 9,000 bytes, which net_pcap hands over as mbuf chains (a segment holds
//! 2,048 bytes), are parsed whole, forwarded byte for byte, and governed by
//! their record count; `[dataplane] mtu` above 9000 is refused before EAL.

#![deny(unsafe_code)]

mod common;

use common::*;
use std::path::Path;
use tachyon::dataplane::reason::DropReason;
use tachyon::traffic::FrameSpec;

/// Bytes one mbuf holds (DPDK's default data room): longer frames arrive as chains.
const SEGMENT: usize = 2048;
/// Ethernet + IPv4 + UDP + Tachyon header, untagged.
const HEADERS: usize = 14 + 20 + 8 + 32;
/// Each record but the last: a 2-byte length and this many payload bytes.
const RECORD_PAYLOAD: usize = 28;

/// A Tachyon frame of exactly `total` bytes on the wire, made of as many
/// 30-byte records as fit and one last record taking the rest.
fn frame_of_size(total: usize, topic: u32, seq: u64, vlan: Option<u16>) -> FrameSpec {
    let mut room = total - HEADERS - if vlan.is_some() { 4 } else { 0 };
    let mut records = Vec::new();
    while room >= 2 * (2 + RECORD_PAYLOAD) {
        let r = records.len();
        records.push((0..RECORD_PAYLOAD).map(|i| (seq as usize * 31 + r * 7 + i) as u8).collect());
        room -= 2 + RECORD_PAYLOAD;
    }
    records.push(vec![0xa5; room - 2]);
    let spec = FrameSpec { vlan, topic_id: topic, sender_id: 3, seq, records, ..FrameSpec::default() };
    assert_eq!(spec.build().len(), total, "frame built to size");
    spec
}

/// Runs the binary on one net_pcap port (it sends back out of itself)
/// with `config`; returns the stats and the frames it sent.
fn run_pcap(dir: &Path, config: &str, input: &[Vec<u8>]) -> (serde_json::Value, Vec<Vec<u8>>) {
    let (rx, tx, stats, cfg) = (dir.join("in.pcap"), dir.join("out.pcap"), dir.join("stats.json"), dir.join("c.toml"));
    write_pcap(&rx, input);
    std::fs::write(&cfg, config).unwrap();
    let vdev = format!("net_pcap0,rx_pcap={},tx_pcap={}", rx.display(), tx.display());
    let out = run_with_config(&eal_args(&[vdev]), &cfg, 3, &stats);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tachyon failed: {stderr}");
    assert!(stderr.contains("MTU 9000"), "the port is configured for jumbo frames: {stderr}");
    let stats = read_json(&stats);
    assert_conserved(&stats["totals"]);
    assert_no_mbuf_leak(&stats);
    (stats, read_pcap(&tx))
}

/// `frames` as the single port sends them back: MACs rewritten.
fn as_forwarded(frames: &[Vec<u8>], stats: &serde_json::Value) -> Vec<Vec<u8>> {
    let port_mac = mac(stats["ports"][0]["mac"].as_str().unwrap());
    frames.iter().map(|p| with_macs(p, [2, 0, 0, 0, 0, 0], port_mac)).collect()
}

const JUMBO_CONFIG: &str = "[dataplane]\nmtu = 9000\n";

#[test]
fn jumbo_frames_of_every_size_come_out_byte_for_byte() {
    let _g = dpdk_lock();
    let dir = scratch_dir("jumbo-forward");
    let sizes = [1600, 3000, 5000, 9000, 2049, 4097, 100];
    let specs: Vec<FrameSpec> = (0..4)
        .flat_map(|round| {
            sizes.iter().enumerate().map(move |(i, &size)| {
                let seq = (round * sizes.len() + i) as u64;
                frame_of_size(size, 7 + i as u32, seq, (round % 2 == 1).then_some(100))
            })
        })
        .collect();
    let frames: Vec<Vec<u8>> = specs.iter().map(FrameSpec::build).collect();
    let msgs: u64 = specs.iter().map(|s| s.msg_count() as u64).sum();
    let chained = frames.iter().filter(|f| f.len() > SEGMENT).count() as u64;
    let many_records = specs.iter().filter(|s| s.msg_count() >= 50).count();
    assert!(many_records >= 24 && chained >= 20, "jumbo frames of many records, most of them chains");

    let (stats, sent) = run_pcap(&dir, JUMBO_CONFIG, &frames);
    let totals = &stats["totals"];
    eprintln!("jumbo run totals: {totals}");
    for reason in DropReason::ALL {
        assert_eq!(drops(totals, reason), 0, "dropped as {reason}");
    }
    assert_eq!(counter(totals, "rx_packets"), frames.len() as u64);
    assert_eq!(counter(totals, "rx_multi_segment"), chained, "every frame over one mbuf arrived as a chain");
    assert_eq!(counter(totals, "frames_received"), frames.len() as u64);
    assert_eq!(counter(totals, "frames_admitted"), frames.len() as u64);
    assert_eq!(counter(totals, "msgs_received"), msgs);
    assert_eq!(counter(totals, "msgs_admitted"), msgs);
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    assert_eq!(counter(totals, "rx_bytes"), bytes);
    assert_eq!(counter(totals, "tx_bytes"), bytes);

    let expected = as_forwarded(&frames, &stats);
    assert_eq!(sent.len(), expected.len(), "frames sent");
    for (i, (got, want)) in sent.iter().zip(&expected).enumerate() {
        assert_eq!(got.len(), want.len(), "frame {i}: length");
        assert!(got == want, "frame {i} ({} bytes) differs from the input past the MACs", want.len());
    }
}

#[test]
fn governance_charges_jumbo_frames_by_record_count() {
    let _g = dpdk_lock();
    let dir = scratch_dir("jumbo-governed");
    // Topic 7 may take 1,000 messages (rate 1/s adds at most a few over the
    // run, fewer than the 30 of the smallest frame's gap below).
    let burst = 1000u64;
    let config = format!("{JUMBO_CONFIG}\n[[governance.topics]]\nid = 7\nrate = 1\nburst = {burst}\n");
    let sizes = [9000, 5000, 3000, 9000, 1600, 5000, 9000, 5000];
    let specs: Vec<FrameSpec> =
        sizes.iter().enumerate().map(|(i, &size)| frame_of_size(size, 7, i as u64, None)).collect();
    let frames: Vec<Vec<u8>> = specs.iter().map(FrameSpec::build).collect();

    // What a bucket of `burst` tokens admits, frame by frame, charging msg_count each.
    let mut tokens = burst;
    let admitted: Vec<bool> = specs
        .iter()
        .map(|s| {
            let m = s.msg_count() as u64;
            let fits = tokens >= m;
            if fits {
                tokens -= m;
            }
            assert!(fits || m - tokens > 30, "a refill of a few tokens could change this verdict");
            fits
        })
        .collect();
    let msgs_admitted: u64 = specs.iter().zip(&admitted).filter(|(_, a)| **a).map(|(s, _)| s.msg_count() as u64).sum();
    let limited = admitted.iter().filter(|a| !**a).count() as u64;
    let offered: u64 = specs.iter().map(|s| s.msg_count() as u64).sum();
    assert!(limited >= 2 && msgs_admitted > 0 && offered > burst + 300, "the limit bites, but not on everything");

    let (stats, sent) = run_pcap(&dir, &config, &frames);
    let totals = &stats["totals"];
    eprintln!("governed jumbo totals: {totals}");
    assert_eq!(drops(totals, DropReason::IpMalformed), 0);
    assert_eq!(counter(totals, "frames_received"), frames.len() as u64);
    assert_eq!(counter(totals, "msgs_received"), offered);
    assert_eq!(drops(totals, DropReason::TopicLimited), limited, "frames dropped as topic_limited");
    assert_eq!(counter(totals, "msgs_admitted"), msgs_admitted, "messages charged by record count");
    assert!(msgs_admitted <= burst);
    let kept: Vec<Vec<u8>> = frames.iter().zip(&admitted).filter(|(_, a)| **a).map(|(f, _)| f.clone()).collect();
    assert!(sent == as_forwarded(&kept, &stats), "exactly the admitted frames left, unchanged");
}

#[test]
fn an_mtu_above_9000_is_refused_before_eal_starts() {
    let dir = scratch_dir("jumbo-bad-mtu");
    let cfg = dir.join("bad.toml");
    for (text, needle) in
        [("[dataplane]\nmtu = 10000\n", "dataplane.mtu = 10000"), ("[dataplane]\nmtu = 9001\n", "9001")]
    {
        std::fs::write(&cfg, text).unwrap();
        let stats = dir.join("stats.json");
        let out = run_with_config(&eal_args(&["net_null0,no-rx=1".to_string()]), &cfg, 1, &stats);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "mtu accepted: {text}");
        assert!(err.contains(needle) && err.contains("9000"), "the error names the key and the limit: {err}");
        assert!(!err.contains("EAL:"), "failed only after starting EAL: {err}");
        assert!(!stats.exists(), "ran anyway");
    }
}

/// Waits for a memif server's socket file (created when tachyon probes its port).
fn wait_for_socket(path: &Path, tachyon: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(tachyon.try_wait().unwrap().is_none(), "tachyon exited before creating {}", path.display());
        assert!(std::time::Instant::now() < deadline, "no memif socket {} after 60 s", path.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn jumbo_frames_received_over_memif_come_out_byte_for_byte() {
    let _g = dpdk_lock();
    let dir = scratch_dir("jumbo-memif");
    let sizes = [3000, 9000, 1600, 5000, 2100, 100];
    let frames: Vec<Vec<u8>> = (0..30)
        .map(|i| frame_of_size(sizes[i % sizes.len()], 7, i as u64, (i % 4 == 3).then_some(5)).build())
        .collect();
    let chained = frames.iter().filter(|f| f.len() > SEGMENT).count() as u64;
    let (input, empty, output) = (dir.join("in.pcap"), dir.join("empty.pcap"), dir.join("out.pcap"));
    let (sock, stats_path, cfg) = (dir.join("memif.sock"), dir.join("stats.json"), dir.join("c.toml"));
    write_pcap(&input, &frames);
    write_pcap(&empty, &[]);
    std::fs::write(&cfg, JUMBO_CONFIG).unwrap();

    // Tachyon: port 0 = memif server (frames come in here), port 1 = pcap out.
    let eal = eal_args(&[
        format!("net_memif0,role=server,socket={},socket-abstract=no", sock.display()),
        format!("net_pcap1,rx_pcap={},tx_pcap={}", empty.display(), output.display()),
    ]);
    let app = app_args(&strings(&[
        "--config",
        cfg.to_str().unwrap(),
        "--duration",
        "8",
        "--quiet",
        "--no-bridge",
        "--stats-json",
        stats_path.to_str().unwrap(),
    ]));
    let mut tachyon = std::process::Command::new(tachyon_bin())
        .args(&eal)
        .arg("--")
        .args(&app)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_socket(&sock, &mut tachyon);
    // The peer: testpmd replays the capture (net_pcap chains the jumbo frames)
    // into its memif client port, which carries them in several memif buffers.
    let mut peer = std::process::Command::new("dpdk-testpmd")
        .args(["-l", "0-1", "--no-huge", "-m", "512", "--no-pci", "--log-level", "lib.eal:error"])
        .args(["--file-prefix", &file_prefix()])
        .args(["--vdev", &format!("net_pcap0,rx_pcap={}", input.display())])
        .args(["--vdev", &format!("net_memif0,role=client,socket={},socket-abstract=no", sock.display())])
        .args(["--", "--forward-mode=io", "--no-flush-rx", "--stats-period", "1", "--total-num-mbufs", "8192"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start dpdk-testpmd");
    let out = tachyon.wait_with_output().unwrap();
    // Only after tachyon has stopped polling: net_memif unmaps the rings of the side that leaves.
    let _ = peer.kill();
    let _ = peer.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tachyon failed: {stderr}");
    let stats = read_json(&stats_path);
    let totals = &stats["totals"];
    eprintln!("memif jumbo totals: {totals}");
    assert_conserved(totals);
    assert_no_mbuf_leak(&stats);
    assert_eq!(counter(totals, "rx_packets"), frames.len() as u64, "every frame arrived over memif");
    for reason in DropReason::ALL {
        assert_eq!(drops(totals, reason), 0, "dropped as {reason}");
    }
    assert_eq!(counter(totals, "rx_multi_segment"), chained, "memif handed the frames over 2 KiB as chains");
    let port_mac = mac(stats["ports"][1]["mac"].as_str().unwrap());
    let expected: Vec<Vec<u8>> = frames.iter().map(|p| with_macs(p, [2, 0, 0, 0, 0, 1], port_mac)).collect();
    assert!(read_pcap(&output) == expected, "frames over memif differ from the input past the MACs");
}
