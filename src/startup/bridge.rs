//! The bridge region: created once the worker count is known (one shard per
//! worker), and one [`BridgeStage`] per worker built from it.

use super::StartupError;
use super::pools::PlannedPool;
use super::ports::PortSetup;
use crate::bridge::{BridgeEgress, BridgeHost, BridgeSettings, BridgeStage, default_path};
use crate::cli::Options;
use crate::config::Config;
use crate::dataplane::routes::RouteTable;
use crate::wire::FrameHeaders;
use std::time::Duration;

/// Ethernet MTU of bridge frames, plus the 14-byte Ethernet header.
const MAX_FRAME: usize = 1500 + crate::wire::ethernet::HEADER_LEN;

/// The bridge's settings and region, unless `--no-bridge` or `[bridge] enabled = false`.
pub(super) struct BridgePlane {
    pub host: BridgeHost,
    settings: BridgeSettings,
}

/// Creates the region: `--bridge PATH`, else `[bridge] path`, else the
/// default path for EAL's `--file-prefix`.
pub(super) fn create(
    options: &Options,
    config: &Config,
    eal_args: &[String],
    workers: usize,
) -> Result<Option<BridgePlane>, StartupError> {
    if options.no_bridge || (!config.bridge.enabled && options.bridge.is_none()) {
        return Ok(None);
    }
    let settings = config.bridge.settings().map_err(StartupError::Config)?;
    let path = options.bridge.clone().or_else(|| config.bridge.path.clone()).unwrap_or_else(|| default_path(eal_args));
    let host = BridgeHost::create(&path, &settings, workers as u32)
        .map_err(|e| StartupError::Bridge(format!("bridge {}: {e}", path.display())))?;
    if host.replaced_stale() {
        crate::log_err!(
            "tachyon: bridge: replaced a stale region left at {} by an appliance that is gone",
            path.display()
        );
    }
    crate::log_err!("tachyon: bridge at {} ({workers} shard(s), mode {:o})", path.display(), settings.mode);
    Ok(Some(BridgePlane { host, settings }))
}

impl BridgePlane {
    /// Worker `index`'s stage: its shard's ring and subscriber writers, its
    /// node's mempool, and where bridge frames leave (`[bridge] egress_port`,
    /// else the first port).
    pub fn stage_for(
        &self,
        index: usize,
        lcore: u32,
        pools: &[PlannedPool],
        ports: &[PortSetup],
        routes: &RouteTable,
        tachyon_port: u16,
    ) -> Result<BridgeStage, StartupError> {
        let s = &self.settings;
        let (ingress, fanout) = self
            .host
            .take_shard(index as u32)
            .ok_or_else(|| StartupError::Bridge(format!("bridge: shard {index} handed out twice")))?;
        let mut ingress = ingress;
        ingress.set_unblock_timeout(Duration::from_nanos(s.unblock_timeout_ns));
        let pool = pools
            .iter()
            .find(|p| p.plan.workers.contains(&lcore))
            .or(pools.first())
            .ok_or_else(|| StartupError::Bridge("bridge: no mempool".into()))?
            .pool
            .clone();
        let port = s.egress_port.unwrap_or_else(|| ports[0].port.id());
        let (slot, src_mac) = routes.egress(port).ok_or_else(|| {
            StartupError::Bridge(format!("bridge.egress_port: port {port} is not one of the appliance's ports"))
        })?;
        let egress = BridgeEgress { slot, port, src_mac, next_hop: s.next_hop };
        let template = FrameHeaders {
            dst_mac: s.next_hop,
            src_mac,
            vlan: None,
            src_ip: s.source_ip,
            dst_ip: s.destination_ip,
            src_port: s.udp_source_port,
            dst_port: tachyon_port,
            topic_id: 0,
            sender_id: 0,
            seq: 0,
            timestamp_ns: None,
        };
        Ok(BridgeStage::new(ingress, fanout, pool, egress, template, MAX_FRAME, s.drain_budget).with_to_wire(s.to_wire))
    }
}
