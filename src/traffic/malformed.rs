//! Packets that the parser must drop for one chosen reason. Each starts as
//! a well-formed packet and breaks exactly one thing, keeping every check
//! that PROTOCOL.md runs earlier passing, so the first failure is the
//! intended one. Variants are picked at random so a parser is exercised on
//! every way a reason can arise, not just one byte pattern.

use rand::Rng;
use rand::seq::SliceRandom;

use super::frame::FrameSpec;
use crate::dataplane::reason::DropReason;
use crate::wire::frame::{MAX_UDP_PAYLOAD, refresh_lengths};
use crate::wire::{Layout, ethernet, ipv4, tachyon, udp};

/// The reasons decided by parsing one packet, in PROTOCOL.md order; the
/// others (rules, governance, TX) depend on appliance state, not bytes.
pub const PARSER_REASONS: [DropReason; 12] = first_reasons();

/// The first 12 of PROTOCOL.md's table (not_ipv4 … trailing_bytes) are the parser's.
const fn first_reasons() -> [DropReason; 12] {
    let mut out = [DropReason::NotIpv4; 12];
    let mut i = 0;
    while i < 12 {
        out[i] = DropReason::ALL[i];
        i += 1;
    }
    out
}

/// Whether a packet's bytes alone can earn this reason.
pub fn is_parser_reason(reason: DropReason) -> bool {
    PARSER_REASONS.contains(&reason)
}

/// Room that malformations may add to a packet (longer lengths, appended
/// bytes); `base` must leave this much below the IPv4 size limit.
pub const MALFORM_HEADROOM: usize = 64;

/// A packet built from `base` and broken so that it fails first at
/// `reason`; `None` for reasons that are not decided by parsing.
///
/// `base.dst_port` is taken as the Tachyon port. A base without records
/// gets one empty record first, since a frame with none is itself broken.
///
/// # Panics
/// If `base` cannot be built (see [`FrameSpec::write_into`]) or its UDP
/// payload is within [`MALFORM_HEADROOM`] bytes of the IPv4 limit.
pub fn malformed<R: Rng + ?Sized>(reason: DropReason, base: &FrameSpec, rng: &mut R) -> Option<Vec<u8>> {
    if !is_parser_reason(reason) {
        return None;
    }
    assert!(base.udp_payload_len() + MALFORM_HEADROOM <= MAX_UDP_PAYLOAD, "base packet leaves no room to malform");
    let mut frame = if base.records.is_empty() {
        FrameSpec { records: vec![Vec::new()], ..base.clone() }.build()
    } else {
        base.build()
    };
    let at = base.layout();
    match reason {
        DropReason::NotIpv4 => not_ipv4(&mut frame, at, rng),
        DropReason::IpMalformed => ip_malformed(&mut frame, at, rng),
        DropReason::IpChecksum => ip_checksum(&mut frame, at, rng),
        DropReason::IpFragment => ip_fragment(&mut frame, at, rng),
        DropReason::NotUdp => not_udp(&mut frame, at, rng),
        DropReason::UdpMalformed => udp_malformed(&mut frame, at, rng),
        DropReason::NotTachyon => not_tachyon(&mut frame, at, base.dst_port, rng),
        DropReason::BadMagic => bad_magic(&mut frame, at, rng),
        DropReason::BadVersion => bad_version(&mut frame, at, rng),
        DropReason::BadHeader => bad_header(&mut frame, at, rng),
        DropReason::Truncated => truncated(&mut frame, at, rng),
        DropReason::TrailingBytes => trailing_bytes(&mut frame, at, rng),
        _ => unreachable!("filtered by is_parser_reason"),
    }
    Some(frame)
}

