//! One worker lcore's loop, l3fwd-style: for each of its RX queues, receive a
//! burst, classify each packet, govern the burst's frames, rewrite L2, and
//! send on the worker's own TX queues. Everything here is owned by the
//! worker; the only shared reads are two flags and the RCU-published tables
//! per poll round, and the only shared writes are its own counter block once
//! per burst, its RCU quiescent state once per round, and governance's
//! per-period reports.

use crate::bridge::{BridgeStage, RoundContext};
use crate::dataplane::classify::{
    Accepted, FrameInfo, Linearizer, NicChecksum, ParseConfig, accept_fast, classify_general,
};
use crate::dataplane::control_flags::ControlFlags;
use crate::dataplane::counters::{Counter, GOVERNANCE_SAMPLE_EVERY, LocalCounters, PublishedCounters};
use crate::dataplane::reason::DropReason;
use crate::dataplane::routes::{Hop, MAX_PORTS, NO_SLOT, RouteTable};
use crate::dpdk::{
    FreeBatch, MAX_BURST, Mbuf, RcuReader, RxBurst, RxQueue, TxBuffer, TxOutcome, TxQueue, ip_checksum_flags, tsc,
};
use crate::governance::{FrameKey, Shard, Tables, Verdict};
use crate::wire::ethernet::rewrite_macs;
use std::sync::Arc;

/// How many packets ahead of the one being parsed to prefetch.
const PREFETCH_OFFSET: usize = 3;
/// Idle polls between two publications of the counters.
const IDLE_PUBLISH_EVERY: u64 = 1024;

/// Everything a worker owns, built by the main lcore and moved to the worker's lcore.
pub struct Worker {
    pub index: usize,
    pub lcore: u32,
    /// The RX queues this worker polls, in turn.
    pub rx: Vec<RxQueue>,
    /// TX queue `index` of every port, in the order of RouteTable's slots.
    pub tx: Vec<TxQueue>,
    pub routes: RouteTable,
    pub parse: ParseConfig,
    pub burst_size: usize,
    /// This worker's governance state (buckets, quotas, reports).
    pub governance: Shard,
    /// The rule and limit tables, republished by RCU on reload. Its
    /// quiescent state, reported once per round outside any burst, is also
    /// what a driver that unmaps a port's memory from EAL's interrupt thread
    /// waits for (a memif peer that leaves, see `dpdk::unmap_guard`). Dropped
    /// after the last TX flush, which takes this worker offline.
    pub tables: RcuReader<Tables>,
    pub counters: Arc<PublishedCounters>,
    pub control: Arc<ControlFlags>,
    /// This worker's shard of the shared-memory bridge, when it is on.
    pub bridge: Option<BridgeStage>,
}

/// What the first pass decided about one packet of the burst.
#[derive(Clone, Copy)]
enum Classified {
    Drop(DropReason),
    /// Forward as-is (non-Tachyon traffic the config forwards).
    Other,
    /// A Tachyon frame: its verdict comes from governance.
    Frame,
}

/// Per-run scratch state of the loop, kept apart from the configuration.
struct LoopState {
    burst: RxBurst,
    tx: Vec<TxBuffer>,
    dropped: FreeBatch,
    local: LocalCounters,
    links_up: u64,
    classified: [Classified; MAX_BURST],
    keys: [FrameKey; MAX_BURST],
    verdicts: [Verdict; MAX_BURST],
    /// Cycles two back-to-back TSC reads take, subtracted from each timed call.
    tsc_read_cost: u64,
    /// Where a frame that arrived as an mbuf chain (a jumbo frame) is copied
    /// to be parsed: allocated once here, never per packet.
    linear: Linearizer,
}

