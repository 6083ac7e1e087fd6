//! The control lcore's side: every period it gathers the demand the
//! workers report, splits each reported global limit between all workers
//! and sends each worker its new shares.
//!
//! A limit is either untracked (every worker holds the equal default share,
//! which sums to the limit) or tracked (the reconciler remembers each
//! worker's share, they sum to at most the limit, and every worker has
//! been told its share). A limit becomes tracked when a worker reports it,
//! and goes back to the default split after about a second without
//! reports. Work per period is proportional to the records received plus a
//! slice of the tracked limits swept for release; nothing scans the
//! configured tables.

use super::allocate::{max_min_fair, split_burst, want};
use super::bucket::FRAC_ONE;
use super::buckets::Buckets;
use super::counters::ShardCounters;
use super::error::GovernanceConfigError;
use super::exchange::{BATCH_LEN, Epoch, Report, ShareUpdate, WorkerLink, pool_batches};
use super::hash::KeyedIdMap;
use super::rules::MAX_RULES;
use super::shard::Shard;
use super::tables::Tables;
use super::{MAX_WORKERS, table::MAX_PROFILES};
use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A worker's share changes only when it moves by more than this (1/256 of
/// the limit), so steady limits cost no updates.
const HYSTERESIS: u32 = FRAC_ONE / 256;

/// Marks a report whose key the index did not hold.
const NOT_TRACKED: u32 = u32::MAX;

/// How long a limit nobody uses keeps its split before every worker goes
/// back to the equal default share.
const RELEASE_AFTER_US: u64 = 1_000_000;

/// What the control side did, for telemetry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReconcilerStats {
    /// Periods reconciled.
    pub periods: u64,
    /// Limits reported active in the last reconciled period.
    pub active_ids: usize,
    /// Limits whose split is remembered (active within about a second).
    pub tracked_ids: usize,
    /// Share updates queued for workers in total.
    pub updates_sent: u64,
    /// Updates waiting because a worker has not returned spare batches.
    pub updates_waiting: usize,
    /// Demand records that arrived after their period was reconciled.
    pub late_reports: u64,
    /// Demand records dropped because `max_topics + max_senders` limits
    /// were already tracked (their workers keep the default share).
    pub untracked_reports: u64,
    /// Periods reconciled at the deadline, without every worker's report.
    pub deadline_finishes: u64,
}

/// One tracked limit.
#[derive(Clone, Copy, Debug, Default)]
struct Tracked {
    key: u64,
    profile: u16,
    last_active: u64,
    /// Not yet told to the workers.
    fresh: bool,
    in_use: bool,
}

/// One worker's side of one tracked limit.
#[derive(Clone, Copy, Debug, Default)]
struct WorkerShare {
    /// Shares told to the worker, in 1/65536ths.
    frac: u32,
    burst_frac: u32,
    /// Messages reported for the period being reconciled.
    demand: u32,
    /// Largest frame the worker has reported since the limit was tracked:
    /// its burst share keeps room for it.
    max_frame: u16,
}

#[derive(Clone, Copy, Debug)]
struct Closing {
    epoch: u64,
    deadline: u64,
}

/// Share updates waiting for one worker's spare batches, at most one per
/// limit: a newer update for a limit replaces its waiting one in place (each
/// carries the absolute shares), so a stalled worker costs one entry per
/// tracked limit, not one per limit and period.
///
/// A period queues each limit at most once, so the key index that finds a
/// waiting update is needed only once updates outlive a flush (the worker
/// has no spare batch): it is built then, and dropped when the queue
/// empties. A worker that keeps up costs a queue push per update, no hashing.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<ShareUpdate>,
    /// Sequence number of `queue[0]`.
    head: u64,
    /// Key → sequence number of its waiting update, while `indexed`.
    waiting: KeyedIdMap<u64, u64>,
    /// Whether `waiting` covers the queue (updates outlived a flush).
    indexed: bool,
}