fn read_be16(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

fn write_be16(frame: &mut [u8], at: usize, value: u16) {
    frame[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn read_le16(frame: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([frame[at], frame[at + 1]])
}

fn write_le16(frame: &mut [u8], at: usize, value: u16) {
    frame[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

/// Rewrites the checksum of the IPv4 header at `at.l3` after an edit, so
/// the edit stays the packet's only fault.
fn refresh_ipv4_checksum(frame: &mut [u8], at: Layout) {
    ipv4::fill_checksum(&mut frame[at.l3..at.l4]);
}

/// Cuts or extends the UDP payload to `new_len` bytes (extension is random
/// filler) and keeps the IP and UDP lengths and the IP checksum consistent.
fn resize_udp_payload<R: Rng + ?Sized>(frame: &mut Vec<u8>, at: Layout, new_len: usize, rng: &mut R) {
    let old_end = frame.len();
    frame.resize(at.payload + new_len, 0);
    if frame.len() > old_end {
        rng.fill(&mut frame[old_end..]);
    }
    refresh_lengths(frame, at);
}

/// Wrong EtherType after the optional tag, or an Ethernet header cut short.
fn not_ipv4<R: Rng + ?Sized>(frame: &mut Vec<u8>, at: Layout, rng: &mut R) {
    if rng.gen_bool(0.25) {
        frame.truncate(rng.gen_range(1..at.l3));
        return;
    }
    const WELL_KNOWN: [u16; 4] = [0x86dd, 0x0806, 0x88cc, 0x8847];
    let ethertype = if rng.gen_bool(0.5) {
        *WELL_KNOWN.choose(rng).expect("non-empty")
    } else {
        // Any other value, but not one a parser could take for a tag.
        loop {
            let candidate: u16 = rng.gen_range(0..=u16::MAX);
            if ![ethernet::ETHERTYPE_IPV4, ethernet::ETHERTYPE_VLAN, 0x88a8, 0x9100].contains(&candidate) {
                break candidate;
            }
        }
    };
    write_be16(frame, at.l3 - ethernet::ETHERTYPE_LEN, ethertype);
}

/// Version not 4, IHL below 5, or a total length that is shorter than the
/// header or longer than what arrived.
fn ip_malformed<R: Rng + ?Sized>(frame: &mut [u8], at: Layout, rng: &mut R) {
    let received = (frame.len() - at.l3) as u16;
    match rng.gen_range(0..4) {
        0 => {
            let version = loop {
                let v: u8 = rng.gen_range(0..16);
                if v != ipv4::VERSION {
                    break v;
                }
            };
            let ihl = ipv4::VERSION_IHL_NO_OPTIONS & 0x0f;
            frame[at.l3 + ipv4::field::VERSION_IHL] = (version << 4) | ihl;
        }
        1 => frame[at.l3 + ipv4::field::VERSION_IHL] = ipv4::VERSION << 4 | rng.gen_range(0..5u8),
        2 => write_be16(frame, at.l3 + ipv4::field::TOTAL_LEN, rng.gen_range(0..ipv4::MIN_HEADER_LEN as u16)),
        _ => {
            let excess = rng.gen_range(1..=64u16);
            write_be16(frame, at.l3 + ipv4::field::TOTAL_LEN, received + excess);
        }
    }
    // A correct checksum keeps the fault to the one field.
    refresh_ipv4_checksum(frame, at);
}

/// A checksum that fails both usual ways to verify it (recompute and
/// compare, or sum the header to 0xffff), which differ for 0x0000/0xffff.
fn ip_checksum<R: Rng + ?Sized>(frame: &mut [u8], at: Layout, rng: &mut R) {
    let field = at.l3 + ipv4::field::CHECKSUM;
    let header = at.l3..at.l4;
    let right = ipv4::header_checksum(&frame[header.clone()]);
    loop {
        let wrong = right ^ rng.gen_range(1..=u16::MAX);
        write_be16(frame, field, wrong);
        if !ipv4::header_verifies(&frame[header.clone()]) {
            return;
        }
    }
}

/// More-fragments set, a non-zero offset, or both.
fn ip_fragment<R: Rng + ?Sized>(frame: &mut [u8], at: Layout, rng: &mut R) {
    let offset: u16 = rng.gen_range(1..=ipv4::FRAG_OFFSET_MASK);
    let value = match rng.gen_range(0..3) {
        0 => ipv4::FLAG_MF,
        1 => offset,
        _ => ipv4::FLAG_MF | offset,
    };
    write_be16(frame, at.l3 + ipv4::field::FLAGS_FRAGMENT, value);
    refresh_ipv4_checksum(frame, at);
}

/// Any IP protocol but UDP.
fn not_udp<R: Rng + ?Sized>(frame: &mut [u8], at: Layout, rng: &mut R) {
    let protocol = loop {
        let p: u8 = rng.gen_range(0..=u8::MAX);
        if p != ipv4::PROTO_UDP {
            break p;
        }
    };
    frame[at.l3 + ipv4::field::PROTOCOL] = protocol;
    refresh_ipv4_checksum(frame, at);
}

/// UDP length below 8, or above or below what the IP total length leaves.
fn udp_malformed<R: Rng + ?Sized>(frame: &mut [u8], at: Layout, rng: &mut R) {
    let right = read_be16(frame, at.l4 + udp::field::LEN);
    let wrong = match rng.gen_range(0..3) {
        0 => rng.gen_range(0..udp::HEADER_LEN as u16),
        1 => right + rng.gen_range(1..=64u16),
        _ => rng.gen_range(udp::HEADER_LEN as u16..right),
    };
    write_be16(frame, at.l4 + udp::field::LEN, wrong);
}

/// A well-formed Tachyon frame sent to some other UDP port.
fn not_tachyon<R: Rng + ?Sized>(frame: &mut [u8], at: Layout, tachyon_port: u16, rng: &mut R) {
    let port = loop {
        let p: u16 = rng.gen_range(0..=u16::MAX);
        if p != tachyon_port {
            break p;
        }
    };
    write_be16(frame, at.l4 + udp::field::DST_PORT, port);
}

/// Wrong magic, or a UDP payload shorter than the Tachyon header (whose
/// surviving bytes keep the right magic, so only the length is at fault).
fn bad_magic<R: Rng + ?Sized>(frame: &mut Vec<u8>, at: Layout, rng: &mut R) {
    if rng.gen_bool(0.5) {
        let short = rng.gen_range(0..tachyon::HEADER_LEN);
        resize_udp_payload(frame, at, short, rng);
        return;
    }
    let magic = at.payload + tachyon::field::MAGIC;
    loop {
        rng.fill(&mut frame[magic..magic + 2]);
        if frame[magic..magic + 2] != tachyon::MAGIC {
            return;
        }
    }
}

/// Any version but 1.
fn bad_version<R: Rng + ?Sized>(frame: &mut [u8], at: Layout, rng: &mut R) {
    frame[at.payload + tachyon::field::VERSION] = loop {
        let v: u8 = rng.gen_range(0..=u8::MAX);
        if v != tachyon::VERSION {
            break v;
        }
    };
}

/// A reserved flag bit, a non-zero reserved field, or `msg_count` 0.
fn bad_header<R: Rng + ?Sized>(frame: &mut [u8], at: Layout, rng: &mut R) {
    match rng.gen_range(0..3) {
        0 => {
            // Bits 1-7 are tachyon::RESERVED_FLAGS (checked below).
            let bit = rng.gen_range(1..8);
            frame[at.payload + tachyon::field::FLAGS] |= 1 << bit;
        }
        1 => {
            let reserved = rng.gen_range(1..=u16::MAX);
            write_le16(frame, at.payload + tachyon::field::RESERVED, reserved);
        }
        _ => write_le16(frame, at.payload + tachyon::field::MSG_COUNT, 0),
    }
}

const _: () = assert!(tachyon::RESERVED_FLAGS == 0b1111_1110);

/// Offsets of each record's length field, walking the well-formed frame.
fn record_len_offsets(frame: &[u8], at: Layout) -> Vec<usize> {
    let count = read_le16(frame, at.payload + tachyon::field::MSG_COUNT);
    let mut offsets = Vec::with_capacity(usize::from(count));
    let mut cursor = at.records();
    for _ in 0..count {
        offsets.push(cursor);
        cursor += tachyon::record_len(usize::from(read_le16(frame, cursor)));
    }
    offsets
}

/// A record whose length runs past the end: either one length is inflated,
/// or the packet is cut inside the last record's payload.
fn truncated<R: Rng + ?Sized>(frame: &mut Vec<u8>, at: Layout, rng: &mut R) {
    let offsets = record_len_offsets(frame, at);
    let last = *offsets.last().expect("base has at least one record");
    let last_len = usize::from(read_le16(frame, last));
    if last_len > 0 && rng.gen_bool(0.5) {
        let cut = rng.gen_range(1..=last_len);
        let payload_len = frame.len() - at.payload;
        resize_udp_payload(frame, at, payload_len - cut, rng);
        return;
    }
    let victim = *offsets.choose(rng).expect("base has at least one record");
    let remaining = frame.len() - (victim + tachyon::RECORD_LEN_PREFIX);
    let overrun = rng.gen_range(1..=64);
    write_le16(frame, victim, (remaining + overrun) as u16);
}

/// Bytes after the last record: filler appended, or `msg_count` lowered so
/// the last record is left over.
fn trailing_bytes<R: Rng + ?Sized>(frame: &mut Vec<u8>, at: Layout, rng: &mut R) {
    let count_at = at.payload + tachyon::field::MSG_COUNT;
    let count = read_le16(frame, count_at);
    if count >= 2 && rng.gen_bool(0.5) {
        write_le16(frame, count_at, count - rng.gen_range(1..count));
        return;
    }
    let payload_len = frame.len() - at.payload;
    let extra = rng.gen_range(1..=16);
    resize_udp_payload(frame, at, payload_len + extra, rng);
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::super::reference_check::first_failure;
    use super::*;

    fn bases() -> Vec<FrameSpec> {
        let mut out = Vec::new();
        for vlan in [None, Some(7)] {
            for records in [vec![Vec::new()], vec![b"x".to_vec()], vec![vec![9; 40]; 5]] {
                for timestamp_ns in [None, Some(123)] {
                    out.push(FrameSpec {
                        vlan,
                        records: records.clone(),
                        timestamp_ns,
                        seq: 77,
                        ..FrameSpec::default()
                    });
                }
            }
        }
        out
    }

    #[test]
    fn bases_are_well_formed() {
        for base in bases() {
            assert_eq!(first_failure(&base.build(), base.dst_port), None, "{base:?}");
        }
    }

    /// Every variant of every reason, over tagged and untagged bases of
    /// several shapes, fails first exactly where it was meant to.
    #[test]
    fn each_malformation_fails_first_at_its_reason() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for base in bases() {
            for reason in PARSER_REASONS {
                for _ in 0..200 {
                    let frame = malformed(reason, &base, &mut rng).expect("parser reason");
                    assert_eq!(
                        first_failure(&frame, base.dst_port),
                        Some(reason),
                        "{reason} from {base:?}: {frame:02x?}"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_base_gets_a_record_instead_of_a_second_fault() {
        let base = FrameSpec { records: Vec::new(), ..FrameSpec::default() };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..50 {
            let frame = malformed(DropReason::Truncated, &base, &mut rng).unwrap();
            assert_eq!(first_failure(&frame, base.dst_port), Some(DropReason::Truncated));
        }
    }

    #[test]
    fn state_dependent_reasons_have_no_packet() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for reason in DropReason::ALL {
            let made = malformed(reason, &FrameSpec::default(), &mut rng);
            assert_eq!(made.is_some(), is_parser_reason(reason), "{reason}");
        }
        assert_eq!(&PARSER_REASONS[..], &DropReason::ALL[..12]);
    }

    #[test]
    fn checksum_fault_survives_the_ffff_zero_ambiguity() {
        // Find a header whose right checksum is 0x0000 or 0xffff and make
        // sure the wrong one is not the other spelling of the same value.
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut found = false;
        for i in 0..200_000u32 {
            let base = FrameSpec { src_ip: std::net::Ipv4Addr::from(i), ..FrameSpec::default() };
            let f = base.build();
            let c = base.layout().l3 + ipv4::field::CHECKSUM;
            let sum = u16::from_be_bytes([f[c], f[c + 1]]);
            if sum == 0 || sum == 0xffff {
                found = true;
                for _ in 0..100 {
                    let bad = malformed(DropReason::IpChecksum, &base, &mut rng).unwrap();
                    assert_eq!(first_failure(&bad, base.dst_port), Some(DropReason::IpChecksum));
                }
                break;
            }
        }
        assert!(found, "no header with an all-zero or all-one checksum in range");
    }
}
