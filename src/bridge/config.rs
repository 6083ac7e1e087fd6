//! `[bridge]`: the shared-memory region local programs publish and subscribe
//! through. Every key is optional; without a config the bridge is on, its
//! file sits under `/dev/shm` named after EAL's `--file-prefix`, and what
//! local programs publish leaves through the first port.

use crate::wire::MacAddr;
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The `[bridge]` section as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    /// Create the region at start (`--no-bridge` overrides).
    pub enabled: bool,
    /// Where the region lives; default `/dev/shm/tachyon-<file-prefix>.bridge`
    /// (`--bridge PATH` overrides).
    pub path: Option<PathBuf>,
    /// Bytes of each shard's ingress ring (a power of two, 64 KiB–1 GiB).
    pub ingress_ring_bytes: u32,
    /// How many subscribers may be connected at once.
    pub subscriber_slots: u32,
    /// Bytes of each subscriber's ring per shard (a power of two).
    pub subscriber_ring_bytes: u32,
    /// Largest message a client may publish; it must fit one frame at the egress MTU.
    pub max_message_bytes: u32,
    /// File mode of the region, octal text (owner and group only by default).
    pub mode: String,
    /// Group that owns the region (name or numeric id); default: the appliance's.
    pub group: Option<String>,
    /// How long a claimed-but-uncommitted record may block a shard before the
    /// worker skips it as padding (a producer that died mid-write).
    pub unblock_timeout_ms: u64,
    /// Messages a worker takes from its ring per poll round, so neither the
    /// NIC nor the bridge starves the other.
    pub drain_budget: u32,
    /// Port that bridge messages leave by, unless a rule routes them; default the first port.
    pub egress_port: Option<u16>,
    /// Destination MAC of bridge frames; default broadcast.
    pub next_hop_mac: Option<String>,
    /// IPv4 source and destination written into bridge frames; by default
    /// addresses of the RFC 2544 benchmarking range, which name no real host.
    pub source_ip: Ipv4Addr,
    pub destination_ip: Ipv4Addr,
    /// UDP source port of bridge frames (the destination is the Tachyon port).
    pub udp_source_port: u16,
    /// Send admitted bridge frames out of a port (default). `false`: admitted
    /// messages reach local subscribers only and no bridge frame leaves.
    pub to_wire: bool,
}

/// Ethernet 1500-byte MTU less IPv4 (20), UDP (8), the Tachyon header (32)
/// and one record prefix (2): the largest message one standard frame holds.
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 1500 - 20 - 8 - 32 - 2;

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            enabled: true,
            path: None,
            ingress_ring_bytes: 8 << 20,
            subscriber_slots: 16,
            subscriber_ring_bytes: 2 << 20,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            mode: "0660".into(),
            group: None,
            unblock_timeout_ms: 100,
            drain_budget: 2048,
            egress_port: None,
            next_hop_mac: None,
            source_ip: Ipv4Addr::new(198, 18, 255, 1),
            destination_ip: Ipv4Addr::new(198, 19, 255, 1),
            udp_source_port: 47000,
            to_wire: true,
        }
    }
}

/// The `[bridge]` values checked and converted, ready for start-up.
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    pub ingress_ring_bytes: u32,
    pub subscriber_slots: u32,
    pub subscriber_ring_bytes: u32,
    pub max_message_bytes: u32,
    pub mode: u32,
    pub group: Option<u32>,
    pub unblock_timeout_ns: u64,
    pub drain_budget: usize,
    pub egress_port: Option<u16>,
    pub next_hop: MacAddr,
    pub source_ip: Ipv4Addr,
    pub destination_ip: Ipv4Addr,
    pub udp_source_port: u16,
    pub to_wire: bool,
}

