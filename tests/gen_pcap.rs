//! Runs the real `tachyon-gen pcap`, reads the file back and decodes every
//! packet with a decoder written here from PROTOCOL.md alone (not the
//! library's builder), then holds the output to the request and to the
//! summary JSON the generator wrote.

#![deny(unsafe_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output};

use pcap_file::pcap::PcapReader;
use serde_json::Value;

const REASONS: [&str; 12] = [
    "not_ipv4",
    "ip_malformed",
    "ip_checksum",
    "ip_fragment",
    "not_udp",
    "udp_malformed",
    "not_tachyon",
    "bad_magic",
    "bad_version",
    "bad_header",
    "truncated",
    "trailing_bytes",
];

// ---------------------------------------------------------------------------
// An independent decoder: one pass over the bytes, checks in table order.

/// A packet that passed every parser check.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decoded {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    vlan: Option<u16>,
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    ttl: u8,
    src_port: u16,
    flags: u8,
    topic_id: u32,
    sender_id: u32,
    seq: u64,
    timestamp_ns: u64,
    records: Vec<Vec<u8>>,
}

/// Reads fixed-width fields front to back, failing with a reason name.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, short: &'static str) -> Result<&'a [u8], &'static str> {
        let end = self.pos.checked_add(n).ok_or(short)?;
        let out = self.bytes.get(self.pos..end).ok_or(short)?;
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self, short: &'static str) -> Result<u8, &'static str> {
        Ok(self.take(1, short)?[0])
    }
    fn be16(&mut self, short: &'static str) -> Result<u16, &'static str> {
        let b = self.take(2, short)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn le16(&mut self, short: &'static str) -> Result<u16, &'static str> {
        let b = self.take(2, short)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn le32(&mut self, short: &'static str) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4, short)?.try_into().unwrap()))
    }
    fn le64(&mut self, short: &'static str) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take(8, short)?.try_into().unwrap()))
    }
    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }
}

/// RFC 1071: the ones' complement sum of a correct header is all ones.
fn ip_header_sums_to_ones(header: &[u8]) -> bool {
    let mut sum: u64 = header.chunks(2).map(|w| u64::from(w[0]) << 8 | u64::from(*w.get(1).unwrap_or(&0))).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

fn decode(frame: &[u8], tachyon_port: u16) -> Result<Decoded, &'static str> {
    let mut eth = Reader { bytes: frame, pos: 0 };
    let dst_mac: [u8; 6] = eth.take(6, "not_ipv4")?.try_into().unwrap();
    let src_mac: [u8; 6] = eth.take(6, "not_ipv4")?.try_into().unwrap();
    let mut ethertype = eth.be16("not_ipv4")?;
    let mut vlan = None;
    if ethertype == 0x8100 {
        vlan = Some(eth.be16("not_ipv4")? & 0x0fff);
        ethertype = eth.be16("not_ipv4")?;
    }
    if ethertype != 0x0800 {
        return Err("not_ipv4");
    }

    let ip_bytes = eth.rest();
    let mut ip = Reader { bytes: ip_bytes, pos: 0 };
    let version_ihl = ip.u8("ip_malformed")?;
    let header_len = usize::from(version_ihl & 0xf) * 4;
    ip.u8("ip_malformed")?;
    let total_len = usize::from(ip.be16("ip_malformed")?);
    if version_ihl >> 4 != 4 || header_len < 20 || total_len < header_len || total_len > ip_bytes.len() {
        return Err("ip_malformed");
    }
    if !ip_header_sums_to_ones(&ip_bytes[..header_len]) {
        return Err("ip_checksum");
    }
    ip.be16("ip_malformed")?; // identification
    let flags_fragment = ip.be16("ip_malformed")?;
    if flags_fragment & 0x2000 != 0 || flags_fragment & 0x1fff != 0 {
        return Err("ip_fragment");
    }
    let ttl = ip.u8("ip_malformed")?;
    if ip.u8("ip_malformed")? != 17 {
        return Err("not_udp");
    }
    ip.be16("ip_malformed")?; // checksum, verified above
    let src_ip: [u8; 4] = ip.take(4, "ip_malformed")?.try_into().unwrap();
    let dst_ip: [u8; 4] = ip.take(4, "ip_malformed")?.try_into().unwrap();

    let udp_bytes = &ip_bytes[header_len..total_len];
    let mut udp = Reader { bytes: udp_bytes, pos: 0 };
    let src_port = udp.be16("udp_malformed")?;
    let dst_port = udp.be16("udp_malformed")?;
    let udp_len = usize::from(udp.be16("udp_malformed")?);
    udp.be16("udp_malformed")?;
    if udp_len < 8 || udp_len != udp_bytes.len() {
        return Err("udp_malformed");
    }
    if dst_port != tachyon_port {
        return Err("not_tachyon");
    }

    let mut ty = Reader { bytes: udp.rest(), pos: 0 };
    if ty.bytes.len() < 32 || ty.take(2, "bad_magic")? != b"TY" {
        return Err("bad_magic");
    }
    if ty.u8("bad_magic")? != 1 {
        return Err("bad_version");
    }
    let flags = ty.u8("bad_magic")?;
    let msg_count = ty.le16("bad_magic")?;
    let reserved = ty.le16("bad_magic")?;
    if flags & !1 != 0 || reserved != 0 || msg_count == 0 {
        return Err("bad_header");
    }
    let topic_id = ty.le32("bad_magic")?;
    let sender_id = ty.le32("bad_magic")?;
    let seq = ty.le64("bad_magic")?;
    let timestamp_ns = ty.le64("bad_magic")?;
    let mut records = Vec::new();
    for _ in 0..msg_count {
        let len = usize::from(ty.le16("truncated")?);
        records.push(ty.take(len, "truncated")?.to_vec());
    }
    if !ty.rest().is_empty() {
        return Err("trailing_bytes");
    }
    Ok(Decoded {
        dst_mac,
        src_mac,
        vlan,
        src_ip,
        dst_ip,
        ttl,
        src_port,
        flags,
        topic_id,
        sender_id,
        seq,
        timestamp_ns,
        records,
    })
}

// ---------------------------------------------------------------------------
// Running the generator and reading what it wrote.

fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gen_pcap-{name}"))
}

fn run_gen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tachyon-gen")).args(args).output().expect("tachyon-gen runs")
}

