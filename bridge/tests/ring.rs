mod common;
use common::*;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};
use tachyon_bridge::{Bridge, BridgeError, Region, monotonic_ns};

fn batch(topic_of: impl Fn(u32) -> u32, sender: u32, seq0: u32, n: u32, plen: usize) -> Cols {
    let mut c = Cols::new();
    for i in 0..n {
        let mut p = vec![0u8; plen.max(4)];
        p[..4].copy_from_slice(&(seq0 + i).to_le_bytes());
        c.push(topic_of(seq0 + i), sender, &p);
    }
    c
}

fn publish(b: &Bridge, c: &Cols) -> tachyon_bridge::PublishReport {
    b.publish_batch(&c.topics, &c.senders, &c.payloads, &c.offsets).unwrap()
}

fn seq(p: &[u8]) -> u32 {
    u32::from_le_bytes(p[..4].try_into().unwrap())
}

#[test]
fn exactly_once_in_order_with_wraparound() {
    let p = tmp_path("order");
    let r = Region::create(&p, small(1), 0o660, None).unwrap();
    let mut c = r.ingress_consumer(0).unwrap();
    assert!(r.ingress_consumer(0).is_none(), "handed out once");
    let b = Bridge::connect(&p).unwrap();
    let mut next = 0u32;
    let mut sent = 0u32;
    // Odd sizes so blocks straddle the end of the 64 KiB ring many times (padding).
    for round in 0..400u32 {
        let n = 1 + round % 13;
        let rep = publish(&b, &batch(|_| 5, 9, sent, n, 7 + (round as usize * 37) % 700));
        assert!(rep.all_accepted());
        assert_eq!(rep.accepted, vec![n as u64]);
        sent += n;
        if round % 3 == 0 {
            for (t, s, pl) in drain_all(&mut c, 0) {
                assert_eq!((t, s, seq(&pl)), (5, 9, next));
                next += 1;
            }
        }
    }
    for (_, _, pl) in drain_all(&mut c, 0) {
        assert_eq!(seq(&pl), next);
        next += 1;
    }
    assert_eq!(next, sent);
    let st = r.stats();
    assert_eq!(st.shards[0].accepted_msgs, sent as u64);
    assert_eq!(st.shards[0].in_flight_msgs, 0);
    assert_eq!(st.shards[0].ring_depth_bytes, 0);
    assert_eq!(st.shards[0].malformed_blocks + st.shards[0].malformed_msgs + st.shards[0].unblocked, 0);
}

#[test]
fn full_ring_refuses_only_that_shard() {
    let p = tmp_path("full");
    let r = Region::create(&p, small(2), 0o660, None).unwrap();
    let mut c0 = r.ingress_consumer(0).unwrap();
    let mut c1 = r.ingress_consumer(1).unwrap();
    let b = Bridge::connect(&p).unwrap();
    let mut accepted0 = 0u32;
    let mut refused = false;
    for i in 0..200u32 {
        // Topic 0 -> shard 0 (big), topic 1 -> shard 1 (small).
        let mut cols = batch(|_| 0, 1, accepted0, 8, 1000);
        let one = batch(|_| 1, 2, i, 1, 16);
        cols.topics.extend(&one.topics);
        cols.senders.extend(&one.senders);
        let base = cols.payloads.len() as u64;
        cols.payloads.extend(&one.payloads);
        cols.offsets.extend(one.offsets[1..].iter().map(|o| o + base));
        let rep = publish(&b, &cols);
        assert!(!rep.refused_shards.contains(&1), "round {i}: shard 1 must accept");
        if rep.refused_shards.contains(&0) {
            refused = true;
            assert_eq!(rep.accepted[0], 0);
            assert_eq!(rep.accepted_mask(&cols.topics)[..8], [false; 8]);
            assert!(rep.accepted_mask(&cols.topics)[8]);
            // Drain shard 1 only; shard 0 stays full.
            drain_all(&mut c1, 0);
        } else {
            accepted0 += 8;
        }
    }
    assert!(refused, "shard 0 never filled up");
    let st = r.stats();
    assert!(st.shards[0].refused_batches > 0);
    assert_eq!(st.shards[1].refused_batches, 0);
    let got0 = drain_all(&mut c0, 0);
    assert_eq!(got0.len() as u32, accepted0, "nothing accepted is lost");
    for (i, (_, _, pl)) in got0.iter().enumerate() {
        assert_eq!(seq(pl), i as u32);
    }
    let got1 = drain_all(&mut c1, 0);
    assert!(got1.iter().all(|m| m.0 == 1));
    // After draining, shard 0 accepts again.
    assert!(publish(&b, &batch(|_| 0, 1, 0, 8, 1000)).all_accepted());
}

