//! The compiled governance config: immutable, shared read-only by every
//! worker and the control side (publish it behind an `Arc` via RCU).

use super::limits::{IdProfiles, Profile, ProfileId};
use super::rules::RuleSet;

/// Compiled rules, limit profiles and id → profile mappings.
#[derive(Debug)]
pub struct Tables {
    /// Unique per compile: the reconciler resets its per-id state when it
    /// changes, shards revalidate each bucket (profile indices may mean
    /// something else then).
    pub(crate) generation: u64,
    pub(crate) tsc_hz: u64,
    pub(crate) reconcile_ticks: u64,
    pub(crate) max_topics: usize,
    pub(crate) max_senders: usize,
    pub(crate) profiles: Vec<Profile>,
    pub(crate) topics: IdProfiles,
    pub(crate) senders: IdProfiles,
    pub(crate) rules: RuleSet,
    pub(crate) default_drop: bool,
    /// Whether any frame can meet a topic limit (config or `limit` rule).
    pub(crate) topic_limits: bool,
    pub(crate) sender_limits: bool,
    /// Whether a dimension that limits some ids leaves others unlimited
    /// (no default profile): then each frame's ids are screened before
    /// their buckets are looked up.
    pub(crate) some_ids_unlimited: bool,
}

impl Tables {
    /// Identifies this compile; a new `Tables` always has a new generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// TSC ticks per second the limits were converted for.
    pub fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    /// Reconciliation period in TSC ticks.
    pub fn reconcile_ticks(&self) -> u64 {
        self.reconcile_ticks
    }

    /// Number of rules (length of the per-rule hit counters).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Bucket table sizes (topics, senders) each worker needs.
    pub fn capacity(&self) -> (usize, usize) {
        (self.max_topics, self.max_senders)
    }

    /// Name, rate (msgs/s) and burst (msgs) of every profile, in index
    /// order. Inline limits get names like `governance.topics[3]`.
    pub fn profiles(&self) -> impl Iterator<Item = (&str, u64, u64)> {
        self.profiles.iter().map(|p| (p.name.as_str(), p.rate, p.burst))
    }

    /// Whether this config governs nothing (no rules, no limits, default
    /// allow): `decide` then costs a few well-predicted branches.
    pub fn is_pass_through(&self) -> bool {
        self.rules.is_empty() && !self.default_drop && !self.topic_limits && !self.sender_limits
    }

    pub(crate) fn profile(&self, id: ProfileId) -> &Profile {
        &self.profiles[usize::from(id)]
    }
}
