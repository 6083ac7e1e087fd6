//! UDP header view.

use super::be16;

pub const HEADER_LEN: usize = 8;

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
        let len = be16(ip_payload, 4) as usize;
        if len < HEADER_LEN || len != ip_payload.len() {
            return None;
        }
        Some(UdpHeader { buf: ip_payload })
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buf, 0)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buf, 2)
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.buf[HEADER_LEN..]
    }
}
