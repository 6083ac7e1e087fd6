//! One worker's governance state: its local buckets, its share of every
//! global limit, its demand bookkeeping and its counters. Only the owning
//! worker touches a `Shard`; it talks to the control side through its
//! [`WorkerLink`] at most once per burst.
//!
//! Demand reporting: within a period, a bucket goes on the report list when
//! its demand reaches half of what its default share allows per period, or
//! at its first frame if it holds a reconciled (non-default) share. From
//! then on the list entry counts its demand, so closing a period is a swap
//! of two lists and reporting is a sequential copy, never a walk over the
//! buckets. Ids far below their limit on every worker cost the control
//! side nothing: with every worker on the default share their sum is the
//! global limit anyway.
//!
//! Reload: buckets stay; each is revalidated at its first touch after the
//! reload (see `generations.rs`), so an unchanged limit keeps its tokens and
//! its reconciled share. Bigger tables come ready-made from the control
//! lcore (see `buckets.rs`); the worker never allocates.
//!
//! Expiry: only when a table is 7/8 full does each burst sweep a few slots,
//! removing buckets idle for a whole period that a fresh bucket would
//! reproduce exactly (default share, full).

use super::bucket::{FRAC_ONE, FixedLimit, RATE_SHIFT, TokenBucket};
use super::buckets::list_capacity;
use super::exchange::{BATCH_LEN, Batch, Epoch, Report, ShareUpdate, WorkerLink};
use super::generations::Generations;
use super::key::{
    Dimension, dimension, id_key, id_key_with, imposed_bits, imposed_profile, overflow_key, overflow_profile,
};
use super::limits::{IdProfiles, ProfileId};
use super::rules::{MAX_RULES, RuleAction};
use super::table::{BucketTable, Entry, MAX_PROFILES, NOT_LISTED};
use super::tables::Tables;
use super::{FrameKey, ShardCounters, Verdict};
use crate::dataplane::reason::DropReason;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Demand records sent per burst at most.
const REPORTS_PER_BURST: usize = 4 * BATCH_LEN;
/// Share updates applied per burst at most.
const SHARES_PER_BURST: usize = 4 * BATCH_LEN;
/// Slots a table under pressure sweeps per burst.
const SWEEP_PER_BURST: usize = 256;
/// Frames `decide_burst` plans (rules run, buckets prefetched) ahead of
/// charging them: enough misses in flight to hide memory latency, few
/// enough that the first prefetched lines are still in L1 when charged.
const PLAN_LEN: usize = 32;

/// One monomorphised copy of `Shard::decide_chunks`.
type DecideChunks = fn(&mut Shard, &Tables, &[FrameKey], u64, &mut [Verdict]) -> Tally;

/// A frame the rules let through, between the two passes of
/// `decide_burst`: everything its charge needs, so that pass reads
/// neither the frame keys nor the rules again.
#[derive(Clone, Copy)]
struct Plan {
    /// Bucket keys (the topic key carries a `limit` rule's profile), or
    /// NO_BUCKET for an id no limit applies to.
    topic_key: u64,
    sender_key: u64,
    /// Home slots of the two keys in their tables.
    topic_home: u32,
    sender_home: u32,
    /// Index of the frame in its chunk of the burst.
    frame: u16,
    msgs: u16,
    /// The `route` rule that matched, or NO_ROUTE (a u16 rather than the
    /// route itself: less to copy per frame).
    route_rule: u16,
}

/// `Plan::route_rule` when the frame takes its ingress port's default route.
const NO_ROUTE: u16 = u16::MAX;

/// A plan's bucket key for an unlimited id: no bucket to look up. All bits
/// set, which no id key or overflow key has.
const NO_BUCKET: u64 = u64::MAX;

impl Plan {
    const EMPTY: Plan =
        Plan { topic_key: 0, sender_key: 0, topic_home: 0, sender_home: 0, frame: 0, msgs: 0, route_rule: NO_ROUTE };
}

/// Per-frame counts of one `decide_burst`, kept in registers and added to
/// the shard's counters once per burst.
#[derive(Default)]
struct Tally {
    admitted_frames: u64,
    admitted_msgs: u64,
    rule_drop: u64,
    topic_limited: u64,
    sender_limited: u64,
    default_action: u64,
    /// Admitted frames a `route` rule sends elsewhere than the default
    /// route: not added to any counter, only told to the caller.
    routed: u64,
}

impl Tally {
    fn add_to(&self, counters: &mut ShardCounters) {
        counters.admitted_frames += self.admitted_frames;
        counters.admitted_msgs += self.admitted_msgs;
        counters.rule_drop += self.rule_drop;
        counters.topic_limited += self.topic_limited;
        counters.sender_limited += self.sender_limited;
        counters.default_action += self.default_action;
    }
}

/// What the rules decided for a frame they let through.
#[derive(Clone, Copy)]
struct Ruled {
    /// See `Plan::route_rule`.
    route_rule: u16,
    /// `imposed_bits` of the profile a `limit` rule imposed, else 0.
    imposed: u64,
}

