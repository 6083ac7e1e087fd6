//! Shards and a reconciler driven together on one thread with an injected
//! clock (1 tick = 1 ns): limits, rules, reconciliation, expiry, overflow,
//! reload and the exchange under stalls.

use super::*;
use crate::dataplane::reason::DropReason;

const HZ: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
/// Simulation step: every worker runs one burst per step.
const STEP: u64 = 10_000;

fn parse(text: &str) -> GovernanceConfig {
    #[derive(serde::Deserialize)]
    struct Root {
        governance: GovernanceConfig,
    }
    toml::from_str::<Root>(text).expect("valid TOML").governance
}

fn frame(topic: u32, sender: u32, msg_count: u16) -> FrameKey {
    FrameKey { topic, sender, msg_count, src_ip: 0x0A00_0001, dst_port: 47000 }
}

struct Sim {
    tables: Tables,
    shards: Vec<Shard>,
    reconciler: Reconciler,
    now: u64,
    /// Fractional frames not yet offered, per worker.
    credit: Vec<f64>,
    /// Poll the reconciler only when it asked to be ([`Reconciler::next_poll`]),
    /// as the control lcore does, instead of every step.
    lazy_control: bool,
    control_due: u64,
    control_polls: u64,
}

impl Sim {
    fn new(config: &str, workers: usize) -> Sim {
        let (tables, shards, reconciler) = parse(config).compile(HZ, workers).unwrap();
        Sim {
            tables,
            shards,
            reconciler,
            now: 0,
            credit: vec![0.0; workers],
            lazy_control: false,
            control_due: 0,
            control_polls: 0,
        }
    }

    /// One control poll (when due) and one (empty) burst start on every
    /// worker.
    fn tick(&mut self) {
        if !self.lazy_control || self.now >= self.control_due {
            self.reconciler.poll(&self.tables, self.now);
            self.control_due = self.reconciler.next_poll(self.now);
            self.control_polls += 1;
        }
        for shard in &mut self.shards {
            shard.begin_burst(&self.tables, self.now);
        }
    }

    fn decide(&mut self, worker: usize, key: &FrameKey) -> Verdict {
        self.shards[worker].decide(&self.tables, key, self.now)
    }

    /// Runs until `until`, each worker offering `rates[w]` one-message
    /// frames per second on `topic`. Returns messages admitted per worker.
    fn drive(&mut self, topic: u32, rates: &[f64], until: u64) -> Vec<u64> {
        let mut admitted = vec![0; rates.len()];
        while self.now < until {
            self.now += STEP;
            self.tick();
            for (w, &rate) in rates.iter().enumerate() {
                self.credit[w] += rate * STEP as f64 / HZ as f64;
                while self.credit[w] >= 1.0 {
                    self.credit[w] -= 1.0;
                    if let Verdict::Forward(_) = self.decide(w, &frame(topic, w as u32, 1)) {
                        admitted[w] += 1;
                    }
                }
            }
        }
        admitted
    }

    /// A reload as the control lcore does it: compile, get the workers'
    /// bucket tables ready, publish.
    fn reload(&mut self, config: &str) -> Result<(), GovernanceConfigError> {
        let tables = parse(config).compile_tables(HZ)?;
        self.reconciler.prepare_buckets(&tables)?;
        self.tables = tables;
        Ok(())
    }

    /// Advances time with no traffic.
    fn idle(&mut self, until: u64) {
        self.drive(0, &[], until);
    }
}

const RATE: u64 = 20_000;
const BURST: u64 = 200;

fn one_topic_limit() -> String {
    format!("[governance]\n[[governance.topics]]\nid = 1\nrate = {RATE}\nburst = {BURST}")
}

#[test]
fn bucket_admits_the_burst_then_refills_at_the_rate() {
    let mut sim = Sim::new("[governance]\n[[governance.topics]]\nid = 1\nrate = 1000\nburst = 10", 1);
    sim.tick();
    for _ in 0..10 {
        assert_eq!(sim.decide(0, &frame(1, 0, 1)), Verdict::Forward(None));
    }
    assert_eq!(sim.decide(0, &frame(1, 0, 1)), Verdict::Drop(DropReason::TopicLimited));
    sim.now += 5 * MS; // 5 tokens at 1000/s
    assert_eq!(sim.decide(0, &frame(1, 0, 5)), Verdict::Forward(None));
    assert_eq!(sim.decide(0, &frame(1, 0, 1)), Verdict::Drop(DropReason::TopicLimited));
    sim.now += 60 * MS; // refills to the burst, not beyond
    assert_eq!(sim.decide(0, &frame(1, 0, 10)), Verdict::Forward(None));
    assert_eq!(sim.decide(0, &frame(1, 0, 1)), Verdict::Drop(DropReason::TopicLimited));
    let c = sim.shards[0].counters();
    assert_eq!((c.admitted_frames, c.admitted_msgs, c.topic_limited), (12, 25, 3));
}

#[test]
fn frame_larger_than_the_burst_is_dropped_whole_and_takes_nothing() {
    let mut sim = Sim::new("[governance]\n[[governance.topics]]\nid = 1\nrate = 1000\nburst = 10", 1);
    sim.tick();
    assert_eq!(sim.decide(0, &frame(1, 0, 11)), Verdict::Drop(DropReason::TopicLimited));
    assert_eq!(sim.decide(0, &frame(1, 0, 10)), Verdict::Forward(None));
}

