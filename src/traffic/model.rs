//! The seeded traffic model: which topic and sender each frame belongs to,
//! how many records it carries, which flow it rides, and whether it is
//! malformed. One ChaCha8 stream drives every choice in a fixed order, so
//! the same configuration always yields the same bytes.

use std::net::Ipv4Addr;
use std::str::FromStr;

use rand::distributions::Distribution;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::ConfigError;
use super::frame::FrameSpec;
use super::malformed::{MALFORM_HEADROOM, malformed};
use super::mix::{KindQuota, MalformedMix};
use super::zipf::Zipf;
use crate::dataplane::reason::DropReason;
use crate::wire::frame::MAX_UDP_PAYLOAD;
use crate::wire::tachyon::{self, DEFAULT_UDP_PORT};

/// How often each topic (or sender) is picked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Popularity {
    Uniform,
    /// The lowest id is the hottest; weight of the k-th id is 1/k^s.
    Zipf {
        s: f64,
    },
}

/// An inclusive range of counts or sizes; a single number is `n..=n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountRange {
    pub min: u32,
    pub max: u32,
}

impl CountRange {
    pub const fn fixed(n: u32) -> CountRange {
        CountRange { min: n, max: n }
    }

    /// A uniform draw from the range; draws nothing when it is one value,
    /// so a fixed range does not shift the random stream.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        if self.min == self.max { self.min } else { rng.gen_range(self.min..=self.max) }
    }
}

/// `N` or `MIN-MAX`.
impl FromStr for CountRange {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<CountRange, ConfigError> {
        let number = |t: &str| t.trim().parse::<u32>().map_err(|_| ConfigError(format!("not a count: {t:?}")));
        let range = match text.split_once('-') {
            Some((min, max)) => CountRange { min: number(min)?, max: number(max)? },
            None => CountRange::fixed(number(text)?),
        };
        if range.min > range.max {
            return Err(ConfigError(format!("range {text:?} is empty")));
        }
        Ok(range)
    }
}

/// Everything that shapes a run. `Default` gives a small, valid model.
#[derive(Clone, Debug, PartialEq)]
pub struct TrafficConfig {
    pub topics: u32,
    /// topic_id of the first topic; ids run on from it.
    pub first_topic_id: u32,
    pub topic_popularity: Popularity,
    pub senders: u32,
    /// sender_id of the first sender; ids run on from it.
    pub first_sender_id: u32,
    pub sender_popularity: Popularity,
    /// Records per frame (msg_count), at least 1.
    pub records: CountRange,
    /// Payload bytes per record.
    pub payload: CountRange,
    pub malformed: MalformedMix,
    /// 802.1Q VLAN id on every packet, or untagged.
    pub vlan: Option<u16>,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// First source address; `src_ips` consecutive addresses are used.
    pub src_ip: Ipv4Addr,
    pub src_ips: u32,
    /// First UDP source port; `src_ports` consecutive ports are used.
    pub src_port: u16,
    pub src_ports: u32,
    /// Each sender always uses one flow (address, port), like a real
    /// publisher host; otherwise every frame picks a flow at random.
    pub sticky_flows: bool,
    pub dst_ip: Ipv4Addr,
    /// The Tachyon UDP destination port.
    pub udp_port: u16,
    /// Set TS_PRESENT and write each frame's send time.
    pub timestamps: bool,
    /// Send time of the first frame; later frames follow every `gap_ns`.
    pub start_ns: u64,
    pub gap_ns: u64,
    pub seed: u64,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        let frame = FrameSpec::default();
        TrafficConfig {
            topics: 16,
            first_topic_id: 1,
            topic_popularity: Popularity::Uniform,
            senders: 4,
            first_sender_id: 1,
            sender_popularity: Popularity::Uniform,
            records: CountRange::fixed(1),
            payload: CountRange::fixed(64),
            malformed: MalformedMix::none(),
            vlan: None,
            src_mac: frame.src_mac,
            dst_mac: frame.dst_mac,
            src_ip: frame.src_ip,
            src_ips: 1,
            src_port: frame.src_port,
            src_ports: 1,
            sticky_flows: false,
            dst_ip: frame.dst_ip,
            udp_port: DEFAULT_UDP_PORT,
            timestamps: false,
            // 2023-11-14T22:13:20Z: a fixed instant keeps output reproducible.
            start_ns: 1_700_000_000_000_000_000,
            gap_ns: 1_000,
            seed: 1,
        }
    }
}