impl Ruled {
    /// Allowed as it is: default route, the id's own limits.
    const ALLOW: Ruled = Ruled { route_rule: NO_ROUTE, imposed: 0 };
}

#[inline(always)]
fn rule_drop(tally: &mut Tally) -> Verdict {
    tally.rule_drop += 1;
    Verdict::Drop(DropReason::RuleDrop)
}

/// A bucket `offer` found: its index and whether it covers the frame.
struct Offered {
    index: usize,
    covers: bool,
}

/// A new bucket for `key` in the vacant slot `vacant` (or, the table being
/// full, the overflow bucket of its profile); None when the id has no limit.
#[inline(never)]
fn insert_fresh(
    table: &mut BucketTable,
    ids: &IdProfiles,
    defaults: &Defaults,
    counters: &mut ShardCounters,
    (key, vacant): (u64, usize),
    now: u64,
) -> Option<usize> {
    // The profile a `limit` rule imposed travels in the key.
    let profile = imposed_profile(key).or_else(|| ids.profile_of(key as u32))?;
    let fresh = defaults.fresh_entry(key, profile, now);
    match table.insert_at(vacant, fresh) {
        Some(i) => Some(i),
        None => {
            counters.overflow_frames += 1;
            Some(table.overflow_index(profile))
        }
    }
}

/// What a bucket starts from under the current tables: per profile, this
/// worker's default share of its limit; and the reconciliation period,
/// which with the limit a bucket holds sets its listing threshold.
pub(super) struct Defaults {
    /// Indexed by profile; its length is the profile count.
    pub(super) limits: Vec<FixedLimit>,
    period_ticks: u64,
}

impl Defaults {
    /// The default share of `profile`.
    pub(super) fn limit(&self, profile: ProfileId) -> FixedLimit {
        self.limits[usize::from(profile)]
    }

    /// A bucket for `key` under `profile` at the default share, full at
    /// `now`, not yet touched.
    fn fresh_entry(&self, key: u64, profile: ProfileId, now: u64) -> Entry {
        let limit = self.limit(profile);
        Entry {
            key,
            bucket: TokenBucket::full(limit, now),
            profile,
            listing_threshold: listing_threshold(limit, self.period_ticks),
            listed: NOT_LISTED,
            ..Entry::default()
        }
    }

    /// Gives `entry` `limit` from `now` on (see [`TokenBucket::set_limit`]),
    /// with the listing threshold that goes with it.
    pub(super) fn set_limit(&self, entry: &mut Entry, limit: FixedLimit, now: u64) {
        entry.bucket.set_limit(limit, now);
        self.relist(entry);
    }

    /// Sets `entry`'s listing threshold for the limit it holds, for when
    /// the period changed but the limit did not.
    pub(super) fn relist(&self, entry: &mut Entry) {
        entry.listing_threshold = listing_threshold(entry.bucket.limit(), self.period_ticks);
    }
}

/// Demand per period that lists a bucket holding `limit`: half of what the
/// limit earns in a period, at least one message.
#[inline(always)]
fn listing_threshold(limit: FixedLimit, period_ticks: u64) -> u32 {
    // In 64 bits whenever the product fits (as the refill does): then
    // the half is below 2^15, no clamp at the top needed.
    if let Some(earned) = limit.rate.checked_mul(period_ticks) {
        return ((earned >> RATE_SHIFT) / 2).max(1) as u32;
    }
    let per_period = (u128::from(limit.rate) * u128::from(period_ticks)) >> RATE_SHIFT;
    (per_period / 2).clamp(1, u128::from(u32::MAX)) as u32
}

/// Starts the demand of `entry` for this period at the frame of `msgs`
/// that touches it first: what `record_demand` does after a reset, minus
/// the tests that a reset answers (no list record yet, a sum that cannot
/// saturate). Most touches are first touches: with many ids, an id sees
/// one frame or none per period.
#[inline(always)]
fn start_demand(entry: &mut Entry, touched: &mut Vec<Report>, msgs: u64, covers: bool, refused: &mut u64) {
    entry.demand = msgs as u32;
    entry.listed = NOT_LISTED;
    list_if_due(entry, touched, msgs as u16, covers, refused);
}

/// Adds `msgs` to the demand of `entry` this period, on its report-list
/// record once it has one. `covers`: whether the bucket covers the frame.
/// Counts the frame in `refused` when the entry is due on a full list.
#[inline(always)]
fn record_demand(entry: &mut Entry, touched: &mut Vec<Report>, msgs: u64, covers: bool, refused: &mut u64) {
    let frame = msgs as u16;
    let msgs = msgs as u32;
    if let Some(report) = touched.get_mut(entry.listed as usize) {
        report.demand = report.demand.saturating_add(msgs);
        report.max_frame = report.max_frame.max(frame);
        return;
    }
    entry.demand = entry.demand.saturating_add(msgs);
    list_if_due(entry, touched, frame, covers, refused);
}

