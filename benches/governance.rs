//! Governance cost per frame (rules + topic bucket + sender quota, with the
//! amortised per-burst work) and the control lcore's time per
//! reconciliation period.
//!
//! Traffic: 100,000 topics and 10,000 senders drawn from Zipf(1.1), one
//! worker at 10 Mpps of simulated time (TSC = 1 GHz, 100 ns per frame,
//! bursts of 32), realistic limits and ten rules.

#![deny(unsafe_code)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use std::time::{Duration, Instant};
use tachyon::governance::{FrameKey, GovernanceConfig, Reconciler, Shard, Tables, Verdict};

const TSC_HZ: u64 = 1_000_000_000;
const TOPICS: usize = 100_000;
const SENDERS: usize = 10_000;
const BURST: usize = 32;
const TICKS_PER_FRAME: u64 = 100;
/// Bursts timed between two (untimed) reconciler polls.
const BURSTS_PER_POLL: usize = 8;

/// SplitMix64: a small, fast, reproducible generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Samples ranks 0..n with P(rank k) ∝ 1/(k+1)^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect();
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// Spreads ranks over the id space (a bijection on u32).
fn topic_id(rank: usize) -> u32 {
    (rank as u32).wrapping_mul(0x9E37_79B1)
}

fn sender_id(rank: usize) -> u32 {
    (rank as u32).wrapping_mul(0x85EB_CA77) ^ 0x5555
}

fn config() -> GovernanceConfig {
    let text = format!(
        r#"
        [governance]
        reconcile_us = 1000
        [governance.profiles.gold]
        rate = 2000000
        burst = 20000
        [governance.profiles.bronze]
        rate = 50000
        burst = 1000
        [governance.topic_defaults]
        rate = 200000
        burst = 4000
        [[governance.topics]]
        id = {t1}
        profile = "gold"
        [[governance.topics]]
        ids = "3000000000-3100000000"
        profile = "bronze"
        [governance.sender_defaults]
        rate = 500000
        burst = 10000
        [[governance.senders]]
        id = {s0}
        rate = 3000000
        burst = 30000
        [[governance.rules]]
        topic = {t5}
        action = "route"
        port = 1
        next_hop = "02:00:00:00:00:01"
        [[governance.rules]]
        topic = {t50}
        action = "drop"
        [[governance.rules]]
        topic = {t500}
        sender = {s3}
        action = "drop"
        [[governance.rules]]
        topics = "100000000-200000000"
        src = "10.1.0.0/16"
        action = "route"
        port = 2
        next_hop = "02:00:00:00:00:02"
        [[governance.rules]]
        topics = "300000000-310000000"
        action = "limit"
        profile = "bronze"
        [[governance.rules]]
        sender = {s7}
        action = "drop"
        [[governance.rules]]
        src = "192.168.0.0/16"
        action = "drop"
        [[governance.rules]]
        dst_port = 47001
        action = "drop"
        [[governance.rules]]
        topics = "4000000000-4294967295"
        dst_port = 47000
        action = "allow"
        [[governance.rules]]
        topic = {t1}
        action = "limit"
        profile = "gold"
        "#,
        t1 = topic_id(1),
        t5 = topic_id(5),
        t50 = topic_id(50),
        t500 = topic_id(500),
        s0 = sender_id(0),
        s3 = sender_id(3),
        s7 = sender_id(7),
    );
    #[derive(serde::Deserialize)]
    struct Root {
        governance: GovernanceConfig,
    }
    toml::from_str::<Root>(&text).expect("bench config").governance
}

fn zipf_frames(count: usize) -> Vec<FrameKey> {
    let mut rng = Rng(42);
    let topics = Zipf::new(TOPICS, 1.1);
    let senders = Zipf::new(SENDERS, 1.1);
    (0..count)
        .map(|_| FrameKey {
            topic: topic_id(topics.sample(&mut rng)),
            sender: sender_id(senders.sample(&mut rng)),
            msg_count: 1 + (rng.next() % 8) as u16,
            src_ip: 0x0A01_0000 | (rng.next() as u32 & 0xFFFF),
            dst_port: 47000,
        })
        .collect()
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
    let frames = zipf_frames(1 << 20);
    let mut group = c.benchmark_group("governance_per_frame");
    let planes = [("1_worker", 1, false), ("1_worker_burst", 1, true), ("1_busy_worker_of_2_burst", 2, true)];
    for (name, workers, per_burst) in planes {
        let mut plane = Plane::new(&config(), workers);
        // Warm the tables with a few simulated seconds of traffic first.
        plane.run(&frames, 4 << 20, per_burst);
        group.bench_function(format!("zipf_{name}"), |b| b.iter_custom(|iters| plane.run(&frames, iters, per_burst)));
        let c = plane.shards[0].counters();
        let stats = plane.reconciler.stats();
        println!(
            "{name}: {} admitted, {} rule_drop, {} topic_limited, {} sender_limited frames; \
             {} limits reported in the last period, {} tracked",
            c.admitted_frames, c.rule_drop, c.topic_limited, c.sender_limited, stats.active_ids, stats.tracked_ids
        );
    }
    let mut pass = Plane::new(&GovernanceConfig::default(), 1);
    group.bench_function("pass_through", |b| b.iter_custom(|iters| pass.run(&frames, iters, false)));
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

criterion_group!(benches, per_frame, reconcile_period);
criterion_main!(benches);