/// Runs `tachyon-gen pcap` with `extra` flags; returns the packets (time in
/// ns, bytes) and the parsed summary.
fn generate(name: &str, extra: &[&str]) -> (Vec<(u128, Vec<u8>)>, Value) {
    let pcap = scratch(&format!("{name}.pcap"));
    let json = scratch(&format!("{name}.json"));
    let mut args = vec!["pcap", "--out", pcap.to_str().unwrap(), "--summary-json", json.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run_gen(&args);
    assert!(out.status.success(), "tachyon-gen {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let summary = serde_json::from_reader(File::open(&json).unwrap()).unwrap();
    (read_pcap(&pcap), summary)
}

fn read_pcap(path: &PathBuf) -> Vec<(u128, Vec<u8>)> {
    let mut reader = PcapReader::new(File::open(path).unwrap()).unwrap();
    let mut packets = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        assert_eq!(packet.orig_len as usize, packet.data.len(), "stored whole");
        packets.push((packet.timestamp.as_nanos(), packet.data.into_owned()));
    }
    packets
}

/// Per-id (frames, messages) as the summary JSON states them.
fn summary_counts(summary: &Value, key: &str) -> BTreeMap<u32, (u64, u64)> {
    summary[key]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, c)| (id.parse().unwrap(), (c["frames"].as_u64().unwrap(), c["messages"].as_u64().unwrap())))
        .collect()
}

