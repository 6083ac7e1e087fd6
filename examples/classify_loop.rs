//! Classifies the same frame N times: a fixed workload for instruction counts
//! (valgrind --tool=callgrind) when hardware counters are not available.

#![deny(unsafe_code)]

use std::hint::black_box;
use tachyon::dataplane::classify::{NicChecksum, ParseConfig, classify};
use tachyon::traffic::FrameSpec;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let records: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(4);
    let pkt = FrameSpec { records: vec![vec![0xab; 8]; records], ..FrameSpec::default() }.build();
    let cfg = ParseConfig::default();
    let mut ok = 0u64;
    let t = std::time::Instant::now();
    for _ in 0..n {
        ok += classify(black_box(&pkt), NicChecksum::UNKNOWN, &cfg).is_ok() as u64;
    }
    println!("{ok} ok, {:.2} ns/packet", t.elapsed().as_nanos() as f64 / n as f64);
}
