//! `scripts/soak.sh` in its short mode: 15 s of full-rate traffic with reloads
//! every 100 ms, scrapes, bridge publishers and a subscriber, and a memif
//! peer that comes and goes, on the binaries this test run built. The script
//! does the checking (counters conserved per worker and in total, every mbuf
//! back, bridge accepted = taken + in ring and taken = admitted + drops,
//! every scrape answered, RSS flat); this asserts its verdict and that it
//! really exercised each part.

#![deny(unsafe_code)]

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// A `soak: ...` line's number after `label` (e.g. "reloads ok").
fn figure(out: &str, label: &str) -> u64 {
    let at = out.find(label).unwrap_or_else(|| panic!("no '{label}' in:\n{out}")) + label.len();
    out[at..].split_whitespace().next().and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("{label}: {out}"))
}

#[test]
fn short_soak_is_consistent() {
    let _g = dpdk_lock();
    let bin_dir = Path::new(tachyon_bin()).parent().unwrap();
    // The bridge client the soak publishes with (an example of the bridge crate).
    let built = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "tachyon-bridge", "--example", "bench"])
        .status()
        .unwrap();
    assert!(built.success(), "cargo build --example bench");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/soak.sh");
    let out = Command::new("bash").arg(script).arg("15").arg("--bin-dir").arg(bin_dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(out.status.success(), "soak failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("\nsoak: consistent: rx = tx + dropped"), "{stdout}");
    assert!(stdout.contains(": flat"), "{stdout}");
    assert!(figure(&stdout, "packets rx") > 0, "{stdout}");
    assert!(figure(&stdout, "bridge messages accepted") > 0, "{stdout}");
    // Reloads every 100 ms for 15 s: dozens even on a busy machine.
    assert!(figure(&stdout, "reloads ok") >= 20, "{stdout}");
    assert!(figure(&stdout, "memif peer cycles") >= 2, "{stdout}");
}