impl Worker {
    /// The worker loop; returns when the control lcore asks it to stop.
    pub fn run(self) -> i32 {
        let Worker {
            rx, tx, routes, parse, burst_size, mut governance, mut tables, counters, control, mut bridge, ..
        } = self;
        let ns_per_tsc = 1e9 / crate::dpdk::tsc_hz().max(1) as f64;
        let mut rx = rx;
        let mut st = LoopState {
            burst: RxBurst::new(),
            tx: tx.into_iter().map(TxBuffer::new).collect(),
            dropped: FreeBatch::new(),
            local: LocalCounters::default(),
            links_up: 0,
            classified: [Classified::Other; MAX_BURST],
            keys: [FrameKey::default(); MAX_BURST],
            verdicts: [Verdict::Forward(None); MAX_BURST],
            tsc_read_cost: tsc_read_cost(),
            linear: Linearizer::preallocated(),
        };
        let mut idle_polls = 0u64;
        // One TSC read per round serves as governance's clock and, between
        // two rounds, as the busy time of a round that had packets (RDTSC
        // costs tens of cycles in a VM: not three times per burst).
        let mut round_start = tsc();
        let mut round_was_busy = false;
        while !control.stop_requested() {
            st.links_up = control.links_up();
            let current = tables.read();
            // Every round, busy or not: reports and new shares move here, and
            // new tables are adopted (bigger bucket tables come ready-made).
            governance.begin_burst(current, round_start);
            for q in rx.iter_mut() {
                let n = st.burst.receive(q, burst_size);
                if n == 0 {
                    st.local.add(Counter::PollsIdle, 1);
                    idle_polls += 1;
                    if idle_polls.is_multiple_of(IDLE_PUBLISH_EVERY) {
                        counters.publish(&st.local);
                    }
                    continue;
                }
                round_was_busy = true;
                st.local.add(Counter::PollsBusy, 1);
                st.local.add(Counter::RxPackets, n as u64);
                st.local.add(Counter::FullBursts, (n == burst_size) as u64);
                let timed = st.local.get(Counter::PollsBusy).is_multiple_of(GOVERNANCE_SAMPLE_EVERY);
                let subscribers = bridge.as_mut().filter(|b| b.has_subscribers());
                let cx =
                    BurstContext { ingress: q.port(), routes: &routes, parse: &parse, tables: current, subscribers };
                process_burst(n, cx, &mut governance, round_start, timed, &mut st);
                counters.publish(&st.local);
            }
            if let Some(b) = bridge.as_mut() {
                b.refresh_subscribers();
                let mut cx = RoundContext {
                    governance: &mut governance,
                    tables: current,
                    now_tsc: round_start,
                    now_ns: (round_start as f64 * ns_per_tsc) as u64,
                    local: &mut st.local,
                    tx: &mut st.tx,
                    routes: &routes,
                    links_up: st.links_up,
                };
                if b.poll(&mut cx) > 0 {
                    round_was_busy = true;
                    counters.publish(&st.local);
                }
            }
            // Also what a driver's unmap waits for (dpdk::unmap_guard):
            // reported here, outside any burst.
            tables.quiescent();
            let next = tsc();
            if round_was_busy {
                st.local.add(Counter::BusyCycles, next - round_start);
                round_was_busy = false;
            }
            round_start = next;
        }
        // Send what is still queued; the buffers free anything left when dropped.
        for b in st.tx.iter_mut() {
            let out = b.flush();
            count_tx(&mut st.local, out);
        }
        counters.publish(&st.local);
        0
    }
}

/// What a burst is processed against: where it came from, the routes, the
/// parser's settings, the current tables, and the bridge when local
/// subscribers may want its admitted frames.
struct BurstContext<'a> {
    ingress: u16,
    routes: &'a RouteTable,
    parse: &'a ParseConfig,
    tables: &'a Tables,
    subscribers: Option<&'a mut BridgeStage>,
}

