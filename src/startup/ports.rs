//! Ports: opened (capabilities logged), then configured with the layout's RX
//! queues (each drawing from its worker's pool) and one TX queue per worker,
//! and started.

use super::StartupError;
use super::layout::WorkerLayout;
use super::shutdown::DataPlane;
use crate::config::{Config, RouteSpec};
use crate::dataplane::routes::MAX_PORTS;
use crate::dpdk::{Eal, Mempool, Port, PortConfig, RssSupport, format_mac};
use crate::topology::PortPlacement;

/// A port opened for the run, and where its traffic goes.
pub(super) struct PortSetup {
    pub port: Port,
    pub route: RouteSpec,
}

/// Opens every port the config routes (into the guard, so an error closes them).
pub(super) fn open(eal: &Eal, config: &Config, dp: &mut DataPlane) -> Result<(), StartupError> {
    let routes = config.routes(&Port::probed_ids(eal)).map_err(|e| StartupError::Config(e.to_string()))?;
    crate::log_err!(
        "tachyon: {}; control lcore {}, {} port(s)",
        crate::dpdk::version(),
        eal.main_lcore(),
        routes.len()
    );
    for route in routes {
        let port = Port::open(eal, route.ingress)?;
        let c = port.caps();
        crate::log_err!(
            "tachyon: port {} {} driver={} mac={} socket={} max_queues=rx{}/tx{} rss_offloads={:#x}",
            port.id(),
            c.name,
            c.driver,
            format_mac(&c.mac),
            c.socket,
            c.max_rx_queues,
            c.max_tx_queues,
            c.rss_offloads
        );
        dp.ports.push(PortSetup { port, route });
    }
    if dp.ports.iter().any(|s| s.route.ingress as usize >= MAX_PORTS || s.route.egress as usize >= MAX_PORTS) {
        return Err(StartupError::PortIdTooLarge { max: MAX_PORTS - 1 });
    }
    Ok(())
}

/// The opened ports as the placement plan sees them (position = plan port id).
pub(super) fn placements(ports: &[PortSetup]) -> Vec<PortPlacement> {
    ports.iter().map(|s| PortPlacement::from_dpdk_socket(s.port.caps().name.clone(), s.port.caps().socket)).collect()
}

/// Configures and starts every port of the guard for `layout`, from the guard's pools.
pub(super) fn configure_and_start(
    dp: &mut DataPlane,
    layout: &WorkerLayout,
    config: &Config,
) -> Result<(), StartupError> {
    let d = &config.dataplane;
    let tx_queues = layout.lcores.len() as u16;
    for (pos, s) in dp.ports.iter_mut().enumerate() {
        let rx_queues = layout.rx_queues_of(pos).max(1);
        let rx_pools: Vec<&Mempool> = (0..rx_queues).map(|q| &*dp.pools[layout.pool_index_for(pos, q)].pool).collect();
        let cfg = PortConfig {
            rx_queues,
            tx_queues,
            rx_desc: d.rx_descriptors,
            tx_desc: d.tx_descriptors,
            rx_ip_checksum_offload: d.verify_ip_checksum,
        };
        let rss = s.port.configure_per_queue(&cfg, &rx_pools)?;
        s.port.start()?;
        let link = s.port.link();
        let rss_text = match rss {
            RssSupport::SingleQueue => "single queue".to_string(),
            RssSupport::Hashing(hf) => format!("RSS over IP/UDP (hf {hf:#x})"),
            RssSupport::Unsupported => "several queues, device cannot hash (RSS off)".to_string(),
        };
        crate::log_err!(
            "tachyon: port {} started: {} RX / {} TX queue(s), {rss_text}; link {} {} Mbps -> egress port {} next hop {}",
            s.port.id(),
            rx_queues,
            tx_queues,
            if link.up { "up" } else { "down" },
            link.speed_mbps,
            s.route.egress,
            format_mac(&s.route.next_hop)
        );
    }
    Ok(())
}

/// Bit p set when port p's link is up.
pub(super) fn links_mask(ports: &[PortSetup]) -> u64 {
    ports.iter().filter(|s| s.port.link().up).fold(0, |m, s| m | 1 << s.port.id())
}
