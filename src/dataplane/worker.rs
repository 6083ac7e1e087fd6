//! One worker lcore's loop, l3fwd-style: for each of its RX queues, receive a
//! burst, classify each packet, govern the burst's frames, rewrite L2, and
//! send on the worker's own TX queues. Everything here is owned by the
//! worker; the only shared reads are two flags and the RCU-published tables
//! per poll round, and the only shared writes are its own counter block (at
//! most every `PUBLISH_EVERY_US` while busy, and when it goes idle), its RCU
//! quiescent state once per round, and governance's per-period reports.

use crate::bridge::{BridgeStage, RoundContext};
use crate::dataplane::classify::{
    Accepted, FrameInfo, Linearizer, NicChecksum, ParseConfig, accept_fast, classify_general,
};
use crate::dataplane::control_flags::ControlFlags;
use crate::dataplane::counters::{Counter, GOVERNANCE_SAMPLE_EVERY, LocalCounters, PublishedCounters};
use crate::dataplane::reason::DropReason;
use crate::dataplane::routes::{Hop, RouteTable};
use crate::dpdk::{
    FreeBatch, MAX_BURST, Mbuf, RcuReader, RxBurst, RxQueue, TxBuffer, TxOutcome, TxQueue, ip_checksum_flags, tsc,
};
use crate::governance::{FrameKey, Route, Shard, Tables, Verdict};
use crate::wire::ethernet::MacRewrite;
use std::sync::Arc;

/// How many packets ahead of the one being parsed to prefetch.
const PREFETCH_OFFSET: usize = 3;
/// Idle polls between two publications of the counters.
const IDLE_PUBLISH_EVERY: u64 = 1024;
/// Longest a busy worker keeps its counters to itself, in microseconds.
/// Publishing copies the whole block (about 600 bytes) to lines the control
/// lcore reads: once per burst that was ~4 instructions a packet and a
/// cache-line handover at every scrape; readers never need it fresher.
const PUBLISH_EVERY_US: u64 = 100;

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

/// Where the packets of a burst end up: queued for TX on one of the
/// worker's queues, or freed as a counted drop. Kept apart from the burst
/// so the forwarding pass can hold both.
struct Outputs {
    tx: Vec<TxBuffer>,
    dropped: FreeBatch,
    local: LocalCounters,
}

impl Outputs {
    /// L2 rewrite and queue for TX, or drop as `no_route`.
    #[inline(always)]
    fn forward(&mut self, mut m: Mbuf, egress: Option<Egress>) {
        if let Some(egress) = egress {
            egress.macs.apply(m.data_mut());
        }
        self.forward_rewritten(m, egress);
    }

    /// Queue for TX a packet that already has its L2 header for `egress`,
    /// or drop as `no_route`.
    #[inline(always)]
    fn forward_rewritten(&mut self, m: Mbuf, egress: Option<Egress>) {
        let Some(egress) = egress else {
            return self.drop(m, DropReason::NoRoute);
        };
        if let Some(out) = self.tx[egress.slot].push(m) {
            count_tx(&mut self.local, out);
        }
    }

    #[inline(always)]
    fn drop(&mut self, m: Mbuf, reason: DropReason) {
        self.local.drop_packet(reason);
        self.dropped.push(m);
    }

    /// Sends what is queued on every TX queue and frees the drops.
    #[inline(always)]
    fn flush(&mut self) {
        for b in self.tx.iter_mut() {
            if !b.is_empty() {
                let out = b.flush();
                count_tx(&mut self.local, out);
            }
        }
        self.dropped.flush();
    }
}