impl BridgeConfig {
    /// Checks every value; the error names the key.
    pub fn settings(&self) -> Result<BridgeSettings, String> {
        power_of_two("bridge.ingress_ring_bytes", self.ingress_ring_bytes, 64 << 10, 1 << 30)?;
        power_of_two("bridge.subscriber_ring_bytes", self.subscriber_ring_bytes, 64 << 10, 1 << 30)?;
        range("bridge.subscriber_slots", self.subscriber_slots as u64, 1, 1024)?;
        range("bridge.max_message_bytes", self.max_message_bytes as u64, 1, 9000 - 62)?;
        // A shard part is at most half a ring; a message must leave room for many.
        if self.max_message_bytes as u64 * 8 > self.ingress_ring_bytes as u64 {
            return Err(format!(
                "bridge.max_message_bytes = {} is too large for bridge.ingress_ring_bytes = {} (at most 1/8 of it)",
                self.max_message_bytes, self.ingress_ring_bytes
            ));
        }
        range("bridge.unblock_timeout_ms", self.unblock_timeout_ms, 1, 60_000)?;
        range("bridge.drain_budget", self.drain_budget as u64, 1, 1 << 20)?;
        let mode = u32::from_str_radix(self.mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| format!("bridge.mode: {:?} is not an octal file mode such as \"0660\"", self.mode))?;
        if mode & 0o002 != 0 {
            return Err(format!("bridge.mode: {:?} lets every user write the region; use 0660 or tighter", self.mode));
        }
        let group = self.group.as_deref().map(resolve_group).transpose()?;
        let next_hop = match &self.next_hop_mac {
            Some(text) => crate::config::parse_mac(text).map_err(|e| format!("bridge.next_hop_mac: {e}"))?,
            None => [0xff; 6],
        };
        Ok(BridgeSettings {
            ingress_ring_bytes: self.ingress_ring_bytes,
            subscriber_slots: self.subscriber_slots,
            subscriber_ring_bytes: self.subscriber_ring_bytes,
            max_message_bytes: self.max_message_bytes,
            mode,
            group,
            unblock_timeout_ns: self.unblock_timeout_ms * 1_000_000,
            drain_budget: self.drain_budget as usize,
            egress_port: self.egress_port,
            next_hop,
            source_ip: self.source_ip,
            destination_ip: self.destination_ip,
            udp_source_port: self.udp_source_port,
            to_wire: self.to_wire,
        })
    }
}

fn range(key: &str, v: u64, lo: u64, hi: u64) -> Result<(), String> {
    if v < lo || v > hi {
        return Err(format!("{key} = {v} is out of range ({lo}..={hi})"));
    }
    Ok(())
}

fn power_of_two(key: &str, v: u32, lo: u32, hi: u32) -> Result<(), String> {
    range(key, v as u64, lo as u64, hi as u64)?;
    if !v.is_power_of_two() {
        return Err(format!("{key} = {v} is not a power of two"));
    }
    Ok(())
}

/// A group name from `/etc/group`, or a numeric gid.
fn resolve_group(text: &str) -> Result<u32, String> {
    if let Ok(gid) = text.parse::<u32>() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let gid = f.nth(1)?.parse::<u32>().ok()?;
            (name == text).then_some(gid)
        })
        .next()
        .ok_or_else(|| format!("bridge.group: no group named {text:?}"))
}

/// `/dev/shm/tachyon-<prefix>.bridge`, with the prefix from EAL's
/// `--file-prefix` (DPDK's default `rte`), so two appliances never share a region.
pub fn default_path(eal_args: &[String]) -> PathBuf {
    let mut prefix = "rte".to_string();
    let mut args = eal_args.iter();
    while let Some(a) = args.next() {
        if let Some(v) = a.strip_prefix("--file-prefix=") {
            prefix = v.to_string();
        } else if a == "--file-prefix"
            && let Some(v) = args.next()
        {
            prefix = v.clone();
        }
    }
    tachyon_bridge::Bridge::default_path(&prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = BridgeConfig::default().settings().unwrap();
        assert_eq!(s.mode, 0o660);
        assert_eq!(s.next_hop, [0xff; 6]);
    }

    #[test]
    fn to_wire_defaults_to_true_and_can_be_turned_off() {
        assert!(BridgeConfig::default().settings().unwrap().to_wire);
        let c: BridgeConfig = toml::from_str("to_wire = false").unwrap();
        assert!(!c.settings().unwrap().to_wire);
    }

    #[test]
    fn bad_values_name_their_key() {
        type Edit = fn(&mut BridgeConfig);
        let cases: [(Edit, &str); 6] = [
            (|c| c.ingress_ring_bytes = 100_000, "bridge.ingress_ring_bytes = 100000 is not a power of two"),
            (|c| c.subscriber_slots = 0, "bridge.subscriber_slots = 0 is out of range"),
            (|c| c.mode = "rw".into(), "bridge.mode: \"rw\" is not an octal file mode"),
            (|c| c.mode = "0666".into(), "lets every user write"),
            (|c| c.group = Some("no-such-group-here".into()), "bridge.group: no group named"),
            (|c| c.next_hop_mac = Some("zz".into()), "bridge.next_hop_mac"),
        ];
        for (edit, wanted) in cases {
            let mut c = BridgeConfig::default();
            edit(&mut c);
            let e = c.settings().unwrap_err();
            assert!(e.contains(wanted), "{e:?} should contain {wanted:?}");
        }
    }

    #[test]
    fn path_follows_the_file_prefix() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(default_path(&args(&["-l", "0-1"])), PathBuf::from("/dev/shm/tachyon-rte.bridge"));
        assert_eq!(default_path(&args(&["--file-prefix", "t7"])), PathBuf::from("/dev/shm/tachyon-t7.bridge"));
        assert_eq!(default_path(&args(&["--file-prefix=x"])), PathBuf::from("/dev/shm/tachyon-x.bridge"));
    }
}
