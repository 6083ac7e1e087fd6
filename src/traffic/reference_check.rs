//! Test-only reading of PROTOCOL.md's checks, written straight from the
//! table and kept independent of the builder, so the builder's tests do not
//! grade their own homework. The appliance's real parser lives elsewhere.

use super::checksum::ipv4_header_verifies;
use crate::dataplane::reason::DropReason;

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn le16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// The first check `frame` fails, in table order, or `None` if it would be
/// forwarded as a Tachyon frame (checksum verification on, foreign UDP
/// traffic dropped).
pub fn first_failure(frame: &[u8], tachyon_port: u16) -> Option<DropReason> {
    use DropReason::*;
    if frame.len() < 14 {
        return Some(NotIpv4);
    }
    let mut l3 = 14;
    let mut ethertype = be16(frame, 12);
    if ethertype == 0x8100 {
        if frame.len() < 18 {
            return Some(NotIpv4);
        }
        ethertype = be16(frame, 16);
        l3 = 18;
    }
    if ethertype != 0x0800 {
        return Some(NotIpv4);
    }
    let ip = &frame[l3..];
    if ip.len() < 20 {
        return Some(IpMalformed);
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = be16(ip, 2);
    if ip[0] >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() {
        return Some(IpMalformed);
    }
    if !ipv4_header_verifies(&ip[..ihl]) {
        return Some(IpChecksum);
    }
    if be16(ip, 6) & 0x3fff != 0 {
        return Some(IpFragment);
    }
    if ip[9] != 17 {
        return Some(NotUdp);
    }
    let udp = &ip[ihl..total];
    if udp.len() < 8 || be16(udp, 4) < 8 || be16(udp, 4) != udp.len() {
        return Some(UdpMalformed);
    }
    if be16(udp, 2) != usize::from(tachyon_port) {
        return Some(NotTachyon);
    }
    let payload = &udp[8..];
    if payload.len() < 32 || &payload[..2] != b"TY" {
        return Some(BadMagic);
    }
    if payload[2] != 1 {
        return Some(BadVersion);
    }
    let msg_count = le16(payload, 4);
    if payload[3] & 0xfe != 0 || le16(payload, 6) != 0 || msg_count == 0 {
        return Some(BadHeader);
    }
    let mut cursor = 32;
    for _ in 0..msg_count {
        if cursor + 2 > payload.len() {
            return Some(Truncated);
        }
        cursor += 2 + le16(payload, cursor);
        if cursor > payload.len() {
            return Some(Truncated);
        }
    }
    if cursor != payload.len() {
        return Some(TrailingBytes);
    }
    None
}
