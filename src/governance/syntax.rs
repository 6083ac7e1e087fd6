//! Parsers for the small textual values of the config: id ranges, MAC
//! addresses and IPv4 prefixes. Each returns a message fit to follow the
//! config key in an error.

use std::net::Ipv4Addr;

/// `"100-199"` (inclusive) or a single `"100"`.
pub fn id_range(text: &str) -> Result<(u32, u32), String> {
    let parse = |s: &str| s.trim().parse::<u32>().map_err(|_| format!("bad id range \"{text}\" (expected FIRST-LAST)"));
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let id = parse(text)?;
            (id, id)
        }
    };
    if first > last {
        return Err(format!("inverted id range \"{text}\""));
    }
    Ok((first, last))
}

/// `"02:00:00:00:00:01"`.
pub fn mac(text: &str) -> Result<[u8; 6], String> {
    let bad = || format!("bad MAC \"{text}\"");
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut out {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(out)
}

/// `"10.0.0.0/8"` or a single address (`/32`), as (network in host order,
/// prefix length). Host bits must be zero, so a typo cannot silently widen
/// or narrow the match.
pub fn ipv4_prefix(text: &str) -> Result<(u32, u8), String> {
    let bad = || format!("bad IPv4 prefix \"{text}\" (expected A.B.C.D/LEN)");
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad())?),
        None => (text, 32),
    };
    if len > 32 {
        return Err(bad());
    }
    let net = u32::from(addr.parse::<Ipv4Addr>().map_err(|_| bad())?);
    let host_bits = if len == 0 { u32::MAX } else { !(u32::MAX << (32 - u32::from(len))) };
    if net & host_bits != 0 {
        return Err(format!("IPv4 prefix \"{text}\" has host bits set"));
    }
    Ok((net, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_ranges() {
        assert_eq!(id_range("100-199"), Ok((100, 199)));
        assert_eq!(id_range(" 5 - 5 "), Ok((5, 5)));
        assert_eq!(id_range("42"), Ok((42, 42)));
        assert_eq!(id_range("0-4294967295"), Ok((0, u32::MAX)));
        assert_eq!(id_range("199-100"), Err("inverted id range \"199-100\"".into()));
        assert!(id_range("1-").is_err());
        assert!(id_range("a-b").is_err());
        assert!(id_range("1-4294967296").is_err());
    }

    #[test]
    fn macs() {
        assert_eq!(mac("02:00:00:00:00:01"), Ok([2, 0, 0, 0, 0, 1]));
        assert_eq!(mac("aa:BB:cc:DD:ee:FF"), Ok([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]));
        assert_eq!(mac("zz"), Err("bad MAC \"zz\"".into()));
        assert!(mac("02:00:00:00:00").is_err());
        assert!(mac("02:00:00:00:00:01:02").is_err());
        assert!(mac("2:00:00:00:00:01").is_err());
    }

    #[test]
    fn prefixes() {
        assert_eq!(ipv4_prefix("10.0.0.0/8"), Ok((0x0A00_0000, 8)));
        assert_eq!(ipv4_prefix("192.168.1.7"), Ok((0xC0A8_0107, 32)));
        assert_eq!(ipv4_prefix("0.0.0.0/0"), Ok((0, 0)));
        assert!(ipv4_prefix("10.0.0.1/8").unwrap_err().contains("host bits"));
        assert!(ipv4_prefix("10.0.0.0/33").is_err());
        assert!(ipv4_prefix("10.0.0/8").is_err());
    }
}