/// Largest id-space size accepted for senders, which keep a sequence
/// counter each.
pub const MAX_SENDERS: u32 = 1 << 24;

impl TrafficConfig {
    /// Largest UDP payload this model can produce.
    pub fn max_udp_payload(&self) -> usize {
        tachyon::HEADER_LEN + self.records.max as usize * tachyon::record_len(self.payload.max as usize)
    }

    /// Checks every limit up front so generation itself cannot fail.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: String| Err(ConfigError(msg));
        if self.topics == 0 || self.senders == 0 {
            return fail("topics and senders must be at least 1".into());
        }
        if self.senders > MAX_SENDERS {
            return fail(format!("at most {MAX_SENDERS} senders"));
        }
        if self.first_topic_id.checked_add(self.topics - 1).is_none()
            || self.first_sender_id.checked_add(self.senders - 1).is_none()
        {
            return fail("topic or sender ids run past u32::MAX".into());
        }
        for (what, popularity, n) in
            [("topics", self.topic_popularity, self.topics), ("senders", self.sender_popularity, self.senders)]
        {
            if let Popularity::Zipf { s } = popularity
                && Zipf::new(n as usize, s).is_none()
            {
                return fail(format!("zipf over {n} {what} with s={s}: need s > 0 and at most {} ids", Zipf::MAX_N));
            }
        }
        if self.records.min == 0 || self.records.max > u32::from(u16::MAX) {
            return fail("records per frame must be within 1..=65535".into());
        }
        if self.payload.max > u32::from(u16::MAX) {
            return fail("a record payload is at most 65535 bytes".into());
        }
        let limit = MAX_UDP_PAYLOAD - MALFORM_HEADROOM;
        if self.max_udp_payload() > limit {
            return fail(format!(
                "largest frame would carry a {}-byte UDP payload; at most {limit} fit",
                self.max_udp_payload()
            ));
        }
        if self.vlan.is_some_and(|v| v > crate::wire::ethernet::VLAN_ID_MASK) {
            return fail("VLAN id must be within 0..=4095".into());
        }
        if self.src_ips == 0 || self.src_ports == 0 {
            return fail("src-ips and src-ports must be at least 1".into());
        }
        if u32::from(self.src_port) + (self.src_ports - 1) > u32::from(u16::MAX) {
            return fail("source ports run past 65535".into());
        }
        Ok(())
    }
}

/// What one generated packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    Valid {
        topic_id: u32,
        sender_id: u32,
        seq: u64,
        msg_count: u16,
    },
    /// Built to fail first at this reason.
    Malformed(DropReason),
}

/// One generated packet's facts; its bytes went to the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generated {
    pub kind: FrameKind,
    /// Send time (also the timestamp_ns written when timestamps are on).
    pub time_ns: u64,
}

/// Picks an index in 0..n by the configured popularity.
#[derive(Clone, Debug)]
enum IndexPicker {
    Uniform(u32),
    Zipf(Zipf),
}

impl IndexPicker {
    fn new(n: u32, popularity: Popularity) -> IndexPicker {
        match popularity {
            Popularity::Uniform => IndexPicker::Uniform(n),
            Popularity::Zipf { s } => IndexPicker::Zipf(Zipf::new(n as usize, s).expect("validated")),
        }
    }

    fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        match self {
            IndexPicker::Uniform(n) => rng.gen_range(0..*n),
            IndexPicker::Zipf(z) => z.sample(rng) as u32,
        }
    }
}

/// Payload of the message with sequence number `msg_seq`: its seq in
/// little-endian (as much as fits), then bytes counting up from its low
/// byte. Receivers can check any record without knowing the run.
pub fn fill_payload(msg_seq: u64, len: usize, out: &mut Vec<u8>) {
    out.clear();
    let seq_bytes = msg_seq.to_le_bytes();
    out.extend_from_slice(&seq_bytes[..len.min(seq_bytes.len())]);
    let low = msg_seq as u8;
    out.extend((seq_bytes.len()..len).map(|i| low.wrapping_add(i as u8)));
}

