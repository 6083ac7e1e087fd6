//! Pins threads that are not workers (metrics server, control helpers) away from worker cores.
//!
//! Uses hwloc's safe binding call, so this crate needs no `unsafe` for it.

use std::fmt;

use hwloc2::{CpuBindFlags, CpuSet};

use super::cpulist::format_cpu_list;
use super::model::CpuId;
use super::plan::Plan;

/// Why the current thread could not be pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinError {
    /// An empty CPU set would leave the thread nowhere to run.
    NoCpus,
    /// hwloc could not load the topology it binds through.
    TopologyUnavailable,
    /// hwloc cannot bind here, e.g. because `HWLOC_SYNTHETIC` describes another machine.
    Unsupported,
    /// The kernel refused the binding.
    Refused { cpus: Vec<CpuId>, reason: String },
}

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinError::NoCpus => write!(f, "cannot pin a thread to an empty CPU set"),
            PinError::TopologyUnavailable => {
                write!(f, "cannot pin threads: hwloc could not load the topology")
            }
            PinError::Unsupported => write!(
                f,
                "cannot pin threads: hwloc has no thread binding for this topology \
                 (unset HWLOC_SYNTHETIC / HWLOC_XMLFILE to bind on the real machine)"
            ),
            PinError::Refused { cpus, reason } => write!(
                f,
                "the kernel refused to pin this thread to CPUs {}: {reason} \
                 (are they outside this process's cpuset or offline?)",
                format_cpu_list(cpus)
            ),
        }
    }
}

impl std::error::Error for PinError {}

/// Restricts the calling thread to `cpus`.
pub fn pin_current_thread(cpus: &[CpuId]) -> Result<(), PinError> {
    if cpus.is_empty() {
        return Err(PinError::NoCpus);
    }
    let mut topology = hwloc2::Topology::new().ok_or(PinError::TopologyUnavailable)?;
    if !topology.support().cpu().set_current_thread() {
        return Err(PinError::Unsupported);
    }
    let set: CpuSet = cpus.iter().copied().collect();
    topology
        .set_cpubind(set, CpuBindFlags::CPUBIND_THREAD)
        .map_err(|hwloc2::CpuBindError::Generic(_, reason)| PinError::Refused { cpus: cpus.to_vec(), reason })
}

/// Pins the calling non-worker thread (metrics, control helper) to the plan's helper CPUs.
pub fn pin_helper_thread(plan: &Plan) -> Result<(), PinError> {
    pin_current_thread(plan.non_worker_cpus())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed_cpus_of_this_thread() -> String {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        status.lines().find_map(|line| line.strip_prefix("Cpus_allowed_list:")).unwrap().trim().to_string()
    }

    #[test]
    fn pins_a_thread_to_one_cpu() {
        // A fresh thread, so the test runner's other threads keep their affinity.
        std::thread::spawn(|| {
            let allowed = crate::topology::cpulist::parse_cpu_list(&allowed_cpus_of_this_thread()).unwrap();
            let last = *allowed.last().unwrap();
            pin_current_thread(&[last]).expect("a CPU this thread may use");
            assert_eq!(allowed_cpus_of_this_thread(), last.to_string());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn refuses_an_empty_set() {
        assert_eq!(pin_current_thread(&[]), Err(PinError::NoCpus));
    }
}