#[test]
fn invalid_batches_publish_nothing() {
    let p = tmp_path("invalid");
    let r = Region::create(&p, small(2), 0o660, None).unwrap();
    let mut c0 = r.ingress_consumer(0).unwrap();
    let b = Bridge::connect(&p).unwrap();
    let e = |res: Result<_, BridgeError>| match res {
        Err(BridgeError::InvalidBatch(m)) => m,
        other => panic!("expected InvalidBatch, got {:?}", other.map(|_: tachyon_bridge::PublishReport| ())),
    };
    assert!(e(b.publish_batch(&[0, 0], &[1], b"ab", &[0, 1, 2])).contains("senders"));
    assert!(e(b.publish_batch(&[0], &[1], b"ab", &[0, 1, 2])).contains("offsets"));
    assert!(e(b.publish_batch(&[0, 0], &[1, 1], b"ab", &[0, 2, 1])).contains("offsets[2]=1 < offsets[1]=2"));
    assert!(e(b.publish_batch(&[0], &[1], b"ab", &[0, 3])).contains("past the end"));
    let big = vec![0u8; 1025];
    assert!(e(b.publish_batch(&[0], &[1], &big, &[0, 1025])).contains("max_message_bytes"));
    // A part over max_part_bytes (64 KiB ring: 65536 - 16 - 1040 = 64480 bytes; 64 × 1016
    // + 16 = 65040) is refused before claiming, naming the sizes and the limit.
    assert_eq!(b.max_part_bytes(), 64480);
    let cols = batch(|_| 0, 1, 0, 64, 1000);
    let m = e(b.publish_batch(&cols.topics, &cols.senders, &cols.payloads, &cols.offsets));
    assert!(m.contains("shard 0 part is 65040 bytes (64 messages)") && m.contains("64480-byte limit"), "{m}");
    assert!(m.contains("max_part_bytes") && m.contains("split the batch"), "{m}");
    assert!(drain_all(&mut c0, 0).is_empty(), "nothing published");
    assert_eq!(r.stats().shards[0].accepted_batches, 0);
    // Empty batch is fine.
    assert!(b.publish_batch(&[], &[], &[], &[0]).unwrap().all_accepted());
}

