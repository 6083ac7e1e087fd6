//! Per-shard counters: plain integers written by the worker alone, copied
//! once per reconciliation period into atomics that the control side reads.

use std::sync::atomic::{AtomicU64, Ordering};

/// What one shard decided, cumulative since it started (rule hits, kept
/// apart, restart at each reload).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardCounters {
    pub admitted_frames: u64,
    pub admitted_msgs: u64,
    /// Frames dropped as `rule_drop` (by a rule or the default action).
    pub rule_drop: u64,
    pub topic_limited: u64,
    pub sender_limited: u64,
    /// Frames no rule matched (the default action applied).
    pub default_action: u64,
    /// Frames charged to a profile's shared overflow bucket because the
    /// bucket table was full.
    pub overflow_frames: u64,
    /// Idle buckets removed to make room.
    pub evicted: u64,
    /// Demand records that could not be sent (their ids were reported
    /// as idle for that period).
    pub reports_lost: u64,
    /// Share updates applied.
    pub shares_applied: u64,
    /// Share updates for an id the full table had no room for.
    pub shares_lost: u64,
    /// Frames whose bucket was due on the report list when the list was
    /// full (its demand went unreported that period).
    pub listings_refused: u64,
}

const FIELDS: usize = 12;

impl ShardCounters {
    fn to_array(self) -> [u64; FIELDS] {
        [
            self.admitted_frames,
            self.admitted_msgs,
            self.rule_drop,
            self.topic_limited,
            self.sender_limited,
            self.default_action,
            self.overflow_frames,
            self.evicted,
            self.reports_lost,
            self.shares_applied,
            self.shares_lost,
            self.listings_refused,
        ]
    }

    fn from_array(v: [u64; FIELDS]) -> Self {
        ShardCounters {
            admitted_frames: v[0],
            admitted_msgs: v[1],
            rule_drop: v[2],
            topic_limited: v[3],
            sender_limited: v[4],
            default_action: v[5],
            overflow_frames: v[6],
            evicted: v[7],
            reports_lost: v[8],
            shares_applied: v[9],
            shares_lost: v[10],
            listings_refused: v[11],
        }
    }
}

/// The copy of a governance shard's counters (and rule hits) the control
/// side reads; not the data plane's per-burst
/// [`crate::dataplane::counters::PublishedCounters`]. Written by its
/// worker once per period (relaxed stores: each value is a monotonic
/// counter, a reader mixing two periods is harmless).
pub struct PublishedShardCounters {
    values: [AtomicU64; FIELDS],
    /// Generation the rule hits belong to.
    generation: AtomicU64,
    rule_hits: Box<[AtomicU64]>,
}

impl PublishedShardCounters {
    pub fn new(max_rules: usize) -> Self {
        PublishedShardCounters {
            values: Default::default(),
            generation: AtomicU64::new(0),
            rule_hits: (0..max_rules).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Worker side.
    pub fn publish(&self, counters: &ShardCounters, generation: u64, rule_hits: &[u64]) {
        for (slot, value) in self.values.iter().zip(counters.to_array()) {
            slot.store(value, Ordering::Relaxed);
        }
        for (slot, &hits) in self.rule_hits.iter().zip(rule_hits) {
            slot.store(hits, Ordering::Relaxed);
        }
        // Released after the hits, so a reader that sees this generation
        // sees hits of this generation.
        self.generation.store(generation, Ordering::Release);
    }

    /// Control side.
    pub fn counters(&self) -> ShardCounters {
        ShardCounters::from_array(std::array::from_fn(|i| self.values[i].load(Ordering::Relaxed)))
    }

    /// Adds this shard's hits of `generation` to `sums`.
    pub fn add_rule_hits(&self, generation: u64, sums: &mut [u64]) {
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        for (sum, slot) in sums.iter_mut().zip(self.rule_hits.iter()) {
            *sum += slot.load(Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_counters_round_trip() {
        let published = PublishedShardCounters::new(4);
        let counters = ShardCounters {
            admitted_frames: 1,
            admitted_msgs: 2,
            rule_drop: 3,
            topic_limited: 4,
            sender_limited: 5,
            default_action: 6,
            overflow_frames: 7,
            evicted: 8,
            reports_lost: 9,
            shares_applied: 10,
            shares_lost: 11,
            listings_refused: 12,
        };
        published.publish(&counters, 7, &[1, 2]);
        assert_eq!(published.counters(), counters);
        let mut sums = vec![10, 10, 10, 10];
        published.add_rule_hits(7, &mut sums);
        assert_eq!(sums, [11, 12, 10, 10]);
        published.add_rule_hits(8, &mut sums);
        assert_eq!(sums, [11, 12, 10, 10], "hits of another generation are ignored");
    }
}
