//! Plain data describing a machine: packages, NUMA nodes, L3 domains, cores and their CPUs.
//!
//! Deliberately free of hwloc types so the planner can be tested on machines
//! built by hand, and so the plan can be reasoned about without hardware.

use serde::Serialize;

/// An OS CPU number (a hardware thread / PU), as Linux, `taskset` and EAL's `-l` count them.
pub type CpuId = u32;
/// An OS NUMA node number, as sysfs and DPDK's `socket_id` count them.
pub type NodeId = u32;

/// One physical core and the hardware threads (SMT siblings) it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Core {
    /// Machine-wide index in topology order (hwloc's logical index), unique across packages.
    pub id: u32,
    /// The OS core number; it repeats across packages, so it only helps when reading `lscpu`.
    pub os_index: u32,
    /// Package (socket) index.
    pub package: u32,
    /// The NUMA node whose memory is local to this core.
    pub numa_node: NodeId,
    /// The L3 cache domain, when the machine reports one.
    pub l3: Option<u32>,
    /// OS CPU numbers of this core's hardware threads, ascending; more than one means SMT.
    pub pus: Vec<CpuId>,
}

/// Where a topology came from; host checks only make sense for the machine we run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "description")]
pub enum TopologyOrigin {
    /// Discovered from the running machine.
    ThisSystem,
    /// hwloc's synthetic description from `HWLOC_SYNTHETIC`.
    Synthetic(String),
    /// An hwloc XML export from `HWLOC_XMLFILE`.
    Xml(String),
    /// Built in memory (tests, what-if plans).
    InMemory,
}

/// The machine as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// Where this description came from.
    pub origin: TopologyOrigin,
    /// Package (socket) indexes, ascending.
    pub packages: Vec<u32>,
    /// NUMA node numbers, ascending.
    pub numa_nodes: Vec<NodeId>,
    /// L3 domain indexes, ascending; empty when the machine reports no L3.
    pub l3_domains: Vec<u32>,
    /// Every core, ascending by `id`.
    pub cores: Vec<Core>,
}

/// How a hand-built machine numbers its hardware threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuNumbering {
    /// A core's threads are consecutive CPUs (0,1 / 2,3 …), as hwloc's synthetic topologies do.
    SiblingsAdjacent,
    /// CPU n and CPU n + cores are siblings (0,32 / 1,33 …), as Linux numbers most x86 servers.
    SiblingsInSecondHalf,
}

/// The shape of a regular machine, for building test and what-if topologies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegularShape {
    pub packages: u32,
    pub nodes_per_package: u32,
    pub l3_per_node: u32,
    pub cores_per_l3: u32,
    pub threads_per_core: u32,
    pub numbering: CpuNumbering,
}

impl Topology {
    /// Builds a regular machine in memory; the planner's tests and the figures use it.
    pub fn regular(shape: RegularShape) -> Topology {
        let nodes = shape.packages * shape.nodes_per_package;
        let l3_total = nodes * shape.l3_per_node;
        let core_total = l3_total * shape.cores_per_l3;
        let cores_per_package = shape.nodes_per_package * shape.l3_per_node * shape.cores_per_l3;
        let cores = (0..core_total)
            .map(|id| {
                let l3 = id / shape.cores_per_l3;
                let pus = (0..shape.threads_per_core)
                    .map(|thread| match shape.numbering {
                        CpuNumbering::SiblingsAdjacent => id * shape.threads_per_core + thread,
                        CpuNumbering::SiblingsInSecondHalf => thread * core_total + id,
                    })
                    .collect();
                Core {
                    id,
                    os_index: id % cores_per_package,
                    package: id / cores_per_package,
                    numa_node: l3 / shape.l3_per_node,
                    l3: Some(l3),
                    pus,
                }
            })
            .collect();
        Topology {
            origin: TopologyOrigin::InMemory,
            packages: (0..shape.packages).collect(),
            numa_nodes: (0..nodes).collect(),
            l3_domains: (0..l3_total).collect(),
            cores,
        }
    }

    /// The core that runs `cpu`, if the machine has that CPU.
    pub fn core_of_cpu(&self, cpu: CpuId) -> Option<&Core> {
        self.cores.iter().find(|core| core.pus.contains(&cpu))
    }

    /// The core with machine-wide index `id`.
    pub fn core(&self, id: u32) -> Option<&Core> {
        self.cores.iter().find(|core| core.id == id)
    }

    /// Every CPU of the machine, ascending.
    pub fn all_cpus(&self) -> Vec<CpuId> {
        let mut cpus: Vec<CpuId> = self.cores.iter().flat_map(|core| core.pus.clone()).collect();
        cpus.sort_unstable();
        cpus
    }

    /// The cores local to `node`, ascending.
    pub fn cores_on_node(&self, node: NodeId) -> impl Iterator<Item = &Core> {
        self.cores.iter().filter(move |core| core.numa_node == node)
    }

    /// The CPUs local to `node`, ascending.
    pub fn cpus_on_node(&self, node: NodeId) -> Vec<CpuId> {
        let mut cpus: Vec<CpuId> = self.cores_on_node(node).flat_map(|core| core.pus.clone()).collect();
        cpus.sort_unstable();
        cpus
    }

    /// Hardware threads per core (1 without SMT); the widest core counts.
    pub fn threads_per_core(&self) -> usize {
        self.cores.iter().map(|core| core.pus.len()).max().unwrap_or(0)
    }

    /// Whether a node of that number exists here.
    pub fn has_node(&self, node: NodeId) -> bool {
        self.numa_nodes.contains(&node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dual_socket(numbering: CpuNumbering) -> Topology {
        Topology::regular(RegularShape {
            packages: 2,
            nodes_per_package: 1,
            l3_per_node: 1,
            cores_per_l3: 16,
            threads_per_core: 2,
            numbering,
        })
    }

    #[test]
    fn regular_shape_with_adjacent_siblings_matches_hwloc_synthetic_numbering() {
        let topo = dual_socket(CpuNumbering::SiblingsAdjacent);
        assert_eq!(topo.cores.len(), 32);
        assert_eq!(topo.all_cpus().len(), 64);
        assert_eq!(topo.cores[1].pus, vec![2, 3]);
        assert_eq!(topo.cores[16].numa_node, 1);
        assert_eq!(topo.cores[16].package, 1);
        assert_eq!(topo.cores[16].os_index, 0);
        assert_eq!(topo.core_of_cpu(33).unwrap().id, 16);
        assert_eq!(topo.threads_per_core(), 2);
    }

    #[test]
    fn regular_shape_with_linux_numbering_puts_siblings_in_the_second_half() {
        let topo = dual_socket(CpuNumbering::SiblingsInSecondHalf);
        assert_eq!(topo.cores[1].pus, vec![1, 33]);
        assert_eq!(topo.cpus_on_node(1).first(), Some(&16));
        assert_eq!(topo.core_of_cpu(48).unwrap().id, 16);
    }
}
