//! Bridge throughput and latency: publish 16-byte messages (a `CLOCK_MONOTONIC`
//! timestamp, then a sequence number) at a fixed batch size, retrying refused
//! shards with a short back-off, while a subscriber thread counts what arrives
//! and how long it took. Two phases: as fast as the bridge accepts (`full`),
//! then paced at half the accepted rate measured in the first phase (`half`).
//! One JSON line per phase on stdout.
//!
//! ```text
//! bench --path /dev/shm/X.bridge --batch 1000 --shape grouped --secs 2      # a running appliance
//! bench --in-process --shards 2 --batch 1000 --shape interleaved --secs 2   # the peer: no appliance
//! ```
//!
//! `--in-process` creates a region in this process and drains each shard on
//! its own thread (ring consumer plus subscriber fan-out, no DPDK, no framing,
//! no governance): the ring's own ceiling on this machine, the yardstick for
//! the appliance.
//!
//! Shapes: `grouped` = runs of 100 messages of one topic and sender;
//! `interleaved` = every message a different topic from the one before.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tachyon_bridge::{Bridge, Layout, Region, monotonic_ns};

const PAYLOAD: usize = 16;
/// Distinct topics each shape cycles through.
const TOPICS: u32 = 1000;
/// Run length of the grouped shape.
const RUN: u64 = 100;

#[derive(Clone)]
struct Opts {
    path: Option<String>,
    in_process: bool,
    shards: u32,
    batch: usize,
    grouped: bool,
    secs: f64,
    grace_ms: u64,
    subscriber: bool,
    half: bool,
    ingress_ring_bytes: u32,
    subscriber_ring_bytes: u32,
    drain_budget: usize,
    pin: bool,
    label: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench (--path REGION | --in-process [--shards N]) [--batch N] [--shape grouped|interleaved]\n\
         \x20            [--secs S] [--grace-ms MS] [--no-subscriber] [--no-half] [--ingress-ring-bytes B]\n\
         \x20            [--subscriber-ring-bytes B] [--drain-budget N] [--no-pin] [--label TEXT]"
    );
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut o = Opts {
        path: None,
        in_process: false,
        shards: 1,
        batch: 1000,
        grouped: true,
        secs: 2.0,
        grace_ms: 300,
        subscriber: true,
        half: true,
        ingress_ring_bytes: 8 << 20,
        subscriber_ring_bytes: 16 << 20,
        drain_budget: 2048,
        pin: true,
        label: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--path" => o.path = Some(val()),
            "--in-process" => o.in_process = true,
            "--shards" => o.shards = val().parse().unwrap_or_else(|_| usage()),
            "--batch" => o.batch = val().parse().unwrap_or_else(|_| usage()),
            "--shape" => {
                o.grouped = match val().as_str() {
                    "grouped" => true,
                    "interleaved" => false,
                    _ => usage(),
                }
            }
            "--secs" => o.secs = val().parse().unwrap_or_else(|_| usage()),
            "--grace-ms" => o.grace_ms = val().parse().unwrap_or_else(|_| usage()),
            "--no-subscriber" => o.subscriber = false,
            "--no-half" => o.half = false,
            "--ingress-ring-bytes" => o.ingress_ring_bytes = val().parse().unwrap_or_else(|_| usage()),
            "--subscriber-ring-bytes" => o.subscriber_ring_bytes = val().parse().unwrap_or_else(|_| usage()),
            "--drain-budget" => o.drain_budget = val().parse().unwrap_or_else(|_| usage()),
            "--no-pin" => o.pin = false,
            "--label" => o.label = val(),
            _ => usage(),
        }
    }
    if o.in_process == o.path.is_some() || o.batch == 0 || o.shards == 0 {
        usage();
    }
    o
}

/// Latency histogram: exact below 32 ns, then 32 sub-buckets per power of two (≤ 3 % error).
struct Hist {
    buckets: Vec<u64>,
    n: u64,
}

