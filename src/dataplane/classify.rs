//! Puts every received packet in exactly one place: a Tachyon frame to
//! govern, other traffic to forward as-is, or a drop under the first
//! PROTOCOL.md reason that fails (checks run in the table's order).

use crate::dataplane::reason::DropReason;
use crate::wire::{
    EthernetFrame, FrameHeader, Ipv4Header, Layout, RecordsCheck, UdpHeader, ethernet, frame, ipv4, tachyon, udp,
};

/// The parser's settings, taken from the config.
#[derive(Clone, Copy, Debug)]
pub struct ParseConfig {
    pub tachyon_port: u16,
    /// Forward UDP/IPv4 traffic to other ports instead of dropping it.
    pub forward_non_tachyon: bool,
    pub verify_ip_checksum: bool,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig { tachyon_port: tachyon::DEFAULT_UDP_PORT, forward_non_tachyon: false, verify_ip_checksum: true }
    }
}

/// What the NIC already said about the IPv4 checksum (from mbuf offload
/// flags). Two flags rather than a three-way enum: the fast path then tests
/// the offload bits as they are, without building a discriminant per packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicChecksum {
    /// The NIC verified the header: software need not.
    pub vouched: bool,
    /// The NIC found the checksum wrong.
    pub refuted: bool,
}

impl NicChecksum {
    /// The NIC said nothing (no offload, or not for this packet).
    pub const UNKNOWN: Self = NicChecksum { vouched: false, refuted: false };
    pub const GOOD: Self = NicChecksum { vouched: true, refuted: false };
    pub const BAD: Self = NicChecksum { vouched: false, refuted: true };
}

/// The fields governance needs from an accepted Tachyon frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    pub topic: u32,
    pub sender: u32,
    pub msg_count: u16,
    pub seq: u64,
    /// Sender's timestamp when `TS_PRESENT`.
    pub timestamp_ns: Option<u64>,
    pub src_ip: u32,
    pub dst_port: u16,
}

/// A packet that passed classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    Tachyon(FrameInfo),
    /// UDP/IPv4 to another port, forwarded because the config says so.
    Other,
}

/// Classifies one packet. Never panics on any input.
///
/// Well-formed frames in the common shape (IPv4 without options, with or
/// without one VLAN tag) take a fast path that checks everything with one
/// length check and fixed-offset reads; anything else, and every packet
/// the fast path doubts, goes through [`classify_general`], which names the
/// exact reason. Both agree on every input (tested below).
#[inline(always)]
pub fn classify(pkt: &[u8], nic: NicChecksum, cfg: &ParseConfig) -> Result<Accepted, DropReason> {
    match accept_fast(pkt, nic, cfg) {
        Some(frame) => Ok(Accepted::Tachyon(frame)),
        None => classify_general(pkt, nic, cfg),
    }
}

/// The fast path alone: `Some` for a well-formed frame in the common shape,
/// `None` when [`classify_general`] must decide. The worker calls the two
/// itself so that the fast path's result stays in registers.
#[inline(always)]
pub fn accept_fast(pkt: &[u8], nic: NicChecksum, cfg: &ParseConfig) -> Option<FrameInfo> {
    // A named constant, not a temporary: the compare then reads no stack.
    const VLAN_TPID: [u8; 2] = ethernet::ETHERTYPE_VLAN.to_be_bytes();
    let tpid = ethernet::field::ETHERTYPE;
    if pkt.get(tpid..tpid + 2) == Some(&VLAN_TPID) {
        fast_accept::<{ FAST_MIN_LEN + ethernet::VLAN_TAG_LEN }, { Layout::new(true).l3 }>(pkt, nic, cfg)
    } else {
        fast_accept::<FAST_MIN_LEN, { Layout::new(false).l3 }>(pkt, nic, cfg)
    }
}

/// Ethernet + IPv4 without options + UDP + Tachyon header, untagged.
const FAST_MIN_LEN: usize = frame::MIN_FRAME_HEADERS_LEN;
/// IPv4 total length of the shortest Tachyon frame: no records at all.
const FAST_MIN_IP_TOTAL: usize = ipv4::MIN_HEADER_LEN + udp::HEADER_LEN + tachyon::HEADER_LEN;
// The fast path reads the UDP destination port and length as one 4-byte field.
const _: () = assert!(udp::field::LEN == udp::field::DST_PORT + 2);