/// Per-run scratch state of the loop, kept apart from the configuration.
struct LoopState {
    burst: RxBurst,
    out: Outputs,
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
            out: Outputs {
                tx: tx.into_iter().map(TxBuffer::new).collect(),
                dropped: FreeBatch::new(),
                local: LocalCounters::default(),
            },
            links_up: 0,
            classified: [Classified::Other; MAX_BURST],
            keys: [FrameKey::default(); MAX_BURST],
            verdicts: [Verdict::Forward(None); MAX_BURST],
            tsc_read_cost: tsc_read_cost(),
            linear: Linearizer::preallocated(),
        };
        // One TSC read per round serves as governance's clock and, between
        // two rounds, as the busy time of a round that had packets (RDTSC
        // costs tens of cycles in a VM: not three times per burst).
        let mut round_start = tsc();
        let mut round_was_busy = false;
        let mut publisher = CounterPublisher::new(round_start, crate::dpdk::tsc_hz() / 1_000_000 * PUBLISH_EVERY_US);
        while !control.stop_requested() {
            st.links_up = control.links_up();
            let current = tables.read();
            // Every round, busy or not: reports and new shares move here, and
            // new tables are adopted (bigger bucket tables come ready-made).
            governance.begin_burst(current, round_start);
            for q in rx.iter_mut() {
                let n = st.burst.receive(q, burst_size);
                if n == 0 {
                    st.out.local.add(Counter::PollsIdle, 1);
                    publisher.idle_poll(&counters, &st.out.local);
                    continue;
                }
                round_was_busy = true;
                st.out.local.add(Counter::PollsBusy, 1);
                st.out.local.add(Counter::RxPackets, n as u64);
                st.out.local.add(Counter::FullBursts, (n == burst_size) as u64);
                let timed = st.out.local.get(Counter::PollsBusy).is_multiple_of(GOVERNANCE_SAMPLE_EVERY);
                let subscribers = bridge.as_mut().filter(|b| b.has_subscribers());
                let cx =
                    BurstContext { ingress: q.port(), routes: &routes, parse: &parse, tables: current, subscribers };
                process_burst(n, cx, &mut governance, round_start, timed, &mut st);
            }
            if let Some(b) = bridge.as_mut() {
                b.refresh_subscribers();
                let mut cx = RoundContext {
                    governance: &mut governance,
                    tables: current,
                    now_tsc: round_start,
                    now_ns: (round_start as f64 * ns_per_tsc) as u64,
                    local: &mut st.out.local,
                    tx: &mut st.out.tx,
                    routes: &routes,
                    links_up: st.links_up,
                };
                if b.poll(&mut cx) > 0 {
                    round_was_busy = true;
                }
            }
            // Also what a driver's unmap waits for (dpdk::unmap_guard):
            // reported here, outside any burst.
            tables.quiescent();
            let next = tsc();
            if round_was_busy {
                st.out.local.add(Counter::BusyCycles, next - round_start);
            }
            publisher.round_end(&counters, &st.out.local, round_was_busy, next);
            round_was_busy = false;
            round_start = next;
        }
        // Send what is still queued; the buffers free anything left when dropped.
        st.out.flush();
        counters.publish(&st.out.local);
        0
    }
}

/// When a worker copies its counters to where the control lcore reads them:
/// after a busy round once `PUBLISH_EVERY_US` have passed since the last
/// copy, and at the first idle round after busy ones (so a worker whose
/// traffic stopped shows its final counts at once); while idle, every
/// `IDLE_PUBLISH_EVERY` empty polls (so the idle-poll count moves).
struct CounterPublisher {
    every_tsc: u64,
    last_tsc: u64,
    pending: bool,
    idle_polls: u64,
}

impl CounterPublisher {
    fn new(now: u64, every_tsc: u64) -> Self {
        CounterPublisher { every_tsc, last_tsc: now, pending: false, idle_polls: 0 }
    }

    /// After a poll of an RX queue that returned nothing.
    #[inline(always)]
    fn idle_poll(&mut self, counters: &PublishedCounters, local: &LocalCounters) {
        self.idle_polls += 1;
        if self.idle_polls.is_multiple_of(IDLE_PUBLISH_EVERY) {
            counters.publish(local);
        }
    }

