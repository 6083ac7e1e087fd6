//! One worker lcore's loop, l3fwd-style: for each of its RX queues, receive a
//! burst, classify each packet, govern accepted frames, rewrite L2, and send
//! on the worker's own TX queues. Everything here is owned by the worker;
//! the only shared reads are two flags per poll round, and the only shared
//! writes are its own counter block, once per burst.

use crate::classify::{Accepted, FrameInfo, NicChecksum, ParseConfig, classify};
use crate::dpdk::{FreeBatch, Mbuf, RxBurst, RxQueue, TxBuffer, TxOutcome, TxQueue, ip_checksum_flags, tsc};
use crate::reason::DropReason;
use crate::stats::{Counter, GOVERNANCE_SAMPLE_EVERY, LocalCounters, PublishedCounters};
use crate::wire::{MacAddr, ethernet::rewrite_macs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How many packets ahead of the one being parsed to prefetch.
const PREFETCH_OFFSET: usize = 3;
/// Idle polls between two publications of the counters.
const IDLE_PUBLISH_EVERY: u64 = 1024;
/// Highest port id + 1 the route table indexes directly.
pub const MAX_PORTS: usize = 32;
const NO_SLOT: u8 = u8::MAX;

/// State the control lcore writes and workers read once per poll round.
#[derive(Default)]
pub struct ControlFlags {
    stop: AtomicBool,
    /// Bit p set when port p's link is up.
    links_up: AtomicU64,
}

impl ControlFlags {
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub fn set_links_up(&self, mask: u64) {
        self.links_up.store(mask, Ordering::Relaxed);
    }

    pub fn links_up(&self) -> u64 {
        self.links_up.load(Ordering::Relaxed)
    }
}

/// Where a frame received on a port leaves by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    pub egress: u16,
    pub next_hop: MacAddr,
}

/// Routing state of one worker: default hops by ingress port, and the TX
/// buffer and source MAC of every egress port.
#[derive(Clone, Debug)]
pub struct RouteTable {
    default_hop: [Option<Hop>; MAX_PORTS],
    tx_slot: [u8; MAX_PORTS],
    port_mac: [MacAddr; MAX_PORTS],
}

impl RouteTable {
    /// `ports` lists (port id, MAC) in TX-queue order; `hops` the default
    /// route of each ingress port.
    pub fn new(ports: &[(u16, MacAddr)], hops: &[(u16, Hop)]) -> Self {
        let mut t =
            RouteTable { default_hop: [None; MAX_PORTS], tx_slot: [NO_SLOT; MAX_PORTS], port_mac: [[0; 6]; MAX_PORTS] };
        for (slot, (id, mac)) in ports.iter().enumerate() {
            t.tx_slot[*id as usize] = slot as u8;
            t.port_mac[*id as usize] = *mac;
        }
        for (ingress, hop) in hops {
            t.default_hop[*ingress as usize] = Some(*hop);
        }
        t
    }
}

/// The governance decision for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward, to this hop or (None) the ingress port's default hop.
    Forward(Option<Hop>),
    Drop(DropReason),
}

/// The governance stage: rules, then topic bucket and sender quota.
/// Pass-through for now; the signature is final.
#[derive(Default)]
pub struct GovernanceStage;

impl GovernanceStage {
    /// Called once per burst, before `decide`.
    #[inline(always)]
    pub fn begin_burst(&mut self, _now_tsc: u64) {}

    #[inline(always)]
    pub fn decide(&mut self, _frame: &FrameInfo, _now_tsc: u64) -> Verdict {
        Verdict::Forward(None)
    }
}

/// Everything a worker owns, built by the main lcore and moved to the worker's lcore.
pub struct Worker {
    pub index: usize,
    pub lcore: u32,
    /// Queue `index` of every port, polled in turn.
    pub rx: Vec<RxQueue>,
    /// Queue `index` of every port, in the order of RouteTable's slots.
    pub tx: Vec<TxQueue>,
    pub routes: RouteTable,
    pub parse: ParseConfig,
    pub burst_size: usize,
    pub governance: GovernanceStage,
    pub counters: Arc<PublishedCounters>,
    pub control: Arc<ControlFlags>,
}

