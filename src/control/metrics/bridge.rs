//! The `tachyon_bridge_*` families: the region's per-shard ring counters and
//! subscriber slots (read from the shared region through a
//! [`BridgeObserver`]), and each worker core's bridge message counters.
//! Present only when the bridge is on.

use super::collector::{counter, gauge};
use crate::bridge::host::BridgeObserver;
use crate::dataplane::counters::{Counter, Snapshot};
use crate::dataplane::reason::DropReason;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use std::fmt;
use tachyon_bridge::ShardStats;

/// The reasons a bridge message can be dropped for (governance, then
/// routing). They are always exported, zeros included; any other reason
/// only once it counts something.
pub const BRIDGE_DROP_REASONS: [DropReason; 4] =
    [DropReason::RuleDrop, DropReason::TopicLimited, DropReason::SenderLimited, DropReason::NoRoute];

/// Encodes every bridge family.
pub fn encode(enc: &mut DescriptorEncoder, bridge: &BridgeObserver, cores: &[(String, Snapshot)]) -> fmt::Result {
    encode_region(enc, bridge)?;
    encode_cores(enc, cores)
}

type ShardFamily = (&'static str, &'static str, fn(&ShardStats) -> u64);

fn encode_region(enc: &mut DescriptorEncoder, bridge: &BridgeObserver) -> fmt::Result {
    let stats = bridge.stats();
    let ids: Vec<String> = (0..stats.shards.len()).map(|i| i.to_string()).collect();
    let per_shard = |read: fn(&ShardStats) -> u64| {
        stats.shards.iter().zip(&ids).map(move |(s, id)| ([("shard", id.as_str())], read(s)))
    };
    let gauges: [ShardFamily; 2] = [
        (
            "bridge_ring_depth_bytes",
            "Bytes published into the shard's ingress ring that its worker has not consumed yet.",
            |s| s.ring_depth_bytes,
        ),
        (
            "bridge_ring_depth_msgs",
            "Messages accepted into the shard's ingress ring and not consumed yet (an estimate: malformed and \
             unblocked ones stay counted).",
            |s| s.in_flight_msgs,
        ),
    ];
    for (name, help, read) in gauges {
        gauge(enc, name, help, per_shard(read))?;
    }
    let counters: [ShardFamily; 6] = [
        ("bridge_accepted_msgs", "Messages in the batch parts the shard's ring accepted.", |s| s.accepted_msgs),
        ("bridge_accepted_batches", "Batch parts (a batch's messages for one shard) the shard's ring accepted.", |s| {
            s.accepted_batches
        }),
        (
            "bridge_refused_batches",
            "Batch parts the shard's ring refused whole: ring full (backpressure), contention, a corrupt ring, or \
             unblocked before commit.",
            |s| s.refused_batches,
        ),
        (
            "bridge_unblocked",
            "Stalled records the shard's worker skipped after the unblock timeout (a producer that died or paused \
             between claim and commit).",
            |s| s.unblocked,
        ),
        ("bridge_malformed_msgs", "Malformed messages the shard's worker skipped.", |s| s.malformed_msgs),
        (
            "bridge_malformed_blocks",
            "Malformed records or insane control words the shard's worker skipped or reset.",
            |s| s.malformed_blocks,
        ),
    ];
    for (name, help, read) in counters {
        counter(enc, name, help, per_shard(read))?;
    }
    let active: Vec<(String, u64)> =
        stats.slots.iter().enumerate().filter(|(_, s)| s.active).map(|(i, s)| (i.to_string(), s.overflow)).collect();
    enc.encode_descriptor(
        "bridge_subscribers_active",
        "Subscriber slots in use by a live subscriber.",
        None,
        MetricType::Gauge,
    )?
    .encode_gauge(&(active.len() as u64))?;
    counter(
        enc,
        "bridge_subscriber_overflow",
        "Messages the active subscriber in this slot missed because its ring was full (it did not read in time), \
         over all shards.",
        active.iter().map(|(slot, n)| ([("slot", slot.as_str())], *n)),
    )
}

fn encode_cores(enc: &mut DescriptorEncoder, cores: &[(String, Snapshot)]) -> fmt::Result {
    let families = [
        (Counter::BridgeMsgsReceived, "bridge_msgs_received", "Messages the worker core took from its bridge shard."),
        (Counter::BridgeMsgsAdmitted, "bridge_msgs_admitted", "Bridge messages governance admitted."),
        (Counter::BridgeFramesSent, "bridge_frames_sent", "Tachyon frames built from bridge messages and sent."),
        (Counter::BridgeBytesSent, "bridge_bytes_sent", "Bytes of the bridge frames sent."),
        (Counter::BridgeFramesTxFull, "bridge_frames_tx_full", "Bridge frames the TX queue refused (freed)."),
        (
            Counter::BridgeMsgsNoMbuf,
            "bridge_msgs_no_mbuf",
            "Bridge messages lost because the mempool had no mbuf for their frame.",
        ),
        (
            Counter::BridgeMsgsOversize,
            "bridge_msgs_oversize",
            "Bridge messages larger than one frame at the egress MTU (only a client past the region's limit).",
        ),
    ];
    for (c, name, help) in families {
        counter(enc, name, help, cores.iter().map(|(core, s)| ([("core", core.as_str())], s.get(c))))?;
    }
    counter(
        enc,
        "bridge_msgs_dropped",
        "Bridge messages the worker core dropped, by PROTOCOL.md reason (governance or routing).",
        cores.iter().flat_map(|(core, s)| {
            DropReason::ALL
                .iter()
                .filter(|r| BRIDGE_DROP_REASONS.contains(r) || s.bridge_drops(**r) > 0)
                .map(move |r| ([("core", core.as_str()), ("reason", r.name())], s.bridge_drops(*r)))
        }),
    )
}

