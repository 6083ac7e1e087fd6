//! Per-worker counters. A worker counts into its own plain [`LocalCounters`]
//! and copies them, once per burst, into its own [`PublishedCounters`] block
//! with relaxed stores (plain `mov`s on x86: no lock, no read-modify-write).
//! The control lcore reads the published blocks off the hot path. Each block
//! is 64-byte aligned and separately allocated, so no two workers share a line.

use crate::reason::DropReason;
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
}

impl Counter {
    pub const COUNT: usize = 12;
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
        }
    }
}

/// Slots: the named counters, then one per drop reason.
pub const SLOTS: usize = Counter::COUNT + DropReason::COUNT;

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
    /// Called by the owning worker only (single writer), once per burst.
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

    pub fn dropped_total(&self) -> u64 {
        self.v[Counter::COUNT..].iter().sum()
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
}
