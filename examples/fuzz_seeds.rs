//! Writes the fuzz seed corpus under `fuzz/corpus/<target>/` (committed):
//! real frames for every PROTOCOL.md parser drop reason and valid frames
//! for the rest, the same frames cut into segments, every config in
//! `dpdk-config/` and every config text in the tests that parses, and bridge
//! operation sequences including valid ring images taken from a real region.
//!
//!     cargo run --example fuzz_seeds        # from the repository root
//!
//! Deterministic (seeded RNG), so rerunning it changes nothing.

#![deny(unsafe_code)]

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tachyon::config::Config;
use tachyon::dataplane::reason::DropReason;
use tachyon::traffic::{FrameSpec, PARSER_REASONS, malformed};

// The input encoders of the fuzz targets (the checks in it are unused here).
#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz_checks;
use fuzz_checks::ring::Op;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("fuzz/corpus");
    let frames = frames();
    let mut n = [0usize; 4];
    let classify = fresh_dir(&corpus.join("classify"))?;
    for (name, f) in &frames {
        std::fs::write(classify.join(name), f)?;
        n[0] += 1;
    }
    let segments = fresh_dir(&corpus.join("classify_segments"))?;
    for (name, f) in &frames {
        // Cuts at the header boundaries (Ethernet, IPv4, UDP, Tachyon) and inside a record.
        for (i, cuts) in [&[][..], &[14], &[14, 34, 42], &[1, 40, 74, 75]].iter().enumerate() {
            std::fs::write(segments.join(format!("{name}-cut{i}")), fuzz_checks::segments::encode(cuts, f))?;
            n[1] += 1;
        }
    }
    let config = fresh_dir(&corpus.join("config"))?;
    for (name, text) in configs(&root)? {
        std::fs::write(config.join(name), text)?;
        n[2] += 1;
    }
    let ring = fresh_dir(&corpus.join("bridge_ring"))?;
    for (name, input) in ring_inputs()? {
        std::fs::write(ring.join(name), input)?;
        n[3] += 1;
    }
    println!("seeds: classify {}, classify_segments {}, config {}, bridge_ring {}", n[0], n[1], n[2], n[3]);
    Ok(())
}

fn fresh_dir(dir: &Path) -> std::io::Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(dir.to_path_buf())
}

/// Three shapes of well-formed frame the malformations start from.
fn bases() -> Vec<FrameSpec> {
    vec![
        FrameSpec { records: vec![b"hello".to_vec()], ..FrameSpec::default() },
        FrameSpec {
            vlan: Some(100),
            topic_id: 7,
            sender_id: 42,
            seq: 1000,
            timestamp_ns: Some(123_456_789),
            records: (0..8).map(|i| vec![i as u8; i * 3]).collect(),
            ..FrameSpec::default()
        },
        FrameSpec { topic_id: 3, records: vec![vec![0xab; 1200], vec![]], ..FrameSpec::default() },
    ]
}

/// Named frames: every parser reason on every base, and valid frames for
/// the reasons that depend on governance and TX state rather than bytes
/// (each names the reason the frame could earn under such a config).
fn frames() -> Vec<(String, Vec<u8>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut out = Vec::new();
    for (b, base) in bases().iter().enumerate() {
        out.push((format!("valid-{b}"), base.build()));
        for reason in PARSER_REASONS {
            for v in 0..2 {
                let frame = malformed(reason, base, &mut rng).expect("a parser reason");
                out.push((format!("{reason}-{b}-{v}"), frame));
            }
        }
    }
    let state_reasons = DropReason::ALL.iter().filter(|r| !PARSER_REASONS.contains(r));
    for (i, reason) in state_reasons.enumerate() {
        let spec = FrameSpec { topic_id: 100 + i as u32, sender_id: 9, ..bases()[0].clone() };
        out.push((format!("valid-for-{reason}"), spec.build()));
    }
    out
}