#[test]
fn sender_refusal_leaves_the_topic_tokens_alone() {
    let mut sim = Sim::new(
        "[governance]
        [[governance.topics]]
        id = 1
        rate = 1
        burst = 10
        [[governance.senders]]
        id = 7
        rate = 1
        burst = 5",
        1,
    );
    sim.tick();
    assert_eq!(sim.decide(0, &frame(1, 7, 5)), Verdict::Forward(None));
    assert_eq!(sim.decide(0, &frame(1, 7, 5)), Verdict::Drop(DropReason::SenderLimited));
    // Topic 1 still has its other 5 tokens: an unlimited sender gets them.
    assert_eq!(sim.decide(0, &frame(1, 8, 5)), Verdict::Forward(None));
    assert_eq!(sim.decide(0, &frame(1, 8, 1)), Verdict::Drop(DropReason::TopicLimited));
    let c = sim.shards[0].counters();
    assert_eq!((c.sender_limited, c.topic_limited), (1, 1));
}

/// Offers 10× the limit of one topic split by `weights` over the workers.
/// Returns admitted messages over the first second and over the second
/// after 200 ms of warm-up. `lazy`: the reconciler is polled only when it
/// asks to be.
fn split_run(weights: &[f64], lazy: bool) -> (u64, u64) {
    let mut sim = Sim::new(&one_topic_limit(), weights.len());
    sim.lazy_control = lazy;
    let rates: Vec<f64> = weights.iter().map(|w| w * 10.0 * RATE as f64).collect();
    let first: u64 = sim.drive(1, &rates, 1000 * MS).iter().sum();
    let mut sim = Sim::new(&one_topic_limit(), weights.len());
    sim.lazy_control = lazy;
    sim.drive(1, &rates, 200 * MS);
    let steady: u64 = sim.drive(1, &rates, 1200 * MS).iter().sum();
    (first, steady)
}

#[test]
fn one_global_limit_holds_across_workers_and_splits() {
    let tolerance = RATE / 50; // ±2 %
    let splits: &[&[f64]] = &[
        &[0.5, 0.5],
        &[0.9, 0.1],
        &[0.25, 0.25, 0.25, 0.25],
        &[0.9, 0.1 / 3.0, 0.1 / 3.0, 0.1 / 3.0],
        // Small workers below their fair share, the big one above it.
        &[0.99, 0.01],
        &[0.97, 0.01, 0.01, 0.01],
    ];
    // Polled every 10 µs, and only when the reconciler asks (as the
    // control lcore does: at boundaries, and a quarter period later while
    // a split is live).
    for (weights, lazy) in splits.iter().flat_map(|w| [(w, false), (w, true)]) {
        let (first, steady) = split_run(weights, lazy);
        assert!(
            first.abs_diff(RATE) <= tolerance + BURST,
            "{weights:?} (lazy control {lazy}): {first} msgs admitted in the first second, limit {RATE}/s + burst {BURST}"
        );
        assert!(
            steady.abs_diff(RATE) <= tolerance,
            "{weights:?} (lazy control {lazy}): {steady} msgs admitted in a steady second, limit {RATE}/s"
        );
    }
}

#[test]
fn a_lazy_control_polls_once_a_period_when_nothing_is_live_and_follows_a_split() {
    let mut sim = Sim::new(&one_topic_limit(), 2);
    sim.lazy_control = true;
    let polls_over = |sim: &mut Sim, rates: &[f64], ms: u64| {
        let (polls, periods) = (sim.control_polls, sim.reconciler.stats().periods);
        let until = sim.now + ms * MS;
        sim.drive(1, rates, until);
        (sim.control_polls - polls, sim.reconciler.stats().periods - periods)
    };
    // Below the limit: nothing is reported, one poll a period (1 ms).
    let (polls, periods) = polls_over(&mut sim, &[RATE as f64 / 10.0, RATE as f64 / 10.0], 50);
    assert!(polls <= 51, "{polls} polls in 50 periods with nothing live");
    assert!(periods >= 48, "{periods} periods reconciled");
    // Far above it on worker 0 only: the split follows within a few periods.
    let (polls, _) = polls_over(&mut sim, &[10.0 * RATE as f64, 0.0], 10);
    let share = sim.shards[0].topic_share(&sim.tables, 1).unwrap();
    assert!(share > 0.98, "worker 0 share {share} after 10 periods");
    assert!(polls > 10, "a live split is polled within its periods ({polls} polls)");
}

#[test]
fn a_worker_going_idle_gives_its_share_back_within_two_periods() {
    let mut sim = Sim::new(&one_topic_limit(), 2);
    let hot = 10.0 * RATE as f64;
    sim.drive(1, &[hot / 2.0, hot / 2.0], 100 * MS + 500_000);
    for w in 0..2 {
        let share = sim.shards[w].topic_share(&sim.tables, 1).unwrap();
        assert!((share - 0.5).abs() < 0.01, "worker {w} share {share} while both are busy");
    }
    // Worker 1 stops mid-period; two periods later worker 0 holds it all
    // but the idle worker's floor (1/128).
    let idle_from = sim.now;
    sim.drive(1, &[hot / 2.0, 0.0], idle_from + 2 * MS);
    let share = sim.shards[0].topic_share(&sim.tables, 1).unwrap();
    assert!(share > 0.98, "worker 0 share {share} two periods after worker 1 went idle");
    let idle_share = sim.shards[1].topic_share(&sim.tables, 1).unwrap();
    assert!(idle_share < 0.01, "idle worker kept {idle_share}");
    let start = sim.now;
    let admitted = sim.drive(1, &[hot / 2.0, 0.0], start + 500 * MS);
    let expected = RATE / 2;
    assert!(
        admitted[0].abs_diff(expected) <= expected / 50,
        "worker 0 admitted {} in 500 ms, limit {expected}",
        admitted[0]
    );
}

