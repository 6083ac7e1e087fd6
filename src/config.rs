//! The appliance's TOML configuration: parsed with serde (unknown keys are
//! refused by name), then validated value by value, all before EAL starts.
//! Every section is optional: without a file the appliance runs on defaults.

use crate::wire::MacAddr;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Largest burst the worker's fixed arrays hold.
pub const MAX_BURST_SIZE: u16 = crate::dpdk::MAX_BURST as u16;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub dataplane: Dataplane,
    pub workers: Workers,
    pub ports: Vec<PortEntry>,
    pub control: Control,
    pub metrics: Metrics,
    /// Rules, limits and reconciliation (see docs/governance.md); reloadable.
    pub governance: crate::governance::GovernanceConfig,
    /// The shared-memory bridge for local publishers and subscribers.
    pub bridge: crate::bridge::BridgeConfig,
}

/// Packet-path settings shared by every worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dataplane {
    /// Packets per RX burst (1–256).
    pub burst_size: u16,
    /// RX descriptors per queue (DPDK may round to the device's limits).
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    /// Mbufs per NUMA socket's pool; 0 sizes it from ports, queues and workers.
    pub mbufs_per_pool: u32,
    /// UDP destination port that marks Tachyon traffic.
    pub tachyon_udp_port: u16,
    /// What happens to UDP/IPv4 traffic for other ports: "drop" or "forward".
    pub non_tachyon: NonTachyon,
    /// Verify IPv4 header checksums the NIC did not vouch for.
    pub verify_ip_checksum: bool,
    /// Ethernet MTU (largest IP packet) every port is configured for; jumbo
    /// frames up to [`MAX_MTU`]. Frames larger than an mbuf arrive as chains.
    pub mtu: u16,
}

/// The standard Ethernet MTU, the default.
pub const DEFAULT_MTU: u16 = 1500;
/// The largest MTU accepted: jumbo frames of 9,000-byte IP packets.
pub const MAX_MTU: u16 = 9000;
/// The smallest MTU IPv4 allows (RFC 791), as DPDK's `RTE_ETHER_MIN_MTU`.
pub const MIN_MTU: u16 = 68;

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            burst_size: 32,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            mbufs_per_pool: 0,
            tachyon_udp_port: 47000,
            non_tachyon: NonTachyon::Drop,
            verify_ip_checksum: true,
            mtu: DEFAULT_MTU,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonTachyon {
    Drop,
    Forward,
}

/// Which EAL lcores run workers. Each worker gets one RX and one TX queue on
/// every port, so the queue count per port equals the number of workers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workers {
    /// Worker lcores; empty means every enabled lcore except the main one.
    pub lcores: Vec<u32>,
}

/// One port the appliance uses, and where its traffic leaves.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortEntry {
    pub id: u16,
    /// Egress port for frames received here; default pairs ports 0↔1, 2↔3 in list order.
    pub egress_port: Option<u16>,
    /// Next-hop MAC written as destination; default `02:00:00:00:00:<egress id>`.
    pub next_hop_mac: Option<String>,
    /// PCI address, used by `--plan` to find the port's NUMA node without EAL.
    pub pci: Option<String>,
    /// NUMA node of the port, when sysfs cannot tell (for `--plan`).
    pub numa_node: Option<u32>,
}

/// The control lcore's pacing.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Control {
    /// Interval of the live stats line in milliseconds; 0 turns it off.
    pub stats_interval_ms: u64,
}

impl Default for Control {
    fn default() -> Self {
        Control { stats_interval_ms: 1000 }
    }
}

/// The Prometheus endpoint, served by the control side at `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    pub enabled: bool,
    /// `IP:PORT` to listen on; port 0 picks a free port (printed at start-up).
    pub listen: String,
}

/// Loopback only by default: the endpoint has no authentication.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9898";

impl Default for Metrics {
    fn default() -> Self {
        Metrics { enabled: true, listen: DEFAULT_METRICS_LISTEN.to_string() }
    }
}

/// Parses a metrics listen address (`IP:PORT`, IPv6 as `[::1]:PORT`).
pub fn parse_listen_addr(text: &str) -> Result<std::net::SocketAddr, BadListenAddr> {
    text.parse().map_err(|_| BadListenAddr(text.to_string()))
}

