//! `tachyon-gen live [EAL args] -- [options]`: sends the traffic model's
//! packets on a DPDK port at a target rate (or as fast as the port takes
//! them) and, on a receive port, counts what comes back: loss, reordering
//! per sender, and latency from the frames' own timestamps.
//!
//! A pool of frames is built up front from the seeded model (same flags,
//! same bytes) and sent in turn, over and over. Two header fields change at
//! send time: `seq`, so every sender's sequence keeps rising across passes
//! over the pool, and `timestamp_ns` (with `--latency`), the send time on a
//! TSC clock that the receive side reads too. The loop runs on EAL's main
//! lcore; transmit and receive share it, so one CPU is enough.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use serde_json::{Value, json};
use tachyon::dataplane::classify::{Accepted, NicChecksum, ParseConfig, classify};
use tachyon::dpdk::{self, Eal, FreeBatch, Mempool, Port, PortConfig, RxBurst, RxQueue, TxBuffer, TxQueue};
use tachyon::traffic::{FrameKind, TrafficConfig, TrafficGenerator};
use tachyon::wire::Layout;
use tachyon::wire::tachyon::field as tachyon_field;

use crate::latency::Histogram;
use crate::traffic_args::TrafficArgs;

const EXAMPLES: &str = "\
Examples:
  # Through tachyon over memif: tachyon is the memif server, this the client, on CPU 0.
  tachyon-gen live --lcores 0@0 --no-huge -m 256 --no-pci --file-prefix gen \\
      --vdev net_memif0,role=client,socket=/tmp/tachyon.sock,socket-abstract=no \\
      -- --rate 1000000 --duration 5 --latency --rx-port 0 --settle-ms 1500 --topics 1000 --dist zipf

  # As fast as possible into a sink, no receive side:
  tachyon-gen live -l 0 --no-huge -m 256 --no-pci --vdev net_null0,no-rx=1 -- --duration 3";

/// Mbufs in the generator's pool: rings, bursts in flight and per-lcore cache.
const POOL_MBUFS: u32 = 8191;
const POOL_CACHE: u32 = 256;
const DESCRIPTORS: u16 = 1024;
/// Falling this many bursts behind the schedule resets it instead of catching up.
const MAX_BURSTS_BEHIND: f64 = 4.0;

/// Tachyon-gen live mode.
#[derive(Parser, Debug)]
#[command(
    name = "tachyon-gen live",
    version,
    override_usage = "tachyon-gen live [EAL args] -- [OPTIONS]",
    after_help = EXAMPLES
)]
pub struct LiveArgs {
    /// Port to send on.
    #[arg(long, default_value_t = 0)]
    pub tx_port: u16,
    /// Port on which the traffic comes back (counted, checked, timed); without it, send only.
    #[arg(long)]
    pub rx_port: Option<u16>,
    /// Packets per second; 0 sends as fast as the port takes them.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Stamp each frame with its send time (TS_PRESENT) and measure the latency of what comes back.
    #[arg(long)]
    pub latency: bool,
    /// Seconds at the start whose frames stay out of the latency histogram (queues and caches settle).
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Distinct frames built from the traffic model and sent in turn.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub pool_frames: u32,
    /// Packets per transmit burst (1-256).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub burst: u16,
    /// Milliseconds to keep receiving after the last send, for frames still in flight.
    #[arg(long, default_value_t = 200)]
    pub drain_ms: u64,
    /// Seconds to wait for the ports' links to come up (a memif peer to connect).
    #[arg(long, default_value_t = 10.0)]
    pub link_wait: f64,
    /// Milliseconds to wait once the links are up before sending (a peer may notice its link later).
    #[arg(long, default_value_t = 0)]
    pub settle_ms: u64,
    /// After the run (and after writing --stats-json), keep the ports open for up to this many
    /// seconds, until the peer takes the link down: net_memif unmaps its rings when one side
    /// leaves, which a peer still polling them may not survive.
    #[arg(long, default_value_t = 0.0)]
    pub linger: f64,
    /// Write the results (sent, received, loss, reordering, latency) as JSON here.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Do not print the once-a-second line.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub traffic: TrafficArgs,
}

/// One pre-built packet and where its per-send fields are.
struct PoolFrame {
    bytes: Vec<u8>,
    kind: FrameKind,
    /// Offset of the Tachyon header when the frame is valid.
    header_at: Option<usize>,
}

