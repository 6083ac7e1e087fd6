//! Governance cost per frame (rules + topic bucket + sender quota, with the
//! amortised per-burst work) and the control lcore's time per
//! reconciliation period.
//!
//! Traffic (benches/workload): 100,000 topics and 10,000 senders drawn
//! from Zipf(1.1) or uniformly, one worker at 10 Mpps of simulated time
//! (TSC = 1 GHz, 100 ns per frame, bursts of 32), a bucket per topic and
//! per sender, ten rules, tables at their default sizes. The sweep varies
//! the topics in use (1k to 1M) and the records per frame (1 to 32).
//! `examples/governance_cost.rs` runs the same workload outside criterion
//! (median of short chunks: steadier on a busy machine).

#![deny(unsafe_code)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use std::time::{Duration, Instant};
use tachyon::governance::{FrameKey, GovernanceConfig, Reconciler, Shard, Tables, Verdict};

#[path = "workload/mod.rs"]
mod workload;
use workload::{Popularity, Rng, TSC_HZ, topic_id};

const TOPICS: usize = 100_000;
const SENDERS: usize = 10_000;
const BURST: usize = 32;
const TICKS_PER_FRAME: u64 = 100;
/// Bursts timed between two (untimed) reconciler polls.
const BURSTS_PER_POLL: usize = 8;

/// The default table sizes (1M topics, 128k senders), as a new user has them.
fn config() -> GovernanceConfig {
    workload::config(GovernanceConfig::default().max_topics as usize)
}

fn frames(topics: usize, popularity: Popularity, records: u16) -> Vec<FrameKey> {
    workload::frames(1 << 20, topics, SENDERS, popularity, records)
}

/// Worker 0 (timed) and its reconciler, plus idle workers that take part
/// in reconciliation, advancing simulated time per burst.
struct Plane {
    tables: Tables,
    shards: Vec<Shard>,
    reconciler: Reconciler,
    now: u64,
    next: usize,
}

impl Plane {
    fn new(config: &GovernanceConfig, workers: usize) -> Self {
        let (tables, shards, reconciler) = config.compile(TSC_HZ, workers).expect("compiles");
        Plane { tables, shards, reconciler, now: 0, next: 0 }
    }

    /// Runs `count` frames through worker 0 in bursts, frame by frame with
    /// `decide` or per burst with `decide_burst`; returns the time spent in
    /// its `begin_burst` + decisions only.
    fn run(&mut self, frames: &[FrameKey], count: u64, per_burst: bool) -> Duration {
        debug_assert!(frames.len().is_multiple_of(BURST));
        let mut verdicts = [Verdict::Forward(None); BURST];
        let mut timed = Duration::ZERO;
        let mut left = count as usize;
        while left > 0 {
            let worker = &mut self.shards[0];
            let start = Instant::now();
            for _ in 0..BURSTS_PER_POLL {
                if left == 0 {
                    break;
                }
                let n = left.min(BURST);
                let burst = &frames[self.next..self.next + n];
                worker.begin_burst(&self.tables, self.now);
                if per_burst {
                    worker.decide_burst(&self.tables, burst, self.now, &mut verdicts);
                } else {
                    for (key, verdict) in burst.iter().zip(&mut verdicts) {
                        *verdict = worker.decide(&self.tables, key, self.now);
                    }
                }
                black_box(&verdicts);
                self.next = (self.next + BURST) % frames.len();
                self.now += n as u64 * TICKS_PER_FRAME;
                left -= n;
            }
            timed += start.elapsed();
            // Untimed: what runs on other cores in the appliance.
            self.reconciler.poll(&self.tables, self.now);
            for idle in &mut self.shards[1..] {
                idle.begin_burst(&self.tables, self.now);
            }
        }
        timed
    }
}

