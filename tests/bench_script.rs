//! `scripts/bench.sh --short` on the debug binaries: every case of the
//! README's table is present once, as well-formed JSON with the machine's
//! description and positive figures, including the minimum-size line-rate
//! cases and the governance sweep (which runs examples/governance_cost). Speed is not judged here (debug build,
//! shared machine); the full run is for people: `bash scripts/bench.sh`.

#![deny(unsafe_code)]

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const THROUGHPUT: [&str; 4] = ["testpmd-io", "testpmd-macswap", "tachyon-governance-off", "tachyon-governance-on"];
const LATENCY: [&str; 4] = ["capacity", "load-10", "load-50", "load-90"];
const LINE_RATE: [&str; 5] = [
    "min-testpmd-io",
    "min-tachyon-pass-through",
    "min-tachyon-governed",
    "min-tachyon-governed-zipf",
    "min-tachyon-governed-some-topics",
];
/// The governance sweep: (topics, popularity, records per frame).
const SWEEP: [(u64, &str, u64); 9] = [
    (1000, "zipf", 1),
    (1000, "uniform", 1),
    (100000, "zipf", 1),
    (100000, "uniform", 1),
    (1000000, "zipf", 1),
    (1000000, "uniform", 1),
    (100000, "zipf", 4),
    (100000, "zipf", 16),
    (100000, "zipf", 32),
];

fn positive(line: &Value, key: &str) -> f64 {
    let v = line[key].as_f64().unwrap_or_else(|| panic!("no number {key} in {line}"));
    assert!(v > 0.0 && v.is_finite(), "{key} = {v} in {line}");
    v
}

fn find<'a>(lines: &'a [Value], kind: &str, case: &str) -> &'a Value {
    let found: Vec<&Value> = lines.iter().filter(|l| l["kind"] == kind && l["case"] == case).collect();
    assert_eq!(found.len(), 1, "{kind}/{case} should appear once in {lines:?}");
    found[0]
}

#[test]
fn bench_script_short_mode_writes_every_case() {
    let _g = dpdk_lock();
    let out_dir = scratch_dir("bench-short");
    let bin_dir = Path::new(tachyon_bin()).parent().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new("bash")
        .arg(root.join("scripts/bench.sh"))
        .args(["--short", "--bin-dir", bin_dir.to_str().unwrap(), "--out", out_dir.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench.sh --short failed:\n{stderr}");

    let text = std::fs::read_to_string(out_dir.join("results.jsonl")).unwrap();
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    // l3fwd is left out of --short, as a line saying so; governed scaling adds two.
    let expected = THROUGHPUT.len() + 2 + LATENCY.len() + LINE_RATE.len() + 1 + 2 + SWEEP.len();
    assert_eq!(lines.len(), expected, "{text}");
    for line in &lines {
        assert!(!line["cpu_model"].as_str().unwrap_or("").is_empty(), "{line}");
        assert!(line["cores"].as_u64().unwrap_or(0) > 0, "{line}");
        assert_eq!(line["mode"], "short");
    }
    let io = positive(find(&lines, "throughput", "testpmd-io"), "mpps");
    for case in THROUGHPUT {
        let line = find(&lines, "throughput", case);
        assert!(line.get("skipped").is_none(), "case skipped: {line}");
        let mpps = positive(line, "mpps");
        positive(line, "msgs_per_s");
        let ns = positive(line, "ns_per_packet");
        assert!((ns - 1e3 / mpps).abs() / ns < 1e-6, "ns/packet disagrees with Mpps: {line}");
        let ratio = positive(line, "ratio_vs_testpmd_io");
        assert!((ratio - mpps / io).abs() < 1e-9, "{line}");
    }
    let cores = lines[0]["cores"].as_u64().unwrap().max(2);
    let one = find(&lines, "scaling", "workers-1");
    let many = find(&lines, "scaling", &format!("workers-{cores}"));
    assert_eq!(positive(one, "efficiency"), 1.0);
    let eff = positive(many, "efficiency");
    assert!((eff - positive(many, "mpps") / (cores as f64 * positive(one, "mpps"))).abs() < 1e-9, "{many}");
    // The peer on the same cores: testpmd io's own efficiency, and tachyon's relative to it.
    let peer_eff = positive(many, "testpmd_io_efficiency");
    let io_ratio = positive(many, "testpmd_io_mpps") / (cores as f64 * positive(one, "testpmd_io_mpps"));
    assert!((peer_eff - io_ratio).abs() < 1e-9, "{many}");
    assert!((positive(many, "efficiency_vs_testpmd_io") - eff / peer_eff).abs() < 1e-9, "{many}");
    positive(find(&lines, "latency", "capacity"), "mpps");
    for case in &LATENCY[1..] {
        let line = find(&lines, "latency", case);
        let (p50, p99, p999) = (positive(line, "p50_us"), positive(line, "p99_us"), positive(line, "p999_us"));
        assert!(p50 <= p99 && p99 <= p999, "{line}");
        positive(line, "achieved_mpps");
        assert!(line["loss_ratio"].as_f64().is_some(), "{line}");
    }
    let min_io = positive(find(&lines, "line_rate", "min-testpmd-io"), "mpps");
    for case in LINE_RATE {
        let line = find(&lines, "line_rate", case);
        let ratio = positive(line, "ratio_vs_testpmd_io");
        assert!((ratio - positive(line, "mpps") / min_io).abs() < 1e-9, "{line}");
    }
    assert!(find(&lines, "line_rate", "min-l3fwd")["skipped"].is_string());
    let governed_one = find(&lines, "scaling", "governed-workers-1");
    assert_eq!(positive(governed_one, "efficiency"), 1.0);
    positive(find(&lines, "scaling", "governed-workers-2"), "efficiency");
    for (topics, popularity, records) in SWEEP {
        let line = find(&lines, "governance", &format!("{topics}-topics-{popularity}-{records}-records"));
        assert_eq!(line["topics"], topics);
        assert_eq!(line["records"], records);
        let per_frame = positive(line, "ns_per_frame");
        assert!((positive(line, "ns_per_msg") * records as f64 - per_frame).abs() < 1e-6, "{line}");
    }
    // The chart is drawn when matplotlib is there (scripts/setup.sh installs it).
    let has_matplotlib = Command::new("/usr/bin/python3").args(["-c", "import matplotlib"]).status();
    if has_matplotlib.is_ok_and(|s| s.success()) {
        for chart in ["results.png", "governance.png"] {
            let png = std::fs::read(out_dir.join(chart)).expect(chart);
            assert!(png.starts_with(b"\x89PNG"), "{chart} is not a PNG");
        }
    }
}