/// Accepts a well-formed Tachyon frame whose IPv4 header starts at `L3` and
/// has no options; `None` means "not sure", never "drop".
#[inline(always)]
fn fast_accept<const N: usize, const L3: usize>(pkt: &[u8], nic: NicChecksum, cfg: &ParseConfig) -> Option<FrameInfo> {
    let h: &[u8; N] = pkt.get(..N)?.try_into().ok()?;
    let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    let le32 = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let (ip, udp, ty) = (L3, L3 + ipv4::MIN_HEADER_LEN, L3 + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN);
    // EtherType IPv4 and version 4 with IHL 5, in one masked compare.
    if le32(L3 - ethernet::ETHERTYPE_LEN) & ipv4::ETHERTYPE_VERSION_IHL_MASK != ipv4::ETHERTYPE_VERSION_IHL_WORD {
        return None;
    }
    let ip_total = be16(ip + ipv4::field::TOTAL_LEN) as usize;
    if ip_total < FAST_MIN_IP_TOTAL || L3 + ip_total > pkt.len() {
        return None;
    }
    if cfg.verify_ip_checksum && !nic.vouched && (nic.refuted || !ip_checksum_ok(h, ip)) {
        return None;
    }
    // No MF flag, fragment offset 0, protocol UDP: flags to protocol, masked.
    if le32(ip + ipv4::field::FLAGS_FRAGMENT) & ipv4::UNFRAGMENTED_UDP_MASK != ipv4::UNFRAGMENTED_UDP_WORD {
        return None;
    }
    // Destination port and UDP length (= IP payload), as they appear on the wire.
    let udp_len = (ip_total - ipv4::MIN_HEADER_LEN) as u32;
    let port_and_len = ((cfg.tachyon_port as u32) << 16 | udp_len).to_be_bytes();
    let at = udp + udp::field::DST_PORT;
    if h[at..at + 4] != port_and_len {
        return None;
    }
    // Magic "TY", version 1, no reserved flag bits; msg_count ≥ 1, reserved 0.
    let magic_version_flags = le32(ty + tachyon::field::MAGIC);
    let count_reserved = le32(ty + tachyon::field::MSG_COUNT);
    if magic_version_flags & tachyon::MAGIC_VERSION_FLAGS_MASK != tachyon::MAGIC_VERSION_WORD
        || count_reserved >> 16 != 0
        || count_reserved == 0
    {
        return None;
    }
    let msg_count = count_reserved as u16;
    let src = ip + ipv4::field::SRC;
    let payload = pkt.get(ty..L3 + ip_total)?;
    let frame = FrameHeader::parse(payload)?;
    if frame.check_records() != RecordsCheck::Exact {
        return None;
    }
    Some(FrameInfo {
        topic: le32(ty + tachyon::field::TOPIC_ID),
        sender: le32(ty + tachyon::field::SENDER_ID),
        msg_count,
        seq: frame.seq(),
        timestamp_ns: frame.has_timestamp().then(|| frame.timestamp_ns()),
        src_ip: u32::from_be_bytes([h[src], h[src + 1], h[src + 2], h[src + 3]]),
        dst_port: cfg.tachyon_port,
    })
}

/// Whether the option-less IPv4 header at `ip` sums to all ones.
///
/// The one's-complement sum of the header's ten 16-bit words is all ones
/// exactly when their plain sum is a multiple of 65,535 (the header is
/// never all zeros: its version was checked). Since 2^16 ≡ 1 (mod 65,535),
/// a little-endian read of any width is congruent to the sum of its
/// (byte-swapped) 16-bit words, and byte-swapping every word multiplies the
/// sum by 256, which is invertible mod 65,535. So the header is added as
/// two 64-bit reads and one 32-bit read, with their carries (2^64 ≡ 1 too)
/// folded back in, and tested with one divisibility check, which compiles
/// to a multiply and a compare: 3 loads where 32-bit reads took 5.
#[inline(always)]
fn ip_checksum_ok<const N: usize>(h: &[u8; N], ip: usize) -> bool {
    let le64 = |at: usize| u64::from_le_bytes(std::array::from_fn(|i| h[at + i]));
    let tail = u32::from_le_bytes([h[ip + 16], h[ip + 17], h[ip + 18], h[ip + 19]]);
    let wide = u128::from(le64(ip)) + u128::from(le64(ip + 8)) + u128::from(tail);
    // Fold the carries (at most 2, each 2^64 ≡ 1) back in. Should that add
    // carry again, the low word is then at most 1: the last add cannot.
    let (sum, carried) = (wide as u64).overflowing_add((wide >> 64) as u64);
    let sum = sum + u64::from(carried);
    // Divisibility by the odd 65,535 as one multiply and one compare: x is
    // a multiple exactly when x times the inverse of 65,535 (mod 2^64) is at
    // most (2^64 - 1) / 65,535. LLVM computes the remainder instead.
    sum.wrapping_mul(INVERSE_OF_65535) <= u64::MAX / 0xffff
}