#[test]
fn traffic_moving_between_workers_follows_within_a_few_periods() {
    let mut sim = Sim::new(&one_topic_limit(), 2);
    let hot = 10.0 * RATE as f64;
    sim.drive(1, &[hot, 0.0], 300 * MS);
    let start = sim.now;
    let admitted = sim.drive(1, &[0.0, hot], start + 1000 * MS);
    assert!(admitted[1].abs_diff(RATE) <= RATE / 50, "admitted {admitted:?}");
}

#[test]
fn rules_decide_before_limits() {
    let mut sim = Sim::new(
        r#"[governance]
        [governance.profiles.gold]
        rate = 1
        burst = 2
        [governance.topic_defaults]
        rate = 1000
        burst = 1000
        [[governance.rules]]
        topic = 7
        action = "drop"
        [[governance.rules]]
        topics = "1000-1999"
        src = "10.0.0.0/8"
        action = "route"
        port = 1
        next_hop = "02:00:00:00:00:01"
        [[governance.rules]]
        topic = 9
        action = "limit"
        profile = "gold"
        "#,
        1,
    );
    sim.tick();
    let route = Route { port: 1, next_hop: [2, 0, 0, 0, 0, 1] };
    assert_eq!(sim.decide(0, &frame(7, 0, 1)), Verdict::Drop(DropReason::RuleDrop));
    assert_eq!(sim.decide(0, &frame(1500, 0, 1)), Verdict::Forward(Some(route)));
    let outside = FrameKey { src_ip: 0x0B00_0001, ..frame(1500, 0, 1) };
    assert_eq!(sim.decide(0, &outside), Verdict::Forward(None));
    // The limit rule puts topic 9 under gold (burst 2), not its default.
    assert_eq!(sim.decide(0, &frame(9, 0, 2)), Verdict::Forward(None));
    assert_eq!(sim.decide(0, &frame(9, 0, 1)), Verdict::Drop(DropReason::TopicLimited));
    assert_eq!(sim.shards[0].rule_hits(), [1, 1, 2]);
    assert_eq!(sim.shards[0].counters().default_action, 1);
    // The control side sees the hits once the worker publishes (next period).
    sim.idle(2 * MS);
    assert_eq!(sim.reconciler.rule_hits(&sim.tables), [1, 1, 2]);
    assert_eq!(sim.reconciler.worker_counters(0).rule_drop, 1);
}

#[test]
fn default_action_drop_applies_when_no_rule_matches() {
    let mut sim =
        Sim::new("[governance]\ndefault_action = \"drop\"\n[[governance.rules]]\nsender = 3\naction = \"allow\"", 1);
    sim.tick();
    assert_eq!(sim.decide(0, &frame(1, 3, 1)), Verdict::Forward(None));
    assert_eq!(sim.decide(0, &frame(1, 4, 1)), Verdict::Drop(DropReason::RuleDrop));
    assert_eq!(sim.shards[0].rule_hits(), [1]);
}

#[test]
fn pass_through_forwards_everything_and_counts() {
    let mut sim = Sim::new("[governance]", 2);
    assert!(sim.tables.is_pass_through());
    sim.tick();
    for i in 0..1000 {
        assert_eq!(sim.decide(1, &frame(i, i, 64)), Verdict::Forward(None));
    }
    let c = sim.shards[1].counters();
    assert_eq!((c.admitted_frames, c.admitted_msgs), (1000, 64_000));
}

#[test]
fn ids_beyond_the_table_share_their_profile_overflow_bucket() {
    let mut sim = Sim::new("[governance]\nmax_topics = 2\n[governance.topic_defaults]\nrate = 1\nburst = 10", 1);
    sim.tick();
    // Topics 1 and 2 get their own buckets; 3, 4 and 5 share the overflow one.
    for topic in 1..=4 {
        assert_eq!(sim.decide(0, &frame(topic, 0, 5)), Verdict::Forward(None), "topic {topic}");
    }
    assert_eq!(sim.decide(0, &frame(3, 0, 5)), Verdict::Drop(DropReason::TopicLimited));
    assert_eq!(sim.decide(0, &frame(5, 0, 1)), Verdict::Drop(DropReason::TopicLimited));
    assert_eq!(sim.decide(0, &frame(1, 0, 5)), Verdict::Forward(None));
    assert_eq!(sim.shards[0].counters().overflow_frames, 4);
}

#[test]
fn idle_full_buckets_expire_and_free_room() {
    let mut sim = Sim::new("[governance]\nmax_topics = 2\n[governance.topic_defaults]\nrate = 1000\nburst = 10", 1);
    sim.tick();
    sim.decide(0, &frame(1, 0, 10));
    sim.decide(0, &frame(2, 0, 10));
    // Idle long enough to refill (10 ms) and for the release of the split
    // the reconciler gave this single worker (about a second).
    sim.idle(2500 * MS);
    assert_eq!(sim.shards[0].counters().evicted, 2);
    assert_eq!(sim.shards[0].topic_share(&sim.tables, 1), None);
    assert_eq!(sim.decide(0, &frame(3, 0, 10)), Verdict::Forward(None));
    assert_eq!(sim.shards[0].counters().overflow_frames, 0, "topic 3 got a bucket of its own");
}

#[test]
fn a_lone_worker_gets_the_whole_limit_and_the_others_are_told_their_floor() {
    let mut sim = Sim::new(&one_topic_limit(), 4);
    sim.drive(1, &[0.0, 0.0, 5.0 * RATE as f64, 0.0], 10 * MS);
    let share = sim.shards[2].topic_share(&sim.tables, 1).unwrap();
    assert!(share > 1.0 - 3.0 / 256.0 - 0.001, "share {share}");
    // The others hold an explicit floor, so traffic showing up there
    // cannot start from the default quarter on top of worker 2's share.
    for w in [0, 1, 3] {
        let floor = sim.shards[w].topic_share(&sim.tables, 1).unwrap();
        assert!((floor - 1.0 / 256.0).abs() < 0.001, "worker {w} share {floor}");
    }
}