impl Hist {
    fn new() -> Hist {
        Hist { buckets: vec![0; 64 * 32], n: 0 }
    }
    #[inline]
    fn index(v: u64) -> usize {
        if v < 32 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize; // >= 5
        (e - 4) * 32 + ((v >> (e - 5)) & 31) as usize
    }
    fn value(i: usize) -> u64 {
        if i < 32 {
            return i as u64;
        }
        let (e, sub) = (i / 32 + 4, (i % 32) as u64);
        // Middle of the bucket.
        ((32 + sub) << (e - 5)) + ((1u64 << (e - 5)) >> 1)
    }
    #[inline]
    fn add(&mut self, v: u64) {
        self.buckets[Self::index(v)] += 1;
        self.n += 1;
    }
    fn quantile(&self, q: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let want = ((self.n as f64 * q).ceil() as u64).clamp(1, self.n);
        let mut acc = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            acc += c;
            if acc >= want {
                return Some(Self::value(i));
            }
        }
        None
    }
}

/// What the subscriber thread shares with the publisher.
struct SubShared {
    stop: AtomicBool,
    delivered: AtomicU64,
    /// Messages stamped before this are not counted in the histogram (the previous phase).
    phase_start_ns: AtomicU64,
    hist: Mutex<Hist>,
    ready: AtomicBool,
    overflow: AtomicU64,
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn subscriber(bridge: &Bridge, sh: &SubShared) {
    let mut sub = bridge.subscribe(None).expect("subscribe");
    sh.ready.store(true, Ordering::Release);
    let mut local = Hist::new();
    while !sh.stop.load(Ordering::Acquire) {
        match sub.poll(Some(Duration::from_millis(20))) {
            Ok(Some(b)) => {
                let now = monotonic_ns();
                let from = sh.phase_start_ns.load(Ordering::Relaxed);
                let p = b.payloads();
                let o = b.offsets();
                for i in 0..b.len() {
                    let s = o[i] as usize;
                    if o[i + 1] as usize - s >= 8 {
                        let ts = u64::from_le_bytes(p[s..s + 8].try_into().unwrap());
                        if ts >= from {
                            local.add(now.saturating_sub(ts));
                        }
                    }
                }
                sh.delivered.fetch_add(b.len() as u64, Ordering::Relaxed);
                // Hand the batch's latencies over (one lock per poll, not per message).
                let mut h = sh.hist.lock().unwrap();
                for (d, s) in h.buckets.iter_mut().zip(local.buckets.iter_mut()) {
                    if *s != 0 {
                        *d += *s;
                        *s = 0;
                    }
                }
                h.n += local.n;
                local.n = 0;
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("bench: subscriber: {e}");
                break;
            }
        }
        sh.overflow.store(sub.overflow(), Ordering::Relaxed);
    }
}

/// One batch's columns, refilled for each publish.
struct Gen {
    grouped: bool,
    next: u64,
    topics: Vec<u32>,
    senders: Vec<u32>,
    payloads: Vec<u8>,
    offsets: Vec<u64>,
}

impl Gen {
    fn new(grouped: bool, batch: usize) -> Gen {
        Gen {
            grouped,
            next: 0,
            topics: Vec::with_capacity(batch),
            senders: Vec::with_capacity(batch),
            payloads: Vec::with_capacity(batch * PAYLOAD),
            offsets: (0..=batch as u64).map(|i| i * PAYLOAD as u64).collect(),
        }
    }

