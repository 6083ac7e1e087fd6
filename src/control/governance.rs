//! The control lcore's side of governance: polls the reconciler, reclaims
//! retired tables, and reloads rules and limits on SIGHUP or the
//! `/tachyon/reload` telemetry command. A file that fails to read, parse or
//! compile, or whose bigger bucket tables cannot be allocated, is refused
//! with the reason, and the running tables stay. `/tachyon/reload` answers
//! once every worker runs the new tables, like `/tachyon/limit`.
//!
//! `/tachyon/limit,topic,ID,RATE,BURST` (or `sender,...`) sets one id's limit
//! at run time, `/tachyon/limit,topic,ID,clear` removes that runtime limit. Runtime
//! limits are kept in a set of overrides applied on top of the config's
//! `[governance]` section and go through the same compile → RCU publish path
//! as a reload, so every worker adopts them at a burst boundary and the
//! reconciler splits them across workers like configured limits.
//!
//! **Reloads keep runtime limits.** A reload (SIGHUP or `/tachyon/reload`)
//! compiles the file, then applies every runtime limit on top: a runtime limit
//! wins over the file's entry for the same id (an exact `id` or an `ids`
//! range), until it is cleared with `...,ID,clear`; the file's limit (or the
//! defaults) then applies again. Runtime limits are not written back to the
//! file and end with the process.

use crate::config::{Config, ConfigError};
use crate::control::metrics::{GovernanceSnapshot, ReconcileStatus, RuleHits, Safeguards};
use crate::dpdk::{RcuCell, tsc};
use crate::governance::{GovernanceConfig, GovernanceConfigError, IdLimit, MAX_BURST, Reconciler, Tables};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Replaced tables that may wait for a stalled worker before reloads are refused.
pub const MAX_RETIRED: usize = 4;

/// Refuses a reload while `waiting` replaced tables cannot be freed yet.
fn check_retired(waiting: usize) -> Result<(), ReloadError> {
    if waiting >= MAX_RETIRED { Err(ReloadError::RetiredBacklog(waiting)) } else { Ok(()) }
}

/// How often rule hits and reconciliation figures are copied for metrics.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(100);

/// Why a reload was refused (the running tables stay).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Started without `--config`: there is no file to reread.
    #[error("no --config file to reload")]
    NoConfigFile,
    /// The file cannot be read, parsed or validated.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Too many replaced tables still wait for a worker that has not moved
    /// on (a stalled worker): each is a full copy of the tables.
    #[error("{0} replaced table generations still wait for a stalled worker; try again later")]
    RetiredBacklog(usize),
    /// Its `[governance]` section does not compile at this clock rate.
    #[error("{}: {source}", path.display())]
    Governance { path: PathBuf, source: GovernanceConfigError },
}

/// Reload requests from other threads (telemetry) and their answers.
pub struct ReloadRequests {
    asked: AtomicU64,
    answered: Mutex<(u64, Result<String, String>)>,
    done: Condvar,
}

impl Default for ReloadRequests {
    fn default() -> Self {
        ReloadRequests { asked: AtomicU64::new(0), answered: Mutex::new((0, Ok(String::new()))), done: Condvar::new() }
    }
}

impl ReloadRequests {
    /// Asks the control loop to reload and waits (bounded) for its answer.
    pub fn request_and_wait(&self, timeout: Duration) -> Result<String, String> {
        let ticket = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let guard = self.answered.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .done
            .wait_timeout_while(guard, timeout, |(answered, _)| *answered < ticket)
            .unwrap_or_else(|e| e.into_inner());
        if guard.0 < ticket { Err("no answer from the control loop in time".into()) } else { guard.1.clone() }
    }

    fn pending(&self) -> Option<u64> {
        let asked = self.asked.load(Ordering::SeqCst);
        let answered = self.answered.lock().unwrap_or_else(|e| e.into_inner()).0;
        (asked > answered).then_some(asked)
    }