impl Outbox {
    fn push(&mut self, update: ShareUpdate) {
        if !self.indexed {
            self.queue.push_back(update);
            return;
        }
        let next = self.head + self.queue.len() as u64;
        match self.waiting.entry(update.key) {
            Entry::Occupied(e) => self.queue[(*e.get() - self.head) as usize] = update,
            Entry::Vacant(e) => {
                e.insert(next);
                self.queue.push_back(update);
            }
        }
    }

    /// After a flush: updates still waiting will meet newer ones for the
    /// same limits, so index them (the latest of a key wins).
    fn index_backlog(&mut self) {
        if self.indexed || self.queue.is_empty() {
            return;
        }
        self.indexed = true;
        for (seq, update) in (self.head..).zip(&self.queue) {
            self.waiting.insert(update.key, seq);
        }
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn clear(&mut self) {
        self.head += self.queue.len() as u64;
        self.queue.clear();
        self.waiting.clear();
        self.indexed = false;
    }

    /// Moves the `take` oldest updates to `out`.
    fn drain_into(&mut self, out: &mut Vec<ShareUpdate>, take: usize) {
        let head = self.head;
        for (seq, update) in (head..).zip(self.queue.drain(..take)) {
            if self.indexed
                && let Entry::Occupied(e) = self.waiting.entry(update.key)
                && *e.get() == seq
            {
                e.remove();
            }
            out.push(update);
        }
        self.head += take as u64;
        if self.queue.is_empty() {
            self.waiting.clear();
            self.indexed = false;
        }
    }
}

/// The control side of governance; runs on the control lcore.
pub struct Reconciler {
    links: Vec<Arc<WorkerLink>>,
    epoch_cell: Arc<Epoch>,
    epoch: u64,
    default_frac: u32,
    generation: u64,
    period_ticks: u64,
    period_secs: f64,
    release_after: u64,
    max_tracked: usize,
    next_tick: Option<u64>,
    closing: Option<Closing>,
    index: KeyedIdMap<u64, u32>,
    ids: Vec<Tracked>,
    free: Vec<u32>,
    /// Per tracked slot and worker (`slot * n + worker`).
    shares: Vec<WorkerShare>,
    active: Vec<u32>,
    sweep_cursor: usize,
    outbox: Vec<Outbox>,
    /// Bucket table sizes (topics, senders) each worker has or has been
    /// handed.
    bucket_sizes: (usize, usize),
    /// Per worker, the NUMA node its bucket tables are mapped on.
    nodes: Vec<Option<u32>>,
    stats: ReconcilerStats,
}

impl Reconciler {
    /// Creates the shards of `n_workers` workers and the reconciler that
    /// serves them, connected.
    pub fn connect(tables: &Tables, n_workers: usize) -> Result<(Vec<Shard>, Reconciler), GovernanceConfigError> {
        Self::connect_placed(tables, &vec![None; n_workers])
    }

    /// Like [`Reconciler::connect`], one worker per entry of `nodes`: the
    /// NUMA node its bucket tables should live on (None: anywhere), now and
    /// when a reload makes them bigger.
    pub fn connect_placed(
        tables: &Tables,
        nodes: &[Option<u32>],
    ) -> Result<(Vec<Shard>, Reconciler), GovernanceConfigError> {
        let n_workers = nodes.len();
        if !(1..=MAX_WORKERS).contains(&n_workers) {
            return Err(GovernanceConfigError::new(
                "workers",
                format!("{n_workers} workers, governance supports 1–{MAX_WORKERS}"),
            ));
        }
        let epoch_cell = Arc::new(Epoch::new(1));
        let batches = pool_batches(tables.max_topics, tables.max_senders);
        let links: Vec<_> = (0..n_workers).map(|_| Arc::new(WorkerLink::new(batches, MAX_RULES))).collect();
        let shards = links
            .iter()
            .enumerate()
            .map(|(w, link)| Shard::new(w, n_workers, tables, Arc::clone(link), Arc::clone(&epoch_cell), nodes[w]))
            .collect();
        let mut reconciler = Reconciler {
            outbox: (0..n_workers).map(|_| Outbox::default()).collect(),
            links,
            epoch_cell,
            epoch: 1,
            default_frac: FRAC_ONE / n_workers as u32,
            generation: 0,
            period_ticks: 1,
            period_secs: 0.0,
            release_after: 1,
            max_tracked: 0,
            next_tick: None,
            closing: None,
            index: KeyedIdMap::default(),
            ids: Vec::new(),
            free: Vec::new(),
            shares: Vec::new(),
            active: Vec::new(),
            sweep_cursor: 0,
            bucket_sizes: (tables.max_topics, tables.max_senders),
            nodes: nodes.to_vec(),
            stats: ReconcilerStats::default(),
        };
        reconciler.adopt(tables);
        Ok((shards, reconciler))
    }