#[test]
fn a_split_limit_goes_back_to_the_default_after_a_second_idle() {
    let mut sim = Sim::new(&one_topic_limit(), 2);
    sim.drive(1, &[5.0 * RATE as f64, 0.0], 10 * MS);
    assert!(sim.shards[0].topic_share(&sim.tables, 1).unwrap() > 0.99);
    sim.idle(sim.now + 2500 * MS);
    for w in 0..2 {
        let share = sim.shards[w].topic_share(&sim.tables, 1);
        // Either back at half, or expired (which means the same).
        assert!(share.is_none_or(|s| (s - 0.5).abs() < 1e-3), "worker {w}: {share:?}");
    }
    assert_eq!(sim.reconciler.stats().tracked_ids, 0);
}

#[test]
fn a_split_limit_used_far_below_its_shares_stops_being_reported_and_is_released() {
    let mut sim = Sim::new(&one_topic_limit(), 2);
    sim.drive(1, &[5.0 * RATE as f64, 0.0], 10 * MS);
    assert!(sim.shards[0].topic_share(&sim.tables, 1).unwrap() > 0.99);
    // Both workers go on with a trickle (0.5 % of the limit each, a frame
    // every 10 ms, worker 1 half an interval after worker 0, so never in
    // the same period: each period's demand is lopsided). A share the
    // reconciler set is reported only while its demand nears it, so the
    // trickle neither moves the split every period nor keeps it alive: it
    // is released as if idle.
    let trickle = RATE as f64 / 200.0;
    sim.credit = vec![0.0, 0.5];
    let admitted = sim.drive(1, &[trickle, trickle], sim.now + 2500 * MS);
    assert_eq!(sim.reconciler.stats().tracked_ids, 0, "a limit nobody nears is not tracked");
    for (w, admitted) in admitted.into_iter().enumerate() {
        let share = sim.shards[w].topic_share(&sim.tables, 1).unwrap();
        assert!((share - 0.5).abs() < 1e-3, "worker {w} back at the default share: {share}");
        assert!(admitted >= 249, "worker {w} admitted its whole trickle: {admitted}");
    }
    let sent = sim.reconciler.stats().updates_sent;
    sim.drive(1, &[trickle, trickle], sim.now + 500 * MS);
    assert_eq!(sim.reconciler.stats().updates_sent, sent, "no split is moved for a trickle");
}

fn one_topic(rate: u64, burst: u64) -> String {
    format!("[governance]\n[[governance.topics]]\nid = 1\nrate = {rate}\nburst = {burst}")
}

#[test]
fn a_drained_bucket_is_still_drained_after_a_reload_of_the_same_config() {
    let mut sim = Sim::new(&one_topic(1, 5), 1);
    sim.tick();
    assert_eq!(sim.decide(0, &frame(1, 0, 5)), Verdict::Forward(None));
    sim.reload(&one_topic(1, 5)).unwrap();
    sim.tick();
    assert_eq!(sim.decide(0, &frame(1, 0, 1)), Verdict::Drop(DropReason::TopicLimited));
    // It refills at the rate as before: one token per second.
    sim.now += 1000 * MS;
    assert_eq!(sim.decide(0, &frame(1, 0, 1)), Verdict::Forward(None));
    assert_eq!(sim.decide(0, &frame(1, 0, 1)), Verdict::Drop(DropReason::TopicLimited));
}

#[test]
fn a_changed_limit_clips_the_tokens_and_never_refills_them() {
    let mut sim = Sim::new(&one_topic(1, 10), 1);
    sim.tick();
    assert_eq!(sim.decide(0, &frame(1, 0, 3)), Verdict::Forward(None));
    // 7 tokens left; a burst of 5 clips them to 5.
    sim.reload(&one_topic(1, 5)).unwrap();
    sim.tick();
    assert_eq!(sim.decide(0, &frame(1, 0, 6)), Verdict::Drop(DropReason::TopicLimited));
    assert_eq!(sim.decide(0, &frame(1, 0, 5)), Verdict::Forward(None));
    // A bigger burst and rate apply from now on but add no tokens.
    sim.reload(&one_topic(2, 20)).unwrap();
    sim.tick();
    assert_eq!(sim.decide(0, &frame(1, 0, 1)), Verdict::Drop(DropReason::TopicLimited));
    sim.now += 1000 * MS; // 2 tokens at the new rate
    assert_eq!(sim.decide(0, &frame(1, 0, 2)), Verdict::Forward(None));
    assert_eq!(sim.decide(0, &frame(1, 0, 1)), Verdict::Drop(DropReason::TopicLimited));
}

#[test]
fn an_id_moved_to_another_profile_gets_its_limit_without_a_refill() {
    let named = |id_profile: &str| {
        format!(
            "[governance.profiles]\nslow = {{ rate = 1, burst = 10 }}\nfast = {{ rate = 1, burst = 10 }}\n\
             [[governance.topics]]\nid = 1\nprofile = \"{id_profile}\"\n"
        )
    };
    let mut sim = Sim::new(&named("slow"), 1);
    sim.tick();
    assert_eq!(sim.decide(0, &frame(1, 0, 10)), Verdict::Forward(None));
    sim.reload(&named("fast")).unwrap();
    sim.tick();
    assert_eq!(sim.decide(0, &frame(1, 0, 1)), Verdict::Drop(DropReason::TopicLimited));
    // An id no longer limited loses its bucket.
    sim.reload("[governance]\n[[governance.topics]]\nid = 2\nrate = 1\nburst = 1\n").unwrap();
    sim.tick();
    for _ in 0..3 {
        assert_eq!(sim.decide(0, &frame(1, 0, 10)), Verdict::Forward(None));
    }
}