/// Text that is not an `IP:PORT` address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP:PORT address (e.g. 127.0.0.1:9898 or [::1]:9898)")]
pub struct BadListenAddr(pub String);

/// Text that is not a MAC address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (want aa:bb:cc:dd:ee:ff)")]
pub struct BadMac(pub String);

/// Largest config file read: real ones are a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A problem with the appliance's configuration (the TOML file, or the
/// ports it names against those EAL probed), naming the file and key where
/// it can. Not [`crate::governance::GovernanceConfigError`], which is one
/// of its cases, nor `tachyon-gen`'s [`crate::traffic::ConfigError`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is larger than [`MAX_CONFIG_BYTES`] (1 MiB).
    #[error("config {}: larger than 1 MiB, refused before parsing", path.display())]
    TooLarge { path: PathBuf },
    /// A problem inside the file at `path`.
    #[error("config {}: {source}", path.display())]
    InFile { path: PathBuf, source: Box<ConfigError> },
    /// Not TOML, or a key or type the schema does not have.
    #[error("{0}")]
    Syntax(String),
    /// A value outside its range.
    #[error("{key} = {value} is out of range ({lo}..={hi})")]
    OutOfRange { key: String, value: u64, lo: u64, hi: u64 },
    /// A value that cannot be used for another reason (listed twice, not a
    /// MAC, a port that is not configured, ...).
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    /// The `[governance]` section.
    #[error(transparent)]
    Governance(#[from] crate::governance::GovernanceConfigError),
    /// The `[bridge]` section (the text names the key).
    #[error("{0}")]
    Bridge(String),
    /// A configured port that EAL did not probe.
    #[error("port {id} does not exist: EAL probed {} port(s) {probed:?} (check -a/--vdev)", probed.len())]
    PortNotProbed { id: u16, probed: Vec<u16> },
    /// No port to run on.
    #[error("no ports: EAL probed none (bind a NIC with dpdk-devbind.py, or pass --vdev)")]
    NoPorts,
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl std::fmt::Display) -> Self {
        ConfigError::Invalid { key: key.into(), message: message.to_string() }
    }
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        let read = |source| ConfigError::Read { path: path.to_path_buf(), source };
        // Read at most one byte past the cap (also for FIFOs and /proc files,
        // whose metadata says nothing of their size), before any parsing.
        let mut bytes = Vec::new();
        std::fs::File::open(path).and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)).map_err(read)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge { path: path.to_path_buf() });
        }
        let text = String::from_utf8(bytes)
            .map_err(|e| read(std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error())))?;
        Self::parse(&text).map_err(|e| ConfigError::InFile { path: path.to_path_buf(), source: Box::new(e) })
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string().trim_end().to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value's range and the cross-references between sections.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // Compiling the rule and limit tables checks them all; the clock only
        // scales the buckets, so any plausible rate will do here.
        self.governance.compile_tables(1_000_000_000)?;
        let d = &self.dataplane;
        check_range("dataplane.burst_size", d.burst_size as u64, 1, MAX_BURST_SIZE as u64)?;
        check_range("dataplane.rx_descriptors", d.rx_descriptors as u64, 32, 32768)?;
        check_range("dataplane.tx_descriptors", d.tx_descriptors as u64, 32, 32768)?;
        check_range("dataplane.tachyon_udp_port", d.tachyon_udp_port as u64, 1, 65535)?;
        check_range("dataplane.mtu", d.mtu as u64, MIN_MTU as u64, MAX_MTU as u64)?;
        if d.mbufs_per_pool != 0 {
            check_range("dataplane.mbufs_per_pool", d.mbufs_per_pool as u64, 1024, 1 << 26)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for l in &self.workers.lcores {
            if !seen.insert(*l) {
                return Err(ConfigError::invalid("workers.lcores", format!("lcore {l} is listed twice")));
            }
        }
        let ids: Vec<u16> = self.ports.iter().map(|p| p.id).collect();
        for (i, p) in self.ports.iter().enumerate() {
            if ids[..i].contains(&p.id) {
                return Err(ConfigError::invalid(format!("ports[{i}].id"), format!("port {} is listed twice", p.id)));
            }
            if let Some(e) = p.egress_port
                && !ids.contains(&e)
            {
                return Err(ConfigError::invalid(
                    format!("ports[{i}].egress_port"),
                    format!("port {e} is not one of the configured ports {ids:?}"),
                ));
            }
            if let Some(mac) = &p.next_hop_mac {
                parse_mac(mac).map_err(|e| ConfigError::invalid(format!("ports[{i}].next_hop_mac"), e))?;
            }
        }
        self.bridge.settings().map_err(ConfigError::Bridge)?;
        parse_listen_addr(&self.metrics.listen).map_err(|e| ConfigError::invalid("metrics.listen", e))?;
        if self.control.stats_interval_ms != 0 {
            check_range("control.stats_interval_ms", self.control.stats_interval_ms, 100, 3_600_000)?;
        }
        Ok(())
    }
}