fn per_frame(c: &mut Criterion) {
    let zipf = frames(TOPICS, Popularity::Zipf(1.1), 0);
    let uniform = frames(TOPICS, Popularity::Uniform, 0);
    let mut group = c.benchmark_group("governance_per_frame");
    let planes = [
        ("zipf_1_worker", &zipf, 1, false),
        ("zipf_1_worker_burst", &zipf, 1, true),
        ("uniform_1_worker_burst", &uniform, 1, true),
        ("zipf_1_busy_worker_of_2_burst", &zipf, 2, true),
    ];
    for (name, frames, workers, per_burst) in planes {
        let mut plane = Plane::new(&config(), workers);
        // Warm the tables with a few simulated seconds of traffic first.
        plane.run(frames, 4 << 20, per_burst);
        group.bench_function(name, |b| b.iter_custom(|iters| plane.run(frames, iters, per_burst)));
        let c = plane.shards[0].counters();
        let stats = plane.reconciler.stats();
        println!(
            "{name}: {} admitted, {} rule_drop, {} topic_limited, {} sender_limited frames; \
             {} limits reported in the last period, {} tracked",
            c.admitted_frames, c.rule_drop, c.topic_limited, c.sender_limited, stats.active_ids, stats.tracked_ids
        );
    }
    let mut pass = Plane::new(&GovernanceConfig::default(), 1);
    group.bench_function("pass_through", |b| b.iter_custom(|iters| pass.run(&zipf, iters, false)));
    group.finish();
}

/// How the per-frame cost grows with the ids in use (1k to 1M topics, the
/// tables always at their default size) and with the records a frame
/// carries (charged at once, so the cost per message falls).
fn cost_sweep(c: &mut Criterion) {
    let mut group = c.benchmark_group("governance_sweep");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    let mut points = Vec::new();
    for topics in [1_000, 100_000, 1_000_000] {
        for popularity in [Popularity::Zipf(1.1), Popularity::Uniform] {
            points.push((topics, popularity, 1));
        }
    }
    for records in [4, 16, 32] {
        points.push((TOPICS, Popularity::Zipf(1.1), records));
    }
    for (topics, popularity, records) in points {
        let frames = frames(topics, popularity, records);
        let mut plane = Plane::new(&config(), 1);
        plane.run(&frames, 4 << 20, true);
        let name = format!("{}_topics_{}_records_{records}", topics, popularity.name());
        group.bench_function(name, |b| b.iter_custom(|iters| plane.run(&frames, iters, true)));
    }
    group.finish();
}

/// The control lcore's work for one period in which 100,000 topic limits
/// were reported by both of 2 workers, every split moving (random demand):
/// draining 200,000 demand records, splitting 100,000 limits and queuing up
/// to 200,000 share updates. (A limit is reported once its demand nears
/// its default share; the limit here is set low so that all 100,000 are.)
fn reconcile_period(c: &mut Criterion) {
    let config = GovernanceConfig {
        topic_defaults: Some(tachyon::governance::LimitSpec { profile: None, rate: Some(10_000), burst: Some(1000) }),
        ..GovernanceConfig::default()
    };
    let (tables, mut shards, mut reconciler) = config.compile(TSC_HZ, 2).expect("compiles");
    let period = tables.reconcile_ticks();
    let mut rng = Rng(7);
    let mut now = 0u64;
    reconciler.poll(&tables, now);
    let mut group = c.benchmark_group("governance_control");
    group.sample_size(10).measurement_time(Duration::from_secs(3));
    group.bench_function("reconcile_period_100k_active_topics_2_workers", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                // Untimed: a period of traffic on every topic, both workers.
                for shard in shards.iter_mut() {
                    shard.begin_burst(&tables, now);
                    for rank in 0..TOPICS {
                        let key = FrameKey {
                            topic: topic_id(rank),
                            sender: 1,
                            msg_count: 1 + (rng.next() % 16) as u16,
                            src_ip: 0,
                            dst_port: 47000,
                        };
                        black_box(shard.decide(&tables, &key, now));
                    }
                }
                // Untimed: the period ends and the workers report.
                now += period;
                reconciler.poll(&tables, now);
                for _ in 0..(TOPICS / 1024 + 2) {
                    for shard in shards.iter_mut() {
                        shard.begin_burst(&tables, now);
                    }
                }
                // Timed: the control side's work for that period.
                let start = Instant::now();
                let reconciled = reconciler.poll(&tables, now + 1);
                timed += start.elapsed();
                assert!(reconciled, "all reports were in");
                // Untimed: the workers take their shares.
                for _ in 0..(TOPICS / 1024 + 2) {
                    for shard in shards.iter_mut() {
                        shard.begin_burst(&tables, now + 2);
                    }
                }
            }
            timed
        })
    });
    group.finish();
    let stats = reconciler.stats();
    println!(
        "control: {} periods, {} active limits in the last, {} updates sent, {} waiting",
        stats.periods, stats.active_ids, stats.updates_sent, stats.updates_waiting
    );
}

criterion_group!(benches, per_frame, cost_sweep, reconcile_period);
criterion_main!(benches);