#[cfg(test)]
mod tests {
    use crate::bridge::{BridgeConfig, BridgeHost};
    use crate::control::WorkerView;
    use crate::control::metrics::{Exposition, MetricsSources, NoGovernance};
    use crate::dataplane::counters::{Counter, LocalCounters, PublishedCounters};
    use crate::dataplane::reason::DropReason;
    use std::sync::Arc;
    use tachyon_bridge::Bridge;

    fn sample(text: &str, series: &str) -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))?;
        line.rsplit(' ').next()?.parse().ok()
    }

    #[test]
    fn the_region_and_the_workers_bridge_counters_are_scraped() {
        let path = std::env::temp_dir().join(format!("tachyon-metrics-unit-{}.bridge", std::process::id()));
        let config = BridgeConfig {
            ingress_ring_bytes: 64 << 10,
            subscriber_ring_bytes: 64 << 10,
            subscriber_slots: 2,
            max_message_bytes: 256,
            ..BridgeConfig::default()
        };
        let host = BridgeHost::create(&path, &config.settings().unwrap(), 2).unwrap();
        let counters = Arc::new(PublishedCounters::default());
        let mut local = LocalCounters::default();
        local.add(Counter::MsgsReceived, 10);
        local.add(Counter::BridgeMsgsReceived, 7);
        local.add(Counter::BridgeMsgsAdmitted, 5);
        local.add_bridge_drop(DropReason::TopicLimited, 2);
        counters.publish(&local);
        let exposition = Exposition::new(MetricsSources {
            workers: vec![WorkerView { index: 0, lcore: 1, socket: 0, counters }],
            ports: Vec::new(),
            mempools: Vec::new(),
            governance: Arc::new(NoGovernance),
            tsc_hz: 1_000_000_000,
            dpdk_version: "DPDK test".into(),
            bridge: Some(host.observer()),
        });

        let client = Bridge::connect(&path).unwrap();
        let sub = client.subscribe(None).unwrap();
        // Topics 2 and 4 go to shard 0, topic 3 to shard 1; nobody drains.
        let report = client.publish_batch(&[2, 4, 3], &[9, 9, 9], b"abcdef", &[0, 2, 4, 6]).unwrap();
        assert!(report.all_accepted(), "{report:?}");
        let text = exposition.prometheus_text();
        let v = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert_eq!(v("tachyon_bridge_accepted_msgs_total{shard=\"0\"}"), 2.0);
        assert_eq!(v("tachyon_bridge_accepted_msgs_total{shard=\"1\"}"), 1.0);
        assert_eq!(v("tachyon_bridge_accepted_batches_total{shard=\"0\"}"), 1.0);
        assert_eq!(v("tachyon_bridge_refused_batches_total{shard=\"1\"}"), 0.0);
        assert_eq!(v("tachyon_bridge_ring_depth_msgs{shard=\"0\"}"), 2.0);
        assert!(v("tachyon_bridge_ring_depth_bytes{shard=\"0\"}") > 0.0);
        assert_eq!(v("tachyon_bridge_unblocked_total{shard=\"0\"}"), 0.0);
        assert_eq!(v("tachyon_bridge_malformed_msgs_total{shard=\"1\"}"), 0.0);
        assert_eq!(v("tachyon_bridge_malformed_blocks_total{shard=\"1\"}"), 0.0);
        assert_eq!(v("tachyon_bridge_subscribers_active"), 1.0);
        assert_eq!(v("tachyon_bridge_subscriber_overflow_total{slot=\"0\"}"), 0.0);
        assert_eq!(v("tachyon_bridge_msgs_received_total{core=\"1\"}"), 7.0);
        assert_eq!(v("tachyon_bridge_msgs_admitted_total{core=\"1\"}"), 5.0);
        assert_eq!(v("tachyon_bridge_frames_sent_total{core=\"1\"}"), 0.0);
        assert_eq!(v("tachyon_bridge_msgs_dropped_total{core=\"1\",reason=\"topic_limited\"}"), 2.0);
        assert_eq!(v("tachyon_bridge_msgs_dropped_total{core=\"1\",reason=\"no_route\"}"), 0.0);
        assert_eq!(sample(&text, "tachyon_bridge_msgs_dropped_total{core=\"1\",reason=\"bad_magic\"}"), None);
        assert_eq!(v("tachyon_messages_received_total{core=\"1\",source=\"wire\"}"), 10.0);
        assert_eq!(v("tachyon_messages_received_total{core=\"1\",source=\"bridge\"}"), 7.0);
        assert_eq!(v("tachyon_messages_admitted_total{core=\"1\",source=\"bridge\"}"), 5.0);

        // Once the appliance lets the region go, its families are empty, not stale.
        drop(sub);
        drop(client);
        drop(host);
        let text = exposition.prometheus_text();
        assert_eq!(sample(&text, "tachyon_bridge_accepted_msgs_total{shard=\"0\"}"), None);
        assert_eq!(sample(&text, "tachyon_bridge_subscribers_active"), Some(0.0));
        assert!(!path.exists(), "the region is unlinked when the host drops");
    }
}