/// `dpdk-config/*.toml`, and every string literal in the tests and config
/// code that parses as a config (inline test configs).
fn configs(root: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut dir: Vec<_> = std::fs::read_dir(root.join("dpdk-config"))?.collect::<Result<_, _>>()?;
    dir.sort_by_key(|e| e.path());
    for entry in dir {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") {
            out.push((format!("dpdk-config-{}", entry.file_name().to_string_lossy()), std::fs::read_to_string(&path)?));
        }
    }
    let sources = ["tests/bad_input.rs", "tests/bridge_e2e.rs", "tests/governance_e2e.rs", "tests/limit_e2e.rs"]
        .into_iter()
        .chain(["tests/robustness.rs", "tests/dataplane.rs", "src/config.rs", "src/bridge/config.rs"])
        .chain(["src/governance/compile.rs", "src/governance/config.rs"]);
    let mut seen = std::collections::BTreeSet::new();
    for file in sources {
        let Ok(code) = std::fs::read_to_string(root.join(file)) else { continue };
        for text in string_literals(&code) {
            if text.contains('=') && Config::parse(&text).is_ok() && seen.insert(text.clone()) {
                let stem = Path::new(file).file_stem().unwrap_or_default().to_string_lossy().into_owned();
                out.push((format!("{stem}-{}", seen.len()), text));
            }
        }
    }
    // A governance config whose first line is also a runtime-limit request.
    let gov = std::fs::read_to_string(root.join("dpdk-config/governance-example.toml"))?;
    out.push(("limit-topic-on-governance-example".into(), format!("#topic,7,1000,100\n{gov}")));
    out.push(("limit-sender-clear".into(), "#sender,42,clear\n[governance]\nmax_senders = 1024\n".into()));
    Ok(out)
}

/// The contents of the ordinary `"..."` string literals in Rust source, unescaped.
fn string_literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        if c == '/' && chars.clone().next() == Some('/') {
            chars.by_ref().find(|&c| c == '\n');
            continue;
        }
        if c == '\'' {
            // A char literal ('"' or '\"') or a lifetime: skip up to its closing quote if short.
            let ahead: String = chars.clone().take(3).collect();
            if let Some(end) = ahead.find('\'') {
                chars.by_ref().take(end + 1).for_each(drop);
            }
            continue;
        }
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('\n') => {
                        // A line continuation: the next line's leading spaces are dropped.
                        while chars.clone().next().is_some_and(char::is_whitespace) {
                            chars.next();
                        }
                    }
                    Some(other) => s.push(other),
                    None => break,
                },
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

