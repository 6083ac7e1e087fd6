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
    loom::model(|| {
        RUNS.fetch_add(1, Ordering::Relaxed);
        let ring = Arc::new(HeapRing::new(256));
        let producers: Vec<_> = (1..=2u32)
            .map(|id| {
                let r = ring.clone();
                thread::spawn(move || {
                    let (a, b) = (payload(id, 0), payload(id, 1));
                    r.publish(&[(id, id, &a[..]), (id, id, &b[..])]).is_ok()
                })
            })
            .collect();
        let mut c = HeapConsumer::new(&ring, u64::MAX);
        let mut got: Vec<(u32, u32)> = Vec::new();
        let mut check = |m: tachyon_bridge::Message<'_>| {
            assert_eq!(m.payload.len(), 8);
            let id = u32::from_le_bytes(m.payload[..4].try_into().unwrap());
            let v = u32::from_le_bytes(m.payload[4..].try_into().unwrap());
            assert_eq!((m.topic, m.sender), (id, id), "torn header");
            got.push((id, v));
        };
        c.drain(&ring, 0, &mut check);
        let ok: Vec<bool> = producers.into_iter().map(|p| p.join().unwrap()).collect();
        c.drain(&ring, 0, &mut check);
        for id in 1..=2u32 {
            let mine: Vec<u32> = got.iter().filter(|g| g.0 == id).map(|g| g.1).collect();
            if ok[id as usize - 1] {
                assert_eq!(mine, vec![id * 100, id * 100 + 1], "lost, duplicated or reordered");
            } else {
                assert!(mine.is_empty());
            }
        }
        assert!(ok.iter().all(|o| *o), "a 256-byte ring has room for both parts");
    });
    println!("two_producers_one_consumer: {} executions", RUNS.load(Ordering::Relaxed));
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
