//! Ethernet ports: capabilities, configuration (queues, RSS, descriptors),
//! start/stop/close, link state and counters, and the per-queue handles that
//! the worker lcores own.

use super::{Eal, Mempool, PortError, sys};
use std::ffi::CStr;

/// What a port can do, read from `rte_eth_dev_info_get`.
#[derive(Clone, Debug)]
pub struct PortCaps {
    pub driver: String,
    pub name: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rss_offloads: u64,
    pub rx_offloads: u64,
    pub tx_offloads: u64,
    /// The largest MTU the port takes by its own account (`max_mtu`, bounded
    /// by `max_rx_pktlen` less the L2 overhead, as ethdev checks it).
    pub max_mtu: u16,
    pub min_mtu: u16,
    pub socket: i32,
    pub mac: [u8; 6],
}

/// Ethernet header and CRC: what ethdev adds to an MTU to get a frame
/// length when the driver does not say otherwise.
const DEFAULT_L2_OVERHEAD: u32 = 18;

/// Longest frame at `mtu` the port may hand over: Ethernet header, one VLAN
/// tag and the CRC around the IP packet.
pub const fn max_frame_len(mtu: u16) -> u32 {
    mtu as u32 + DEFAULT_L2_OVERHEAD + 4
}

/// How a port is set up for the configured MTU, decided from its
/// capabilities (see [`PortCaps::mtu_setup`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MtuSetup {
    /// The MTU the port is configured with: the one asked, or the port's
    /// own maximum when that is lower.
    pub mtu: u16,
    /// The MTU asked, when the port could not take it.
    pub refused: Option<u16>,
    /// A frame at this MTU can be longer than one RX buffer: it arrives as
    /// an mbuf chain, if the port delivers it at all.
    pub needs_chains: bool,
    /// RX scatter turned on (the port offers it and chains are needed).
    pub rx_scatter: bool,
    /// TX of mbuf chains turned on (offered and needed).
    pub tx_multi_segs: bool,
}

impl PortCaps {
    /// The MTU setup for `mtu` with RX buffers of `rx_buf_len` data bytes.
    pub fn mtu_setup(&self, mtu: u16, rx_buf_len: u16) -> MtuSetup {
        let configured = mtu.min(self.max_mtu).max(self.min_mtu);
        let needs_chains = max_frame_len(configured) > rx_buf_len as u32;
        let scatter = sys::RTE_ETH_RX_OFFLOAD_SCATTER as u64;
        let multi_segs = sys::RTE_ETH_TX_OFFLOAD_MULTI_SEGS as u64;
        MtuSetup {
            mtu: configured,
            refused: (configured != mtu).then_some(mtu),
            needs_chains,
            rx_scatter: needs_chains && self.rx_offloads & scatter != 0,
            tx_multi_segs: needs_chains && self.tx_offloads & multi_segs != 0,
        }
    }
}

/// The port's largest MTU from its device info, as `rte_eth_dev_configure`
/// validates it: `max_mtu`, and `max_rx_pktlen` less the L2 overhead.
fn port_max_mtu(info: &sys::rte_eth_dev_info) -> u16 {
    let overhead = if info.max_mtu != u16::MAX && info.max_rx_pktlen > info.max_mtu as u32 {
        info.max_rx_pktlen - info.max_mtu as u32
    } else {
        DEFAULT_L2_OVERHEAD
    };
    let by_frame = info.max_rx_pktlen.saturating_sub(overhead).min(u16::MAX as u32) as u16;
    info.max_mtu.min(by_frame)
}

/// How RSS ended up configured on a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RssSupport {
    /// One queue: nothing to spread.
    SingleQueue,
    /// Hashing over these `RTE_ETH_RSS_*` flags.
    Hashing(u64),
    /// Several queues but the device cannot hash (virtual devices): each
    /// queue gets what the device puts on it.
    Unsupported,
}

/// What [`Port::configure`] is asked for.
#[derive(Clone, Copy, Debug)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Let the NIC verify IPv4 header checksums when it can.
    pub rx_ip_checksum_offload: bool,
    /// MTU, RX scatter and TX chains, from [`PortCaps::mtu_setup`].
    pub mtu: MtuSetup,
}

/// Link state as reported without waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// Port counters from `rte_eth_stats_get`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_nombuf: u64,
}

/// The only handle to one RX queue; owned by the worker that polls it.
pub struct RxQueue {
    pub(super) port: u16,
    pub(super) queue: u16,
}

/// The only handle to one TX queue; owned by the worker that sends on it.
pub struct TxQueue {
    pub(super) port: u16,
    pub(super) queue: u16,
}

