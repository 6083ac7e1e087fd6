//! IPv4 header view and writer.

use std::net::Ipv4Addr;

use super::{be16, ethernet};

pub const MIN_HEADER_LEN: usize = 20;
/// Largest total length the 16-bit field can state.
pub const MAX_TOTAL_LEN: usize = u16::MAX as usize;
pub const VERSION: u8 = 4;
/// First byte of a header without options: version 4, IHL 5 (20 bytes).
pub const VERSION_IHL_NO_OPTIONS: u8 = VERSION << 4 | (MIN_HEADER_LEN / 4) as u8;
pub const PROTO_UDP: u8 = 17;
/// More fragments, in the flags/fragment-offset field.
pub const FLAG_MF: u16 = 0x2000;
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;
/// TTL of the headers we write.
pub const DEFAULT_TTL: u8 = 64;

/// Byte offsets inside the IPv4 header.
pub mod field {
    pub const VERSION_IHL: usize = 0;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAGMENT: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// The little-endian u32 starting at the EtherType just before the IPv4 header (the EtherType,
/// then version/IHL and one byte of DSCP/ECN) as a fast path sees it in a
/// header without options, and the mask of the bytes that must match.
pub const ETHERTYPE_VERSION_IHL_WORD: u32 = {
    let [hi, lo] = ethernet::ETHERTYPE_IPV4.to_be_bytes();
    u32::from_le_bytes([hi, lo, VERSION_IHL_NO_OPTIONS, 0])
};
pub const ETHERTYPE_VERSION_IHL_MASK: u32 = u32::from_le_bytes([0xff, 0xff, 0xff, 0]);

/// The little-endian u32 at [`field::FLAGS_FRAGMENT`] (flags/offset, TTL,
/// protocol) of an unfragmented UDP packet, and the mask that ignores DF
/// and the TTL.
pub const UNFRAGMENTED_UDP_WORD: u32 = u32::from_le_bytes([0, 0, 0, PROTO_UDP]);
pub const UNFRAGMENTED_UDP_MASK: u32 = {
    let [hi, lo] = (FLAG_MF | FRAG_OFFSET_MASK).to_be_bytes();
    u32::from_le_bytes([hi, lo, 0, 0xff])
};

/// Why an IPv4 header is unusable (mapped to `ip_malformed`).
#[derive(Debug, PartialEq, Eq)]
pub enum Ipv4Error {
    Short,
    Version,
    Ihl,
    TotalLength,
}

/// View over an IPv4 header whose version, IHL and total length have been
/// checked against the bytes present.
pub struct Ipv4Header<'a> {
    buf: &'a [u8],
    header_len: usize,
    total_len: usize,
}

impl<'a> Ipv4Header<'a> {
    #[inline(always)]
    pub fn parse(buf: &'a [u8]) -> Result<Self, Ipv4Error> {
        if buf.len() < MIN_HEADER_LEN {
            return Err(Ipv4Error::Short);
        }
        if buf[field::VERSION_IHL] >> 4 != VERSION {
            return Err(Ipv4Error::Version);
        }
        let header_len = ((buf[field::VERSION_IHL] & 0x0f) as usize) * 4;
        if header_len < MIN_HEADER_LEN || header_len > buf.len() {
            return Err(Ipv4Error::Ihl);
        }
        let total_len = be16(buf, field::TOTAL_LEN) as usize;
        if total_len < header_len || total_len > buf.len() {
            return Err(Ipv4Error::TotalLength);
        }
        Ok(Ipv4Header { buf, header_len, total_len })
    }

    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Length from the IP header on, as the header states it (frames may
    /// carry Ethernet padding past this).
    pub fn total_len(&self) -> usize {
        self.total_len
    }

    /// Whether the header checksum sums to 0xffff (RFC 1071).
    #[inline(always)]
    pub fn checksum_ok(&self) -> bool {
        checksum(&self.buf[..self.header_len]) == 0
    }

    /// More-fragments set or a non-zero offset.
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        let f = be16(self.buf, field::FLAGS_FRAGMENT);
        f & FLAG_MF != 0 || f & FRAG_OFFSET_MASK != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buf[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buf[field::PROTOCOL]
    }

    /// Source address in host order.
    pub fn src(&self) -> u32 {
        u32::from_be_bytes(self.buf[field::SRC..field::SRC + 4].try_into().unwrap())
    }

    pub fn dst(&self) -> u32 {
        u32::from_be_bytes(self.buf[field::DST..field::DST + 4].try_into().unwrap())
    }

    /// Bytes after the header, bounded by the total length.
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len..self.total_len]
    }
}