fn summary_malformed(summary: &Value) -> BTreeMap<String, u64> {
    summary["malformed"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect()
}

/// What the test itself tallies from the decoded packets.
#[derive(Default)]
struct Tally {
    valid: Vec<Decoded>,
    malformed: BTreeMap<String, u64>,
    topics: BTreeMap<u32, (u64, u64)>,
    senders: BTreeMap<u32, (u64, u64)>,
    bytes: u64,
}

fn tally(packets: &[(u128, Vec<u8>)], port: u16) -> Tally {
    let mut t = Tally { malformed: REASONS.iter().map(|r| (r.to_string(), 0)).collect(), ..Tally::default() };
    for (_, bytes) in packets {
        t.bytes += bytes.len() as u64;
        match decode(bytes, port) {
            Ok(d) => {
                let messages = d.records.len() as u64;
                for (map, id) in [(&mut t.topics, d.topic_id), (&mut t.senders, d.sender_id)] {
                    let entry = map.entry(id).or_default();
                    entry.0 += 1;
                    entry.1 += messages;
                }
                t.valid.push(d);
            }
            Err(reason) => *t.malformed.get_mut(reason).unwrap() += 1,
        }
    }
    t
}

/// The summary's totals and tallies equal what the file holds.
fn assert_summary_matches(summary: &Value, packets: &[(u128, Vec<u8>)], t: &Tally) {
    let messages: u64 = t.valid.iter().map(|d| d.records.len() as u64).sum();
    let bad: u64 = t.malformed.values().sum();
    assert_eq!(summary["frames_total"], packets.len() as u64);
    assert_eq!(summary["valid_frames"], t.valid.len() as u64);
    assert_eq!(summary["malformed_frames"], bad);
    assert_eq!(summary["messages"], messages);
    assert_eq!(summary["bytes_total"], t.bytes);
    assert_eq!(summary_counts(summary, "topics"), t.topics);
    assert_eq!(summary_counts(summary, "senders"), t.senders);
    assert_eq!(summary_malformed(summary), t.malformed);
}

/// The payload convention: message seq little-endian, then counting bytes.
fn expected_payload(msg_seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| match i {
            0..8 => msg_seq.to_le_bytes()[i],
            _ => (msg_seq as u8).wrapping_add(i as u8),
        })
        .collect()
}

// ---------------------------------------------------------------------------

#[test]
fn pcap_holds_exactly_what_was_asked_and_summarised() {
    let frames = 3000;
    let (packets, summary) = generate(
        "full",
        &[
            "--frames",
            "3000",
            "--topics",
            "7",
            "--senders",
            "5",
            "--dist",
            "zipf",
            "--zipf-s",
            "1.2",
            "--records",
            "1-6",
            "--payload",
            "0-40",
            "--malformed",
            "0.24",
            "--vlan",
            "100",
            "--src-ips",
            "4",
            "--src-ports",
            "3",
            "--timestamps",
            "--seed",
            "7",
            "--src-mac",
            "02:aa:bb:cc:dd:01",
            "--dst-mac",
            "02:aa:bb:cc:dd:02",
        ],
    );
    assert_eq!(packets.len(), frames);
    let t = tally(&packets, 47000);
    assert_summary_matches(&summary, &packets, &t);

    // 0.24 of 3000 is 720 malformed, 60 for each of the twelve reasons.
    for reason in REASONS {
        assert_eq!(t.malformed[reason], 60, "{reason}");
    }
    assert_eq!(t.valid.len(), 2280);

    let mut next_seq: BTreeMap<u32, u64> = BTreeMap::new();
    let mut flows = std::collections::BTreeSet::new();
    for d in &t.valid {
        assert_eq!(d.vlan, Some(100));
        assert_eq!(d.src_mac, [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01]);
        assert_eq!(d.dst_mac, [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x02]);
        assert_eq!(d.dst_ip, [198, 19, 0, 1]);
        assert_eq!(d.ttl, 64);
        assert!((1..=7).contains(&d.topic_id), "topic {}", d.topic_id);
        assert!((1..=5).contains(&d.sender_id), "sender {}", d.sender_id);
        assert!((1..=6).contains(&d.records.len()));
        assert_eq!(d.flags, 1, "TS_PRESENT");
        let seq = next_seq.entry(d.sender_id).or_insert(0);
        assert_eq!(d.seq, *seq, "sender {} sequence is gap-free", d.sender_id);
        for (i, record) in d.records.iter().enumerate() {
            assert!(record.len() <= 40);
            assert_eq!(record, &expected_payload(d.seq + i as u64, record.len()));
        }
        *seq += d.records.len() as u64;
        let host = d.src_ip[3];
        assert_eq!(d.src_ip[..3], [198, 18, 0]);
        assert!((1..=4).contains(&host) && (40000..=40002).contains(&d.src_port));
        flows.insert((host, d.src_port));
    }
    assert_eq!(flows.len(), 12, "4 addresses × 3 ports all carry traffic");
    assert_eq!(next_seq.len(), 5);

    // Timestamps are send times: one per microsecond, in the pcap too.
    for (i, (pcap_ns, bytes)) in packets.iter().enumerate() {
        let sent = 1_700_000_000_000_000_000u128 + i as u128 * 1000;
        assert_eq!(*pcap_ns, sent);
        if let Ok(d) = decode(bytes, 47000) {
            assert_eq!(u128::from(d.timestamp_ns), sent);
        }
    }

    // Zipf(1.2) over 7 topics: topic 1 is picked 7^1.2 ≈ 10× as often as 7.
    let frames_of = |topic| t.topics.get(&topic).map_or(0, |c| c.0);
    assert!(frames_of(1) > 5 * frames_of(7), "{:?}", t.topics);
    assert!(frames_of(1) > frames_of(2) && frames_of(2) > frames_of(4));
}