/// Puts `entry`, not listed yet, on the report list with the demand it has
/// so far if that is due, or, the list being full, counts the frame (of
/// `frame` messages) in `refused`.
#[inline(always)]
fn list_if_due(entry: &mut Entry, touched: &mut Vec<Report>, frame: u16, covers: bool, refused: &mut u64) {
    // Listed when its demand nears the share it holds (the default one, or
    // what the reconciler gave it), or when it is about to refuse this
    // frame (so a worker whose burst share is too small for its frames
    // gets a bigger one). A reconciled share used far below its size is
    // not reported: the reconciler then gives it back, and releases the
    // limit once nobody reports it, instead of moving the split of an idle
    // limit every period. A refusal lists it whatever its demand.
    if covers && entry.demand < entry.listing_threshold {
        return;
    }
    if touched.len() < touched.capacity() {
        entry.listed = touched.len() as u32;
        touched.push(Report { key: entry.key, demand: entry.demand, profile: entry.profile, max_frame: frame });
    } else {
        *refused += 1;
    }
}

/// The stamp after `stamp`: a new period, or new tables (never 0, which
/// marks "not touched yet").
fn next_stamp(stamp: u32) -> u32 {
    stamp.checked_add(1).unwrap_or(1)
}

/// One worker's mutable governance state.
pub struct Shard {
    worker: usize,
    /// With a single worker the local bucket is the global one: nothing
    /// to reconcile, nothing to report.
    reconciled: bool,
    /// This worker's share of a limit nobody has reconciled yet.
    default_frac: u32,
    generation: u64,
    rule_count: usize,
    /// Per profile, the default share; and the reconciliation period.
    defaults: Defaults,
    /// Period being counted. Its stamp changes with each period and each
    /// adopted generation; `previous_stamp` is the one before.
    epoch: u64,
    stamp: u32,
    previous_stamp: u32,
    /// The limits the buckets' stamps were validated under.
    generations: Generations,
    topics: BucketTable,
    senders: BucketTable,
    /// Report list of the current period.
    touched: Vec<Report>,
    /// Report list of the closed period, being sent from `report_pos`.
    reporting: Vec<Report>,
    report_pos: usize,
    /// Period `reporting` belongs to, until its last record is sent.
    report_epoch: Option<u64>,
    report_batch: Option<Batch<Report>>,
    share_batch: Option<Batch<ShareUpdate>>,
    share_pos: usize,
    sweep_cursor: [usize; 2],
    /// Indexed by rule modulo MAX_RULES: no bounds check per frame.
    rule_hits: Box<[u64; MAX_RULES]>,
    counters: ShardCounters,
    /// Scratch of `decide_burst` (here, not on the stack, so that no
    /// burst pays for initialising it).
    plans: [Plan; PLAN_LEN],
    link: Arc<WorkerLink>,
    epoch_cell: Arc<Epoch>,
}

impl Shard {
    pub(crate) fn new(
        worker: usize,
        n_workers: usize,
        tables: &Tables,
        link: Arc<WorkerLink>,
        epoch_cell: Arc<Epoch>,
        node: Option<u32>,
    ) -> Self {
        let epoch = epoch_cell.load();
        let list = || Vec::with_capacity(list_capacity(tables.max_topics, tables.max_senders));
        let mut shard = Shard {
            worker,
            reconciled: n_workers > 1,
            default_frac: FRAC_ONE / n_workers as u32,
            generation: 0,
            rule_count: 0,
            defaults: Defaults { limits: Vec::with_capacity(MAX_PROFILES), period_ticks: 0 },
            epoch,
            stamp: 1,
            previous_stamp: 1,
            generations: Generations::new(1),
            topics: BucketTable::try_with_limit(tables.max_topics, node).expect("memory for the topic table"),
            senders: BucketTable::try_with_limit(tables.max_senders, node).expect("memory for the sender table"),
            touched: list(),
            reporting: list(),
            report_pos: 0,
            report_epoch: None,
            report_batch: None,
            share_batch: None,
            share_pos: 0,
            sweep_cursor: [0; 2],
            rule_hits: Box::new([0; MAX_RULES]),
            counters: ShardCounters::default(),
            plans: [Plan::EMPTY; PLAN_LEN],
            link,
            epoch_cell,
        };
        shard.adopt(tables, 0);
        shard
    }

    /// Index of the worker this shard belongs to.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// This shard's counters (the control side reads a per-period copy).
    pub fn counters(&self) -> &ShardCounters {
        &self.counters
    }

    /// Hits per rule of the current tables, this shard only.
    pub fn rule_hits(&self) -> &[u64] {
        &self.rule_hits[..self.rule_count]
    }

    /// Whether the bucket tables are big enough for `tables`; if not, the
    /// control lcore hands bigger ones over (see `buckets.rs`).
    pub fn fits(&self, tables: &Tables) -> bool {
        self.topics.max_limit() >= tables.max_topics && self.senders.max_limit() >= tables.max_senders
    }

