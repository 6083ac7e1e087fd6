//! Governance: FastRules, per-topic token buckets and per-sender quotas,
//! enforced per worker and reconciled globally by the control lcore.
//!
//! - [`Tables`]: the compiled, immutable config (rules, profiles, id →
//!   profile mapping). Shared read-only by all workers; a reload publishes
//!   a new one.
//! - [`Shard`]: one worker's mutable state (local buckets, counters). Only
//!   its worker touches it; [`Shard::decide`] runs per frame and
//!   [`Shard::begin_burst`] once per RX burst.
//! - [`Reconciler`]: the control side. [`Reconciler::poll`] advances the
//!   reconciliation period, gathers the workers' demand and hands each
//!   worker its share of every global limit.
//!
//! The algorithm, the exchange protocol and the worst-case overshoot are in
//! `docs/governance.md`.

mod allocate;
mod bucket;
mod buckets;
mod compile;
mod config;
mod counters;
mod error;
mod exchange;
mod generations;
mod hash;
mod key;
mod limits;
mod reconciler;
mod rules;
mod shard;
mod syntax;
mod table;
mod tables;

#[cfg(test)]
mod sim_tests;

pub use bucket::MAX_BURST;
pub use config::{DefaultAction, GovernanceConfig, IdLimit, LimitSpec, RateBurst, RuleActionKind, RuleConfig};
pub use counters::ShardCounters;
pub use error::GovernanceConfigError;
pub use reconciler::{Reconciler, ReconcilerStats};
pub use rules::MAX_RULES;
pub use shard::Shard;
pub use tables::Tables;

/// Most workers one reconciler serves (holder sets are 64-bit masks).
pub const MAX_WORKERS: usize = 64;

/// What governance needs to know about one parsed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FrameKey {
    pub topic: u32,
    pub sender: u32,
    pub msg_count: u16,
    /// IPv4 source address, host order.
    pub src_ip: u32,
    pub dst_port: u16,
}

/// Where a `route` rule sends a frame: egress port and next-hop MAC, the
/// rule's verdict. The worker turns it into a [`crate::dataplane::routes::Hop`]
/// in place of the ingress port's default one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub port: u16,
    pub next_hop: [u8; 6],
}

/// The decision for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward; None = the ingress port's default route.
    Forward(Option<Route>),
    Drop(crate::dataplane::reason::DropReason),
}
