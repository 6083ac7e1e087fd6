//! IPv4 header view.

use super::be16;

pub const MIN_HEADER_LEN: usize = 20;
pub const PROTO_UDP: u8 = 17;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

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
        if buf[0] >> 4 != 4 {
            return Err(Ipv4Error::Version);
        }
        let header_len = ((buf[0] & 0x0f) as usize) * 4;
        if header_len < MIN_HEADER_LEN || header_len > buf.len() {
            return Err(Ipv4Error::Ihl);
        }
        let total_len = be16(buf, 2) as usize;
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
        let f = be16(self.buf, 6);
        f & FLAG_MF != 0 || f & FRAG_OFFSET_MASK != 0
    }

    pub fn protocol(&self) -> u8 {
        self.buf[9]
    }

    /// Source address in host order.
    pub fn src(&self) -> u32 {
        u32::from_be_bytes(self.buf[12..16].try_into().unwrap())
    }

    pub fn dst(&self) -> u32 {
        u32::from_be_bytes(self.buf[16..20].try_into().unwrap())
    }

    /// Bytes after the header, bounded by the total length.
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len..self.total_len]
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