/// The inverse of 65,535 modulo 2^64 (Newton's iteration doubles the
/// correct low bits each step: 3 → 6 → … → 96 ≥ 64).
const INVERSE_OF_65535: u64 = {
    let mut inv: u64 = 0xffff; // correct to 3 bits: d·d ≡ 1 (mod 8) for odd d
    let mut step = 0;
    while step < 5 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(0xffffu64.wrapping_mul(inv)));
        step += 1;
    }
    inv
};
const _: () = assert!(INVERSE_OF_65535.wrapping_mul(0xffff) == 1);

/// The reference classifier: every check of PROTOCOL.md in its order.
pub fn classify_general(pkt: &[u8], nic: NicChecksum, cfg: &ParseConfig) -> Result<Accepted, DropReason> {
    let eth = EthernetFrame::parse(pkt).ok_or(DropReason::NotIpv4)?;
    if eth.ethertype() != ethernet::ETHERTYPE_IPV4 {
        return Err(DropReason::NotIpv4);
    }
    let ip = Ipv4Header::parse(&pkt[eth.payload_offset()..]).map_err(|_| DropReason::IpMalformed)?;
    if cfg.verify_ip_checksum {
        let ok = nic.vouched || (!nic.refuted && ip.checksum_ok());
        if !ok {
            return Err(DropReason::IpChecksum);
        }
    }
    if ip.is_fragment() {
        return Err(DropReason::IpFragment);
    }
    if ip.protocol() != ipv4::PROTO_UDP {
        return Err(DropReason::NotUdp);
    }
    let udp = UdpHeader::parse(ip.payload()).ok_or(DropReason::UdpMalformed)?;
    if udp.dst_port() != cfg.tachyon_port {
        return if cfg.forward_non_tachyon { Ok(Accepted::Other) } else { Err(DropReason::NotTachyon) };
    }
    let frame = FrameHeader::parse(udp.payload()).ok_or(DropReason::BadMagic)?;
    if !frame.magic_ok() {
        return Err(DropReason::BadMagic);
    }
    if frame.version() != tachyon::VERSION {
        return Err(DropReason::BadVersion);
    }
    if !frame.header_fields_ok() {
        return Err(DropReason::BadHeader);
    }
    match frame.check_records() {
        RecordsCheck::Exact => {}
        RecordsCheck::Truncated => return Err(DropReason::Truncated),
        RecordsCheck::TrailingBytes => return Err(DropReason::TrailingBytes),
    }
    Ok(Accepted::Tachyon(FrameInfo {
        topic: frame.topic_id(),
        sender: frame.sender_id(),
        msg_count: frame.msg_count(),
        seq: frame.seq(),
        timestamp_ns: frame.has_timestamp().then(|| frame.timestamp_ns()),
        src_ip: ip.src(),
        dst_port: udp.dst_port(),
    }))
}

/// The longest prefix of a frame that classification can depend on: an
/// IPv4 packet of the largest total length (65,535) behind Ethernet and one
/// VLAN tag. Bytes past it can only be padding, which the parser ignores, so
/// gathering a chain of any length up to this bound classifies it exactly.
pub const MAX_CLASSIFIED_FRAME: usize = ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN + u16::MAX as usize;

/// A buffer that a frame received in several segments (a jumbo frame as an
/// mbuf chain) is copied into, so the contiguous parsers can read it. A
/// worker makes one at start with [`Linearizer::preallocated`]; gathering
/// then never allocates.
#[derive(Debug, Default)]
pub struct Linearizer {
    buf: Vec<u8>,
}

impl Linearizer {
    /// A linearizer that holds any frame without growing (64 KiB).
    pub fn preallocated() -> Self {
        Linearizer { buf: Vec::with_capacity(MAX_CLASSIFIED_FRAME) }
    }

    /// Copies the segments, in order, into one slice: at most
    /// [`MAX_CLASSIFIED_FRAME`] bytes, the rest being padding at best.
    pub fn gather<'s>(&mut self, segments: impl IntoIterator<Item = &'s [u8]>) -> &[u8] {
        self.buf.clear();
        for seg in segments {
            let room = MAX_CLASSIFIED_FRAME - self.buf.len();
            self.buf.extend_from_slice(&seg[..seg.len().min(room)]);
            if room <= seg.len() {
                break;
            }
        }
        &self.buf
    }

    /// Classifies the frame made of `segments`, exactly as [`classify`]
    /// would the same bytes in one piece.
    pub fn classify<'s>(
        &mut self,
        segments: impl IntoIterator<Item = &'s [u8]>,
        nic: NicChecksum,
        cfg: &ParseConfig,
    ) -> Result<Accepted, DropReason> {
        classify(self.gather(segments), nic, cfg)
    }
}

