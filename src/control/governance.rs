//! The control lcore's side of governance: polls the reconciler, reclaims
//! retired tables, and reloads rules and limits on SIGHUP or the
//! `/tachyon/reload` telemetry command. A file that fails to read, parse or
//! compile is refused with the reason, and the running tables stay.

use crate::config::{Config, ConfigError};
use crate::control::metrics::{GovernanceSnapshot, ReconcileStatus, RuleHits};
use crate::dpdk::{RcuCell, tsc};
use crate::governance::{GovernanceConfigError, Reconciler, Tables};
use serde_json::json;
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

pub struct GovernanceControl {
    reconciler: Reconciler,
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
        config_path: Option<PathBuf>,
        tsc_hz: u64,
        snapshot: Arc<GovernanceSnapshot>,
    ) -> Result<Self, String> {
        // Installed before EAL starts (a SIGHUP then is a reload once running).
        let sighup = crate::control::signals::sighup()?;
        let period = tables.with_current(|t| Duration::from_secs_f64(t.reconcile_ticks() as f64 / t.tsc_hz() as f64));
        Ok(GovernanceControl {
            reconciler,
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

    /// How often the control loop should call [`Self::tick`]: several times a period.
    pub fn tick_interval(&self) -> Duration {
        (self.period / 4).max(Duration::from_micros(100))
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
        }
        self.tables.reclaim();
        if self.sighup.swap(false, Ordering::SeqCst) {
            // The outcome is logged; SIGHUP has nobody to answer.
            let _ = self.reload("SIGHUP");
        }
        if let Some(ticket) = self.requests.pending() {
            let result = self.reload("/tachyon/reload").map_err(|e| e.to_string());
            self.requests.answer(ticket, result);
        }
        if started - self.last_snapshot >= SNAPSHOT_EVERY {
            self.publish_snapshot();
            self.last_snapshot = started;
        }
    }

    /// Rereads the config file and publishes its governance tables, or keeps
    /// the running ones and says why.
    pub fn reload(&mut self, trigger: &str) -> Result<String, ReloadError> {
        match check_retired(self.tables.reclaim()).and_then(|()| self.compile_from_file()) {
            Ok(tables) => {
                let text = format!("generation {}, {} rule(s)", tables.generation(), tables.rule_count());
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

    fn compile_from_file(&self) -> Result<Tables, ReloadError> {
        let path = self.config_path.as_ref().ok_or(ReloadError::NoConfigFile)?;
        let config = Config::load(path)?;
        config
            .governance
            .compile_tables(self.tsc_hz)
            .map_err(|source| ReloadError::Governance { path: path.clone(), source })
    }

    fn publish_snapshot(&self) {
        let hits = self.tables.with_current(|t| self.reconciler.rule_hits(t));
        self.snapshot
            .set_rule_hits(hits.iter().enumerate().map(|(i, h)| RuleHits { rule: i.to_string(), hits: *h }).collect());
        self.snapshot.set_reconcile(self.reconcile);
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
            "rule_hits": hits,
            "reconcile_periods": stats.periods,
            "reconcile_last_duration_us": self.reconcile.last_duration.as_secs_f64() * 1e6,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloads_are_refused_while_retired_tables_pile_up() {
        assert!(check_retired(MAX_RETIRED - 1).is_ok());
        let e = check_retired(MAX_RETIRED).unwrap_err().to_string();
        assert!(e.contains("stalled worker"), "{e}");
    }
}
