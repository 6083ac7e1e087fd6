//! What each fuzz target checks, in one place: the libFuzzer targets
//! (`fuzz_targets/*.rs`) call these functions, `tests/fuzz_regressions.rs`
//! includes this file to replay the committed corpus and every crash input
//! in the ordinary `cargo test`, and `examples/fuzz_seeds.rs` includes it
//! for the input encoders when it writes the seed corpus.
//!
//! Every check panics (a crash to libFuzzer, a failure to `cargo test`)
//! when a property does not hold; none may panic on input it merely rejects.
//! Structured inputs (`segments`, `ring`) use a small hand-written byte
//! format rather than `arbitrary`'s, so the seed generator can write real
//! inputs in it (see each module).

pub mod classify {
    //! The classifier on arbitrary bytes, under every setting.
    use tachyon::dataplane::classify::{Accepted, NicChecksum, ParseConfig, classify, classify_general};
    use tachyon::dataplane::reason::DropReason;

    /// The Tachyon port of the configs below (PROTOCOL.md's default).
    pub const PORT: u16 = 47000;

    /// Parse settings every packet is classified under.
    pub fn configs() -> [ParseConfig; 4] {
        let base = ParseConfig { tachyon_port: PORT, forward_non_tachyon: false, verify_ip_checksum: true };
        [
            base,
            ParseConfig { verify_ip_checksum: false, ..base },
            ParseConfig { forward_non_tachyon: true, ..base },
            // Another port: what is Tachyon for one config is other traffic here.
            ParseConfig { tachyon_port: 53, ..base },
        ]
    }

    /// Classifies `pkt` under every setting and NIC checksum verdict and
    /// checks that the outcome fits the bytes; returns the default
    /// config's outcome (for the corpus coverage test).
    pub fn check(pkt: &[u8]) -> Result<Accepted, DropReason> {
        for cfg in configs() {
            for nic in [NicChecksum::UNKNOWN, NicChecksum::GOOD, NicChecksum::BAD] {
                let got = classify(pkt, nic, &cfg);
                // The fast path may only ever accept what the reference accepts.
                assert_eq!(got, classify_general(pkt, nic, &cfg), "fast path disagrees ({cfg:?}, {nic:?})");
                check_outcome(pkt, &cfg, nic, got);
            }
            // A NIC that vouches for the checksum is the same as not verifying it.
            let unverified = ParseConfig { verify_ip_checksum: false, ..cfg };
            assert_eq!(
                classify(pkt, NicChecksum::GOOD, &cfg),
                classify(pkt, NicChecksum::UNKNOWN, &unverified),
                "NIC-verified and unverified checksums disagree"
            );
        }
        let got = classify(pkt, NicChecksum::UNKNOWN, &configs()[0]);
        if got.is_ok() {
            // Ethernet padding after the IP total length changes nothing.
            let mut padded = pkt.to_vec();
            padded.extend_from_slice(&[0; 7]);
            assert_eq!(classify(&padded, NicChecksum::UNKNOWN, &configs()[0]), got, "padding changed the verdict");
        }
        got
    }

    fn check_outcome(pkt: &[u8], cfg: &ParseConfig, nic: NicChecksum, got: Result<Accepted, DropReason>) {
        match got {
            // Bytes alone can only earn the parser's reasons (PROTOCOL.md's first 12).
            Err(r) => assert!(r.index() < DropReason::RuleDrop.index(), "parser dropped for {r}"),
            Ok(Accepted::Other) => {
                assert!(cfg.forward_non_tachyon, "other traffic accepted while configured to drop it");
                let d = reference(pkt).expect("forwarded packet is not UDP/IPv4");
                assert_ne!(d.dst_port, cfg.tachyon_port, "Tachyon-port packet forwarded as other traffic");
            }
            Ok(Accepted::Tachyon(f)) => {
                assert!(
                    nic != NicChecksum::BAD || !cfg.verify_ip_checksum,
                    "accepted a packet whose checksum the NIC called bad"
                );
                let d = reference(pkt).expect("accepted packet is not UDP/IPv4");
                assert_eq!(d.dst_port, cfg.tachyon_port, "accepted on the wrong port");
                let Some(payload) = d.udp_payload else { panic!("accepted a packet whose lengths do not add up") };
                let records = walk_records(payload).expect("accepted a frame whose records do not add up");
                assert!(f.msg_count >= 1, "accepted msg_count 0");
                assert_eq!(records, usize::from(f.msg_count), "msg_count disagrees with the records");
                assert_eq!(f.topic, le32(payload, 8), "topic");
                assert_eq!(f.sender, le32(payload, 12), "sender");
                assert_eq!(f.src_ip, d.src_ip, "source address");
                assert_eq!(f.dst_port, d.dst_port, "destination port");
                assert!(&payload[..3] == b"TY\x01" && payload[3] & !1 == 0, "accepted a bad magic, version or flag");
                assert_eq!(f.timestamp_ns.is_some(), payload[3] & 1 == 1, "timestamp flag");
            }
        }
    }

