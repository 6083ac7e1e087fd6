//! Command-line flags that shape the traffic, shared by every output mode
//! (pcap now, DPDK live later) so both describe traffic the same way.

use std::net::Ipv4Addr;

use clap::{Args, ValueEnum};
use tachyon::traffic::{ConfigError, CountRange, MalformedMix, Popularity, TrafficConfig};
use tachyon::wire::tachyon::DEFAULT_UDP_PORT as DEFAULT_TACHYON_PORT;

/// How ids are picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Dist {
    Uniform,
    /// Power law: the lowest id is the hottest.
    Zipf,
}

#[derive(Args, Debug, Clone)]
pub struct TrafficArgs {
    /// Number of topics; ids run from --first-topic.
    #[arg(long, default_value_t = 16)]
    pub topics: u32,
    #[arg(long, default_value_t = 1)]
    pub first_topic: u32,
    /// How topics are picked per frame.
    #[arg(long, value_enum, default_value_t = Dist::Uniform)]
    pub dist: Dist,
    /// Zipf exponent for topics (with --dist zipf).
    #[arg(long, default_value_t = 1.1)]
    pub zipf_s: f64,
    /// Number of senders; ids run from --first-sender.
    #[arg(long, default_value_t = 4)]
    pub senders: u32,
    #[arg(long, default_value_t = 1)]
    pub first_sender: u32,
    /// How senders are picked per frame.
    #[arg(long, value_enum, default_value_t = Dist::Uniform)]
    pub sender_dist: Dist,
    /// Zipf exponent for senders (with --sender-dist zipf).
    #[arg(long, default_value_t = 1.1)]
    pub sender_zipf_s: f64,
    /// Records per frame: N or MIN-MAX (uniform).
    #[arg(long, default_value = "1")]
    pub records: CountRange,
    /// Payload bytes per record: N or MIN-MAX (uniform).
    #[arg(long, default_value = "64")]
    pub payload: CountRange,
    /// Share of malformed packets: a total spread over all twelve parser
    /// reasons (0.1), or per reason (bad_magic=0.01,truncated=0.02).
    #[arg(long, default_value = "0")]
    pub malformed: MalformedMix,
    /// Put every packet in this 802.1Q VLAN.
    #[arg(long)]
    pub vlan: Option<u16>,
    #[arg(long, value_parser = parse_mac, default_value = "02:00:00:00:00:01")]
    pub src_mac: [u8; 6],
    #[arg(long, value_parser = parse_mac, default_value = "02:00:00:00:00:02")]
    pub dst_mac: [u8; 6],
    /// First source address; --src-ips consecutive ones are used.
    #[arg(long, default_value = "198.18.0.1")]
    pub src_ip: Ipv4Addr,
    #[arg(long, default_value_t = 1)]
    pub src_ips: u32,
    /// First UDP source port; --src-ports consecutive ones are used.
    #[arg(long, default_value_t = 40000)]
    pub src_port: u16,
    #[arg(long, default_value_t = 1)]
    pub src_ports: u32,
    /// Pin each sender to one (source IP, port) flow instead of picking a
    /// flow per frame.
    #[arg(long)]
    pub sticky_flows: bool,
    #[arg(long, default_value = "198.19.0.1")]
    pub dst_ip: Ipv4Addr,
    /// Tachyon UDP destination port.
    #[arg(long, default_value_t = DEFAULT_TACHYON_PORT)]
    pub udp_port: u16,
    /// Set TS_PRESENT and write each frame's send time.
    #[arg(long)]
    pub timestamps: bool,
    /// Send time of the first frame, ns since the Unix epoch.
    #[arg(long, default_value_t = TrafficConfig::default().start_ns)]
    pub start_ns: u64,
    /// Nanoseconds between consecutive frames' send times.
    #[arg(long, default_value_t = TrafficConfig::default().gap_ns)]
    pub gap_ns: u64,
    /// Same seed and flags, same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn popularity(dist: Dist, s: f64) -> Popularity {
    match dist {
        Dist::Uniform => Popularity::Uniform,
        Dist::Zipf => Popularity::Zipf { s },
    }
}

impl TrafficArgs {
    /// The library's model for these flags, checked.
    pub fn to_config(&self) -> Result<TrafficConfig, ConfigError> {
        let config = TrafficConfig {
            topics: self.topics,
            first_topic_id: self.first_topic,
            topic_popularity: popularity(self.dist, self.zipf_s),
            senders: self.senders,
            first_sender_id: self.first_sender,
            sender_popularity: popularity(self.sender_dist, self.sender_zipf_s),
            records: self.records,
            payload: self.payload,
            malformed: self.malformed,
            vlan: self.vlan,
            src_mac: self.src_mac,
            dst_mac: self.dst_mac,
            src_ip: self.src_ip,
            src_ips: self.src_ips,
            src_port: self.src_port,
            src_ports: self.src_ports,
            sticky_flows: self.sticky_flows,
            dst_ip: self.dst_ip,
            udp_port: self.udp_port,
            timestamps: self.timestamps,
            start_ns: self.start_ns,
            gap_ns: self.gap_ns,
            seed: self.seed,
        };
        config.validate()?;
        Ok(config)
    }
}

/// `aa:bb:cc:dd:ee:ff` (or with `-`).
fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let mut mac = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in &mut mac {
        let part = parts.next().ok_or_else(|| format!("MAC {text:?} has fewer than 6 bytes"))?;
        if part.len() != 2 {
            return Err(format!("MAC {text:?}: each byte is two hex digits"));
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| format!("MAC {text:?}: bad hex {part:?}"))?;
    }
    if parts.next().is_some() {
        return Err(format!("MAC {text:?} has more than 6 bytes"));
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_macs() {
        assert_eq!(parse_mac("02:0a:FF:00:01:9b").unwrap(), [2, 10, 255, 0, 1, 0x9b]);
        assert_eq!(parse_mac("02-00-00-00-00-01").unwrap(), [2, 0, 0, 0, 0, 1]);
        for bad in ["", "02:00:00:00:00", "02:00:00:00:00:00:00", "2:0:0:0:0:1", "zz:00:00:00:00:00"] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
