//! The `[governance]` table of the appliance config, as written by the
//! operator. [`GovernanceConfig::compile`](super::compile) validates it and
//! builds the runtime structures.
//!
//! ```toml
//! [governance]
//! reconcile_us = 1000
//! max_topics = 1048576
//! max_senders = 131072
//! default_action = "allow"
//! [governance.profiles.gold]
//! rate = 100000
//! burst = 5000
//! [governance.topic_defaults]
//! rate = 1000000
//! burst = 50000
//! [[governance.topics]]
//! id = 7
//! profile = "gold"
//! [[governance.topics]]
//! ids = "100-199"
//! rate = 5000
//! burst = 500
//! [[governance.rules]]
//! topics = "1000-1999"
//! src = "10.0.0.0/8"
//! action = "route"
//! port = 1
//! next_hop = "02:00:00:00:00:01"
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;

/// Default reconciliation period, microseconds.
pub const DEFAULT_RECONCILE_US: u64 = 1000;
/// Default size of each worker's topic bucket table.
pub const DEFAULT_MAX_TOPICS: u64 = 1 << 20;
/// Default size of each worker's sender bucket table.
pub const DEFAULT_MAX_SENDERS: u64 = 1 << 17;

/// `[governance]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GovernanceConfig {
    /// Reconciliation period, 1000–10000 µs.
    #[serde(default = "default_reconcile_us")]
    pub reconcile_us: u64,
    /// Distinct topic limits each worker can hold at once.
    #[serde(default = "default_max_topics")]
    pub max_topics: u64,
    /// Distinct sender quotas each worker can hold at once.
    #[serde(default = "default_max_senders")]
    pub max_senders: u64,
    /// What happens to a frame no rule matches.
    #[serde(default)]
    pub default_action: DefaultAction,
    /// Named limit profiles.
    #[serde(default)]
    pub profiles: BTreeMap<String, RateBurst>,
    /// Limit of every topic not named in `topics`; absent = unlimited.
    #[serde(default)]
    pub topic_defaults: Option<LimitSpec>,
    #[serde(default)]
    pub topics: Vec<IdLimit>,
    /// Quota of every sender not named in `senders`; absent = unlimited.
    #[serde(default)]
    pub sender_defaults: Option<LimitSpec>,
    #[serde(default)]
    pub senders: Vec<IdLimit>,
    /// Ordered; the first match decides.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

fn default_reconcile_us() -> u64 {
    DEFAULT_RECONCILE_US
}

fn default_max_topics() -> u64 {
    DEFAULT_MAX_TOPICS
}

fn default_max_senders() -> u64 {
    DEFAULT_MAX_SENDERS
}

impl Default for GovernanceConfig {
    /// Pass-through: no rules, no limits, everything allowed.
    fn default() -> Self {
        GovernanceConfig {
            reconcile_us: DEFAULT_RECONCILE_US,
            max_topics: DEFAULT_MAX_TOPICS,
            max_senders: DEFAULT_MAX_SENDERS,
            default_action: DefaultAction::Allow,
            profiles: BTreeMap::new(),
            topic_defaults: None,
            topics: Vec::new(),
            sender_defaults: None,
            senders: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// `default_action`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    #[default]
    Allow,
    Drop,
}

/// A named profile: `rate` msgs/s, `burst` msgs.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateBurst {
    pub rate: u64,
    pub burst: u64,
}

/// A limit given either by `profile` name or inline by `rate` and `burst`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    pub profile: Option<String>,
    pub rate: Option<u64>,
    pub burst: Option<u64>,
}

/// One `[[governance.topics]]` or `[[governance.senders]]` entry: an `id`
/// or an inclusive `ids = "FIRST-LAST"` range, and its limit. Every id gets
/// its own bucket of that limit.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdLimit {
    pub id: Option<u32>,
    pub ids: Option<String>,
    pub profile: Option<String>,
    pub rate: Option<u64>,
    pub burst: Option<u64>,
}

/// One `[[governance.rules]]` entry. Absent match fields match anything.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub topic: Option<u32>,
    /// Inclusive `"FIRST-LAST"`.
    pub topics: Option<String>,
    pub sender: Option<u32>,
    /// IPv4 prefix `"A.B.C.D/LEN"`.
    pub src: Option<String>,
    pub dst_port: Option<u16>,
    pub action: RuleActionKind,
    /// Egress port (`route`).
    pub port: Option<u16>,
    /// Next-hop MAC (`route`).
    pub next_hop: Option<String>,
    /// Named profile (`limit`).
    pub profile: Option<String>,
}

/// `action` of a rule.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RuleActionKind {
    Allow,
    Drop,
    Route,
    Limit,
}