    #[inline(always)]
    fn round_end(&mut self, counters: &PublishedCounters, local: &LocalCounters, busy: bool, now: u64) {
        self.pending |= busy;
        if self.pending && (!busy || now.wrapping_sub(self.last_tsc) >= self.every_tsc) {
            counters.publish(local);
            self.last_tsc = now;
            self.pending = false;
        }
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

/// What the classification pass tallied over a burst; counted once per
/// burst, not per packet.
#[derive(Clone, Copy, Default)]
struct Tally {
    bytes: u64,
    /// Narrower than `msgs` on purpose: two same-width sums were packed into
    /// one vector kept on the stack (6 instructions a frame instead of 2).
    frames: u32,
    msgs: u64,
}

impl Tally {
    /// Counts Tachyon frame `f`, the next in the burst, and when `KEYS`
    /// writes its governance key at its place in `keys`.
    #[inline(always)]
    fn frame<const KEYS: bool>(&mut self, f: &FrameInfo, keys: &mut [FrameKey]) {
        if KEYS {
            keys[self.frames as usize] = frame_key(f);
        }
        self.frames += 1;
        self.msgs += u64::from(f.msg_count);
    }
}

/// Frames (and their messages) governance dropped after they were counted
/// as received; admitted = received − these. A frame admitted but without a
/// route stays admitted (its tokens are spent); `no_route` counts the packet.
#[derive(Clone, Copy, Default)]
struct Refused {
    frames: u64,
    msgs: u64,
}

impl Refused {
    #[inline(always)]
    fn add(&mut self, key: &FrameKey) {
        self.frames += 1;
        self.msgs += u64::from(key.msg_count);
    }
}

/// Where a packet leaves: the worker's TX slot of the egress port and the
/// L2 rewrite for it. Resolved once per burst for the default hop.
#[derive(Clone, Copy)]
struct Egress {
    slot: usize,
    macs: MacRewrite,
}

impl Egress {
    /// `None` (a `no_route` drop) when there is no hop, the worker has no
    /// queue on its port, or the port's link is down.
    #[inline(always)]
    fn resolve(hop: Option<Hop>, routes: &RouteTable, links_up: u64) -> Option<Egress> {
        let hop = hop?;
        let (slot, src_mac) = routes.egress(hop.egress)?;
        if links_up & (1 << hop.egress) == 0 {
            return None;
        }
        Some(Egress { slot, macs: MacRewrite::new(&hop.next_hop, &src_mac) })
    }
}

/// One burst in three passes, so governance sees the burst's frames at once:
/// classify every packet, decide every frame, then forward or drop each.
/// Under tables that govern nothing the middle pass is skipped.
#[inline(always)]
fn process_burst(n: usize, cx: BurstContext<'_>, governance: &mut Shard, now: u64, timed: bool, st: &mut LoopState) {
    let BurstContext { ingress, routes, parse, tables, subscribers } = cx;
    let default = Egress::resolve(routes.default_hop[ingress as usize], routes, st.links_up);
    let simple = subscribers.is_none();
    // Frames get the default hop's L2 header while the classifier has
    // their first line at hand (see `classify_burst`). With local
    // subscribers the burst takes `forward_mixed`, which rewrites each
    // packet as it queues it: no early rewrite to rely on there.
    let early = default.filter(|_| simple).map(|e| e.macs);
    if tables.is_pass_through() {
        // Nothing to govern: no keys to build, every frame admitted.
        let tally = classify_burst::<false>(parse, early, st);
        governance.admit_ungoverned(u64::from(tally.frames), tally.msgs);
        if tally.frames as usize == n && simple {
            forward_all(default, tally.bytes, st);
        } else {
            st.verdicts[..tally.frames as usize].fill(Verdict::Forward(None));
            forward_mixed(default, routes, subscribers, st);
        }
        return finish_burst(tally, Refused::default(), &mut st.out);
    }
    let tally = classify_burst::<true>(parse, early, st);
    let frames = tally.frames as usize;
    let mut all_default = true;
    if frames > 0 {
        let before = if timed { tsc() } else { 0 };
        all_default = governance.decide_burst(tables, &st.keys[..frames], now, &mut st.verdicts[..frames]);
        if timed {
            let cycles = tsc().saturating_sub(before).saturating_sub(st.tsc_read_cost);
            st.out.local.record_governance_burst(cycles, frames as u64);
        }
    }
    let refused = if frames == n && simple {
        if all_default {
            // Every frame admitted to the default route: as under pass-through.
            forward_all(default, tally.bytes, st);
            Refused::default()
        } else {
            forward_frames(default, routes, st)
        }
    } else {
        forward_mixed(default, routes, subscribers, st)
    };
    finish_burst(tally, refused, &mut st.out);
}

/// Adds the burst's tallies to the counters and sends what it queued.
#[inline(always)]
fn finish_burst(tally: Tally, refused: Refused, out: &mut Outputs) {
    let local = &mut out.local;
    local.add(Counter::RxBytes, tally.bytes);
    local.add(Counter::FramesReceived, u64::from(tally.frames));
    local.add(Counter::MsgsReceived, tally.msgs);
    local.add(Counter::FramesAdmitted, u64::from(tally.frames) - refused.frames);
    local.add(Counter::MsgsAdmitted, tally.msgs - refused.msgs);
    out.flush();
}

/// Pass 1: classifies each packet of the burst into `st.classified`, and,
/// when `KEYS` (the tables govern something), writes the governance key of
/// each Tachyon frame, in order, into `st.keys`. With `early`, every
/// Tachyon frame gets those L2 addresses here, while its first line is in
/// L1: the send pass then need not look at the packets again (5 % of the
/// pass-through rate when it did, measured), and whatever governance
/// decides, the frame is either freed or sent by the default hop or a
/// `route` rule's, which rewrites it again.
#[inline(always)]
fn classify_burst<const KEYS: bool>(parse: &ParseConfig, early: Option<MacRewrite>, st: &mut LoopState) -> Tally {
    let LoopState { burst, out, classified, keys, linear, .. } = st;
    let packets = burst.packets_mut();
    for p in packets.iter().take(PREFETCH_OFFSET) {
        p.prefetch_data();
    }
    let mut tally = Tally::default();
    for i in 0..packets.len() {
        if let Some(ahead) = packets.get(i + PREFETCH_OFFSET) {
            ahead.prefetch_data();
        }
        let (pkt, class) = (&mut packets[i], &mut classified[i]);
        tally.bytes += u64::from(pkt.len());
        let (data, nic) = (pkt.data(), nic_checksum(pkt.ol_flags()));
        if let Some(f) = accept_fast(data, nic, parse) {
            tally.frame::<KEYS>(&f, keys);
            *class = Classified::Frame;
            if let Some(macs) = early {
                macs.apply(pkt.data_mut());
            }
            continue;
        }
        // The first segment alone fails the fast path for a chain, so
        // chains cost single-segment packets nothing but this branch.
        let verdict = if pkt.nb_segs() > 1 {
            out.local.add(Counter::RxMultiSegment, 1);
            linear.classify(pkt.segments(), nic, parse)
        } else {
            classify_general(data, nic, parse)
        };
        *class = match verdict {
            Ok(Accepted::Tachyon(f)) => {
                tally.frame::<KEYS>(&f, keys);
                if let Some(macs) = early {
                    macs.apply(pkt.data_mut());
                }
                Classified::Frame
            }
            Ok(Accepted::Other) => Classified::Other,
            Err(reason) => Classified::Drop(reason),
        };
    }
    tally
}

/// Pass 3 when every packet is a Tachyon frame and no local subscriber
/// wants copies (the common case): frame `i` is packet `i`, so the
/// classification is not read again; and each already has the default
/// hop's L2 header (`classify_burst`).
#[inline(always)]
fn forward_frames(default: Option<Egress>, routes: &RouteTable, st: &mut LoopState) -> Refused {
    let LoopState { burst, out, verdicts, keys, links_up, .. } = st;
    let mut refused = Refused::default();
    for ((m, verdict), key) in burst.drain().zip(verdicts.iter()).zip(keys.iter()) {
        // A frame admitted but without a route stays admitted (its tokens
        // are spent); `no_route` counts the packet.
        match *verdict {
            Verdict::Forward(None) => out.forward_rewritten(m, default),
            Verdict::Forward(Some(r)) => out.forward(m, route_egress(r, routes, *links_up)),
            Verdict::Drop(reason) => {
                refused.add(key);
                out.drop(m, reason);
            }
        }
    }
    refused
}

/// Pass 3 when every packet is a Tachyon frame that governance (if any)
/// admitted to the default route and no local subscriber wants copies: the
/// burst, `bytes` long in all and already given the default hop's L2
/// header (`classify_burst`), goes whole by that hop.
#[inline(always)]
fn forward_all(default: Option<Egress>, bytes: u64, st: &mut LoopState) {
    let LoopState { burst, out, .. } = st;
    match default {
        Some(egress) => {
            let sent = burst.send_all(&mut out.tx[egress.slot], bytes);
            count_tx(&mut out.local, sent);
        }
        None => {
            for m in burst.drain() {
                out.drop(m, DropReason::NoRoute);
            }
        }
    }
}

/// Pass 3 in general: drops, forwarded non-Tachyon traffic, chains and
/// copies of admitted frames for local subscribers.
#[inline(never)]
fn forward_mixed(
    default: Option<Egress>,
    routes: &RouteTable,
    mut subscribers: Option<&mut BridgeStage>,
    st: &mut LoopState,
) -> Refused {
    let LoopState { burst, out, classified, verdicts, keys, links_up, linear, .. } = st;
    let mut refused = Refused::default();
    let mut frames = verdicts.iter().zip(keys.iter());
    for (m, class) in burst.drain().zip(classified.iter()) {
        let egress = match *class {
            Classified::Drop(reason) => {
                out.drop(m, reason);
                continue;
            }
            Classified::Other => {
                out.local.add(Counter::OtherForwarded, 1);
                default
            }
            Classified::Frame => {
                let Some((verdict, key)) = frames.next() else { break };
                let route = match *verdict {
                    Verdict::Drop(reason) => {
                        refused.add(key);
                        out.drop(m, reason);
                        continue;
                    }
                    Verdict::Forward(route) => route,
                };
                if let Some(b) = subscribers.as_deref_mut() {
                    let whole = if m.nb_segs() > 1 { linear.gather(m.segments()) } else { m.data() };
                    b.deliver_wire_packet(whole);
                }
                match route {
                    None => default,
                    Some(r) => route_egress(r, routes, *links_up),
                }
            }
        };
        out.forward(m, egress);
    }
    refused
}

#[inline(always)]
fn frame_key(f: &FrameInfo) -> FrameKey {
    FrameKey { topic: f.topic, sender: f.sender, msg_count: f.msg_count, src_ip: f.src_ip, dst_port: f.dst_port }
}

/// Where a governance `route` rule sends a frame.
#[inline(always)]
fn route_egress(r: Route, routes: &RouteTable, links_up: u64) -> Option<Egress> {
    Egress::resolve(Some(Hop { egress: r.port, next_hop: r.next_hop }), routes, links_up)
}

#[inline(always)]
fn count_tx(local: &mut LocalCounters, out: TxOutcome) {
    local.add(Counter::TxPackets, out.sent as u64);
    local.add(Counter::TxBytes, out.bytes_sent);
    local.drop_packets(DropReason::TxFull, out.refused as u64);
}

#[inline(always)]
fn nic_checksum(ol_flags: u64) -> NicChecksum {
    let (vouched, refuted) = ip_checksum_flags(ol_flags);
    NicChecksum { vouched, refuted }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a round ending at `now` leaves published: the RX packet count.
    fn end_round(
        p: &mut CounterPublisher,
        shared: &PublishedCounters,
        local: &mut LocalCounters,
        busy: bool,
        now: u64,
    ) -> u64 {
        if busy {
            local.add(Counter::RxPackets, 1);
        }
        p.round_end(shared, local, busy, now);
        shared.snapshot().get(Counter::RxPackets)
    }

    #[test]
    fn counters_are_published_per_interval_while_busy_and_when_idle_again() {
        let (shared, mut local) = (PublishedCounters::default(), LocalCounters::default());
        let mut p = CounterPublisher::new(1000, 100);
        assert_eq!(end_round(&mut p, &shared, &mut local, true, 1050), 0, "busy, interval not over: kept");
        assert_eq!(end_round(&mut p, &shared, &mut local, true, 1099), 0);
        assert_eq!(end_round(&mut p, &shared, &mut local, true, 1100), 3, "interval over: published");
        assert_eq!(end_round(&mut p, &shared, &mut local, true, 1150), 3);
        assert_eq!(end_round(&mut p, &shared, &mut local, false, 1160), 4, "first idle round: published at once");
        local.add(Counter::PollsIdle, 5);
        p.round_end(&shared, &local, false, 1170);
        assert_eq!(shared.snapshot().get(Counter::PollsIdle), 0, "idle rounds alone do not republish");
    }
}