/// TSC ticks to nanoseconds since the Unix epoch, without a division per packet.
#[derive(Clone, Copy)]
struct NsClock {
    tsc0: u64,
    epoch_ns0: u64,
    /// ns per tick in 32.32 fixed point.
    mult: u128,
}

impl NsClock {
    fn start() -> NsClock {
        let epoch_ns0 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        NsClock { tsc0: dpdk::tsc(), epoch_ns0, mult: (1_000_000_000u128 << 32) / u128::from(dpdk::tsc_hz()) }
    }

    #[inline(always)]
    fn ns(&self, tsc: u64) -> u64 {
        self.epoch_ns0 + ((u128::from(tsc.wrapping_sub(self.tsc0)) * self.mult) >> 32) as u64
    }
}

/// Everything the loop counts; plain fields, no atomics (one thread).
#[derive(Default)]
struct Tally {
    tx_packets: u64,
    tx_bytes: u64,
    tx_refused: u64,
    alloc_failures: u64,
    rx_packets: u64,
    rx_frames: u64,
    rx_msgs: u64,
    rx_other: u64,
    reordered: u64,
    /// Frames whose timestamp was ahead of the clock (not ours, or corrupted).
    future_timestamps: u64,
}

fn build_pool(config: &TrafficConfig, frames: u32) -> Result<Vec<PoolFrame>, String> {
    let mut generator = TrafficGenerator::new(config.clone(), u64::from(frames)).map_err(|e| e.to_string())?;
    let header_offset = Layout::new(config.vlan.is_some()).payload;
    let mut pool = Vec::with_capacity(frames as usize);
    let mut bytes = Vec::new();
    while let Some(g) = generator.next_into(&mut bytes) {
        if bytes.len() > usize::from(u16::MAX) {
            return Err(format!("a {}-byte frame does not fit one mbuf", bytes.len()));
        }
        let header_at = matches!(g.kind, FrameKind::Valid { .. }).then_some(header_offset);
        pool.push(PoolFrame { bytes: bytes.clone(), kind: g.kind, header_at });
    }
    Ok(pool)
}

/// What `sent` sends of the pool, in order from frame 0, amount to.
fn sent_summary(pool: &[PoolFrame], sent: u64) -> Value {
    let n = pool.len() as u64;
    let (passes, rest) = (sent / n, sent % n);
    let (mut valid, mut messages, mut bytes) = (0u64, 0u64, 0u64);
    let mut malformed: BTreeMap<&'static str, u64> =
        tachyon::traffic::PARSER_REASONS.iter().map(|r| (r.name(), 0)).collect();
    for (i, f) in pool.iter().enumerate() {
        let times = passes + u64::from((i as u64) < rest);
        bytes += times * f.bytes.len() as u64;
        match f.kind {
            FrameKind::Valid { msg_count, .. } => {
                valid += times;
                messages += times * u64::from(msg_count);
            }
            FrameKind::Malformed(reason) => *malformed.entry(reason.name()).or_default() += times,
        }
    }
    json!({
        "packets": sent,
        "bytes": bytes,
        "valid_frames": valid,
        "messages": messages,
        "malformed_frames": sent - valid,
        "malformed": malformed,
    })
}

fn latency_json(h: &Histogram) -> Value {
    json!({
        "count": h.count(),
        "min_ns": h.min(),
        "p50_ns": h.quantile(0.50),
        "p90_ns": h.quantile(0.90),
        "p99_ns": h.quantile(0.99),
        "p999_ns": h.quantile(0.999),
        "max_ns": h.max(),
        "mean_ns": h.mean(),
    })
}

/// Opens, configures (one RX and one TX queue) and starts `id`.
fn open_port(eal: &Eal, id: u16, pool: &Mempool) -> Result<Port, String> {
    let mut port = Port::open(eal, id)?;
    let cfg = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: DESCRIPTORS,
        tx_desc: DESCRIPTORS,
        rx_ip_checksum_offload: false,
        mtu: port.caps().mtu_setup(tachyon::config::DEFAULT_MTU, pool.data_room()),
    };
    port.configure(&cfg, pool)?;
    port.start()?;
    Ok(port)
}

/// Runs live mode with EAL arguments `eal_args` (program name first);
/// `publish` gets the results while the ports are still open (see `--linger`).
pub fn run(
    args: &LiveArgs,
    eal_args: &[String],
    publish: impl FnOnce(&Value) -> Result<(), String>,
) -> Result<(), String> {
    if args.duration.is_nan() || args.duration <= 0.0 {
        return Err("--duration must be positive".into());
    }
    let mut config = args.traffic.to_config().map_err(|e| e.to_string())?;
    config.timestamps |= args.latency;
    let pool_frames = build_pool(&config, args.pool_frames)?;

    let eal = Eal::init(eal_args).map_err(|e| e.to_string())?;
    let result = run_with_eal(&eal, args, &config, &pool_frames, publish);
    eal.cleanup();
    result
}

