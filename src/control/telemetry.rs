//! Tachyon's own DPDK telemetry commands, beside DPDK's `/ethdev/stats`:
//! `/tachyon/stats` (totals and drops by reason), `/tachyon/workers` (per
//! worker core) and `/tachyon/rules` (rule hits and reconciliation). They
//! read the workers' published counters, like the metrics do.

use crate::bridge::host::BridgeObserver;
use crate::control::governance::{LimitRequests, parse_limit};
use crate::control::metrics::GovernanceSource;
use crate::control::workers::{WorkerView, total};
use crate::dataplane::counters::{Counter, Snapshot};
use crate::dataplane::reason::DropReason;
use crate::dpdk::{Eal, TelemetryError, TelemetryReply, TelemetryValue, register_telemetry_command};
use std::sync::Arc;
use std::time::Duration;

/// Totals over every worker, and drops by PROTOCOL.md reason.
pub fn stats_reply(workers: &[WorkerView]) -> TelemetryReply {
    let t = total(workers);
    let mut reply = counters_of(&t);
    reply.push("workers", TelemetryValue::U64(workers.len() as u64));
    reply.push("dropped", TelemetryValue::U64(t.dropped_total()));
    reply.push("drops", TelemetryValue::Dict(DropReason::ALL.iter().map(|r| (r.name().into(), t.drops(*r))).collect()));
    reply
}

/// One entry per worker, keyed by its lcore ("core"), with its counters and
/// drops (as `drop_<reason>`: DPDK nests one level only).
pub fn workers_reply(workers: &[WorkerView]) -> TelemetryReply {
    let mut reply = TelemetryReply::default();
    for w in workers {
        let s = w.counters.snapshot();
        let mut fields: Vec<(String, u64)> = vec![
            ("worker".into(), w.index as u64),
            ("lcore".into(), w.lcore as u64),
            ("socket".into(), w.socket as u64),
        ];
        fields.extend(Counter::ALL.iter().map(|c| (c.name().to_string(), s.get(*c))));
        fields.push(("dropped".into(), s.dropped_total()));
        fields.extend(DropReason::ALL.iter().map(|r| (format!("drop_{}", r.name()), s.drops(*r))));
        reply.push(w.lcore.to_string(), TelemetryValue::Dict(fields));
    }
    reply
}

/// Hits per governance rule and the last reconciliation; empty until governance is plugged in.
pub fn rules_reply(governance: &dyn GovernanceSource) -> TelemetryReply {
    let mut reply = TelemetryReply::default();
    reply.push("hits", TelemetryValue::Dict(governance.rule_hits().into_iter().map(|h| (h.rule, h.hits)).collect()));
    let r = governance.reconcile();
    reply.push(
        "reconcile",
        TelemetryValue::Dict(vec![
            ("periods".into(), r.periods),
            ("last_duration_ns".into(), r.last_duration.as_nanos() as u64),
            ("lag_ns".into(), r.lag.as_nanos() as u64),
        ]),
    );
    reply
}

/// `/tachyon/limit,topic|sender,ID,RATE,BURST` or `...,ID,clear`: parsed
/// here (a bad parameter is refused at once), applied by the control loop.
/// `{"applied": "topic 7: rate R/s burst B (generation G)"}` or `{"refused": "<reason>"}`.
pub fn limit_reply(requests: &LimitRequests, params: &str, timeout: Duration) -> TelemetryReply {
    let mut reply = TelemetryReply::default();
    match parse_limit(params).and_then(|cmd| requests.request_and_wait(cmd, timeout)) {
        Ok(text) => reply.push("applied", TelemetryValue::Str(ascii(&text))),
        Err(e) => reply.push("refused", TelemetryValue::Str(ascii(&e))),
    }
    reply
}

/// DPDK 22.11 mangles non-ASCII bytes in reply strings into invalid JSON
/// escapes: compile errors say "1–10000", so dashes become '-' and the rest '?'.
fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii() {
                c
            } else if c == '\u{2013}' {
                '-'
            } else {
                '?'
            }
        })
        .collect()
}

fn counters_of(s: &Snapshot) -> TelemetryReply {
    let mut reply = TelemetryReply::default();
    for c in Counter::ALL {
        reply.push(c.name(), TelemetryValue::U64(s.get(c)));
    }
    reply
}

/// Registers the `/tachyon/*` commands. They live as long as the process:
/// what they hold (published counters, the governance source) is shared, never freed under them.
pub fn register(
    eal: &Eal,
    workers: Vec<WorkerView>,
    governance: Arc<dyn GovernanceSource>,
) -> Result<(), TelemetryError> {
    let workers: Arc<[WorkerView]> = workers.into();
    let w = workers.clone();
    register_telemetry_command(
        eal,
        "/tachyon/stats",
        "Tachyon totals over all workers, and drops by reason. No parameters.",
        move |_| stats_reply(&w),
    )?;
    register_telemetry_command(
        eal,
        "/tachyon/workers",
        "Tachyon counters of each worker, keyed by lcore. No parameters.",
        move |_| workers_reply(&workers),
    )?;
    register_telemetry_command(
        eal,
        "/tachyon/rules",
        "Tachyon governance: hits per rule and the last reconciliation. No parameters.",
        move |_| rules_reply(governance.as_ref()),
    )
}

