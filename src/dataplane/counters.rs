//! Per-worker counters. A worker counts into its own plain [`LocalCounters`]
//! and copies them (every 100 µs while busy, and when it goes idle) into its
//! own [`PublishedCounters`] block with relaxed stores (plain `mov`s on x86:
//! no lock, no read-modify-write).
//! The control lcore reads the published blocks off the hot path. Each block
//! is 64-byte aligned and separately allocated, so no two workers share a line.

use crate::dataplane::reason::DropReason;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counters every worker keeps, besides one per drop reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    RxPackets = 0,
    RxBytes,
    TxPackets,
    TxBytes,
    /// Well-formed Tachyon frames, and the messages in them.
    FramesReceived,
    MsgsReceived,
    /// Frames and messages governance admitted.
    FramesAdmitted,
    MsgsAdmitted,
    /// Non-Tachyon packets forwarded because the config says so.
    OtherForwarded,
    /// Polls that returned packets / returned none.
    PollsBusy,
    PollsIdle,
    /// TSC cycles spent processing non-empty bursts.
    BusyCycles,
    /// Polls that returned a whole burst: the RX queue held at least that many.
    FullBursts,
    /// TSC cycles spent in the governance stage, over the sampled frames only.
    GovernanceCycles,
    /// Frames whose governance time was measured (one burst in [`GOVERNANCE_SAMPLE_EVERY`]).
    GovernanceFrames,
    /// Messages taken from the bridge's ingress ring, and those governance admitted.
    BridgeMsgsReceived,
    BridgeMsgsAdmitted,
    /// Bridge frames sent, their bytes, and those the TX queue refused (freed).
    BridgeFramesSent,
    BridgeBytesSent,
    BridgeFramesTxFull,
    /// Bridge messages lost because the mempool had no mbuf for their frame.
    BridgeMsgsNoMbuf,
    /// Bridge messages larger than one frame at the egress MTU (a client past the region's limit).
    BridgeMsgsOversize,
    /// Packets received as a chain of several mbufs (jumbo frames), parsed from a copy.
    RxMultiSegment,
}

impl Counter {
    pub const COUNT: usize = 23;
    pub const ALL: [Counter; Self::COUNT] = [
        Counter::RxPackets,
        Counter::RxBytes,
        Counter::TxPackets,
        Counter::TxBytes,
        Counter::FramesReceived,
        Counter::MsgsReceived,
        Counter::FramesAdmitted,
        Counter::MsgsAdmitted,
        Counter::OtherForwarded,
        Counter::PollsBusy,
        Counter::PollsIdle,
        Counter::BusyCycles,
        Counter::FullBursts,
        Counter::GovernanceCycles,
        Counter::GovernanceFrames,
        Counter::BridgeMsgsReceived,
        Counter::BridgeMsgsAdmitted,
        Counter::BridgeFramesSent,
        Counter::BridgeBytesSent,
        Counter::BridgeFramesTxFull,
        Counter::BridgeMsgsNoMbuf,
        Counter::BridgeMsgsOversize,
        Counter::RxMultiSegment,
    ];

    /// Stable snake_case name used in JSON and telemetry.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::RxPackets => "rx_packets",
            Counter::RxBytes => "rx_bytes",
            Counter::TxPackets => "tx_packets",
            Counter::TxBytes => "tx_bytes",
            Counter::FramesReceived => "frames_received",
            Counter::MsgsReceived => "msgs_received",
            Counter::FramesAdmitted => "frames_admitted",
            Counter::MsgsAdmitted => "msgs_admitted",
            Counter::OtherForwarded => "other_forwarded",
            Counter::PollsBusy => "polls_busy",
            Counter::PollsIdle => "polls_idle",
            Counter::BusyCycles => "busy_cycles",
            Counter::FullBursts => "full_bursts",
            Counter::GovernanceCycles => "governance_cycles",
            Counter::GovernanceFrames => "governance_frames",
            Counter::BridgeMsgsReceived => "bridge_msgs_received",
            Counter::BridgeMsgsAdmitted => "bridge_msgs_admitted",
            Counter::BridgeFramesSent => "bridge_frames_sent",
            Counter::BridgeBytesSent => "bridge_bytes_sent",
            Counter::BridgeFramesTxFull => "bridge_frames_tx_full",
            Counter::BridgeMsgsNoMbuf => "bridge_msgs_no_mbuf",
            Counter::BridgeMsgsOversize => "bridge_msgs_oversize",
            Counter::RxMultiSegment => "rx_multi_segment",
        }
    }
}

/// Busy polls between two bursts whose governance calls are timed. Timing
/// costs two TSC reads per frame, so only one burst in this many pays it.
pub const GOVERNANCE_SAMPLE_EVERY: u64 = 256;