    /// Call before publishing `tables`: if they need bigger bucket tables
    /// than the workers have, allocates them here (off the workers) and
    /// hands one set to each worker, which swaps it in when it adopts
    /// `tables`. An allocation that fails refuses the reload (nothing is
    /// handed over); the running tables stay.
    pub fn prepare_buckets(&mut self, tables: &Tables) -> Result<(), GovernanceConfigError> {
        let (topics, senders) = self.bucket_sizes;
        if tables.max_topics <= topics && tables.max_senders <= senders {
            return Ok(());
        }
        let size = (tables.max_topics.max(topics), tables.max_senders.max(senders));
        let refuse = |why: String| {
            GovernanceConfigError::new(
                "governance.max_topics",
                format!("bucket tables for {} topics and {} senders per worker: {why}", size.0, size.1),
            )
        };
        for link in &self.links {
            link.buckets.free_returned();
            if !link.buckets.has_room() {
                return Err(refuse("the workers have not taken the last ones yet; try again later".into()));
            }
        }
        let mut sets = Vec::with_capacity(self.links.len());
        for &node in &self.nodes {
            let set = Buckets::try_new(size.0, size.1, node).map_err(|e| refuse(format!("cannot allocate ({e})")))?;
            sets.push(Box::new(set));
        }
        for (link, set) in self.links.iter().zip(sets) {
            // Room was checked above and only this thread adds.
            let _ = link.buckets.offer(set);
        }
        self.bucket_sizes = size;
        Ok(())
    }

    /// Call often on the control lcore (every few microseconds up to once
    /// per period). Starts a new period when one is due, collects the
    /// workers' reports, and once all are in (or 3/4 of a period has
    /// passed) reconciles the closed period and sends the new shares.
    /// Returns whether a period was reconciled.
    pub fn poll(&mut self, tables: &Tables, now_tsc: u64) -> bool {
        if tables.generation != self.generation {
            self.adopt(tables);
        }
        let mut reconciled = false;
        let due = *self.next_tick.get_or_insert(now_tsc + self.period_ticks);
        if now_tsc >= due {
            if let Some(closing) = self.closing.take() {
                self.drain_reports(Some(closing.epoch));
                self.reconcile(tables, closing.epoch);
                self.stats.deadline_finishes += 1;
                reconciled = true;
            }
            self.epoch += 1;
            self.epoch_cell.store(self.epoch);
            self.closing = Some(Closing { epoch: self.epoch - 1, deadline: now_tsc + self.period_ticks * 3 / 4 });
            // After a stall, restart the cadence instead of catching up.
            let next = due + self.period_ticks;
            self.next_tick = Some(if next <= now_tsc { now_tsc + self.period_ticks } else { next });
        }
        let closing = self.closing;
        // Read before draining: a worker stores its period number after
        // its last batch, so every batch of a reported period is drained.
        let all_in =
            closing.is_some_and(|c| self.links.iter().all(|l| l.reported_period.0.load(Ordering::Acquire) >= c.epoch));
        self.drain_reports(closing.map(|c| c.epoch));
        if let Some(c) = closing
            && (all_in || now_tsc >= c.deadline)
        {
            if !all_in {
                self.stats.deadline_finishes += 1;
            }
            self.closing = None;
            self.reconcile(tables, c.epoch);
            reconciled = true;
        }
        self.flush_outbox();
        for link in &self.links {
            // Tables a worker replaced are freed here, not on the worker.
            link.buckets.free_returned();
        }
        reconciled
    }