    /// Called once at the start of each burst, including empty polls:
    /// notices a new period (and reports the last one), applies shares the
    /// control side published, and expires idle buckets, each bounded.
    pub fn begin_burst(&mut self, tables: &Tables, now_tsc: u64) {
        if tables.generation != self.generation {
            self.adopt(tables, now_tsc);
        }
        let epoch = self.epoch_cell.load();
        if epoch != self.epoch {
            self.close_period(epoch);
        }
        if self.report_epoch.is_some() {
            self.send_reports();
        }
        self.apply_shares(tables, now_tsc);
        self.expire_idle(tables, now_tsc);
    }

    /// Rules, then topic bucket, then sender quota. Charges `msg_count` to
    /// both buckets only if both admit the frame.
    #[inline]
    pub fn decide(&mut self, tables: &Tables, key: &FrameKey, now_tsc: u64) -> Verdict {
        let mut verdict = [Verdict::Forward(None)];
        self.decide_burst(tables, std::slice::from_ref(key), now_tsc, &mut verdict);
        verdict[0]
    }

    /// Decides a whole burst: `verdicts[i]` for `keys[i]`, exactly as
    /// `decide` would one by one (extra verdicts are left alone). Two
    /// passes, the `rte_hash_lookup_bulk` pattern: the first runs the
    /// rules, hashes each frame's keys and prefetches both buckets; the
    /// second charges them, by then (mostly) in cache. Rules never depend
    /// on bucket state, so running them first changes no outcome.
    ///
    /// Returns whether every frame was admitted and no `route` rule matched
    /// it (so every verdict is `Forward(None)`): then the caller can send
    /// the burst whole by the default route without reading the verdicts.
    pub fn decide_burst(&mut self, tables: &Tables, keys: &[FrameKey], now_tsc: u64, verdicts: &mut [Verdict]) -> bool {
        let n = keys.len().min(verdicts.len());
        let (keys, verdicts) = (&keys[..n], &mut verdicts[..n]);
        if tables.is_pass_through() {
            verdicts.fill(Verdict::Forward(None));
            self.admit_ungoverned(n as u64, keys.iter().map(|k| u64::from(k.msg_count)).sum());
            return true;
        }
        // One copy of the loop per kind of work: the per-frame tests of
        // what the tables limit, of whether some ids go unlimited and of
        // the worker count compile away.
        let run = match (tables.topic_limits, tables.sender_limits) {
            (true, true) => Self::decide_chunks_for::<true, true>(tables, self.reconciled),
            (true, false) => Self::decide_chunks_for::<true, false>(tables, self.reconciled),
            (false, true) => Self::decide_chunks_for::<false, true>(tables, self.reconciled),
            // Rules only: no bucket, no demand.
            (false, false) => Self::decide_chunks::<false, false, false, false>,
        };
        let tally = run(self, tables, keys, now_tsc, verdicts);
        tally.add_to(&mut self.counters);
        tally.admitted_frames == n as u64 && tally.routed == 0
    }

    /// The copy of `decide_chunks` for tables that limit topics if TOPICS
    /// and senders if SENDERS.
    fn decide_chunks_for<const TOPICS: bool, const SENDERS: bool>(tables: &Tables, reconciled: bool) -> DecideChunks {
        match (tables.some_ids_unlimited, reconciled) {
            (false, false) => Self::decide_chunks::<TOPICS, SENDERS, false, false>,
            (false, true) => Self::decide_chunks::<TOPICS, SENDERS, true, false>,
            (true, false) => Self::decide_chunks::<TOPICS, SENDERS, false, true>,
            (true, true) => Self::decide_chunks::<TOPICS, SENDERS, true, true>,
        }
    }

    /// `decide_burst` for tables that limit topics if TOPICS and senders if
    /// SENDERS, on a shard that reports demand if RECONCILED; if SCREENED,
    /// some ids of a limited dimension have no limit, and their frames
    /// skip that dimension's bucket.
    #[inline(always)]
    fn decide_chunks<const TOPICS: bool, const SENDERS: bool, const RECONCILED: bool, const SCREENED: bool>(
        &mut self,
        tables: &Tables,
        keys: &[FrameKey],
        now_tsc: u64,
        verdicts: &mut [Verdict],
    ) -> Tally {
        // Local, so that the counts stay in registers.
        let mut tally = Tally::default();
        let tally = &mut tally;
        for (keys, verdicts) in keys.chunks(PLAN_LEN).zip(verdicts.chunks_mut(PLAN_LEN)) {
            // Only the frames the rules let through get a plan.
            let mut planned = 0;
            for (frame, (key, verdict)) in keys.iter().zip(verdicts.iter_mut()).enumerate() {
                match self.apply_rules(tables, key, tally) {
                    Ok(ruled) => {
                        self.plan::<TOPICS, SENDERS, SCREENED>(tables, planned % PLAN_LEN, key, frame, ruled);
                        planned += 1;
                    }
                    Err(decided) => *verdict = decided,
                }
            }
            for p in 0..planned {
                let verdict =
                    self.charge::<TOPICS, SENDERS, RECONCILED, SCREENED>(tables, p % PLAN_LEN, now_tsc, tally);
                if let Some(slot) = verdicts.get_mut(usize::from(self.plans[p % PLAN_LEN].frame)) {
                    *slot = verdict;
                }
            }
        }
        std::mem::take(tally)
    }