impl RxQueue {
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn queue(&self) -> u16 {
        self.queue
    }
    /// Descriptors filled and waiting (-1 when the driver cannot tell).
    pub fn depth(&self) -> i32 {
        // SAFETY: read-only query on a configured queue; drivers without
        // support return -ENOTSUP.
        unsafe { sys::tachyon_rx_queue_count(self.port, self.queue) }
    }
}

impl TxQueue {
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

/// Reads one port's counters and link state from any thread, at any time:
/// it holds only the port id, which ethdev checks on every call, so a read
/// after the port was closed finds nothing instead of touching freed state.
/// DPDK's own telemetry reads ports from its thread the same way.
#[derive(Clone, Copy, Debug)]
pub struct PortReader {
    id: u16,
}

impl PortReader {
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Link state, without waiting; down once the port is closed.
    pub fn link(&self) -> LinkStatus {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: ethdev validates the id (-ENODEV otherwise, leaving `link`
        // zeroed); link is an out-parameter.
        unsafe { sys::rte_eth_link_get_nowait(self.id, &mut link) };
        LinkStatus {
            up: link.link_status() == sys::RTE_ETH_LINK_UP as u16,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() == 1,
        }
    }

    /// The port's counters; all zero once the port is closed.
    pub fn stats(&self) -> PortStats {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: ethdev validates the id (-ENODEV otherwise, leaving `s`
        // zeroed); s is an out-parameter.
        unsafe { sys::rte_eth_stats_get(self.id, &mut s) };
        PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }
}

/// An Ethernet port probed by EAL.
pub struct Port {
    id: u16,
    caps: PortCaps,
    rx_queues: u16,
    tx_queues: u16,
    queues_taken: bool,
    started: bool,
    closed: bool,
}

impl Port {
    /// Every port EAL probed, in id order.
    pub fn probed_ids(_eal: &Eal) -> Vec<u16> {
        (0..sys::RTE_MAX_ETHPORTS as u16)
            // SAFETY: EAL is initialised; the call only reads the port table.
            .filter(|&id| unsafe { sys::rte_eth_dev_is_valid_port(id) } != 0)
            .collect()
    }

    /// Opens port `id` for configuration, reading its capabilities.
    pub fn open(eal: &Eal, id: u16) -> Result<Port, PortError> {
        if !Self::probed_ids(eal).contains(&id) {
            return Err(PortError::NotProbed { id, probed: eal.port_count() });
        }
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: id is a valid port; info is a properly sized out-parameter.
        let rc = unsafe { sys::rte_eth_dev_info_get(id, &mut info) };
        if rc != 0 {
            return Err(PortError::DeviceInfo { id, reason: super::error_text(rc) });
        }
        let driver = if info.driver_name.is_null() {
            String::from("?")
        } else {
            // SAFETY: driver_name is a static NUL-terminated string of the PMD.
            unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
        };
        let mut name_buf = [0 as std::ffi::c_char; 64];
        // SAFETY: name_buf is 64 bytes (RTE_ETH_NAME_MAX_LEN) and id is valid.
        let name = if unsafe { sys::rte_eth_dev_get_name_by_port(id, name_buf.as_mut_ptr()) } == 0 {
            // SAFETY: DPDK wrote a NUL-terminated name into name_buf.
            unsafe { CStr::from_ptr(name_buf.as_ptr()) }.to_string_lossy().into_owned()
        } else {
            format!("port{id}")
        };
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: id is valid; addr is an out-parameter.
        unsafe { sys::rte_eth_macaddr_get(id, &mut addr) };
        // SAFETY: id is valid.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
        let caps = PortCaps {
            driver,
            name,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            rx_offloads: info.rx_offload_capa,
            tx_offloads: info.tx_offload_capa,
            max_mtu: port_max_mtu(&info),
            min_mtu: info.min_mtu,
            socket,
            mac: addr.addr_bytes,
        };
        Ok(Port { id, caps, rx_queues: 0, tx_queues: 0, queues_taken: false, started: false, closed: false })
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn caps(&self) -> &PortCaps {
        &self.caps
    }

    /// Configures the RX and TX queues (RSS over IP/UDP when the device can
    /// hash and there are several RX queues), their descriptors, and RX
    /// buffers from `pool`.
    pub fn configure(&mut self, cfg: &PortConfig, pool: &Mempool) -> Result<RssSupport, PortError> {
        self.configure_per_queue(cfg, &vec![pool; usize::from(cfg.rx_queues)])
    }

    /// As [`Port::configure`], with RX queue `q`'s buffers from `rx_pools[q]`
    /// (e.g. the pool on the NUMA node of the worker that polls it).
    pub fn configure_per_queue(&mut self, cfg: &PortConfig, rx_pools: &[&Mempool]) -> Result<RssSupport, PortError> {
        let id = self.id;
        let caps = &self.caps;
        if cfg.rx_queues == 0 || cfg.rx_queues > caps.max_rx_queues || cfg.tx_queues > caps.max_tx_queues {
            return Err(PortError::TooManyQueues {
                id,
                name: caps.name.clone(),
                rx: cfg.rx_queues,
                tx: cfg.tx_queues,
                max_rx: caps.max_rx_queues,
                max_tx: caps.max_tx_queues,
            });
        }
        let pool_of = |q: u16| {
            rx_pools.get(usize::from(q)).copied().ok_or(PortError::NoRxPool {
                id,
                queue: q,
                pools: rx_pools.len(),
                queues: cfg.rx_queues,
            })
        };
        // Checked before touching the device, so a short list fails cleanly.
        pool_of(cfg.rx_queues - 1)?;
        let mut conf = sys::rte_eth_conf::default();
        let wanted_rss = (sys::RTE_ETH_RSS_IP | sys::RTE_ETH_RSS_UDP) as u64;
        let rss = if cfg.rx_queues == 1 {
            RssSupport::SingleQueue
        } else if caps.rss_offloads & wanted_rss != 0 {
            let hf = caps.rss_offloads & wanted_rss;
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
            RssSupport::Hashing(hf)
        } else {
            RssSupport::Unsupported
        };
        let cksum = sys::RTE_ETH_RX_OFFLOAD_IPV4_CKSUM as u64;
        if cfg.rx_ip_checksum_offload && caps.rx_offloads & cksum != 0 {
            conf.rxmode.offloads |= cksum;
        }
        conf.rxmode.mtu = cfg.mtu.mtu as u32;
        if cfg.mtu.rx_scatter {
            conf.rxmode.offloads |= sys::RTE_ETH_RX_OFFLOAD_SCATTER as u64;
        }
        if cfg.mtu.tx_multi_segs {
            conf.txmode.offloads |= sys::RTE_ETH_TX_OFFLOAD_MULTI_SEGS as u64;
        }
        // SAFETY: id is valid and stopped; conf is fully initialised.
        let rc = unsafe { sys::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf) };
        if rc != 0 {
            return Err(PortError::Configure {
                id,
                rx: cfg.rx_queues,
                tx: cfg.tx_queues,
                mtu: cfg.mtu.mtu,
                reason: super::error_text(rc),
            });
        }
        let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: id is valid; the call clamps the counts to the device limits.
        let rc = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rx_desc, &mut tx_desc) };
        if rc != 0 {
            return Err(PortError::Descriptors { id, reason: super::error_text(rc) });
        }
        // A port of unknown node puts each ring on its queue's pool's node.
        let ring_socket = |pool: &Mempool| if self.caps.socket < 0 { pool.socket() } else { self.caps.socket };
        for q in 0..cfg.rx_queues {
            let pool = pool_of(q)?;
            let socket = ring_socket(pool);
            // SAFETY: id/q are in range after configure; a NULL rxconf means the
            // driver's defaults; pool outlives the port (closed before pool drops).
            let rc =
                unsafe { sys::rte_eth_rx_queue_setup(id, q, rx_desc, socket as u32, std::ptr::null(), pool.as_ptr()) };
            if rc != 0 {
                return Err(PortError::RxQueueSetup { id, queue: q, reason: super::error_text(rc) });
            }
        }
        let socket = ring_socket(pool_of(0)?);
        for q in 0..cfg.tx_queues {
            // SAFETY: id/q are in range after configure; NULL txconf means the driver's defaults.
            let rc = unsafe { sys::rte_eth_tx_queue_setup(id, q, tx_desc, socket as u32, std::ptr::null()) };
            if rc != 0 {
                return Err(PortError::TxQueueSetup { id, queue: q, reason: super::error_text(rc) });
            }
        }
        self.rx_queues = cfg.rx_queues;
        self.tx_queues = cfg.tx_queues;
        Ok(rss)
    }