    /// When [`Reconciler::poll`] next has work, in TSC ticks: the next
    /// period boundary; or, while a closed period's reports are coming in
    /// and some limit is live (tracked, or share updates waiting), a
    /// quarter period from `now_tsc`, so that a live split is reconciled
    /// soon after every worker has reported. With nothing live, the closed
    /// period is finished at the next boundary instead: a report then is
    /// the first sign of an id nearing its limit, and until it is
    /// reconciled every worker holds the default share, whose sum is the
    /// global limit. A control lcore that sleeps until then wakes once a
    /// period when there is nothing to reconcile.
    pub fn next_poll(&self, now_tsc: u64) -> u64 {
        let Some(boundary) = self.next_tick else {
            return now_tsc;
        };
        let live = !self.index.is_empty() || self.outbox.iter().any(|o| !o.is_empty());
        match self.closing {
            Some(_) if live => boundary.min(now_tsc + self.period_ticks / 4),
            _ => boundary,
        }
    }

    /// What the reconciler has done so far.
    pub fn stats(&self) -> ReconcilerStats {
        ReconcilerStats {
            tracked_ids: self.index.len(),
            updates_waiting: self.outbox.iter().map(Outbox::len).sum(),
            ..self.stats
        }
    }

    /// Number of workers served.
    pub fn workers(&self) -> usize {
        self.links.len()
    }

    /// Counters worker `worker` published at its last period change.
    pub fn worker_counters(&self, worker: usize) -> ShardCounters {
        self.links[worker].published.counters()
    }

    /// Per-rule hits of `tables`, summed over the workers' last published
    /// copies.
    pub fn rule_hits(&self, tables: &Tables) -> Vec<u64> {
        let mut sums = vec![0; tables.rules.len()];
        for link in &self.links {
            link.published.add_rule_hits(tables.generation, &mut sums);
        }
        sums
    }

    /// Forgets every split: a new generation's profiles mean new limits.
    fn adopt(&mut self, tables: &Tables) {
        self.generation = tables.generation;
        self.period_ticks = tables.reconcile_ticks.max(1);
        self.period_secs = tables.reconcile_ticks as f64 / tables.tsc_hz as f64;
        let period_us = (self.period_secs * 1e6).max(1.0) as u64;
        self.release_after = (RELEASE_AFTER_US / period_us).max(2);
        self.max_tracked = tables.max_topics + tables.max_senders + 2 * MAX_PROFILES;
        self.closing = None;
        self.index.clear();
        self.ids.clear();
        self.free.clear();
        self.shares.clear();
        self.active.clear();
        self.sweep_cursor = 0;
        for queue in &mut self.outbox {
            queue.clear();
        }
    }

    /// Takes every report batch waiting; records of `closing` count.
    fn drain_reports(&mut self, closing: Option<u64>) {
        for w in 0..self.links.len() {
            let link = Arc::clone(&self.links[w]);
            while let Some(batch) = link.reports.receive() {
                match closing {
                    Some(epoch) if batch.generation == self.generation && batch.period == epoch => {
                        // Look every key up first: the lookups are independent,
                        // so their cache misses overlap.
                        let mut slots = [NOT_TRACKED; BATCH_LEN];
                        for (slot, report) in slots.iter_mut().zip(&batch.items) {
                            if let Some(&found) = self.index.get(&report.key) {
                                *slot = found;
                            }
                        }
                        for (&slot, report) in slots.iter().zip(&batch.items) {
                            self.aggregate(w, report, slot, epoch);
                        }
                    }
                    _ => self.stats.late_reports += batch.items.len() as u64,
                }
                link.reports.recycle(batch);
            }
        }
    }

