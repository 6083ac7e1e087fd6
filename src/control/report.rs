//! The final counters: printed at exit and written as `--stats-json`.

use crate::dataplane::counters::{Counter, Snapshot};
use crate::dataplane::reason::DropReason;
use crate::dpdk::PortStats;
use serde_json::{Value, json};

pub struct WorkerReport {
    pub index: usize,
    pub lcore: u32,
    pub socket: u32,
    pub counters: Snapshot,
}

pub struct PortReport {
    pub id: u16,
    pub name: String,
    pub mac: [u8; 6],
    pub stats: PortStats,
}

pub struct MempoolReport {
    pub socket: i32,
    pub size: u32,
    /// Mbufs not back in the pool after the ports were closed (0 = no leak).
    pub in_use: u32,
    pub available: u32,
}

pub struct FinalReport {
    pub duration_secs: f64,
    pub workers: Vec<WorkerReport>,
    pub ports: Vec<PortReport>,
    pub mempools: Vec<MempoolReport>,
    /// Generation, reloads, rule hits and reconciliation figures.
    pub governance: Value,
    /// The bridge region's counters at the end (`null` without a bridge).
    pub bridge: Value,
}

impl FinalReport {
    pub fn totals(&self) -> Snapshot {
        self.workers.iter().fold(Snapshot::default(), |a, w| a.plus(&w.counters))
    }

    /// Totals, drops per reason (every PROTOCOL.md name), per worker, per port, per mempool.
    pub fn to_json(&self) -> Value {
        let totals = self.totals();
        json!({
            "duration_secs": self.duration_secs,
            "totals": totals.to_json(),
            "drops": totals.drops_json(),
            "workers": self.workers.iter().map(|w| {
                let mut v = w.counters.to_json();
                v["worker"] = w.index.into();
                v["lcore"] = w.lcore.into();
                v["socket"] = w.socket.into();
                v
            }).collect::<Vec<_>>(),
            "ports": self.ports.iter().map(|p| json!({
                "port": p.id,
                "name": p.name,
                "mac": crate::dpdk::format_mac(&p.mac),
                "rx_packets": p.stats.rx_packets,
                "tx_packets": p.stats.tx_packets,
                "rx_bytes": p.stats.rx_bytes,
                "tx_bytes": p.stats.tx_bytes,
                "rx_missed": p.stats.rx_missed,
                "rx_errors": p.stats.rx_errors,
                "tx_errors": p.stats.tx_errors,
                "rx_nombuf": p.stats.rx_nombuf,
            })).collect::<Vec<_>>(),
            "governance": self.governance,
            "bridge": self.bridge,
            "mempools": self.mempools.iter().map(|m| json!({
                "socket": m.socket,
                "size": m.size,
                "in_use_after_shutdown": m.in_use,
                "available_after_shutdown": m.available,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Prints the final counters for a person.
pub fn print_final(r: &FinalReport) {
    let t = r.totals();
    let secs = r.duration_secs.max(1e-9);
    crate::log_out!("tachyon: final counters after {:.1}s", r.duration_secs);
    crate::log_out!(
        "  total   rx {} tx {} dropped {} | msgs received {} admitted {} | avg {:.3} Mpps in",
        t.get(Counter::RxPackets),
        t.get(Counter::TxPackets),
        t.dropped_total(),
        t.get(Counter::MsgsReceived),
        t.get(Counter::MsgsAdmitted),
        t.get(Counter::RxPackets) as f64 / secs / 1e6
    );
    for w in &r.workers {
        let c = &w.counters;
        crate::log_out!(
            "  worker {} (lcore {}, socket {}) rx {} tx {} dropped {}",
            w.index,
            w.lcore,
            w.socket,
            c.get(Counter::RxPackets),
            c.get(Counter::TxPackets),
            c.dropped_total()
        );
    }
    for reason in DropReason::ALL {
        let n = t.drops(reason);
        if n > 0 {
            crate::log_out!("  drop {:<15} {n}", reason.name());
        }
    }
    for p in &r.ports {
        crate::log_out!(
            "  port {} {} rx {} tx {} missed {} rx_errors {} rx_nombuf {}",
            p.id,
            p.name,
            p.stats.rx_packets,
            p.stats.tx_packets,
            p.stats.rx_missed,
            p.stats.rx_errors,
            p.stats.rx_nombuf
        );
    }
    for m in &r.mempools {
        crate::log_out!("  mempool socket {} size {} in use after shutdown {}", m.socket, m.size, m.in_use);
    }
}