    fn answer(&self, ticket: u64, result: Result<String, String>) {
        *self.answered.lock().unwrap_or_else(|e| e.into_inner()) = (ticket, result);
        self.done.notify_all();
    }
}

/// Which id space a runtime limit applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LimitKind {
    Topic,
    Sender,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Topic => "topic",
            LimitKind::Sender => "sender",
        })
    }
}

/// One `/tachyon/limit` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitCommand {
    pub kind: LimitKind,
    pub id: u32,
    /// `Some((rate, burst))` sets the limit, `None` clears the runtime limit.
    pub limit: Option<(u64, u64)>,
}

/// Parses the parameters of `/tachyon/limit`: `topic,ID,RATE,BURST`,
/// `sender,ID,RATE,BURST`, or `topic|sender,ID,clear`. Rate in messages per
/// second (at least 1), burst in messages (1 to 2^31).
pub fn parse_limit(params: &str) -> Result<LimitCommand, String> {
    const USAGE: &str = "expected topic,ID,RATE,BURST or sender,ID,RATE,BURST or topic|sender,ID,clear";
    let parts: Vec<&str> = params.split(',').map(str::trim).collect();
    let kind = match parts[0] {
        "topic" => LimitKind::Topic,
        "sender" => LimitKind::Sender,
        "" => return Err(format!("no parameters ({USAGE})")),
        other => return Err(format!("unknown kind '{other}' ({USAGE})")),
    };
    let number = |name: &str, text: &str| -> Result<u64, String> {
        text.parse::<u64>().map_err(|_| format!("{name} '{text}' is not a non-negative integer"))
    };
    let id_of = |text: &str| -> Result<u32, String> {
        text.parse::<u32>().map_err(|_| format!("{kind} id '{text}' is not an integer in 0-{}", u32::MAX))
    };
    match parts.as_slice() {
        [_, id, "clear"] => Ok(LimitCommand { kind, id: id_of(id)?, limit: None }),
        [_, id, rate, burst] => {
            let id = id_of(id)?;
            let (rate, burst) = (number("rate", rate)?, number("burst", burst)?);
            if rate == 0 {
                return Err("rate must be at least 1 msg/s (use a drop rule to block)".into());
            }
            if burst == 0 || burst > MAX_BURST {
                return Err(format!("burst {burst} is outside 1-{MAX_BURST} msgs"));
            }
            Ok(LimitCommand { kind, id, limit: Some((rate, burst)) })
        }
        _ => Err(format!("{} parameter(s) ({USAGE})", parts.len())),
    }
}

/// Runtime limits set by `/tachyon/limit`, by (kind, id): (rate, burst).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    limits: BTreeMap<(LimitKind, u32), (u64, u64)>,
}

impl LimitOverrides {
    /// Applies one command; returns the previous runtime limit of that id.
    pub fn apply(&mut self, cmd: &LimitCommand) -> Option<(u64, u64)> {
        match cmd.limit {
            Some(limit) => self.limits.insert((cmd.kind, cmd.id), limit),
            None => self.limits.remove(&(cmd.kind, cmd.id)),
        }
    }

    /// Puts back what [`Self::apply`] returned (when the new tables did not compile).
    pub fn restore(&mut self, cmd: &LimitCommand, previous: Option<(u64, u64)>) {
        match previous {
            Some(limit) => self.limits.insert((cmd.kind, cmd.id), limit),
            None => self.limits.remove(&(cmd.kind, cmd.id)),
        };
    }

