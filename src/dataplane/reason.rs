//! Why a packet was not forwarded. One reason per dropped packet, in the
//! order of PROTOCOL.md's table; the names are stable (metrics labels, stats
//! JSON, tests).

/// Every reason the appliance counts a dropped packet under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DropReason {
    NotIpv4 = 0,
    IpMalformed,
    IpChecksum,
    IpFragment,
    NotUdp,
    UdpMalformed,
    NotTachyon,
    BadMagic,
    BadVersion,
    BadHeader,
    Truncated,
    TrailingBytes,
    RuleDrop,
    TopicLimited,
    SenderLimited,
    NoRoute,
    TxFull,
}

impl DropReason {
    /// Number of reasons; sizes per-reason counter arrays.
    pub const COUNT: usize = 17;

    /// All reasons in PROTOCOL.md order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::NotIpv4,
        DropReason::IpMalformed,
        DropReason::IpChecksum,
        DropReason::IpFragment,
        DropReason::NotUdp,
        DropReason::UdpMalformed,
        DropReason::NotTachyon,
        DropReason::BadMagic,
        DropReason::BadVersion,
        DropReason::BadHeader,
        DropReason::Truncated,
        DropReason::TrailingBytes,
        DropReason::RuleDrop,
        DropReason::TopicLimited,
        DropReason::SenderLimited,
        DropReason::NoRoute,
        DropReason::TxFull,
    ];

    /// The stable name from PROTOCOL.md.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::NotIpv4 => "not_ipv4",
            DropReason::IpMalformed => "ip_malformed",
            DropReason::IpChecksum => "ip_checksum",
            DropReason::IpFragment => "ip_fragment",
            DropReason::NotUdp => "not_udp",
            DropReason::UdpMalformed => "udp_malformed",
            DropReason::NotTachyon => "not_tachyon",
            DropReason::BadMagic => "bad_magic",
            DropReason::BadVersion => "bad_version",
            DropReason::BadHeader => "bad_header",
            DropReason::Truncated => "truncated",
            DropReason::TrailingBytes => "trailing_bytes",
            DropReason::RuleDrop => "rule_drop",
            DropReason::TopicLimited => "topic_limited",
            DropReason::SenderLimited => "sender_limited",
            DropReason::NoRoute => "no_route",
            DropReason::TxFull => "tx_full",
        }
    }

    /// Parses a PROTOCOL.md name back into a reason.
    pub fn from_name(name: &str) -> Option<DropReason> {
        Self::ALL.iter().copied().find(|r| r.name() == name)
    }

    /// Index into per-reason counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_indices_follow_protocol_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(DropReason::from_name(r.name()), Some(*r));
        }
        assert_eq!(DropReason::from_name("nonsense"), None);
    }
}