/// The fields of an option-less, unfragmented IPv4 header as values, to
/// write one; identification and DSCP/ECN are written as 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    /// Bytes after the header; the total length is this plus 20.
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// Reads back what a view shows, for round trips.
    pub fn parse(header: &Ipv4Header<'_>) -> Ipv4Repr {
        Ipv4Repr {
            src: Ipv4Addr::from(header.src()),
            dst: Ipv4Addr::from(header.dst()),
            protocol: header.protocol(),
            ttl: header.ttl(),
            payload_len: header.total_len() - header.header_len(),
        }
    }

    pub const fn buffer_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// Writes the header, checksum included, at the start of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than 20 bytes or the total length exceeds 65535.
    pub fn emit(&self, buf: &mut [u8]) {
        let total = u16::try_from(MIN_HEADER_LEN + self.payload_len).expect("IPv4 total length above 65535");
        let h = &mut buf[..MIN_HEADER_LEN];
        h.fill(0);
        h[field::VERSION_IHL] = VERSION_IHL_NO_OPTIONS;
        h[field::TOTAL_LEN..field::TOTAL_LEN + 2].copy_from_slice(&total.to_be_bytes());
        h[field::TTL] = self.ttl;
        h[field::PROTOCOL] = self.protocol;
        h[field::SRC..field::SRC + 4].copy_from_slice(&self.src.octets());
        h[field::DST..field::DST + 4].copy_from_slice(&self.dst.octets());
        fill_checksum(h);
    }
}

/// The Internet checksum of `bytes` (0 when a header including its checksum is valid).
#[inline(always)]
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The checksum `header` should carry, computed as if its checksum field
/// were zero, so it can be asked of a header that already holds one.
pub fn header_checksum(header: &[u8]) -> u16 {
    let c = field::CHECKSUM;
    // Summing the two sides of the field and folding is the sum with it zeroed.
    let sum = u32::from(!checksum(&header[..c])) + u32::from(!checksum(&header[c + 2..]));
    !(((sum & 0xffff) + (sum >> 16)) as u16)
}

/// Whether a header (checksum field included) sums to all ones.
pub fn header_verifies(header: &[u8]) -> bool {
    checksum(header) == 0
}

/// Writes the right checksum into `header` (a whole IPv4 header).
pub fn fill_checksum(header: &mut [u8]) {
    let value = header_checksum(header);
    header[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-known header (RFC 1071 style example) and its checksum.
    const KNOWN: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
        0x00, 0xc7,
    ];

    #[test]
    fn checksum_matches_a_known_header() {
        assert_eq!(header_checksum(&KNOWN), 0xb861);
        assert!(header_verifies(&KNOWN));
        let mut wrong = KNOWN;
        wrong[11] ^= 1;
        assert!(!header_verifies(&wrong));
        assert_eq!(header_checksum(&wrong), 0xb861, "the field itself is ignored");
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12, 0x34, 0x56]), !(0x1234u16 + 0x5600));
    }

    #[test]
    fn emit_then_parse_round_trips_and_verifies() {
        for i in 0..300u32 {
            let repr = Ipv4Repr {
                src: Ipv4Addr::from(i.wrapping_mul(2_654_435_761)),
                dst: Ipv4Addr::from(!i),
                protocol: PROTO_UDP,
                ttl: DEFAULT_TTL,
                payload_len: (i as usize * 37) % 1500,
            };
            let mut buf = vec![0xee; MIN_HEADER_LEN + repr.payload_len];
            repr.emit(&mut buf);
            let view = Ipv4Header::parse(&buf).unwrap();
            assert!(view.checksum_ok() && header_verifies(&buf[..MIN_HEADER_LEN]), "header {i}");
            assert!(!view.is_fragment());
            assert_eq!(Ipv4Repr::parse(&view), repr);
        }
    }

    #[test]
    fn fast_path_words_are_the_bytes_they_stand_for() {
        assert_eq!(ETHERTYPE_VERSION_IHL_WORD, 0x0045_0008);
        assert_eq!(ETHERTYPE_VERSION_IHL_MASK, 0x00ff_ffff);
        assert_eq!(UNFRAGMENTED_UDP_WORD, 0x1100_0000);
        assert_eq!(UNFRAGMENTED_UDP_MASK, 0xff00_ff3f);
    }
}
