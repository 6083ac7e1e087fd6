//! The IPv4 header checksum (RFC 791/1071), kept apart from the builder so
//! malformations that edit the header can restore or break it on purpose.

/// Byte offset of the checksum field inside an IPv4 header.
pub const IPV4_CHECKSUM_OFFSET: usize = 10;

/// Folded ones' complement sum of big-endian 16-bit words; an odd last byte
/// counts as the high byte of a zero-padded word.
fn ones_complement_sum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum an IPv4 header should carry, computed as if its checksum
/// field were zero, so it can be called on a header that already holds one.
pub fn ipv4_header_checksum(header: &[u8]) -> u16 {
    let before = ones_complement_sum(&header[..IPV4_CHECKSUM_OFFSET]);
    let after = ones_complement_sum(&header[IPV4_CHECKSUM_OFFSET + 2..]);
    let mut sum = u32::from(before) + u32::from(after);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether a header verifies the way receivers usually check it: the sum
/// over the whole header, checksum field included, folds to 0xffff.
pub fn ipv4_header_verifies(header: &[u8]) -> bool {
    ones_complement_sum(header) == 0xffff
}

/// Rewrites the checksum of the IPv4 header that starts at `l3` in `frame`,
/// covering the 20-byte base header our builder writes.
pub(crate) fn refresh_ipv4_checksum(frame: &mut [u8], l3: usize) {
    let header = &mut frame[l3..l3 + super::frame::IPV4_HEADER_LEN];
    let checksum = ipv4_header_checksum(header);
    header[IPV4_CHECKSUM_OFFSET..IPV4_CHECKSUM_OFFSET + 2].copy_from_slice(&checksum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example from RFC 1071 section 3, and a well-known header.
    #[test]
    fn matches_known_headers() {
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(ipv4_header_checksum(&header), 0xb861);
        assert!(ipv4_header_verifies(&header));
        let mut wrong = header;
        wrong[11] ^= 1;
        assert!(!ipv4_header_verifies(&wrong));
        assert_eq!(ipv4_header_checksum(&wrong), 0xb861, "field is ignored");
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(ones_complement_sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }
}
