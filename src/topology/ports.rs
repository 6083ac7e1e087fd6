//! Where each port's NIC sits: its NUMA node, or "unknown" (then any node will do).

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::eal_args::EalDevice;
use super::model::NodeId;

/// A port as the planner needs it. Its index in the slice given to the planner is its DPDK port id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortPlacement {
    /// A name for people: the PCI address, the vdev name or the config name.
    pub name: String,
    /// The NUMA node the NIC is attached to; `None` when unknown (vdev, or firmware says −1).
    pub numa_node: Option<NodeId>,
}

/// Why a `--plan-port` value could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpecError {
    pub spec: String,
}

impl fmt::Display for PortSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port '{}' should be NAME@NODE, e.g. 0000:03:00.0@1 or net_null0@any", self.spec)
    }
}

impl std::error::Error for PortSpecError {}

impl PortPlacement {
    /// A port whose node is known.
    pub fn on_node(name: impl Into<String>, node: NodeId) -> Self {
        PortPlacement { name: name.into(), numa_node: Some(node) }
    }

    /// A port whose node is unknown; the planner lets workers on any node serve it.
    pub fn anywhere(name: impl Into<String>) -> Self {
        PortPlacement { name: name.into(), numa_node: None }
    }

    /// Parses the CLI form `NAME@NODE` (`NODE` may be `any`); the name may itself contain ':'.
    pub fn parse_cli(spec: &str) -> Result<Self, PortSpecError> {
        let error = || PortSpecError { spec: spec.to_string() };
        let (name, node) = spec.rsplit_once('@').ok_or_else(error)?;
        if name.is_empty() {
            return Err(error());
        }
        match node {
            "any" | "unknown" | "-1" => Ok(Self::anywhere(name)),
            node => Ok(Self::on_node(name, node.parse().map_err(|_| error())?)),
        }
    }

    /// A PCI NIC, its node read from sysfs.
    pub fn from_pci(address: &str) -> Self {
        PortPlacement { name: address.to_string(), numa_node: pci_numa_node(address) }
    }

    /// A port as DPDK sees it after EAL start: `rte_eth_dev_socket_id()` is −1 when unknown.
    pub fn from_dpdk_socket(name: impl Into<String>, socket_id: i32) -> Self {
        PortPlacement { name: name.into(), numa_node: NodeId::try_from(socket_id).ok() }
    }

    /// A `[[ports]]` config entry: an explicit `numa_node` wins, else sysfs for `pci`, else unknown.
    pub fn from_config(name: &str, pci: Option<&str>, numa_node: Option<NodeId>) -> Self {
        match (numa_node, pci) {
            (Some(node), _) => Self::on_node(name, node),
            (None, Some(address)) => PortPlacement { name: name.to_string(), numa_node: pci_numa_node(address) },
            (None, None) => Self::anywhere(name),
        }
    }

    /// A device from the EAL arguments: PCI nodes come from sysfs, vdevs have none.
    pub fn from_eal_device(device: &EalDevice) -> Self {
        match device {
            EalDevice::Pci { address } => Self::from_pci(address),
            EalDevice::Vdev { name } => Self::anywhere(name.clone()),
        }
    }
}

/// The NUMA node of a PCI device from `/sys/bus/pci/devices/<addr>/numa_node`; −1 or absent ⇒ `None`.
pub fn pci_numa_node(address: &str) -> Option<NodeId> {
    pci_numa_node_under(Path::new("/sys/bus/pci/devices"), address)
}

/// As [`pci_numa_node`], reading below `devices_dir` (tests point it at a fake tree).
pub fn pci_numa_node_under(devices_dir: &Path, address: &str) -> Option<NodeId> {
    let text = std::fs::read_to_string(devices_dir.join(full_pci_address(address))).ok()?;
    text.trim().parse::<i64>().ok().and_then(|node| NodeId::try_from(node).ok())
}

/// EAL accepts `03:00.0`; sysfs names it `0000:03:00.0/numa_node`.
fn full_pci_address(address: &str) -> String {
    let address = address.trim().to_ascii_lowercase();
    let with_domain = if address.matches(':').count() == 1 { format!("0000:{address}") } else { address };
    format!("{with_domain}/numa_node")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_spec_names_a_node_or_any() {
        assert_eq!(PortPlacement::parse_cli("0000:03:00.0@1").unwrap(), PortPlacement::on_node("0000:03:00.0", 1));
        assert_eq!(PortPlacement::parse_cli("net_null0@any").unwrap(), PortPlacement::anywhere("net_null0"));
        assert!(PortPlacement::parse_cli("eth0").is_err());
        assert!(PortPlacement::parse_cli("eth0@x").is_err());
        assert!(PortPlacement::parse_cli("@1").is_err());
    }

    #[test]
    fn sysfs_node_minus_one_means_unknown() {
        let root = std::env::temp_dir().join(format!("tachyon-pci-{}", std::process::id()));
        for (address, node) in [("0000:03:00.0", "1\n"), ("0000:04:00.0", "-1\n")] {
            std::fs::create_dir_all(root.join(address)).unwrap();
            std::fs::write(root.join(address).join("numa_node"), node).unwrap();
        }
        assert_eq!(pci_numa_node_under(&root, "03:00.0"), Some(1));
        assert_eq!(pci_numa_node_under(&root, "0000:04:00.0"), None);
        assert_eq!(pci_numa_node_under(&root, "0000:05:00.0"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn dpdk_socket_minus_one_is_unknown_and_config_node_wins() {
        assert_eq!(PortPlacement::from_dpdk_socket("p", -1).numa_node, None);
        assert_eq!(PortPlacement::from_dpdk_socket("p", 1).numa_node, Some(1));
        let configured = PortPlacement::from_config("wan", Some("0000:ff:1f.7"), Some(1));
        assert_eq!(configured, PortPlacement::on_node("wan", 1));
        assert_eq!(PortPlacement::from_config("tap", None, None).numa_node, None);
    }

    #[test]
    fn vdevs_have_no_node() {
        let vdev = EalDevice::Vdev { name: "net_null0".into() };
        assert_eq!(PortPlacement::from_eal_device(&vdev).numa_node, None);
    }
}
