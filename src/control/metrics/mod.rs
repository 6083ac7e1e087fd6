//! Prometheus metrics, computed at scrape time on the control side from what
//! the workers already publish (their [`PublishedCounters`] blocks), from
//! the ports' counters, the mempools and the bridge region's control words. A scrape only reads: no worker
//! takes a lock, a shared atomic or a syscall for it.
//!
//! [`PublishedCounters`]: crate::dataplane::counters::PublishedCounters

mod bridge;
mod collector;
mod governance;
mod http;

pub use collector::{Exposition, MempoolSource, MetricsSources, PortSource};
pub use governance::{GovernanceSnapshot, GovernanceSource, NoGovernance, ReconcileStatus, RuleHits, Safeguards};
pub use http::{MetricsError, MetricsListener, MetricsServer};

/// Every metric name starts with this (then `_`).
pub const PREFIX: &str = "tachyon";

/// Content type of the OpenMetrics exposition (what Prometheus asks for first).
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic text format (curl, promtool, older scrapers).
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rewrites an OpenMetrics exposition in Prometheus' text format 0.0.4.
///
/// The two differ only where a counter is named: OpenMetrics names the family
/// `x` and its sample `x_total`; the text format names both `x_total` (tools
/// such as `promtool check metrics` read only this one). It also has no `# EOF`
/// and no `# UNIT`.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len() + 8 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters.contains(name).then(|| format!("{tag}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(l.trim_end()),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gain_total_in_the_text_format_and_eof_goes() {
        let om = "# HELP tachyon_x Packets.\n# TYPE tachyon_x counter\ntachyon_x_total{core=\"1\"} 5\n\
                  # HELP tachyon_q Depth.\n# TYPE tachyon_q gauge\ntachyon_q 2\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP tachyon_x_total Packets.\n# TYPE tachyon_x_total counter\ntachyon_x_total{core=\"1\"} 5\n\
             # HELP tachyon_q Depth.\n# TYPE tachyon_q gauge\ntachyon_q 2\n"
        );
    }
}