    pub fn len(&self) -> usize {
        self.limits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// `base` with every runtime limit applied: an exact `id` entry of the
    /// same id is replaced; ranges stay (an exact id beats a range).
    pub fn merged(&self, base: &GovernanceConfig) -> GovernanceConfig {
        let mut g = base.clone();
        for (&(kind, id), &(rate, burst)) in &self.limits {
            let list = match kind {
                LimitKind::Topic => &mut g.topics,
                LimitKind::Sender => &mut g.senders,
            };
            list.retain(|e| e.id != Some(id));
            list.push(IdLimit { id: Some(id), rate: Some(rate), burst: Some(burst), ..IdLimit::default() });
        }
        g
    }

    /// For the final report: `{"topic 7": "rate R/s burst B", ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        self.limits
            .iter()
            .map(|((k, id), (r, b))| (format!("{k} {id}"), json!(format!("rate {r}/s burst {b}"))))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// `/tachyon/limit` requests from the telemetry thread, answered by the control loop.
#[derive(Default)]
pub struct LimitRequests {
    state: Mutex<LimitQueue>,
    done: Condvar,
}

#[derive(Default)]
struct LimitQueue {
    next_ticket: u64,
    queued: VecDeque<(u64, LimitCommand)>,
    answers: HashMap<u64, Result<String, String>>,
}

impl LimitRequests {
    /// Queues `cmd` for the control loop and waits (bounded) for its answer.
    pub fn request_and_wait(&self, cmd: LimitCommand, timeout: Duration) -> Result<String, String> {
        let mut q = self.state.lock().unwrap_or_else(|e| e.into_inner());
        q.next_ticket += 1;
        let ticket = q.next_ticket;
        q.queued.push_back((ticket, cmd));
        let (mut q, _) = self
            .done
            .wait_timeout_while(q, timeout, |q| !q.answers.contains_key(&ticket))
            .unwrap_or_else(|e| e.into_inner());
        match q.answers.remove(&ticket) {
            Some(answer) => answer,
            None => {
                // Too late: take it back if the loop has not started on it.
                q.queued.retain(|(t, _)| *t != ticket);
                Err("no answer from the control loop in time".into())
            }
        }
    }

    fn take(&self) -> Option<(u64, LimitCommand)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).queued.pop_front()
    }

    fn answer(&self, ticket: u64, result: Result<String, String>) {
        let mut q = self.state.lock().unwrap_or_else(|e| e.into_inner());
        q.answers.insert(ticket, result);
        // Answers nobody waits for any more (timed out) must not pile up.
        if q.answers.len() > 64 {
            let newest = q.next_ticket;
            q.answers.retain(|t, _| newest - t < 64);
        }
        self.done.notify_all();
    }
}

pub struct GovernanceControl {
    reconciler: Reconciler,
    /// The config's `[governance]` as last loaded (start-up or the last good reload).
    base: GovernanceConfig,
    overrides: LimitOverrides,
    limit_requests: Arc<LimitRequests>,
    /// Applied limits whose answer waits until every worker has left the old tables.
    limit_answers: Vec<(u64, Result<String, String>)>,
    /// The same for a `/tachyon/reload` that succeeded.
    reload_answer: Option<(u64, String)>,
    tables: Arc<RcuCell<Tables>>,
    config_path: Option<PathBuf>,
    tsc_hz: u64,
    sighup: Arc<AtomicBool>,
    requests: Arc<ReloadRequests>,
    snapshot: Arc<GovernanceSnapshot>,
    reloads_ok: u64,
    reloads_failed: u64,
    last_error: Option<String>,
    reconcile: ReconcileStatus,
    period: Duration,
    last_period_end: Option<Instant>,
    last_snapshot: Instant,
}

impl GovernanceControl {
    pub fn new(
        reconciler: Reconciler,
        tables: Arc<RcuCell<Tables>>,
        base: GovernanceConfig,
        config_path: Option<PathBuf>,
        tsc_hz: u64,
        snapshot: Arc<GovernanceSnapshot>,
    ) -> Result<Self, String> {
        // Installed before EAL starts (a SIGHUP then is a reload once running).
        let sighup = crate::control::signals::sighup()?;
        let period = tables.with_current(|t| Duration::from_secs_f64(t.reconcile_ticks() as f64 / t.tsc_hz() as f64));
        Ok(GovernanceControl {
            reconciler,
            base,
            overrides: LimitOverrides::default(),
            limit_requests: Arc::new(LimitRequests::default()),
            limit_answers: Vec::new(),
            reload_answer: None,
            tables,
            config_path,
            tsc_hz,
            sighup,
            requests: Arc::new(ReloadRequests::default()),
            snapshot,
            reloads_ok: 0,
            reloads_failed: 0,
            last_error: None,
            reconcile: ReconcileStatus::default(),
            period,
            last_period_end: None,
            last_snapshot: Instant::now(),
        })
    }

