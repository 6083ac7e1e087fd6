//! One packet described by value (headers and records) for the generator
//! and tests; the bytes are written by [`crate::wire::FrameWriter`], the
//! one owner of the layout.

use std::net::Ipv4Addr;

use crate::wire::frame::MAX_UDP_PAYLOAD;
use crate::wire::tachyon::{self, DEFAULT_UDP_PORT};
use crate::wire::{FrameHeaders, FrameWriter, Layout};

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
            dst_port: DEFAULT_UDP_PORT,
            topic_id: 1,
            sender_id: 1,
            seq: 0,
            timestamp_ns: None,
            records: vec![Vec::new()],
        }
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
        self.frame_len() - self.layout().payload
    }

    /// Length of the whole packet from the destination MAC on.
    pub fn frame_len(&self) -> usize {
        self.headers().frame_len(self.records.iter().map(Vec::len))
    }

    /// Every field but the records, as the wire writer takes them.
    pub fn headers(&self) -> FrameHeaders {
        FrameHeaders {
            dst_mac: self.dst_mac,
            src_mac: self.src_mac,
            vlan: self.vlan,
            src_ip: self.src_ip,
            dst_ip: self.dst_ip,
            src_port: self.src_port,
            dst_port: self.dst_port,
            topic_id: self.topic_id,
            sender_id: self.sender_id,
            seq: self.seq,
            timestamp_ns: self.timestamp_ns,
        }
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
        out.resize(self.frame_len(), 0);
        let mut writer = FrameWriter::new(out, &self.headers()).expect("buffer sized for the headers");
        for record in &self.records {
            assert!(record.len() <= tachyon::MAX_RECORD_LEN, "record longer than 65535 bytes");
            writer.push_record(record).expect("buffer sized for every record");
        }
        writer.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4;

    fn sample_spec() -> FrameSpec {
        FrameSpec {
            src_mac: [0x02, 1, 2, 3, 4, 5],
            dst_mac: [0x02, 6, 7, 8, 9, 10],
            vlan: Some(0x0123),
            src_ip: Ipv4Addr::new(198, 18, 1, 2),
            dst_ip: Ipv4Addr::new(198, 19, 3, 4),
            src_port: 12345,
            dst_port: DEFAULT_UDP_PORT,
            topic_id: 0x0102_0304,
            sender_id: 0x0a0b_0c0d,
            seq: 0x1122_3344_5566_7788,
            timestamp_ns: Some(0x0102_0304_0506_0708),
            records: vec![b"hello".to_vec(), Vec::new(), vec![0xee; 3]],
        }
    }

    /// The spec's bytes are the wire writer's for the same fields (the
    /// layout itself is checked byte by byte in `wire::frame`).
    #[test]
    fn build_is_the_wire_frame_of_its_fields() {
        for vlan in [None, Some(0x0123)] {
            for timestamp_ns in [None, Some(5)] {
                let spec = FrameSpec { vlan, timestamp_ns, ..sample_spec() };
                let f = spec.build();
                assert_eq!(f, spec.headers().to_vec(&spec.records).unwrap());
                assert_eq!(f.len(), spec.frame_len());
                assert_eq!(spec.udp_payload_len(), f.len() - spec.layout().payload);
                assert!(ipv4::header_verifies(&f[spec.layout().l3..spec.layout().l4]));
            }
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
