//! The `tachyon_*` metric families, encoded with `prometheus-client` from
//! fresh reads of every source on each scrape.

use super::governance::GovernanceSource;
use super::{PREFIX, to_prometheus_text};
use crate::bridge::host::BridgeObserver;
use crate::control::workers::WorkerView;
use crate::dataplane::counters::{
    Counter, GOVERNANCE_BUCKETS, GOVERNANCE_CAP_CYCLES, GOVERNANCE_SAMPLE_EVERY, Snapshot,
};
use crate::dataplane::reason::DropReason;
use crate::dpdk::{Mempool, PortReader, PortStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, NoLabelSet, text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::{Arc, Mutex};

/// A port as metrics see it.
pub struct PortSource {
    pub reader: PortReader,
    /// The ethdev name (e.g. `0000:03:00.0`, `net_pcap0`).
    pub name: String,
}

/// A mempool as metrics see it. The `Arc` keeps the pool alive while a scrape reads it.
pub struct MempoolSource {
    pub socket: i32,
    pub pool: Arc<Mempool>,
}

/// Everything a scrape reads.
pub struct MetricsSources {
    pub workers: Vec<WorkerView>,
    pub ports: Vec<PortSource>,
    pub mempools: Vec<MempoolSource>,
    pub governance: Arc<dyn GovernanceSource>,
    /// TSC ticks per second, to turn the workers' cycle counts into seconds.
    pub tsc_hz: u64,
    /// E.g. "DPDK 22.11.11", for `tachyon_build_info`.
    pub dpdk_version: String,
    /// The bridge region's counters, when the bridge is on (`tachyon_bridge_*`
    /// and the `source="bridge"` message series exist only then).
    pub bridge: Option<BridgeObserver>,
}

/// The registry behind `/metrics`.
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    pub fn new(sources: MetricsSources) -> Exposition {
        let mut registry = Registry::with_prefix(PREFIX);
        let polls_at_last_scrape = Mutex::new(vec![PollTally::default(); sources.workers.len()]);
        registry.register_collector(Box::new(TachyonCollector { sources, polls_at_last_scrape }));
        Exposition { registry }
    }

    /// The OpenMetrics text exposition, `# EOF` included.
    pub fn openmetrics(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        text::encode(&mut out, &self.registry).expect("formatting into a String does not fail");
        out
    }

    /// The same metrics in Prometheus' text format 0.0.4.
    pub fn prometheus_text(&self) -> String {
        to_prometheus_text(&self.openmetrics())
    }
}

/// A worker's packet and poll totals at the previous scrape.
#[derive(Clone, Copy, Default)]
struct PollTally {
    packets: u64,
    polls: u64,
}

struct TachyonCollector {
    sources: MetricsSources,
    /// For the queue-depth gauge; only scrapes take this lock.
    polls_at_last_scrape: Mutex<Vec<PollTally>>,
}

impl fmt::Debug for TachyonCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TachyonCollector")
            .field("workers", &self.sources.workers.len())
            .field("ports", &self.sources.ports.len())
            .field("mempools", &self.sources.mempools.len())
            .finish()
    }
}

pub(super) fn counter<L: EncodeLabelSet, V: EncodeCounterValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        metric.encode_family(&labels)?.encode_counter::<NoLabelSet, V, f64>(&value, None)?;
    }
    Ok(())
}

pub(super) fn gauge<L: EncodeLabelSet, V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        metric.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

impl Collector for TachyonCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let src = &self.sources;
        let hz = src.tsc_hz.max(1) as f64;
        let cores: Vec<(String, Snapshot)> =
            src.workers.iter().map(|w| (w.lcore.to_string(), w.counters.snapshot())).collect();
        let enc = &mut enc;
        self.encode_workers(enc, &cores, hz)?;
        encode_ports(enc, src)?;
        encode_mempools(enc, src)?;
        encode_governance(enc, src.governance.as_ref())?;
        if let Some(bridge) = &src.bridge {
            super::bridge::encode(enc, bridge, &cores)?;
        }
        gauge(
            enc,
            "build_info",
            "Tachyon and DPDK versions; always 1.",
            [([("version", env!("CARGO_PKG_VERSION")), ("dpdk", src.dpdk_version.as_str())], 1u64)],
        )
    }
}

