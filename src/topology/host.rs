//! Best-effort facts about the running host that hurt determinism: CPU isolation,
//! frequency governor, turbo, and busy SMT siblings of worker cores.
//!
//! Every missing file means "unknown" (containers and VMs hide most of them),
//! never an error: these checks advise, they do not block a start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::cpulist::{format_cpu_list, parse_cpu_list};
use super::model::{CpuId, Topology};
use super::plan::Plan;

/// A sibling busier than this over the sample steals cycles from its worker.
const BUSY_SIBLING_THRESHOLD: f64 = 0.10;

/// What could be read about the host; `None` means unknown.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostFacts {
    /// CPUs the kernel keeps the scheduler off (`isolcpus`).
    pub isolated_cpus: Option<Vec<CpuId>>,
    /// `scaling_governor` per CPU, for the CPUs that have one.
    pub governors: BTreeMap<CpuId, String>,
    /// Whether turbo/boost is on.
    pub turbo: Option<bool>,
    /// Busy fraction (0..1) per CPU over a short sample.
    pub busy: BTreeMap<CpuId, f64>,
}

/// Where the host's files live; tests point this at a fake tree.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub sys_cpu: PathBuf,
    pub proc_cmdline: PathBuf,
    pub proc_stat: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            sys_cpu: PathBuf::from("/sys/devices/system/cpu"),
            proc_cmdline: PathBuf::from("/proc/cmdline"),
            proc_stat: PathBuf::from("/proc/stat"),
        }
    }
}

impl HostFacts {
    /// Reads the running host; sampling `/proc/stat` over `sample` to see busy CPUs.
    pub fn read(cpus: &[CpuId], sample: Duration) -> HostFacts {
        Self::read_from(&HostPaths::default(), cpus, sample)
    }

    /// As [`HostFacts::read`], below other roots.
    pub fn read_from(paths: &HostPaths, cpus: &[CpuId], sample: Duration) -> HostFacts {
        let read = |path: &Path| std::fs::read_to_string(path).ok();
        let isolated_cpus = read(&paths.sys_cpu.join("isolated"))
            .and_then(|text| parse_cpu_list(text.trim()).ok())
            .or_else(|| read(&paths.proc_cmdline).map(|text| isolcpus_from_cmdline(&text)));
        let governors = cpus
            .iter()
            .filter_map(|&cpu| {
                let path = paths.sys_cpu.join(format!("cpu{cpu}/cpufreq/scaling_governor"));
                read(&path).map(|governor| (cpu, governor.trim().to_string()))
            })
            .collect();
        let flag = |path: PathBuf| read(&path).map(|text| text.trim() == "1");
        let turbo = flag(paths.sys_cpu.join("intel_pstate/no_turbo"))
            .map(|no_turbo| !no_turbo)
            .or_else(|| flag(paths.sys_cpu.join("cpufreq/boost")));
        let before = read(&paths.proc_stat).map(|text| cpu_times(&text));
        let busy = match before {
            Some(before) if !sample.is_zero() => {
                std::thread::sleep(sample);
                read(&paths.proc_stat).map(|after| busy_fractions(&before, &cpu_times(&after))).unwrap_or_default()
            }
            _ => BTreeMap::new(),
        };
        HostFacts { isolated_cpus, governors, turbo, busy }
    }
}

/// The CPU list of `isolcpus=[flags,]list` on the kernel command line; none given ⇒ empty.
fn isolcpus_from_cmdline(cmdline: &str) -> Vec<CpuId> {
    let Some(value) = cmdline.split_whitespace().find_map(|word| word.strip_prefix("isolcpus=")) else {
        return Vec::new();
    };
    // Flags such as "nohz" or "domain" come first; the rest is the list.
    let list: Vec<&str> = value.split(',').filter(|part| part.starts_with(|c: char| c.is_ascii_digit())).collect();
    parse_cpu_list(&list.join(",")).unwrap_or_default()
}

/// (busy, total) jiffies per CPU from `/proc/stat`.
fn cpu_times(stat: &str) -> BTreeMap<CpuId, (u64, u64)> {
    stat.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let cpu: CpuId = fields.next()?.strip_prefix("cpu")?.parse().ok()?;
            let values: Vec<u64> = fields.filter_map(|value| value.parse().ok()).collect();
            let total: u64 = values.iter().take(8).sum();
            // idle and iowait are the 4th and 5th columns.
            let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
            Some((cpu, (total.saturating_sub(idle), total)))
        })
        .collect()
}

fn busy_fractions(before: &BTreeMap<CpuId, (u64, u64)>, after: &BTreeMap<CpuId, (u64, u64)>) -> BTreeMap<CpuId, f64> {
    after
        .iter()
        .filter_map(|(cpu, &(busy_after, total_after))| {
            let &(busy_before, total_before) = before.get(cpu)?;
            let total = total_after.checked_sub(total_before)?;
            let busy = busy_after.checked_sub(busy_before)?;
            (total > 0).then(|| (*cpu, busy as f64 / total as f64))
        })
        .collect()
}