#[test]
fn stuck_claim_is_unblocked_after_timeout() {
    let p = tmp_path("unblock");
    let r = Region::create(&p, small(1), 0o660, None).unwrap();
    let mut c = r.ingress_consumer(0).unwrap();
    c.set_unblock_timeout(Duration::from_nanos(1_000));
    let b = Bridge::connect(&p).unwrap();
    b.claim_without_commit(0, 100).unwrap();
    assert!(publish(&b, &batch(|_| 3, 1, 0, 5, 10)).all_accepted());
    let rep = c.drain(100, 10_000, |_| panic!("nothing before the hole is skipped"));
    assert!(rep.stalled);
    let rep = c.drain(100, 10_999, |_| panic!("still within the timeout"));
    assert!(rep.stalled);
    let mut got = vec![];
    c.drain(100, 11_000, |m| got.push(seq(m.payload)));
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert_eq!(r.stats().shards[0].unblocked, 1);
    // Later messages flow.
    assert!(publish(&b, &batch(|_| 3, 1, 5, 2, 10)).all_accepted());
    assert_eq!(drain_all(&mut c, 20_000).len(), 2);
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn hostile_garbage_is_survived_and_the_ring_recovers() {
    let p = tmp_path("hostile");
    let r = Region::create(&p, small(2), 0o660, None).unwrap();
    let g = r.header().geometry;
    let area0 = g.ingress_offset;
    let cap = 1u64 << 16;
    let mut c0 = r.ingress_consumer(0).unwrap();
    let mut c1 = r.ingress_consumer(1).unwrap();
    c0.set_unblock_timeout(Duration::from_nanos(10));
    let b = Bridge::connect(&p).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    let mut now = 0u64;
    let mut seq1 = 0u32;
    let mut next1 = 0u32;
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        // Honest traffic on both shards.
        publish(&b, &batch(|_| 0, 1, 0, 1 + (seed % 5) as u32, 20));
        assert!(publish(&b, &batch(|_| 1, 1, seq1, 3, 20)).all_accepted());
        seq1 += 3;
        // Garbage over shard 0: data bytes, record-like headers, and control words.
        for _ in 0..(rng.next() % 8) {
            let off = rng.next() % cap;
            let len = (rng.next() % 64) as usize;
            let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let end = (off as usize + len).min(cap as usize);
            f.write_at(&junk[..end - off as usize], area0 + 4096 + off).unwrap();
        }
        if rng.next().is_multiple_of(3) {
            let off = (rng.next() % cap) & !7;
            let hdr = [(rng.next() as i32 % 200).to_le_bytes(), (0xB1u32 | (rng.next() as u32) << 8).to_le_bytes()];
            f.write_at(&hdr.concat(), area0 + 4096 + off).unwrap();
        }
        match rng.next() % 6 {
            0 => f.write_at(&rng.next().to_le_bytes(), area0).unwrap(), // tail
            1 => f.write_at(&rng.next().to_le_bytes(), area0 + 64).unwrap(), // head
            2 => f.write_at(&(rng.next() % 300).to_le_bytes(), area0).unwrap(), // small tail
            _ => 0,
        };
        for _ in 0..4 {
            now += 100;
            c0.drain(64, now, |m| assert!(m.payload.len() <= 1024));
        }
        // Shard 1 is unaffected: every message, in order.
        for (t, _, pl) in drain_all(&mut c1, now) {
            assert_eq!((t, seq(&pl)), (1, next1));
            next1 += 1;
        }
    }
    assert_eq!(next1, seq1);
    let st = r.stats();
    assert!(st.shards[0].malformed_blocks + st.shards[0].malformed_msgs > 0, "{:?}", st.shards[0]);
    assert_eq!(st.shards[1].malformed_blocks + st.shards[1].malformed_msgs + st.shards[1].unblocked, 0);
    // Recovery: stop the garbage; shard 0 carries new valid messages again.
    let start = Instant::now();
    let mut got = vec![];
    let mut marker = 1_000_000u32;
    while got.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "shard 0 never recovered: {:?}", r.stats().shards[0]);
        for _ in 0..20 {
            now += 100;
            c0.drain(1000, now, |m| {
                if seq(m.payload) >= 1_000_000 {
                    got.push(seq(m.payload))
                }
            });
        }
        publish(&b, &batch(|_| 0, 7, marker, 1, 20));
        marker += 1;
    }
    // Once recovered, everything published is delivered exactly once in order.
    for _ in 0..50 {
        now += 100;
        c0.drain(1000, now, |_| {});
    }
    let base = 2_000_000;
    for k in 0..20 {
        assert!(publish(&b, &batch(|_| 0, 7, base + k * 4, 4, 20)).all_accepted());
    }
    let seqs: Vec<u32> = drain_all(&mut c0, now).iter().map(|m| seq(&m.2)).collect();
    assert_eq!(seqs, (base..base + 80).collect::<Vec<_>>());
    let _ = monotonic_ns();
}

#[test]
fn types_are_send_and_sync_where_needed() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<tachyon_bridge::IngressConsumer>();
    send::<tachyon_bridge::SubscriberFanout>();
    send::<Bridge>();
    sync::<Bridge>();
    send::<tachyon_bridge::Subscription>();
}