/// Buckets of the governance-time histogram: bucket `b` counts frames that
/// took fewer than `2^b` TSC cycles; the last one takes everything longer.
pub const GOVERNANCE_BUCKETS: usize = 16;

/// Longest governance time recorded, in cycles (several microseconds): a
/// timed call that took longer was interrupted (preemption, an IRQ), and
/// counting it whole would let one interruption outweigh millions of frames
/// in the mean. It still lands in the last bucket.
pub const GOVERNANCE_CAP_CYCLES: u64 = 1 << (GOVERNANCE_BUCKETS - 1);

/// Slots: the named counters, one per drop reason (packets), the governance
/// histogram, then one per drop reason for bridge messages (messages, not
/// packets: a bridge message was never a received packet).
pub const SLOTS: usize = Counter::COUNT + DropReason::COUNT + GOVERNANCE_BUCKETS + DropReason::COUNT;
const FIRST_BUCKET: usize = Counter::COUNT + DropReason::COUNT;
const FIRST_BRIDGE_DROP: usize = FIRST_BUCKET + GOVERNANCE_BUCKETS;

/// The histogram bucket of a governance time of `cycles`.
#[inline(always)]
pub fn governance_bucket(cycles: u64) -> usize {
    // Bit length: 0 -> 0, 1 -> 1, 2..=3 -> 2, 4..=7 -> 3, ...
    ((u64::BITS - cycles.leading_zeros()) as usize).min(GOVERNANCE_BUCKETS - 1)
}

/// A worker's private tally, written on the hot path.
#[repr(C, align(64))]
#[derive(Clone, Debug)]
pub struct LocalCounters {
    v: [u64; SLOTS],
}

impl Default for LocalCounters {
    fn default() -> Self {
        LocalCounters { v: [0; SLOTS] }
    }
}

impl LocalCounters {
    #[inline(always)]
    pub fn add(&mut self, c: Counter, n: u64) {
        self.v[c as usize] += n;
    }

    #[inline(always)]
    pub fn drop_packet(&mut self, r: DropReason) {
        self.v[Counter::COUNT + r.index()] += 1;
    }

    #[inline(always)]
    pub fn drop_packets(&mut self, r: DropReason, n: u64) {
        self.v[Counter::COUNT + r.index()] += n;
    }

    /// `n` bridge messages dropped for `r`.
    #[inline(always)]
    pub fn add_bridge_drop(&mut self, r: DropReason, n: u64) {
        self.v[FIRST_BRIDGE_DROP + r.index()] += n;
    }

    #[inline(always)]
    pub fn get(&self, c: Counter) -> u64 {
        self.v[c as usize]
    }

    /// One sampled frame that spent `cycles` in the governance stage
    /// (capped at [`GOVERNANCE_CAP_CYCLES`]).
    #[inline(always)]
    pub fn record_governance(&mut self, cycles: u64) {
        let cycles = cycles.min(GOVERNANCE_CAP_CYCLES);
        self.v[Counter::GovernanceCycles as usize] += cycles;
        self.v[Counter::GovernanceFrames as usize] += 1;
        self.v[FIRST_BUCKET + governance_bucket(cycles)] += 1;
    }

    /// A sampled burst whose `frames` frames spent `cycles` in governance
    /// together: counted as `frames` samples of the mean.
    #[inline(always)]
    pub fn record_governance_burst(&mut self, cycles: u64, frames: u64) {
        let per_frame = (cycles / frames.max(1)).min(GOVERNANCE_CAP_CYCLES);
        self.v[Counter::GovernanceCycles as usize] += per_frame * frames;
        self.v[Counter::GovernanceFrames as usize] += frames;
        self.v[FIRST_BUCKET + governance_bucket(per_frame)] += frames;
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot { v: self.v }
    }
}

/// The copy of a worker's counters that other cores may read.
#[repr(C, align(64))]
pub struct PublishedCounters {
    v: [AtomicU64; SLOTS],
}

impl Default for PublishedCounters {
    fn default() -> Self {
        PublishedCounters { v: std::array::from_fn(|_| AtomicU64::new(0)) }
    }
}

impl PublishedCounters {
    /// Called by the owning worker only (single writer), every 100 µs or so.
    #[inline(always)]
    pub fn publish(&self, local: &LocalCounters) {
        for (dst, src) in self.v.iter().zip(local.v.iter()) {
            dst.store(*src, Ordering::Relaxed);
        }
    }

    /// Read by the control side; each value is exact, the set is a few ns apart.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { v: std::array::from_fn(|i| self.v[i].load(Ordering::Relaxed)) }
    }
}

/// A point-in-time copy of one or more workers' counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    v: [u64; SLOTS],
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot { v: [0; SLOTS] }
    }
}

