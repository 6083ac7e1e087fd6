//! The start-up placement report, as text for people and JSON for tools and tests.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::cpulist::format_cpu_list;
use super::eal_args::{LcoreId, LcoreLayout};
use super::host::{CheckStatus, HostCheck};
use super::model::{Topology, TopologyOrigin};
use super::plan::{Plan, PortId, QueueId};

/// The host checks, or why they were not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum HostSection {
    Checked { checks: Vec<HostCheck> },
    Skipped { why: String },
}

/// Everything the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport<'a> {
    pub summary: String,
    pub topology: &'a Topology,
    pub lcores: &'a LcoreLayout,
    pub plan: &'a Plan,
    pub host: &'a HostSection,
}

impl<'a> PlanReport<'a> {
    pub fn new(topology: &'a Topology, lcores: &'a LcoreLayout, plan: &'a Plan, host: &'a HostSection) -> Self {
        PlanReport { summary: topology_summary(topology), topology, lcores, plan, host }
    }

    /// Pretty JSON with the same content as the text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|error| format!("{{\"error\": \"cannot serialise the plan: {error}\"}}"))
    }

    /// The human report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out).expect("writing to a String cannot fail");
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        let (topo, plan) = (self.topology, self.plan);
        writeln!(out, "Tachyon placement plan")?;
        writeln!(out, "Topology: {}", self.summary)?;
        for &node in &topo.numa_nodes {
            let cores: Vec<u32> = topo.cores_on_node(node).map(|core| core.id).collect();
            let packages: Vec<u32> = distinct(topo.cores_on_node(node).map(|core| core.package));
            let l3: Vec<u32> = distinct(topo.cores_on_node(node).filter_map(|core| core.l3));
            write!(
                out,
                "  node {node}: package {}, cores {}, CPUs {}",
                format_cpu_list(&packages),
                format_cpu_list(&cores),
                format_cpu_list(&topo.cpus_on_node(node))
            )?;
            if !l3.is_empty() {
                write!(out, ", L3 {}", format_cpu_list(&l3))?;
            }
            writeln!(out)?;
        }

        let lcores: Vec<LcoreId> = self.lcores.lcores.keys().copied().collect();
        writeln!(
            out,
            "EAL lcores: {} ({}), main lcore {}",
            format_cpu_list(&lcores),
            if self.lcores.explicit { "as given" } else { "no lcore option: every CPU" },
            self.lcores.main_lcore
        )?;
        let control = &plan.control;
        writeln!(
            out,
            "Control lcore {}: CPU {}, core {}, node {}; no worker shares its core",
            control.lcore,
            format_cpu_list(&control.cpus),
            format_cpu_list(&control.cores),
            format_cpu_list(&control.numa_nodes)
        )?;

        writeln!(out, "\nPorts ({}):", plan.ports.len())?;
        for port in &plan.ports {
            let node = match (port.numa_node, port.reported_missing_node) {
                (Some(node), _) => format!("node {node}"),
                (None, Some(missing)) => format!("node {missing}? (absent; any node)"),
                (None, None) => "node unknown (any node)".to_string(),
            };
            writeln!(
                out,
                "  port {} {}: {node}, {} RX/TX queue pairs; queue 0.. polled by lcores {}",
                port.port,
                port.name,
                port.queues,
                port.workers.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
            )?;
        }

        writeln!(
            out,
            "\nWorkers ({}), one per physical core; each polls RX and TX queue q of the ports listed:",
            plan.workers.len()
        )?;
        writeln!(out, "  lcore  cpu  core  node  pkg  l3  port:queue")?;
        for worker in &plan.workers {
            let queues: Vec<String> = worker.queues.iter().map(|(port, queue)| format!("{port}:{queue}")).collect();
            let l3 = worker.l3.map_or("-".to_string(), |l3| l3.to_string());
            write!(
                out,
                "  {:<5}  {:<3}  {:<4}  {:<4}  {:<3}  {:<2}  {}",
                worker.lcore,
                worker.cpu,
                worker.core,
                worker.numa_node,
                worker.package,
                l3,
                queues.join(" ")
            )?;
            if !worker.shares_core_with.is_empty() {
                write!(out, "  [SMT: shares core with {}]", format_cpu_list(&worker.shares_core_with))?;
            }
            writeln!(out)?;
        }

        writeln!(out, "\nMempools: one per node in use; RX mbufs and worker arenas on the polling worker's node")?;
        for pool in &plan.mempools {
            writeln!(
                out,
                "  node {}: workers {}; RX queues {}",
                pool.numa_node,
                format_cpu_list(&pool.workers),
                queues_by_port(&pool.rx_queues)
            )?;
        }
        writeln!(out, "Helper threads (metrics, control helpers): CPUs {}", format_cpu_list(&plan.helper_cpus))?;

        if !plan.idle_lcores.is_empty() {
            writeln!(out, "\nIdle lcores ({}; EAL starts them but they get no work):", plan.idle_lcores.len())?;
            let mut groups: Vec<(String, Vec<LcoreId>)> = Vec::new();
            for idle in &plan.idle_lcores {
                let label = idle.reason.group_label();
                match groups.iter_mut().find(|(existing, _)| *existing == label) {
                    Some((_, lcores)) => lcores.push(idle.lcore),
                    None => groups.push((label, vec![idle.lcore])),
                }
            }
            for (label, lcores) in groups {
                writeln!(out, "  lcores {}: {label}", format_cpu_list(&lcores))?;
            }
        }

        writeln!(out, "\nWarnings ({}):", plan.warnings.len())?;
        if plan.warnings.is_empty() {
            writeln!(out, "  none")?;
        }
        for warning in &plan.warnings {
            writeln!(out, "  ! {warning}")?;
        }

        match self.host {
            HostSection::Skipped { why } => writeln!(out, "Host checks: skipped ({why})")?,
            HostSection::Checked { checks } => {
                writeln!(out, "Host checks:")?;
                for check in checks {
                    let status = match check.status {
                        CheckStatus::Ok => "ok",
                        CheckStatus::Warning => "WARN",
                        CheckStatus::Unknown => "unknown",
                    };
                    writeln!(out, "  [{status}] {}: {}", check.check, check.detail)?;
                }
            }
        }

        match &plan.suggested_eal {
            Some(suggestion) => writeln!(out, "\nSuggested EAL arguments: {suggestion}")?,
            None => writeln!(out, "\nEAL lcore arguments: fine as given")?,
        }
        Ok(())
    }
}

