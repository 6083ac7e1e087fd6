//! Command line, DPDK style: `tachyon [EAL args] -- [options]`. Everything
//! before `--` goes to EAL untouched; everything after is parsed here, and
//! checked before EAL touches any hardware.

use clap::Parser;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  # Try it on virtual devices, no NIC or hugepages needed:
  tachyon -l 0-1 --no-huge -m 512 --no-pci \\
      --vdev net_pcap0,rx_pcap=traffic.pcap,infinite_rx=1 --vdev net_null0,no-rx=1 \\
      -- --duration 5

  # A real NIC bound to vfio-pci, four workers, a config file:
  tachyon -l 0-4 -a 0000:03:00.0 -- --config /etc/tachyon/tachyon.toml --stats-json /tmp/stats.json

  # Only print the placement plan (no hugepages, no NIC needed):
  tachyon -l 0-4 -- --plan

EAL's main lcore is the control lcore; workers run on the other enabled lcores that the placement
plan accepts (one per physical core; see --plan), or on [workers] lcores from the config.
SIGHUP (or the telemetry command /tachyon/reload) reloads [governance] from the config file.
Config reference and examples: dpdk-config/.";

/// Tachyon: a DPDK data plane that governs a Tachyon message bus.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "tachyon",
    version,
    override_usage = "tachyon [EAL args] -- [OPTIONS]",
    after_help = EXAMPLES
)]
pub struct Options {
    /// TOML config file (ports, workers, data plane, governance); defaults apply without it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Stop after this many seconds; 0 runs until SIGINT/SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub duration: u64,

    /// Write the final counters (totals, per worker, drops per reason) as JSON here on exit.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,

    /// Do not print the live stats line.
    #[arg(long)]
    pub quiet: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics (overrides `[metrics] listen`;
    /// default 127.0.0.1:9898; port 0 picks a free port).
    #[arg(long, value_name = "ADDR", conflicts_with = "no_metrics")]
    pub metrics: Option<String>,

    /// Do not serve Prometheus metrics (overrides `[metrics] enabled`).
    #[arg(long)]
    pub no_metrics: bool,

    // The help text is an attribute, not a doc comment: rustdoc would read
    // <file-prefix> as an HTML tag.
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "no_bridge",
        help = "Create the shared-memory bridge at PATH (overrides `[bridge] path`; \
                default /dev/shm/tachyon-<file-prefix>.bridge)"
    )]
    pub bridge: Option<std::path::PathBuf>,

    /// No shared-memory bridge: only the NIC reaches the data plane (overrides `[bridge] enabled`).
    #[arg(long)]
    pub no_bridge: bool,

    /// Print the worker placement plan (topology, lcore -> core/node -> port queues,
    /// mempool nodes, warnings) and exit; needs neither hugepages nor NICs.
    #[arg(long)]
    pub plan: bool,

    /// With --plan: print the plan as JSON.
    #[arg(long, requires = "plan")]
    pub plan_json: bool,

    // An attribute, not a doc comment: rustdoc would read [[ports]] as a link.
    #[arg(
        long,
        value_name = "NAME@NODE",
        requires = "plan",
        help = "With --plan: a port as NAME@NODE (or NAME@any), repeatable, in port-id order. \
                Default: [[ports]] of the config, else EAL's -a/--vdev devices"
    )]
    pub plan_port: Vec<String>,

    /// Number of workers to plan for (default: every enabled lcore the placement rules allow).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,

    /// Allow two workers on SMT siblings of one physical core (warned about loudly).
    #[arg(long)]
    pub allow_smt: bool,

    /// Allow a worker to poll a port on another NUMA node (named in the plan).
    #[arg(long)]
    pub allow_cross_node: bool,
}

impl Options {
    /// The placement request these options make.
    pub fn plan_request(&self) -> crate::topology::PlanRequest {
        crate::topology::PlanRequest {
            workers: self.workers,
            allow_smt: self.allow_smt,
            allow_cross_node: self.allow_cross_node,
        }
    }
}

/// The EAL half (program name first) and the application half of argv.
#[derive(Debug, PartialEq, Eq)]
pub struct SplitArgs {
    pub eal: Vec<String>,
    pub app: Vec<String>,
    /// Whether a `--` separated the two halves.
    pub had_separator: bool,
}

/// Splits argv at the first `--`. Without one, every argument is the
/// application's (so `tachyon --help` works) and EAL gets none.
pub fn split_args(argv: &[String]) -> SplitArgs {
    let prog = argv.first().cloned().unwrap_or_else(|| "tachyon".into());
    let rest = argv.get(1..).unwrap_or(&[]);
    match rest.iter().position(|a| a == "--") {
        Some(i) => SplitArgs {
            eal: std::iter::once(prog.clone()).chain(rest[..i].iter().cloned()).collect(),
            app: std::iter::once(prog).chain(rest[i + 1..].iter().cloned()).collect(),
            had_separator: true,
        },
        None => SplitArgs {
            eal: vec![prog.clone()],
            app: std::iter::once(prog).chain(rest.iter().cloned()).collect(),
            had_separator: false,
        },
    }
}

/// Whether the EAL arguments ask for memory without hugepages.
pub fn eal_uses_no_huge(eal: &[String]) -> bool {
    eal.iter().any(|a| a == "--no-huge")
}

/// Free hugepages over every page size, from sysfs; None when unreadable.
pub fn free_hugepages() -> Option<u64> {
    let dir = std::fs::read_dir("/sys/kernel/mm/hugepages").ok()?;
    let mut total = 0;
    for e in dir.flatten() {
        let v = std::fs::read_to_string(e.path().join("free_hugepages")).ok()?;
        total += v.trim().parse::<u64>().ok()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn splits_at_the_first_separator() {
        let s = split_args(&v(&["tachyon", "-l", "0-1", "--", "--duration", "3", "--", "x"]));
        assert_eq!(s.eal, v(&["tachyon", "-l", "0-1"]));
        assert_eq!(s.app, v(&["tachyon", "--duration", "3", "--", "x"]));
        assert!(s.had_separator);
    }

    #[test]
    fn without_separator_everything_is_ours() {
        let s = split_args(&v(&["tachyon", "--help"]));
        assert_eq!(s.eal, v(&["tachyon"]));
        assert_eq!(s.app, v(&["tachyon", "--help"]));
        assert!(!s.had_separator);
    }

    #[test]
    fn options_parse() {
        let o = Options::try_parse_from(v(&["tachyon", "--duration", "5", "--stats-json", "/tmp/s.json"])).unwrap();
        assert_eq!(o.duration, 5);
        assert!(Options::try_parse_from(v(&["tachyon", "--duration", "soon"])).is_err());
        let o = Options::try_parse_from(v(&["tachyon", "--metrics", "127.0.0.1:0"])).unwrap();
        assert_eq!(o.metrics.as_deref(), Some("127.0.0.1:0"));
        assert!(Options::try_parse_from(v(&["tachyon", "--metrics", "x", "--no-metrics"])).is_err());
    }
}