impl TachyonCollector {
    fn encode_workers(&self, enc: &mut DescriptorEncoder, cores: &[(String, Snapshot)], hz: f64) -> fmt::Result {
        let per_core = |c: Counter| cores.iter().map(move |(core, s)| ([("core", core.as_str())], s.get(c)));
        let families = [
            (
                Counter::RxPackets,
                "packets_processed",
                "Packets the worker core received from its RX queues and processed.",
            ),
            (Counter::RxBytes, "bytes_processed", "Bytes of the packets the worker core processed."),
            (Counter::TxPackets, "packets_sent", "Packets the worker core's TX queues accepted."),
            (Counter::TxBytes, "bytes_sent", "Bytes of the packets the worker core sent."),
            (Counter::FramesReceived, "frames_received", "Well-formed Tachyon frames the worker core received."),
            (Counter::FramesAdmitted, "frames_admitted", "Tachyon frames governance admitted."),
            (Counter::OtherForwarded, "packets_other_forwarded", "Non-Tachyon packets forwarded as configured."),
            (
                Counter::RxMultiSegment,
                "packets_multi_segment",
                "Packets received as a chain of several mbufs (jumbo frames), parsed from a per-worker copy.",
            ),
            (
                Counter::FullBursts,
                "rx_full_bursts",
                "RX polls that returned a whole burst: the queue held at least a burst (backlog).",
            ),
        ];
        for (c, name, help) in families {
            counter(enc, name, help, per_core(c))?;
        }
        counter(
            enc,
            "packets_dropped",
            "Packets the worker core dropped, by PROTOCOL.md reason.",
            cores.iter().flat_map(|(core, s)| {
                DropReason::ALL.iter().map(move |r| ([("core", core.as_str()), ("reason", r.name())], s.drops(*r)))
            }),
        )?;
        counter(
            enc,
            "polls",
            "RX polls of the worker core: busy (returned packets) or idle.",
            cores.iter().flat_map(|(core, s)| {
                [
                    ([("core", core.as_str()), ("result", "busy")], s.get(Counter::PollsBusy)),
                    ([("core", core.as_str()), ("result", "idle")], s.get(Counter::PollsIdle)),
                ]
            }),
        )?;
        counter(
            enc,
            "busy_seconds",
            "Time the worker core spent processing non-empty bursts.",
            cores.iter().map(|(core, s)| ([("core", core.as_str())], s.get(Counter::BusyCycles) as f64 / hz)),
        )?;
        let mut histogram = enc.encode_descriptor(
            "governance_duration_seconds",
            &format!(
                "Time governance took per frame, timed on one burst in {GOVERNANCE_SAMPLE_EVERY}; a call the OS \
                 interrupted counts as {GOVERNANCE_CAP_CYCLES} TSC cycles at most."
            ),
            None,
            MetricType::Histogram,
        )?;
        for (core, s) in cores {
            // Bucket b holds frames of fewer than 2^b cycles, so at most 2^b - 1.
            let buckets: Vec<(f64, u64)> = s
                .governance_buckets()
                .iter()
                .enumerate()
                .map(|(b, n)| {
                    let le = if b + 1 == GOVERNANCE_BUCKETS { f64::INFINITY } else { ((1u64 << b) - 1) as f64 / hz };
                    (le, *n)
                })
                .collect();
            histogram.encode_family(&[("core", core.as_str())])?.encode_histogram::<NoLabelSet>(
                s.get(Counter::GovernanceCycles) as f64 / hz,
                s.get(Counter::GovernanceFrames),
                &buckets,
                None,
            )?;
        }
        self.encode_messages(enc, cores)?;
        let depths = self.queue_depths(cores);
        gauge(
            enc,
            "rx_queue_depth",
            "Packets per RX poll since the previous scrape: how full the worker core found its RX queues \
             (capped at the burst size; see rx_full_bursts).",
            cores.iter().zip(depths).map(|((core, _), d)| ([("core", core.as_str())], d)),
        )
    }

