//! UDP header view and writer.

use super::be16;

pub const HEADER_LEN: usize = 8;

/// Byte offsets inside the UDP header.
pub mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    /// Follows the destination port, so a fast path can compare both at once.
    pub const LEN: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// View over a UDP datagram whose length field agrees with the IP payload.
pub struct UdpHeader<'a> {
    buf: &'a [u8],
}

impl<'a> UdpHeader<'a> {
    /// `ip_payload` is the IP payload bounded by the IP total length; the UDP
    /// length must be at least 8 and equal to it.
    #[inline(always)]
    pub fn parse(ip_payload: &'a [u8]) -> Option<Self> {
        if ip_payload.len() < HEADER_LEN {
            return None;
        }
        let len = be16(ip_payload, field::LEN) as usize;
        if len < HEADER_LEN || len != ip_payload.len() {
            return None;
        }
        Some(UdpHeader { buf: ip_payload })
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buf, field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buf, field::DST_PORT)
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.buf[HEADER_LEN..]
    }
}

/// The fields of a UDP header as values, to write one. The checksum is
/// written as 0, which IPv4 defines as "none" and the appliance accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    /// Bytes after the header; the length field is this plus 8.
    pub payload_len: usize,
}

impl UdpRepr {
    /// Reads back what a view shows, for round trips.
    pub fn parse(header: &UdpHeader<'_>) -> UdpRepr {
        UdpRepr { src_port: header.src_port(), dst_port: header.dst_port(), payload_len: header.payload().len() }
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header at the start of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than 8 bytes or the length exceeds 65535.
    pub fn emit(&self, buf: &mut [u8]) {
        let len = u16::try_from(HEADER_LEN + self.payload_len).expect("UDP length above 65535");
        let h = &mut buf[..HEADER_LEN];
        h[field::SRC_PORT..field::SRC_PORT + 2].copy_from_slice(&self.src_port.to_be_bytes());
        h[field::DST_PORT..field::DST_PORT + 2].copy_from_slice(&self.dst_port.to_be_bytes());
        h[field::LEN..field::LEN + 2].copy_from_slice(&len.to_be_bytes());
        h[field::CHECKSUM..field::CHECKSUM + 2].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_then_parse_round_trips() {
        for payload_len in [0, 1, 32, 1472] {
            let repr = UdpRepr { src_port: 40000, dst_port: 47000, payload_len };
            let mut buf = vec![0xee; HEADER_LEN + payload_len];
            repr.emit(&mut buf);
            assert_eq!(&buf[field::CHECKSUM..HEADER_LEN], &[0, 0]);
            assert_eq!(UdpRepr::parse(&UdpHeader::parse(&buf).unwrap()), repr);
        }
    }
}
