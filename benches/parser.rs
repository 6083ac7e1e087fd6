//! Parser cost per packet: the classifier over valid frames of 1, 4 and 16
//! records (with and without VLAN), and over a malformed packet.

#![deny(unsafe_code)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tachyon::dataplane::classify::{NicChecksum, ParseConfig, classify};
use tachyon::traffic::FrameSpec;
use tachyon::wire::Layout;
use tachyon::wire::tachyon::field as tachyon_field;

fn frame(records: usize, vlan: bool) -> Vec<u8> {
    FrameSpec { records: vec![vec![0xab; 16]; records], vlan: vlan.then_some(7), ..FrameSpec::default() }.build()
}

fn bench_classify(c: &mut Criterion) {
    let cfg = ParseConfig::default();
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(1));
    for (name, pkt) in [
        ("1_record", frame(1, false)),
        ("4_records", frame(4, false)),
        ("4_records_vlan", frame(4, true)),
        ("16_records", frame(16, false)),
    ] {
        g.bench_function(name, |b| b.iter(|| classify(black_box(&pkt), NicChecksum::UNKNOWN, &cfg)));
        g.bench_function(format!("{name}_nic_checksum_good"), |b| {
            b.iter(|| classify(black_box(&pkt), NicChecksum::GOOD, &cfg))
        });
    }
    let mut bad = frame(4, false);
    bad[Layout::new(false).payload + tachyon_field::MAGIC] = b'X';
    g.bench_function("bad_magic", |b| b.iter(|| classify(black_box(&bad), NicChecksum::UNKNOWN, &cfg)));
    // A burst of 32 distinct packets, as the worker sees them.
    let burst: Vec<Vec<u8>> = (0..32).map(|i| frame(1 + i % 8, i % 3 == 0)).collect();
    g.throughput(Throughput::Elements(32));
    g.bench_function("burst_of_32_mixed", |b| {
        b.iter_batched(
            || (),
            |_| {
                for p in &burst {
                    black_box(classify(black_box(p), NicChecksum::UNKNOWN, &cfg).is_ok());
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_classify);
criterion_main!(benches);
