//! Ethernet II header, with at most one 802.1Q tag.

use super::be16;

pub const HEADER_LEN: usize = 14;
pub const VLAN_TAG_LEN: usize = 4;
/// The EtherType field, which always sits just before the layer-3 header.
pub const ETHERTYPE_LEN: usize = 2;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// TPID of an 802.1Q tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// The 12 bits of a tag's TCI that name the VLAN (PCP and DEI are left 0).
pub const VLAN_ID_MASK: u16 = 0x0fff;

/// Byte offsets inside the Ethernet header (and its optional tag).
pub mod field {
    pub const DST: usize = 0;
    pub const SRC: usize = 6;
    /// EtherType of an untagged frame, or the TPID of a tagged one.
    pub const ETHERTYPE: usize = 12;
    /// Tag control information (PCP, DEI, VLAN id) of a tagged frame.
    pub const VLAN_TCI: usize = 14;
    /// EtherType of the payload in a tagged frame.
    pub const INNER_ETHERTYPE: usize = 16;
}

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
        let outer = be16(b, field::ETHERTYPE);
        let (ethertype, payload_offset) = if outer == ETHERTYPE_VLAN {
            if b.len() < HEADER_LEN + VLAN_TAG_LEN {
                return None;
            }
            (be16(b, field::INNER_ETHERTYPE), HEADER_LEN + VLAN_TAG_LEN)
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
        self.buf.as_ref()[field::DST..field::DST + 6].try_into().unwrap()
    }

    pub fn src(&self) -> MacAddr {
        self.buf.as_ref()[field::SRC..field::SRC + 6].try_into().unwrap()
    }

    /// The tag's VLAN id, if the frame is tagged.
    pub fn vlan_id(&self) -> Option<u16> {
        let tagged = self.payload_offset != HEADER_LEN;
        tagged.then(|| be16(self.buf.as_ref(), field::VLAN_TCI) & VLAN_ID_MASK)
    }
}

/// The fields of an Ethernet header as values, to write one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetRepr {
    pub dst: MacAddr,
    pub src: MacAddr,
    /// VLAN id of one 802.1Q tag; `None` writes an untagged header.
    pub vlan: Option<u16>,
    /// EtherType of the payload.
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Reads back what a view shows, for round trips.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> EthernetRepr {
        EthernetRepr { dst: frame.dst(), src: frame.src(), vlan: frame.vlan_id(), ethertype: frame.ethertype() }
    }

    /// Header length, tag included.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + if self.vlan.is_some() { VLAN_TAG_LEN } else { 0 }
    }

    /// Writes the header at the start of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..self.buffer_len()];
        buf[field::DST..field::DST + 6].copy_from_slice(&self.dst);
        buf[field::SRC..field::SRC + 6].copy_from_slice(&self.src);
        let type_at = match self.vlan {
            Some(id) => {
                put_be16(buf, field::ETHERTYPE, ETHERTYPE_VLAN);
                put_be16(buf, field::VLAN_TCI, id & VLAN_ID_MASK);
                field::INNER_ETHERTYPE
            }
            None => field::ETHERTYPE,
        };
        put_be16(buf, type_at, self.ethertype);
    }
}

fn put_be16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Rewrites both MAC addresses in place (the forwarding step).
#[inline(always)]
pub fn rewrite_macs(frame: &mut [u8], dst: &MacAddr, src: &MacAddr) {
    MacRewrite::new(dst, src).apply(frame);
}

/// Both addresses of an L2 rewrite, laid out as they open the frame
/// (destination, then source), so a worker resolves a hop once per burst
/// and rewrites each packet with one 12-byte copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacRewrite([u8; field::ETHERTYPE]);

// The two addresses are adjacent and open the frame.
const _: () = assert!(field::DST == 0 && field::SRC == 6 && field::ETHERTYPE == 12);

impl MacRewrite {
    pub fn new(dst: &MacAddr, src: &MacAddr) -> Self {
        let mut both = [0; field::ETHERTYPE];
        both[field::DST..field::SRC].copy_from_slice(dst);
        both[field::SRC..field::ETHERTYPE].copy_from_slice(src);
        MacRewrite(both)
    }

    /// Writes both addresses; a frame too short to hold them is left alone.
    #[inline(always)]
    pub fn apply(&self, frame: &mut [u8]) {
        if let Some(addresses) = frame.get_mut(..field::ETHERTYPE) {
            addresses.copy_from_slice(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(vlan: Option<u16>) -> EthernetRepr {
        EthernetRepr { dst: [2, 1, 2, 3, 4, 5], src: [2, 6, 7, 8, 9, 10], vlan, ethertype: ETHERTYPE_IPV4 }
    }

    #[test]
    fn emit_then_parse_round_trips_with_and_without_a_tag() {
        for vlan in [None, Some(0), Some(100), Some(VLAN_ID_MASK)] {
            let repr = sample(vlan);
            let mut buf = vec![0xaa; repr.buffer_len()];
            repr.emit(&mut buf);
            let view = EthernetFrame::parse(&buf[..]).unwrap();
            assert_eq!(view.payload_offset(), repr.buffer_len());
            assert_eq!(EthernetRepr::parse(&view), repr);
        }
    }

    #[test]
    fn tag_sits_before_the_payload_ethertype() {
        let mut buf = [0u8; HEADER_LEN + VLAN_TAG_LEN];
        // Bits above the 12-bit id are not ours to set.
        EthernetRepr { vlan: Some(0xf123), ..sample(None) }.emit(&mut buf);
        assert_eq!(&buf[12..18], &[0x81, 0x00, 0x01, 0x23, 0x08, 0x00]);
    }
}