    /// Handle for the telemetry command that asks for a reload.
    pub fn requests(&self) -> Arc<ReloadRequests> {
        self.requests.clone()
    }

    /// Handle for the `/tachyon/limit` telemetry command.
    pub fn limit_requests(&self) -> Arc<LimitRequests> {
        self.limit_requests.clone()
    }

    /// How long the control loop may sleep before [`Self::tick`] has
    /// reconciliation work: until the next period boundary, or a quarter
    /// period while a live split waits for its reports (see
    /// [`Reconciler::next_poll`]).
    pub fn next_wake(&self) -> Duration {
        let now = tsc();
        let ticks = self.reconciler.next_poll(now).saturating_sub(now);
        Duration::from_secs_f64(ticks as f64 / self.tsc_hz.max(1) as f64)
    }

    /// One pass of the control loop: reconcile when a period is due, free
    /// tables no worker can still see, serve reload requests.
    pub fn tick(&mut self) {
        let started = Instant::now();
        let reconciler = &mut self.reconciler;
        if self.tables.with_current(|t| reconciler.poll(t, tsc())) {
            let now = Instant::now();
            self.reconcile.periods += 1;
            self.reconcile.last_duration = now - started;
            self.reconcile.lag =
                self.last_period_end.map(|prev| (started - prev).saturating_sub(self.period)).unwrap_or_default();
            self.last_period_end = Some(now);
            let stats = self.reconciler.stats();
            self.reconcile.tracked_limits = stats.tracked_ids as u64;
            self.reconcile.share_updates = stats.updates_sent;
            self.reconcile.safeguards = self.safeguards();
        }
        self.tables.reclaim();
        if self.sighup.swap(false, Ordering::SeqCst) {
            // The outcome is logged; SIGHUP has nobody to answer.
            let _ = self.reload("SIGHUP");
        }
        if self.reload_answer.is_none()
            && let Some(ticket) = self.requests.pending()
        {
            match self.reload("/tachyon/reload") {
                Ok(text) => self.reload_answer = Some((ticket, text)),
                Err(e) => self.requests.answer(ticket, Err(e.to_string())),
            }
        }
        while let Some((ticket, cmd)) = self.limit_requests.take() {
            match self.set_limit(&cmd) {
                Ok(text) => self.limit_answers.push((ticket, Ok(text))),
                Err(e) => self.limit_requests.answer(ticket, Err(e)),
            }
        }
        // "applied" means in force: answered once no worker can still be
        // deciding with the tables from before (every retired table freed).
        if (!self.limit_answers.is_empty() || self.reload_answer.is_some()) && self.tables.reclaim() == 0 {
            for (ticket, result) in self.limit_answers.drain(..) {
                self.limit_requests.answer(ticket, result);
            }
            if let Some((ticket, text)) = self.reload_answer.take() {
                self.requests.answer(ticket, Ok(text));
            }
        }
        if started - self.last_snapshot >= SNAPSHOT_EVERY {
            self.publish_snapshot();
            self.last_snapshot = started;
        }
    }