fn run_with_eal(
    eal: &Eal,
    args: &LiveArgs,
    config: &TrafficConfig,
    frames: &[PoolFrame],
    publish: impl FnOnce(&Value) -> Result<(), String>,
) -> Result<(), String> {
    let socket = eal.lcore_socket(eal.main_lcore()) as i32;
    let mempool = Mempool::create(eal, "tachyon_gen_mbufs", POOL_MBUFS, POOL_CACHE, socket)?;
    let mut tx_port = open_port(eal, args.tx_port, &mempool)?;
    let mut rx_port = match args.rx_port {
        Some(id) if id != args.tx_port => Some(open_port(eal, id, &mempool)?),
        _ => None,
    };
    let (mut own_rx, mut own_tx) = tx_port.take_queues();
    let txq = own_tx.first_mut().and_then(Option::take).ok_or("internal: no TX queue")?;
    let rxq: Option<RxQueue> = match (args.rx_port, rx_port.as_mut()) {
        (None, _) => None,
        (Some(_), None) => own_rx.first_mut().and_then(Option::take),
        (Some(_), Some(p)) => p.take_queues().0.first_mut().and_then(Option::take),
    };

    wait_for_links(args, &mut tx_port, rx_port.as_mut())?;
    std::thread::sleep(std::time::Duration::from_millis(args.settle_ms));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .map_err(|e| format!("cannot install SIGINT/SIGTERM handler: {e}"))?;
    }
    eprintln!(
        "tachyon-gen live: {}; {} frames in the pool; sending on port {}{} at {}",
        dpdk::version(),
        frames.len(),
        args.tx_port,
        args.rx_port.map(|p| format!(", receiving on port {p}")).unwrap_or_default(),
        if args.rate == 0 { "full speed".to_string() } else { format!("{} pps", args.rate) }
    );
    let outcome = LiveLoop::new(args, config, frames, &mempool, txq, rxq, &stop).run();
    let tx_stats = tx_port.stats();

    let secs = outcome.tx_secs.max(1e-9);
    let t = &outcome.tally;
    let sent = sent_summary(frames, t.tx_packets);
    let valid_sent = sent["valid_frames"].as_u64().unwrap_or(0);
    let receiving = args.rx_port.is_some();
    let report = json!({
        "duration_secs": outcome.total_secs,
        "tx_secs": outcome.tx_secs,
        "target_pps": args.rate,
        "tx_pps": t.tx_packets as f64 / secs,
        "rx_pps": t.rx_packets as f64 / secs,
        "pool_frames": frames.len(),
        "tx": sent,
        "tx_refused": t.tx_refused,
        "alloc_failures": t.alloc_failures,
        "port": { "tx_packets": tx_stats.tx_packets, "tx_errors": tx_stats.tx_errors },
        "rx": {
            "packets": t.rx_packets,
            "tachyon_frames": t.rx_frames,
            "messages": t.rx_msgs,
            "other_packets": t.rx_other,
            "reordered": t.reordered,
            "future_timestamps": t.future_timestamps,
        },
        "loss": receiving.then(|| json!({
            "valid_frames_sent": valid_sent,
            "frames_received": t.rx_frames,
            "lost": valid_sent as i64 - t.rx_frames as i64,
            "loss_ratio": if valid_sent > 0 { (valid_sent as f64 - t.rx_frames as f64) / valid_sent as f64 } else { 0.0 },
        })),
        "latency": (receiving && args.latency).then(|| latency_json(&outcome.latency)),
    });
    let published = publish(&report);
    linger(args, &tx_port, rx_port.as_ref(), &stop);
    tx_port.close();
    if let Some(p) = rx_port.take() {
        p.close();
    }
    drop(mempool);
    published
}