    /// Starts the port and turns on promiscuous mode (an appliance sees all frames).
    pub fn start(&mut self) -> Result<(), PortError> {
        // SAFETY: the port is configured.
        let rc = unsafe { sys::rte_eth_dev_start(self.id) };
        if rc != 0 {
            return Err(PortError::Start { id: self.id, reason: super::error_text(rc) });
        }
        // Some virtual devices do not implement promiscuous mode; that is harmless.
        // SAFETY: the port is started.
        unsafe { sys::rte_eth_promiscuous_enable(self.id) };
        self.started = true;
        Ok(())
    }

    /// Hands out the RX and TX queue handles, once, so each queue has exactly one owner.
    pub fn take_queues(&mut self) -> (Vec<Option<RxQueue>>, Vec<Option<TxQueue>>) {
        if self.queues_taken {
            return (Vec::new(), Vec::new());
        }
        self.queues_taken = true;
        (
            (0..self.rx_queues).map(|q| Some(RxQueue { port: self.id, queue: q })).collect(),
            (0..self.tx_queues).map(|q| Some(TxQueue { port: self.id, queue: q })).collect(),
        )
    }

    /// Link state, without waiting for auto-negotiation.
    pub fn link(&self) -> LinkStatus {
        self.reader().link()
    }

    /// The port's hardware counters.
    pub fn stats(&self) -> PortStats {
        self.reader().stats()
    }