impl Snapshot {
    pub fn get(&self, c: Counter) -> u64 {
        self.v[c as usize]
    }

    pub fn drops(&self, r: DropReason) -> u64 {
        self.v[Counter::COUNT + r.index()]
    }

    /// Bridge messages dropped for `r`.
    pub fn bridge_drops(&self, r: DropReason) -> u64 {
        self.v[FIRST_BRIDGE_DROP + r.index()]
    }

    /// Bridge messages dropped for any reason.
    pub fn bridge_dropped_total(&self) -> u64 {
        self.v[FIRST_BRIDGE_DROP..].iter().sum()
    }

    pub fn dropped_total(&self) -> u64 {
        self.v[Counter::COUNT..FIRST_BUCKET].iter().sum()
    }

    /// Sampled frames per governance-time bucket (not cumulative), see [`governance_bucket`].
    pub fn governance_buckets(&self) -> [u64; GOVERNANCE_BUCKETS] {
        std::array::from_fn(|b| self.v[FIRST_BUCKET + b])
    }

    /// Element-wise sum (totals over workers).
    pub fn plus(&self, o: &Snapshot) -> Snapshot {
        Snapshot { v: std::array::from_fn(|i| self.v[i] + o.v[i]) }
    }

    /// Element-wise difference (rates between two snapshots).
    pub fn minus(&self, o: &Snapshot) -> Snapshot {
        Snapshot { v: std::array::from_fn(|i| self.v[i].saturating_sub(o.v[i])) }
    }

    /// Per-reason drops as a JSON object with every PROTOCOL.md name.
    pub fn drops_json(&self) -> serde_json::Value {
        let m: serde_json::Map<String, serde_json::Value> =
            DropReason::ALL.iter().map(|r| (r.name().to_string(), self.drops(*r).into())).collect();
        serde_json::Value::Object(m)
    }

    /// All counters plus `dropped` and `drops` as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for c in Counter::ALL {
            m.insert(c.name().to_string(), self.get(c).into());
        }
        m.insert("dropped".into(), self.dropped_total().into());
        m.insert("drops".into(), self.drops_json());
        m.insert("governance_cycles_log2_buckets".into(), self.governance_buckets().to_vec().into());
        let bridge: serde_json::Map<String, serde_json::Value> =
            DropReason::ALL.iter().map(|r| (r.name().to_string(), self.bridge_drops(*r).into())).collect();
        m.insert("bridge_drops".into(), serde_json::Value::Object(bridge));
        serde_json::Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_blocks_are_cache_line_aligned_and_round_trip() {
        assert_eq!(std::mem::align_of::<PublishedCounters>(), 64);
        assert_eq!(std::mem::size_of::<PublishedCounters>() % 64, 0);
        let mut l = LocalCounters::default();
        l.add(Counter::RxPackets, 5);
        l.drop_packet(DropReason::BadMagic);
        l.drop_packets(DropReason::TxFull, 2);
        let p = PublishedCounters::default();
        p.publish(&l);
        let s = p.snapshot();
        assert_eq!(s.get(Counter::RxPackets), 5);
        assert_eq!(s.drops(DropReason::BadMagic), 1);
        assert_eq!(s.dropped_total(), 3);
        assert_eq!(s.plus(&s).get(Counter::RxPackets), 10);
        assert_eq!(s.to_json()["drops"]["tx_full"], 2);
    }

    #[test]
    fn governance_time_lands_in_log2_buckets_apart_from_drops() {
        assert_eq!(governance_bucket(0), 0);
        assert_eq!(governance_bucket(1), 1);
        assert_eq!(governance_bucket(3), 2);
        assert_eq!(governance_bucket(4), 3);
        assert_eq!(governance_bucket(u64::MAX), GOVERNANCE_BUCKETS - 1);
        let mut l = LocalCounters::default();
        l.record_governance(100);
        l.record_governance(5);
        let s = l.snapshot();
        assert_eq!(s.get(Counter::GovernanceCycles), 105);
        assert_eq!(s.get(Counter::GovernanceFrames), 2);
        assert_eq!(s.governance_buckets()[7], 1);
        assert_eq!(s.governance_buckets()[3], 1);
        assert_eq!(s.dropped_total(), 0, "histogram slots are not drops");
        assert_eq!(s.to_json()["governance_cycles_log2_buckets"][7], 1);
        // An interrupted call counts at the cap, in the last bucket.
        l.record_governance(10_000_000);
        let s = l.snapshot();
        assert_eq!(s.get(Counter::GovernanceCycles), 105 + GOVERNANCE_CAP_CYCLES);
        assert_eq!(s.governance_buckets()[GOVERNANCE_BUCKETS - 1], 1);
    }
}