/// Waits, without polling any queue, until a link goes down, a signal comes, or `--linger` passes.
fn linger(args: &LiveArgs, tx: &Port, rx: Option<&Port>, stop: &AtomicBool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(args.linger.max(0.0));
    while std::time::Instant::now() < deadline
        && !stop.load(Ordering::Relaxed)
        && std::iter::once(tx).chain(rx).all(|p| p.link().up)
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// How long a link may stay down before its port is restarted.
const LINK_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Waits for every link to come up. A net_memif client that reached its server
/// before the server's port started is refused once and never tries again, so
/// a port still down after [`LINK_RETRY`] is stopped and started (a new attempt).
fn wait_for_links(args: &LiveArgs, tx: &mut Port, mut rx: Option<&mut Port>) -> Result<(), String> {
    let start = std::time::Instant::now();
    let deadline = start + std::time::Duration::from_secs_f64(args.link_wait.max(0.0));
    let mut next_retry = start + LINK_RETRY;
    loop {
        let mut ports: Vec<&mut Port> = std::iter::once(&mut *tx).chain(rx.as_deref_mut()).collect();
        let down: Vec<u16> = ports.iter().filter(|p| !p.link().up).map(|p| p.id()).collect();
        if down.is_empty() {
            return Ok(());
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Err(format!(
                "link of port(s) {down:?} still down after {}s (is the peer, e.g. the memif server, running?)",
                args.link_wait
            ));
        }
        if now >= next_retry {
            for p in ports.iter_mut().filter(|p| down.contains(&p.id())) {
                p.stop();
                p.start()?;
            }
            next_retry = now + LINK_RETRY;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

struct LoopOutcome {
    tally: Tally,
    latency: Histogram,
    tx_secs: f64,
    total_secs: f64,
}

/// The send/receive loop and its state; nothing in `run` allocates.
struct LiveLoop<'a> {
    args: &'a LiveArgs,
    frames: &'a [PoolFrame],
    mempool: &'a Mempool,
    tx: TxBuffer,
    rx: Option<RxQueue>,
    stop: &'a AtomicBool,
    parse: ParseConfig,
    first_sender: u32,
    /// Next seq to write, per sender index.
    next_seq: Vec<u64>,
    /// Highest seq + msg_count seen back, per sender index (reordering).
    seen_next: Vec<u64>,
    clock: NsClock,
    tally: Tally,
    latency: Histogram,
}

impl<'a> LiveLoop<'a> {
    fn new(
        args: &'a LiveArgs,
        config: &TrafficConfig,
        frames: &'a [PoolFrame],
        mempool: &'a Mempool,
        tx: TxQueue,
        rx: Option<RxQueue>,
        stop: &'a AtomicBool,
    ) -> Self {
        LiveLoop {
            args,
            frames,
            mempool,
            tx: TxBuffer::new(tx),
            rx,
            stop,
            parse: ParseConfig { tachyon_port: config.udp_port, forward_non_tachyon: false, verify_ip_checksum: false },
            first_sender: config.first_sender_id,
            next_seq: vec![0; config.senders as usize],
            seen_next: vec![0; config.senders as usize],
            clock: NsClock::start(),
            tally: Tally::default(),
            latency: Histogram::default(),
        }
    }

    fn run(mut self) -> LoopOutcome {
        let hz = dpdk::tsc_hz() as f64;
        let burst = usize::from(self.args.burst);
        let start = dpdk::tsc();
        let tx_end = start + (self.args.duration * hz) as u64;
        let warmup_end_ns = self.clock.ns(start + (self.args.warmup * hz) as u64);
        let burst_ticks = if self.args.rate == 0 { 0.0 } else { burst as f64 * hz / self.args.rate as f64 };
        let mut next_tx = start as f64;
        let mut pos = 0usize;
        let mut alloc = RxBurst::new();
        let mut rx_burst = RxBurst::new();
        let mut done = FreeBatch::new();
        let mut next_line = start + hz as u64;
        let mut last_line = (start, 0u64, 0u64);
        let mut now = start;
        while now < tx_end && !self.stop.load(Ordering::Relaxed) {
            if burst_ticks == 0.0 || now as f64 >= next_tx {
                pos = self.send_burst(&mut alloc, burst, pos);
                if burst_ticks > 0.0 {
                    next_tx = (next_tx + burst_ticks).max(now as f64 - MAX_BURSTS_BEHIND * burst_ticks);
                }
            }
            self.receive(&mut rx_burst, &mut done, warmup_end_ns);
            now = dpdk::tsc();
            if now >= next_line && !self.args.quiet {
                self.print_line(now, start, &mut last_line, hz);
                next_line += hz as u64;
            }
        }
        let tx_secs = (now - start) as f64 / hz;
        let drain_end = now + (self.args.drain_ms as f64 * hz / 1000.0) as u64;
        while self.rx.is_some() && dpdk::tsc() < drain_end && !self.stop.load(Ordering::Relaxed) {
            self.receive(&mut rx_burst, &mut done, warmup_end_ns);
        }
        let total_secs = (dpdk::tsc() - start) as f64 / hz;
        LoopOutcome { tally: self.tally, latency: self.latency, tx_secs, total_secs }
    }

    /// Sends the next `burst` pool frames from `pos`; returns the position after what the port took.
    #[inline(always)]
    fn send_burst(&mut self, alloc: &mut RxBurst, burst: usize, pos: usize) -> usize {
        if alloc.alloc_from(self.mempool, burst) == 0 {
            self.tally.alloc_failures += 1;
            return pos;
        }
        let mut p = pos;
        while let Some(mut m) = alloc.pop() {
            let frame = &self.frames[p];
            if !m.append(&frame.bytes) {
                self.tally.alloc_failures += 1;
                break;
            }
            if let (Some(at), FrameKind::Valid { sender_id, msg_count, .. }) = (frame.header_at, frame.kind) {
                let seq = &mut self.next_seq[(sender_id - self.first_sender) as usize];
                let data = m.data_mut();
                data[at + tachyon_field::SEQ..][..8].copy_from_slice(&seq.to_le_bytes());
                *seq += u64::from(msg_count);
                if self.args.latency {
                    // Stamped per frame, once its bytes are in place, so building the
                    // rest of the burst is not counted as transit.
                    let ns = self.clock.ns(dpdk::tsc());
                    data[at + tachyon_field::TIMESTAMP_NS..][..8].copy_from_slice(&ns.to_le_bytes());
                }
            }
            let _ = self.tx.push(m);
            p = (p + 1) % self.frames.len();
        }
        let queued = self.tx.len();
        let out = self.tx.flush();
        self.tally.tx_packets += u64::from(out.sent);
        self.tally.tx_bytes += out.bytes_sent;
        self.tally.tx_refused += u64::from(out.refused);
        // Frames the port refused go again next time, with the same seq.
        for k in (out.sent as usize..queued).rev() {
            if let FrameKind::Valid { sender_id, msg_count, .. } = self.frames[(pos + k) % self.frames.len()].kind {
                self.next_seq[(sender_id - self.first_sender) as usize] -= u64::from(msg_count);
            }
        }
        (pos + out.sent as usize) % self.frames.len()
    }

    #[inline(always)]
    fn receive(&mut self, burst: &mut RxBurst, done: &mut FreeBatch, warmup_end_ns: u64) {
        let Some(q) = self.rx.as_mut() else { return };
        let n = burst.receive(q, dpdk::MAX_BURST);
        if n == 0 {
            return;
        }
        let now_ns = self.clock.ns(dpdk::tsc());
        self.tally.rx_packets += n as u64;
        while let Some(m) = burst.pop() {
            match classify(m.data(), NicChecksum::UNKNOWN, &self.parse) {
                Ok(Accepted::Tachyon(f)) => {
                    self.tally.rx_frames += 1;
                    self.tally.rx_msgs += u64::from(f.msg_count);
                    if let Some(seen) =
                        f.sender.checked_sub(self.first_sender).and_then(|i| self.seen_next.get_mut(i as usize))
                    {
                        if f.seq < *seen {
                            self.tally.reordered += 1;
                        } else {
                            *seen = f.seq + u64::from(f.msg_count);
                        }
                    }
                    if self.args.latency
                        && let Some(ts) = f.timestamp_ns
                    {
                        if ts > now_ns {
                            self.tally.future_timestamps += 1;
                        } else if ts >= warmup_end_ns {
                            self.latency.record(now_ns - ts);
                        }
                    }
                }
                _ => self.tally.rx_other += 1,
            }
            done.push(m);
        }
        done.flush();
    }

    fn print_line(&self, now: u64, start: u64, last: &mut (u64, u64, u64), hz: f64) {
        let secs = (now - last.0) as f64 / hz;
        let t = &self.tally;
        let mut line = format!(
            "[{:7.1}s] tx {:8.3} Mpps | rx {:8.3} Mpps",
            (now - start) as f64 / hz,
            (t.tx_packets - last.1) as f64 / secs / 1e6,
            (t.rx_packets - last.2) as f64 / secs / 1e6
        );
        if self.args.latency && self.latency.count() > 0 {
            let us = |q: f64| self.latency.quantile(q).unwrap_or(0) as f64 / 1e3;
            line += &format!(" | latency p50 {:.2} us p99 {:.2} us p99.9 {:.2} us", us(0.5), us(0.99), us(0.999));
        }
        println!("{line}");
        *last = (now, t.tx_packets, t.rx_packets);
    }
}