    /// What a packet says about itself, decoded here independently of
    /// `tachyon::wire` (literal PROTOCOL.md offsets), as a cross-check.
    struct Decoded<'a> {
        src_ip: u32,
        dst_port: u16,
        /// The UDP payload when the IP and UDP lengths fit the bytes received.
        udp_payload: Option<&'a [u8]>,
    }

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    fn reference(pkt: &[u8]) -> Option<Decoded<'_>> {
        let l3 = match be16(pkt.get(..14)?, 12) {
            0x0800 => 14,
            0x8100 if be16(pkt.get(..18)?, 16) == 0x0800 => 18,
            _ => return None,
        };
        let ip = pkt.get(l3..)?;
        let ihl = usize::from(*ip.first()? & 0x0f) * 4;
        let total = usize::from(be16(ip.get(..4)?, 2));
        if ip[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl + 8 || ip[9] != 17 {
            return None;
        }
        let udp = &ip[ihl..];
        let udp_len = usize::from(be16(udp, 4));
        let fits = total <= ip.len() && udp_len >= 8 && ihl + udp_len == total;
        Some(Decoded {
            src_ip: u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]),
            dst_port: be16(udp, 2),
            udp_payload: fits.then(|| &udp[8..udp_len]),
        })
    }

    /// The number of records when `32 + Σ(2 + len)` is exactly the payload
    /// length and the header's msg_count matches them.
    fn walk_records(payload: &[u8]) -> Option<usize> {
        let count = usize::from(u16::from_le_bytes([*payload.get(4)?, *payload.get(5)?]));
        let mut at = 32;
        for _ in 0..count {
            let len = usize::from(u16::from_le_bytes([*payload.get(at)?, *payload.get(at + 1)?]));
            at += 2 + len;
        }
        (at == payload.len()).then_some(count)
    }
}

pub mod segments {
    //! The classifier on a frame cut into segments (a multi-segment mbuf).
    //!
    //! Input: byte 0 gives the number of cuts (`% 8`), then one
    //! little-endian u16 per cut (taken modulo the frame length + 1), then
    //! the frame's bytes.
    use tachyon::dataplane::classify::{Linearizer, NicChecksum, classify, classify_segments};

    /// Most cuts one input makes.
    pub const MAX_CUTS: usize = 7;

    /// Encodes a frame and its cut points in this target's input format.
    pub fn encode(cuts: &[u16], frame: &[u8]) -> Vec<u8> {
        assert!(cuts.len() <= MAX_CUTS);
        let mut out = vec![cuts.len() as u8];
        cuts.iter().for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
        out.extend_from_slice(frame);
        out
    }

    /// Splits the input into segments; `None` when it is too short for its cuts.
    pub fn decode(data: &[u8]) -> Option<(Vec<&[u8]>, &[u8])> {
        let n = usize::from(*data.first()?) % (MAX_CUTS + 1);
        let frame = data.get(1 + 2 * n..)?;
        let mut cuts: Vec<usize> = data[1..1 + 2 * n]
            .chunks_exact(2)
            .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (frame.len() + 1))
            .collect();
        cuts.sort_unstable();
        let mut segs = Vec::with_capacity(n + 1);
        let mut from = 0;
        for cut in cuts.into_iter().chain([frame.len()]) {
            segs.push(&frame[from..cut]);
            from = cut;
        }
        Some((segs, frame))
    }

    /// The segments classify exactly as the contiguous frame does.
    pub fn check(data: &[u8]) {
        let Some((segs, frame)) = decode(data) else { return };
        let _ = super::classify::check(frame);
        // Both multi-segment entry points: the one-shot function and the
        // worker's reusable buffer (which must not remember a last frame).
        let mut linear = Linearizer::preallocated();
        for cfg in super::classify::configs() {
            for nic in [NicChecksum::UNKNOWN, NicChecksum::GOOD, NicChecksum::BAD] {
                let whole = classify(frame, nic, &cfg);
                assert_eq!(classify_segments(&segs, nic, &cfg), whole, "classify_segments disagrees");
                assert_eq!(linear.classify(segs.iter().copied(), nic, &cfg), whole, "Linearizer disagrees");
            }
        }
    }
}

