//! A whole Tachyon packet: Ethernet (with at most one 802.1Q tag), an
//! option-less IPv4 header, UDP, the Tachyon header and its records. The
//! writer fills every length, `msg_count` and the IPv4 checksum itself, into
//! a buffer the caller owns, so a worker can emit straight into an mbuf.

use std::net::Ipv4Addr;

use super::ethernet::{self, EthernetRepr, MacAddr};
use super::ipv4::{self, Ipv4Repr};
use super::tachyon::{self, TachyonRepr};
use super::udp::{self, UdpRepr};

/// Largest UDP payload one IPv4 packet can hold (65535 − 20 − 8).
pub const MAX_UDP_PAYLOAD: usize = ipv4::MAX_TOTAL_LEN - ipv4::MIN_HEADER_LEN - udp::HEADER_LEN;
/// Ethernet + IPv4 + UDP + Tachyon header of an untagged frame: the
/// shortest well-formed frame before its records.
pub const MIN_FRAME_HEADERS_LEN: usize =
    ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN + tachyon::HEADER_LEN;

/// Where each layer starts in a frame this module writes.
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
        let l3 = ethernet::HEADER_LEN + if vlan { ethernet::VLAN_TAG_LEN } else { 0 };
        let l4 = l3 + ipv4::MIN_HEADER_LEN;
        Layout { l3, l4, payload: l4 + udp::HEADER_LEN }
    }

    /// Where the first record's length prefix starts.
    pub const fn records(&self) -> usize {
        self.payload + tachyon::HEADER_LEN
    }
}

/// Every header field of a frame that is the sender's choice; lengths and
/// `msg_count` follow from the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeaders {
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    /// VLAN id (12 bits) of one 802.1Q tag; `None` writes an untagged frame.
    pub vlan: Option<u16>,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub topic_id: u32,
    pub sender_id: u32,
    /// Sender's sequence number of the first record.
    pub seq: u64,
    /// `Some` sets `TS_PRESENT` and writes the value; `None` writes 0.
    pub timestamp_ns: Option<u64>,
}

impl FrameHeaders {
    pub const fn layout(&self) -> Layout {
        Layout::new(self.vlan.is_some())
    }

    /// Length of a frame carrying records of these payload lengths.
    pub fn frame_len(&self, record_lens: impl IntoIterator<Item = usize>) -> usize {
        self.layout().records() + record_lens.into_iter().map(tachyon::record_len).sum::<usize>()
    }

    /// Convenience: the frame with these records in a fresh buffer.
    pub fn to_vec<R: AsRef<[u8]>>(&self, records: &[R]) -> Result<Vec<u8>, Full> {
        let mut out = vec![0; self.frame_len(records.iter().map(|r| r.as_ref().len()))];
        let mut w = FrameWriter::new(&mut out, self)?;
        for r in records {
            w.push_record(r.as_ref())?;
        }
        let len = w.finish();
        debug_assert_eq!(len, out.len());
        Ok(out)
    }

    /// The per-layer values once the UDP payload length and count are known.
    fn reprs(&self, udp_payload_len: usize, msg_count: u16) -> (EthernetRepr, Ipv4Repr, UdpRepr, TachyonRepr) {
        let eth =
            EthernetRepr { dst: self.dst_mac, src: self.src_mac, vlan: self.vlan, ethertype: ethernet::ETHERTYPE_IPV4 };
        let udp = UdpRepr { src_port: self.src_port, dst_port: self.dst_port, payload_len: udp_payload_len };
        let ip = Ipv4Repr {
            src: self.src_ip,
            dst: self.dst_ip,
            protocol: ipv4::PROTO_UDP,
            ttl: ipv4::DEFAULT_TTL,
            payload_len: udp::HEADER_LEN + udp_payload_len,
        };
        let (topic_id, sender_id, seq, timestamp_ns) = (self.topic_id, self.sender_id, self.seq, self.timestamp_ns);
        (eth, ip, udp, TachyonRepr { msg_count, topic_id, sender_id, seq, timestamp_ns })
    }
}

/// The buffer, or one IPv4 packet, has no room for what was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("frame full: no room in the buffer or in one IPv4 packet")
    }
}

impl std::error::Error for Full {}