    /// The first matching rule's verdict if it decides the frame outright
    /// (drop), else the route to keep and the profile a `limit` rule
    /// imposes.
    #[inline(always)]
    fn apply_rules(&mut self, tables: &Tables, key: &FrameKey, tally: &mut Tally) -> Result<Ruled, Verdict> {
        match tables.rules.first_match(key) {
            Some(rule) => {
                self.rule_hits[rule % MAX_RULES] += 1;
                match tables.rules.action(rule) {
                    RuleAction::Allow => Ok(Ruled::ALLOW),
                    RuleAction::Drop => Err(rule_drop(tally)),
                    RuleAction::Route(_) => Ok(Ruled { route_rule: rule as u16, imposed: 0 }),
                    RuleAction::Limit(profile) => Ok(Ruled { route_rule: NO_ROUTE, imposed: imposed_bits(profile) }),
                }
            }
            None => {
                tally.default_action += 1;
                if tables.default_drop {
                    return Err(rule_drop(tally));
                }
                Ok(Ruled::ALLOW)
            }
        }
    }

    /// Under tables that govern nothing ([`Tables::is_pass_through`]) every
    /// frame is admitted: counts `frames` frames of `msgs` messages as
    /// `decide` would, for a caller that skips building their keys.
    #[inline]
    pub fn admit_ungoverned(&mut self, frames: u64, msgs: u64) {
        self.counters.default_action += frames;
        self.counters.admitted_frames += frames;
        self.counters.admitted_msgs += msgs;
    }

    /// Writes plan `i`: what charging frame `frame` (`key`) needs, its
    /// bucket keys hashed; and starts loading its two buckets. Each field
    /// is stored as soon as it is known: fewer values live at once. If
    /// SCREENED, an id without a limit gets NO_BUCKET instead: no hash, no
    /// probe of a table that cannot hold it.
    #[inline(always)]
    fn plan<const TOPICS: bool, const SENDERS: bool, const SCREENED: bool>(
        &mut self,
        tables: &Tables,
        i: usize,
        key: &FrameKey,
        frame: usize,
        ruled: Ruled,
    ) {
        let plan = &mut self.plans[i];
        plan.frame = frame as u16;
        plan.msgs = key.msg_count;
        plan.route_rule = ruled.route_rule;
        // A `limit` rule's profile limits the frame whatever its topic.
        if TOPICS && (!SCREENED || ruled.imposed != 0 || tables.topics.limits(key.topic)) {
            plan.topic_key = id_key_with(Dimension::Topic, key.topic, ruled.imposed);
            let home = self.topics.home(plan.topic_key);
            plan.topic_home = home as u32;
            self.topics.prefetch(home);
        } else if TOPICS {
            plan.topic_key = NO_BUCKET;
        }
        if SENDERS && (!SCREENED || tables.senders.limits(key.sender)) {
            plan.sender_key = id_key_with(Dimension::Sender, key.sender, 0);
            let home = self.senders.home(plan.sender_key);
            plan.sender_home = home as u32;
            self.senders.prefetch(home);
        } else if SENDERS {
            plan.sender_key = NO_BUCKET;
        }
    }

    /// Topic bucket, then sender quota, for the frame of plan `p`, which
    /// the rules let through. The plan's fields are read where they are
    /// used rather than copied up front: fewer values to keep across the
    /// topic's offer.
    #[inline(always)]
    fn charge<const TOPICS: bool, const SENDERS: bool, const RECONCILED: bool, const SCREENED: bool>(
        &mut self,
        tables: &Tables,
        p: usize,
        now_tsc: u64,
        tally: &mut Tally,
    ) -> Verdict {
        let msgs = u64::from(self.plans[p].msgs);
        // Each bucket's tokens are taken as soon as it covers the frame;
        // should the sender's quota then refuse it, the topic's go back
        // (rare, and exact: nothing refills the topic bucket in between).
        let Plan { topic_key, topic_home, .. } = self.plans[p];
        let topic = if TOPICS && !(SCREENED && topic_key == NO_BUCKET) {
            self.offer::<RECONCILED>(tables, Dimension::Topic, topic_key, topic_home, msgs, now_tsc)
        } else {
            None
        };
        if let Some(offered) = &topic
            && !offered.covers
        {
            tally.topic_limited += 1;
            return Verdict::Drop(DropReason::TopicLimited);
        }
        if SENDERS
            && let Plan { sender_key, sender_home, .. } = self.plans[p]
            && !(SCREENED && sender_key == NO_BUCKET)
            && let Some(offered) =
                self.offer::<RECONCILED>(tables, Dimension::Sender, sender_key, sender_home, msgs, now_tsc)
            && !offered.covers
        {
            if let Some(offered) = topic {
                self.topics.entry_mut(offered.index).bucket.give_back(msgs);
            }
            tally.sender_limited += 1;
            return Verdict::Drop(DropReason::SenderLimited);
        }
        tally.admitted_frames += 1;
        tally.admitted_msgs += msgs;
        match self.plans[p].route_rule {
            NO_ROUTE => Verdict::Forward(None),
            rule => {
                tally.routed += 1;
                Verdict::Forward(tables.rules.route(usize::from(rule)))
            }
        }
    }

