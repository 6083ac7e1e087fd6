//! loom model of the ingress ring: the production claim / commit / drain / unblock code
//! (`ring.rs`) over a heap ring whose control and length words are loom atomics.
//! Run with `bridge/loom.sh`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::{AtomicUsize, Ordering};
use tachyon_bridge::loom_model::{HeapConsumer, HeapRing};

/// Explored executions, to show the model really ran (printed with `--nocapture`).
static RUNS: AtomicUsize = AtomicUsize::new(0);

fn payload(id: u32, k: u32) -> [u8; 8] {
    let mut p = [0u8; 8];
    p[..4].copy_from_slice(&id.to_le_bytes());
    p[4..].copy_from_slice(&(id * 100 + k).to_le_bytes());
    p
}

/// Two producers each publish a block of two messages while the consumer drains
/// concurrently: every accepted message arrives exactly once, untorn, in per-producer order.
#[test]
fn two_producers_one_consumer() {
    model_two_producers(false);
}

/// The same, starting 8 bytes before the end of a 128-byte ring, so that the second
/// claim wraps with a padding record.
#[test]
fn two_producers_one_consumer_wrapping() {
    model_two_producers(true);
}

fn model_two_producers(wrap: bool) {
    loom::model(move || {
        RUNS.fetch_add(1, Ordering::Relaxed);
        let ring = Arc::new(HeapRing::new(if wrap { 128 } else { 256 }));
        let mut c = HeapConsumer::new(&ring, u64::MAX);
        if wrap {
            // Two 40-byte blocks published and consumed: head = tail = 80 of 128.
            let p = payload(9, 9);
            for _ in 0..2 {
                ring.publish(&[(9, 9, &p[..])]).unwrap();
            }
            assert_eq!(c.drain(&ring, 0, |_| {}), 2);
        }
        let producers: Vec<_> = (1..=2u32)
            .map(|id| {
                let r = ring.clone();
                thread::spawn(move || {
                    let (a, b) = (payload(id, 0), payload(id, 1));
                    // Values this producer had accepted, in order.
                    let mut acc = Vec::new();
                    if wrap {
                        // One message per block (40 bytes); the second may find the ring full.
                        for (k, p) in [a, b].iter().enumerate() {
                            if r.publish(&[(id, id, &p[..])]).is_ok() {
                                acc.push(id * 100 + k as u32);
                            }
                        }
                    } else if r.publish(&[(id, id, &a[..]), (id, id, &b[..])]).is_ok() {
                        acc = vec![id * 100, id * 100 + 1];
                    }
                    acc
                })
            })
            .collect();
        let mut got: Vec<(u32, u32)> = Vec::new();
        let mut check = |m: tachyon_bridge::Message<'_>| {
            assert_eq!(m.payload.len(), 8);
            let id = u32::from_le_bytes(m.payload[..4].try_into().unwrap());
            let v = u32::from_le_bytes(m.payload[4..].try_into().unwrap());
            assert_eq!((m.topic, m.sender), (id, id), "torn header");
            got.push((id, v));
        };
        c.drain(&ring, 0, &mut check);
        c.drain(&ring, 0, &mut check);
        let ok: Vec<Vec<u32>> = producers.into_iter().map(|p| p.join().unwrap()).collect();
        c.drain(&ring, 0, &mut check);
        for id in 1..=2u32 {
            let mine: Vec<u32> = got.iter().filter(|g| g.0 == id).map(|g| g.1).collect();
            assert_eq!(mine, ok[id as usize - 1], "lost, duplicated or reordered");
        }
        if !wrap {
            assert!(ok.iter().all(|o| o.len() == 2), "a 256-byte ring has room for both parts");
        } else {
            assert!(ok.iter().any(|o| !o.is_empty()), "the first claim always fits");
        }
    });
    println!("two producers (wrap: {wrap}): {} executions so far", RUNS.load(Ordering::Relaxed));
}