#[test]
fn each_reason_alone_decodes_to_that_reason() {
    for (i, reason) in REASONS.iter().enumerate() {
        let share = format!("{reason}=1");
        let vlan = if i % 2 == 0 { "--vlan=9" } else { "--records=1-4" };
        let (packets, summary) =
            generate(&format!("only-{reason}"), &["--frames", "60", "--malformed", &share, vlan, "--seed", "3"]);
        let t = tally(&packets, 47000);
        assert_eq!(t.malformed[*reason], 60, "{reason}: {:?}", t.malformed);
        assert_summary_matches(&summary, &packets, &t);
    }
}

#[test]
fn per_reason_shares_are_exact_and_the_rest_is_valid() {
    let (packets, summary) = generate(
        "shares",
        &["--frames", "1000", "--malformed", "bad_magic=0.1,truncated=0.05,not_ipv4=0.013", "--records", "2-3"],
    );
    let t = tally(&packets, 47000);
    assert_summary_matches(&summary, &packets, &t);
    let mut expected: BTreeMap<String, u64> = REASONS.iter().map(|r| (r.to_string(), 0)).collect();
    expected.insert("bad_magic".into(), 100);
    expected.insert("truncated".into(), 50);
    expected.insert("not_ipv4".into(), 13);
    assert_eq!(t.malformed, expected);
    assert_eq!(t.valid.len(), 837);
    assert!(t.valid.iter().all(|d| (2..=3).contains(&d.records.len())));
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let args = |seed: &'static str| {
        [
            "--frames",
            "500",
            "--malformed",
            "0.2",
            "--dist",
            "zipf",
            "--records",
            "1-4",
            "--src-ips",
            "3",
            "--timestamps",
            "--seed",
            seed,
        ]
    };
    let read = |name: &str| std::fs::read(scratch(&format!("{name}.pcap"))).unwrap();
    let (_, first_summary) = generate("seed-a", &args("11"));
    let (_, again_summary) = generate("seed-b", &args("11"));
    generate("seed-c", &args("12"));
    assert_eq!(read("seed-a"), read("seed-b"), "same seed, same file");
    assert_eq!(first_summary, again_summary);
    assert_ne!(read("seed-a"), read("seed-c"), "another seed, another file");
}