#[test]
fn a_reconciled_share_survives_reloads() {
    let mut sim = Sim::new(&one_topic_limit(), 2);
    sim.drive(1, &[5.0 * RATE as f64, 0.0], 10 * MS);
    let before = sim.shards[0].topic_share(&sim.tables, 1).unwrap();
    assert!(before > 0.99, "share {before}");
    for _ in 0..5 {
        sim.reload(&one_topic_limit()).unwrap();
        // Traffic goes on through the reloads.
        let until = sim.now + MS;
        sim.drive(1, &[5.0 * RATE as f64, 0.0], until);
        let share = sim.shards[0].topic_share(&sim.tables, 1).unwrap();
        assert!(share > 0.99, "share after a reload {share}");
        let floor = sim.shards[1].topic_share(&sim.tables, 1).unwrap();
        assert!(floor < 0.01, "the idle worker's floor after a reload {floor}");
    }
}

#[test]
fn listing_thresholds_follow_every_change_of_limit_and_period() {
    // Reconciled shares (worker 0 takes nearly all), a reload that changes
    // the period, one that changes the limit, expiry back to the default:
    // after each, every bucket validated under the current tables lists at
    // the demand its limit and the period give.
    let config = |rate: u64, period_us: u64| {
        format!(
            "[governance]\nreconcile_us = {period_us}\nmax_topics = 4\n[governance.topic_defaults]\n\
             rate = {rate}\nburst = {BURST}\n[governance.sender_defaults]\nrate = {rate}\nburst = {BURST}"
        )
    };
    let mut sim = Sim::new(&config(RATE, 1000), 2);
    let check = |sim: &Sim, when: &str| {
        for (w, shard) in sim.shards.iter().enumerate() {
            assert_eq!(shard.stale_listing_thresholds(), [], "worker {w}, {when}");
        }
    };
    sim.drive(1, &[5.0 * RATE as f64, 0.0], 10 * MS);
    assert!(sim.shards[0].topic_share(&sim.tables, 1).unwrap() > 0.99, "a reconciled share");
    check(&sim, "after reconciliation");
    let until = sim.now + 2 * MS;
    sim.drive(3, &[1000.0, 1000.0], until);
    for (rate, period_us, what) in [(RATE, 5000, "a new period"), (RATE / 2, 5000, "a new limit")] {
        sim.reload(&config(rate, period_us)).unwrap();
        let until = sim.now + 20 * MS;
        sim.drive(1, &[5.0 * RATE as f64, RATE as f64], until);
        // A quiet topic, far below its limit: never reconciled, so only
        // the revalidation gives it the new period's threshold.
        let until = sim.now + 2 * MS;
        sim.drive(3, &[1000.0, 1000.0], until);
        check(&sim, what);
    }
    // Topics 1-6 through a table of 4: overflow buckets and expiry.
    for topic in 2..=6 {
        let until = sim.now + MS;
        sim.drive(topic, &[1000.0, 1000.0], until);
    }
    sim.idle(sim.now + 2500 * MS);
    check(&sim, "after expiry");
}

#[test]
fn reloads_under_load_do_not_loosen_a_split_limit() {
    let mut sim = Sim::new(&one_topic_limit(), 2);
    let start = sim.now;
    let mut admitted = 0;
    // A reload every 2 ms for 100 ms, both workers far above the limit.
    while sim.now < start + 100 * MS {
        let until = sim.now + 2 * MS;
        admitted += sim.drive(1, &[3.0 * RATE as f64, 3.0 * RATE as f64], until).iter().sum::<u64>();
        sim.reload(&one_topic_limit()).unwrap();
    }
    let expected = RATE as f64 * 0.1 + BURST as f64;
    let error = (admitted as f64 - expected) / expected;
    eprintln!("admitted {admitted} vs {expected} ({:+.2} %)", error * 100.0);
    assert!(error.abs() < 0.02, "admitted {admitted} vs {expected} ({:+.2} %)", error * 100.0);
}

/// Every topic limited, at most `size` of them with a bucket of their own.
fn sized(size: u32) -> String {
    format!("[governance]\nmax_topics = {size}\n[governance.topic_defaults]\nrate = 1\nburst = 10")
}

#[test]
fn raising_the_table_sizes_takes_the_tables_the_control_allocated() {
    let mut sim = Sim::new(&sized(2), 1);
    sim.tick();
    for topic in 1..=2 {
        assert_eq!(sim.decide(0, &frame(topic, 0, 1)), Verdict::Forward(None));
    }
    sim.reload(&sized(64)).unwrap();
    sim.tick();
    assert!(sim.shards[0].fits(&sim.tables));
    for topic in 1..=64 {
        assert_eq!(sim.decide(0, &frame(topic, 0, 1)), Verdict::Forward(None), "topic {topic}");
    }
    assert_eq!(sim.shards[0].counters().overflow_frames, 0, "every topic got a bucket of its own");
}

#[test]
fn bigger_tables_nobody_allocated_are_not_allocated_by_the_worker() {
    let mut sim = Sim::new(&sized(2), 1);
    sim.tick();
    // Published without `prepare_buckets`: the worker keeps its size.
    sim.tables = parse(&sized(64)).compile_tables(HZ).unwrap();
    sim.tick();
    assert!(!sim.shards[0].fits(&sim.tables));
    for topic in 1..=3 {
        assert_eq!(sim.decide(0, &frame(topic, 0, 1)), Verdict::Forward(None), "topic {topic}");
    }
    assert_eq!(sim.shards[0].counters().overflow_frames, 1, "the third topic shares the overflow bucket");
}

