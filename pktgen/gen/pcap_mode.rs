//! `tachyon-gen pcap`: writes the traffic model's packets to a pcap file
//! that DPDK's net_pcap (or tcpdump, Wireshark, scapy) can replay, plus a
//! JSON summary of exactly what went in.

use std::error::Error;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{Endianness, TsResolution};
use tachyon::traffic::{Summary, TrafficGenerator};
use tachyon::wire::Layout;
use tachyon::wire::ethernet;

use crate::traffic_args::TrafficArgs;

/// Largest frame a standard 1500-byte MTU link carries (FCS excluded).
const STANDARD_MAX_FRAME: usize = 1500 + ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN;

#[derive(Args, Debug)]
pub struct PcapArgs {
    /// Number of packets to write.
    #[arg(long)]
    pub frames: u64,
    /// The pcap file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write what was generated (per topic, sender and reason) here.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    #[command(flatten)]
    pub traffic: TrafficArgs,
}

/// Generates, writes, and returns the tally of what was written.
pub fn run(args: &PcapArgs) -> Result<Summary, Box<dyn Error>> {
    let config = args.traffic.to_config()?;
    let largest = Layout::new(config.vlan.is_some()).payload + config.max_udp_payload();
    if largest > STANDARD_MAX_FRAME {
        eprintln!(
            "warning: frames up to {largest} bytes exceed a 1500-byte MTU; \
             the appliance's ports need jumbo frames (and mbufs) to take them"
        );
    }
    let mut generator = TrafficGenerator::new(config, args.frames)?;

    let file = File::create(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    // Fixed byte order and resolution, so equal seeds give equal files on
    // any host; microseconds are what every pcap reader understands.
    let header = PcapHeader {
        endianness: Endianness::Little,
        ts_resolution: TsResolution::MicroSecond,
        snaplen: 262_144,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(BufWriter::with_capacity(1 << 20, file), header)?;
    let mut summary = Summary::default();
    let mut packet = Vec::with_capacity(2048);
    while let Some(generated) = generator.next_into(&mut packet) {
        let timestamp = Duration::from_nanos(generated.time_ns);
        writer.write_packet(&PcapPacket::new(timestamp, packet.len() as u32, &packet))?;
        summary.record(&generated.kind, packet.len());
    }
    writer.into_writer().flush()?;

    if let Some(path) = &args.summary_json {
        let file = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mut out = BufWriter::new(file);
        serde_json::to_writer_pretty(&mut out, &summary)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    Ok(summary)
}
