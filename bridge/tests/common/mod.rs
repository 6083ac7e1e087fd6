#![allow(dead_code)]
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use tachyon_bridge::{IngressConsumer, Layout};

static N: AtomicU32 = AtomicU32::new(0);

/// A unique path under /dev/shm, removed by the region's drop (or by `Cleanup`).
pub fn tmp_path(name: &str) -> PathBuf {
    let n = N.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(format!("/dev/shm/tachyon-bridge-test-{}-{name}-{n}", std::process::id()))
}

pub struct Cleanup(pub PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn small(shards: u32) -> Layout {
    Layout {
        shards,
        ingress_ring_bytes: 1 << 16,
        subscriber_slots: 4,
        subscriber_ring_bytes: 1 << 13,
        max_message_bytes: 1024,
    }
}

/// Arrow-style columns for a batch.
pub struct Cols {
    pub topics: Vec<u32>,
    pub senders: Vec<u32>,
    pub payloads: Vec<u8>,
    pub offsets: Vec<u64>,
}

impl Cols {
    pub fn new() -> Self {
        Cols { topics: vec![], senders: vec![], payloads: vec![], offsets: vec![0] }
    }
    pub fn push(&mut self, topic: u32, sender: u32, p: &[u8]) {
        self.topics.push(topic);
        self.senders.push(sender);
        self.payloads.extend_from_slice(p);
        self.offsets.push(self.payloads.len() as u64);
    }
}

/// Drain everything currently available into owned (topic, sender, payload) triples.
pub fn drain_all(c: &mut IngressConsumer, now: u64) -> Vec<(u32, u32, Vec<u8>)> {
    let mut out = vec![];
    loop {
        let r = c.drain(1000, now, |m| out.push((m.topic, m.sender, m.payload.to_vec())));
        if r.released_bytes == 0 {
            return out;
        }
    }
}

/// Re-exec this test binary running only `test` with `TB_CHILD=role`.
pub fn spawn_child(test: &str, role: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env("TB_CHILD", role)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

pub fn child_role() -> Option<String> {
    std::env::var("TB_CHILD").ok()
}

pub fn kill_self() -> ! {
    // SAFETY: plain syscalls.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    unreachable!()
}