pub mod config {
    //! The config and governance rule parser, and the runtime-limit command
    //! of `/tachyon/limit`, on arbitrary text: an answer, never a panic.
    use tachyon::config::Config;
    use tachyon::control::governance::{LimitOverrides, parse_limit};

    /// The TSC rate reloads compile with here (any plausible clock).
    const TSC_HZ: u64 = 2_000_000_000;

    pub fn check(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else { return };
        let parsed = Config::parse(text);
        if let Err(e) = &parsed {
            assert!(!e.to_string().trim().is_empty(), "an error without a message: {e:?}");
        }
        // The first line doubles as a `/tachyon/limit` request, applied to
        // the parsed config's governance the way the control lcore does.
        let first_line = text.lines().next().unwrap_or("");
        let limit = parse_limit(first_line);
        if let Err(e) = &limit {
            assert!(!e.trim().is_empty(), "a limit error without a message");
        }
        if let (Ok(cfg), Ok(cmd)) = (parsed, limit) {
            let mut overrides = LimitOverrides::default();
            overrides.apply(&cmd);
            if let Err(e) = overrides.merged(&cfg.governance).compile_tables(TSC_HZ) {
                assert!(!e.to_string().trim().is_empty(), "an error without a message");
            }
        }
    }
}

pub mod ring {
    //! The bridge's ingress ring reader (`IngressConsumer::drain`) on a real
    //! shared-memory region that honest producers publish into and a
    //! hostile one scribbles over.
    //!
    //! Input: byte 0 picks the layout (shards, largest message, unblock
    //! timeout); then operations, each an opcode byte and its fields
    //! (little-endian), until the input ends:
    //!
    //! | op | fields | what |
    //! |---|---|---|
    //! | 0 publish | n: u8, then n × (topic u8, sender u8, len u16) | one `publish_batch`; payload bytes are derived from the message's index |
    //! | 1 scribble | offset u32, n u8, n bytes | write bytes anywhere in the file (header, control blocks, rings, slots) |
    //! | 2 word | shard u8, at u16, value u64 | write an 8-byte word into a shard's control block or ring (8-aligned: tail, head, counters, length words) |
    //! | 3 drain | shard u8, budget u8, advance_ms u8 | advance the clock, drain one shard |
    //! | 4 die | shard u8, len u16 | a producer claims room and dies before committing |
    //! | 5 connect | | a new client maps the region and validates its header |
    //!
    //! At the end the clock jumps past every timeout and each shard is
    //! drained until it is empty. Checked: nothing panics or reads out of
    //! bounds; each drain releases at most the ring; delivered payloads are
    //! within the limit; the consumer's counters never go backwards; and
    //! while no byte was scribbled, every accepted message is delivered
    //! exactly once, in order, and nothing is counted malformed.
    use std::collections::VecDeque;
    use std::os::unix::fs::FileExt;
    use std::path::PathBuf;
    use std::time::Duration;
    use tachyon_bridge::{Bridge, DrainReport, IngressConsumer, Layout, Region};

    /// Bytes of each ingress ring (the smallest the layout allows).
    pub const RING_BYTES: u32 = 64 * 1024;
    const MAX_MESSAGE: [u32; 4] = [16, 100, 1000, 2000];
    const TIMEOUT_MS: [u64; 4] = [0, 1, 10, 100];
    const MAX_OPS: usize = 256;

    /// One operation, for the seed generator's encoder.
    pub enum Op {
        Publish(Vec<(u8, u8, u16)>),
        Scribble { offset: u32, bytes: Vec<u8> },
        Word { shard: u8, at: u16, value: u64 },
        Drain { shard: u8, budget: u8, advance_ms: u8 },
        Die { shard: u8, len: u16 },
        Connect,
    }

