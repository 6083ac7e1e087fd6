//! `tachyon-gen`: synthetic Tachyon traffic for tests and benchmarks. The
//! traffic model lives in `tachyon::traffic`; this binary only chooses
//! where the packets go.

#![deny(unsafe_code)]

mod latency;
mod live_mode;
mod pcap_mode;
mod traffic_args;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "tachyon-gen", version, about = "Tachyon traffic generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write packets to a pcap file (replay it through DPDK's net_pcap).
    Pcap(Box<pcap_mode::PcapArgs>),
    /// Send packets on a DPDK port at a rate, receive them back, measure loss and
    /// latency: `tachyon-gen live [EAL args] -- [options]` (see `tachyon-gen live --help`).
    // Dispatched before clap sees it, because its EAL arguments come first.
    Live,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("live") {
        return live(&argv);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Pcap(args) => match pcap_mode::run(&args) {
            Ok(summary) => {
                println!(
                    "wrote {} frames ({} valid with {} messages, {} malformed, {} bytes) to {}",
                    summary.frames_total,
                    summary.valid_frames,
                    summary.messages,
                    summary.malformed_frames,
                    summary.bytes_total,
                    args.out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tachyon-gen pcap: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Live => unreachable!("dispatched before clap"),
    }
}

/// `tachyon-gen live [EAL args] -- [options]`.
fn live(argv: &[String]) -> ExitCode {
    // Split what follows `live`; the program name stays first for EAL.
    let rest: Vec<String> = std::iter::once(argv[0].clone()).chain(argv[2..].iter().cloned()).collect();
    let split = tachyon::cli::split_args(&rest);
    let mut app = split.app;
    app[0] = "tachyon-gen live".into();
    let args = match live_mode::LiveArgs::try_parse_from(&app) {
        Ok(a) => a,
        Err(e) => {
            let is_help = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
            let _ = e.print();
            if !is_help && !split.had_separator {
                eprintln!("note: EAL arguments go before `--`: tachyon-gen live [EAL args] -- [options]");
            }
            return if is_help { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    let publish = |report: &serde_json::Value| {
        print_live_summary(report);
        let Some(path) = &args.stats_json else { return Ok(()) };
        // Written whole, then renamed, so a watcher never reads half a file.
        let partial = path.with_extension("partial");
        let text = serde_json::to_string_pretty(report).expect("json") + "\n";
        std::fs::write(&partial, text)
            .and_then(|_| std::fs::rename(&partial, path))
            .map_err(|e| format!("--stats-json {}: {e}", path.display()))
    };
    match live_mode::run(&args, &split.eal, publish) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tachyon-gen live: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_live_summary(r: &serde_json::Value) {
    println!(
        "tachyon-gen live: sent {} packets ({} valid frames, {} messages) in {:.2}s = {:.3} Mpps",
        r["tx"]["packets"],
        r["tx"]["valid_frames"],
        r["tx"]["messages"],
        r["tx_secs"].as_f64().unwrap_or(0.0),
        r["tx_pps"].as_f64().unwrap_or(0.0) / 1e6
    );
    if !r["loss"].is_null() {
        println!(
            "  received {} Tachyon frames ({} other packets), lost {}, reordered {}",
            r["rx"]["tachyon_frames"], r["rx"]["other_packets"], r["loss"]["lost"], r["rx"]["reordered"]
        );
    }
    if let Some(l) = r["latency"].as_object() {
        let us = |k: &str| l[k].as_f64().map(|v| format!("{:.2}", v / 1e3)).unwrap_or_else(|| "-".into());
        println!(
            "  latency over {} frames: p50 {} us, p99 {} us, p99.9 {} us, max {} us",
            l["count"],
            us("p50_ns"),
            us("p99_ns"),
            us("p999_ns"),
            us("max_ns")
        );
    }
}
