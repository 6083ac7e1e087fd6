//! Ethernet II header, with at most one 802.1Q tag.

use super::be16;

pub const HEADER_LEN: usize = 14;
pub const VLAN_TAG_LEN: usize = 4;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// A 48-bit MAC address.
pub type MacAddr = [u8; 6];

/// View over an Ethernet frame: addresses plus the payload's EtherType and
/// offset after an optional VLAN tag.
pub struct EthernetFrame<T> {
    buf: T,
    ethertype: u16,
    payload_offset: usize,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Checks there is a whole header (and whole tag, if tagged).
    #[inline(always)]
    pub fn parse(buf: T) -> Option<Self> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return None;
        }
        let outer = be16(b, 12);
        let (ethertype, payload_offset) = if outer == ETHERTYPE_VLAN {
            if b.len() < HEADER_LEN + VLAN_TAG_LEN {
                return None;
            }
            (be16(b, 16), HEADER_LEN + VLAN_TAG_LEN)
        } else {
            (outer, HEADER_LEN)
        };
        Some(EthernetFrame { buf, ethertype, payload_offset })
    }

    /// EtherType of the payload (after the VLAN tag, if any).
    pub fn ethertype(&self) -> u16 {
        self.ethertype
    }

    /// Where the layer-3 header starts.
    pub fn payload_offset(&self) -> usize {
        self.payload_offset
    }

    pub fn dst(&self) -> MacAddr {
        self.buf.as_ref()[0..6].try_into().unwrap()
    }

    pub fn src(&self) -> MacAddr {
        self.buf.as_ref()[6..12].try_into().unwrap()
    }
}

/// Rewrites both MAC addresses in place (the forwarding step).
#[inline(always)]
pub fn rewrite_macs(frame: &mut [u8], dst: &MacAddr, src: &MacAddr) {
    if frame.len() >= 12 {
        frame[0..6].copy_from_slice(dst);
        frame[6..12].copy_from_slice(src);
    }
}