    fn fill(&mut self, batch: usize) {
        let ts = monotonic_ns().to_le_bytes();
        self.topics.clear();
        self.senders.clear();
        self.payloads.clear();
        for k in 0..batch as u64 {
            let i = self.next + k;
            let topic = if self.grouped { (i / RUN) as u32 % TOPICS } else { i as u32 % TOPICS };
            self.topics.push(topic);
            self.senders.push(topic % 100);
            self.payloads.extend_from_slice(&ts);
            self.payloads.extend_from_slice(&i.to_le_bytes());
        }
        self.next += batch as u64;
    }
}

/// Retry buffers: the refused messages of the last attempt.
#[derive(Default)]
struct Retry {
    topics: Vec<u32>,
    senders: Vec<u32>,
    payloads: Vec<u8>,
    offsets: Vec<u64>,
}

#[derive(Default)]
struct PhaseOut {
    accepted: u64,
    publish_calls: u64,
    refused_parts: u64,
    backoff_sleeps: u64,
    elapsed: f64,
}

/// Publish until `secs` have passed: as fast as accepted, or paced at `rate` msgs/s.
fn phase(bridge: &Bridge, g: &mut Gen, batch: usize, secs: f64, rate: Option<f64>) -> PhaseOut {
    let mut out = PhaseOut::default();
    let mut r: Retry;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let interval = rate.map(|r| Duration::from_secs_f64(batch as f64 / r));
    let mut next = start;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if let Some(iv) = interval {
            if now < next {
                // Sleep, never spin: on a small machine a spinning publisher
                // takes the subscriber's CPU. A late wake-up publishes the
                // batches due since then back to back.
                std::thread::sleep(next - now);
                continue;
            }
            next += iv;
            // Far behind (a descheduled publisher): do not burst to catch up.
            if now > next + Duration::from_millis(5) {
                next = now;
            }
        }
        g.fill(batch);
        let mut rep = bridge.publish_batch(&g.topics, &g.senders, &g.payloads, &g.offsets).expect("publish");
        out.publish_calls += 1;
        out.accepted += rep.accepted_total();
        if rep.all_accepted() {
            continue;
        }
        // Retry the refused shards' messages only, with a short back-off.
        let mut mask = rep.accepted_mask(&g.topics);
        let (mut t, mut s, mut p, mut o) = (&g.topics[..], &g.senders[..], &g.payloads[..], &g.offsets[..]);
        let mut tries = 0u32;
        loop {
            out.refused_parts += rep.refused_shards.len() as u64;
            let mut nr = Retry { offsets: vec![0], ..Default::default() };
            for i in 0..t.len() {
                if !mask[i] {
                    nr.topics.push(t[i]);
                    nr.senders.push(s[i]);
                    nr.payloads.extend_from_slice(&p[o[i] as usize..o[i + 1] as usize]);
                    nr.offsets.push(nr.payloads.len() as u64);
                }
            }
            r = nr;
            (t, s, p, o) = (&r.topics[..], &r.senders[..], &r.payloads[..], &r.offsets[..]);
            if tries < 2 {
                std::thread::yield_now();
            } else {
                out.backoff_sleeps += 1;
                std::thread::sleep(Duration::from_micros((5u64 << (tries - 2).min(6)).min(200)));
            }
            tries += 1;
            if Instant::now() > end + Duration::from_secs(2) {
                eprintln!("bench: giving up on {} refused messages", t.len());
                break;
            }
            rep = bridge.publish_batch(t, s, p, o).expect("publish");
            out.publish_calls += 1;
            out.accepted += rep.accepted_total();
            if rep.all_accepted() {
                break;
            }
            mask = rep.accepted_mask(t);
        }
    }
    out.elapsed = start.elapsed().as_secs_f64();
    out
}

/// The in-process peer: a region in this process, one draining thread per shard.
struct InProcess {
    region: Arc<Region>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl InProcess {
    fn start(o: &Opts) -> InProcess {
        let path = format!("/dev/shm/tachyon-bench-inproc-{}.bridge", std::process::id());
        let layout = Layout {
            shards: o.shards,
            ingress_ring_bytes: o.ingress_ring_bytes,
            subscriber_slots: 4,
            subscriber_ring_bytes: o.subscriber_ring_bytes,
            max_message_bytes: 1500 - 20 - 8 - 32 - 2,
        };
        let region = Arc::new(Region::create(&path, layout, 0o600, None).expect("create region"));
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let threads = (0..o.shards)
            .map(|shard| {
                let mut consumer = region.ingress_consumer(shard).unwrap();
                let mut fanout = region.fanout(shard).unwrap();
                let stop = stop.clone();
                let (budget, pin) = (o.drain_budget, o.pin);
                std::thread::spawn(move || {
                    // Like the appliance's workers: shard 0 on CPU 1, shard 1 on CPU 0.
                    if pin && cpus > 1 {
                        pin_to((shard as usize + 1) % cpus);
                    }
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let got = consumer
                            .drain(budget, monotonic_ns(), |m| {
                                fanout.deliver_one(m.topic, m.sender, m.payload);
                            })
                            .delivered;
                        fanout.refresh_if_changed();
                        fanout.flush();
                        n += got as u64;
                        if got == 0 {
                            std::thread::yield_now();
                        }
                    }
                    n
                })
            })
            .collect();
        InProcess { region, stop, threads }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let n = self.threads.into_iter().map(|t| t.join().unwrap()).sum();
        drop(self.region);
        n
    }
}

