//! Test-only reading of PROTOCOL.md's checks, written straight from the
//! table and kept independent of the builder and of the appliance's views
//! (it shares only `wire`'s constants and offsets), so the builder's tests
//! do not grade their own homework.

use crate::dataplane::reason::DropReason;
use crate::wire::{Layout, ethernet, ipv4, tachyon, udp};

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
    let ip = match ip_header(frame) {
        Ok(ip) => ip,
        Err(reason) => return Some(reason),
    };
    if ip.len() < ipv4::MIN_HEADER_LEN {
        return Some(IpMalformed);
    }
    let ihl = usize::from(ip[ipv4::field::VERSION_IHL] & 0x0f) * 4;
    let total = be16(ip, ipv4::field::TOTAL_LEN);
    if ip[ipv4::field::VERSION_IHL] >> 4 != ipv4::VERSION
        || ihl < ipv4::MIN_HEADER_LEN
        || total < ihl
        || total > ip.len()
    {
        return Some(IpMalformed);
    }
    if !ipv4::header_verifies(&ip[..ihl]) {
        return Some(IpChecksum);
    }
    if be16(ip, ipv4::field::FLAGS_FRAGMENT) & usize::from(ipv4::FLAG_MF | ipv4::FRAG_OFFSET_MASK) != 0 {
        return Some(IpFragment);
    }
    if ip[ipv4::field::PROTOCOL] != ipv4::PROTO_UDP {
        return Some(NotUdp);
    }
    let dgram = &ip[ihl..total];
    let udp_len = |d: &[u8]| be16(d, udp::field::LEN);
    if dgram.len() < udp::HEADER_LEN || udp_len(dgram) < udp::HEADER_LEN || udp_len(dgram) != dgram.len() {
        return Some(UdpMalformed);
    }
    if be16(dgram, udp::field::DST_PORT) != usize::from(tachyon_port) {
        return Some(NotTachyon);
    }
    tachyon_failure(&dgram[udp::HEADER_LEN..])
}

/// The IPv4 header on, after an optional VLAN tag, or `not_ipv4`.
fn ip_header(frame: &[u8]) -> Result<&[u8], DropReason> {
    let untagged = Layout::new(false).l3;
    if frame.len() < untagged {
        return Err(DropReason::NotIpv4);
    }
    let mut l3 = untagged;
    let mut ethertype = be16(frame, ethernet::field::ETHERTYPE);
    if ethertype == usize::from(ethernet::ETHERTYPE_VLAN) {
        l3 = Layout::new(true).l3;
        if frame.len() < l3 {
            return Err(DropReason::NotIpv4);
        }
        ethertype = be16(frame, ethernet::field::INNER_ETHERTYPE);
    }
    if ethertype != usize::from(ethernet::ETHERTYPE_IPV4) {
        return Err(DropReason::NotIpv4);
    }
    Ok(&frame[l3..])
}

/// The first Tachyon-level check `payload` (the UDP payload) fails.
fn tachyon_failure(payload: &[u8]) -> Option<DropReason> {
    use DropReason::*;
    use tachyon::field;
    if payload.len() < tachyon::HEADER_LEN || payload[field::MAGIC..field::MAGIC + 2] != tachyon::MAGIC {
        return Some(BadMagic);
    }
    if payload[field::VERSION] != tachyon::VERSION {
        return Some(BadVersion);
    }
    let msg_count = le16(payload, field::MSG_COUNT);
    if payload[field::FLAGS] & tachyon::RESERVED_FLAGS != 0 || le16(payload, field::RESERVED) != 0 || msg_count == 0 {
        return Some(BadHeader);
    }
    let mut cursor = tachyon::HEADER_LEN;
    for _ in 0..msg_count {
        if cursor + tachyon::RECORD_LEN_PREFIX > payload.len() {
            return Some(Truncated);
        }
        cursor += tachyon::RECORD_LEN_PREFIX + le16(payload, cursor);
        if cursor > payload.len() {
            return Some(Truncated);
        }
    }
    if cursor != payload.len() {
        return Some(TrailingBytes);
    }
    None
}
