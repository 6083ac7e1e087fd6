//! The worker's bridge stage: once per poll round, after its NIC queues, a
//! worker takes a bounded number of messages from its shard's ingress ring,
//! packs consecutive messages of one topic and sender into one Tachyon frame
//! (built in an mbuf with `wire`), governs the frames like received ones,
//! hands admitted messages to local subscribers and sends the frames out.
//!
//! Everything here belongs to one worker: the ring consumer, the subscriber
//! writers, the frame being filled and the staged frames. Nothing is shared
//! per message; the ring's head and the subscribers' tails are published once
//! per round.

use crate::dataplane::counters::{Counter, LocalCounters};
use crate::dataplane::reason::DropReason;
use crate::dataplane::routes::RouteTable;
use crate::dpdk::{MAX_BURST, Mbuf, Mempool, TxBuffer, TxOutcome};
use crate::governance::{FrameKey, Shard, Tables, Verdict};
use crate::wire::{
    EthernetFrame, FrameHeader, FrameHeaders, FrameWriter, Ipv4Header, MacAddr, UdpHeader, ethernet::rewrite_macs,
};
use std::sync::Arc;
use tachyon_bridge::{IngressConsumer, Message, SubscriberFanout};

/// Frames governed together, like one RX burst.
const STAGED_FRAMES: usize = MAX_BURST;

/// Where bridge frames leave when no rule routes them.
#[derive(Clone, Copy, Debug)]
pub struct BridgeEgress {
    /// TX slot (the worker's buffer index) and port id of the egress port.
    pub slot: usize,
    pub port: u16,
    pub src_mac: MacAddr,
    pub next_hop: MacAddr,
}

/// Everything the stage needs from the worker for one round.
pub struct RoundContext<'a> {
    pub governance: &'a mut Shard,
    pub tables: &'a Tables,
    pub now_tsc: u64,
    pub now_ns: u64,
    pub local: &'a mut LocalCounters,
    pub tx: &'a mut [TxBuffer],
    pub routes: &'a RouteTable,
    pub links_up: u64,
}

/// The frame being filled: an mbuf holding records of one topic and sender.
struct OpenFrame {
    mbuf: Mbuf,
    topic: u32,
    sender: u32,
    len: usize,
    count: u16,
}

/// One worker's bridge state: its ring, and the packer that turns the
/// ring's messages into governed frames.
pub struct BridgeStage {
    ingress: IngressConsumer,
    budget: usize,
    /// Test hook (`TACHYON_TEST_PAUSE_BRIDGE_SHARD=SHARD[:MS]`): this shard's
    /// worker does not drain, for good or for MS milliseconds after start.
    paused: Option<PauseUntil>,
    packer: Packer,
}

/// Frames under construction and staged for governance, and the subscriber writers.
struct Packer {
    fanout: SubscriberFanout,
    pool: Arc<Mempool>,
    egress: BridgeEgress,
    /// Every header field but the ones each frame sets (topic, sender, seq).
    template: FrameHeaders,
    /// Largest frame on the wire (Ethernet header included).
    max_frame: usize,
    open: Option<OpenFrame>,
    staged: Vec<Mbuf>,
    keys: Vec<FrameKey>,
    verdicts: Vec<Verdict>,
    /// Messages this worker has framed: the `seq` of the next frame.
    next_seq: u64,
    /// `[bridge] to_wire`: send admitted frames (else subscribers only).
    to_wire: bool,
}

impl BridgeStage {
    pub fn new(
        ingress: IngressConsumer,
        fanout: SubscriberFanout,
        pool: Arc<Mempool>,
        egress: BridgeEgress,
        template: FrameHeaders,
        max_frame: usize,
        budget: usize,
    ) -> Self {
        let paused =
            std::env::var("TACHYON_TEST_PAUSE_BRIDGE_SHARD").ok().and_then(|v| PauseUntil::parse(&v, ingress.shard()));
        let packer = Packer {
            fanout,
            pool,
            egress,
            template,
            max_frame,
            open: None,
            staged: Vec::with_capacity(STAGED_FRAMES),
            keys: Vec::with_capacity(STAGED_FRAMES),
            verdicts: Vec::with_capacity(STAGED_FRAMES),
            next_seq: 0,
            to_wire: true,
        };
        BridgeStage { ingress, budget, paused, packer }
    }

    /// `[bridge] to_wire = false`: admitted messages go to local subscribers
    /// only; no bridge frame is sent.
    pub fn with_to_wire(mut self, to_wire: bool) -> Self {
        self.packer.to_wire = to_wire;
        self
    }