/// Per-run scratch state of the loop, kept apart from the configuration.
struct LoopState {
    burst: RxBurst,
    tx: Vec<TxBuffer>,
    dropped: FreeBatch,
    local: LocalCounters,
    links_up: u64,
    /// Whether this burst's governance calls are timed (one burst in GOVERNANCE_SAMPLE_EVERY).
    time_governance: bool,
    /// Cycles two back-to-back TSC reads take, subtracted from each timed call.
    tsc_read_cost: u64,
}

impl Worker {
    /// The worker loop; returns when the control lcore asks it to stop.
    pub fn run(self) -> i32 {
        let Worker { rx, tx, routes, parse, burst_size, mut governance, counters, control, .. } = self;
        let mut rx = rx;
        let mut st = LoopState {
            burst: RxBurst::new(),
            tx: tx.into_iter().map(TxBuffer::new).collect(),
            dropped: FreeBatch::new(),
            local: LocalCounters::default(),
            links_up: 0,
            time_governance: false,
            tsc_read_cost: tsc_read_cost(),
        };
        let mut idle_polls = 0u64;
        while !control.stop_requested() {
            st.links_up = control.links_up();
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
                let start = tsc();
                st.local.add(Counter::PollsBusy, 1);
                st.local.add(Counter::RxPackets, n as u64);
                st.local.add(Counter::FullBursts, (n == burst_size) as u64);
                st.time_governance = st.local.get(Counter::PollsBusy).is_multiple_of(GOVERNANCE_SAMPLE_EVERY);
                governance.begin_burst(start);
                let ingress = q.port();
                for ahead in 0..PREFETCH_OFFSET {
                    st.burst.prefetch_ahead(ahead);
                }
                while let Some(m) = st.burst.pop() {
                    st.burst.prefetch_ahead(PREFETCH_OFFSET - 1);
                    process_packet(m, ingress, &routes, &parse, &mut governance, start, &mut st);
                }
                for b in st.tx.iter_mut() {
                    if !b.is_empty() {
                        let out = b.flush();
                        count_tx(&mut st.local, out);
                    }
                }
                st.dropped.flush();
                st.local.add(Counter::BusyCycles, tsc() - start);
                counters.publish(&st.local);
            }
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

/// Classify → govern → L2 rewrite → queue for TX, or drop under one reason.
#[inline(always)]
fn process_packet(
    mut m: Mbuf,
    ingress: u16,
    routes: &RouteTable,
    parse: &ParseConfig,
    governance: &mut GovernanceStage,
    now: u64,
    st: &mut LoopState,
) {
    st.local.add(Counter::RxBytes, m.pkt_len() as u64);
    let hop = match classify(m.data(), nic_checksum(m.ol_flags()), parse) {
        Err(reason) => return drop_packet(st, m, reason),
        Ok(Accepted::Other) => {
            st.local.add(Counter::OtherForwarded, 1);
            None
        }
        Ok(Accepted::Tachyon(frame)) => {
            st.local.add(Counter::FramesReceived, 1);
            st.local.add(Counter::MsgsReceived, frame.msg_count as u64);
            match govern(governance, &frame, now, st) {
                Verdict::Drop(reason) => return drop_packet(st, m, reason),
                Verdict::Forward(hop) => {
                    st.local.add(Counter::FramesAdmitted, 1);
                    st.local.add(Counter::MsgsAdmitted, frame.msg_count as u64);
                    hop
                }
            }
        }
    };
    let Some(hop) = hop.or(routes.default_hop[ingress as usize]) else {
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

/// Asks governance for a verdict, timing the call when this burst is sampled.
#[inline(always)]
fn govern(governance: &mut GovernanceStage, frame: &FrameInfo, now: u64, st: &mut LoopState) -> Verdict {
    if !st.time_governance {
        return governance.decide(frame, now);
    }
    let before = tsc();
    let verdict = governance.decide(frame, now);
    st.local.record_governance(tsc().saturating_sub(before).saturating_sub(st.tsc_read_cost));
    verdict
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
