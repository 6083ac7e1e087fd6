//! Overload and faults through the real binary (issue 13, items 5 and 6): a
//! TX queue that refuses packets, RX faster than the worker, a bridge
//! producer killed mid-batch, a subscriber that stops reading, and SIGTERM
//! under full load. After each run: every mbuf back in its pool, received =
//! sent + dropped per worker and in total, and no accepted bridge message lost.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tachyon::traffic::FrameSpec;
use tachyon_bridge::{Bridge, Subscription};

/// (topic, sender, payload) of one message.
type Msg = (u32, u32, Vec<u8>);

/// `n` messages of one topic and sender, numbered from `first` (payload = the number).
fn numbered(topic: u32, sender: u32, first: u64, n: u64) -> Vec<Msg> {
    (first..first + n).map(|i| (topic, sender, i.to_le_bytes().to_vec())).collect()
}

/// Publishes `msgs` as one batch; returns those accepted (a refused shard takes none).
fn publish(bridge: &Bridge, msgs: &[Msg]) -> Vec<Msg> {
    let topics: Vec<u32> = msgs.iter().map(|m| m.0).collect();
    let senders: Vec<u32> = msgs.iter().map(|m| m.1).collect();
    let mut payloads = Vec::new();
    let mut offsets = vec![0u64];
    for m in msgs {
        payloads.extend_from_slice(&m.2);
        offsets.push(payloads.len() as u64);
    }
    let report = bridge.publish_batch(&topics, &senders, &payloads, &offsets).unwrap();
    let mask = report.accepted_mask(&topics);
    msgs.iter().zip(mask).filter(|(_, ok)| *ok).map(|(m, _)| m.clone()).collect()
}

/// Publishes `msgs`, retrying what a full shard refused, until all are in.
fn publish_all(bridge: &Bridge, msgs: &[Msg]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rest = msgs.to_vec();
    while !rest.is_empty() {
        let taken = publish(bridge, &rest);
        rest.retain(|m| !taken.contains(m));
        assert!(Instant::now() < deadline, "the bridge refused {} messages for 30 s", rest.len());
        if !rest.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Every message `sub` gets until `want` arrived or `quiet` passed without any.
fn drain(sub: &mut Subscription, want: usize, quiet: Duration) -> Vec<Msg> {
    let mut got = Vec::new();
    let mut last = Instant::now();
    while got.len() < want && last.elapsed() < quiet {
        if let Some(b) = sub.poll(Some(Duration::from_millis(50))).unwrap() {
            for i in 0..b.len() {
                got.push((b.topics()[i], b.senders()[i], b.payload(i).to_vec()));
            }
            last = Instant::now();
        }
    }
    got
}

/// Connects to the bridge of a running appliance.
fn connect(app: &mut Running, path: &Path) -> Bridge {
    app.wait_for("/tachyon/bridge");
    Bridge::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()))
}

/// App options for a bridge at `dir/b.bridge` and a stats file `dir/stats.json`.
fn bridge_app(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut app = strings(&["--quiet", "--bridge", dir.join("b.bridge").to_str().unwrap()]);
    app.extend(strings(&["--stats-json", dir.join("stats.json").to_str().unwrap()]));
    app.extend(strings(extra));
    app
}

/// Stops `app` with `signal`, expects exit code 0, returns the final stats.
fn stop_cleanly(app: Running, signal: &str, dir: &Path) -> Value {
    let (status, err) = app.stop(signal);
    assert_eq!(status.code(), Some(0), "tachyon did not exit cleanly: {status}\n{err}");
    read_json(&dir.join("stats.json"))
}

/// A capture of `frames` valid Tachyon frames over 16 topics and 50 senders.
fn traffic_pcap(dir: &Path, frames: u32) -> std::path::PathBuf {
    let path = dir.join("in.pcap");
    let packets: Vec<Vec<u8>> = (0..frames)
        .map(|i| {
            let spec = FrameSpec { topic_id: 1 + i % 16, sender_id: 1 + i % 50, seq: i as u64, ..Default::default() };
            spec.build()
        })
        .collect();
    write_pcap(&path, &packets);
    path
}