#[test]
fn tables_too_big_to_allocate_refuse_the_reload_and_keep_the_rules() {
    let mut sim = Sim::new(&one_topic(1, 5), 2);
    sim.tick();
    assert_eq!(sim.decide(0, &frame(1, 0, 2)), Verdict::Forward(None));
    let mut huge = parse(&one_topic(1, 100)).compile_tables(HZ).unwrap();
    huge.max_topics = usize::MAX / 4;
    let err = sim.reconciler.prepare_buckets(&huge).unwrap_err();
    assert!(err.to_string().contains("cannot allocate"), "{err}");
    // Refused: the running tables (burst 5, 2 tokens taken... of the
    // worker's half) stay, and the workers go on.
    sim.tick();
    assert_eq!(sim.decide(0, &frame(1, 0, 1)), Verdict::Drop(DropReason::TopicLimited));
    assert_eq!(sim.decide(1, &frame(1, 1, 2)), Verdict::Forward(None));
    // A reload that fits still works afterwards.
    sim.reload(&one_topic(1, 5)).unwrap();
    sim.tick();
    assert_eq!(sim.decide(1, &frame(1, 1, 1)), Verdict::Drop(DropReason::TopicLimited));
}

#[test]
fn stalled_control_loses_reports_safely_and_catches_up() {
    let topics = 20_000u32;
    let mut sim = Sim::new(
        "[governance]\nmax_topics = 32768\nmax_senders = 1\n\
         [governance.topic_defaults]\nrate = 1000\nburst = 100",
        2,
    );
    sim.tick();
    for t in 0..topics {
        sim.decide(0, &frame(t, 0, 1));
    }
    sim.now += MS;
    sim.reconciler.poll(&sim.tables, sim.now); // period 1 closes
    for _ in 0..100 {
        // Spare batches run out: the worker waits instead of blocking.
        sim.shards[0].begin_burst(&sim.tables, sim.now);
    }
    sim.now += MS;
    sim.reconciler.poll(&sim.tables, sim.now); // deadline: reconcile what came
    sim.shards[0].begin_burst(&sim.tables, sim.now);
    let sent = 32 * 256; // the pool: 32 batches of 256
    assert_eq!(sim.shards[0].counters().reports_lost, u64::from(topics) - sent);
    assert!(sim.reconciler.stats().deadline_finishes >= 1);
    // The exchange carries on normally afterwards.
    sim.idle(sim.now + 10 * MS);
    assert_eq!(sim.decide(0, &frame(1, 0, 1)), Verdict::Forward(None));
}

#[test]
fn full_report_list_refuses_listings_and_reports_the_rest() {
    // One frame each for more topics than a report list holds, in one
    // period: each is due on the list (the default share earns half a
    // message a period, so one message reaches the listing threshold).
    let listed = super::buckets::MAX_LIST_LEN as u32;
    let topics = listed + 1000;
    let mut sim = Sim::new(
        &format!(
            "[governance]\nmax_topics = {}\nmax_senders = 1\n\
             [governance.topic_defaults]\nrate = 1000\nburst = 100",
            topics + 10
        ),
        2,
    );
    sim.tick();
    for t in 0..topics {
        assert_eq!(sim.decide(0, &frame(t, 0, 1)), Verdict::Forward(None), "topic {t}");
    }
    assert_eq!(sim.shards[0].counters().listings_refused, 1000, "only the list's capacity is listed");
    // The listed ones reach the reconciler whole, and the period closes
    // normally, not at its deadline.
    sim.now += MS;
    for _ in 0..2000 {
        sim.tick();
    }
    let stats = sim.reconciler.stats();
    assert_eq!(stats.active_ids, listed as usize);
    assert_eq!(stats.deadline_finishes, 0);
    assert_eq!(sim.shards[0].counters().reports_lost, 0);
    // An id refused a listing is listed in the next period, which has room.
    assert_eq!(sim.decide(0, &frame(topics - 1, 0, 1)), Verdict::Forward(None));
    assert_eq!(sim.shards[0].counters().listings_refused, 1000);
    sim.now += MS;
    for _ in 0..20 {
        sim.tick();
    }
    assert_eq!(sim.reconciler.stats().active_ids, 1);
}

#[test]
fn stalled_worker_gets_its_shares_late_but_all() {
    let topics = 20_000u32;
    let mut sim = Sim::new(
        "[governance]\nmax_topics = 32768\nmax_senders = 1\n\
         [governance.topic_defaults]\nrate = 1000\nburst = 100",
        2,
    );
    sim.tick();
    for t in 0..topics {
        sim.decide(0, &frame(t, 0, 1));
    }
    // Worker 0 reports, then stops polling once the control has queued
    // its shares: 20,000 updates against a pool of 32 × 256.
    while sim.reconciler.stats().updates_sent == 0 {
        sim.now += STEP;
        sim.tick();
    }
    for _ in 0..10 {
        sim.now += STEP;
        sim.reconciler.poll(&sim.tables, sim.now);
        sim.shards[1].begin_burst(&sim.tables, sim.now);
    }
    // The pool holds 32 × 256; worker 0 applied at most one burst's worth.
    let waiting = sim.reconciler.stats().updates_waiting;
    assert!(waiting >= 20_000 - 32 * 256 - 1024, "{waiting} updates waiting");
    sim.idle(sim.now + 5 * MS);
    assert_eq!(sim.reconciler.stats().updates_waiting, 0);
    assert_eq!(sim.shards[0].counters().shares_applied, u64::from(topics));
    let share = sim.shards[0].topic_share(&sim.tables, 12_345).unwrap();
    assert!(share > 0.99, "share {share}");
}