fn check_range(key: &str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(ConfigError::OutOfRange { key: key.to_string(), value: v, lo, hi });
    }
    Ok(())
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(s: &str) -> Result<MacAddr, BadMac> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(BadMac(s.to_string()));
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 2).ok_or_else(|| BadMac(s.to_string()))?;
    }
    Ok(mac)
}

/// One ingress port's default route as the config resolves it against the
/// ports EAL probed (the l2fwd pairing when nothing is configured); start-up
/// turns each into the workers' [`crate::dataplane::routes::Hop`]. Not a
/// governance rule's [`crate::governance::Route`], which overrides it per frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub ingress: u16,
    pub egress: u16,
    pub next_hop: MacAddr,
}

/// The default next hop for `egress`: a locally administered `02:00:00:00:00:<id>`.
pub fn default_next_hop(egress: u16) -> MacAddr {
    [0x02, 0, 0, 0, 0, egress as u8]
}

impl Config {
    /// The ports to use and their routes, given the ports EAL probed.
    /// Without `[[ports]]` every probed port is used, paired 0↔1, 2↔3, and a
    /// lone last port sends back out of itself.
    pub fn routes(&self, probed: &[u16]) -> Result<Vec<RouteSpec>, ConfigError> {
        let ids: Vec<u16> =
            if self.ports.is_empty() { probed.to_vec() } else { self.ports.iter().map(|p| p.id).collect() };
        for id in &ids {
            if !probed.contains(id) {
                return Err(ConfigError::PortNotProbed { id: *id, probed: probed.to_vec() });
            }
        }
        if ids.is_empty() {
            return Err(ConfigError::NoPorts);
        }
        let paired = |pos: usize| -> u16 {
            let mate = pos ^ 1;
            if mate < ids.len() { ids[mate] } else { ids[pos] }
        };
        Ok(ids
            .iter()
            .enumerate()
            .map(|(pos, &id)| {
                let entry = self.ports.iter().find(|p| p.id == id);
                let egress = entry.and_then(|e| e.egress_port).unwrap_or_else(|| paired(pos));
                let next_hop = entry
                    .and_then(|e| e.next_hop_mac.as_deref())
                    .map(|m| parse_mac(m).expect("validated"))
                    .unwrap_or_else(|| default_next_hop(egress));
                RouteSpec { ingress: id, egress, next_hop }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_config_file_is_refused_before_parsing() {
        let dir = std::env::temp_dir().join(format!("tachyon-config-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("huge.toml");
        // Valid TOML (comments only), 2 MiB: only the size is wrong.
        let line = format!("#{}\n", "x".repeat(1023));
        std::fs::write(&path, line.repeat(2048)).unwrap();
        let err = Config::load(&path).expect_err("a 2 MiB config is refused").to_string();
        assert!(err.contains(path.to_str().unwrap()) && err.contains("1 MiB"), "{err}");
        std::fs::write(&path, line.repeat(64)).unwrap();
        assert!(Config::load(&path).is_ok(), "a small file still loads");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.dataplane.tachyon_udp_port, 47000);
        assert_eq!(c.dataplane.non_tachyon, NonTachyon::Drop);
        assert!(c.dataplane.verify_ip_checksum);
        assert!(c.workers.lcores.is_empty());
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::parse("[dataplane]\nburst = 32\n").unwrap_err().to_string();
        assert!(e.contains("burst"), "{e}");
        let e = Config::parse("[dataplan]\n").unwrap_err().to_string();
        assert!(e.contains("dataplan"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::parse("[dataplane]\nburst_size = 0\n").unwrap_err().to_string();
        assert!(e.contains("dataplane.burst_size"), "{e}");
        let e = Config::parse("[dataplane]\nnon_tachyon = \"keep\"\n").unwrap_err().to_string();
        assert!(e.contains("non_tachyon") || e.contains("keep"), "{e}");
        let e = Config::parse("[[ports]]\nid = 0\nnext_hop_mac = \"zz\"\n").unwrap_err().to_string();
        assert!(e.contains("ports[0].next_hop_mac"), "{e}");
        let e = Config::parse("[[ports]]\nid = 0\negress_port = 3\n").unwrap_err().to_string();
        assert!(e.contains("ports[0].egress_port"), "{e}");
        let e = Config::parse("[workers]\nlcores = [1, 1]\n").unwrap_err().to_string();
        assert!(e.contains("workers.lcores"), "{e}");
        let e = Config::parse("[metrics]\nlisten = \"localhost\"\n").unwrap_err().to_string();
        assert!(e.contains("metrics.listen"), "{e}");
        let e = Config::parse("[metrics]\nport = 1\n").unwrap_err().to_string();
        assert!(e.contains("port"), "{e}");
    }

    #[test]
    fn the_shipped_default_config_is_the_defaults() {
        let c = Config::parse(include_str!("../dpdk-config/default.toml")).unwrap();
        assert!(c.metrics.enabled);
        assert_eq!(c.metrics.listen, DEFAULT_METRICS_LISTEN);
        assert_eq!(c.control.stats_interval_ms, Control::default().stats_interval_ms);
        let (shipped, default) =
            (c.bridge.settings().unwrap(), crate::bridge::BridgeConfig::default().settings().unwrap());
        assert_eq!(format!("{shipped:?}"), format!("{default:?}"), "[bridge] in default.toml is the defaults");
        assert!(c.bridge.enabled && c.bridge.path.is_none());
        assert_eq!(c.dataplane.mtu, Dataplane::default().mtu);
    }

    #[test]
    fn mtu_defaults_to_1500_and_takes_jumbo_up_to_9000() {
        assert_eq!(Config::parse("").unwrap().dataplane.mtu, 1500);
        assert_eq!(Config::parse("[dataplane]\nmtu = 9000\n").unwrap().dataplane.mtu, 9000);
        for bad in ["10000", "9001", "67", "0"] {
            let e = Config::parse(&format!("[dataplane]\nmtu = {bad}\n")).unwrap_err().to_string();
            assert!(e.contains("dataplane.mtu") && e.contains("9000"), "{e}");
        }
        let e = Config::parse("[dataplane]\nmtu = 70000\n").unwrap_err().to_string();
        assert!(e.contains("mtu"), "{e}");
    }

    #[test]
    fn metrics_default_to_loopback_and_can_be_configured() {
        let c = Config::parse("").unwrap();
        assert!(c.metrics.enabled);
        assert_eq!(c.metrics.listen, "127.0.0.1:9898");
        let c = Config::parse("[metrics]\nenabled = false\nlisten = \"[::1]:9100\"\n").unwrap();
        assert!(!c.metrics.enabled);
        assert_eq!(parse_listen_addr(&c.metrics.listen).unwrap().port(), 9100);
    }

    #[test]
    fn default_routes_pair_ports_like_l2fwd() {
        let c = Config::default();
        let r = c.routes(&[0, 1, 2]).unwrap();
        assert_eq!(r.iter().map(|r| (r.ingress, r.egress)).collect::<Vec<_>>(), vec![(0, 1), (1, 0), (2, 2)]);
        assert_eq!(r[0].next_hop, [2, 0, 0, 0, 0, 1]);
        let lone = c.routes(&[0]).unwrap();
        assert_eq!((lone[0].ingress, lone[0].egress), (0, 0));
    }

    #[test]
    fn configured_routes_and_missing_ports() {
        let c = Config::parse("[[ports]]\nid = 1\negress_port = 1\nnext_hop_mac = \"aa:bb:cc:dd:ee:ff\"\n").unwrap();
        let r = c.routes(&[0, 1]).unwrap();
        assert_eq!(r, vec![RouteSpec { ingress: 1, egress: 1, next_hop: [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff] }]);
        let e = c.routes(&[0]).unwrap_err().to_string();
        assert!(e.contains("port 1 does not exist"), "{e}");
    }
}