    /// Adds `report` from `worker` to its limit's demand; `slot` is where
    /// the index had it before this batch (NOT_TRACKED: start tracking).
    fn aggregate(&mut self, worker: usize, report: &Report, slot: u32, epoch: u64) {
        let n = self.links.len();
        let slot = match slot {
            NOT_TRACKED => match self.track(report.key) {
                Some(slot) => slot,
                None => {
                    self.stats.untracked_reports += 1;
                    return;
                }
            },
            slot => slot as usize,
        };
        let shares = &mut self.shares[slot * n..(slot + 1) * n];
        let tracked = &mut self.ids[slot];
        tracked.profile = report.profile;
        if tracked.last_active != epoch {
            tracked.last_active = epoch;
            shares.iter_mut().for_each(|s| s.demand = 0);
            self.active.push(slot as u32);
        }
        let share = &mut shares[worker];
        share.demand = share.demand.saturating_add(report.demand);
        share.max_frame = share.max_frame.max(report.max_frame);
    }

    /// Starts tracking `key` with every worker at the default share; None
    /// when already tracking the maximum.
    fn track(&mut self, key: u64) -> Option<usize> {
        let n = self.links.len();
        let slot = match self.free.pop() {
            Some(slot) => slot as usize,
            None if self.ids.len() < self.max_tracked => {
                self.ids.push(Tracked::default());
                self.shares.resize(self.shares.len() + n, WorkerShare::default());
                self.ids.len() - 1
            }
            None => return None,
        };
        self.ids[slot] = Tracked { key, fresh: true, in_use: true, ..Tracked::default() };
        let default = WorkerShare { frac: self.default_frac, burst_frac: self.default_frac, ..WorkerShare::default() };
        self.shares[slot * n..(slot + 1) * n].fill(default);
        self.index.insert(key, slot as u32);
        Some(slot)
    }

    /// Splits each limit active in period `epoch` and queues the changes.
    fn reconcile(&mut self, tables: &Tables, epoch: u64) {
        let n = self.links.len();
        let mut wants = [0.0f64; MAX_WORKERS];
        let mut fracs = [0u32; MAX_WORKERS];
        let mut needs = [0u16; MAX_WORKERS];
        let mut burst_fracs = [0u32; MAX_WORKERS];
        let active = std::mem::take(&mut self.active);
        for &slot in &active {
            let slot = slot as usize;
            let tracked = self.ids[slot];
            let Some(profile) = tables.profiles.get(usize::from(tracked.profile)) else {
                continue;
            };
            let per_period = profile.rate as f64 * self.period_secs;
            let shares = &mut self.shares[slot * n..(slot + 1) * n];
            for (w, share) in shares.iter().enumerate() {
                // A worker that reported nothing was idle: it keeps the floor.
                wants[w] = want(u64::from(share.demand), per_period, n);
                needs[w] = share.max_frame;
            }
            max_min_fair(&wants[..n], &mut fracs[..n]);
            split_burst(&fracs[..n], &needs[..n], profile.burst, &mut burst_fracs[..n]);
            let moved = shares.iter().enumerate().any(|(w, old)| {
                old.frac.abs_diff(fracs[w]) > HYSTERESIS || old.burst_frac.abs_diff(burst_fracs[w]) > HYSTERESIS
            });
            if !(moved || tracked.fresh) {
                continue;
            }
            self.ids[slot].fresh = false;
            for (w, share) in shares.iter_mut().enumerate() {
                share.frac = fracs[w];
                share.burst_frac = burst_fracs[w];
                self.outbox[w].push(ShareUpdate {
                    key: tracked.key,
                    frac: fracs[w],
                    burst_frac: burst_fracs[w],
                    profile: tracked.profile,
                });
            }
            self.stats.updates_sent += n as u64;
        }
        self.stats.active_ids = active.len();
        self.active = active;
        self.active.clear();
        self.stats.periods += 1;
        self.sweep(epoch);
    }