/// One line saying what the machine is.
pub fn topology_summary(topo: &Topology) -> String {
    let origin = match &topo.origin {
        TopologyOrigin::ThisSystem => "this machine".to_string(),
        TopologyOrigin::Synthetic(description) => format!("synthetic \"{description}\""),
        TopologyOrigin::Xml(path) => format!("hwloc XML {path}"),
        TopologyOrigin::InMemory => "built in memory".to_string(),
    };
    format!(
        "{origin}: {} package(s), {} NUMA node(s), {} L3 domain(s), {} cores, {} CPUs, {} thread(s) per core",
        topo.packages.len(),
        topo.numa_nodes.len(),
        topo.l3_domains.len(),
        topo.cores.len(),
        topo.all_cpus().len(),
        topo.threads_per_core()
    )
}

fn distinct(values: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut values: Vec<u32> = values.collect();
    values.sort_unstable();
    values.dedup();
    values
}

/// `[(0,0),(0,1),(1,0)]` → `0:0-1 1:0`.
fn queues_by_port(queues: &[(PortId, QueueId)]) -> String {
    let mut by_port: BTreeMap<PortId, Vec<u32>> = BTreeMap::new();
    for &(port, queue) in queues {
        by_port.entry(port).or_default().push(u32::from(queue));
    }
    if by_port.is_empty() {
        return "none".to_string();
    }
    by_port.iter().map(|(port, queues)| format!("{port}:{}", format_cpu_list(queues))).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::eal_args::parse_eal_args;
    use crate::topology::model::{CpuNumbering, RegularShape};
    use crate::topology::plan::{PlanRequest, plan};
    use crate::topology::ports::PortPlacement;

    #[test]
    fn text_and_json_show_the_mapping() {
        let topo = Topology::regular(RegularShape {
            packages: 2,
            nodes_per_package: 1,
            l3_per_node: 1,
            cores_per_l3: 2,
            threads_per_core: 2,
            numbering: CpuNumbering::SiblingsAdjacent,
        });
        let args: Vec<String> = ["-l", "0-7"].map(String::from).to_vec();
        let layout = parse_eal_args(&args).unwrap().lcore_layout(&topo).unwrap();
        let ports = [PortPlacement::on_node("a", 0), PortPlacement::on_node("b", 1)];
        let plan = plan(&topo, &ports, &layout, &PlanRequest::default()).unwrap();
        let host = HostSection::Skipped { why: "test".into() };
        let report = PlanReport::new(&topo, &layout, &plan, &host);
        let text = report.to_text();
        assert!(text.contains("2 package(s), 2 NUMA node(s)"), "{text}");
        assert!(text.contains("  2      2    1     0     0    0   0:0"), "{text}");
        assert!(text.contains("node 1: workers 4,6; RX queues 1:0-1"), "{text}");
        assert!(text.contains("lcores 1: on the core of control lcore 0"), "{text}");
        assert!(text.contains("lcores 3,5,7: SMT siblings"), "{text}");
        assert!(text.contains("Suggested EAL arguments: -l 0,2,4,6 --main-lcore 0"), "{text}");

        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["plan"]["workers"][0]["lcore"], 2);
        assert_eq!(json["plan"]["workers"][0]["queues"][0], serde_json::json!([0, 0]));
        assert_eq!(json["plan"]["ports"][1]["queues"], 2);
    }

    #[test]
    fn queues_group_by_port() {
        assert_eq!(queues_by_port(&[(0, 0), (0, 1), (1, 0)]), "0:0-1 1:0");
        assert_eq!(queues_by_port(&[]), "none");
    }
}