/// How one host check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Warning,
    Unknown,
}

/// One host check, ready to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostCheck {
    pub check: &'static str,
    pub status: CheckStatus,
    pub detail: String,
}

/// Judges the host facts against the plan's worker cores.
pub fn assess(facts: &HostFacts, plan: &Plan, topo: &Topology) -> Vec<HostCheck> {
    let worker_cpus: Vec<CpuId> = plan.workers.iter().map(|w| w.cpu).collect();
    let mut checks = Vec::new();

    checks.push(match &facts.isolated_cpus {
        None => HostCheck {
            check: "isolcpus",
            status: CheckStatus::Unknown,
            detail: "cannot read /sys/devices/system/cpu/isolated or /proc/cmdline".into(),
        },
        Some(isolated) => {
            let exposed: Vec<CpuId> = worker_cpus.iter().copied().filter(|cpu| !isolated.contains(cpu)).collect();
            if exposed.is_empty() {
                HostCheck { check: "isolcpus", status: CheckStatus::Ok, detail: "every worker CPU is isolated".into() }
            } else {
                HostCheck {
                    check: "isolcpus",
                    status: CheckStatus::Warning,
                    detail: format!(
                        "worker CPUs {} are not in isolcpus; the scheduler may run other tasks there \
                         (boot with isolcpus={} nohz_full={})",
                        format_cpu_list(&exposed),
                        format_cpu_list(&worker_cpus),
                        format_cpu_list(&worker_cpus)
                    ),
                }
            }
        }
    });

    let slow: Vec<CpuId> = worker_cpus
        .iter()
        .copied()
        .filter(|cpu| facts.governors.get(cpu).is_some_and(|g| g != "performance"))
        .collect();
    let unknown: Vec<CpuId> = worker_cpus.iter().copied().filter(|cpu| !facts.governors.contains_key(cpu)).collect();
    checks.push(if !slow.is_empty() {
        let governors: Vec<&str> = slow.iter().filter_map(|cpu| facts.governors.get(cpu).map(String::as_str)).collect();
        HostCheck {
            check: "governor",
            status: CheckStatus::Warning,
            detail: format!(
                "worker CPUs {} use governor '{}', not 'performance'; clock changes add jitter",
                format_cpu_list(&slow),
                governors.first().copied().unwrap_or_default()
            ),
        }
    } else if !unknown.is_empty() {
        HostCheck {
            check: "governor",
            status: CheckStatus::Unknown,
            detail: format!("no cpufreq governor readable for worker CPUs {}", format_cpu_list(&unknown)),
        }
    } else {
        HostCheck {
            check: "governor",
            status: CheckStatus::Ok,
            detail: "worker CPUs use the performance governor".into(),
        }
    });

    checks.push(match facts.turbo {
        Some(true) => HostCheck {
            check: "turbo",
            status: CheckStatus::Warning,
            detail: "turbo/boost is on: per-core clocks vary with load and temperature".into(),
        },
        Some(false) => HostCheck { check: "turbo", status: CheckStatus::Ok, detail: "turbo/boost is off".into() },
        None => HostCheck {
            check: "turbo",
            status: CheckStatus::Unknown,
            detail: "neither intel_pstate/no_turbo nor cpufreq/boost is readable".into(),
        },
    });

    let worker_cpu_list = worker_cpus.as_slice();
    let siblings: Vec<(CpuId, CpuId)> = plan
        .workers
        .iter()
        .filter_map(|w| topo.core(w.core).map(|core| (w.cpu, core)))
        .flat_map(|(worker_cpu, core)| {
            core.pus
                .iter()
                .copied()
                .filter(move |&cpu| cpu != worker_cpu && !worker_cpu_list.contains(&cpu))
                .map(move |sibling| (sibling, worker_cpu))
        })
        .collect();
    checks.push(if siblings.is_empty() {
        HostCheck {
            check: "smt_siblings",
            status: CheckStatus::Ok,
            detail: "worker cores have no other hardware threads".into(),
        }
    } else if facts.busy.is_empty() {
        HostCheck {
            check: "smt_siblings",
            status: CheckStatus::Unknown,
            detail: "cannot sample /proc/stat for the workers' SMT siblings".into(),
        }
    } else {
        let busy: Vec<String> = siblings
            .iter()
            .filter_map(|(sibling, worker_cpu)| {
                let load = *facts.busy.get(sibling)?;
                (load > BUSY_SIBLING_THRESHOLD)
                    .then(|| format!("CPU {sibling} ({:.0}% busy, sibling of worker CPU {worker_cpu})", load * 100.0))
            })
            .collect();
        if busy.is_empty() {
            HostCheck {
                check: "smt_siblings",
                status: CheckStatus::Ok,
                detail: "the workers' SMT siblings are quiet".into(),
            }
        } else {
            HostCheck {
                check: "smt_siblings",
                status: CheckStatus::Warning,
                detail: format!(
                    "busy SMT siblings share worker cores: {}; isolate them too or disable SMT",
                    busy.join(", ")
                ),
            }
        }
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::eal_args::parse_eal_args;
    use crate::topology::model::{CpuNumbering, RegularShape};
    use crate::topology::plan::{PlanRequest, plan};
    use crate::topology::ports::PortPlacement;

    fn smt_machine_plan() -> (Topology, Plan) {
        let topo = Topology::regular(RegularShape {
            packages: 1,
            nodes_per_package: 1,
            l3_per_node: 1,
            cores_per_l3: 4,
            threads_per_core: 2,
            numbering: CpuNumbering::SiblingsAdjacent,
        });
        let args: Vec<String> = vec!["-l".into(), "0,2,4".into()];
        let layout = parse_eal_args(&args).unwrap().lcore_layout(&topo).unwrap();
        let ports = [PortPlacement::on_node("p", 0)];
        let plan = plan(&topo, &ports, &layout, &PlanRequest::default()).unwrap();
        (topo, plan)
    }

    fn status_of(checks: &[HostCheck], name: &str) -> CheckStatus {
        checks.iter().find(|c| c.check == name).unwrap().status
    }

    #[test]
    fn nothing_known_is_unknown_not_an_error() {
        let (topo, plan) = smt_machine_plan();
        let checks = assess(&HostFacts::default(), &plan, &topo);
        for check in &checks {
            assert_eq!(check.status, CheckStatus::Unknown, "{check:?}");
        }
    }

    #[test]
    fn poor_host_settings_warn() {
        let (topo, plan) = smt_machine_plan();
        let facts = HostFacts {
            isolated_cpus: Some(vec![2]),
            governors: [(2, "performance".to_string()), (4, "powersave".to_string())].into(),
            turbo: Some(true),
            busy: [(3, 0.5), (5, 0.01)].into(),
        };
        let checks = assess(&facts, &plan, &topo);
        assert!(checks.iter().all(|c| c.status == CheckStatus::Warning), "{checks:?}");
        let isolation = &checks[0].detail;
        assert!(isolation.contains("worker CPUs 4 are not in isolcpus"), "{isolation}");
        assert!(checks[1].detail.contains("powersave"));
        assert!(checks[3].detail.contains("CPU 3 (50% busy"), "{}", checks[3].detail);
        assert!(!checks[3].detail.contains("CPU 5"));
    }

    #[test]
    fn a_tuned_host_passes() {
        let (topo, plan) = smt_machine_plan();
        let facts = HostFacts {
            isolated_cpus: Some(vec![2, 3, 4, 5]),
            governors: [(2, "performance".to_string()), (4, "performance".to_string())].into(),
            turbo: Some(false),
            busy: [(3, 0.0), (5, 0.02)].into(),
        };
        let checks = assess(&facts, &plan, &topo);
        for name in ["isolcpus", "governor", "turbo", "smt_siblings"] {
            assert_eq!(status_of(&checks, name), CheckStatus::Ok, "{name}");
        }
    }

    #[test]
    fn reads_a_fake_sysfs_tree() {
        let root = std::env::temp_dir().join(format!("tachyon-host-{}", std::process::id()));
        let sys_cpu = root.join("sys");
        std::fs::create_dir_all(sys_cpu.join("cpu2/cpufreq")).unwrap();
        std::fs::create_dir_all(sys_cpu.join("cpufreq")).unwrap();
        std::fs::write(sys_cpu.join("cpu2/cpufreq/scaling_governor"), "schedutil\n").unwrap();
        std::fs::write(sys_cpu.join("cpufreq/boost"), "1\n").unwrap();
        std::fs::write(root.join("cmdline"), "quiet isolcpus=nohz,domain,2-3,6 ro\n").unwrap();
        std::fs::write(root.join("stat"), "cpu  1 2 3 4\ncpu0 10 0 10 80 0 0 0 0\n").unwrap();
        let paths = HostPaths { sys_cpu, proc_cmdline: root.join("cmdline"), proc_stat: root.join("stat") };
        let facts = HostFacts::read_from(&paths, &[2, 4], Duration::from_millis(1));
        assert_eq!(facts.isolated_cpus, Some(vec![2, 3, 6]));
        assert_eq!(facts.governors.get(&2).map(String::as_str), Some("schedutil"));
        assert!(!facts.governors.contains_key(&4));
        assert_eq!(facts.turbo, Some(true));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn proc_stat_deltas_give_busy_fractions() {
        let before = cpu_times("cpu0 100 0 100 800 0 0 0 0\ncpu1 0 0 0 1000 0 0 0 0\n");
        let after = cpu_times("cpu0 150 0 150 900 0 0 0 0\ncpu1 0 0 0 1100 0 0 0 0\n");
        let busy = busy_fractions(&before, &after);
        assert!((busy[&0] - 0.5).abs() < 1e-9);
        assert_eq!(busy[&1], 0.0);
    }

    #[test]
    fn cmdline_without_isolcpus_isolates_nothing() {
        assert_eq!(isolcpus_from_cmdline("quiet ro"), Vec::<CpuId>::new());
        assert_eq!(isolcpus_from_cmdline("isolcpus=1-3,5"), vec![1, 2, 3, 5]);
    }
}