    /// Releases limits idle for `release_after` periods, visiting a slice
    /// of the tracked slots so that all are seen once per release interval.
    fn sweep(&mut self, epoch: u64) {
        let budget = self.ids.len() / self.release_after as usize + 16;
        for _ in 0..budget {
            if self.sweep_cursor >= self.ids.len() {
                self.sweep_cursor = 0;
                return;
            }
            let slot = self.sweep_cursor;
            self.sweep_cursor += 1;
            let tracked = self.ids[slot];
            if tracked.in_use && epoch.saturating_sub(tracked.last_active) >= self.release_after {
                self.release(slot);
            }
        }
    }

    /// Every worker returns to the default share (what an untracked limit
    /// means) and the slot is freed.
    fn release(&mut self, slot: usize) {
        let n = self.links.len();
        let tracked = self.ids[slot];
        for (w, share) in self.shares[slot * n..(slot + 1) * n].iter().enumerate() {
            if share.frac != self.default_frac || share.burst_frac != self.default_frac {
                self.outbox[w].push(ShareUpdate {
                    key: tracked.key,
                    frac: self.default_frac,
                    burst_frac: self.default_frac,
                    profile: tracked.profile,
                });
                self.stats.updates_sent += 1;
            }
        }
        self.index.remove(&tracked.key);
        self.ids[slot].in_use = false;
        self.free.push(slot as u32);
    }