#[test]
fn control_work_follows_ids_near_their_limit_not_table_size() {
    let mut sim = Sim::new(
        "[governance]\n[governance.topic_defaults]\nrate = 1000000\nburst = 1000\n\
         [governance.sender_defaults]\nrate = 1000000\nburst = 1000",
        2,
    );
    sim.tick();
    // 1000 quiet topics (1 msg per period, far below the 250 that half a
    // default share allows) and 2 hot ones; all from sender 9 on worker 0.
    for t in 0..1000 {
        sim.decide(0, &frame(t, 9, 1));
    }
    for t in [5000, 5001] {
        sim.decide(0, &frame(t, 9, 300));
    }
    sim.idle(sim.now + MS + STEP);
    // The 2 hot topics and sender 9 (1600 msgs): 3 limits, out of the
    // 1,048,576 + 131,072 the tables are sized for and the 1003 in use.
    assert_eq!(sim.reconciler.stats().active_ids, 3);
    assert_eq!(sim.reconciler.stats().tracked_ids, 3);
}

/// Drives two identical sims with the same random frames, one deciding
/// bursts of 32 and the other frame by frame: verdicts, counters and rule
/// hits must agree. Returns how often each outcome occurred.
fn burst_and_single_agree(config: &str, workers: usize) -> [u32; 4] {
    let mut one = Sim::new(config, workers);
    let mut burst = Sim::new(config, workers);
    let mut seed = 1u32;
    let mut next = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        seed >> 16
    };
    let mut verdicts = [Verdict::Forward(None); 32];
    let mut outcomes = [0u32; 4];
    for _ in 0..200 {
        let keys: Vec<FrameKey> = (0..32).map(|_| frame(next() % 24, next() % 6, 1 + (next() % 8) as u16)).collect();
        for sim in [&mut one, &mut burst] {
            sim.now += 300_000;
            sim.tick();
        }
        let all_default = burst.shards[0].decide_burst(&burst.tables, &keys, burst.now, &mut verdicts);
        assert_eq!(all_default, verdicts.iter().all(|v| *v == Verdict::Forward(None)), "{verdicts:?}");
        for (key, &got) in keys.iter().zip(&verdicts) {
            let expected = one.decide(0, key);
            assert_eq!(got, expected, "{key:?}");
            outcomes[match expected {
                Verdict::Forward(_) => 0,
                Verdict::Drop(DropReason::RuleDrop) => 1,
                Verdict::Drop(DropReason::TopicLimited) => 2,
                Verdict::Drop(_) => 3,
            }] += 1;
        }
        assert_eq!(burst.shards[0].counters(), one.shards[0].counters());
        assert_eq!(burst.shards[0].rule_hits(), one.shards[0].rule_hits());
    }
    outcomes
}

const RULES_AND_LIMITS: &str = r#"[governance]
    max_topics = 8
    [governance.profiles.gold]
    rate = 50
    burst = 20
    [governance.topic_defaults]
    rate = 100
    burst = 30
    [governance.sender_defaults]
    rate = 80
    burst = 25
    [[governance.rules]]
    topic = 3
    action = "drop"
    [[governance.rules]]
    topics = "10-19"
    action = "limit"
    profile = "gold"
    [[governance.rules]]
    topic = 5
    action = "route"
    port = 1
    next_hop = "02:00:00:00:00:01""#;

#[test]
fn decide_burst_agrees_with_decide() {
    for workers in [1, 2] {
        let outcomes = burst_and_single_agree(RULES_AND_LIMITS, workers);
        // The traffic exercises every outcome.
        assert!(outcomes.iter().all(|&n| n > 0), "{workers} workers: {outcomes:?}");
    }
}

#[test]
fn decide_burst_tells_when_every_frame_takes_the_default_route() {
    // The worker sends such a burst whole, without reading its verdicts:
    // one dropped or routed frame anywhere in it must say no.
    let mut sim = Sim::new(RULES_AND_LIMITS, 1);
    let mut verdicts = [Verdict::Forward(None); 4];
    let plain = [frame(1, 1, 1), frame(2, 2, 1), frame(4, 1, 1), frame(6, 3, 1)];
    let mut decide = |sim: &mut Sim, keys: &[FrameKey]| {
        sim.now += 1_000_000;
        sim.shards[0].decide_burst(&sim.tables, keys, sim.now, &mut verdicts)
    };
    assert!(decide(&mut sim, &plain), "all admitted, default route");
    for (odd_one, what) in
        [(frame(3, 1, 1), "rule drop"), (frame(5, 1, 1), "route rule"), (frame(7, 2, 31), "over the topic's burst")]
    {
        let mut keys = plain;
        keys[2] = odd_one;
        assert!(!decide(&mut sim, &keys), "{what}");
    }
    assert!(decide(&mut sim, &plain), "and again");
}