/// A producer claims and never commits while another publishes behind it: before the
/// timeout nothing behind the hole is delivered; after it the hole is skipped (counted)
/// and the honest message arrives exactly once.
#[test]
fn stuck_producer_is_unblocked() {
    loom::model(|| {
        let ring = Arc::new(HeapRing::new(128));
        let r1 = ring.clone();
        let stuck = thread::spawn(move || r1.claim_without_commit(8).is_ok());
        let r2 = ring.clone();
        let honest = thread::spawn(move || {
            let p = payload(2, 0);
            r2.publish(&[(2, 2, &p[..])]).is_ok()
        });
        let mut c = HeapConsumer::new(&ring, 10);
        let mut got = Vec::new();
        c.drain(&ring, 0, |m| got.push(m.payload.to_vec()));
        let stuck_ok = stuck.join().unwrap();
        let honest_ok = honest.join().unwrap();
        assert!(stuck_ok && honest_ok);
        // Clock: the first stalled drain starts it, a drain at +timeout skips the hole.
        for now in [1, 5, 20, 40] {
            c.drain(&ring, now, |m| got.push(m.payload.to_vec()));
        }
        assert_eq!(got, vec![payload(2, 0).to_vec()]);
        assert_eq!(ring.unblocked(), 1);
    });
}

/// A part over half the ring that straddles the end (HEAD, padding, CONT in one claim)
/// races a one-message producer and the consumer: each part arrives whole, in order, or
/// (refused) not at all.
#[test]
fn split_part_races_a_small_part() {
    loom::model(|| {
        // 128-byte ring at offset 80: the 88-byte part splits into HEAD (1 message),
        // 8 bytes of padding and CONT (2 messages) at offset 0.
        let ring = Arc::new(HeapRing::at(128, 3 * 128 + 80));
        let r1 = ring.clone();
        let big = thread::spawn(move || {
            let ps = [payload(1, 0), payload(1, 1), payload(1, 2)];
            r1.publish_part(&[(1, 1, &ps[0][..]), (1, 1, &ps[1][..]), (1, 1, &ps[2][..])]).is_ok()
        });
        let r2 = ring.clone();
        let small = thread::spawn(move || {
            let p = payload(2, 0);
            r2.publish_part(&[(2, 2, &p[..])]).is_ok()
        });
        let mut c = HeapConsumer::new(&ring, u64::MAX);
        let mut got: Vec<(u32, u32)> = Vec::new();
        let mut check = |m: tachyon_bridge::Message<'_>| {
            let id = u32::from_le_bytes(m.payload[..4].try_into().unwrap());
            let v = u32::from_le_bytes(m.payload[4..].try_into().unwrap());
            assert_eq!((m.topic, m.sender), (id, id), "torn header");
            got.push((id, v));
        };
        c.drain(&ring, 0, &mut check);
        let (big_ok, small_ok) = (big.join().unwrap(), small.join().unwrap());
        c.drain(&ring, 0, &mut check);
        let mine = |id: u32| got.iter().filter(|g| g.0 == id).map(|g| g.1).collect::<Vec<_>>();
        assert_eq!(mine(1), if big_ok { vec![100, 101, 102] } else { vec![] }, "split part not whole");
        assert_eq!(mine(2), if small_ok { vec![200] } else { vec![] });
        assert!(big_ok || small_ok, "the first claim always fits");
        assert_eq!(ring.unblocked(), 0);
    });
}

/// A split-part producer commits CONT and dies before committing HEAD, while another
/// producer publishes: after the timeout the HEAD is skipped and the committed CONT is
/// dropped with it (nothing of the part is delivered); the other part arrives iff accepted.
#[test]
fn split_part_producer_dies_between_commits() {
    loom::model(|| {
        let ring = Arc::new(HeapRing::at(128, 3 * 128 + 80));
        let r1 = ring.clone();
        let dying = thread::spawn(move || {
            let ps = [payload(1, 0), payload(1, 1), payload(1, 2)];
            r1.publish_part_dying_before_head_commit(&[(1, 1, &ps[0][..]), (1, 1, &ps[1][..]), (1, 1, &ps[2][..])])
                .is_ok()
        });
        let r2 = ring.clone();
        let honest = thread::spawn(move || {
            let p = payload(2, 0);
            r2.publish_part(&[(2, 2, &p[..])]).is_ok()
        });
        let mut c = HeapConsumer::new(&ring, 10);
        let mut got = Vec::new();
        c.drain(&ring, 0, |m| got.push(m.payload.to_vec()));
        let (dying_claimed, honest_ok) = (dying.join().unwrap(), honest.join().unwrap());
        for now in [1, 5, 20, 40] {
            c.drain(&ring, now, |m| got.push(m.payload.to_vec()));
        }
        let want = if honest_ok { vec![payload(2, 0).to_vec()] } else { vec![] };
        assert_eq!(got, want, "nothing of the dead producer's part, the honest part iff accepted");
        if dying_claimed {
            assert_eq!(ring.unblocked(), 2, "HEAD skipped and CONT dropped");
        }
    });
}
