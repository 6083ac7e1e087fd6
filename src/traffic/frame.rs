//! Writes one well-formed packet: Ethernet II (optionally one 802.1Q tag),
//! IPv4, UDP and a Tachyon frame, byte for byte as PROTOCOL.md lays it out.

use std::net::Ipv4Addr;

use super::checksum::refresh_ipv4_checksum;

/// The UDP destination port that marks Tachyon traffic unless configured.
pub const DEFAULT_TACHYON_PORT: u16 = 47000;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// TPID of an 802.1Q tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// Destination MAC, source MAC and EtherType.
pub const ETH_HEADER_LEN: usize = 14;
/// TPID plus TCI that one 802.1Q tag inserts before the EtherType.
pub const VLAN_TAG_LEN: usize = 4;
/// IPv4 header without options (IHL 5), the only kind the builder writes.
pub const IPV4_HEADER_LEN: usize = 20;
/// IP protocol number of UDP.
pub const IP_PROTO_UDP: u8 = 17;
/// UDP header length.
pub const UDP_HEADER_LEN: usize = 8;
/// Fixed Tachyon frame header length.
pub const TACHYON_HEADER_LEN: usize = 32;
/// First two bytes of every Tachyon frame.
pub const TACHYON_MAGIC: [u8; 2] = *b"TY";
/// The protocol version this builder speaks.
pub const TACHYON_VERSION: u8 = 1;
/// Flags bit 0: `timestamp_ns` is meaningful.
pub const FLAG_TS_PRESENT: u8 = 1;
/// Size of the little-endian length that precedes each record's payload.
pub const RECORD_LEN_SIZE: usize = 2;
/// Largest UDP payload an IPv4 packet can hold (65535 − 20 − 8).
pub const MAX_UDP_PAYLOAD: usize = 0xffff - IPV4_HEADER_LEN - UDP_HEADER_LEN;
/// TTL every built packet carries.
pub const IP_TTL: u8 = 64;

/// Offsets of the Tachyon header fields, relative to the UDP payload.
pub mod tachyon_offset {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 2;
    pub const FLAGS: usize = 3;
    pub const MSG_COUNT: usize = 4;
    pub const RESERVED: usize = 6;
    pub const TOPIC_ID: usize = 8;
    pub const SENDER_ID: usize = 12;
    pub const SEQ: usize = 16;
    pub const TIMESTAMP_NS: usize = 24;
}

/// Everything needed to write one packet; every field is what lands on the
/// wire, so tests can state the packet they expect in one literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSpec {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// VLAN id (12 bits) of one 802.1Q tag; `None` writes an untagged frame.
    pub vlan: Option<u16>,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    /// Normally the Tachyon port; malformations treat it as such.
    pub dst_port: u16,
    pub topic_id: u32,
    pub sender_id: u32,
    /// Sender's sequence number of the first record.
    pub seq: u64,
    /// `Some` sets `TS_PRESENT` and writes the value; `None` writes 0.
    pub timestamp_ns: Option<u64>,
    /// Record payloads; their count is the frame's `msg_count`.
    pub records: Vec<Vec<u8>>,
}

impl Default for FrameSpec {
    /// Locally administered MACs and RFC 2544 benchmarking addresses, so a
    /// default packet never names a real host.
    fn default() -> Self {
        FrameSpec {
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            vlan: None,
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            dst_ip: Ipv4Addr::new(198, 19, 0, 1),
            src_port: 40000,
            dst_port: DEFAULT_TACHYON_PORT,
            topic_id: 1,
            sender_id: 1,
            seq: 0,
            timestamp_ns: None,
            records: vec![Vec::new()],
        }
    }
}

/// Where each layer starts inside a packet written from a [`FrameSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Start of the IPv4 header.
    pub l3: usize,
    /// Start of the UDP header.
    pub l4: usize,
    /// Start of the UDP payload, i.e. the Tachyon header.
    pub payload: usize,
}

impl Layout {
    /// Offsets for a tagged or untagged frame.
    pub const fn new(vlan: bool) -> Layout {
        let l3 = ETH_HEADER_LEN + if vlan { VLAN_TAG_LEN } else { 0 };
        Layout { l3, l4: l3 + IPV4_HEADER_LEN, payload: l3 + IPV4_HEADER_LEN + UDP_HEADER_LEN }
    }
}

impl FrameSpec {
    /// Offsets of this spec's packet.
    pub fn layout(&self) -> Layout {
        Layout::new(self.vlan.is_some())
    }

