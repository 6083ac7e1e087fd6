//! The governance workload shared by `benches/governance.rs` and
//! `examples/governance_cost.rs`: ids spread over the u32 space, Zipf or
//! uniform popularity, realistic limits and ten rules.

#![allow(dead_code)] // each user takes the parts it needs

use tachyon::governance::{FrameKey, GovernanceConfig};

pub const TSC_HZ: u64 = 1_000_000_000;

/// SplitMix64: a small, fast, reproducible generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
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

/// How often each rank is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Popularity {
    Uniform,
    /// P(rank k) ∝ 1/(k+1)^s.
    Zipf(f64),
}

impl Popularity {
    pub fn name(self) -> String {
        match self {
            Popularity::Uniform => "uniform".into(),
            Popularity::Zipf(s) => format!("zipf{s}"),
        }
    }
}

/// Samples ranks 0..n.
pub struct Sampler {
    n: usize,
    cdf: Option<Vec<f64>>,
}

impl Sampler {
    pub fn new(n: usize, popularity: Popularity) -> Self {
        let cdf = match popularity {
            Popularity::Uniform => None,
            Popularity::Zipf(s) => {
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
                Some(cdf)
            }
        };
        Sampler { n, cdf }
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        match &self.cdf {
            None => (rng.next() % self.n as u64) as usize,
            Some(cdf) => {
                let u = rng.unit();
                cdf.partition_point(|&c| c < u).min(self.n - 1)
            }
        }
    }
}

/// Spreads ranks over the id space (a bijection on u32).
pub fn topic_id(rank: usize) -> u32 {
    (rank as u32).wrapping_mul(0x9E37_79B1)
}

pub fn sender_id(rank: usize) -> u32 {
    (rank as u32).wrapping_mul(0x85EB_CA77) ^ 0x5555
}

/// A bucket per topic and per sender (defaults, two profiles, an inline
/// sender limit), ten rules of every kind; tables sized for `max_topics`.
pub fn config(max_topics: usize) -> GovernanceConfig {
    let text = format!(
        r#"
        [governance]
        reconcile_us = 1000
        max_topics = {max_topics}
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

/// `count` frame keys over `topics` topics and `senders` senders, each
/// frame carrying `records` messages (0: 1 to 8 at random).
pub fn frames(count: usize, topics: usize, senders: usize, popularity: Popularity, records: u16) -> Vec<FrameKey> {
    let mut rng = Rng(42);
    let topic_ranks = Sampler::new(topics, popularity);
    let sender_ranks = Sampler::new(senders, popularity);
    (0..count)
        .map(|_| FrameKey {
            topic: topic_id(topic_ranks.sample(&mut rng)),
            sender: sender_id(sender_ranks.sample(&mut rng)),
            msg_count: if records == 0 { 1 + (rng.next() % 8) as u16 } else { records },
            src_ip: 0x0A01_0000 | (rng.next() as u32 & 0xFFFF),
            dst_port: 47000,
        })
        .collect()
}