#[test]
fn decide_burst_agrees_with_decide_whatever_the_tables_limit() {
    // Each kind of work has its own copy of the burst loop.
    let rules = r#"
        [[governance.rules]]
        topic = 3
        action = "drop"
        [[governance.rules]]
        topic = 5
        action = "route"
        port = 1
        next_hop = "02:00:00:00:00:01""#;
    let topics_only = format!("[governance]\n[governance.topic_defaults]\nrate = 100\nburst = 30\n{rules}");
    let senders_only = format!("[governance]\n[governance.sender_defaults]\nrate = 80\nburst = 25\n{rules}");
    let rules_only = format!("[governance]\n{rules}");
    // No default profile: frames of the other ids skip their buckets.
    let some_topics = format!("[governance]\n[[governance.topics]]\nids = \"2-8\"\nrate = 100\nburst = 30\n{rules}");
    let some_senders = format!("[governance]\n[[governance.senders]]\nid = 4\nrate = 80\nburst = 25\n{rules}");
    for workers in [1, 2] {
        let [admitted, _, topic_limited, sender_limited] = burst_and_single_agree(&some_topics, workers);
        assert!(admitted > 0 && topic_limited > 0 && sender_limited == 0, "some topics");
        let [admitted, _, topic_limited, sender_limited] = burst_and_single_agree(&some_senders, workers);
        assert!(admitted > 0 && topic_limited == 0 && sender_limited > 0, "some senders");
        let [_, _, topic_limited, sender_limited] = burst_and_single_agree(&topics_only, workers);
        assert!(topic_limited > 0 && sender_limited == 0, "topics only");
        let [_, _, topic_limited, sender_limited] = burst_and_single_agree(&senders_only, workers);
        assert!(topic_limited == 0 && sender_limited > 0, "senders only");
        let [admitted, dropped, topic_limited, sender_limited] = burst_and_single_agree(&rules_only, workers);
        assert!(admitted > 0 && dropped > 0 && topic_limited + sender_limited == 0, "rules only");
    }
}

#[test]
fn without_a_default_only_the_named_ids_and_limit_rules_meet_buckets() {
    // Topics 1-10 and sender 7 are limited, topics 100-199 by a `limit`
    // rule; nothing else. Topic (1 << 24) + 5 shares a screen bit with
    // topics 1-10 (the screen folds blocks 2^24 ids apart together) and
    // topic 50 their block: both must still go unlimited.
    let mut sim = Sim::new(
        r#"[governance]
        [governance.profiles.tight]
        rate = 1
        burst = 3
        [[governance.topics]]
        ids = "1-10"
        rate = 1
        burst = 5
        [[governance.senders]]
        id = 7
        rate = 1
        burst = 4
        [[governance.rules]]
        topics = "100-199"
        action = "limit"
        profile = "tight""#,
        2,
    );
    assert!(sim.tables.some_ids_unlimited);
    let unlimited = [50, (1 << 24) + 5, 9000];
    let admitted = |sim: &mut Sim, topic: u32, sender: u32| {
        let burst: Vec<FrameKey> = (0..40).map(|_| frame(topic, sender, 1)).collect();
        let mut verdicts = [Verdict::Forward(None); 40];
        sim.shards[0].decide_burst(&sim.tables, &burst, sim.now, &mut verdicts);
        verdicts.iter().filter(|v| matches!(v, Verdict::Forward(_))).count()
    };
    // Two workers: each holds half of every limit by default.
    assert_eq!(admitted(&mut sim, 5, 1), 2, "topic in the named range");
    assert_eq!(admitted(&mut sim, 150, 1), 1, "topic under a limit rule");
    assert_eq!(admitted(&mut sim, 20_000, 7), 2, "named sender");
    for topic in unlimited {
        assert_eq!(admitted(&mut sim, topic, 1), 40, "topic {topic}");
    }
    let shard = &sim.shards[0];
    assert!(shard.topic_share(&sim.tables, 5).is_some() && shard.sender_share(&sim.tables, 7).is_some());
    for topic in unlimited {
        assert_eq!(shard.topic_share(&sim.tables, topic), None, "no bucket for topic {topic}");
    }
}

#[test]
fn big_frames_on_a_worker_with_a_small_share_get_burst_room() {
    // Worker 0 uses half the limit; worker 1 sends one 80-message frame
    // every 20 ms (1/5 of the limit), more than the burst its rate share
    // (1/4) would carry. A global bucket would admit them all: after at
    // most two refusals, so must the split one.
    let mut sim = Sim::new(&one_topic_limit(), 2);
    let mut refused = 0;
    for _ in 0..50 {
        let until = sim.now + 20 * MS;
        sim.drive(1, &[0.5 * RATE as f64, 0.0], until);
        if sim.decide(1, &frame(1, 1, 80)) != Verdict::Forward(None) {
            refused += 1;
        }
    }
    assert!(refused <= 2, "{refused} of 50 big frames refused");
    let c = sim.shards[0].counters();
    assert_eq!(c.topic_limited, 0, "worker 0 below its share is never refused");
    let burst_share = sim.shards[1].topic_share(&sim.tables, 1).unwrap();
    assert!(burst_share < 0.5, "rate share {burst_share} stays small");
}

#[test]
fn a_refusal_lists_the_bucket_even_at_its_first_touch_and_far_below_its_threshold() {
    // A high rate, a small burst and a long period: each worker's default
    // share earns 5,000 messages a period (listing threshold 2,500) but
    // holds a burst of 50. Worker 1 sends one 80-message frame every
    // 20 ms, each its bucket's first touch in a period, with demand far
    // below the threshold: only the refusal can tell the reconciler, and
    // once told it gives the lone sender the whole limit.
    let config = "[governance]\nreconcile_us = 10000\n[[governance.topics]]\nid = 1\nrate = 1000000\nburst = 100";
    let mut sim = Sim::new(config, 2);
    let mut refused = 0;
    for _ in 0..20 {
        let until = sim.now + 20 * MS;
        sim.idle(until);
        if sim.decide(1, &frame(1, 1, 80)) != Verdict::Forward(None) {
            refused += 1;
        }
    }
    assert!(refused <= 2, "{refused} of 20 frames refused");
    assert!(sim.shards[1].topic_share(&sim.tables, 1).unwrap() > 0.5, "worker 1 holds most of the limit");
}

#[test]
fn shards_and_reconciler_can_move_to_their_threads() {
    fn send<T: Send>() {}
    fn shared<T: Send + Sync>() {}
    send::<Shard>();
    send::<Reconciler>();
    shared::<Tables>();
}
