mod common;
use common::*;
use std::time::{Duration, Instant};
use tachyon_bridge::{Bridge, BridgeError, Layout, Region};

fn forward(r: &Region, shards: u32) -> impl FnMut() -> usize {
    let mut cs: Vec<_> = (0..shards).map(|s| r.ingress_consumer(s).unwrap()).collect();
    let mut fs: Vec<_> = (0..shards).map(|s| r.fanout(s).unwrap()).collect();
    move || {
        let mut n = 0;
        for (c, f) in cs.iter_mut().zip(fs.iter_mut()) {
            f.refresh();
            n += c.drain(10_000, 0, |m| f.deliver_one(m.topic, m.sender, m.payload)).delivered;
            f.flush();
        }
        n
    }
}

fn pub1(b: &Bridge, topic: u32, payload: &[u8]) {
    let mut c = Cols::new();
    c.push(topic, 42, payload);
    assert!(b.publish_batch(&c.topics, &c.senders, &c.payloads, &c.offsets).unwrap().all_accepted());
}

#[test]
fn filters_and_columns() {
    let p = tmp_path("filter");
    let r = Region::create(&p, small(2), 0o660, None).unwrap();
    let mut fwd = forward(&r, 2);
    let b = Bridge::connect(&p).unwrap();
    let mut only3 = b.subscribe(Some(&[3])).unwrap();
    let mut all = b.subscribe(None).unwrap();
    let mut c = Cols::new();
    for t in 0..6u32 {
        c.push(t, 100 + t, format!("m{t}").as_bytes());
    }
    fwd(); // workers see the new slots
    assert!(b.publish_batch(&c.topics, &c.senders, &c.payloads, &c.offsets).unwrap().all_accepted());
    assert_eq!(fwd(), 6);
    let batch = only3.poll(Some(Duration::from_millis(100))).unwrap().unwrap();
    assert_eq!(batch.topics(), &[3]);
    assert_eq!(batch.senders(), &[103]);
    assert_eq!(batch.offsets(), &[0, 2]);
    assert_eq!(batch.payloads(), b"m3");
    let batch = all.poll(Some(Duration::ZERO)).unwrap().unwrap();
    assert_eq!(batch.len(), 6);
    let mut topics = batch.topics().to_vec();
    topics.sort();
    assert_eq!(topics, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(batch.offsets().len(), 7);
    for i in 0..6 {
        assert_eq!(batch.payload(i), format!("m{}", batch.topics()[i]).as_bytes());
    }
    assert!(only3.poll(Some(Duration::from_millis(5))).unwrap().is_none(), "timeout gives None");
    let st = r.stats();
    assert!(st.slots[0].active && st.slots[1].active);
    assert_eq!(st.slots[0].topics, vec![3]);
    assert!(st.slots[1].all_topics);
    assert_eq!(st.slots[0].pid, std::process::id());
    assert!(matches!(b.subscribe(Some(&[0; 65])), Err(BridgeError::TooManyTopics { .. })));
}

#[test]
fn overflow_is_per_subscriber() {
    let p = tmp_path("overflow");
    let r = Region::create(&p, small(1), 0o660, None).unwrap();
    let mut fwd = forward(&r, 1);
    let b = Bridge::connect(&p).unwrap();
    let mut slow = b.subscribe(None).unwrap();
    let mut fast = b.subscribe(None).unwrap();
    fwd();
    let payload = [7u8; 200]; // 216-byte records, 8 KiB rings: about 37 fit
    let mut fast_got = 0;
    for _ in 0..100 {
        pub1(&b, 0, &payload);
        fwd();
        if let Some(bt) = fast.poll(Some(Duration::ZERO)).unwrap() {
            fast_got += bt.len();
        }
    }
    assert_eq!(fast_got, 100);
    assert_eq!(fast.overflow(), 0);
    let got = slow.poll(Some(Duration::ZERO)).unwrap().unwrap().len() as u64;
    assert!(slow.overflow() > 0);
    assert_eq!(got + slow.overflow(), 100);
    assert_eq!(r.stats().slots[slow.slot() as usize].overflow, slow.overflow());
    // After reading it receives again.
    pub1(&b, 0, &payload);
    fwd();
    assert_eq!(slow.poll(Some(Duration::ZERO)).unwrap().unwrap().len(), 1);
}

#[test]
fn a_record_ending_eight_bytes_before_the_ring_end_loses_nothing() {
    let p = tmp_path("gap8");
    let r = Region::create(&p, small(1), 0o660, None).unwrap();
    let mut fwd = forward(&r, 1);
    let b = Bridge::connect(&p).unwrap();
    let mut sub = b.subscribe(None).unwrap();
    fwd();
    // 8-byte payloads make 24-byte records: 8 KiB rings leave an 8-byte gap at
    // the end, too small for a padding header, on every lap.
    let mut got = Vec::new();
    for i in 0..2000u64 {
        pub1(&b, 1, &i.to_le_bytes());
        fwd();
        let batch = sub.poll(Some(Duration::ZERO)).unwrap();
        got.extend(batch.iter().flat_map(|bt| (0..bt.len()).map(|k| bt.payload(k).to_vec())).collect::<Vec<_>>());
    }
    let want: Vec<Vec<u8>> = (0..2000u64).map(|i| i.to_le_bytes().to_vec()).collect();
    assert_eq!(sub.overflow(), 0);
    assert_eq!(got.len(), want.len(), "messages lost at the ring's end");
    assert!(got == want);
}

#[test]
fn dead_subscriber_is_reaped_and_slot_reused() {
    if let Some(path) = child_role() {
        let b = Bridge::connect(&path).unwrap();
        let _s = b.subscribe(Some(&[1])).unwrap();
        kill_self();
    }
    let p = tmp_path("reap");
    let layout = Layout { subscriber_slots: 1, ..small(2) };
    let r = Region::create(&p, layout, 0o660, None).unwrap();
    let mut fwd = forward(&r, 2);
    assert!(!spawn_child("dead_subscriber_is_reaped_and_slot_reused", p.to_str().unwrap()).wait().unwrap().success());
    let b = Bridge::connect(&p).unwrap();
    fwd(); // workers deliver to the dead slot until reaped
    pub1(&b, 1, b"for the dead");
    fwd();
    assert!(r.stats().slots[0].active);
    assert!(matches!(b.subscribe(None), Err(BridgeError::NoFreeSlot { slots: 1 })));
    assert_eq!(r.reap_dead_subscribers().unwrap(), 0, "phase 1: workers must stop writing first");
    fwd();
    assert_eq!(r.reap_dead_subscribers().unwrap(), 1);
    assert!(!r.stats().slots[0].active);
    let mut s = b.subscribe(None).unwrap();
    assert!(s.poll(Some(Duration::ZERO)).unwrap().is_none(), "no leftovers from the dead subscriber");
    fwd();
    pub1(&b, 1, b"for the living");
    fwd();
    assert_eq!(s.poll(Some(Duration::ZERO)).unwrap().unwrap().payloads(), b"for the living");
    assert_eq!(r.reap_dead_subscribers().unwrap(), 0, "a live subscriber is not reaped");
    // Clean drop releases the slot too.
    drop(s);
    fwd();
    r.reap_dead_subscribers().unwrap();
    fwd();
    r.reap_dead_subscribers().unwrap();
    assert!(b.subscribe(None).is_ok());
}

#[test]
fn poll_reports_appliance_gone() {
    let p = tmp_path("gone");
    let r = Region::create(&p, small(1), 0o660, None).unwrap();
    let b = Bridge::connect(&p).unwrap();
    let mut s = b.subscribe(None).unwrap();
    let t = Instant::now();
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        drop(r);
    });
    assert!(matches!(s.poll(None), Err(BridgeError::ApplianceGone)));
    assert!(t.elapsed() < Duration::from_secs(2));
    h.join().unwrap();
}

