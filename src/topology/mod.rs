//! NUMA- and SMT-aware worker placement.
//!
//! Scaling fails on a bad placement long before code speed matters: two workers
//! on SMT siblings, a queue polled from the far socket, mbufs on the wrong node.
//! This module discovers the machine ([`discover()`]), reads EAL's lcore arguments
//! without starting EAL ([`eal_args`]), computes a placement with a pure function
//! ([`plan::plan`]) and reports it ([`report`]), with host checks ([`host`]).
//!
//! `tachyon [EAL args] -- --plan` calls [`plan_command`]; a normal start calls
//! [`place`] and wires the data plane from [`Placement::plan`].

pub mod cpulist;
pub mod discover;
pub mod eal_args;
pub mod host;
pub mod model;
pub mod pin;
pub mod plan;
pub mod ports;
pub mod report;

use std::fmt;
use std::time::Duration;

pub use discover::{DiscoveryError, discover};
pub use eal_args::{EalArgs, EalArgsError, EalDevice, LcoreId, LcoreLayout, parse_eal_args};
pub use host::{HostCheck, HostFacts};
pub use model::{Core, CpuId, NodeId, Topology, TopologyOrigin};
pub use pin::{PinError, pin_current_thread, pin_helper_thread};
pub use plan::{Plan, PlanError, PlanRequest, PortId, QueueId, plan};
pub use ports::{PortPlacement, pci_numa_node};
pub use report::{HostSection, PlanReport};

/// How long `/proc/stat` is sampled to see whether workers' SMT siblings are busy.
const SIBLING_SAMPLE: Duration = Duration::from_millis(200);

/// Why no placement could be made at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    /// The EAL arguments do not parse.
    EalArgs(EalArgsError),
    /// hwloc could not describe the machine.
    Discovery(DiscoveryError),
    /// The rules refuse the request on this machine.
    Refused { topology: String, error: PlanError },
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlacementError::EalArgs(error) => write!(f, "{error}"),
            PlacementError::Discovery(error) => write!(f, "{error}"),
            PlacementError::Refused { topology, error } => {
                write!(f, "{error}\ntopology: {topology}")
            }
        }
    }
}

impl std::error::Error for PlacementError {}

/// Everything decided at start-up: the machine, EAL's lcores, the ports and the plan.
#[derive(Debug, Clone)]
pub struct Placement {
    pub topology: Topology,
    pub lcores: LcoreLayout,
    pub ports: Vec<PortPlacement>,
    pub plan: Plan,
}

impl Placement {
    /// The start-up report; host checks run only when the topology is this machine.
    pub fn report(&self, json: bool) -> String {
        let host = match &self.topology.origin {
            TopologyOrigin::ThisSystem => {
                let cpus = self.topology.all_cpus();
                let facts = HostFacts::read(&cpus, SIBLING_SAMPLE);
                HostSection::Checked { checks: host::assess(&facts, &self.plan, &self.topology) }
            }
            _ => HostSection::Skipped { why: "the topology is not this machine".into() },
        };
        let report = PlanReport::new(&self.topology, &self.lcores, &self.plan, &host);
        if json { report.to_json() } else { report.to_text() }
    }
}

/// Discovers the machine (honouring `HWLOC_SYNTHETIC`) and plans placement for these EAL
/// arguments. With no `ports`, the ports are EAL's `-a`/`--vdev` devices in order.
pub fn place(eal_args: &[String], ports: &[PortPlacement], req: &PlanRequest) -> Result<Placement, PlacementError> {
    let eal = parse_eal_args(eal_args).map_err(PlacementError::EalArgs)?;
    let topology = discover().map_err(PlacementError::Discovery)?;
    let lcores = eal.lcore_layout(&topology).map_err(PlacementError::EalArgs)?;
    let ports: Vec<PortPlacement> = if ports.is_empty() {
        eal.devices.iter().map(PortPlacement::from_eal_device).collect()
    } else {
        ports.to_vec()
    };
    let plan = plan(&topology, &ports, &lcores, req)
        .map_err(|error| PlacementError::Refused { topology: report::topology_summary(&topology), error })?;
    Ok(Placement { topology, lcores, ports, plan })
}

/// `tachyon [EAL args] -- --plan`: the placement report (text or JSON), or why there is none.
/// Needs neither hugepages nor NICs: EAL is not started.
pub fn plan_command(
    eal_args: &[String],
    ports: &[PortPlacement],
    req: &PlanRequest,
    json: bool,
) -> Result<String, PlacementError> {
    place(eal_args, ports, req).map(|placement| placement.report(json))
}