/// Classifies a frame given as a list of byte segments (as an mbuf chain
/// holds it): the same answer as [`classify`] on their concatenation. For
/// tests and fuzzing; it allocates when there is more than one segment.
pub fn classify_segments(segments: &[&[u8]], nic: NicChecksum, cfg: &ParseConfig) -> Result<Accepted, DropReason> {
    match segments {
        [] => classify(&[], nic, cfg),
        [one] => classify(one, nic, cfg),
        many => Linearizer::default().classify(many.iter().copied(), nic, cfg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::refresh_lengths;
    use crate::wire::{FrameHeaders, FrameWriter};
    use std::net::Ipv4Addr;

    /// A frame written by the wire builder, then broken in exactly one
    /// field, so each test can name the one thing it changes.
    struct Pkt {
        vlan: Option<u16>,
        ethertype: u16,
        ip_version_ihl: u8,
        ip_flags_frag: u16,
        ip_proto: u8,
        ip_total_len_delta: i32,
        break_ip_checksum: bool,
        udp_len_delta: i32,
        dst_port: u16,
        magic: [u8; 2],
        version: u8,
        flags: u8,
        reserved: u16,
        msg_count: u16,
        records: Vec<Vec<u8>>,
        extra_payload: Vec<u8>,
        cut_payload_to: Option<usize>,
        eth_padding: usize,
    }

    impl Default for Pkt {
        fn default() -> Self {
            Pkt {
                vlan: None,
                ethertype: ethernet::ETHERTYPE_IPV4,
                ip_version_ihl: ipv4::VERSION_IHL_NO_OPTIONS,
                ip_flags_frag: 0,
                ip_proto: ipv4::PROTO_UDP,
                ip_total_len_delta: 0,
                break_ip_checksum: false,
                udp_len_delta: 0,
                dst_port: tachyon::DEFAULT_UDP_PORT,
                magic: tachyon::MAGIC,
                version: tachyon::VERSION,
                flags: 0,
                reserved: 0,
                msg_count: 1,
                records: vec![b"hello".to_vec()],
                extra_payload: vec![],
                cut_payload_to: None,
                eth_padding: 0,
            }
        }
    }

    fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
        b[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn add_be16(b: &mut [u8], at: usize, delta: i32) {
        let v = (u16::from_be_bytes([b[at], b[at + 1]]) as i32 + delta) as u16;
        put(b, at, &v.to_be_bytes());
    }

    impl Pkt {
        fn headers(&self) -> FrameHeaders {
            FrameHeaders {
                dst_mac: [2, 0, 0, 0, 0, 2],
                src_mac: [2, 0, 0, 0, 0, 1],
                vlan: self.vlan,
                src_ip: Ipv4Addr::new(10, 0, 0, 1),
                dst_ip: Ipv4Addr::new(10, 0, 0, 2),
                src_port: 5555,
                dst_port: self.dst_port,
                topic_id: 7,
                sender_id: 42,
                seq: 1000,
                // Written always; `flags` below decides whether it counts.
                timestamp_ns: Some(123),
            }
        }

        /// The frame up to the IP layer: Tachyon fields as asked, payload
        /// cut or extended, IP and UDP lengths following it.
        fn payload_as_asked(&self) -> (Vec<u8>, Layout) {
            let h = self.headers();
            let mut f = vec![0; h.frame_len(self.records.iter().map(Vec::len))];
            let mut w = FrameWriter::new(&mut f, &h).unwrap();
            self.records.iter().for_each(|r| w.push_record(r).unwrap());
            w.finish();
            let (at, ty) = (h.layout(), h.layout().payload);
            put(&mut f, ty + tachyon::field::MAGIC, &self.magic);
            f[ty + tachyon::field::VERSION] = self.version;
            f[ty + tachyon::field::FLAGS] = self.flags;
            put(&mut f, ty + tachyon::field::MSG_COUNT, &self.msg_count.to_le_bytes());
            put(&mut f, ty + tachyon::field::RESERVED, &self.reserved.to_le_bytes());
            f.extend_from_slice(&self.extra_payload);
            if let Some(n) = self.cut_payload_to {
                f.truncate(at.payload + n);
            }
            refresh_lengths(&mut f, at);
            (f, at)
        }

        fn bytes(&self) -> Vec<u8> {
            let (mut f, at) = self.payload_as_asked();
            let l3 = at.l3;
            put(&mut f, l3 - ethernet::ETHERTYPE_LEN, &self.ethertype.to_be_bytes());
            f[l3 + ipv4::field::VERSION_IHL] = self.ip_version_ihl;
            put(&mut f, l3 + ipv4::field::FLAGS_FRAGMENT, &self.ip_flags_frag.to_be_bytes());
            f[l3 + ipv4::field::PROTOCOL] = self.ip_proto;
            add_be16(&mut f, l3 + ipv4::field::TOTAL_LEN, self.ip_total_len_delta);
            ipv4::fill_checksum(&mut f[l3..at.l4]);
            if self.break_ip_checksum {
                f[l3 + ipv4::field::CHECKSUM] ^= 0x5a;
                f[l3 + ipv4::field::CHECKSUM + 1] ^= 0x5a;
            }
            add_be16(&mut f, at.l4 + udp::field::LEN, self.udp_len_delta);
            f.extend(std::iter::repeat_n(0u8, self.eth_padding));
            f
        }
    }

    fn run(p: &Pkt) -> Result<Accepted, DropReason> {
        classify(&p.bytes(), NicChecksum::UNKNOWN, &ParseConfig::default())
    }

    fn reason(p: Pkt) -> DropReason {
        run(&p).expect_err("packet should be dropped")
    }

    #[test]
    fn valid_frame_with_one_record() {
        match run(&Pkt::default()).unwrap() {
            Accepted::Tachyon(f) => {
                assert_eq!((f.topic, f.sender, f.msg_count, f.seq), (7, 42, 1, 1000));
                assert_eq!(f.timestamp_ns, None);
                assert_eq!(f.src_ip, 0x0a00_0001);
                assert_eq!(f.dst_port, tachyon::DEFAULT_UDP_PORT);
            }
            other => panic!("expected a Tachyon frame, got {other:?}"),
        }
    }

    #[test]
    fn valid_frame_with_many_records_and_vlan_and_timestamp() {
        let records: Vec<Vec<u8>> = (0..50).map(|i| vec![i as u8; i]).collect();
        let p = Pkt {
            vlan: Some(100),
            msg_count: 50,
            records: records.clone(),
            flags: tachyon::FLAG_TS_PRESENT,
            ..Pkt::default()
        };
        let bytes = p.bytes();
        match classify(&bytes, NicChecksum::UNKNOWN, &ParseConfig::default()).unwrap() {
            Accepted::Tachyon(f) => {
                assert_eq!(f.msg_count, 50);
                assert_eq!(f.timestamp_ns, Some(123));
            }
            other => panic!("expected a Tachyon frame, got {other:?}"),
        }
        // The record walk yields exactly the payloads that were written.
        let udp_payload = &bytes[Layout::new(true).payload..];
        let got: Vec<&[u8]> = FrameHeader::parse(udp_payload).unwrap().records().collect();
        assert_eq!(got, records.iter().map(|r| r.as_slice()).collect::<Vec<_>>());
    }

    #[test]
    fn ethernet_padding_after_ip_total_length_is_ignored() {
        // A short frame padded to 60 bytes must still be exact (payload bounded by IP length).
        let p = Pkt { records: vec![vec![]], eth_padding: 9, ..Pkt::default() };
        assert!(matches!(run(&p), Ok(Accepted::Tachyon(_))));
    }

    #[test]
    fn not_ipv4() {
        assert_eq!(reason(Pkt { ethertype: 0x86dd, ..Pkt::default() }), DropReason::NotIpv4);
        assert_eq!(reason(Pkt { vlan: Some(5), ethertype: 0x0806, ..Pkt::default() }), DropReason::NotIpv4);
        // A runt shorter than an Ethernet header.
        let runt = [0u8; 11];
        assert_eq!(classify(&runt, NicChecksum::UNKNOWN, &ParseConfig::default()), Err(DropReason::NotIpv4));
        // A VLAN tag cut short.
        let mut tagged = vec![0u8; 12];
        tagged.extend_from_slice(&ethernet::ETHERTYPE_VLAN.to_be_bytes());
        tagged.push(0);
        assert_eq!(classify(&tagged, NicChecksum::UNKNOWN, &ParseConfig::default()), Err(DropReason::NotIpv4));
    }

    #[test]
    fn ip_malformed() {
        assert_eq!(reason(Pkt { ip_version_ihl: 0x65, ..Pkt::default() }), DropReason::IpMalformed);
        assert_eq!(reason(Pkt { ip_version_ihl: 0x44, ..Pkt::default() }), DropReason::IpMalformed);
        assert_eq!(reason(Pkt { ip_total_len_delta: 1, ..Pkt::default() }), DropReason::IpMalformed);
        let mut p = Pkt::default().bytes();
        let total = Layout::new(false).l3 + ipv4::field::TOTAL_LEN;
        p[total..total + 2].copy_from_slice(&10u16.to_be_bytes()); // total length < header
        assert_eq!(classify(&p, NicChecksum::UNKNOWN, &ParseConfig::default()), Err(DropReason::IpMalformed));
        let short = &Pkt::default().bytes()[..Layout::new(false).l4 - 1];
        assert_eq!(classify(short, NicChecksum::UNKNOWN, &ParseConfig::default()), Err(DropReason::IpMalformed));
    }

    #[test]
    fn ip_checksum_is_verified_unless_off_or_vouched_for() {
        let p = Pkt { break_ip_checksum: true, ..Pkt::default() };
        assert_eq!(reason(Pkt { break_ip_checksum: true, ..Pkt::default() }), DropReason::IpChecksum);
        let b = p.bytes();
        let off = ParseConfig { verify_ip_checksum: false, ..ParseConfig::default() };
        assert!(classify(&b, NicChecksum::UNKNOWN, &off).is_ok());
        assert!(classify(&b, NicChecksum::GOOD, &ParseConfig::default()).is_ok());
        let good = Pkt::default().bytes();
        assert_eq!(classify(&good, NicChecksum::BAD, &ParseConfig::default()), Err(DropReason::IpChecksum));
    }

    /// The fast path's modulo test agrees with the wire module's
    /// word-by-word sum on headers that are valid, off by one bit, and at
    /// the extremes (all-ones words, whose folds carry the most).
    #[test]
    fn fast_ip_checksum_agrees_with_the_reference_sum() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut headers: Vec<[u8; 20]> = vec![];
        for fill in [0x00, 0xff] {
            let mut h = [fill; 20];
            h[0] = 0x45;
            headers.push(h);
            ipv4::fill_checksum(&mut h);
            headers.push(h);
        }
        for _ in 0..20_000 {
            let mut h = [0u8; 20];
            for chunk in h.chunks_mut(8) {
                let r = next().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
            h[0] = 0x45;
            if next() % 2 == 0 {
                ipv4::fill_checksum(&mut h);
                if next() % 2 == 0 {
                    let bit = next() as usize % 160;
                    h[bit / 8] ^= 1 << (bit % 8);
                    h[0] = 0x45;
                }
            }
            headers.push(h);
        }
        // Mostly-ones headers: the 64-bit adds carry, once or twice, and
        // the folded sum lands at or next to 2^64 - 1.
        for _ in 0..20_000 {
            let mut h = [0xff; 20];
            for _ in 0..next() % 4 {
                h[next() as usize % 20] = next() as u8;
            }
            h[0] = 0x45;
            if next() % 2 == 0 {
                ipv4::fill_checksum(&mut h);
            }
            headers.push(h);
        }
        let mut valid = 0;
        for h in &headers {
            let reference = ipv4::checksum(h) == 0;
            valid += usize::from(reference);
            assert_eq!(ip_checksum_ok(h, 0), reference, "{h:02x?}");
        }
        assert!(valid > 10_000, "the sample holds valid headers too ({valid})");
    }

    #[test]
    fn ip_fragment() {
        assert_eq!(reason(Pkt { ip_flags_frag: ipv4::FLAG_MF, ..Pkt::default() }), DropReason::IpFragment);
        assert_eq!(reason(Pkt { ip_flags_frag: 0x0010, ..Pkt::default() }), DropReason::IpFragment);
        // DF alone is not a fragment.
        assert!(run(&Pkt { ip_flags_frag: 0x4000, ..Pkt::default() }).is_ok());
    }

    #[test]
    fn not_udp() {
        assert_eq!(reason(Pkt { ip_proto: 6, ..Pkt::default() }), DropReason::NotUdp);
    }

    #[test]
    fn udp_malformed() {
        assert_eq!(reason(Pkt { udp_len_delta: 1, ..Pkt::default() }), DropReason::UdpMalformed);
        assert_eq!(reason(Pkt { udp_len_delta: -1, ..Pkt::default() }), DropReason::UdpMalformed);
        let mut p = Pkt::default().bytes();
        let len = Layout::new(false).l4 + udp::field::LEN;
        p[len..len + 2].copy_from_slice(&4u16.to_be_bytes());
        let fixed = {
            // keep the IP header valid: only the UDP length is wrong
            p
        };
        assert_eq!(classify(&fixed, NicChecksum::UNKNOWN, &ParseConfig::default()), Err(DropReason::UdpMalformed));
    }

    #[test]
    fn not_tachyon_dropped_or_forwarded_by_config() {
        let p = Pkt { dst_port: 53, ..Pkt::default() };
        assert_eq!(reason(Pkt { dst_port: 53, ..Pkt::default() }), DropReason::NotTachyon);
        let fwd = ParseConfig { forward_non_tachyon: true, ..ParseConfig::default() };
        assert_eq!(classify(&p.bytes(), NicChecksum::UNKNOWN, &fwd), Ok(Accepted::Other));
        let custom = ParseConfig { tachyon_port: 53, ..ParseConfig::default() };
        assert!(matches!(classify(&p.bytes(), NicChecksum::UNKNOWN, &custom), Ok(Accepted::Tachyon(_))));
    }

    #[test]
    fn bad_magic() {
        assert_eq!(reason(Pkt { magic: *b"TX", ..Pkt::default() }), DropReason::BadMagic);
        assert_eq!(
            reason(Pkt { cut_payload_to: Some(tachyon::HEADER_LEN - 1), ..Pkt::default() }),
            DropReason::BadMagic
        );
    }

    #[test]
    fn bad_version() {
        assert_eq!(reason(Pkt { version: 2, ..Pkt::default() }), DropReason::BadVersion);
    }

    #[test]
    fn bad_header() {
        assert_eq!(reason(Pkt { flags: 0x02, ..Pkt::default() }), DropReason::BadHeader);
        assert_eq!(reason(Pkt { reserved: 1, ..Pkt::default() }), DropReason::BadHeader);
        assert_eq!(reason(Pkt { msg_count: 0, records: vec![], ..Pkt::default() }), DropReason::BadHeader);
    }

    #[test]
    fn truncated() {
        // msg_count says 3 but only 2 records are there.
        assert_eq!(
            reason(Pkt { msg_count: 3, records: vec![b"a".to_vec(), b"b".to_vec()], ..Pkt::default() }),
            DropReason::Truncated
        );
        // The last record's length runs past the end.
        assert_eq!(
            reason(Pkt {
                cut_payload_to: Some(tachyon::HEADER_LEN + tachyon::RECORD_LEN_PREFIX + 3),
                ..Pkt::default()
            }),
            DropReason::Truncated
        );
        // One byte past the header: no room even for the first length prefix.
        assert_eq!(
            reason(Pkt { cut_payload_to: Some(tachyon::HEADER_LEN + 1), ..Pkt::default() }),
            DropReason::Truncated
        );
    }

    #[test]
    fn trailing_bytes() {
        assert_eq!(reason(Pkt { extra_payload: vec![0xee], ..Pkt::default() }), DropReason::TrailingBytes);
    }

    #[test]
    fn fast_path_agrees_with_the_general_classifier() {
        // Every prefix and every single-byte corruption of tagged and untagged
        // frames gets the same answer from both paths, under every setting.
        let frames = [
            Pkt::default().bytes(),
            Pkt { vlan: Some(3), msg_count: 3, records: vec![vec![1; 2], vec![], vec![9; 30]], ..Pkt::default() }
                .bytes(),
            Pkt { flags: tachyon::FLAG_TS_PRESENT, eth_padding: 6, records: vec![vec![]], ..Pkt::default() }.bytes(),
        ];
        let configs = [
            ParseConfig::default(),
            ParseConfig { verify_ip_checksum: false, ..ParseConfig::default() },
            ParseConfig { forward_non_tachyon: true, ..ParseConfig::default() },
        ];
        for good in &frames {
            let mut variants: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
            for i in 0..good.len() {
                for v in [0u8, 1, 0x45, 0x7f, 0x80, 0xff] {
                    let mut b = good.clone();
                    b[i] = v;
                    variants.push(b);
                }
            }
            for b in &variants {
                for cfg in &configs {
                    for nic in [NicChecksum::UNKNOWN, NicChecksum::GOOD, NicChecksum::BAD] {
                        assert_eq!(classify(b, nic, cfg), classify_general(b, nic, cfg), "{b:02x?}");
                    }
                }
            }
        }
    }

    /// `frame` cut in two at every point, and in three at many pairs of
    /// points (empty pieces included).
    fn splits(frame: &[u8]) -> Vec<Vec<&[u8]>> {
        let mut out = vec![vec![frame]];
        for a in 0..=frame.len() {
            out.push(vec![&frame[..a], &frame[a..]]);
        }
        for a in (0..=frame.len()).step_by(61) {
            for b in (a..=frame.len()).step_by(97) {
                out.push(vec![&frame[..a], &frame[a..b], &frame[b..], &[]]);
            }
        }
        out
    }

    #[test]
    fn a_frame_split_anywhere_classifies_as_the_contiguous_frame() {
        let jumbo: Vec<Vec<u8>> = (0..120).map(|i| vec![i as u8; 20 + i % 50]).collect();
        let frames = [
            Pkt { msg_count: 120, records: jumbo.clone(), ..Pkt::default() }.bytes(),
            Pkt { vlan: Some(9), msg_count: 120, records: jumbo.clone(), eth_padding: 5, ..Pkt::default() }.bytes(),
            Pkt { msg_count: 121, records: jumbo.clone(), ..Pkt::default() }.bytes(), // truncated
            Pkt { msg_count: 120, records: jumbo, extra_payload: vec![1], ..Pkt::default() }.bytes(),
            Pkt { ip_total_len_delta: 1, ..Pkt::default() }.bytes(),
            Pkt::default().bytes()[..30].to_vec(),
        ];
        assert!(frames[0].len() > 4000, "a jumbo frame: {} bytes", frames[0].len());
        let cfg = ParseConfig::default();
        for frame in &frames {
            let whole = classify(frame, NicChecksum::UNKNOWN, &cfg);
            for segs in splits(frame) {
                assert_eq!(classify_segments(&segs, NicChecksum::UNKNOWN, &cfg), whole, "split {:?}", lens(&segs));
            }
        }
        assert!(matches!(
            classify_segments(&[&frames[0][..100], &frames[0][100..]], NicChecksum::UNKNOWN, &cfg),
            Ok(Accepted::Tachyon(FrameInfo { msg_count: 120, .. }))
        ));
        // The first segment alone is what the old parser saw: not a frame.
        assert_eq!(classify(&frames[0][..2048], NicChecksum::UNKNOWN, &cfg), Err(DropReason::IpMalformed));
    }

    fn lens(segs: &[&[u8]]) -> Vec<usize> {
        segs.iter().map(|s| s.len()).collect()
    }

    #[test]
    fn a_preallocated_linearizer_never_grows_and_ignores_bytes_past_any_ip_packet() {
        let mut lin = Linearizer::preallocated();
        let capacity = lin.buf.capacity();
        let frame = Pkt { msg_count: 1, records: vec![vec![7; 1000]], ..Pkt::default() }.bytes();
        let padding = vec![0u8; MAX_CLASSIFIED_FRAME];
        let expected = classify(&frame, NicChecksum::UNKNOWN, &ParseConfig::default());
        assert!(expected.is_ok());
        // A chain longer than any IPv4 packet: the tail is padding.
        let got = lin.classify([&frame[..], &padding[..], &padding[..]], NicChecksum::UNKNOWN, &ParseConfig::default());
        assert_eq!(got, expected);
        assert_eq!(lin.buf.len(), MAX_CLASSIFIED_FRAME);
        assert_eq!(lin.buf.capacity(), capacity, "gathering reallocated");
        assert_eq!(classify_segments(&[], NicChecksum::UNKNOWN, &ParseConfig::default()), Err(DropReason::NotIpv4));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Every prefix of a valid frame, and every single-byte corruption of it,
        // classifies without panicking, and to an outcome that fits: a strict
        // prefix is dropped for a parser reason; a corruption is dropped for a
        // parser reason or accepted as a Tachyon frame (never as other traffic,
        // which this config drops), and the same frame when only a MAC changed.
        let cfg = ParseConfig::default();
        let good = Pkt { vlan: Some(1), msg_count: 2, records: vec![vec![1; 3], vec![2; 4]], ..Pkt::default() }.bytes();
        let Ok(Accepted::Tachyon(frame)) = classify(&good, NicChecksum::UNKNOWN, &cfg) else {
            panic!("the frame itself is accepted");
        };
        let parser_reason = |r: DropReason| r.index() < DropReason::RuleDrop.index();
        for n in 0..good.len() {
            match classify(&good[..n], NicChecksum::UNKNOWN, &cfg) {
                Err(r) => assert!(parser_reason(r), "{n}-byte prefix dropped as {r}"),
                Ok(a) => panic!("{n}-byte prefix of a {}-byte frame accepted: {a:?}", good.len()),
            }
        }
        let (mut dropped, mut accepted) = (0, 0);
        for i in 0..good.len() {
            for v in [0u8, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                match classify(&b, NicChecksum::UNKNOWN, &cfg) {
                    Err(r) => {
                        assert!(parser_reason(r), "byte {i} = {v:#x} dropped as {r}");
                        dropped += 1;
                    }
                    Ok(Accepted::Tachyon(f)) => {
                        assert!(i >= 12 || f == frame, "a MAC byte changed the frame: {f:?}");
                        accepted += 1;
                    }
                    Ok(Accepted::Other) => panic!("byte {i} = {v:#x} forwarded as other traffic"),
                }
            }
        }
        assert!(accepted >= 12 * 3, "every MAC corruption is accepted: {accepted}");
        assert!(dropped > 0, "some corruption is dropped");
    }
}