/// A memif peer that connects and then never reads: `dpdk-testpmd` in
/// interactive mode with forwarding never started. Its RX ring stays
/// without buffers, so every burst tachyon sends it is refused.
struct IdlePeer {
    child: Child,
    _stdin: ChildStdin,
}

impl IdlePeer {
    fn start(socket: &Path) -> IdlePeer {
        let mut child = Command::new("dpdk-testpmd")
            .args(["-l", "0,1", "--no-huge", "-m", "256", "--no-pci", "--log-level", "lib.eal:error"])
            .args(["--file-prefix", &format!("{}-peer", file_prefix())])
            .args(["--vdev", &format!("net_memif0,role=client,socket={}", socket.display())])
            .args(["--", "-i", "--total-num-mbufs", "4096"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dpdk-testpmd (Debian package dpdk) runs");
        let stdin = child.stdin.take().unwrap();
        IdlePeer { child, _stdin: stdin }
    }
}

impl Drop for IdlePeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `/tachyon/stats` until `pred` holds on it (or 30 s pass).
fn wait_stats(app: &mut Running, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = app.wait_for("/tachyon/stats");
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_tx_queue_that_refuses_packets_counts_tx_full_and_frees_them() {
    let _g = dpdk_lock();
    let dir = scratch_dir("faults-txfull");
    let socket = dir.join("memif.sock");
    let input = traffic_pcap(&dir, 512);
    let cfg = dir.join("c.toml");
    // Bridge frames leave by the refusing port too.
    std::fs::write(&cfg, "[bridge]\negress_port = 1\n").unwrap();
    let vdevs = [
        format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()),
        format!("net_memif0,role=server,socket={}", socket.display()),
    ];
    let mut app = Running::start(&eal_args(&vdevs), &bridge_app(&dir, &["--config", cfg.to_str().unwrap()]), &[]);
    let bridge = connect(&mut app, &dir.join("b.bridge"));
    let _peer = IdlePeer::start(&socket);
    // Once the peer is connected the link is up and wire frames meet the full ring.
    wait_stats(&mut app, "tx_full drops", |s| s["drops"]["tx_full"].as_u64().unwrap_or(0) > 10_000);
    for round in 0..20 {
        publish_all(&bridge, &numbered(1 + round % 3, 9, round as u64 * 500, 500));
    }
    std::thread::sleep(Duration::from_millis(500));
    let stats = stop_cleanly(app, "-TERM", &dir);
    let t = &stats["totals"];
    let refused = drops(t, tachyon::dataplane::reason::DropReason::TxFull);
    eprintln!(
        "tx_full {refused} of rx {}; bridge frames sent {} refused {}",
        t["rx_packets"], t["bridge_frames_sent"], t["bridge_frames_tx_full"]
    );
    assert!(refused > 10_000, "tx_full: {t}");
    assert_eq!(counter(t, "tx_packets"), counter(&stats["ports"][1], "tx_packets"), "sent = what the port took");
    assert!(counter(t, "bridge_frames_tx_full") > 0, "bridge frames refused too: {t}");
    assert_eq!(counter(t, "bridge_msgs_received"), 10_000, "{t}");
    // Refused mbufs were freed, not kept: the pool is whole at exit.
    assert_run_consistent(&stats);
    assert_bridge_conserved(&stats);
}

/// The numbered messages of `want` missing from `got`, as ranges of their numbers.
fn missing_ranges(want: &[Msg], got: &[Msg]) -> Vec<(u64, u64)> {
    let number = |m: &Msg| u64::from_le_bytes(m.2[..8].try_into().unwrap());
    let have: std::collections::BTreeSet<u64> = got.iter().map(number).collect();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for n in want.iter().map(number).filter(|n| !have.contains(n)) {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => out.push((n, n)),
        }
    }
    out
}

/// Child role for the test below: publish big batches on topic 1 forever.
fn publish_forever(path: &str) {
    let bridge = Bridge::connect(path).unwrap();
    let batch = numbered(1, 666, 0, 4096);
    loop {
        let _ = publish(&bridge, &batch);
    }
}

#[test]
fn a_producer_killed_mid_batch_stalls_nothing_and_loses_no_other_message() {
    if let Ok(path) = std::env::var("TACHYON_FAULTS_PUBLISH_FOREVER") {
        return publish_forever(&path);
    }
    let _g = dpdk_lock();
    let dir = scratch_dir("faults-killed-producer");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[bridge]\nunblock_timeout_ms = 100\n").unwrap();
    let eal = eal_args(&["net_null0,no-rx=1".into()]);
    let mut app = Running::start(&eal, &bridge_app(&dir, &["--config", cfg.to_str().unwrap()]), &[]);
    let path = dir.join("b.bridge");
    let bridge = Arc::new(connect(&mut app, &path));
    // The steady producer's messages (topic 2) and their subscriber.
    let mut sub = bridge.subscribe(Some(&[2])).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let steady = {
        let (bridge, stop) = (bridge.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut accepted = Vec::new();
            let mut next = 0;
            while !stop.load(Ordering::Relaxed) {
                accepted.extend(publish(&bridge, &numbered(2, 1, next, 100)));
                next += 100;
                std::thread::sleep(Duration::from_millis(2));
            }
            accepted
        })
    };
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        while got.len() < 1 << 30 {
            let more = drain(&mut sub, usize::MAX, Duration::from_secs(3));
            if more.is_empty() {
                break;
            }
            got.extend(more);
        }
        (got, sub.overflow())
    });
    // Kill publishers until one died between claim and commit (the worker skipped its hole).
    let mut kills = 0;
    let unblocked = |app: &mut Running| counter(&app.wait_for("/tachyon/bridge")["shard_0"], "unblocked");
    while unblocked(&mut app) == 0 {
        assert!(kills < 40, "no publisher of {kills} died mid-batch");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "a_producer_killed_mid_batch_stalls_nothing_and_loses_no_other_message"])
            .env("TACHYON_FAULTS_PUBLISH_FOREVER", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + 37 * kills));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let accepted = steady.join().unwrap();
    let (got, overflow) = reader.join().unwrap();
    assert_eq!(overflow, 0, "the steady subscriber kept up");
    assert!(accepted.len() > 1000, "the steady producer published only {}", accepted.len());
    let missing = missing_ranges(&accepted, &got);
    assert!(app.child.try_wait().unwrap().is_none(), "the appliance runs on");
    let stats = stop_cleanly(app, "-TERM", &dir);
    assert_bridge_conserved(&stats);
    assert!(
        got == accepted,
        "the steady producer's {} messages arrive, in order (got {}; missing {missing:?}); bridge: {}",
        accepted.len(),
        got.len(),
        stats["bridge"]
    );
    eprintln!("{kills} publishers killed; shard unblocked {} time(s)", stats["bridge"]["shards"][0]["unblocked"]);
    assert_run_consistent(&stats);
}