/// Writes one frame into a caller's buffer without allocating: records are
/// appended one by one and [`finish`](Self::finish) writes the headers with
/// every length, `msg_count` and the IPv4 checksum.
pub struct FrameWriter<'a> {
    buf: &'a mut [u8],
    headers: FrameHeaders,
    layout: Layout,
    /// End of the last record written.
    end: usize,
    count: u16,
}

impl<'a> FrameWriter<'a> {
    /// `Full` if `buf` cannot hold even the headers.
    pub fn new(buf: &'a mut [u8], headers: &FrameHeaders) -> Result<Self, Full> {
        let layout = headers.layout();
        let end = layout.records();
        if buf.len() < end {
            return Err(Full);
        }
        Ok(FrameWriter { buf, headers: *headers, layout, end, count: 0 })
    }

    /// Continues a frame whose first `len` bytes of `buf` already hold
    /// `count` records written by a writer with the same `headers` (the
    /// headers themselves are written by [`finish`](Self::finish)). Lets a
    /// caller fill one buffer across several calls without keeping the
    /// writer, e.g. a worker packing messages as they come off a ring.
    /// `Full` if `len` is not within the buffer or before the records start.
    pub fn resume(buf: &'a mut [u8], headers: &FrameHeaders, len: usize, count: u16) -> Result<Self, Full> {
        let layout = headers.layout();
        if len < layout.records() || len > buf.len() {
            return Err(Full);
        }
        Ok(FrameWriter { buf, headers: *headers, layout, end: len, count })
    }

    /// Appends one record; `Full` (and nothing written) if it does not fit
    /// the buffer or would take the UDP payload past one IPv4 packet.
    pub fn push_record(&mut self, payload: &[u8]) -> Result<(), Full> {
        let end = self.end + tachyon::record_len(payload.len());
        if end > self.buf.len() || end - self.layout.payload > MAX_UDP_PAYLOAD || self.count == u16::MAX {
            return Err(Full);
        }
        tachyon::emit_record(&mut self.buf[self.end..end], payload);
        self.end = end;
        self.count += 1;
        Ok(())
    }

    /// Records written so far (the frame's `msg_count`).
    pub fn msg_count(&self) -> u16 {
        self.count
    }

    /// Bytes the frame takes so far, headers included.
    pub fn len(&self) -> usize {
        self.end
    }

    /// True until a record is pushed; a frame finished so says `msg_count`
    /// 0, which receivers drop as `bad_header`.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Payload bytes one more record may carry in this buffer and packet.
    pub fn room(&self) -> usize {
        let limit = self.buf.len().min(self.layout.payload + MAX_UDP_PAYLOAD);
        limit.saturating_sub(self.end + tachyon::RECORD_LEN_PREFIX).min(tachyon::MAX_RECORD_LEN)
    }

    /// Writes every header and returns the frame's length from `buf[0]`.
    pub fn finish(self) -> usize {
        let at = self.layout;
        let (eth, ip, udp, ty) = self.headers.reprs(self.end - at.payload, self.count);
        eth.emit(self.buf);
        ip.emit(&mut self.buf[at.l3..]);
        udp.emit(&mut self.buf[at.l4..]);
        ty.emit(&mut self.buf[at.payload..]);
        self.end
    }
}

