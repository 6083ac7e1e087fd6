//! The control lcore's loop: it never touches packets. It ticks governance
//! (reconciliation, reloads), watches link state, prints the live line from
//! the workers' published counters, and decides when to stop (signal or
//! `--duration`).

use super::workers::{WorkerView, total};
use crate::control::governance::GovernanceControl;
use crate::dataplane::control_flags::ControlFlags;
use crate::dataplane::counters::{Counter, Snapshot};
use crate::dataplane::reason::DropReason;
use crate::dpdk::Port;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The longest the control loop sleeps: its other duties (signals, the
/// live line, reload and limit requests, the bridge) wait at most this.
const TICK: Duration = Duration::from_millis(1);
/// The shortest: a wake-up that came a hair early does not spin.
const MIN_SLEEP: Duration = Duration::from_micros(20);
/// How often link state is re-read.
const LINK_POLL: Duration = Duration::from_secs(1);

pub struct ControlLoop<'a> {
    pub workers: &'a [WorkerView],
    pub ports: &'a [&'a Port],
    pub flags: &'a ControlFlags,
    pub stop_signal: &'a AtomicBool,
    pub duration: Option<Duration>,
    pub stats_interval: Option<Duration>,
    /// The bridge region, whose dead subscribers this loop reaps.
    pub bridge: Option<&'a mut crate::bridge::BridgeHost>,
}

impl ControlLoop<'_> {
    /// Runs until a signal arrives or the duration has passed, ticking
    /// governance when it has work and at least every millisecond. The
    /// control lcore may share a CPU with a worker (on a small machine),
    /// so it wakes no more often than that: once a reconciliation period
    /// while no limit is live.
    pub fn run(&mut self, governance: &mut GovernanceControl) {
        let start = Instant::now();
        let mut last_links = start;
        let mut last_line = (start, total(self.workers));
        loop {
            std::thread::sleep(governance.next_wake().clamp(MIN_SLEEP, TICK));
            governance.tick();
            if let Some(b) = self.bridge.as_deref_mut() {
                b.tick();
            }
            let now = Instant::now();
            if self.stop_signal.load(Ordering::SeqCst) {
                crate::log_err!("tachyon: signal received, stopping");
                return;
            }
            if self.duration.is_some_and(|d| now - start >= d) {
                return;
            }
            if now - last_links >= LINK_POLL {
                let mask = self.ports.iter().filter(|p| p.link().up).fold(0u64, |m, p| m | 1 << p.id());
                self.flags.set_links_up(mask);
                last_links = now;
            }
            if let Some(every) = self.stats_interval
                && now - last_line.0 >= every
            {
                let snap = total(self.workers);
                let secs = (now - last_line.0).as_secs_f64();
                crate::log_out!("{}", live_line((now - start).as_secs_f64(), &snap.minus(&last_line.1), secs));
                last_line = (now, snap);
            }
        }
    }
}

/// One line: rates over the last interval and the drops by reason.
pub fn live_line(at_secs: f64, delta: &Snapshot, secs: f64) -> String {
    let rate = |c: Counter| delta.get(c) as f64 / secs;
    let mut line = format!(
        "[{at_secs:7.1}s] rx {:8.3} Mpps | tx {:8.3} Mpps | msgs in {:8.3} M/s, admitted {:8.3} M/s | drops {:8.3} Mpps",
        rate(Counter::RxPackets) / 1e6,
        rate(Counter::TxPackets) / 1e6,
        rate(Counter::MsgsReceived) / 1e6,
        rate(Counter::MsgsAdmitted) / 1e6,
        delta.dropped_total() as f64 / secs / 1e6,
    );
    let reasons: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| delta.drops(**r) > 0)
        .map(|r| format!("{}={:.0}/s", r.name(), delta.drops(*r) as f64 / secs))
        .collect();
    if !reasons.is_empty() {
        line.push_str(" [");
        line.push_str(&reasons.join(" "));
        line.push(']');
    }
    line
}
