//! Producers and subscribers in other processes (this test binary re-executed).
mod common;
use common::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tachyon_bridge::{Bridge, Region, monotonic_ns};

const PER_CHILD: u32 = 20_000;

fn child_publisher(path: &str, id: u32) {
    let b = Bridge::connect(path).unwrap();
    let mut seq = 0u32;
    while seq < PER_CHILD {
        let n = (1 + seq % 7).min(PER_CHILD - seq);
        let mut c = Cols::new();
        for k in 0..n {
            let mut p = [0u8; 12];
            p[..4].copy_from_slice(&id.to_le_bytes());
            p[4..8].copy_from_slice(&(seq + k).to_le_bytes());
            c.push(0, id, &p[..8 + (k as usize % 5)]);
        }
        let rep = b.publish_batch(&c.topics, &c.senders, &c.payloads, &c.offsets).unwrap();
        if rep.all_accepted() {
            seq += n;
        } else {
            std::thread::yield_now(); // backpressure: retry the same part
        }
    }
}

#[test]
fn two_producer_processes_one_shard_exactly_once() {
    if let Some(role) = child_role() {
        let (id, path) = role.split_once(':').unwrap();
        child_publisher(path, id.parse().unwrap());
        return;
    }
    let p = tmp_path("twoproc");
    let r = Region::create(&p, small(1), 0o660, None).unwrap();
    let mut c = r.ingress_consumer(0).unwrap();
    let ps = p.to_str().unwrap();
    let mut kids: Vec<_> =
        (1..=2).map(|id| spawn_child("two_producer_processes_one_shard_exactly_once", &format!("{id}:{ps}"))).collect();
    let mut next: HashMap<u32, u32> = HashMap::new();
    let start = Instant::now();
    let mut done = 0;
    loop {
        c.drain(4096, monotonic_ns(), |m| {
            let id = u32::from_le_bytes(m.payload[..4].try_into().unwrap());
            let seq = u32::from_le_bytes(m.payload[4..8].try_into().unwrap());
            assert_eq!(m.sender, id);
            let e = next.entry(id).or_insert(0);
            assert_eq!(seq, *e, "producer {id}: out of order, lost or duplicated");
            *e += 1;
        });
        let finished = kids.iter_mut().map(|k| k.try_wait().unwrap().is_some()).filter(|d| *d).count();
        if finished == 2 {
            done += 1;
            if done > 3 {
                break;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "timeout: {next:?}");
    }
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    assert_eq!(next.get(&1), Some(&PER_CHILD));
    assert_eq!(next.get(&2), Some(&PER_CHILD));
    let st = r.stats();
    assert_eq!(st.shards[0].accepted_msgs, 2 * PER_CHILD as u64);
    assert_eq!(st.shards[0].unblocked + st.shards[0].malformed_blocks, 0);
}

#[test]
fn producer_killed_between_claim_and_commit() {
    if let Some(path) = child_role() {
        let b = Bridge::connect(&path).unwrap();
        b.claim_without_commit(0, 64).unwrap();
        kill_self();
    }
    let p = tmp_path("killed");
    let r = Region::create(&p, small(1), 0o660, None).unwrap();
    let mut c = r.ingress_consumer(0).unwrap();
    let timeout = Duration::from_millis(50);
    c.set_unblock_timeout(timeout);
    let st = spawn_child("producer_killed_between_claim_and_commit", p.to_str().unwrap()).wait().unwrap();
    assert!(!st.success(), "child was killed");
    let b = Bridge::connect(&p).unwrap();
    let mut cols = Cols::new();
    cols.push(0, 5, b"after the dead producer");
    assert!(b.publish_batch(&cols.topics, &cols.senders, &cols.payloads, &cols.offsets).unwrap().all_accepted());
    let t0 = Instant::now();
    let mut got = vec![];
    while got.is_empty() {
        c.drain(100, monotonic_ns(), |m| got.push(m.payload.to_vec()));
        // Bound: timeout + one drain call (here plus a 1 ms sleep); generous slack for a loaded CI machine.
        assert!(t0.elapsed() < timeout + Duration::from_millis(500), "shard did not resume within the bound");
        std::thread::sleep(Duration::from_millis(1));
    }
    let waited = t0.elapsed();
    assert!(waited >= timeout, "unblocked too early: {waited:?}");
    assert_eq!(got, vec![b"after the dead producer".to_vec()]);
    assert_eq!(r.stats().shards[0].unblocked, 1);
}