    /// Sets or clears one runtime limit: the config's section with every
    /// runtime limit on top is compiled and published like a reload. If it
    /// does not compile, the runtime limits and the running tables stay.
    pub fn set_limit(&mut self, cmd: &LimitCommand) -> Result<String, String> {
        let previous = self.overrides.apply(cmd);
        let compiled = self.overrides.merged(&self.base).compile_tables(self.tsc_hz);
        match compiled.and_then(|tables| self.reconciler.prepare_buckets(&tables).map(|()| tables)) {
            Ok(tables) => {
                let generation = tables.generation();
                self.tables.publish(tables);
                self.publish_snapshot();
                let text = match cmd.limit {
                    Some((rate, burst)) => {
                        format!("{} {}: rate {rate}/s burst {burst} (generation {generation})", cmd.kind, cmd.id)
                    }
                    None => format!("{} {}: runtime limit cleared (generation {generation})", cmd.kind, cmd.id),
                };
                crate::log_err!("tachyon: /tachyon/limit: {text}");
                Ok(text)
            }
            Err(e) => {
                self.overrides.restore(cmd, previous);
                crate::log_err!("tachyon: /tachyon/limit refused, the running limits stay: {e}");
                Err(e.to_string())
            }
        }
    }

    /// Rereads the config file and publishes its governance tables (with the
    /// runtime limits on top), or keeps the running ones and says why.
    pub fn reload(&mut self, trigger: &str) -> Result<String, ReloadError> {
        match check_retired(self.tables.reclaim()).and_then(|()| self.compile_from_file()) {
            Ok((base, tables)) => {
                self.base = base;
                let mut text = format!("generation {}, {} rule(s)", tables.generation(), tables.rule_count());
                if !self.overrides.is_empty() {
                    text += &format!(", {} runtime limit(s) kept", self.overrides.len());
                }
                self.tables.publish(tables);
                self.reloads_ok += 1;
                self.last_error = None;
                crate::log_err!("tachyon: reload ({trigger}): {text}");
                self.publish_snapshot();
                Ok(text)
            }
            Err(e) => {
                self.reloads_failed += 1;
                self.last_error = Some(e.to_string());
                crate::log_err!("tachyon: reload ({trigger}) refused, the running rules stay: {e}");
                Err(e)
            }
        }
    }

    /// Compiles the file's tables and gets the workers' bucket tables ready
    /// for them (allocated here if they must grow).
    fn compile_from_file(&mut self) -> Result<(GovernanceConfig, Tables), ReloadError> {
        let path = self.config_path.as_ref().ok_or(ReloadError::NoConfigFile)?;
        let config = Config::load(path)?;
        let governance = |source| ReloadError::Governance { path: path.clone(), source };
        let tables = self.overrides.merged(&config.governance).compile_tables(self.tsc_hz).map_err(governance)?;
        self.reconciler.prepare_buckets(&tables).map_err(governance)?;
        Ok((config.governance, tables))
    }

    fn publish_snapshot(&self) {
        let hits = self.tables.with_current(|t| self.reconciler.rule_hits(t));
        self.snapshot
            .set_rule_hits(hits.iter().enumerate().map(|(i, h)| RuleHits { rule: i.to_string(), hits: *h }).collect());
        self.snapshot.set_reconcile(self.reconcile);
    }

    /// The workers' safeguard counters as they last published them, summed.
    fn safeguards(&self) -> Safeguards {
        let mut sum = Safeguards::default();
        for worker in 0..self.reconciler.workers() {
            let c = self.reconciler.worker_counters(worker);
            sum.overflow_frames += c.overflow_frames;
            sum.evicted += c.evicted;
            sum.reports_lost += c.reports_lost;
            sum.shares_lost += c.shares_lost;
            sum.listings_refused += c.listings_refused;
        }
        sum
    }