fn main() {
    let o = parse_args();
    // Sleeps of tens of microseconds (pacing, back-off) rather than the default 50 µs slack.
    // SAFETY: prctl with PR_SET_TIMERSLACK only sets this thread's timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64) };
    let inproc = o.in_process.then(|| InProcess::start(&o));
    let path = match &inproc {
        Some(p) => p.region.path().to_path_buf(),
        None => o.path.clone().unwrap().into(),
    };
    let bridge = Bridge::connect(&path).unwrap_or_else(|e| {
        eprintln!("bench: connect {}: {e}", path.display());
        std::process::exit(1)
    });
    let shards = bridge.shards();
    let sh = SubShared {
        stop: AtomicBool::new(false),
        delivered: AtomicU64::new(0),
        phase_start_ns: AtomicU64::new(0),
        hist: Mutex::new(Hist::new()),
        ready: AtomicBool::new(false),
        overflow: AtomicU64::new(0),
    };
    let target = if o.in_process { "inproc" } else { "appliance" };
    std::thread::scope(|scope| {
        if o.subscriber {
            scope.spawn(|| subscriber(&bridge, &sh));
            while !sh.ready.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut g = Gen::new(o.grouped, o.batch);
        let mut full_rate = 0.0;
        let phases: &[&str] = if o.half { &["full", "half"] } else { &["full"] };
        for &ph in phases {
            let rate = (ph == "half").then_some(full_rate / 2.0);
            // Start each phase from an empty pipeline.
            std::thread::sleep(Duration::from_millis(50));
            let d0 = sh.delivered.load(Ordering::Relaxed);
            let ov0 = sh.overflow.load(Ordering::Relaxed);
            sh.phase_start_ns.store(monotonic_ns(), Ordering::Relaxed);
            *sh.hist.lock().unwrap() = Hist::new();
            let out = phase(&bridge, &mut g, o.batch, o.secs, rate);
            std::thread::sleep(Duration::from_millis(o.grace_ms));
            let delivered = sh.delivered.load(Ordering::Relaxed) - d0;
            let overflow = sh.overflow.load(Ordering::Relaxed) - ov0;
            let hist = std::mem::replace(&mut *sh.hist.lock().unwrap(), Hist::new());
            let accepted_per_s = out.accepted as f64 / out.elapsed;
            if ph == "full" {
                full_rate = accepted_per_s;
            }
            let us = |q: f64| hist.quantile(q).map_or("null".to_string(), |v| format!("{:.2}", v as f64 / 1e3));
            println!(
                "{{\"label\":\"{}\",\"target\":\"{target}\",\"shards\":{shards},\"batch\":{},\"shape\":\"{}\",\
                 \"phase\":\"{ph}\",\"offered_per_s\":{},\"secs\":{:.3},\"accepted\":{},\"accepted_per_s\":{:.0},\
                 \"delivered\":{delivered},\"delivered_per_s\":{:.0},\"subscriber_overflow\":{overflow},\
                 \"publish_calls\":{},\"refused_parts\":{},\"backoff_sleeps\":{},\"lat_samples\":{},\
                 \"lat_p50_us\":{},\"lat_p99_us\":{},\"lat_p999_us\":{}}}",
                o.label,
                o.batch,
                if o.grouped { "grouped" } else { "interleaved" },
                rate.map_or("null".to_string(), |r| format!("{r:.0}")),
                out.elapsed,
                out.accepted,
                accepted_per_s,
                delivered as f64 / out.elapsed,
                out.publish_calls,
                out.refused_parts,
                out.backoff_sleeps,
                hist.n,
                us(0.5),
                us(0.99),
                us(0.999),
            );
        }
        sh.stop.store(true, Ordering::Release);
    });
    if let Some(p) = inproc {
        let drained = p.stop();
        eprintln!("bench: in-process consumers drained {drained} messages");
    }
}
