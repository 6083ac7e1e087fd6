//! The fuzz targets' checks, without libFuzzer: every input that once
//! crashed a target (`fuzz/regressions/<target>/`) and the whole committed
//! seed corpus (`fuzz/corpus/<target>/`) run through the same checks the
//! targets run, so a fix that comes undone fails here in CI.
//! `scripts/fuzz.sh` runs the fuzzer itself.

// The targets' checks, shared with fuzz/fuzz_targets (one copy of the code).
#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz_checks;

use std::path::{Path, PathBuf};

use tachyon::dataplane::classify::Accepted;
use tachyon::traffic::PARSER_REASONS;

fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.expect("read dir entry").path()).collect();
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).expect("read input"))).collect()
}

/// Runs `check` on every regression and corpus input of `target`, naming the file that fails.
fn replay(target: &str, check: impl Fn(&[u8])) -> usize {
    let all: Vec<_> = inputs("regressions", target).into_iter().chain(inputs("corpus", target)).collect();
    for (path, data) in &all {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(data)));
        assert!(outcome.is_ok(), "{} fails the {target} target's checks", path.display());
    }
    all.len()
}

#[test]
fn classify_inputs_pass() {
    assert!(
        replay("classify", |d| {
            let _ = fuzz_checks::classify::check(d);
        }) > 0,
        "no classify corpus"
    );
}

#[test]
fn classify_segments_inputs_pass() {
    assert!(replay("classify_segments", fuzz_checks::segments::check) > 0, "no classify_segments corpus");
}

#[test]
fn config_inputs_pass() {
    assert!(replay("config", fuzz_checks::config::check) > 0, "no config corpus");
}

#[test]
fn bridge_ring_inputs_pass() {
    assert!(replay("bridge_ring", fuzz_checks::ring::check) > 0, "no bridge_ring corpus");
}

#[test]
fn classify_corpus_has_every_parser_reason_and_accepted_frames() {
    let corpus = inputs("corpus", "classify");
    let outcomes: Vec<_> = corpus.iter().map(|(_, d)| fuzz_checks::classify::check(d)).collect();
    for reason in PARSER_REASONS {
        assert!(outcomes.contains(&Err(reason)), "no seed is dropped as {reason}");
    }
    assert!(outcomes.iter().any(|o| matches!(o, Ok(Accepted::Tachyon(_)))), "no seed is accepted");
}

#[test]
fn config_corpus_holds_valid_configs() {
    let corpus = inputs("corpus", "config");
    let valid = corpus
        .iter()
        .filter(|(_, d)| std::str::from_utf8(d).is_ok_and(|t| tachyon::config::Config::parse(t).is_ok()))
        .count();
    assert!(valid >= 6, "only {valid} of {} config seeds parse", corpus.len());
}