    /// Encodes a layout byte and operations in this target's input format.
    pub fn encode(layout: u8, ops: &[Op]) -> Vec<u8> {
        let mut out = vec![layout];
        for op in ops {
            match op {
                Op::Publish(msgs) => {
                    out.extend([0, msgs.len() as u8]);
                    for &(topic, sender, len) in msgs {
                        out.extend([topic, sender]);
                        out.extend(len.to_le_bytes());
                    }
                }
                Op::Scribble { offset, bytes } => {
                    out.push(1);
                    out.extend(offset.to_le_bytes());
                    out.push(bytes.len() as u8);
                    out.extend(bytes);
                }
                Op::Word { shard, at, value } => {
                    out.extend([2, *shard]);
                    out.extend(at.to_le_bytes());
                    out.extend(value.to_le_bytes());
                }
                Op::Drain { shard, budget, advance_ms } => out.extend([3, *shard, *budget, *advance_ms]),
                Op::Die { shard, len } => {
                    out.extend([4, *shard]);
                    out.extend(len.to_le_bytes());
                }
                Op::Connect => out.push(5),
            }
        }
        out
    }

    /// Reads the input front to back; every read fails once it is used up.
    struct Reader<'a>(&'a [u8]);

    impl Reader<'_> {
        fn bytes(&mut self, n: usize) -> Option<&[u8]> {
            let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
            self.0 = rest;
            Some(head)
        }
        fn u8(&mut self) -> Option<u8> {
            self.bytes(1).map(|b| b[0])
        }
        fn u16(&mut self) -> Option<u16> {
            self.bytes(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
        }
        fn u32(&mut self) -> Option<u32> {
            self.bytes(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        }
        fn u64(&mut self) -> Option<u64> {
            self.bytes(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        }
    }

    /// A region of its own per run, removed when dropped.
    struct Fixture {
        consumers: Vec<IngressConsumer>,
        client: Bridge,
        file: std::fs::File,
        layout: Layout,
        // Last: dropped after the consumers and the client (it unlinks the file).
        region: Region,
    }

    fn region_path() -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static RUN: AtomicU64 = AtomicU64::new(0);
        let run = RUN.fetch_add(1, Ordering::Relaxed);
        let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_digit(), "");
        PathBuf::from(format!("/dev/shm/tachyon-fuzz-{}-{thread}-{run}.bridge", std::process::id()))
    }

    impl Fixture {
        fn new(choice: u8) -> Fixture {
            let layout = Layout {
                shards: 1 + u32::from(choice & 1),
                ingress_ring_bytes: RING_BYTES,
                subscriber_slots: 0,
                subscriber_ring_bytes: 4096,
                max_message_bytes: MAX_MESSAGE[usize::from(choice >> 1) & 3],
            };
            let path = region_path();
            let region = Region::create(&path, layout, 0o600, None).expect("create the fuzz region");
            let timeout = Duration::from_millis(TIMEOUT_MS[usize::from(choice >> 3) & 3]);
            let consumers = (0..layout.shards)
                .map(|s| {
                    let mut c = region.ingress_consumer(s).expect("one consumer per shard");
                    c.set_unblock_timeout(timeout);
                    c
                })
                .collect();
            let client = Bridge::connect(&path).expect("connect to the fresh region");
            let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open the region for scribbling");
            Fixture { consumers, client, file, layout, region }
        }
    }

    /// What the run expects and has seen.
    struct Model {
        /// Accepted messages not yet delivered, per shard: (topic, sender, payload).
        pending: Vec<VecDeque<(u32, u32, Vec<u8>)>>,
        /// Set by the first scribble: from then on only safety is checked.
        scribbled: bool,
        now_ns: u64,
        /// The shard's malformed-message and malformed-block counters after its last drain.
        malformed: Vec<(u64, u64)>,
    }

    fn payload(index: usize, len: u16) -> Vec<u8> {
        (0..usize::from(len)).map(|i| (index * 31 + i) as u8).collect()
    }

    pub fn check(data: &[u8]) {
        let mut r = Reader(data);
        let Some(choice) = r.u8() else { return };
        let mut fx = Fixture::new(choice);
        let shards = fx.layout.shards as usize;
        let mut model = Model {
            pending: vec![VecDeque::new(); shards],
            scribbled: false,
            now_ns: 1,
            malformed: vec![(0, 0); shards],
        };
        for _ in 0..MAX_OPS {
            if step(&mut r, &mut fx, &mut model).is_none() {
                break;
            }
        }
        for s in 0..shards {
            // A stalled record is skipped only by a drain at least the
            // timeout after the one that first saw it stalled.
            for _ in 0..64 {
                model.now_ns += 1_000_000_000;
                let report = drain(&mut fx, &mut model, s, usize::MAX);
                if report.delivered == 0 && !report.stalled {
                    break;
                }
            }
            if !model.scribbled {
                assert!(model.pending[s].is_empty(), "shard {s}: accepted messages never delivered");
                assert_eq!(model.malformed[s], (0, 0), "shard {s}: honest producers' records counted malformed");
            }
        }
    }

    /// Runs one operation; `None` when the input is used up.
    fn step(r: &mut Reader<'_>, fx: &mut Fixture, model: &mut Model) -> Option<()> {
        let shards = fx.layout.shards as usize;
        match r.u8()? % 6 {
            0 => {
                let n = usize::from(r.u8()? % 32);
                let mut msgs = Vec::with_capacity(n);
                for _ in 0..n {
                    msgs.push((r.u8()?, r.u8()?, r.u16()?));
                }
                publish(fx, model, &msgs);
            }
            1 => {
                let offset = u64::from(r.u32()?) % fx.region.header().geometry.total_len;
                let n = usize::from(r.u8()?);
                let bytes = r.bytes(n)?;
                model.scribbled = true;
                let _ = fx.file.write_at(bytes, offset);
            }
            2 => {
                let shard = u64::from(r.u8()?) % shards as u64;
                let g = fx.region.header().geometry;
                let at = u64::from(r.u16()?) * 8 % g.ingress_stride;
                let value = r.u64()?;
                model.scribbled = true;
                let _ = fx.file.write_at(&value.to_le_bytes(), g.ingress_offset + shard * g.ingress_stride + at);
            }
            3 => {
                let shard = usize::from(r.u8()?) % shards;
                let budget = usize::from(r.u8()?);
                model.now_ns += u64::from(r.u8()?) * 1_000_000;
                drain(fx, model, shard, budget);
            }
            4 => {
                let shard = u32::from(r.u8()?) % shards as u32;
                let len = usize::from(r.u16()?);
                // Refused (full, corrupt, too large) or claimed and abandoned:
                // either way nothing of it may be delivered.
                let _ = fx.client.claim_without_commit(shard, len);
            }
            _ => {
                if let Ok(b) = Bridge::connect(fx.region.path()) {
                    assert_eq!(b.header().layout, fx.layout, "a client read a different layout");
                }
            }
        }
        Some(())
    }

    fn publish(fx: &mut Fixture, model: &mut Model, msgs: &[(u8, u8, u16)]) {
        let topics: Vec<u32> = msgs.iter().map(|m| u32::from(m.0)).collect();
        let senders: Vec<u32> = msgs.iter().map(|m| u32::from(m.1)).collect();
        let payloads: Vec<Vec<u8>> = msgs.iter().enumerate().map(|(i, m)| payload(i, m.2 % 2048)).collect();
        let mut offsets = vec![0u64];
        payloads.iter().for_each(|p| offsets.push(offsets.last().copied().unwrap_or(0) + p.len() as u64));
        let Ok(report) = fx.client.publish_batch(&topics, &senders, &payloads.concat(), &offsets) else {
            // Invalid (a message over the limit): nothing was published.
            return;
        };
        let shards = fx.layout.shards;
        for (i, ok) in report.accepted_mask(&topics).into_iter().enumerate() {
            if ok {
                let shard = (topics[i] % shards) as usize;
                model.pending[shard].push_back((topics[i], senders[i], payloads[i].clone()));
            }
        }
    }

    /// Drains one shard and checks what came out.
    fn drain(fx: &mut Fixture, model: &mut Model, shard: usize, budget: usize) -> DrainReport {
        let max = fx.layout.max_message_bytes as usize;
        let (scribbled, pending) = (model.scribbled, &mut model.pending[shard]);
        let report = fx.consumers[shard].drain(budget, model.now_ns, |m| {
            assert!(m.payload.len() <= max, "delivered a {}-byte message over the limit", m.payload.len());
            if !scribbled {
                let want = pending.pop_front().expect("delivered a message nobody published");
                assert_eq!((m.topic, m.sender, m.payload), (want.0, want.1, &want.2[..]), "out of order or altered");
            }
        });
        assert!(report.released_bytes <= u64::from(RING_BYTES), "released more than the ring: {report:?}");
        let stats = &fx.region.stats().shards[shard];
        let now = (stats.malformed_msgs, stats.malformed_blocks);
        let before = model.malformed[shard];
        assert!(now.0 >= before.0 && now.1 >= before.1, "malformed counters went back: {before:?} -> {now:?}");
        model.malformed[shard] = now;
        report
    }
}