/// Yields a fixed number of packets from a [`TrafficConfig`].
pub struct TrafficGenerator {
    config: TrafficConfig,
    rng: ChaCha8Rng,
    kinds: KindQuota,
    topics: IndexPicker,
    senders: IndexPicker,
    /// Next sequence number per sender index; only valid frames advance it,
    /// so a subscriber sees gap-free sequences.
    next_seq: Vec<u64>,
    /// Reused between frames so steady-state generation does not allocate.
    spec: FrameSpec,
    index: u64,
}

impl TrafficGenerator {
    /// A generator of exactly `frames` packets, with malformed quotas
    /// computed over that many. For an unbounded stream pass `u64::MAX`.
    pub fn new(config: TrafficConfig, frames: u64) -> Result<TrafficGenerator, ConfigError> {
        config.validate()?;
        let spec = FrameSpec {
            src_mac: config.src_mac,
            dst_mac: config.dst_mac,
            vlan: config.vlan,
            dst_ip: config.dst_ip,
            dst_port: config.udp_port,
            records: Vec::new(),
            ..FrameSpec::default()
        };
        Ok(TrafficGenerator {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            kinds: KindQuota::new(&config.malformed, frames),
            topics: IndexPicker::new(config.topics, config.topic_popularity),
            senders: IndexPicker::new(config.senders, config.sender_popularity),
            next_seq: vec![0; config.senders as usize],
            spec,
            index: 0,
            config,
        })
    }

    pub fn config(&self) -> &TrafficConfig {
        &self.config
    }

    /// Packets still to come.
    pub fn remaining(&self) -> u64 {
        self.kinds.frames_left()
    }

    /// Writes the next packet into `out` (replacing its contents) and says
    /// what it is; `None` when the run is complete.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> Option<Generated> {
        if self.kinds.frames_left() == 0 {
            return None;
        }
        let fate = self.kinds.draw(&mut self.rng);
        let topic = self.topics.pick(&mut self.rng);
        let sender = self.senders.pick(&mut self.rng);
        let msg_count = self.config.records.sample(&mut self.rng) as u16;
        let flows = u64::from(self.config.src_ips) * u64::from(self.config.src_ports);
        let flow = if self.config.sticky_flows { u64::from(sender) % flows } else { self.rng.gen_range(0..flows) };
        let time_ns = self.config.start_ns.saturating_add(self.index.saturating_mul(self.config.gap_ns));
        self.index += 1;

        let seq = self.next_seq[sender as usize];
        let spec = &mut self.spec;
        spec.topic_id = self.config.first_topic_id + topic;
        spec.sender_id = self.config.first_sender_id + sender;
        spec.seq = seq;
        spec.timestamp_ns = self.config.timestamps.then_some(time_ns);
        let ip_offset = (flow % u64::from(self.config.src_ips)) as u32;
        spec.src_ip = Ipv4Addr::from(u32::from(self.config.src_ip).wrapping_add(ip_offset));
        spec.src_port = self.config.src_port + (flow / u64::from(self.config.src_ips)) as u16;
        spec.records.resize_with(usize::from(msg_count), Vec::new);
        for (i, record) in spec.records.iter_mut().enumerate() {
            let len = self.config.payload.sample(&mut self.rng) as usize;
            fill_payload(seq + i as u64, len, record);
        }

        let kind = match fate {
            None => {
                spec.write_into(out);
                self.next_seq[sender as usize] += u64::from(msg_count);
                FrameKind::Valid { topic_id: spec.topic_id, sender_id: spec.sender_id, seq, msg_count }
            }
            Some(reason) => {
                *out = malformed(reason, spec, &mut self.rng).expect("parser reason");
                FrameKind::Malformed(reason)
            }
        };
        Some(Generated { kind, time_ns })
    }
}

#[cfg(test)]
mod tests {
    use super::super::reference_check::first_failure;
    use super::*;

    fn run(config: TrafficConfig, frames: u64) -> Vec<(Vec<u8>, Generated)> {
        let mut generator = TrafficGenerator::new(config, frames).unwrap();
        let mut out = Vec::new();
        let mut all = Vec::new();
        while let Some(g) = generator.next_into(&mut out) {
            all.push((out.clone(), g));
        }
        all
    }