#[test]
fn a_subscriber_that_stops_reading_is_counted_and_holds_up_nobody() {
    let _g = dpdk_lock();
    let dir = scratch_dir("faults-stalled-sub");
    let cfg = dir.join("c.toml");
    // Small subscriber rings, so the stalled one overflows soon.
    std::fs::write(&cfg, "[bridge]\nsubscriber_ring_bytes = 65536\n").unwrap();
    let eal = eal_args(&["net_null0,no-rx=1".into()]);
    let mut app = Running::start(&eal, &bridge_app(&dir, &["--config", cfg.to_str().unwrap()]), &[]);
    let bridge = connect(&mut app, &dir.join("b.bridge"));
    let mut stalled = bridge.subscribe(None).unwrap();
    let mut reading = bridge.subscribe(None).unwrap();
    let total = 20_000u64;
    // The reader reports what it has; the publisher never runs more than a
    // batch ahead of it, so only the stalled subscriber can overflow.
    let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = {
        let read = read.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < total as usize {
                let more = drain(&mut reading, 1, Duration::from_secs(10));
                assert!(!more.is_empty(), "the reading subscriber starved after {}", got.len());
                got.extend(more);
                read.store(got.len(), Ordering::Relaxed);
            }
            (got, reading.overflow())
        })
    };
    let mut published = Vec::new();
    for first in (0..total).step_by(200) {
        let msgs = numbered(1 + (first / 200 % 4) as u32, 5, first, 200);
        publish_all(&bridge, &msgs);
        published.extend(msgs);
        let deadline = Instant::now() + Duration::from_secs(10);
        while read.load(Ordering::Relaxed) < published.len() {
            assert!(Instant::now() < deadline, "the reading subscriber fell behind for 10 s");
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let (got, overflow) = reader.join().unwrap();
    assert_eq!(overflow, 0, "the reading subscriber lost nothing");
    assert!(got == published, "the reading subscriber got all {total} messages in order (got {})", got.len());
    // The appliance answers while one subscriber sits on a full ring.
    let live = app.wait_for("/tachyon/bridge");
    let lost = stalled.overflow();
    assert!(lost > 0, "the stalled subscriber's ring never overflowed");
    let slot = stalled.slot() as u64;
    let seen = &live[format!("subscriber_{slot}")]["overflow"];
    assert_eq!(seen, &Value::from(lost), "its drops are counted by the appliance: {live}");
    // What it still finds plus what it lost is everything: nothing else went missing.
    let late = drain(&mut stalled, total as usize, Duration::from_millis(500));
    assert_eq!(late.len() as u64 + lost, total, "stalled subscriber: {} read + {lost} counted lost", late.len());
    eprintln!("stalled subscriber: {} read late + {lost} overflow = {total}; the reader got {}", late.len(), got.len());
    drop((stalled, bridge));
    let stats = stop_cleanly(app, "-TERM", &dir);
    assert_eq!(stats["totals"]["bridge_msgs_admitted"], total);
    assert_run_consistent(&stats);
    assert_bridge_conserved(&stats);
}

/// A GET of /metrics: the body, or an error within `limit`.
fn scrape(addr: SocketAddr, limit: Duration) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, limit)?;
    s.set_read_timeout(Some(limit))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The sum of every sample of `metric` (all label sets) in a scrape.
