//! `tachyon-gen`: synthetic Tachyon traffic for tests and benchmarks. The
//! traffic model lives in `tachyon::traffic`; this binary only chooses
//! where the packets go.

mod pcap_mode;
mod traffic_args;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::traffic_args::TrafficArgs;

#[derive(Parser, Debug)]
#[command(name = "tachyon-gen", version, about = "Tachyon traffic generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write packets to a pcap file (replay it through DPDK's net_pcap).
    Pcap(pcap_mode::PcapArgs),
    /// Send packets through a DPDK port at a given rate (not built yet).
    Live(LiveArgs),
}

/// Placeholder for DPDK live mode: it shares the traffic flags; port, rate
/// and duration flags come with the implementation.
#[derive(Args, Debug)]
struct LiveArgs {
    #[command(flatten)]
    traffic: TrafficArgs,
}

fn main() -> ExitCode {
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
        Command::Live(_) => {
            eprintln!("tachyon-gen live: not implemented yet; use `tachyon-gen pcap`");
            ExitCode::from(2)
        }
    }
}