    /// Finds (or creates) the bucket `key` (whose home slot is `home`) names
    /// in `dim`, refills it, records `msgs` of demand and tells whether it
    /// covers them, taking them if it does. None when the id is unlimited.
    #[inline(always)]
    fn offer<const RECONCILED: bool>(
        &mut self,
        tables: &Tables,
        dim: Dimension,
        key: u64,
        home: u32,
        msgs: u64,
        now: u64,
    ) -> Option<Offered> {
        let (table, ids) = match dim {
            Dimension::Topic => (&mut self.topics, &tables.topics),
            Dimension::Sender => (&mut self.senders, &tables.senders),
        };
        let (index, entry) = match table.find_from(key, home as usize) {
            Ok(i) => (i, table.entry_mut(i)),
            Err(vacant) => {
                let i = insert_fresh(table, ids, &self.defaults, &mut self.counters, (key, vacant), now)?;
                (i, table.entry_mut(i))
            }
        };
        entry.bucket.refill(now);
        let first_touch = entry.stamp != self.stamp;
        if first_touch {
            // First touch this period (the stamp also tells expiry the
            // bucket is in use); if the tables changed since the last one,
            // the id's profile is looked up once more.
            if !self.generations.is_current(self.stamp, entry.stamp) {
                let profile = imposed_profile(key).or_else(|| ids.profile_of(key as u32));
                if !self.generations.revalidate(entry, self.stamp, profile, &self.defaults, now) {
                    table.remove(index);
                    return None;
                }
            }
            entry.stamp = self.stamp;
        }
        let covers = entry.bucket.covers(msgs);
        // With one worker its buckets are the global ones: nobody needs
        // their demand, so they keep none.
        if RECONCILED {
            let refused = &mut self.counters.listings_refused;
            if first_touch {
                start_demand(entry, &mut self.touched, msgs, covers, refused);
            } else {
                record_demand(entry, &mut self.touched, msgs, covers, refused);
            }
        }
        if covers {
            entry.bucket.take(msgs);
        }
        Some(Offered { index, covers })
    }

    fn table(&mut self, key: u64) -> &mut BucketTable {
        match dimension(key) {
            Dimension::Topic => &mut self.topics,
            Dimension::Sender => &mut self.senders,
        }
    }

    /// Index of the bucket named by `key` (overflow buckets included).
    fn locate(&mut self, key: u64) -> Option<usize> {
        let table = self.table(key);
        match overflow_profile(key) {
            Some(profile) => Some(table.overflow_index(profile)),
            None => table.find(key).ok(),
        }
    }

    /// Adopts `tables`: buckets stay and are revalidated at their first
    /// touch (a new stamp), overflow buckets right away; lists empty. Takes
    /// the bigger tables the control lcore prepared if `tables` needs them.
    fn adopt(&mut self, tables: &Tables, now: u64) {
        let fresh = self.take_prepared(tables);
        self.generation = tables.generation;
        self.rule_count = tables.rules.len();
        self.rule_hits.fill(0);
        self.topics.set_limit(tables.max_topics);
        self.senders.set_limit(tables.max_senders);
        self.previous_stamp = self.stamp;
        self.stamp = next_stamp(self.stamp);
        self.generations.adopt(tables, self.stamp);
        self.defaults.limits.clear();
        self.defaults
            .limits
            .extend(tables.profiles.iter().take(MAX_PROFILES).map(|p| p.fixed.share(self.default_frac)));
        self.defaults.period_ticks = tables.reconcile_ticks;
        for (i, &default) in self.defaults.limits.iter().enumerate() {
            let profile_id = i as ProfileId;
            let kept = (!fresh).then(|| self.generations.profile_unchanged(profile_id)).flatten();
            for dim in [Dimension::Topic, Dimension::Sender] {
                let key = overflow_key(dim, profile_id);
                let table = match dim {
                    Dimension::Topic => &mut self.topics,
                    Dimension::Sender => &mut self.senders,
                };
                if let Some(unchanged) = kept {
                    // Revalidated now, like an id's bucket at its first touch;
                    // stamp 0: its demand starts afresh at its next touch.
                    let entry = table.entry_mut(table.overflow_index(profile_id));
                    if !unchanged {
                        entry.bucket.set_limit(default, now);
                    }
                    self.defaults.relist(entry);
                    entry.stamp = 0;
                    continue;
                }
                table.init_overflow(profile_id, self.defaults.fresh_entry(key, profile_id, now));
            }
        }
        self.touched.clear();
        self.reporting.clear();
        self.report_pos = 0;
        self.report_epoch = None;
        if let Some(batch) = self.report_batch.take() {
            self.link.reports.recycle(batch);
        }
        if let Some(batch) = self.share_batch.take() {
            self.link.shares.recycle(batch);
        }
    }