fn metric_sum(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn sigterm_under_full_load_exits_0_with_consistent_final_stats() {
    let _g = dpdk_lock();
    let dir = scratch_dir("faults-sigterm-load");
    let input = traffic_pcap(&dir, 1024);
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[workers]\nlcores = [1, 2]\n").unwrap();
    let vdevs = [
        format!("net_pcap0,rx_pcap={i},rx_pcap={i},infinite_rx=1", i = input.display()),
        "net_null0,no-rx=1".to_string(),
    ];
    let addr = free_loopback_port();
    let extra = ["--config", cfg.to_str().unwrap(), "--metrics", &addr.to_string()];
    let mut app = Running::start(&eal_args_two_workers(&vdevs), &bridge_app(&dir, &extra), &[]);
    let bridge = Arc::new(connect(&mut app, &dir.join("b.bridge")));
    let stop = Arc::new(AtomicBool::new(false));
    // Load on every path at once: wire replay on both workers, publishers on
    // both shards, a subscriber, and scrapes.
    let publisher = {
        let (bridge, stop) = (bridge.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Topics 1 and 2 in turn: both shards, both workers.
                publish(&bridge, &numbered(1 + (round % 2) as u32, 3, round * 256, 256));
                round += 1;
            }
        })
    };
    let mut sub = bridge.subscribe(None).unwrap();
    let subscriber = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = sub.poll(Some(Duration::from_millis(10)));
            }
        })
    };
    let mut last_scrape = String::new();
    for _ in 0..10 {
        last_scrape = scrape(addr, Duration::from_secs(5)).expect("metrics answer under load");
        std::thread::sleep(Duration::from_millis(200));
    }
    let scraped_rx = metric_sum(&last_scrape, "tachyon_packets_processed_total");
    assert!(scraped_rx > 0.0, "no traffic in the scrape:\n{last_scrape}");
    let (status, err) = app.stop("-TERM");
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    subscriber.join().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM under load: {status}\n{err}");
    let stats = read_json(&dir.join("stats.json"));
    let t = &stats["totals"];
    eprintln!(
        "SIGTERM under load: rx {} tx {} dropped {}; bridge received {} admitted {}",
        t["rx_packets"], t["tx_packets"], t["dropped"], t["bridge_msgs_received"], t["bridge_msgs_admitted"]
    );
    assert!(counter(t, "rx_packets") as f64 >= scraped_rx, "final rx below an earlier scrape: {t}");
    assert!(counter(t, "bridge_msgs_admitted") > 0, "{t}");
    for w in stats["workers"].as_array().unwrap() {
        assert!(counter(w, "rx_packets") > 0 && counter(w, "bridge_msgs_received") > 0, "an idle worker: {w}");
    }
    assert_run_consistent(&stats);
    assert_bridge_conserved(&stats);
}

