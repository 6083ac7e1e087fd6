//! Governance cost per frame, robust to a busy machine: runs a worker's
//! bursts (begin_burst + decide_burst) over a fixed workload in chunks of
//! 64 bursts and prints the median chunk's time per frame, so that time
//! slices lost to other processes (milliseconds) fall outside the median
//! of chunks that last ~100 µs. Also a fixed workload for
//! `perf stat` / `valgrind --tool=callgrind`.
//!
//! Usage: governance_cost [TOPICS] [uniform|zipf] [RECORDS] [WORKERS] [CHUNKS]
//! Prints one JSON line.

#![deny(unsafe_code)]

#[path = "../benches/workload/mod.rs"]
mod workload;

use std::hint::black_box;
use std::time::Instant;
use tachyon::governance::{GovernanceConfig, Verdict};
use workload::{Popularity, TSC_HZ};

const BURST: usize = 32;
const BURSTS_PER_CHUNK: usize = 64;
/// Simulated 10 Mpps: 100 TSC ticks (1 GHz) per frame.
const TICKS_PER_FRAME: u64 = 100;

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() {
    let topics: usize = arg(1, 100_000);
    let popularity = match arg(2, "zipf".to_string()).as_str() {
        "uniform" => Popularity::Uniform,
        _ => Popularity::Zipf(1.1),
    };
    let records: u16 = arg(3, 1);
    let workers: usize = arg(4, 1);
    let chunks: usize = arg(5, 2000);

    let frames = workload::frames(1 << 20, topics, 10_000, popularity, records);
    let config = workload::config(GovernanceConfig::default().max_topics as usize);
    let (tables, mut shards, mut reconciler) = config.compile(TSC_HZ, workers).expect("compiles");
    let mut verdicts = [Verdict::Forward(None); BURST];
    let mut now = 0u64;
    let mut next = 0usize;
    let mut chunk_ns = Vec::with_capacity(chunks);
    // A quarter of the chunks warm the tables up, untimed.
    for chunk in 0..chunks + chunks / 4 {
        let start = Instant::now();
        let worker = &mut shards[0];
        for _ in 0..BURSTS_PER_CHUNK {
            let burst = &frames[next..next + BURST];
            worker.begin_burst(&tables, now);
            worker.decide_burst(&tables, burst, now, &mut verdicts);
            black_box(&verdicts);
            next = (next + BURST) % frames.len();
            now += BURST as u64 * TICKS_PER_FRAME;
        }
        let elapsed = start.elapsed().as_nanos() as f64;
        if chunk >= chunks / 4 {
            chunk_ns.push(elapsed / (BURSTS_PER_CHUNK * BURST) as f64);
        }
        // Untimed: what runs on the other cores in the appliance.
        reconciler.poll(&tables, now);
        for idle in &mut shards[1..] {
            idle.begin_burst(&tables, now);
        }
    }
    chunk_ns.sort_by(f64::total_cmp);
    let median = chunk_ns[chunk_ns.len() / 2];
    let p10 = chunk_ns[chunk_ns.len() / 10];
    let c = shards[0].counters();
    println!(
        "{{\"topics\":{topics},\"popularity\":\"{}\",\"records\":{records},\"workers\":{workers},\
         \"ns_per_frame\":{median:.2},\"ns_per_frame_p10\":{p10:.2},\"admitted\":{},\"topic_limited\":{},\
         \"sender_limited\":{},\"rule_drop\":{}}}",
        popularity.name(),
        c.admitted_frames,
        c.topic_limited,
        c.sender_limited,
        c.rule_drop
    );
}