    /// Re-reads the subscriber table when it changed; once per poll round
    /// (one load of a read-mostly word when nothing changed).
    #[inline(always)]
    pub fn refresh_subscribers(&mut self) {
        self.packer.fanout.refresh_if_changed();
    }

    /// True when some local subscriber may want admitted wire frames.
    #[inline(always)]
    pub fn has_subscribers(&self) -> bool {
        self.packer.fanout.any_active()
    }

    /// Hands the records of an admitted wire frame (a whole packet the
    /// classifier accepted) to local subscribers of its topic.
    #[inline]
    pub fn deliver_wire_packet(&mut self, pkt: &[u8]) {
        if let Some(frame) = tachyon_payload(pkt).and_then(FrameHeader::parse) {
            self.packer.fanout.deliver(frame.topic_id(), frame.sender_id(), frame.records());
        }
    }

    /// Drains this worker's ring (bounded), governs and sends what it held;
    /// returns how many messages it took.
    pub fn poll(&mut self, cx: &mut RoundContext<'_>) -> usize {
        let packer = &mut self.packer;
        if packer.is_empty() && self.ingress.is_idle() {
            // The common round when no client publishes: ~20 instructions, not ~200.
            packer.fanout.flush();
            return 0;
        }
        let mut taken = 0;
        if self.paused.as_mut().is_some_and(|p| p.holds(cx.now_ns)) {
            // Test hook only: leave the ring alone.
        } else {
            self.paused = None;
            taken = self.ingress.drain(self.budget, cx.now_ns, |m| packer.take(m, cx)).delivered;
            packer.close_open(cx);
            packer.govern_and_send(cx);
        }
        packer.fanout.flush();
        taken
    }
}

/// The backpressure tests' pause: for good, or until a time on the stage's clock.
struct PauseUntil {
    ms: Option<u64>,
    /// Set at the first round: the pause runs from the worker's first poll.
    until_ns: Option<u64>,
}

impl PauseUntil {
    /// `SHARD` or `SHARD:MS`, for this shard only.
    fn parse(text: &str, shard: u32) -> Option<PauseUntil> {
        let (s, ms) = match text.split_once(':') {
            Some((s, ms)) => (s, Some(ms.parse::<u64>().ok()?)),
            None => (text, None),
        };
        (s.parse::<u32>().ok()? == shard).then_some(PauseUntil { ms, until_ns: None })
    }

    fn holds(&mut self, now_ns: u64) -> bool {
        let Some(ms) = self.ms else { return true };
        let until = *self.until_ns.get_or_insert(now_ns + ms * 1_000_000);
        now_ns < until
    }
}

impl Packer {
    /// Adds one message to the open frame, closing it first when the topic
    /// or sender changes or the frame is full.
    #[inline(always)]
    fn take(&mut self, m: Message<'_>, cx: &mut RoundContext<'_>) {
        cx.local.add(Counter::BridgeMsgsReceived, 1);
        if let Some(open) = &self.open
            && (open.topic != m.topic || open.sender != m.sender || !self.fits(open, m.payload.len()))
        {
            self.close_open(cx);
        }
        if self.open.is_none() {
            let Some(mbuf) = Mbuf::alloc(&self.pool) else {
                cx.local.add(Counter::BridgeMsgsNoMbuf, 1);
                return;
            };
            let len = self.template.layout().records();
            self.open = Some(OpenFrame { mbuf, topic: m.topic, sender: m.sender, len, count: 0 });
        }
        let max_frame = self.max_frame;
        let headers = self.template;
        let open = self.open.as_mut().expect("opened above");
        let room = open.mbuf.room_mut();
        // Only the lengths matter while filling: the headers are written at close.
        let limit = room.len().min(max_frame);
        let pushed = FrameWriter::resume(&mut room[..limit], &headers, open.len, open.count)
            .and_then(|mut w| w.push_record(m.payload).map(|()| (w.len(), w.msg_count())));
        if let Ok((len, count)) = pushed {
            open.len = len;
            open.count = count;
        } else {
            // Larger than a whole frame at the egress MTU: the client's limit
            // is the region's max_message_bytes, so only a hostile one gets here.
            cx.local.add(Counter::BridgeMsgsOversize, 1);
        }
    }

    fn fits(&self, open: &OpenFrame, payload: usize) -> bool {
        open.count < u16::MAX && open.len + crate::wire::tachyon::record_len(payload) <= self.max_frame
    }