#[test]
fn a_mempool_exhausted_by_a_burst_of_bridge_frames_counts_the_loss_and_recovers() {
    let _g = dpdk_lock();
    let dir = scratch_dir("faults-mempool");
    // The smallest pool the config allows, nearly all of it held by the
    // replayed capture (net_pcap keeps an infinite_rx capture in mbufs):
    // some 40 mbufs are left for everything else.
    let input = traffic_pcap(&dir, 984);
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[dataplane]\nmbufs_per_pool = 1024\nburst_size = 8\n").unwrap();
    let vdevs = [format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()), "net_null0,no-rx=1".into()];
    let mut app = Running::start(&eal_args(&vdevs), &bridge_app(&dir, &["--config", cfg.to_str().unwrap()]), &[]);
    let bridge = connect(&mut app, &dir.join("b.bridge"));
    // Topics of the bridge alone (the replayed capture uses 1 to 16, and admitted wire frames reach subscribers too).
    let mut sub = bridge.subscribe(Some(&(1000..1010).collect::<Vec<u32>>())).unwrap();
    wait_stats(&mut app, "wire traffic", |s| s["rx_packets"].as_u64().unwrap_or(0) > 10_000);
    // Pressure: every message a topic of its own, so each needs a frame (an
    // mbuf) of its own, hundreds per poll round.
    let flood: Vec<Msg> = (0..20_000u64).map(|i| (1000 + (i % 1000) as u32, 8, i.to_le_bytes().to_vec())).collect();
    for chunk in flood.chunks(2000) {
        publish_all(&bridge, chunk);
    }
    let pressed = wait_stats(&mut app, "the flood taken", |s| s["bridge_msgs_received"].as_u64() == Some(20_000));
    let no_mbuf = counter(&pressed, "bridge_msgs_no_mbuf");
    assert!(no_mbuf > 0, "the flood never ran the pool dry: {pressed}");
    let _ = drain(&mut sub, 20_000, Duration::from_millis(500));
    // Pressure over: the same shape of traffic, a little at a time, all arrives.
    let mut after = Vec::new();
    for round in 0..20u64 {
        let msgs: Vec<Msg> = (0..10).map(|i| (1000 + i as u32, 8, (round * 10 + i).to_le_bytes().to_vec())).collect();
        publish_all(&bridge, &msgs);
        after.extend(msgs);
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = drain(&mut sub, after.len(), Duration::from_secs(5));
    assert!(got == after, "after the pressure every message arrives ({} of {})", got.len(), after.len());
    let rx_then = counter(&pressed, "rx_packets");
    let later =
        wait_stats(&mut app, "wire traffic after the pressure", |s| counter(s, "rx_packets") > rx_then + 10_000);
    assert_eq!(counter(&later, "bridge_msgs_no_mbuf"), no_mbuf, "no loss once the pressure ended");
    drop((sub, bridge));
    let stats = stop_cleanly(app, "-TERM", &dir);
    eprintln!("{no_mbuf} of 20000 flood messages found no mbuf");
    assert_eq!(stats["mempools"][0]["size"], 1024);
    assert_run_consistent(&stats);
    assert_bridge_conserved(&stats);
}

