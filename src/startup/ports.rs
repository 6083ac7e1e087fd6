//! Ports: opened (capabilities logged), then configured with the layout's RX
//! queues (each drawing from its worker's pool) and one TX queue per worker,
//! and started.

use super::StartupError;
use super::layout::WorkerLayout;
use super::shutdown::DataPlane;
use crate::config::{Config, RouteSpec};
use crate::dataplane::routes::MAX_PORTS;
use crate::dpdk::{Eal, Mempool, MtuSetup, Port, PortCaps, PortConfig, RssSupport, format_mac};
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
        let rx_buf = rx_pools.iter().map(|p| p.data_room()).min().unwrap_or(crate::dpdk::MBUF_DATA_ROOM);
        let mtu = s.port.caps().mtu_setup(d.mtu, rx_buf);
        warn_about_mtu(s.port.id(), s.port.caps(), &mtu, rx_buf);
        let cfg = PortConfig {
            rx_queues,
            tx_queues,
            rx_desc: d.rx_descriptors,
            tx_desc: d.tx_descriptors,
            rx_ip_checksum_offload: d.verify_ip_checksum,
            mtu,
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
            "tachyon: port {} started: {} RX / {} TX queue(s), {rss_text}, MTU {}{}; link {} {} Mbps -> egress port {} next hop {}",
            s.port.id(),
            rx_queues,
            tx_queues,
            mtu.mtu,
            chains_text(&mtu),
            if link.up { "up" } else { "down" },
            link.speed_mbps,
            s.route.egress,
            format_mac(&s.route.next_hop)
        );
    }
    Ok(())
}

/// How the port takes frames longer than one mbuf, for its start line.
fn chains_text(mtu: &MtuSetup) -> &'static str {
    match (mtu.needs_chains, mtu.rx_scatter, mtu.tx_multi_segs) {
        (false, _, _) => "",
        (true, true, true) => " (RX scatter, TX chains)",
        (true, true, false) => " (RX scatter)",
        (true, false, true) => " (TX chains)",
        (true, false, false) => " (frames longer than an mbuf as the driver delivers them)",
    }
}

/// Says at startup what a port cannot do at the configured MTU. A warning,
/// not an error: the appliance forwards every frame a port delivers,
/// chained or not, and several virtual devices (net_memif: max_rx_pktlen
/// 1518; net_pcap: no scatter flag) under-report what they carry; a real NIC
/// that refuses a larger frame counts it in its own `rx_errors`, which
/// /metrics shows per port. Refusing to start would lose the traffic that
/// does fit.
fn warn_about_mtu(id: u16, caps: &PortCaps, mtu: &MtuSetup, rx_buf: u16) {
    if let Some(asked) = mtu.refused {
        crate::log_err!(
            "tachyon: WARNING: port {id} ({}) takes an MTU of at most {} by its own account, below [dataplane] mtu = {asked}: \
             configured with MTU {}; larger frames are forwarded only if the driver still delivers them, \
             others it drops (tachyon_port_rx_errors_total)",
            caps.driver,
            caps.max_mtu,
            mtu.mtu
        );
    }
    if mtu.needs_chains && !(mtu.rx_scatter && mtu.tx_multi_segs) {
        let missing: Vec<&str> = [(!mtu.rx_scatter, "RX scatter"), (!mtu.tx_multi_segs, "TX multi-segment")]
            .into_iter()
            .filter_map(|(lacks, what)| lacks.then_some(what))
            .collect();
        crate::log_err!(
            "tachyon: WARNING: port {id} ({}) does not offer {}: frames over {rx_buf} bytes (one mbuf) at MTU {} \
             pass only if the driver chains them itself (net_pcap and net_memif do); \
             others the port drops (tachyon_port_rx_errors_total, tachyon_port_tx_errors_total)",
            caps.driver,
            missing.join(" or "),
            mtu.mtu
        );
    }
}

/// Bit p set when port p's link is up.
pub(super) fn links_mask(ports: &[PortSetup]) -> u64 {
    ports.iter().filter(|s| s.port.link().up).fold(0, |m, s| m | 1 << s.port.id())
}