    /// No frame open and none staged: nothing left from an earlier drain.
    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.open.is_none() && self.staged.is_empty()
    }

    fn headers_for(&self, topic: u32, sender: u32) -> FrameHeaders {
        FrameHeaders { topic_id: topic, sender_id: sender, seq: self.next_seq, ..self.template }
    }

    /// Finishes the open frame's headers and stages it for governance.
    fn close_open(&mut self, cx: &mut RoundContext<'_>) {
        let Some(mut open) = self.open.take() else { return };
        if open.count == 0 {
            return; // its only message was refused; the mbuf goes back
        }
        let headers = self.headers_for(open.topic, open.sender);
        let Ok(writer) = FrameWriter::resume(open.mbuf.room_mut(), &headers, open.len, open.count) else {
            return; // cannot happen: len came from a writer on this buffer
        };
        let len = writer.finish();
        open.mbuf.set_len(len);
        self.next_seq += open.count as u64;
        self.keys.push(FrameKey {
            topic: open.topic,
            sender: open.sender,
            msg_count: open.count,
            src_ip: u32::from(self.template.src_ip),
            dst_port: self.template.dst_port,
        });
        self.staged.push(open.mbuf);
        if self.staged.len() == STAGED_FRAMES {
            self.govern_and_send(cx);
        }
    }

    /// Governs the staged frames as one burst, then delivers and sends the admitted ones.
    fn govern_and_send(&mut self, cx: &mut RoundContext<'_>) {
        let n = self.staged.len();
        if n == 0 {
            return;
        }
        // After the drain read these messages: a subscriber that subscribed
        // before they were published is seen now (see `refresh_if_changed`).
        self.fanout.refresh_if_changed();
        self.verdicts.clear();
        self.verdicts.resize(n, Verdict::Forward(None));
        cx.governance.decide_burst(cx.tables, &self.keys, cx.now_tsc, &mut self.verdicts);
        let layout = self.template.layout();
        for (i, mut mbuf) in self.staged.drain(..).enumerate() {
            let key = self.keys[i];
            let msgs = key.msg_count as u64;
            let route = match self.verdicts[i] {
                Verdict::Drop(reason) => {
                    cx.local.add_bridge_drop(reason, msgs);
                    continue;
                }
                Verdict::Forward(route) => route,
            };
            cx.local.add(Counter::BridgeMsgsAdmitted, msgs);
            if self.fanout.any_active()
                && let Some(frame) = FrameHeader::parse(&mbuf.data()[layout.payload..])
            {
                self.fanout.deliver(key.topic, key.sender, frame.records());
            }
            if !self.to_wire {
                continue; // subscribers only: the mbuf goes back to its pool
            }
            let hop = match route {
                None => Some((self.egress.slot, self.egress.port, self.egress.src_mac, self.egress.next_hop)),
                Some(r) => cx.routes.egress(r.port).map(|(slot, mac)| (slot, r.port, mac, r.next_hop)),
            };
            let Some((slot, _port, src_mac, next_hop)) = hop.filter(|h| cx.links_up & (1 << h.1) != 0) else {
                cx.local.add_bridge_drop(DropReason::NoRoute, msgs);
                continue;
            };
            if route.is_some() {
                rewrite_macs(mbuf.data_mut(), &next_hop, &src_mac);
            }
            if let Some(out) = cx.tx[slot].push(mbuf) {
                count_bridge_tx(cx.local, out);
            }
        }
        self.keys.clear();
        for b in cx.tx.iter_mut() {
            if !b.is_empty() {
                let out = b.flush();
                count_bridge_tx(cx.local, out);
            }
        }
    }
}

/// The UDP payload (the Tachyon frame) of an Ethernet/IPv4/UDP packet.
fn tachyon_payload(pkt: &[u8]) -> Option<&[u8]> {
    let eth = EthernetFrame::parse(pkt)?;
    let ip = Ipv4Header::parse(pkt.get(eth.payload_offset()..)?).ok()?;
    Some(UdpHeader::parse(ip.payload())?.payload())
}

/// Bridge frames are not received packets: they have their own TX counters,
/// so that wire accounting (received = sent + dropped) stays exact.
fn count_bridge_tx(local: &mut LocalCounters, out: TxOutcome) {
    local.add(Counter::BridgeFramesSent, out.sent as u64);
    local.add(Counter::BridgeBytesSent, out.bytes_sent);
    local.add(Counter::BridgeFramesTxFull, out.refused as u64);
}