/// A veth pair in this namespace, deleted on drop.
struct Veth(String);

impl Veth {
    fn create(name: &str) -> Veth {
        let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
        let _ = Command::new("ip").args(["link", "del", name]).stderr(Stdio::null()).status();
        ip(&["link", "add", name, "type", "veth", "peer", "name", &format!("{name}p")]);
        ip(&["link", "set", name, "up"]);
        ip(&["link", "set", &format!("{name}p"), "up"]);
        Veth(name.to_string())
    }

    fn peer(&self) -> String {
        format!("{}p", self.0)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// A process sending `frame` on `iface` as fast as the kernel takes it.
fn blaster(iface: &str, frame: &[u8]) -> Child {
    let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    let script = "import socket, sys\n\
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
        s.bind((sys.argv[1], 0))\n\
        f = bytes.fromhex(sys.argv[2])\n\
        while True:\n    s.send(f)\n";
    Command::new("python3").args(["-c", script, iface, &hex]).stdout(Stdio::null()).spawn().expect("python3 runs")
}

/// The value of the one sample of `series` (with its labels) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn rx_faster_than_the_worker_shows_as_imissed_and_the_appliance_answers() {
    let _g = dpdk_lock();
    let dir = scratch_dir("faults-imissed");
    let veth = Veth::create(&format!("tfm{}", std::process::id() % 100_000));
    let addr = free_loopback_port();
    let vdevs = [format!("net_pcap0,rx_iface={}", veth.0), "net_null0,no-rx=1".into()];
    let app_opts = strings(&["--quiet", "--no-bridge", "--metrics", &addr.to_string()]);
    let mut app_opts = app_opts;
    app_opts.extend(strings(&["--stats-json", dir.join("stats.json").to_str().unwrap()]));
    let mut app = Running::start(&eal_args(&vdevs), &app_opts, &[]);
    app.wait_for("/tachyon/stats");
    let frame = FrameSpec { topic_id: 4, sender_id: 4, ..Default::default() }.build();
    let mut sender = blaster(&veth.peer(), &frame);
    wait_stats(&mut app, "traffic from the veth", |s| s["rx_packets"].as_u64().unwrap_or(0) > 1000);
    // The worker falls behind for certain: stop the whole appliance for a
    // second while the sender goes on, so the socket's ring overflows.
    let pid = app.child.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_secs(1));
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    // Still under load: scrapes and telemetry answer, and show the misses.
    let mut missed = 0.0;
    for _ in 0..10 {
        let text = scrape(addr, Duration::from_secs(5)).expect("metrics answer while overloaded");
        missed =
            sample(&text, "tachyon_port_rx_missed_total{port=\"0\",name=\"net_pcap0\"}").expect("rx_missed series");
        assert!(app.wait_for("/tachyon/stats")["rx_packets"].as_u64().is_some(), "telemetry answers");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = sender.kill();
    let _ = sender.wait();
    assert!(missed > 0.0, "no imissed in the scrape after the overflow");
    let stats = stop_cleanly(app, "-TERM", &dir);
    let port = &stats["ports"][0];
    eprintln!("imissed: {missed} scraped, {} at exit; rx {}", port["rx_missed"], port["rx_packets"]);
    assert!(counter(port, "rx_missed") as f64 >= missed, "{port}");
    assert_run_consistent(&stats);
    drop(veth);
}