    /// A read-only handle for other threads (the metrics server).
    pub fn reader(&self) -> PortReader {
        PortReader { id: self.id }
    }

    /// Stops the port; its drivers release the mbufs held in RX rings.
    pub fn stop(&mut self) {
        if self.started {
            // SAFETY: no worker polls the port any more (all lcores joined).
            unsafe { sys::rte_eth_dev_stop(self.id) };
            self.started = false;
        }
    }

    /// Stops (if needed) and closes the port, releasing its queues.
    pub fn close(mut self) {
        self.stop();
        // SAFETY: the port is stopped and no queue handle is used any more.
        unsafe { sys::rte_eth_dev_close(self.id) };
        self.closed = true;
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if !self.closed {
            self.stop();
            // SAFETY: as in close().
            unsafe { sys::rte_eth_dev_close(self.id) };
        }
    }
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(max_mtu: u16, rx_offloads: u64, tx_offloads: u64) -> PortCaps {
        PortCaps {
            driver: "net_test".into(),
            name: "test0".into(),
            max_rx_queues: 1,
            max_tx_queues: 1,
            rss_offloads: 0,
            rx_offloads,
            tx_offloads,
            max_mtu,
            min_mtu: 68,
            socket: 0,
            mac: [0; 6],
        }
    }

    #[test]
    fn the_default_mtu_fits_one_mbuf_and_needs_no_offload() {
        let scatter = sys::RTE_ETH_RX_OFFLOAD_SCATTER as u64;
        let s = caps(9000, scatter, 0).mtu_setup(1500, 2048);
        assert_eq!(
            s,
            MtuSetup { mtu: 1500, refused: None, needs_chains: false, rx_scatter: false, tx_multi_segs: false }
        );
    }

    #[test]
    fn a_jumbo_mtu_turns_on_the_offloads_a_port_offers() {
        let (scatter, multi) = (sys::RTE_ETH_RX_OFFLOAD_SCATTER as u64, sys::RTE_ETH_TX_OFFLOAD_MULTI_SEGS as u64);
        let both = caps(9600, scatter, multi).mtu_setup(9000, 2048);
        assert_eq!(
            (both.mtu, both.refused, both.needs_chains, both.rx_scatter, both.tx_multi_segs),
            (9000, None, true, true, true)
        );
        let neither = caps(u16::MAX, 0, 0).mtu_setup(9000, 2048);
        assert_eq!((neither.needs_chains, neither.rx_scatter, neither.tx_multi_segs), (true, false, false));
        // Buffers as large as the frame: no chains, so no offload is asked for.
        assert!(!caps(9600, scatter, multi).mtu_setup(9000, 9216).needs_chains);
    }

    #[test]
    fn a_port_below_the_mtu_is_configured_at_its_maximum() {
        let s = caps(1500, 0, 0).mtu_setup(9000, 2048);
        assert_eq!((s.mtu, s.refused, s.needs_chains), (1500, Some(9000), false));
    }

    #[test]
    fn the_port_maximum_follows_ethdev_from_max_mtu_and_max_rx_pktlen() {
        let mut info = sys::rte_eth_dev_info { max_mtu: u16::MAX, max_rx_pktlen: 1518, ..Default::default() };
        assert_eq!(port_max_mtu(&info), 1500, "net_memif: 1518-byte frames less Ethernet header and CRC");
        info.max_rx_pktlen = u32::MAX;
        assert_eq!(port_max_mtu(&info), u16::MAX, "net_pcap: no limit");
        (info.max_mtu, info.max_rx_pktlen) = (9600, 9626);
        assert_eq!(port_max_mtu(&info), 9600, "a NIC stating its own overhead");
    }
}