    /// Moves queued updates into batches, as far as spare batches allow.
    fn flush_outbox(&mut self) {
        for (w, queue) in self.outbox.iter_mut().enumerate() {
            let link = &self.links[w];
            while !queue.is_empty() {
                let Some(mut batch) = link.shares.take_spare() else {
                    break;
                };
                batch.generation = self.generation;
                batch.period = self.epoch;
                let take = queue.len().min(BATCH_LEN);
                queue.drain_into(&mut batch.items, take);
                link.shares.send(batch);
            }
            queue.index_backlog();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::GovernanceConfig;
    use super::*;

    fn reconciler(workers: usize) -> (Tables, Vec<Shard>, Reconciler) {
        #[derive(serde::Deserialize)]
        struct Root {
            governance: GovernanceConfig,
        }
        let text = "[governance]\n[[governance.topics]]\nid = 1\nrate = 1000000\nburst = 1000";
        toml::from_str::<Root>(text).unwrap().governance.compile(1_000_000_000, workers).unwrap()
    }

    /// Updates that outlive a flush are indexed, so a newer update for the
    /// same limit replaces the waiting one; a queue that empties drops its
    /// index and goes back to plain pushes.
    #[test]
    fn an_outbox_replaces_only_updates_that_outlived_a_flush() {
        let update = |key, frac| ShareUpdate { key, frac, burst_frac: frac, profile: 0 };
        let mut outbox = Outbox::default();
        outbox.push(update(1, 10));
        outbox.push(update(2, 20));
        let mut sent = Vec::new();
        outbox.drain_into(&mut sent, 1);
        outbox.index_backlog(); // key 2 waits past the flush
        outbox.push(update(2, 21));
        outbox.push(update(3, 30));
        assert_eq!(outbox.len(), 2, "key 2 replaced in place, key 3 appended");
        outbox.drain_into(&mut sent, 2);
        let got: Vec<_> = sent.iter().map(|u| (u.key, u.frac)).collect();
        assert_eq!(got, [(1, 10), (2, 21), (3, 30)]);
        assert!(!outbox.indexed && outbox.waiting.is_empty(), "an empty queue keeps no index");
        outbox.push(update(2, 22));
        outbox.push(update(2, 23));
        assert_eq!(outbox.len(), 2, "unindexed: one period queues each limit once, so no lookup");
    }

    /// Between boundaries the reconciler asks to be polled only while a
    /// closed period has a live limit to reconcile.
    #[test]
    fn next_poll_is_the_boundary_unless_a_live_period_is_closing() {
        let (tables, _shards, mut r) = reconciler(2);
        assert_eq!(r.next_poll(5), 5, "never polled: now");
        r.poll(&tables, 0);
        let period = r.period_ticks;
        assert_eq!(r.next_poll(0), period, "nothing closing");
        r.poll(&tables, period);
        assert!(r.closing.is_some());
        assert_eq!(r.next_poll(period), 2 * period, "closing, nothing tracked: the next boundary");
        // A worker reports topic 1 near its limit: tracked from now on.
        let epoch = r.closing.unwrap().epoch;
        let mut batch = r.links[0].reports.take_spare().unwrap();
        batch.generation = tables.generation;
        batch.period = epoch;
        batch.items.push(Report { key: 1, demand: 1000, profile: 0, max_frame: 1 });
        r.links[0].reports.send(batch);
        r.poll(&tables, 2 * period);
        assert!(r.closing.is_some() && !r.index.is_empty());
        let soon = 2 * period + period / 4;
        assert_eq!(r.next_poll(2 * period), soon, "closing with a live limit: a quarter period");
        assert_eq!(r.next_poll(3 * period - 1), 3 * period, "never past the boundary");
        for link in &r.links {
            link.reported_period.0.store(r.closing.unwrap().epoch, Ordering::Release);
        }
        r.poll(&tables, soon);
        assert!(r.closing.is_none(), "every worker in: reconciled");
        assert_eq!(r.next_poll(soon), 3 * period, "nothing closing: the boundary");
    }

    /// Worker 1 stalls (keeps every spare share batch); reports for the
    /// same `KEYS` limits swing between the workers every period, so every
    /// period moves every share. The outbox keeps one update per limit.
    #[test]
    fn a_stalled_worker_s_outbox_keeps_the_latest_update_per_limit() {
        const KEYS: u64 = 300;
        let (tables, _shards, mut r) = reconciler(2);
        let mut held = Vec::new();
        while let Some(b) = r.links[1].shares.take_spare() {
            held.push(b);
        }
        let mut now = 0;
        r.poll(&tables, now);
        for period in 0..40u64 {
            now += r.period_ticks;
            r.poll(&tables, now);
            let epoch = r.closing.expect("a period is closing").epoch;
            for (w, link) in r.links.iter().enumerate() {
                let heavy = (period + w as u64).is_multiple_of(2);
                let keys: Vec<u64> = (1000..1000 + KEYS).collect();
                for chunk in keys.chunks(BATCH_LEN) {
                    let mut batch = link.reports.take_spare().unwrap();
                    batch.generation = tables.generation;
                    batch.period = epoch;
                    for &key in chunk {
                        let demand = if heavy { 100_000 } else { 1 };
                        batch.items.push(Report { key, demand, profile: 0, max_frame: 1 });
                    }
                    link.reports.send(batch);
                }
                link.reported_period.0.store(epoch, Ordering::Release);
            }
            r.poll(&tables, now);
            // The running worker takes its updates.
            while let Some(b) = r.links[0].shares.receive() {
                r.links[0].shares.recycle(b);
            }
        }
        let stats = r.stats();
        assert!(stats.updates_sent > 20 * KEYS, "shares should move every period: {stats:?}");
        assert!(stats.updates_waiting <= KEYS as usize, "the outbox grew to {}", stats.updates_waiting);
        // Once the worker is back it gets the latest share of each limit, once.
        for b in held {
            r.links[1].shares.recycle(b);
        }
        r.poll(&tables, now + 1);
        let mut got = std::collections::HashMap::new();
        while let Some(b) = r.links[1].shares.receive() {
            for u in &b.items {
                assert!(got.insert(u.key, u.frac).is_none(), "two updates for {}", u.key);
            }
            r.links[1].shares.recycle(b);
        }
        assert_eq!(got.len(), KEYS as usize);
        let slot = r.index[&1000] as usize;
        assert_eq!(got[&1000], r.shares[slot * 2 + 1].frac, "the latest share");
    }
}