#[test]
fn threads_publish_through_one_bridge() {
    let p = tmp_path("threads");
    let r = Region::create(&p, small(2), 0o660, None).unwrap();
    let mut cs = [r.ingress_consumer(0).unwrap(), r.ingress_consumer(1).unwrap()];
    let b = Bridge::connect(&p).unwrap();
    const PER: u32 = 5000;
    let mut next = [0u32; 4];
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let b = &b;
            s.spawn(move || {
                let mut seq = 0;
                while seq < PER {
                    // Topic t: threads 0 and 2 share shard 0, 1 and 3 shard 1.
                    if publish(b, &batch(|_| t, t, seq, 10, 16)).all_accepted() {
                        seq += 10;
                    } else {
                        std::thread::yield_now();
                    }
                }
            });
        }
        let start = Instant::now();
        while next.iter().any(|n| *n < PER) {
            assert!(start.elapsed() < Duration::from_secs(30), "{next:?}");
            for c in cs.iter_mut() {
                c.drain(1000, 0, |m| {
                    assert_eq!(seq(m.payload), next[m.sender as usize], "sender {}", m.sender);
                    next[m.sender as usize] += 1;
                });
            }
        }
    });
    assert_eq!(next, [PER; 4]);
}

/// Parts over half the ring (up to `max_part_bytes`) are accepted whole, at every kind of
/// ring position (split into two blocks when they straddle the end), and arrive exactly
/// once, in order; a big part that does not fit next to pending data is refused whole.
#[test]
fn parts_larger_than_half_a_ring() {
    let p = tmp_path("bigpart");
    let r = Region::create(&p, small(1), 0o660, None).unwrap();
    let mut c = r.ingress_consumer(0).unwrap();
    let b = Bridge::connect(&p).unwrap();
    let limit = b.max_part_bytes();
    // Exactly the limit: 63 × 1016 + 456 + 16 = 64480 bytes.
    let exact = |seq0: u32| {
        let mut cols = batch(|_| 3, 4, seq0, 63, 1000);
        let mut last = vec![0u8; 444];
        last[..4].copy_from_slice(&(seq0 + 63).to_le_bytes());
        cols.push(3, 4, &last);
        cols
    };
    let (mut sent, mut next) = (0u32, 0u32);
    let check = |c: &mut tachyon_bridge::IngressConsumer, next: &mut u32| {
        for (t, s, pl) in drain_all(c, 0) {
            assert_eq!((t, s, seq(&pl)), (3, 4, *next));
            *next += 1;
        }
    };
    for round in 0..60u32 {
        // Shift the ring position by an odd amount, then publish a part over half the ring.
        let shift = publish(&b, &batch(|_| 3, 4, sent, 1 + round % 5, 8 + (round as usize * 211) % 900));
        assert!(shift.all_accepted());
        sent += 1 + round % 5;
        check(&mut c, &mut next);
        let big = if round % 2 == 0 { exact(sent) } else { batch(|_| 3, 4, sent, 40 + round % 20, 900) };
        let n = big.topics.len() as u32;
        let rep = publish(&b, &big);
        assert!(rep.all_accepted(), "round {round}: an empty ring takes a part up to the limit");
        assert_eq!(rep.accepted, vec![u64::from(n)]);
        sent += n;
        check(&mut c, &mut next);
    }
    assert_eq!(next, sent);
    // One byte-step over the limit is an InvalidBatch error.
    let mut over = exact(0);
    over.payloads.extend_from_slice(&[0; 8]);
    *over.offsets.last_mut().unwrap() += 8;
    let e = b.publish_batch(&over.topics, &over.senders, &over.payloads, &over.offsets).unwrap_err();
    assert!(e.to_string().contains(&format!("{}-byte limit", limit)), "{e}");
    // A big part next to pending data does not fit: refused whole, nothing of it delivered.
    assert!(publish(&b, &batch(|_| 3, 4, sent, 10, 1000)).all_accepted());
    sent += 10;
    let rep = publish(&b, &exact(sent));
    assert_eq!(rep.refused_shards, vec![0]);
    check(&mut c, &mut next);
    assert_eq!(next, sent, "only the small part arrived");
    assert!(publish(&b, &exact(sent)).all_accepted(), "accepted once there is room");
    sent += 64;
    check(&mut c, &mut next);
    assert_eq!(next, sent);
    let st = r.stats().shards[0].clone();
    assert_eq!((st.accepted_msgs, st.refused_batches, st.in_flight_msgs), (u64::from(sent), 1, 0));
    assert_eq!(st.malformed_blocks + st.malformed_msgs + st.unblocked, 0);
}
