//! The appliance's hold on the bridge region: created at start-up (replacing
//! a stale one from a crashed run), shared read-only with metrics and
//! telemetry, reaped of dead subscribers by the control lcore, and unlinked
//! when it drops at a clean exit.

use super::config::BridgeSettings;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tachyon_bridge::{BridgeError, IngressConsumer, Layout, Region, RegionStats, SubscriberFanout};

/// How often the control lcore looks for subscribers that died.
const REAP_EVERY: Duration = Duration::from_millis(50);

/// The region and the control lcore's pacing of its housekeeping.
#[derive(Clone)]
pub struct BridgeHost {
    region: Arc<Region>,
    last_reap: Instant,
}

impl BridgeHost {
    /// Creates the region at `path` with one shard per worker.
    pub fn create(path: &Path, s: &BridgeSettings, shards: u32) -> Result<BridgeHost, BridgeError> {
        let layout = Layout {
            shards,
            ingress_ring_bytes: s.ingress_ring_bytes,
            subscriber_slots: s.subscriber_slots,
            subscriber_ring_bytes: s.subscriber_ring_bytes,
            max_message_bytes: s.max_message_bytes,
        };
        let region = Region::create(path, layout, s.mode, s.group)?;
        Ok(BridgeHost { region: Arc::new(region), last_reap: Instant::now() })
    }

    pub fn path(&self) -> PathBuf {
        self.region.path().to_path_buf()
    }

    pub fn replaced_stale(&self) -> bool {
        self.region.replaced_stale()
    }

    /// The ring consumer and subscriber writers of `shard`, handed out once.
    pub fn take_shard(&self, shard: u32) -> Option<(IngressConsumer, SubscriberFanout)> {
        Some((self.region.ingress_consumer(shard)?, self.region.fanout(shard)?))
    }

    /// Frees the slots of subscribers that died; called every control tick,
    /// does the work every [`REAP_EVERY`]. Returns how many slots it freed.
    pub fn tick(&mut self) -> usize {
        if self.last_reap.elapsed() < REAP_EVERY {
            return 0;
        }
        self.last_reap = Instant::now();
        self.region.reap_dead_subscribers().unwrap_or(0)
    }

    pub fn stats(&self) -> RegionStats {
        self.region.stats()
    }

    /// A handle that only reads stats (for the metrics and telemetry threads).
    pub fn observer(&self) -> BridgeObserver {
        BridgeObserver { region: Arc::downgrade(&self.region), path: self.path() }
    }
}

/// Read-only access to the region's counters from other threads. It does
/// not keep the region alive: DPDK never frees telemetry callbacks, and the
/// region must still be removed at a clean exit.
#[derive(Clone)]
pub struct BridgeObserver {
    region: Weak<Region>,
    path: PathBuf,
}

impl BridgeObserver {
    /// The region's counters; empty once the appliance has let it go.
    pub fn stats(&self) -> RegionStats {
        self.region.upgrade().map(|r| r.stats()).unwrap_or_default()
    }

    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }
}

/// The region's counters as JSON, for `--stats-json` and `/tachyon/bridge`.
pub fn stats_json(path: &Path, stats: &RegionStats) -> serde_json::Value {
    let shards: Vec<serde_json::Value> = stats
        .shards
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({
                "shard": i,
                "ring_depth_bytes": s.ring_depth_bytes,
                "ring_depth_msgs": s.in_flight_msgs,
                "accepted_msgs": s.accepted_msgs,
                "accepted_batches": s.accepted_batches,
                "refused_batches": s.refused_batches,
                "unblocked": s.unblocked,
                "malformed_msgs": s.malformed_msgs,
                "malformed_blocks": s.malformed_blocks,
            })
        })
        .collect();
    let subscribers: Vec<serde_json::Value> = stats
        .slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.active || s.overflow > 0)
        .map(|(i, s)| {
            serde_json::json!({
                "slot": i, "active": s.active, "pid": s.pid, "all_topics": s.all_topics,
                "topics": s.topics, "overflow": s.overflow,
            })
        })
        .collect();
    serde_json::json!({
        "path": path.display().to_string(),
        "shards": shards,
        "subscribers": subscribers,
        "subscribers_active": stats.slots.iter().filter(|s| s.active).count(),
    })
}
