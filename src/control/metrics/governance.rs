//! What governance shows to metrics and telemetry. The governance module
//! plugs in by implementing [`GovernanceSource`], or by feeding a
//! [`GovernanceSnapshot`] from the control loop; until then every family is
//! present and empty (rules) or zero (reconciliation).

use std::sync::Mutex;
use std::time::Duration;

/// Hits of one rule, summed over workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleHits {
    /// The rule's name, or its index in the rule list when it has none.
    pub rule: String,
    pub hits: u64,
}

/// The reconciler's latest period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReconcileStatus {
    /// Periods reconciled so far.
    pub periods: u64,
    /// How long reconciling the last period took.
    pub last_duration: Duration,
    /// How far behind its deadline the last period was reconciled.
    pub lag: Duration,
    /// Limits whose split between the workers the reconciler keeps (those
    /// some worker ran near its share within about a second).
    pub tracked_limits: u64,
    /// Share updates sent to the workers so far.
    pub share_updates: u64,
    /// The workers' safeguards, summed over workers.
    pub safeguards: Safeguards,
}

/// What the workers' governance did when a fixed-size resource ran out
/// (docs/governance.md, "Degrading safely"), summed over workers as they
/// published it at their last period change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Safeguards {
    /// Frames charged to a profile's overflow bucket (bucket table full).
    pub overflow_frames: u64,
    /// Idle buckets removed to make room.
    pub evicted: u64,
    /// Demand records not sent within their period.
    pub reports_lost: u64,
    /// Share updates for ids a full table had no room for.
    pub shares_lost: u64,
    /// Frames whose bucket was due on a full report list.
    pub listings_refused: u64,
}

impl Safeguards {
    /// (event label, count), in a fixed order.
    pub fn events(&self) -> [(&'static str, u64); 5] {
        [
            ("overflow_frames", self.overflow_frames),
            ("evicted", self.evicted),
            ("reports_lost", self.reports_lost),
            ("shares_lost", self.shares_lost),
            ("listings_refused", self.listings_refused),
        ]
    }
}

/// Read at scrape time, on the metrics and telemetry threads: implementations
/// must not touch worker-owned state (read what the workers publish).
pub trait GovernanceSource: Send + Sync {
    fn rule_hits(&self) -> Vec<RuleHits>;
    fn reconcile(&self) -> ReconcileStatus;
}

/// No governance yet: no rules, nothing reconciled.
pub struct NoGovernance;

impl GovernanceSource for NoGovernance {
    fn rule_hits(&self) -> Vec<RuleHits> {
        Vec::new()
    }

    fn reconcile(&self) -> ReconcileStatus {
        ReconcileStatus::default()
    }
}

/// The latest governance figures, written by the control loop after each
/// reconciliation and read by scrapes. The lock is control-side only: no
/// worker ever takes it.
#[derive(Default)]
pub struct GovernanceSnapshot {
    latest: Mutex<(Vec<RuleHits>, ReconcileStatus)>,
}

impl GovernanceSnapshot {
    pub fn set_rule_hits(&self, hits: Vec<RuleHits>) {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).0 = hits;
    }

    pub fn set_reconcile(&self, status: ReconcileStatus) {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).1 = status;
    }
}

impl GovernanceSource for GovernanceSnapshot {
    fn rule_hits(&self) -> Vec<RuleHits> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    fn reconcile(&self) -> ReconcileStatus {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}