    /// Swaps in the bigger tables the control lcore allocated if `tables`
    /// needs them (pointer swaps only); the replaced ones go back to be
    /// freed off the worker. Returns whether the tables are new (empty).
    /// Without prepared tables (not expected) the old sizes stay.
    fn take_prepared(&mut self, tables: &Tables) -> bool {
        let mut swapped = false;
        while !self.fits(tables) {
            let Some(mut next) = self.link.buckets.take() else {
                break;
            };
            if next.fits(tables.max_topics, tables.max_senders) {
                std::mem::swap(&mut self.topics, &mut next.topics);
                std::mem::swap(&mut self.senders, &mut next.senders);
                std::mem::swap(&mut self.touched, &mut next.touched);
                std::mem::swap(&mut self.reporting, &mut next.reporting);
                swapped = true;
            }
            self.link.buckets.give_back(next);
        }
        swapped
    }

    /// The control lcore started period `epoch`: the list just counted
    /// goes to reporting.
    fn close_period(&mut self, epoch: u64) {
        if self.report_epoch.is_some() {
            // Not sent within a whole period (the control did not drain):
            // send what is batched, drop the rest.
            self.counters.reports_lost += (self.reporting.len() - self.report_pos) as u64;
            self.finish_reports();
        }
        std::mem::swap(&mut self.touched, &mut self.reporting);
        self.touched.clear();
        self.report_pos = 0;
        self.report_epoch = self.reconciled.then_some(self.epoch);
        self.epoch = epoch;
        self.previous_stamp = self.stamp;
        self.stamp = next_stamp(self.stamp);
        self.link.published.publish(&self.counters, self.generation, &self.rule_hits[..self.rule_count]);
    }

    /// Sends up to REPORTS_PER_BURST demand records of the closed period.
    fn send_reports(&mut self) {
        let Some(epoch) = self.report_epoch else {
            return;
        };
        let end = self.reporting.len().min(self.report_pos + REPORTS_PER_BURST);
        while self.report_pos < end {
            let mut batch = match self.report_batch.take() {
                Some(batch) => batch,
                None => match self.link.reports.take_spare() {
                    Some(mut batch) => {
                        batch.generation = self.generation;
                        batch.period = epoch;
                        batch
                    }
                    // The control has not drained yet: try again next burst.
                    None => return,
                },
            };
            let take = (end - self.report_pos).min(BATCH_LEN - batch.items.len());
            batch.items.extend_from_slice(&self.reporting[self.report_pos..self.report_pos + take]);
            self.report_pos += take;
            if batch.items.len() == BATCH_LEN {
                self.link.reports.send(batch);
            } else {
                self.report_batch = Some(batch);
            }
        }
        if self.report_pos == self.reporting.len() {
            self.finish_reports();
        }
    }

    /// Sends the last partial batch and tells the control the period is in.
    fn finish_reports(&mut self) {
        let Some(epoch) = self.report_epoch.take() else {
            return;
        };
        if let Some(batch) = self.report_batch.take() {
            self.link.reports.send(batch);
        }
        self.link.reported_period.0.store(epoch, Ordering::Release);
    }

    /// Sweeps a few slots of each table that is 7/8 full.
    fn expire_idle(&mut self, tables: &Tables, now: u64) {
        let (current, previous) = (self.stamp, self.previous_stamp);
        let (defaults, generations) = (&self.defaults, &self.generations);
        let swept = [(&mut self.topics, &tables.topics), (&mut self.senders, &tables.senders)];
        for ((table, ids), cursor) in swept.into_iter().zip(&mut self.sweep_cursor) {
            if table.len() * 8 < table.limit() * 7 {
                continue;
            }
            let mut expired = |entry: &mut Entry| {
                if entry.stamp == current || entry.stamp == previous {
                    return false;
                }
                if !generations.is_current(current, entry.stamp) {
                    // Judged under the limits in force, as a fresh bucket would be.
                    let profile = imposed_profile(entry.key).or_else(|| ids.profile_of(entry.key as u32));
                    if !generations.revalidate(entry, current, profile, defaults, now) {
                        return true;
                    }
                    // Still idle, now valid: stamped as of the adoption, no
                    // demand, and at the default share, as the reconciler
                    // (which forgot it at the reload) would release it.
                    entry.stamp = generations.adopted_at();
                    entry.demand = 0;
                    entry.listed = NOT_LISTED;
                    defaults.set_limit(entry, defaults.limit(entry.profile), now);
                }
                entry.bucket.refill(now);
                entry.bucket.is_full() && entry.bucket.limit() == defaults.limit(entry.profile)
            };
            self.counters.evicted += table.sweep(cursor, SWEEP_PER_BURST, &mut expired);
        }
    }