    /// The message families, by `source`: `wire` (in the well-formed frames
    /// the worker core received) and, with the bridge on, `bridge` (taken
    /// from its bridge shard).
    fn encode_messages(&self, enc: &mut DescriptorEncoder, cores: &[(String, Snapshot)]) -> fmt::Result {
        let bridge = self.sources.bridge.is_some();
        let families = [
            (
                "messages_received",
                "Messages the worker core received: in well-formed Tachyon frames (source wire) or from its bridge \
                 shard (source bridge).",
                Counter::MsgsReceived,
                Counter::BridgeMsgsReceived,
            ),
            (
                "messages_admitted",
                "Messages governance admitted on the worker core, by source (wire or bridge).",
                Counter::MsgsAdmitted,
                Counter::BridgeMsgsAdmitted,
            ),
        ];
        for (name, help, wire, from_bridge) in families {
            counter(
                enc,
                name,
                help,
                cores.iter().flat_map(|(core, s)| {
                    let core = core.as_str();
                    let wire = ([("core", core), ("source", "wire")], s.get(wire));
                    let from_bridge = bridge.then(|| ([("core", core), ("source", "bridge")], s.get(from_bridge)));
                    std::iter::once(wire).chain(from_bridge)
                }),
            )?;
        }
        Ok(())
    }

    /// Mean burst fill of each worker since the previous scrape.
    fn queue_depths(&self, cores: &[(String, Snapshot)]) -> Vec<f64> {
        let mut last = self.polls_at_last_scrape.lock().unwrap_or_else(|e| e.into_inner());
        cores
            .iter()
            .zip(last.iter_mut())
            .map(|((_, s), prev)| {
                let now = PollTally {
                    packets: s.get(Counter::RxPackets),
                    polls: s.get(Counter::PollsBusy) + s.get(Counter::PollsIdle),
                };
                let polls = now.polls.saturating_sub(prev.polls);
                let packets = now.packets.saturating_sub(prev.packets);
                *prev = now;
                if polls == 0 { 0.0 } else { packets as f64 / polls as f64 }
            })
            .collect()
    }
}

/// A metric family read off one source: name, help, and the reading.
type Family<S, V> = (&'static str, &'static str, fn(&S) -> V);

fn encode_ports(enc: &mut DescriptorEncoder, src: &MetricsSources) -> fmt::Result {
    let ids: Vec<String> = src.ports.iter().map(|p| p.reader.id().to_string()).collect();
    let stats: Vec<PortStats> = src.ports.iter().map(|p| p.reader.stats()).collect();
    let labels = |i: usize| [("port", ids[i].as_str()), ("name", src.ports[i].name.as_str())];
    let families: [Family<PortStats, u64>; 8] = [
        ("port_rx_packets", "Packets the port received (ipackets).", |s| s.rx_packets),
        ("port_tx_packets", "Packets the port sent (opackets).", |s| s.tx_packets),
        ("port_rx_bytes", "Bytes the port received (ibytes).", |s| s.rx_bytes),
        ("port_tx_bytes", "Bytes the port sent (obytes).", |s| s.tx_bytes),
        ("port_rx_missed", "Packets the port dropped because its RX queues were full (imissed).", |s| s.rx_missed),
        ("port_rx_errors", "Erroneous packets the port received (ierrors).", |s| s.rx_errors),
        ("port_tx_errors", "Packets the port failed to send (oerrors).", |s| s.tx_errors),
        ("port_rx_nombuf", "RX mbuf allocation failures of the port (rx_nombuf).", |s| s.rx_nombuf),
    ];
    for (name, help, field) in families {
        counter(enc, name, help, stats.iter().enumerate().map(|(i, s)| (labels(i), field(s))))?;
    }
    gauge(
        enc,
        "port_link_up",
        "1 when the port's link is up.",
        src.ports.iter().enumerate().map(|(i, p)| (labels(i), p.reader.link().up as u64)),
    )
}