#[test]
fn defaults_are_untagged_uniform_and_on_port_47000() {
    let (packets, summary) =
        generate("defaults", &["--frames", "4000", "--topics", "4", "--senders", "2", "--records", "3"]);
    let t = tally(&packets, 47000);
    assert_summary_matches(&summary, &packets, &t);
    assert_eq!(t.valid.len(), 4000, "no malformed share asked");
    for d in &t.valid {
        assert_eq!(d.vlan, None);
        assert_eq!(d.records.len(), 3);
        assert!(d.records.iter().all(|r| r.len() == 64));
        assert_eq!((d.flags, d.timestamp_ns), (0, 0), "no timestamps asked");
        assert_eq!((d.src_ip, d.src_port), ([198, 18, 0, 1], 40000));
    }
    for topic in 1..=4 {
        let frames = t.topics[&topic].0;
        assert!((850..=1150).contains(&frames), "topic {topic}: {frames}");
    }
    assert_eq!(t.senders.len(), 2);
}

#[test]
fn another_tachyon_port_moves_what_counts_as_foreign() {
    let (packets, summary) =
        generate("port", &["--frames", "300", "--udp-port", "5000", "--malformed", "not_tachyon=0.1"]);
    let t = tally(&packets, 5000);
    assert_summary_matches(&summary, &packets, &t);
    assert_eq!((t.valid.len(), t.malformed["not_tachyon"]), (270, 30));
    // Read with the default port instead, every valid frame is foreign.
    assert_eq!(tally(&packets, 47000).malformed["not_tachyon"], 300);
}

#[test]
fn sticky_flows_keep_each_sender_on_one_flow() {
    let (packets, _) = generate(
        "sticky",
        &["--frames", "400", "--senders", "6", "--src-ips", "2", "--src-ports", "3", "--sticky-flows"],
    );
    let mut flow_of: BTreeMap<u32, ([u8; 4], u16)> = BTreeMap::new();
    for d in tally(&packets, 47000).valid {
        let flow = *flow_of.entry(d.sender_id).or_insert((d.src_ip, d.src_port));
        assert_eq!(flow, (d.src_ip, d.src_port), "sender {}", d.sender_id);
    }
    let distinct: std::collections::BTreeSet<_> = flow_of.values().collect();
    assert_eq!(distinct.len(), 6);
}

#[test]
fn impossible_requests_are_refused_without_output() {
    for (name, bad) in [
        ("share", &["--malformed", "1.5"][..]),
        ("reason", &["--malformed", "bogus=0.1"]),
        ("state-reason", &["--malformed", "tx_full=0.1"]),
        ("records", &["--records", "0"]),
        ("range", &["--records", "5-2"]),
        ("too-big", &["--records", "2", "--payload", "40000"]),
        ("vlan", &["--vlan", "5000"]),
        ("mac", &["--src-mac", "02:00:00"]),
        ("dist", &["--dist", "pareto"]),
        ("topics", &["--topics", "0"]),
    ] {
        let pcap = scratch(&format!("refused-{name}.pcap"));
        let _ = std::fs::remove_file(&pcap);
        let mut args = vec!["pcap", "--frames", "10", "--out", pcap.to_str().unwrap()];
        args.extend_from_slice(bad);
        let out = run_gen(&args);
        assert!(!out.status.success(), "{bad:?} was accepted");
        assert!(!out.stderr.is_empty(), "{bad:?} gave no reason");
        assert!(!pcap.exists(), "{bad:?} still wrote a file");
    }
}

#[test]
fn an_even_spread_rounds_the_total_and_differs_by_at_most_one() {
    let (packets, summary) = generate("spread", &["--frames", "1000", "--malformed", "0.1"]);
    let t = tally(&packets, 47000);
    assert_summary_matches(&summary, &packets, &t);
    let counts: Vec<u64> = REASONS.iter().map(|r| t.malformed[*r]).collect();
    assert_eq!(counts, [9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 8]);
    let (packets, _) = generate("round", &["--frames", "10", "--malformed", "bad_magic=0.25"]);
    assert_eq!(tally(&packets, 47000).malformed["bad_magic"], 3, "2.5 rounds up");
}