/// Makes the IPv4 total length and UDP length of `frame` (laid out as
/// `at`) end where `frame` ends, and refreshes the IPv4 checksum: for
/// tests and malformations that cut or extend a frame's payload.
///
/// # Panics
/// If `frame` is shorter than the headers or longer than one IPv4 packet.
pub fn refresh_lengths(frame: &mut [u8], at: Layout) {
    let ip_total = u16::try_from(frame.len() - at.l3).expect("frame longer than one IPv4 packet");
    let udp_len = ip_total - ipv4::MIN_HEADER_LEN as u16;
    let (t, l) = (at.l3 + ipv4::field::TOTAL_LEN, at.l4 + udp::field::LEN);
    frame[t..t + 2].copy_from_slice(&ip_total.to_be_bytes());
    frame[l..l + 2].copy_from_slice(&udp_len.to_be_bytes());
    ipv4::fill_checksum(&mut frame[at.l3..at.l4]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::classify::{Accepted, NicChecksum, ParseConfig, classify};
    use crate::wire::{EthernetFrame, FrameHeader, Ipv4Header, RecordsCheck, UdpHeader};

    fn headers(vlan: Option<u16>, timestamp_ns: Option<u64>) -> FrameHeaders {
        FrameHeaders {
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_mac: [2, 0, 0, 0, 0, 1],
            vlan,
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            src_port: 5555,
            dst_port: tachyon::DEFAULT_UDP_PORT,
            topic_id: 7,
            sender_id: 42,
            seq: 1000,
            timestamp_ns,
        }
    }

    /// Parses `frame` layer by layer with the views and checks each against
    /// what was written.
    fn parse_back(frame: &[u8], h: &FrameHeaders, records: &[Vec<u8>]) {
        let eth = EthernetFrame::parse(frame).unwrap();
        assert_eq!(EthernetRepr::parse(&eth), h.reprs(0, 0).0);
        let ip = Ipv4Header::parse(&frame[eth.payload_offset()..]).unwrap();
        assert!(ip.checksum_ok());
        assert_eq!(ip.total_len(), frame.len() - h.layout().l3);
        let udp = UdpHeader::parse(ip.payload()).unwrap();
        let ty = FrameHeader::parse(udp.payload()).unwrap();
        let (_, ip_repr, udp_repr, ty_repr) = h.reprs(udp.payload().len(), records.len() as u16);
        assert_eq!((Ipv4Repr::parse(&ip), UdpRepr::parse(&udp), TachyonRepr::parse(&ty)), (ip_repr, udp_repr, ty_repr));
        assert_eq!(ty.check_records(), RecordsCheck::Exact);
        assert_eq!(ty.records().collect::<Vec<_>>(), records.iter().map(|r| r.as_slice()).collect::<Vec<_>>());
    }

    #[test]
    fn whole_frames_round_trip_and_classify() {
        let many: Vec<Vec<u8>> = (0..50).map(|i| vec![i as u8; i]).collect();
        for vlan in [None, Some(100)] {
            for timestamp_ns in [None, Some(123)] {
                for records in [vec![b"hello".to_vec()], many.clone()] {
                    let h = headers(vlan, timestamp_ns);
                    let frame = h.to_vec(&records).unwrap();
                    assert_eq!(frame.len(), h.frame_len(records.iter().map(Vec::len)));
                    parse_back(&frame, &h, &records);
                    let Ok(Accepted::Tachyon(info)) = classify(&frame, NicChecksum::UNKNOWN, &ParseConfig::default())
                    else {
                        panic!("not accepted: {frame:02x?}");
                    };
                    let got = (info.topic, info.sender, info.msg_count, info.seq, info.timestamp_ns);
                    assert_eq!(got, (7, 42, records.len() as u16, 1000, timestamp_ns));
                }
            }
        }
    }

    #[test]
    fn writer_refuses_records_that_do_not_fit_the_buffer() {
        let h = headers(Some(3), None);
        let mut buf = [0u8; 128];
        let mut w = FrameWriter::new(&mut buf, &h).unwrap();
        let room = 128 - h.layout().records() - tachyon::RECORD_LEN_PREFIX;
        assert_eq!(w.room(), room);
        assert_eq!(w.push_record(&vec![1; room + 1]), Err(Full));
        assert!(w.is_empty(), "a refused record leaves nothing behind");
        w.push_record(&[9; 10]).unwrap();
        assert_eq!(w.push_record(&vec![1; room - 10]), Err(Full));
        w.push_record(&vec![2; room - 12]).unwrap();
        assert_eq!((w.room(), w.msg_count(), w.len()), (0, 2, 128));
        assert_eq!(w.finish(), 128);
        let Ok(Accepted::Tachyon(info)) = classify(&buf, NicChecksum::UNKNOWN, &ParseConfig::default()) else {
            panic!("a full frame is still well formed");
        };
        assert_eq!(info.msg_count, 2);
        assert!(FrameWriter::new(&mut buf[..h.layout().records() - 1], &h).is_err());
    }

    #[test]
    fn writer_refuses_more_than_one_ipv4_packet() {
        let h = headers(None, None);
        let mut buf = vec![0u8; 70_000];
        let mut w = FrameWriter::new(&mut buf, &h).unwrap();
        let largest = MAX_UDP_PAYLOAD - tachyon::HEADER_LEN - tachyon::RECORD_LEN_PREFIX;
        assert_eq!(w.room(), largest);
        assert_eq!(w.push_record(&vec![0; largest + 1]), Err(Full));
        w.push_record(&vec![0; largest]).unwrap();
        assert_eq!(w.push_record(&[]), Err(Full));
        let len = w.finish();
        assert_eq!(len - h.layout().l3, ipv4::MAX_TOTAL_LEN);
        assert!(classify(&buf[..len], NicChecksum::UNKNOWN, &ParseConfig::default()).is_ok());
    }

    #[test]
    fn refresh_lengths_follows_a_cut_and_keeps_the_checksum_right() {
        let h = headers(None, None);
        let mut frame = h.to_vec(&[vec![1; 20]]).unwrap();
        frame.truncate(frame.len() - 5);
        refresh_lengths(&mut frame, h.layout());
        let ip = Ipv4Header::parse(&frame[h.layout().l3..]).unwrap();
        assert!(ip.checksum_ok());
        assert_eq!(ip.total_len(), frame.len() - h.layout().l3);
        assert!(UdpHeader::parse(ip.payload()).is_some());
    }

    /// The layout of PROTOCOL.md written out by hand, independent of the
    /// constants above, so a wrong constant cannot check itself.
    fn golden_headers(vlan: Option<u16>, timestamp_ns: Option<u64>) -> FrameHeaders {
        FrameHeaders {
            src_mac: [0x02, 1, 2, 3, 4, 5],
            dst_mac: [0x02, 6, 7, 8, 9, 10],
            vlan,
            src_ip: Ipv4Addr::new(198, 18, 1, 2),
            dst_ip: Ipv4Addr::new(198, 19, 3, 4),
            src_port: 12345,
            dst_port: 47000,
            topic_id: 0x0102_0304,
            sender_id: 0x0a0b_0c0d,
            seq: 0x1122_3344_5566_7788,
            timestamp_ns,
        }
    }

    fn golden_records() -> Vec<Vec<u8>> {
        vec![b"hello".to_vec(), Vec::new(), vec![0xee; 3]]
    }

    fn be16(bytes: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([bytes[at], bytes[at + 1]])
    }

    #[test]
    fn untagged_frame_has_every_field_in_place() {
        let f = golden_headers(None, Some(0x0102_0304_0506_0708)).to_vec(&golden_records()).unwrap();
        let payload_len = 32 + (2 + 5) + 2 + (2 + 3);
        assert_eq!(f.len(), 14 + 20 + 8 + payload_len);
        assert_eq!(&f[0..6], &[0x02, 6, 7, 8, 9, 10]);
        assert_eq!(&f[6..12], &[0x02, 1, 2, 3, 4, 5]);
        assert_eq!(be16(&f, 12), 0x0800);
        // IPv4
        assert_eq!(f[14], 0x45);
        assert_eq!(usize::from(be16(&f, 16)), 20 + 8 + payload_len);
        assert_eq!(be16(&f, 20), 0, "DF, MF and offset unset");
        assert_eq!(f[22], 64);
        assert_eq!(f[23], 17);
        assert!(ipv4::header_verifies(&f[14..34]));
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
        assert_eq!(t[3], 1, "TS_PRESENT");
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
        let h = golden_headers(Some(0x0123), None);
        let f = h.to_vec(&golden_records()).unwrap();
        assert_eq!(be16(&f, 12), 0x8100);
        assert_eq!(be16(&f, 14), 0x0123);
        assert_eq!(be16(&f, 16), 0x0800);
        assert_eq!(f[18], 0x45);
        assert!(ipv4::header_verifies(&f[18..38]));
        assert_eq!(&f[46..48], b"TY");
        assert_eq!(h.layout(), Layout { l3: 18, l4: 38, payload: 46 });
    }

    #[test]
    fn no_timestamp_clears_the_flag_and_the_field() {
        let f = golden_headers(None, None).to_vec(&golden_records()).unwrap();
        assert_eq!(f[42 + 3], 0);
        assert_eq!(&f[42 + 24..42 + 32], &[0; 8]);
    }

    #[test]
    fn checksum_is_right_for_many_headers() {
        for i in 0..500u32 {
            let h = FrameHeaders {
                src_ip: Ipv4Addr::from(i.wrapping_mul(2_654_435_761)),
                dst_ip: Ipv4Addr::from(!i),
                ..golden_headers(None, None)
            };
            let f = h.to_vec(&vec![vec![0; (i % 97) as usize]; (i % 5 + 1) as usize]).unwrap();
            assert!(ipv4::header_verifies(&f[14..34]), "header {i}");
        }
    }
}
