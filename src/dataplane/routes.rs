//! A worker's routing state: the default hop of each ingress port, and the
//! TX slot and source MAC of each egress port, indexed by port id.

use crate::wire::MacAddr;

/// Highest port id + 1 the route table indexes directly.
pub const MAX_PORTS: usize = 32;
pub(super) const NO_SLOT: u8 = u8::MAX;

/// Where the worker sends a frame: egress port and next-hop MAC. The route
/// table holds one per ingress port (the default, from the config's
/// [`crate::config::RouteSpec`]); a governance `route` rule's
/// [`crate::governance::Route`] replaces it for the frames it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    pub egress: u16,
    pub next_hop: MacAddr,
}

/// Routing state of one worker: default hops by ingress port, and the TX
/// buffer and source MAC of every egress port.
#[derive(Clone, Debug)]
pub struct RouteTable {
    pub(super) default_hop: [Option<Hop>; MAX_PORTS],
    pub(super) tx_slot: [u8; MAX_PORTS],
    pub(super) port_mac: [MacAddr; MAX_PORTS],
}

impl RouteTable {
    /// `ports` lists (port id, MAC) in TX-queue order; `hops` the default
    /// route of each ingress port.
    pub fn new(ports: &[(u16, MacAddr)], hops: &[(u16, Hop)]) -> Self {
        let mut t =
            RouteTable { default_hop: [None; MAX_PORTS], tx_slot: [NO_SLOT; MAX_PORTS], port_mac: [[0; 6]; MAX_PORTS] };
        for (slot, (id, mac)) in ports.iter().enumerate() {
            t.tx_slot[*id as usize] = slot as u8;
            t.port_mac[*id as usize] = *mac;
        }
        for (ingress, hop) in hops {
            t.default_hop[*ingress as usize] = Some(*hop);
        }
        t
    }

    /// The worker's TX slot and the source MAC for frames leaving by `port`,
    /// or `None` when the worker has no queue on it.
    #[inline(always)]
    pub fn egress(&self, port: u16) -> Option<(usize, MacAddr)> {
        let p = port as usize;
        let slot = *self.tx_slot.get(p)?;
        (slot != NO_SLOT).then(|| (slot as usize, self.port_mac[p]))
    }
}