/// One burst in three passes, so governance sees the burst's frames at once:
/// classify every packet, decide every frame, then forward or drop each.
#[inline(always)]
fn process_burst(n: usize, cx: BurstContext<'_>, governance: &mut Shard, now: u64, timed: bool, st: &mut LoopState) {
    let BurstContext { ingress, routes, parse, tables, mut subscribers } = cx;
    for ahead in 0..PREFETCH_OFFSET {
        st.burst.prefetch_ahead(ahead);
    }
    let mut frames = 0;
    for i in 0..n {
        st.burst.prefetch_index(i + PREFETCH_OFFSET);
        let Some(pkt) = st.burst.peek(i) else { break };
        st.local.add(Counter::RxBytes, pkt.len() as u64);
        let (data, nic) = (pkt.data(), nic_checksum(pkt.ol_flags()));
        st.classified[i] = if let Some(f) = accept_fast(data, nic, parse) {
            st.keys[frames] = frame_key(&f);
            frames += 1;
            Classified::Frame
        } else {
            // The first segment alone fails the fast path for a chain, so
            // chains cost single-segment packets nothing but this branch.
            let verdict = if pkt.nb_segs() > 1 {
                st.local.add(Counter::RxMultiSegment, 1);
                st.linear.classify(pkt.segments(), nic, parse)
            } else {
                classify_general(data, nic, parse)
            };
            match verdict {
                Err(reason) => Classified::Drop(reason),
                Ok(Accepted::Other) => Classified::Other,
                Ok(Accepted::Tachyon(f)) => {
                    st.keys[frames] = frame_key(&f);
                    frames += 1;
                    Classified::Frame
                }
            }
        };
    }
    if frames > 0 {
        let before = if timed { tsc() } else { 0 };
        governance.decide_burst(tables, &st.keys[..frames], now, &mut st.verdicts[..frames]);
        if timed {
            let cycles = tsc().saturating_sub(before).saturating_sub(st.tsc_read_cost);
            st.local.record_governance_burst(cycles, frames as u64);
        }
    }
    let mut frame = 0;
    for i in 0..n {
        let Some(m) = st.burst.pop() else { break };
        let hop = match st.classified[i] {
            Classified::Drop(reason) => {
                drop_packet(st, m, reason);
                continue;
            }
            Classified::Other => {
                st.local.add(Counter::OtherForwarded, 1);
                None
            }
            Classified::Frame => {
                let msgs = st.keys[frame].msg_count as u64;
                let verdict = st.verdicts[frame];
                frame += 1;
                st.local.add(Counter::FramesReceived, 1);
                st.local.add(Counter::MsgsReceived, msgs);
                match verdict {
                    Verdict::Drop(reason) => {
                        drop_packet(st, m, reason);
                        continue;
                    }
                    Verdict::Forward(route) => {
                        st.local.add(Counter::FramesAdmitted, 1);
                        st.local.add(Counter::MsgsAdmitted, msgs);
                        if let Some(b) = subscribers.as_deref_mut() {
                            let whole = if m.nb_segs() > 1 { st.linear.gather(m.segments()) } else { m.data() };
                            b.deliver_wire_packet(whole);
                        }
                        route.map(|r| Hop { egress: r.port, next_hop: r.next_hop })
                    }
                }
            }
        };
        forward(m, hop.or(routes.default_hop[ingress as usize]), routes, st);
    }
    for b in st.tx.iter_mut() {
        if !b.is_empty() {
            let out = b.flush();
            count_tx(&mut st.local, out);
        }
    }
    st.dropped.flush();
}

#[inline(always)]
fn frame_key(f: &FrameInfo) -> FrameKey {
    FrameKey { topic: f.topic, sender: f.sender, msg_count: f.msg_count, src_ip: f.src_ip, dst_port: f.dst_port }
}

/// L2 rewrite and queue for TX on the hop's port, or drop as `no_route`.
#[inline(always)]
fn forward(mut m: Mbuf, hop: Option<Hop>, routes: &RouteTable, st: &mut LoopState) {
    let Some(hop) = hop else {
        return drop_packet(st, m, DropReason::NoRoute);
    };
    let port = hop.egress as usize;
    let slot = if port < MAX_PORTS { routes.tx_slot[port] } else { NO_SLOT };
    if slot == NO_SLOT || st.links_up & (1 << port) == 0 {
        return drop_packet(st, m, DropReason::NoRoute);
    }
    rewrite_macs(m.data_mut(), &hop.next_hop, &routes.port_mac[port]);
    if let Some(out) = st.tx[slot as usize].push(m) {
        count_tx(&mut st.local, out);
    }
}

#[inline(always)]
fn count_tx(local: &mut LocalCounters, out: TxOutcome) {
    local.add(Counter::TxPackets, out.sent as u64);
    local.add(Counter::TxBytes, out.bytes_sent);
    local.drop_packets(DropReason::TxFull, out.refused as u64);
}

#[inline(always)]
fn nic_checksum(ol_flags: u64) -> NicChecksum {
    match ip_checksum_flags(ol_flags) {
        (true, _) => NicChecksum::Good,
        (_, true) => NicChecksum::Bad,
        _ => NicChecksum::Unknown,
    }
}

/// The smallest gap between two back-to-back TSC reads: the reads' own cost.
fn tsc_read_cost() -> u64 {
    (0..64)
        .map(|_| {
            let first = tsc();
            tsc().saturating_sub(first)
        })
        .min()
        .unwrap_or(0)
}

#[inline(always)]
fn drop_packet(st: &mut LoopState, m: Mbuf, reason: DropReason) {
    st.local.drop_packet(reason);
    st.dropped.push(m);
}