/// `/tachyon/bridge`: the region's path, each shard's ring depth and
/// counters, the bridge message counters over all workers, and the
/// subscribers (DPDK nests one level, so each shard and subscriber is a dict).
pub fn bridge_reply(bridge: &BridgeObserver, workers: &[WorkerView]) -> TelemetryReply {
    let stats = bridge.stats();
    let t = total(workers);
    let mut reply = TelemetryReply::default();
    reply.push("path", TelemetryValue::Str(bridge.path().display().to_string()));
    for c in Counter::ALL.iter().filter(|c| c.name().starts_with("bridge_")) {
        reply.push(c.name(), TelemetryValue::U64(t.get(*c)));
    }
    reply.push(
        "drops",
        TelemetryValue::Dict(DropReason::ALL.iter().map(|r| (r.name().into(), t.bridge_drops(*r))).collect()),
    );
    for (i, s) in stats.shards.iter().enumerate() {
        let fields = vec![
            ("ring_depth_bytes".into(), s.ring_depth_bytes),
            ("ring_depth_msgs".into(), s.in_flight_msgs),
            ("accepted_msgs".into(), s.accepted_msgs),
            ("accepted_batches".into(), s.accepted_batches),
            ("refused_batches".into(), s.refused_batches),
            ("unblocked".into(), s.unblocked),
            ("malformed_msgs".into(), s.malformed_msgs),
            ("malformed_blocks".into(), s.malformed_blocks),
        ];
        reply.push(format!("shard_{i}"), TelemetryValue::Dict(fields));
    }
    reply.push("subscribers_active", TelemetryValue::U64(stats.slots.iter().filter(|s| s.active).count() as u64));
    for (i, s) in stats.slots.iter().enumerate().filter(|(_, s)| s.active) {
        let fields = vec![
            ("pid".into(), s.pid as u64),
            ("all_topics".into(), s.all_topics as u64),
            ("topics".into(), s.topics.len() as u64),
            ("overflow".into(), s.overflow),
        ];
        reply.push(format!("subscriber_{i}"), TelemetryValue::Dict(fields));
    }
    reply
}

/// Registers `/tachyon/bridge`.
pub fn register_bridge(eal: &Eal, bridge: BridgeObserver, workers: Vec<WorkerView>) -> Result<(), TelemetryError> {
    register_telemetry_command(
        eal,
        "/tachyon/bridge",
        "Tachyon bridge: ring depth and counters per shard, bridge message counters, subscribers. No parameters.",
        move |_| bridge_reply(&bridge, &workers),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::metrics::{GovernanceSnapshot, RuleHits};
    use crate::dataplane::counters::{LocalCounters, PublishedCounters};

    fn worker(index: usize, lcore: u32, rx: u64, bad_magic: u64) -> WorkerView {
        let mut l = LocalCounters::default();
        l.add(Counter::RxPackets, rx);
        l.drop_packets(DropReason::BadMagic, bad_magic);
        let counters = Arc::new(PublishedCounters::default());
        counters.publish(&l);
        WorkerView { index, lcore, socket: 0, counters }
    }

    #[test]
    fn stats_sum_workers_and_name_every_reason() {
        let ws = [worker(0, 1, 10, 2), worker(1, 2, 5, 1)];
        let j = stats_reply(&ws).to_json();
        assert_eq!(j["rx_packets"], 15);
        assert_eq!(j["dropped"], 3);
        assert_eq!(j["drops"]["bad_magic"], 3);
        assert_eq!(j["drops"].as_object().unwrap().len(), DropReason::COUNT);
        let j = workers_reply(&ws).to_json();
        assert_eq!(j["2"]["rx_packets"], 5);
        assert_eq!(j["2"]["drop_bad_magic"], 1);
        assert_eq!(j["1"]["worker"], 0);
    }

    #[test]
    fn limit_refuses_bad_parameters_without_asking_the_loop() {
        let r = LimitRequests::default();
        let j = limit_reply(&r, "topic,7,0,1", Duration::from_millis(1)).to_json();
        assert!(j["refused"].as_str().unwrap().contains("at least 1"), "{j}");
        assert_eq!(ascii("1–10000 µs"), "1-10000 ?s");
        let j = limit_reply(&r, "", Duration::from_millis(1)).to_json();
        assert!(j["refused"].as_str().unwrap().contains("no parameters"), "{j}");
        // Nobody answers in this test: a good request times out, refused too.
        let j = limit_reply(&r, "topic,7,1,1", Duration::from_millis(1)).to_json();
        assert!(j["refused"].as_str().unwrap().contains("in time"), "{j}");
    }

    #[test]
    fn rules_are_empty_until_governance_reports() {
        let g = GovernanceSnapshot::default();
        assert_eq!(rules_reply(&g).to_json()["hits"], serde_json::json!({}));
        g.set_rule_hits(vec![RuleHits { rule: "fx".into(), hits: 9 }]);
        assert_eq!(rules_reply(&g).to_json()["hits"]["fx"], 9);
    }
}