    /// Governance figures for the final report.
    pub fn report_json(&self) -> serde_json::Value {
        let (generation, hits) = self.tables.with_current(|t| (t.generation(), self.reconciler.rule_hits(t)));
        let stats = self.reconciler.stats();
        json!({
            "generation": generation,
            "reloads_ok": self.reloads_ok,
            "reloads_failed": self.reloads_failed,
            "last_reload_error": self.last_error,
            "runtime_limits": self.overrides.to_json(),
            "rule_hits": hits,
            "reconcile_periods": stats.periods,
            "reconcile_last_duration_us": self.reconcile.last_duration.as_secs_f64() * 1e6,
            "reconcile_active_ids": stats.active_ids,
            "reconcile_tracked_ids": stats.tracked_ids,
            "reconcile_updates_sent": stats.updates_sent,
            "reconcile_late_reports": stats.late_reports,
            "reconcile_untracked_reports": stats.untracked_reports,
            "reconcile_deadline_finishes": stats.deadline_finishes,
            "safeguards": self.safeguards().events().into_iter().map(|(event, n)| (event.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(kind: LimitKind, id: u32, rate: u64, burst: u64) -> LimitCommand {
        LimitCommand { kind, id, limit: Some((rate, burst)) }
    }

    #[test]
    fn limit_parameters_parse() {
        assert_eq!(parse_limit("topic,7,1000,100"), Ok(set(LimitKind::Topic, 7, 1000, 100)));
        assert_eq!(parse_limit(" sender , 3 , 500 , 50 "), Ok(set(LimitKind::Sender, 3, 500, 50)));
        assert_eq!(parse_limit("topic,4294967295,1,1"), Ok(set(LimitKind::Topic, u32::MAX, 1, 1)));
        assert_eq!(parse_limit("topic,7,clear"), Ok(LimitCommand { kind: LimitKind::Topic, id: 7, limit: None }));
        assert_eq!(parse_limit(&format!("sender,1,1,{MAX_BURST}")), Ok(set(LimitKind::Sender, 1, 1, MAX_BURST)));
    }

    #[test]
    fn bad_limit_parameters_are_refused_with_the_reason() {
        let err = |p: &str| parse_limit(p).unwrap_err();
        assert!(err("").contains("no parameters"));
        assert!(err("queue,7,1,1").contains("unknown kind 'queue'"));
        assert!(err("topic").contains("1 parameter(s)"));
        assert!(err("topic,7").contains("2 parameter(s)"));
        assert!(err("topic,7,1").contains("3 parameter(s)"));
        assert!(err("topic,7,1,1,1").contains("5 parameter(s)"));
        assert!(err("topic,x,1,1").contains("topic id 'x'"));
        assert!(err("sender,-1,1,1").contains("sender id '-1'"));
        assert!(err("topic,4294967296,1,1").contains("not an integer in 0-4294967295"));
        assert!(err("topic,7,fast,1").contains("rate 'fast'"));
        assert!(err("topic,7,-5,1").contains("rate '-5'"));
        assert!(err("topic,7,1,1.5").contains("burst '1.5'"));
        assert!(err("topic,7,0,1").contains("at least 1 msg/s"));
        assert!(err("topic,7,1,0").contains("burst 0 is outside"));
        assert!(err(&format!("topic,7,1,{}", MAX_BURST + 1)).contains("is outside"));
        assert!(err("topic,7,99999999999999999999999,1").contains("rate"));
        assert!(err("topic,7,CLEAR").contains("3 parameter(s)"));
    }

    fn base() -> GovernanceConfig {
        let mut g = GovernanceConfig::default();
        g.topics.push(IdLimit { id: Some(7), rate: Some(10), burst: Some(1), ..IdLimit::default() });
        g.topics.push(IdLimit { ids: Some("100-199".into()), rate: Some(20), burst: Some(2), ..IdLimit::default() });
        g.senders.push(IdLimit { id: Some(7), rate: Some(30), burst: Some(3), ..IdLimit::default() });
        g
    }

    fn limit_of(list: &[IdLimit], id: u32) -> Option<(Option<u64>, Option<u64>)> {
        let hits: Vec<_> = list.iter().filter(|e| e.id == Some(id)).collect();
        assert!(hits.len() <= 1, "id {id} set twice: {list:?}");
        hits.first().map(|e| (e.rate, e.burst))
    }

    #[test]
    fn overrides_replace_the_same_id_and_leave_the_rest() {
        let mut o = LimitOverrides::default();
        assert_eq!(o.merged(&base()), base(), "no override: the config as it is");
        o.apply(&set(LimitKind::Topic, 7, 1000, 100));
        o.apply(&set(LimitKind::Topic, 150, 5, 5));
        o.apply(&set(LimitKind::Sender, 9, 40, 4));
        let m = o.merged(&base());
        assert_eq!(limit_of(&m.topics, 7), Some((Some(1000), Some(100))), "replaces the file's entry");
        assert_eq!(limit_of(&m.topics, 150), Some((Some(5), Some(5))), "an exact id inside a range");
        assert!(m.topics.iter().any(|e| e.ids.as_deref() == Some("100-199")), "the range stays");
        assert_eq!(limit_of(&m.senders, 7), Some((Some(30), Some(3))), "senders are apart from topics");
        assert_eq!(limit_of(&m.senders, 9), Some((Some(40), Some(4))));
        // The merge compiles, and an exact id beats the range it is in.
        let t = m.compile_tables(2_000_000_000).unwrap();
        assert!(t.generation() > 0);
        // Setting again replaces; clearing gives the file's limit back.
        let prev = o.apply(&set(LimitKind::Topic, 7, 2000, 200));
        assert_eq!(prev, Some((1000, 100)));
        assert_eq!(limit_of(&o.merged(&base()).topics, 7), Some((Some(2000), Some(200))));
        o.apply(&LimitCommand { kind: LimitKind::Topic, id: 7, limit: None });
        assert_eq!(limit_of(&o.merged(&base()).topics, 7), Some((Some(10), Some(1))));
        assert_eq!(o.len(), 2);
        // A restore undoes an apply exactly.
        let before = o.clone();
        let cmd = set(LimitKind::Sender, 9, 1, 1);
        let prev = o.apply(&cmd);
        o.restore(&cmd, prev);
        assert_eq!(o, before);
        let cmd = set(LimitKind::Sender, 11, 1, 1);
        let prev = o.apply(&cmd);
        o.restore(&cmd, prev);
        assert_eq!(o, before);
    }

    #[test]
    fn overrides_survive_a_new_base() {
        let mut o = LimitOverrides::default();
        o.apply(&set(LimitKind::Topic, 7, 1000, 100));
        // A reloaded file that sets the same id differently: the runtime limit wins.
        let mut reloaded = base();
        reloaded.topics[0].rate = Some(99);
        let m = o.merged(&reloaded);
        assert_eq!(limit_of(&m.topics, 7), Some((Some(1000), Some(100))));
        assert_eq!(o.to_json(), json!({"topic 7": "rate 1000/s burst 100"}));
    }

    #[test]
    fn limit_requests_are_answered_in_order() {
        let r = Arc::new(LimitRequests::default());
        let waiter = {
            let r = r.clone();
            std::thread::spawn(move || r.request_and_wait(set(LimitKind::Topic, 1, 1, 1), Duration::from_secs(5)))
        };
        let (ticket, cmd) = loop {
            if let Some(x) = r.take() {
                break x;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(cmd, set(LimitKind::Topic, 1, 1, 1));
        r.answer(ticket, Ok("done".into()));
        assert_eq!(waiter.join().unwrap(), Ok("done".into()));
        let late = r.request_and_wait(set(LimitKind::Topic, 2, 1, 1), Duration::from_millis(10));
        assert!(late.unwrap_err().contains("in time"));
        assert!(r.take().is_none(), "a timed-out request is taken back");
    }

    #[test]
    fn reloads_are_refused_while_retired_tables_pile_up() {
        assert!(check_retired(MAX_RETIRED - 1).is_ok());
        let e = check_retired(MAX_RETIRED).unwrap_err().to_string();
        assert!(e.contains("stalled worker"), "{e}");
    }
}
