//! The bridge end to end: the Rust client publishes into the real appliance
//! on DPDK virtual devices; what the appliance admits leaves on the wire
//! (an output pcap, checked with the appliance's own classifier) and
//! reaches local subscribers; limits, backpressure, hostile writers, dying
//! producers and stale regions behave as docs/bridge.md says.
mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tachyon::dataplane::classify::{Accepted, NicChecksum, ParseConfig, classify};
use tachyon::wire::FrameHeader;
use tachyon_bridge::{Bridge, BridgeError};

/// The default IPv4 source of bridge frames (`[bridge] source_ip`).
const BRIDGE_SRC: u32 = u32::from_be_bytes([198, 18, 255, 1]);

/// (topic, sender, payload) of one message.
type Msg = (u32, u32, Vec<u8>);

/// A running appliance whose bridge lives at `path`.
struct Appliance {
    child: Child,
    path: PathBuf,
    stats: PathBuf,
}

impl Appliance {
    fn start(dir: &Path, eal: Vec<String>, extra: &[&str], env: &[(&str, &str)]) -> Appliance {
        let path = dir.join("tachyon.bridge");
        let stats = dir.join("stats.json");
        let mut app = strings(&["--duration", "30", "--quiet", "--bridge"]);
        app.push(path.to_str().unwrap().into());
        app.extend(strings(&["--stats-json", stats.to_str().unwrap()]));
        app.extend(strings(extra));
        let child = Command::new(tachyon_bin())
            .args(&eal)
            .arg("--")
            .args(app_args(&app))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tachyon");
        Appliance { child, path, stats }
    }

