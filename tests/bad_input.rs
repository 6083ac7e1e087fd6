//! Bad command lines and configs exit non-zero with a message that names
//! the problem; the ones that need no hardware fail before EAL starts.

#![deny(unsafe_code)]

mod common;

use common::*;
use std::process::Command;

/// Runs tachyon with raw argv; returns (exit code, stderr).
fn run_raw(args: &[String]) -> (i32, String) {
    let out = Command::new(tachyon_bin()).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn app_only(app: &[&str]) -> Vec<String> {
    let mut v = vec!["--".to_string()];
    v.extend(app_args(&strings(app)));
    v
}

fn assert_fails_naming(args: &[String], needle: &str) -> String {
    let (code, err) = run_raw(args);
    assert_ne!(code, 0, "expected failure for {args:?}");
    assert!(err.contains(needle), "stderr for {args:?} should mention {needle:?}:\n{err}");
    // Nothing before EAL: EAL's own banner must not appear for pre-EAL errors.
    err
}

#[test]
fn help_describes_eal_convention_and_examples() {
    let out = Command::new(tachyon_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("tachyon [EAL args] -- [OPTIONS]"), "{help}");
    assert!(help.contains("--stats-json") && help.contains("--vdev"), "{help}");
}

#[test]
fn bad_option_values_are_named() {
    let err = assert_fails_naming(&app_only(&["--duration", "soon"]), "--duration");
    assert!(!err.contains("EAL:"), "failed after starting EAL: {err}");
    assert_fails_naming(&app_only(&["--no-such-flag"]), "--no-such-flag");
}

#[test]
fn eal_arguments_without_separator_get_a_hint() {
    assert_fails_naming(&strings(&["-l", "0-1"]), "EAL arguments go before `--`");
}

#[test]
fn config_problems_are_named_before_eal_starts() {
    let dir = scratch_dir("bad-config");
    let missing = dir.join("nope.toml");
    let err = assert_fails_naming(&app_only(&["--config", missing.to_str().unwrap()]), "cannot read config");
    assert!(!err.contains("EAL:"), "{err}");

    let cases: [(&str, &str); 5] = [
        ("[dataplane]\nburst = 32\n", "burst"),
        ("[dataplane]\nburst_size = 9999\n", "dataplane.burst_size"),
        ("[dataplane]\ntachyon_udp_port = 0\n", "dataplane.tachyon_udp_port"),
        ("[[ports]]\nid = 0\nnext_hop_mac = \"nothex\"\n", "ports[0].next_hop_mac"),
        ("[dataplane\n", "TOML"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let path = dir.join(format!("c{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let err = assert_fails_naming(&app_only(&["--config", path.to_str().unwrap()]), needle);
        assert!(err.contains(path.to_str().unwrap()), "should name the file: {err}");
        assert!(!err.contains("EAL:"), "config errors must come before EAL: {err}");
    }
}

#[test]
fn unwritable_stats_json_fails_before_eal() {
    let err = assert_fails_naming(&app_only(&["--stats-json", "/nonexistent-dir/stats.json"]), "--stats-json");
    assert!(!err.contains("EAL:"), "{err}");
}

#[test]
fn shipped_example_configs_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/dpdk-config");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            tachyon::config::Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 2, "expected example configs in dpdk-config/");
}

#[test]
fn missing_port_is_one_clear_line() {
    let _g = dpdk_lock();
    let dir = scratch_dir("missing-port");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[[ports]]\nid = 5\n").unwrap();
    let mut args = eal_args(&["net_null0".to_string()]);
    args.extend(app_only(&["--config", cfg.to_str().unwrap(), "--duration", "1"]));
    let err = assert_fails_naming(&args, "port 5 does not exist");
    assert_eq!(err.lines().filter(|l| l.starts_with("tachyon: error")).count(), 1, "{err}");
}

#[test]
fn worker_lcore_not_enabled_in_eal_is_refused() {
    let _g = dpdk_lock();
    let dir = scratch_dir("lcore");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[workers]\nlcores = [3]\n").unwrap();
    let mut args = eal_args(&["net_null0".to_string()]);
    args.extend(app_only(&["--config", cfg.to_str().unwrap(), "--duration", "1"]));
    assert_fails_naming(&args, "lcore 3 is not enabled in EAL");
}

#[test]
fn queue_count_the_port_cannot_do_is_refused() {
    let _g = dpdk_lock();
    let dir = scratch_dir("queues");
    let input = dir.join("in.pcap");
    write_pcap(&input, &[]);
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[workers]\nlcores = [1, 2]\n").unwrap();
    // A single-queue pcap port cannot give two workers a queue each.
    let mut args = eal_args_two_workers(&[format!("net_pcap0,rx_pcap={}", input.display())]);
    args.extend(app_only(&["--config", cfg.to_str().unwrap(), "--duration", "1"]));
    assert_fails_naming(&args, "cannot do 2 RX");
}

#[test]
fn no_worker_lcore_is_refused() {
    let _g = dpdk_lock();
    let mut args = eal_args(&["net_null0".to_string()]);
    let l = args.iter().position(|a| a == "-l").unwrap();
    args[l + 1] = "0".into();
    args.extend(app_only(&["--duration", "1"]));
    assert_fails_naming(&args, "no enabled lcore can run a worker");
}

#[test]
fn missing_hugepages_suggest_no_huge() {
    // Only decidable when this machine has no free hugepages (CI does not reserve any).
    let free = tachyon::cli::free_hugepages();
    let args = strings(&["-l", "0-1", "--no-pci", "--file-prefix", "nohuge-test", "--", "--duration", "1"]);
    let (code, err) = run_raw(&args);
    if free == Some(0) {
        assert_ne!(code, 0);
        assert!(err.contains("--no-huge") && err.contains("hugepages"), "{err}");
        assert!(!err.contains("EAL:"), "the check should come before EAL: {err}");
    } else {
        // With hugepages the run starts; there are no ports, which must be the one error.
        assert_ne!(code, 0);
        assert!(err.contains("no ports"), "{err}");
    }
}