    /// `msg_count` as written: the number of records.
    pub fn msg_count(&self) -> u16 {
        u16::try_from(self.records.len()).expect("more than 65535 records in one frame")
    }

    /// Tachyon header plus records: the UDP payload length.
    pub fn udp_payload_len(&self) -> usize {
        TACHYON_HEADER_LEN + self.records.iter().map(|r| RECORD_LEN_SIZE + r.len()).sum::<usize>()
    }

    /// Length of the whole packet from the destination MAC on.
    pub fn frame_len(&self) -> usize {
        self.layout().payload + self.udp_payload_len()
    }

    /// Writes the packet into a fresh buffer.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.frame_len());
        self.write_into(&mut out);
        out
    }

    /// Replaces `out`'s contents with the packet, reusing its allocation so a
    /// generator loop does not allocate per packet.
    ///
    /// # Panics
    /// If a record is longer than 65535 bytes, there are more than 65535
    /// records, or the UDP payload exceeds [`MAX_UDP_PAYLOAD`].
    pub fn write_into(&self, out: &mut Vec<u8>) {
        let payload_len = self.udp_payload_len();
        assert!(payload_len <= MAX_UDP_PAYLOAD, "UDP payload of {payload_len} bytes does not fit one IPv4 packet");
        out.clear();
        out.reserve(self.frame_len());
        self.write_ethernet(out);
        let l3 = out.len();
        self.write_ipv4(out, payload_len);
        self.write_udp(out, payload_len);
        self.write_tachyon(out);
        refresh_ipv4_checksum(out, l3);
    }

    fn write_ethernet(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dst_mac);
        out.extend_from_slice(&self.src_mac);
        if let Some(vlan) = self.vlan {
            out.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            // PCP and DEI stay 0; only the 12-bit id is ours to set.
            out.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
        }
        out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    }

    /// Header with a zero checksum; `write_into` fills it in at the end.
    fn write_ipv4(&self, out: &mut Vec<u8>, payload_len: usize) {
        let total_len = (IPV4_HEADER_LEN + UDP_HEADER_LEN + payload_len) as u16;
        out.push(0x45); // version 4, IHL 5
        out.push(0); // DSCP/ECN
        out.extend_from_slice(&total_len.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // identification
        out.extend_from_slice(&[0, 0]); // flags (DF, MF unset) and fragment offset
        out.push(IP_TTL);
        out.push(IP_PROTO_UDP);
        out.extend_from_slice(&[0, 0]); // checksum
        out.extend_from_slice(&self.src_ip.octets());
        out.extend_from_slice(&self.dst_ip.octets());
    }

    /// UDP checksum 0 means "none" in IPv4, which the appliance accepts.
    fn write_udp(&self, out: &mut Vec<u8>, payload_len: usize) {
        let udp_len = (UDP_HEADER_LEN + payload_len) as u16;
        out.extend_from_slice(&self.src_port.to_be_bytes());
        out.extend_from_slice(&self.dst_port.to_be_bytes());
        out.extend_from_slice(&udp_len.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
    }

    fn write_tachyon(&self, out: &mut Vec<u8>) {
        let flags = if self.timestamp_ns.is_some() { FLAG_TS_PRESENT } else { 0 };
        out.extend_from_slice(&TACHYON_MAGIC);
        out.push(TACHYON_VERSION);
        out.push(flags);
        out.extend_from_slice(&self.msg_count().to_le_bytes());
        out.extend_from_slice(&[0, 0]); // reserved
        out.extend_from_slice(&self.topic_id.to_le_bytes());
        out.extend_from_slice(&self.sender_id.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.timestamp_ns.unwrap_or(0).to_le_bytes());
        for record in &self.records {
            let len = u16::try_from(record.len()).expect("record longer than 65535 bytes");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::checksum::ipv4_header_verifies;
    use super::*;

    fn be16(bytes: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([bytes[at], bytes[at + 1]])
    }

    fn sample_spec() -> FrameSpec {
        FrameSpec {
            src_mac: [0x02, 1, 2, 3, 4, 5],
            dst_mac: [0x02, 6, 7, 8, 9, 10],
            vlan: None,
            src_ip: Ipv4Addr::new(198, 18, 1, 2),
            dst_ip: Ipv4Addr::new(198, 19, 3, 4),
            src_port: 12345,
            dst_port: DEFAULT_TACHYON_PORT,
            topic_id: 0x0102_0304,
            sender_id: 0x0a0b_0c0d,
            seq: 0x1122_3344_5566_7788,
            timestamp_ns: Some(0x0102_0304_0506_0708),
            records: vec![b"hello".to_vec(), Vec::new(), vec![0xee; 3]],
        }
    }

    #[test]
    fn untagged_frame_has_every_field_in_place() {
        let spec = sample_spec();
        let f = spec.build();
        let payload_len = 32 + (2 + 5) + 2 + (2 + 3);
        assert_eq!(f.len(), 14 + 20 + 8 + payload_len);
        assert_eq!(f.len(), spec.frame_len());
        assert_eq!(&f[0..6], &spec.dst_mac);
        assert_eq!(&f[6..12], &spec.src_mac);
        assert_eq!(be16(&f, 12), 0x0800);
        // IPv4
        assert_eq!(f[14], 0x45);
        assert_eq!(usize::from(be16(&f, 16)), 20 + 8 + payload_len);
        assert_eq!(be16(&f, 20), 0, "DF, MF and offset unset");
        assert_eq!(f[22], 64);
        assert_eq!(f[23], 17);
        assert!(ipv4_header_verifies(&f[14..34]));
        assert_eq!(&f[26..30], &[198, 18, 1, 2]);
        assert_eq!(&f[30..34], &[198, 19, 3, 4]);
        // UDP
        assert_eq!(be16(&f, 34), 12345);
        assert_eq!(be16(&f, 36), 47000);
        assert_eq!(usize::from(be16(&f, 38)), 8 + payload_len);
        assert_eq!(be16(&f, 40), 0);
        // Tachyon header, little-endian
        let t = &f[42..];
        assert_eq!(&t[0..2], b"TY");
        assert_eq!(t[2], 1);
        assert_eq!(t[3], FLAG_TS_PRESENT);
        assert_eq!(&t[4..6], &[3, 0]);
        assert_eq!(&t[6..8], &[0, 0]);
        assert_eq!(&t[8..12], &[4, 3, 2, 1]);
        assert_eq!(&t[12..16], &[0x0d, 0x0c, 0x0b, 0x0a]);
        assert_eq!(&t[16..24], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&t[24..32], &0x0102_0304_0506_0708u64.to_le_bytes());
        // records
        assert_eq!(&t[32..39], b"\x05\x00hello");
        assert_eq!(&t[39..41], &[0, 0]);
        assert_eq!(&t[41..], &[3, 0, 0xee, 0xee, 0xee]);
    }

    #[test]
    fn vlan_tag_sits_before_the_ipv4_ethertype() {
        let spec = FrameSpec { vlan: Some(0x0123), ..sample_spec() };
        let f = spec.build();
        assert_eq!(be16(&f, 12), 0x8100);
        assert_eq!(be16(&f, 14), 0x0123);
        assert_eq!(be16(&f, 16), 0x0800);
        assert_eq!(f[18], 0x45);
        assert!(ipv4_header_verifies(&f[18..38]));
        assert_eq!(&f[46..48], b"TY");
        assert_eq!(f.len(), spec.frame_len());
        assert_eq!(spec.layout(), Layout { l3: 18, l4: 38, payload: 46 });
    }

    #[test]
    fn no_timestamp_clears_the_flag_and_the_field() {
        let spec = FrameSpec { timestamp_ns: None, ..sample_spec() };
        let f = spec.build();
        assert_eq!(f[42 + 3], 0);
        assert_eq!(&f[42 + 24..42 + 32], &[0; 8]);
    }

    #[test]
    fn checksum_is_right_for_many_headers() {
        for i in 0..500u32 {
            let spec = FrameSpec {
                src_ip: Ipv4Addr::from(i.wrapping_mul(2_654_435_761)),
                dst_ip: Ipv4Addr::from(!i),
                records: vec![vec![0; (i % 97) as usize]; (i % 5 + 1) as usize],
                ..sample_spec()
            };
            let f = spec.build();
            assert!(ipv4_header_verifies(&f[14..34]), "header {i}");
        }
    }

    #[test]
    fn write_into_reuses_and_replaces_the_buffer() {
        let mut buf = vec![0xaa; 3000];
        let spec = sample_spec();
        spec.write_into(&mut buf);
        assert_eq!(buf, spec.build());
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn oversized_payload_is_refused() {
        let spec = FrameSpec { records: vec![vec![0; 60000], vec![0; 6000]], ..sample_spec() };
        spec.build();
    }
}