fn encode_mempools(enc: &mut DescriptorEncoder, src: &MetricsSources) -> fmt::Result {
    let sockets: Vec<String> = src.mempools.iter().map(|m| m.socket.to_string()).collect();
    let families: [Family<Mempool, u32>; 3] = [
        ("mempool_mbufs_in_use", "Mbufs of the pool in use (in rings, bursts or queues).", |p| p.in_use()),
        ("mempool_mbufs_available", "Mbufs of the pool free (ring and per-lcore caches).", |p| p.available()),
        ("mempool_mbufs_capacity", "Mbufs the pool holds in all.", |p| p.size()),
    ];
    for (name, help, read) in families {
        gauge(
            enc,
            name,
            help,
            src.mempools.iter().zip(&sockets).map(|(m, socket)| ([("socket", socket.as_str())], read(&m.pool))),
        )?;
    }
    Ok(())
}

fn encode_governance(enc: &mut DescriptorEncoder, governance: &dyn GovernanceSource) -> fmt::Result {
    let hits = governance.rule_hits();
    counter(
        enc,
        "rule_hits",
        "Frames each governance rule matched, over all workers.",
        hits.iter().map(|h| ([("rule", h.rule.as_str())], h.hits)),
    )?;
    let r = governance.reconcile();
    enc.encode_descriptor(
        "reconcile_periods",
        "Governance reconciliation periods completed.",
        None,
        MetricType::Counter,
    )?
    .encode_counter::<NoLabelSet, u64, f64>(&r.periods, None)?;
    enc.encode_descriptor(
        "reconcile_duration_seconds",
        "How long reconciling the last governance period took.",
        None,
        MetricType::Gauge,
    )?
    .encode_gauge(&r.last_duration.as_secs_f64())?;
    enc.encode_descriptor(
        "reconcile_lag_seconds",
        "How late the last governance period was reconciled.",
        None,
        MetricType::Gauge,
    )?
    .encode_gauge(&r.lag.as_secs_f64())?;
    enc.encode_descriptor(
        "reconcile_tracked_limits",
        "Global limits whose split between the workers is tracked (some worker ran near its share lately).",
        None,
        MetricType::Gauge,
    )?
    .encode_gauge(&(r.tracked_limits as i64))?;
    enc.encode_descriptor(
        "reconcile_share_updates",
        "Share updates the reconciler sent to the workers.",
        None,
        MetricType::Counter,
    )?
    .encode_counter::<NoLabelSet, u64, f64>(&r.share_updates, None)?;
    counter(
        enc,
        "governance_safeguards",
        "Times governance ran out of a fixed-size resource, by event: frames charged to an overflow bucket, \
         idle buckets evicted, demand records or share updates lost, listings refused by a full report list.",
        r.safeguards.events().map(|(event, n)| ([("event", event)], n)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::metrics::{GovernanceSnapshot, ReconcileStatus, RuleHits, Safeguards};
    use crate::dataplane::counters::{LocalCounters, PublishedCounters};
    use std::time::Duration;

    fn sample(text: &str, series: &str) -> f64 {
        let line = text.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '));
        line.unwrap_or_else(|| panic!("no {series} in\n{text}")).rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn scrapes_read_the_published_counters_of_every_core() {
        let counters = Arc::new(PublishedCounters::default());
        let mut local = LocalCounters::default();
        local.add(Counter::RxPackets, 64);
        local.add(Counter::PollsBusy, 2);
        local.add(Counter::PollsIdle, 2);
        local.add(Counter::BusyCycles, 2_000_000_000);
        local.drop_packets(DropReason::Truncated, 3);
        local.record_governance(100);
        counters.publish(&local);
        let governance = Arc::new(GovernanceSnapshot::default());
        let exposition = Exposition::new(MetricsSources {
            workers: vec![WorkerView { index: 0, lcore: 3, socket: 0, counters: counters.clone() }],
            ports: Vec::new(),
            mempools: Vec::new(),
            governance: governance.clone(),
            tsc_hz: 1_000_000_000,
            dpdk_version: "DPDK test".into(),
            bridge: None,
        });
        let text = exposition.prometheus_text();
        assert_eq!(sample(&text, "tachyon_packets_processed_total{core=\"3\"}"), 64.0);
        assert!(!text.contains("source=\"bridge\""), "no bridge series without a bridge");
        assert!(!text.contains("tachyon_bridge_"), "no bridge families without a bridge");
        assert_eq!(sample(&text, "tachyon_packets_dropped_total{core=\"3\",reason=\"truncated\"}"), 3.0);
        assert_eq!(sample(&text, "tachyon_packets_dropped_total{core=\"3\",reason=\"tx_full\"}"), 0.0);
        assert_eq!(sample(&text, "tachyon_busy_seconds_total{core=\"3\"}"), 2.0);
        assert_eq!(sample(&text, "tachyon_governance_duration_seconds_count{core=\"3\"}"), 1.0);
        assert_eq!(sample(&text, "tachyon_governance_duration_seconds_sum{core=\"3\"}"), 1e-7);
        // 100 cycles has bit length 7: counted from le = 127 ns on, not below.
        assert_eq!(sample(&text, "tachyon_governance_duration_seconds_bucket{le=\"6.3e-8\",core=\"3\"}"), 0.0);
        assert_eq!(sample(&text, "tachyon_governance_duration_seconds_bucket{le=\"1.27e-7\",core=\"3\"}"), 1.0);
        assert_eq!(sample(&text, "tachyon_rx_queue_depth{core=\"3\"}"), 16.0);
        assert!(text.contains("# TYPE tachyon_rule_hits_total counter"));

        // Between scrapes: 4 more polls brought 8 packets; governance reports.
        local.add(Counter::RxPackets, 8);
        local.add(Counter::PollsIdle, 4);
        counters.publish(&local);
        governance.set_rule_hits(vec![RuleHits { rule: "0".into(), hits: 5 }]);
        governance.set_reconcile(ReconcileStatus {
            periods: 2,
            last_duration: Duration::from_micros(30),
            lag: Duration::from_millis(1),
            tracked_limits: 7,
            share_updates: 40,
            safeguards: Safeguards { evicted: 3, listings_refused: 9, ..Safeguards::default() },
        });
        let text = exposition.prometheus_text();
        assert_eq!(sample(&text, "tachyon_packets_processed_total{core=\"3\"}"), 72.0);
        assert_eq!(sample(&text, "tachyon_rx_queue_depth{core=\"3\"}"), 2.0);
        assert_eq!(sample(&text, "tachyon_rule_hits_total{rule=\"0\"}"), 5.0);
        assert_eq!(sample(&text, "tachyon_reconcile_periods_total"), 2.0);
        assert_eq!(sample(&text, "tachyon_reconcile_duration_seconds"), 3e-5);
        assert_eq!(sample(&text, "tachyon_reconcile_lag_seconds"), 0.001);
        assert_eq!(sample(&text, "tachyon_reconcile_tracked_limits"), 7.0);
        assert_eq!(sample(&text, "tachyon_reconcile_share_updates_total"), 40.0);
        assert_eq!(sample(&text, "tachyon_governance_safeguards_total{event=\"evicted\"}"), 3.0);
        assert_eq!(sample(&text, "tachyon_governance_safeguards_total{event=\"listings_refused\"}"), 9.0);
        assert_eq!(sample(&text, "tachyon_governance_safeguards_total{event=\"shares_lost\"}"), 0.0);
    }
}