    #[test]
    fn parses_counts_and_ranges() {
        assert_eq!("3".parse::<CountRange>().unwrap(), CountRange::fixed(3));
        assert_eq!("2-9".parse::<CountRange>().unwrap(), CountRange { min: 2, max: 9 });
        for bad in ["", "x", "9-2", "1-", "-3"] {
            assert!(bad.parse::<CountRange>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_impossible_configs() {
        let ok = TrafficConfig::default();
        assert!(ok.validate().is_ok());
        let bad = [
            TrafficConfig { topics: 0, ..ok.clone() },
            TrafficConfig { records: CountRange::fixed(0), ..ok.clone() },
            TrafficConfig { records: CountRange::fixed(70_000), ..ok.clone() },
            TrafficConfig { payload: CountRange::fixed(65_000), records: CountRange::fixed(2), ..ok.clone() },
            TrafficConfig { vlan: Some(4096), ..ok.clone() },
            TrafficConfig { src_port: 65535, src_ports: 2, ..ok.clone() },
            TrafficConfig { first_topic_id: u32::MAX, topics: 2, ..ok.clone() },
            TrafficConfig { sender_popularity: Popularity::Zipf { s: 0.0 }, ..ok.clone() },
        ];
        for config in bad {
            assert!(TrafficGenerator::new(config.clone(), 1).is_err(), "{config:?}");
        }
    }

    #[test]
    fn payload_carries_its_message_seq() {
        let mut p = Vec::new();
        fill_payload(0x0102, 12, &mut p);
        assert_eq!(p, [2, 1, 0, 0, 0, 0, 0, 0, 10, 11, 12, 13]);
        fill_payload(0x0102, 3, &mut p);
        assert_eq!(p, [2, 1, 0]);
    }

    #[test]
    fn frames_are_what_their_kind_says() {
        let config = TrafficConfig {
            malformed: MalformedMix::spread(0.5).unwrap(),
            records: CountRange { min: 1, max: 4 },
            payload: CountRange { min: 0, max: 20 },
            vlan: Some(3),
            ..TrafficConfig::default()
        };
        let port = config.udp_port;
        let frames = run(config, 600);
        assert_eq!(frames.len(), 600);
        for (bytes, g) in &frames {
            match g.kind {
                FrameKind::Valid { .. } => assert_eq!(first_failure(bytes, port), None),
                FrameKind::Malformed(r) => assert_eq!(first_failure(bytes, port), Some(r)),
            }
        }
    }

    #[test]
    fn sequences_advance_by_msg_count_per_sender() {
        let config = TrafficConfig {
            senders: 3,
            records: CountRange { min: 1, max: 5 },
            malformed: MalformedMix::spread(0.2).unwrap(),
            ..TrafficConfig::default()
        };
        let mut next = std::collections::HashMap::new();
        for (_, g) in run(config, 500) {
            if let FrameKind::Valid { sender_id, seq, msg_count, .. } = g.kind {
                let expected = next.entry(sender_id).or_insert(0u64);
                assert_eq!(seq, *expected);
                *expected += u64::from(msg_count);
            }
        }
        assert_eq!(next.len(), 3);
    }

    #[test]
    fn sticky_flows_pin_each_sender_to_one_source() {
        let config =
            TrafficConfig { senders: 8, src_ips: 3, src_ports: 2, sticky_flows: true, ..TrafficConfig::default() };
        let mut flow_of = std::collections::HashMap::new();
        for (bytes, g) in run(config, 400) {
            let FrameKind::Valid { sender_id, .. } = g.kind else { unreachable!("no malformed share") };
            let at = crate::wire::Layout::new(false);
            let src_ip = at.l3 + crate::wire::ipv4::field::SRC;
            let src_port = at.l4 + crate::wire::udp::field::SRC_PORT;
            let flow = (bytes[src_ip..src_ip + 4].to_vec(), bytes[src_port..src_port + 2].to_vec());
            assert_eq!(flow_of.entry(sender_id).or_insert(flow.clone()), &flow);
        }
        let distinct: std::collections::HashSet<_> = flow_of.values().collect();
        assert_eq!(distinct.len(), 6, "8 senders over 3×2 flows use all six");
    }

    #[test]
    fn same_seed_same_bytes() {
        let config = TrafficConfig {
            malformed: MalformedMix::spread(0.3).unwrap(),
            topic_popularity: Popularity::Zipf { s: 1.1 },
            records: CountRange { min: 1, max: 3 },
            timestamps: true,
            ..TrafficConfig::default()
        };
        let a = run(config.clone(), 300);
        assert_eq!(a, run(config.clone(), 300));
        assert_ne!(a, run(TrafficConfig { seed: 2, ..config }, 300));
    }
}
