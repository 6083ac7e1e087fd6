//! Reads the machine through hwloc into our plain [`Topology`].
//!
//! hwloc itself honours `HWLOC_SYNTHETIC` (and `HWLOC_XMLFILE`) when it loads a
//! topology, so a test can describe a dual-socket machine in the environment of
//! a child process and this code needs no special path for it.

use std::collections::BTreeSet;
use std::fmt;

use hwloc2::{ObjectType, TopologyObject};

use super::model::{Core, CpuId, NodeId, Topology, TopologyOrigin};

/// Why the machine's topology could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    /// hwloc failed to initialise or load.
    LoadFailed,
    /// `HWLOC_SYNTHETIC` was set but hwloc fell back to the real machine, which it
    /// does silently when the description does not parse.
    SyntheticRejected { description: String },
    /// hwloc reported no CPUs at all.
    NoCpus,
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryError::LoadFailed => write!(
                f,
                "hwloc could not load the machine topology; check that libhwloc 2 is installed \
                 and that HWLOC_XMLFILE, if set, names a readable file"
            ),
            DiscoveryError::SyntheticRejected { description } => write!(
                f,
                "hwloc rejected HWLOC_SYNTHETIC=\"{description}\" and read the real machine instead; \
                 the description must end with PUs, e.g. \"pack:2 [numa] l3:1 core:16 pu:2\""
            ),
            DiscoveryError::NoCpus => write!(f, "hwloc reported a machine without CPUs"),
        }
    }
}

impl std::error::Error for DiscoveryError {}

/// Which description hwloc was told to load instead of this machine, if any.
fn requested_origin() -> TopologyOrigin {
    let non_empty = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    if let Some(description) = non_empty("HWLOC_SYNTHETIC") {
        TopologyOrigin::Synthetic(description)
    } else if let Some(path) = non_empty("HWLOC_XMLFILE") {
        TopologyOrigin::Xml(path)
    } else {
        TopologyOrigin::ThisSystem
    }
}

/// Discovers the topology hwloc sees (this machine, or the one `HWLOC_SYNTHETIC` describes).
pub fn discover() -> Result<Topology, DiscoveryError> {
    let hw = hwloc2::Topology::new().ok_or(DiscoveryError::LoadFailed)?;
    let origin = requested_origin();
    // hwloc only binds threads on the machine it runs on; binding support on a
    // "synthetic" topology therefore means hwloc ignored the description.
    let claims_this_system = std::env::var("HWLOC_THISSYSTEM").is_ok_and(|value| value == "1");
    if let TopologyOrigin::Synthetic(description) = &origin
        && hw.support().cpu().set_current_thread()
        && !claims_this_system
    {
        return Err(DiscoveryError::SyntheticRejected { description: description.clone() });
    }
    from_hwloc(&hw, origin)
}

/// OS indexes in an hwloc bitmap; bounded because hwloc bitmaps may be infinite.
fn set_members(set: Option<hwloc2::Bitmap>) -> Vec<u32> {
    const MOST_IDS_WE_READ: usize = 1 << 16;
    set.map(|set| set.into_iter().take(MOST_IDS_WE_READ).collect()).unwrap_or_default()
}

/// Objects of one type, or none when the machine lacks that level.
fn objects_of(hw: &hwloc2::Topology, object_type: ObjectType) -> Vec<&TopologyObject> {
    hw.objects_with_type(&object_type).unwrap_or_default()
}

/// For each object, its logical index and the CPUs it covers.
fn cpu_domains(objects: &[&TopologyObject]) -> Vec<(u32, Vec<CpuId>)> {
    objects.iter().map(|object| (object.logical_index(), set_members(object.cpuset()))).collect()
}

/// The domain (package, L3) that contains `cpu`.
fn domain_of(domains: &[(u32, Vec<CpuId>)], cpu: CpuId) -> Option<u32> {
    domains.iter().find(|(_, cpus)| cpus.contains(&cpu)).map(|(index, _)| *index)
}

fn from_hwloc(hw: &hwloc2::Topology, origin: TopologyOrigin) -> Result<Topology, DiscoveryError> {
    let packages = cpu_domains(&objects_of(hw, ObjectType::Package));
    let l3_domains = cpu_domains(&objects_of(hw, ObjectType::L3Cache));
    let mut core_objects = objects_of(hw, ObjectType::Core);
    // Some virtual machines report PUs without cores: then each PU is its own core.
    if core_objects.is_empty() {
        core_objects = objects_of(hw, ObjectType::PU);
    }
    let all_nodes: Vec<NodeId> = set_members(hw.object_at_root().nodeset());

    let mut cores = Vec::with_capacity(core_objects.len());
    for object in core_objects {
        let pus = set_members(object.cpuset());
        let Some(&first_cpu) = pus.first() else {
            continue;
        };
        // A core may be local to several memory nodes (DRAM plus HBM or CXL);
        // the lowest-numbered one is the ordinary DRAM node.
        let numa_node =
            set_members(object.nodeset()).first().copied().or_else(|| all_nodes.first().copied()).unwrap_or(0);
        cores.push(Core {
            id: object.logical_index(),
            os_index: object.os_index(),
            package: domain_of(&packages, first_cpu).unwrap_or(0),
            numa_node,
            l3: domain_of(&l3_domains, first_cpu),
            pus,
        });
    }
    if cores.is_empty() {
        return Err(DiscoveryError::NoCpus);
    }
    cores.sort_by_key(|core| core.id);

    let distinct =
        |values: Vec<u32>| -> Vec<u32> { values.into_iter().collect::<BTreeSet<u32>>().into_iter().collect() };
    Ok(Topology {
        origin,
        packages: distinct(cores.iter().map(|core| core.package).collect()),
        numa_nodes: distinct(cores.iter().map(|core| core.numa_node).collect()),
        l3_domains: distinct(cores.iter().filter_map(|core| core.l3).collect()),
        cores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_the_machine_we_run_on() {
        // Cargo runs unit tests without HWLOC_SYNTHETIC unless the caller set it.
        let topo = discover().expect("hwloc loads this machine");
        assert!(!topo.cores.is_empty());
        assert!(!topo.numa_nodes.is_empty());
        let cpus = topo.all_cpus();
        let mut unique = cpus.clone();
        unique.dedup();
        assert_eq!(cpus, unique, "every CPU belongs to exactly one core");
    }
}