/// Operation sequences for the ring target: honest traffic (small and
/// split parts, budgets, a producer that dies), valid ring images written
/// through the hostile path, and a few classic corruptions of them.
fn ring_inputs() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let msgs = |n: u8, len: u16| (0..n).map(|i| (i, 9, len)).collect::<Vec<_>>();
    let drain = |shard| Op::Drain { shard, budget: 255, advance_ms: 0 };
    let out = vec![
        ("publish-drain".to_string(), vec![Op::Publish(msgs(3, 5)), drain(0)]),
        ("two-shards".into(), vec![Op::Publish(msgs(8, 16)), drain(0), drain(1)]),
        ("budget".into(), vec![Op::Publish(msgs(20, 1)), Op::Drain { shard: 0, budget: 3, advance_ms: 0 }]),
        (
            "dead-producer".into(),
            vec![
                Op::Die { shard: 0, len: 8 },
                Op::Publish(msgs(2, 4)),
                drain(0),
                Op::Drain { shard: 0, budget: 255, advance_ms: 200 },
            ],
        ),
        ("connect".into(), vec![Op::Publish(msgs(1, 1)), Op::Connect, drain(0)]),
    ];
    // Layout byte (see fuzz/src/lib.rs, `ring`): bit 0 two shards, bits 1-2 the
    // largest message (16, 100, 1000, 2000 bytes), bits 3-4 the unblock timeout
    // (0, 1, 10, 100 ms). Honest traffic: two shards, 1000 bytes, 10 ms.
    const HONEST: u8 = 1 | 2 << 1 | 2 << 3;
    let mut inputs: Vec<(String, Vec<u8>)> =
        out.into_iter().map(|(name, ops)| (name, fuzz_checks::ring::encode(HONEST, &ops))).collect();
    // One shard, 2000-byte messages: a 40 KiB part at 40 KiB straddles the
    // 64 KiB ring's end and is written as HEAD + padding + CONT.
    let split = vec![Op::Publish(msgs(20, 2000)), drain(0), Op::Publish(msgs(20, 2000)), drain(0)];
    inputs.push(("split-part".into(), fuzz_checks::ring::encode(3 << 1 | 2 << 3, &split)));
    const IMAGE: u8 = 2 << 1 | 2 << 3;
    let image = ring_image()?;
    inputs.push(("image".into(), fuzz_checks::ring::encode(IMAGE, &image_ops(&image, vec![]))));
    // The image with a garbage first record length, an insane tail, and a
    // first record stamped for another lap (word 0 is the tail, word 512
    // the ring's first 8 bytes: record length and kind).
    let first_len = u64::from(u32::from_le_bytes(image.1[..4].try_into().expect("a record")));
    let stale = first_len | u64::from(0xB1u32 | (999 << 8)) << 32;
    for (name, at, value) in [("bad-len", 512u16, 13u64), ("bad-tail", 0, u64::MAX), ("stale-kind", 512, stale)] {
        let word = Op::Word { shard: 0, at, value };
        inputs.push((format!("image-{name}"), fuzz_checks::ring::encode(IMAGE, &image_ops(&image, vec![word]))));
    }
    Ok(inputs)
}

/// The control words and the used bytes of shard 0's ring after a real
/// client published two batches into a real region: (tail, data).
fn ring_image() -> std::io::Result<(u64, Vec<u8>)> {
    use tachyon_bridge::{Bridge, Layout, Region};
    let layout = Layout {
        shards: 1,
        ingress_ring_bytes: fuzz_checks::ring::RING_BYTES,
        subscriber_slots: 0,
        subscriber_ring_bytes: 4096,
        max_message_bytes: 1000,
    };
    let path = std::env::temp_dir().join(format!("tachyon-fuzz-seed-{}.bridge", std::process::id()));
    let region = Region::create(&path, layout, 0o600, None).map_err(std::io::Error::other)?;
    let client = Bridge::connect(&path).map_err(std::io::Error::other)?;
    client.publish_batch(&[1, 2, 3], &[9, 9, 9], b"abcdefgh", &[0, 1, 4, 8]).map_err(std::io::Error::other)?;
    client.publish_batch(&[4], &[7], &[0x5a; 40], &[0, 40]).map_err(std::io::Error::other)?;
    let g = region.header().geometry;
    let bytes = std::fs::read(&path)?;
    let ring = (g.ingress_offset + 4096) as usize;
    let tail = u64::from_le_bytes(bytes[g.ingress_offset as usize..][..8].try_into().expect("8 bytes"));
    Ok((tail, bytes[ring..ring + tail as usize].to_vec()))
}

/// Writes an image into a fresh region through scribbles (data, then the
/// tail), applies `extra`, then drains.
fn image_ops(image: &(u64, Vec<u8>), extra: Vec<Op>) -> Vec<Op> {
    let (tail, data) = image;
    let ring = 4096 + 4096; // header page, then shard 0's control block
    let mut ops: Vec<Op> = data
        .chunks(255)
        .enumerate()
        .map(|(i, c)| Op::Scribble { offset: (ring + i * 255) as u32, bytes: c.to_vec() })
        .collect();
    ops.push(Op::Word { shard: 0, at: 0, value: *tail });
    ops.extend(extra);
    ops.push(Op::Drain { shard: 0, budget: 255, advance_ms: 0 });
    ops
}