    /// Applies up to SHARES_PER_BURST share updates.
    fn apply_shares(&mut self, tables: &Tables, now: u64) {
        let mut budget = SHARES_PER_BURST;
        while budget > 0 {
            let batch = match self.share_batch.take() {
                Some(batch) => batch,
                None => match self.link.shares.receive() {
                    Some(batch) if batch.generation == self.generation => {
                        self.share_pos = 0;
                        batch
                    }
                    Some(stale) => {
                        self.link.shares.recycle(stale);
                        continue;
                    }
                    None => return,
                },
            };
            let end = batch.items.len().min(self.share_pos + budget);
            for update in &batch.items[self.share_pos..end] {
                self.apply_share(tables, update, now);
            }
            budget -= end - self.share_pos;
            self.share_pos = end;
            if end == batch.items.len() {
                self.link.shares.recycle(batch);
            } else {
                self.share_batch = Some(batch);
            }
        }
    }

    fn apply_share(&mut self, tables: &Tables, update: &ShareUpdate, now: u64) {
        let Some(profile) = tables.profiles.get(usize::from(update.profile)) else {
            return;
        };
        let limit = profile.fixed.split(update.frac, update.burst_frac);
        if let Some(i) = self.locate(update.key) {
            let entry = match dimension(update.key) {
                Dimension::Topic => self.topics.entry_mut(i),
                Dimension::Sender => self.senders.entry_mut(i),
            };
            self.defaults.set_limit(entry, limit, now);
            self.counters.shares_applied += 1;
            return;
        }
        // No bucket here (never used, or expired): an absent bucket means a
        // full one at the default share, so start from that. Stamped now:
        // made under the current tables (a later reload must revalidate
        // it), with no demand yet this period.
        let mut entry = self.defaults.fresh_entry(update.key, update.profile, now);
        self.defaults.set_limit(&mut entry, limit, now);
        entry.stamp = self.stamp;
        let table = self.table(update.key);
        let inserted = match table.find(update.key) {
            Err(vacant) => table.insert_at(vacant, entry),
            Ok(_) => None,
        };
        if inserted.is_some() {
            self.counters.shares_applied += 1;
        } else {
            self.counters.shares_lost += 1;
        }
    }

    /// This worker's share of the limit on `topic` (its configured profile,
    /// not a `limit` rule's), as a fraction of the global rate; None when it
    /// holds no bucket for it.
    pub fn topic_share(&self, tables: &Tables, topic: u32) -> Option<f64> {
        share(tables, &self.topics, id_key(Dimension::Topic, topic, None))
    }

    /// This worker's share of `sender`'s quota, like [`Shard::topic_share`].
    pub fn sender_share(&self, tables: &Tables, sender: u32) -> Option<f64> {
        share(tables, &self.senders, id_key(Dimension::Sender, sender, None))
    }
}

#[cfg(test)]
impl Shard {
    /// Buckets validated under the current tables whose listing threshold
    /// is not the one their limit and the period give: (key, held, due).
    pub(super) fn stale_listing_thresholds(&self) -> Vec<(u64, u32, u32)> {
        let mut stale = Vec::new();
        for table in [&self.topics, &self.senders] {
            let overflow = (0..self.defaults.limits.len()).map(|p| table.overflow_index(p as ProfileId));
            for i in table.in_use_indices().chain(overflow) {
                let entry = table.entry(i);
                let validated = entry.stamp != 0 && self.generations.is_current(self.stamp, entry.stamp);
                let due = listing_threshold(entry.bucket.limit(), self.defaults.period_ticks);
                if validated && entry.listing_threshold != due {
                    stale.push((entry.key, entry.listing_threshold, due));
                }
            }
        }
        stale
    }
}

fn share(tables: &Tables, table: &BucketTable, key: u64) -> Option<f64> {
    let entry = table.entry(table.find(key).ok()?);
    // A bucket not touched since a reload may name a profile that is gone.
    if usize::from(entry.profile) >= tables.profiles.len() {
        return None;
    }
    let global = tables.profile(entry.profile).fixed.rate;
    Some(entry.bucket.limit().rate as f64 / global as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_threshold_is_the_same_in_64_and_128_bits() {
        let wide = |limit: FixedLimit, ticks: u64| {
            let per_period = (u128::from(limit.rate) * u128::from(ticks)) >> RATE_SHIFT;
            (per_period / 2).clamp(1, u128::from(u32::MAX)) as u32
        };
        let rates = [0, 1, 3, 1 << 20, 1 << 40, (1 << 48) - 1, 1 << 48, 1 << 50, u64::MAX / 7, u64::MAX];
        let periods = [0, 1, 1000, 1 << 16, 10_000_000, 1 << 40, u64::MAX];
        for rate in rates {
            for ticks in periods {
                let limit = FixedLimit { rate, burst: 0 };
                assert_eq!(listing_threshold(limit, ticks), wide(limit, ticks), "rate {rate}, {ticks} ticks");
            }
        }
    }
}