    /// Connects once the appliance has created its region.
    fn connect(&mut self) -> Bridge {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match Bridge::connect(&self.path) {
                Ok(b) => return b,
                Err(e) if Instant::now() > deadline => panic!("bridge never came up: {e}"),
                Err(_) => {
                    assert!(self.child.try_wait().unwrap().is_none(), "tachyon exited early: {}", self.stderr());
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    fn stderr(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    /// SIGINT, then waits: the final stats file is written.
    fn stop(mut self) -> (serde_json::Value, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-INT", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        let err = self.stderr();
        assert!(status.success(), "tachyon failed: {status}\n{err}");
        (read_json(&self.stats), err)
    }
}

/// Payload of message `i`: its index and a length that varies from 1 to 64 bytes.
fn payload(i: usize) -> Vec<u8> {
    let len = 1 + i % 64;
    let mut p = format!("m{i:07}-").into_bytes();
    p.resize(len.max(p.len()), b'.');
    p.truncate(len);
    if len < 9 {
        p = (i as u64).to_le_bytes()[..len].to_vec();
        p.push(0xee);
        p.truncate(len);
    }
    p
}

/// A batch of `n` messages over `topics`, in runs of `run` messages of one topic and sender.
fn batch(first: usize, n: usize, topics: u32, run: usize) -> (Vec<u32>, Vec<u32>, Vec<u8>, Vec<u64>) {
    let (mut t, mut s, mut p, mut o) = (Vec::new(), Vec::new(), Vec::new(), vec![0u64]);
    for i in first..first + n {
        let topic = 1 + ((i / run) as u32 % topics);
        t.push(topic);
        s.push(1000 + topic);
        p.extend_from_slice(&payload(i));
        o.push(p.len() as u64);
    }
    (t, s, p, o)
}

fn messages_of(b: &(Vec<u32>, Vec<u32>, Vec<u8>, Vec<u64>)) -> Vec<Msg> {
    (0..b.0.len()).map(|i| (b.0[i], b.1[i], b.2[b.3[i] as usize..b.3[i + 1] as usize].to_vec())).collect()
}

/// Every record of every Tachyon frame in `pcap` whose IPv4 source is `src`, in order.
fn wire_messages(pcap: &Path, src: u32) -> Vec<Msg> {
    let cfg = ParseConfig::default();
    let mut out = Vec::new();
    for pkt in read_pcap(pcap) {
        let info = match classify(&pkt, NicChecksum::UNKNOWN, &cfg) {
            Ok(Accepted::Tachyon(info)) => info,
            other => panic!("a frame the appliance sent fails its own classifier: {other:?}"),
        };
        if info.src_ip != src {
            continue;
        }
        let udp_payload = &pkt[14 + 20 + 8..];
        let frame = FrameHeader::parse(udp_payload).unwrap();
        for r in frame.records() {
            out.push((info.topic, info.sender, r.to_vec()));
        }
    }
    out
}

/// How many frames in `pcap` came from the bridge.
fn bridge_frames(pcap: &Path) -> u64 {
    let cfg = ParseConfig::default();
    read_pcap(pcap)
        .iter()
        .filter(
            |p| matches!(classify(p, NicChecksum::UNKNOWN, &cfg), Ok(Accepted::Tachyon(i)) if i.src_ip == BRIDGE_SRC),
        )
        .count() as u64
}

fn sorted(mut v: Vec<Msg>) -> Vec<Msg> {
    v.sort();
    v
}

/// Polls until `want` messages arrived (or 10 s passed).
fn collect(sub: &mut tachyon_bridge::Subscription, want: usize) -> Vec<Msg> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < want && Instant::now() < deadline {
        if let Some(b) = sub.poll(Some(Duration::from_millis(100))).unwrap() {
            for i in 0..b.len() {
                got.push((b.topics()[i], b.senders()[i], b.payload(i).to_vec()));
            }
        }
    }
    got
}

/// A net_pcap port with two (empty) RX queues and two TX queues, one per
/// worker; the second TX queue writes `out` with a `.1` suffix.
fn two_queue_pcap(dir: &Path, out: &Path) -> String {
    let e = empty_pcap(dir);
    let out1 = out.with_extension("1.pcap");
    format!("net_pcap0,rx_pcap={e},rx_pcap={e},tx_pcap={},tx_pcap={}", out.display(), out1.display(), e = e.display())
}

fn empty_pcap(dir: &Path) -> PathBuf {
    let p = dir.join("empty.pcap");
    write_pcap(&p, &[]);
    p
}

#[test]
fn published_messages_leave_on_the_wire_once_and_reach_their_subscribers() {
    let _g = dpdk_lock();
    let dir = scratch_dir("bridge-roundtrip");
    let out = dir.join("out.pcap");
    let vdev = format!("net_pcap0,rx_pcap={},tx_pcap={}", empty_pcap(&dir).display(), out.display());
    let mut app = Appliance::start(&dir, eal_args(&[vdev]), &[], &[]);
    let bridge = app.connect();
    assert_eq!(bridge.shards(), 1);
    let mut sub = bridge.subscribe(Some(&[1, 2, 3])).unwrap();
    // Grouped (runs of 100 of one topic and sender), then interleaved.
    let grouped = batch(0, 3000, 20, 100);
    let interleaved = batch(3000, 3000, 20, 1);
    let mut published = Vec::new();
    for b in [&grouped, &interleaved] {
        let report = bridge.publish_batch(&b.0, &b.1, &b.2, &b.3).unwrap();
        assert!(report.refused_shards.is_empty(), "{report:?}");
        published.extend(messages_of(b));
    }
    let wanted: Vec<Msg> = published.iter().filter(|m| m.0 <= 3).cloned().collect();
    let got = collect(&mut sub, wanted.len());
    drop(sub);
    let (stats, _) = app.stop();
    assert_eq!(got.len(), wanted.len(), "messages to the subscriber; bridge: {}", stats["bridge"]);
    assert!(got == wanted, "the subscriber gets exactly its topics' messages, in publish order");
    let sent = wire_messages(&out, BRIDGE_SRC);
    assert_eq!(sorted(sent.clone()), sorted(published.clone()), "every message on the wire exactly once");
    let per_topic = |v: &[Msg]| {
        let mut m: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
        v.iter().for_each(|(t, _, p)| m.entry(*t).or_default().push(p.clone()));
        m
    };
    assert_eq!(per_topic(&sent), per_topic(&published), "each topic's messages leave in publish order");
    let t = &stats["totals"];
    assert_eq!(t["bridge_msgs_received"], 6000);
    assert_eq!(t["bridge_msgs_admitted"], 6000);
    // Interleaved messages take a frame each; runs of 100 share frames (as
    // many as a run needs at the 1500-byte MTU: about 3).
    let frames = t["bridge_frames_sent"].as_u64().unwrap();
    assert_eq!(frames, bridge_frames(&out), "{t}");
    assert!((3000 + 30..=3000 + 150).contains(&frames), "grouped runs share frames: {frames}");
    assert_eq!(stats["bridge"]["shards"][0]["accepted_msgs"], 6000);
}

#[test]
fn a_limited_topic_is_counted_as_topic_limited() {
    let _g = dpdk_lock();
    let dir = scratch_dir("bridge-limit");
    let cfg = dir.join("limit.toml");
    std::fs::write(&cfg, "[[governance.topics]]\nids = \"3\"\nrate = 1\nburst = 10\n").unwrap();
    let vdev = format!("net_pcap0,rx_pcap={},tx_pcap={}", empty_pcap(&dir).display(), dir.join("out.pcap").display());
    let mut app = Appliance::start(&dir, eal_args(&[vdev]), &["--config", cfg.to_str().unwrap()], &[]);
    let bridge = app.connect();
    // 20 runs of 5 messages of topic 3, between runs of topic 4.
    let (mut t, mut s, mut p, mut o) = (Vec::new(), Vec::new(), Vec::new(), vec![0u64]);
    for i in 0..200 {
        let topic = if (i / 5) % 2 == 0 { 3 } else { 4 };
        t.push(topic);
        s.push(9);
        p.extend_from_slice(&payload(i));
        o.push(p.len() as u64);
    }
    assert!(bridge.publish_batch(&t, &s, &p, &o).unwrap().refused_shards.is_empty());
    std::thread::sleep(Duration::from_millis(500));
    let (stats, _) = app.stop();
    let t = &stats["totals"];
    let limited = t["bridge_drops"]["topic_limited"].as_u64().unwrap();
    let admitted = t["bridge_msgs_admitted"].as_u64().unwrap();
    assert_eq!(t["bridge_msgs_received"], 200);
    assert_eq!(admitted + limited, 200, "{t}");
    // The burst admits two runs of 5; the refill adds at most one more run in the test's time.
    assert!((100 + 10..=100 + 15).contains(&admitted), "admitted {admitted}: {t}");
    assert_eq!(t["drops"]["topic_limited"], 0, "wire drops count packets, bridge drops are apart");
}

#[test]
fn admitted_wire_frames_reach_local_subscribers() {
    let _g = dpdk_lock();
    let dir = scratch_dir("bridge-wire-sub");
    let pcap = dir.join("in.pcap");
    let records: Vec<Vec<u8>> = (0..4).map(|i| format!("wire-record-{i}").into_bytes()).collect();
    let frame =
        tachyon::traffic::FrameSpec { topic_id: 5, sender_id: 77, records: records.clone(), ..Default::default() };
    write_pcap(&pcap, &[frame.build()]);
    let vdev = format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display());
    let mut app = Appliance::start(&dir, eal_args(&[vdev, "net_null0,no-rx=1".into()]), &[], &[]);
    let bridge = app.connect();
    let mut sub = bridge.subscribe(Some(&[5])).unwrap();
    let got = collect(&mut sub, 4000);
    assert!(got.len() >= 4000, "only {} wire messages reached the subscriber", got.len());
    for (i, (topic, sender, p)) in got.iter().enumerate() {
        assert_eq!((*topic, *sender), (5, 77));
        assert_eq!(p, &records[i % 4], "message {i} differs from the frame's record");
    }
    let (stats, _) = app.stop();
    assert!(stats["totals"]["msgs_admitted"].as_u64().unwrap() >= got.len() as u64);
}

#[test]
fn a_full_shard_is_refused_alone_and_nothing_accepted_is_lost() {
    let _g = dpdk_lock();
    let dir = scratch_dir("bridge-backpressure");
    let out = dir.join("out.pcap");
    let vdev = two_queue_pcap(&dir, &out);
    let cfg = dir.join("two.toml");
    std::fs::write(&cfg, "[workers]\nlcores = [1, 2]\n[bridge]\ningress_ring_bytes = 65536\n").unwrap();
    // Worker 1 stops draining its ring (a test-only hook): its shard fills.
    let env = [("TACHYON_TEST_PAUSE_BRIDGE_SHARD", "1")];
    let mut app = Appliance::start(&dir, eal_args_two_workers(&[vdev]), &["--config", cfg.to_str().unwrap()], &env);
    let bridge = app.connect();
    assert_eq!(bridge.shards(), 2);
    // A probe through shard 0 shows its worker is draining before the load starts.
    let mut probe_sub = bridge.subscribe(None).unwrap();
    let probe = batch(1_000_000, 1, 1, 1);
    let probe = (vec![2], vec![1002], probe.2, probe.3);
    assert!(bridge.publish_batch(&probe.0, &probe.1, &probe.2, &probe.3).unwrap().refused_shards.is_empty());
    assert_eq!(collect(&mut probe_sub, 1).len(), 1, "worker 0 drains its shard");
    drop(probe_sub);
    let mut accepted = messages_of(&probe);
    let mut refused_once = false;
    for round in 0..200 {
        // Paced, so the flowing worker keeps up even when the test shares its CPU.
        std::thread::sleep(Duration::from_millis(2));
        let b = batch(round * 100, 100, 2, 1); // topics 1 and 2: shards 1 and 0
        let report = bridge.publish_batch(&b.0, &b.1, &b.2, &b.3).unwrap();
        assert!(!report.refused_shards.contains(&0), "shard 0 was refused in round {round}: {report:?}");
        let mask = report.accepted_mask(&b.0);
        accepted.extend(messages_of(&b).into_iter().zip(mask).filter(|(_, m)| *m).map(|(m, _)| m));
        if report.refused_shards == [1] {
            refused_once = true;
            assert_eq!(report.accepted[1], 0, "a refused shard takes nothing of the batch");
            assert_eq!(report.accepted[0], 50);
        }
    }
    assert!(refused_once, "shard 1 never filled");
    std::thread::sleep(Duration::from_millis(300));
    let (stats, _) = app.stop();
    let mut sent = wire_messages(&out, BRIDGE_SRC);
    sent.extend(wire_messages(&out.with_extension("1.pcap"), BRIDGE_SRC));
    let shard0: Vec<Msg> = accepted.iter().filter(|m| m.0 % 2 == 0).cloned().collect();
    assert_eq!(sorted(sent), sorted(shard0), "every accepted message of the flowing shard left once");
    assert!(stats["bridge"]["shards"][1]["refused_batches"].as_u64().unwrap() > 0);
}

#[test]
fn garbage_over_one_ring_is_counted_and_the_other_shard_flows() {
    let _g = dpdk_lock();
    let dir = scratch_dir("bridge-garbage");
    let vdev = two_queue_pcap(&dir, &dir.join("o.pcap"));
    let cfg = dir.join("two.toml");
    std::fs::write(&cfg, "[workers]\nlcores = [1, 2]\n").unwrap();
    let mut app = Appliance::start(&dir, eal_args_two_workers(&[vdev]), &["--config", cfg.to_str().unwrap()], &[]);
    let bridge = app.connect();
    let mut sub = bridge.subscribe(None).unwrap();
    let g = bridge.header().geometry;
    {
        // A hostile process: pseudo-random bytes over shard 0's control block and ring.
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&app.path).unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let junk: Vec<u8> = (0..g.ingress_stride)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        f.seek(SeekFrom::Start(g.ingress_offset)).unwrap();
        f.write_all(&junk).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let b = batch(0, 500, 1, 1).clone(); // topic 1 only: shard 1
    assert!(bridge.publish_batch(&b.0, &b.1, &b.2, &b.3).unwrap().refused_shards.is_empty());
    let got = collect(&mut sub, 500);
    assert_eq!(got, messages_of(&b), "shard 1 flows on while shard 0 holds garbage");
    assert!(app.child.try_wait().unwrap().is_none(), "the appliance keeps running");
    drop(sub);
    let (stats, _) = app.stop();
    let s0 = &stats["bridge"]["shards"][0];
    let malformed = s0["malformed_blocks"].as_u64().unwrap().saturating_add(s0["malformed_msgs"].as_u64().unwrap());
    assert!(malformed > 0 && malformed < 1 << 32, "the garbage is counted, by the appliance: {s0}");
}

/// Child role for the test below: claim room on shard 0 and die without committing.
fn die_mid_claim(path: &str) {
    let bridge = Bridge::connect(path).unwrap();
    bridge.claim_without_commit(0, 16).unwrap();
    kill_self();
}

fn kill_self() {
    let pid = std::process::id().to_string();
    let _ = Command::new("kill").args(["-KILL", &pid]).status();
    std::thread::sleep(Duration::from_secs(10));
}

#[test]
fn a_producer_killed_between_claim_and_commit_stalls_its_shard_only_for_the_timeout() {
    if let Ok(path) = std::env::var("TACHYON_TEST_DIE_MID_CLAIM") {
        return die_mid_claim(&path);
    }
    let _g = dpdk_lock();
    let dir = scratch_dir("bridge-unblock");
    let vdev = format!("net_pcap0,rx_pcap={},tx_pcap={}", empty_pcap(&dir).display(), dir.join("o.pcap").display());
    let cfg = dir.join("unblock.toml");
    std::fs::write(&cfg, "[bridge]\nunblock_timeout_ms = 300\n").unwrap();
    let mut app = Appliance::start(&dir, eal_args(&[vdev]), &["--config", cfg.to_str().unwrap()], &[]);
    let bridge = app.connect();
    let mut sub = bridge.subscribe(None).unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_producer_killed_between_claim_and_commit_stalls_its_shard_only_for_the_timeout"])
        .env("TACHYON_TEST_DIE_MID_CLAIM", &app.path)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child producer was killed");
    let started = Instant::now();
    let b = batch(0, 100, 3, 1);
    assert!(bridge.publish_batch(&b.0, &b.1, &b.2, &b.3).unwrap().refused_shards.is_empty());
    let got = collect(&mut sub, 100);
    let waited = started.elapsed();
    assert_eq!(got, messages_of(&b), "messages behind the hole arrive");
    assert!(waited < Duration::from_secs(3), "the shard resumed after {waited:?}");
    drop(sub);
    let (stats, _) = app.stop();
    assert_eq!(stats["bridge"]["shards"][0]["unblocked"], 1);
}

#[test]
fn a_stale_region_is_replaced_and_clients_get_clear_errors() {
    let _g = dpdk_lock();
    let dir = scratch_dir("bridge-stale");
    let path = dir.join("tachyon.bridge");
    // What a crashed appliance leaves: a region file nobody holds.
    std::fs::write(&path, vec![0u8; 8192]).unwrap();
    let vdev = format!("net_pcap0,rx_pcap={},tx_pcap={}", empty_pcap(&dir).display(), dir.join("o.pcap").display());
    let mut app = Appliance::start(&dir, eal_args(&[vdev]), &[], &[]);
    let bridge = app.connect();
    assert!(bridge.is_alive());
    let pid = app.child.id().to_string();
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    let _ = app.child.wait();
    match Bridge::connect(&path) {
        Err(BridgeError::ApplianceGone) => {}
        other => panic!("a dead appliance must give ApplianceGone, got {:?}", other.map(|_| ())),
    }
    assert!(!bridge.is_alive());
    let text = Bridge::connect(dir.join("missing.bridge")).map(|_| ()).unwrap_err().to_string();
    assert!(text.contains("is tachyon running"), "{text}");
    // The next appliance on the same path replaces the dead one's region.
    let vdev = format!("net_pcap0,rx_pcap={},tx_pcap={}", empty_pcap(&dir).display(), dir.join("o2.pcap").display());
    let mut app = Appliance::start(&dir, eal_args(&[vdev]), &[], &[]);
    let again = app.connect();
    assert!(again.is_alive());
    let (_, err) = app.stop();
    assert!(err.contains("stale"), "start-up says it replaced a stale region:\n{err}");
    assert!(!path.exists(), "a clean exit removes the region");
}