#[test]
fn poll_owned_hands_the_columns_over_and_recycles_them() {
    let p = tmp_path("owned");
    let r = Region::create(&p, small(2), 0o660, None).unwrap();
    let mut fwd = forward(&r, 2);
    let b = Bridge::connect(&p).unwrap();
    let mut sub = b.subscribe(None).unwrap();
    fwd();
    let mut c = Cols::new();
    for t in 0..4u32 {
        c.push(t, 200 + t, format!("msg{t}").as_bytes());
    }
    assert!(b.publish_batch(&c.topics, &c.senders, &c.payloads, &c.offsets).unwrap().all_accepted());
    assert_eq!(fwd(), 4);
    let first = sub.poll_owned(Some(Duration::from_millis(100))).unwrap().unwrap();
    assert_eq!(first.len(), 4);
    assert_eq!(first.offsets.len(), 5);
    assert_eq!(first.offsets[0], 0);
    let mut got: Vec<(u32, u32, Vec<u8>)> =
        (0..first.len()).map(|i| (first.topics[i], first.senders[i], first.payload(i).to_vec())).collect();
    got.sort();
    let want: Vec<(u32, u32, Vec<u8>)> = (0..4u32).map(|t| (t, 200 + t, format!("msg{t}").into_bytes())).collect();
    assert_eq!(got, want);
    // The caller owns the vectors: a later poll does not touch them.
    let payload_ptr = first.payloads.as_ptr();
    let topics_ptr = first.topics.as_ptr();
    pub1(&b, 1, b"second");
    assert_eq!(fwd(), 1);
    let second = sub.poll_owned(Some(Duration::from_millis(100))).unwrap().unwrap();
    assert_eq!((second.topics.as_slice(), second.senders.as_slice()), (&[1u32][..], &[42u32][..]));
    assert_eq!((second.offsets.as_slice(), second.payloads.as_slice()), (&[0u64, 6][..], &b"second"[..]));
    assert_ne!(second.payloads.as_ptr(), payload_ptr, "fresh vectors, not the handed-over ones");
    assert_eq!(first.payload(0).len(), 4, "the first batch is intact");
    assert!(sub.poll_owned(Some(Duration::from_millis(5))).unwrap().is_none(), "timeout gives None");
    // Recycled vectors are reused (their allocation), cleared.
    let cap = first.topics.capacity();
    sub.recycle(first);
    assert_eq!(sub.recycled(), 1);
    pub1(&b, 3, b"third");
    assert_eq!(fwd(), 1);
    // This poll gathers into the current (fresh) set and hands it over; the recycled set
    // becomes the gathering set for the poll after it.
    let third = sub.poll_owned(Some(Duration::from_millis(100))).unwrap().unwrap();
    assert_eq!(third.payload(0), b"third");
    assert_eq!(sub.recycled(), 0);
    pub1(&b, 0, b"fourth");
    assert_eq!(fwd(), 1);
    let fourth = sub.poll_owned(Some(Duration::from_millis(100))).unwrap().unwrap();
    assert_eq!(fourth.topics.as_ptr(), topics_ptr, "the recycled allocation was reused");
    assert!(fourth.topics.capacity() >= cap);
    assert_eq!((fourth.len(), fourth.payload(0)), (1, &b"fourth"[..]));
    // The pool is bounded; the borrowing poll still works alongside.
    for _ in 0..10 {
        sub.recycle(tachyon_bridge::OwnedBatch::default());
    }
    assert_eq!(sub.recycled(), 4);
    pub1(&b, 2, b"fifth");
    assert_eq!(fwd(), 1);
    let batch = sub.poll(Some(Duration::from_millis(100))).unwrap().unwrap();
    assert_eq!((batch.len(), batch.payload(0)), (1, &b"fifth"[..]));
    drop(fwd);
    drop(r);
    assert!(matches!(sub.poll_owned(Some(Duration::from_millis(5))), Err(BridgeError::ApplianceGone)));
}
