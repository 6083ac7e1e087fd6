//! Appliance side: create the region, hand out per-shard consumers and fan-outs, reap.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::egress::{self, ACTIVE, CLAIMED, EgressWriter, FREE, RECLAIMING, SlotView, ectl};
use crate::error::BridgeError;
use crate::layout::{HEADER_BYTES, Header, INGRESS_CTL_BYTES, Layout, MAGIC};
use crate::ring::{ConsumerCore, Ctr, DrainReport, Message, RingMem};
use crate::shm::{self, Mapping, ShmRing};
use crate::sync::Ordering;

/// Default time a stalled ingress record may block its shard before it is skipped.
pub const DEFAULT_UNBLOCK_TIMEOUT: Duration = Duration::from_millis(100);

struct Shared {
    map: Arc<Mapping>,
    header: Header,
    consumer_taken: Vec<AtomicBool>,
    fanout_live: Vec<AtomicBool>,
}

/// The appliance's region: creator, liveness-lock holder, and owner of the file.
/// Dropping it (clean exit) unlinks the file; the liveness lock lasts while any
/// [`IngressConsumer`] or [`SubscriberFanout`] still maps it.
pub struct Region {
    shared: Arc<Shared>,
    path: PathBuf,
    replaced_stale: bool,
    ino: (u64, u64),
}

fn cpath(p: &Path) -> Result<CString, BridgeError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| BridgeError::BadHeader("path contains NUL".into()))
}

fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(shm::monotonic_ns());
    h.write_u32(std::process::id());
    h.finish()
}

/// Whether an unlocked file at the region path may be replaced: it is a bridge region
/// (magic at offset 0), or what a creator that crashed mid-creation leaves behind: an
/// empty or all-zero file, possibly with a header page that has everything but the magic
/// (the magic is written last). Anything else belongs to someone else.
fn looks_like_stale_region(f: &File) -> Result<bool, BridgeError> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata().map_err(|e| BridgeError::io("fstat existing region", e))?.size();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        let want = (len - pos).min(buf.len() as u64) as usize;
        let got = match f.read_at(&mut buf[..want], pos) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BridgeError::io("read existing region", e)),
        };
        let chunk = &buf[..got];
        if pos == 0 {
            if chunk.len() >= MAGIC.len() && chunk[..MAGIC.len()] == MAGIC {
                return Ok(true);
            }
            if chunk.iter().take(MAGIC.len()).any(|&b| b != 0) {
                return Ok(false);
            }
            // No magic yet: the rest of the header page must be zero or a header that was
            // written up to (but not including) the magic.
            let page = (HEADER_BYTES as usize).min(chunk.len());
            if chunk[..page].iter().any(|&b| b != 0) && !is_header_without_magic(&chunk[..page]) {
                return Ok(false);
            }
            if chunk[page..].iter().any(|&b| b != 0) {
                return Ok(false);
            }
        } else if chunk.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += got as u64;
    }
    Ok(true)
}

fn is_header_without_magic(page: &[u8]) -> bool {
    if page.len() < HEADER_BYTES as usize {
        return false;
    }
    let mut p = page.to_vec();
    p[..MAGIC.len()].copy_from_slice(&MAGIC);
    Header::decode(&p, u64::MAX).is_ok()
}

impl Region {
    /// Create the region at `path` with permissions `mode` (e.g. `0o660`, applied with
    /// `fchmod` so the umask does not matter) and optionally group `group`.
    ///
    /// If `path` exists and another appliance holds its liveness lock, fails with
    /// [`BridgeError::AlreadyOwned`]. If it exists unlocked and is a bridge region (magic
    /// `TYBRIDGE` at offset 0) or what a creator that crashed mid-creation leaves (an empty
    /// or all-zero file, possibly with a header page missing only its magic), it is stale:
    /// it is unlinked and recreated, and [`Region::replaced_stale`] says so. Any other file
    /// is left alone and `create` fails with [`BridgeError::Io`] of kind `AlreadyExists`
    /// ("PATH exists and is not a Tachyon bridge region; remove it or choose another
    /// --bridge path").
    pub fn create(
        path: impl AsRef<Path>,
        layout: Layout,
        mode: u32,
        group: Option<libc::gid_t>,
    ) -> Result<Region, BridgeError> {
        let path = path.as_ref().to_path_buf();
        layout.validate()?;
        let geo = layout.geometry();
        let mut replaced_stale = false;
        match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => {
                use std::os::fd::AsRawFd;
                if shm::is_locked(f.as_raw_fd(), 0)? {
                    return Err(BridgeError::AlreadyOwned { path });
                }
                if !looks_like_stale_region(&f)? {
                    return Err(BridgeError::io(
                        "Region::create",
                        std::io::Error::new(
                            std::io::ErrorKind::AlreadyExists,
                            format!(
                                "{} exists and is not a Tachyon bridge region; remove it or choose another --bridge path",
                                path.display()
                            ),
                        ),
                    ));
                }
                std::fs::remove_file(&path)
                    .map_err(|e| BridgeError::io(format!("unlink stale {}", path.display()), e))?;
                replaced_stale = true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BridgeError::io(format!("open {}", path.display()), e)),
        }
        let c = cpath(&path)?;
        // SAFETY: valid NUL-terminated path; the returned fd is checked and owned below.
        let fd =
            unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC, 0o600) };
        if fd < 0 {
            return Err(BridgeError::last_os(format!("create {}", path.display())));
        }
        // SAFETY: fd is a freshly opened descriptor nobody else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        let fail = |op: &str| {
            let e = BridgeError::last_os(format!("{op} {}", path.display()));
            let _ = std::fs::remove_file(&path);
            e
        };
        // SAFETY: plain syscalls on an owned fd.
        if unsafe { libc::fchmod(fd, mode as libc::mode_t) } != 0 {
            return Err(fail("fchmod"));
        }
        if let Some(g) = group {
            // SAFETY: as above; uid -1 leaves the owner unchanged.
            if unsafe { libc::fchown(fd, u32::MAX, g) } != 0 {
                return Err(fail("fchown"));
            }
        }
        if !shm::try_lock(fd, 0)? {
            let _ = std::fs::remove_file(&path);
            return Err(BridgeError::AlreadyOwned { path });
        }
        // SAFETY: as above.
        if unsafe { libc::ftruncate(fd, geo.total_len as libc::off_t) } != 0 {
            return Err(fail("ftruncate"));
        }
        let md = file.metadata().map_err(|e| BridgeError::io("fstat", e))?;
        let ino = (md.dev(), md.ino());
        let map = Arc::new(Mapping::map(file, geo.total_len)?);
        let header = Header { layout, geometry: geo, creator_pid: std::process::id(), nonce: nonce() };
        let mut page = vec![0u8; HEADER_BYTES as usize];
        header.encode(&mut page);
        // Write everything but the magic, then the magic last: a client that races the
        // creation sees no magic (BadHeader) rather than a half-written header.
        // SAFETY: the header page is in bounds and nobody reads it before the magic is set.
        unsafe { std::ptr::copy_nonoverlapping(page.as_ptr().add(8), map.ptr(8, HEADER_BYTES - 8), page.len() - 8) };
        std::sync::atomic::fence(Ordering::Release);
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(page.as_ptr(), map.ptr(0, 8), 8) };
        let n = layout.shards as usize;
        let shared = Arc::new(Shared {
            map,
            header,
            consumer_taken: (0..n).map(|_| AtomicBool::new(false)).collect(),
            fanout_live: (0..n).map(|_| AtomicBool::new(false)).collect(),
        });
        Ok(Region { shared, path, replaced_stale, ino })
    }

    /// Path of the region file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when `create` found and replaced a stale region left by a dead appliance.
    pub fn replaced_stale(&self) -> bool {
        self.replaced_stale
    }

    /// The region's header.
    pub fn header(&self) -> &Header {
        &self.shared.header
    }

    fn ring(&self, shard: u32) -> ShmRing {
        let g = &self.shared.header.geometry;
        ShmRing::new(
            self.shared.map.clone(),
            g.ingress_offset + g.ingress_stride * u64::from(shard),
            INGRESS_CTL_BYTES,
            u64::from(self.shared.header.layout.ingress_ring_bytes),
        )
    }

    /// The consumer of `shard`'s ingress ring, for that shard's worker. Handed out once:
    /// `None` if already taken or `shard` is out of range.
    pub fn ingress_consumer(&self, shard: u32) -> Option<IngressConsumer> {
        let taken = self.shared.consumer_taken.get(shard as usize)?;
        if taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        let ring = self.ring(shard);
        let core = ConsumerCore::new(
            &ring,
            self.shared.header.layout.max_message_bytes,
            DEFAULT_UNBLOCK_TIMEOUT.as_nanos() as u64,
        );
        Some(IngressConsumer { ring, core, shard })
    }

    /// The subscriber fan-out of `shard`'s worker. Handed out once per shard (again
    /// after the previous one was dropped); `None` otherwise.
    pub fn fanout(&self, shard: u32) -> Option<SubscriberFanout> {
        let live = self.shared.fanout_live.get(shard as usize)?;
        if live.swap(true, Ordering::AcqRel) {
            return None;
        }
        let slots = self.shared.header.layout.subscriber_slots as usize;
        Some(SubscriberFanout {
            shared: self.shared.clone(),
            shard,
            slots: (0..slots).map(|_| LocalSlot::default()).collect(),
            active: Vec::new(),
            seen_epoch: u64::MAX,
        })
    }

    /// Free the slots of subscribers that are gone (their slot lock is not held) or that
    /// released their slot. Two phases: the slot is first marked reclaiming; once every
    /// live worker fan-out has seen that in a `refresh` and stopped writing, a later call
    /// resets its rings, bumps its generation and frees it. Call it periodically (e.g. on
    /// the control lcore). Returns how many slots were freed by this call.
    pub fn reap_dead_subscribers(&self) -> Result<usize, BridgeError> {
        let sh = &self.shared;
        let h = &sh.header;
        let fd = sh.map.fd();
        let mut freed = 0;
        for s in 0..h.layout.subscriber_slots {
            let v = SlotView { map: &sh.map, off: egress::slot_off(&h.geometry, s) };
            let st = v.state().load(Ordering::SeqCst);
            if (st == CLAIMED || st == ACTIVE)
                && !shm::is_locked(fd, v.lock_byte())?
                && v.state().compare_exchange(st, RECLAIMING, Ordering::SeqCst, Ordering::SeqCst).is_ok()
            {
                // Workers must look again (and acknowledge) before the reset below.
                crate::client::bump_subscription_epoch(&sh.map);
            } else if st != RECLAIMING {
                continue;
            }
            let gen_ = v.generation().load(Ordering::SeqCst);
            let quiet = (0..h.layout.shards).all(|w| {
                !sh.fanout_live[w as usize].load(Ordering::SeqCst)
                    || sh
                        .map
                        .u64_at(egress::egress_off(&h.geometry, h.layout.shards, s, w) + ectl::QUIESCED)
                        .load(Ordering::SeqCst)
                        == u64::from(gen_) + 1
            });
            if !quiet {
                continue;
            }
            for w in 0..h.layout.shards {
                let o = egress::egress_off(&h.geometry, h.layout.shards, s, w);
                for c in [ectl::TAIL, ectl::HEAD, ectl::OVERFLOW] {
                    sh.map.u64_at(o + c).store(0, Ordering::Relaxed);
                }
            }
            v.pid().store(0, Ordering::Relaxed);
            v.write_filter(Some(&[]));
            v.generation().store(gen_.wrapping_add(1), Ordering::Release);
            v.state().store(FREE, Ordering::Release);
            crate::client::bump_subscription_epoch(&sh.map);
            freed += 1;
        }
        Ok(freed)
    }

    /// Counters and occupancy of every shard and subscriber slot.
    pub fn stats(&self) -> RegionStats {
        let sh = &self.shared;
        let h = &sh.header;
        let shards = (0..h.layout.shards)
            .map(|s| {
                let r = self.ring(s);
                let c = |x| r.ctr(x).load(Ordering::Relaxed);
                let accepted = c(Ctr::AcceptedMsgs);
                ShardStats {
                    ring_depth_bytes: crate::ring::depth(&r),
                    in_flight_msgs: accepted.saturating_sub(c(Ctr::ConsumedMsgs)),
                    accepted_msgs: accepted,
                    accepted_batches: c(Ctr::AcceptedBatches),
                    refused_batches: c(Ctr::RefusedBatches),
                    unblocked: c(Ctr::Unblocked),
                    malformed_msgs: c(Ctr::MalformedMsgs),
                    malformed_blocks: c(Ctr::MalformedBlocks),
                }
            })
            .collect();
        let slots = (0..h.layout.subscriber_slots)
            .map(|s| {
                let v = SlotView { map: &sh.map, off: egress::slot_off(&h.geometry, s) };
                let active = v.state().load(Ordering::Acquire) == ACTIVE;
                let (all_topics, topics) = if active { v.filter() } else { (false, Vec::new()) };
                let overflow = (0..h.layout.shards)
                    .map(|w| {
                        sh.map
                            .u64_at(egress::egress_off(&h.geometry, h.layout.shards, s, w) + ectl::OVERFLOW)
                            .load(Ordering::Relaxed)
                    })
                    .sum();
                SlotStats { active, pid: v.pid().load(Ordering::Relaxed), all_topics, topics, overflow }
            })
            .collect();
        RegionStats { shards, slots }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // Unlink only if the path still names our file.
        if let Ok(md) = std::fs::metadata(&self.path)
            && (md.dev(), md.ino()) == self.ino
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Per-shard ingress counters and occupancy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Bytes between the consumer's head and the producers' tail.
    pub ring_depth_bytes: u64,
    /// Accepted minus consumed messages (an estimate: malformed and unblocked ones stay counted).
    pub in_flight_msgs: u64,
    /// Messages in accepted batch parts.
    pub accepted_msgs: u64,
    /// Accepted batch parts.
    pub accepted_batches: u64,
    /// Refused batch parts (ring full, contention, corrupt ring, unblocked before commit).
    pub refused_batches: u64,
    /// Stalled records skipped by the unblocker, and CONT blocks dropped because the
    /// HEAD of their (split) part was skipped.
    pub unblocked: u64,
    /// Malformed messages skipped.
    pub malformed_msgs: u64,
    /// Malformed records or insane control words.
    pub malformed_blocks: u64,
}

/// Per subscriber slot summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotStats {
    /// The slot is active (receiving).
    pub active: bool,
    /// Pid of the subscriber that claimed the slot (0 when free).
    pub pid: u32,
    /// Subscribed to every topic.
    pub all_topics: bool,
    /// Exact topics subscribed to (empty with `all_topics`).
    pub topics: Vec<u32>,
    /// Messages dropped because the subscriber did not read, summed over shards.
    pub overflow: u64,
}

/// Snapshot of the whole region.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionStats {
    /// One entry per shard.
    pub shards: Vec<ShardStats>,
    /// One entry per subscriber slot.
    pub slots: Vec<SlotStats>,
}

/// Consumer of one shard's ingress ring (owned by that shard's worker).
///
/// **Unblock bound**: a record left in progress or unwritten by a producer that died
/// (or stalled) after claiming blocks its shard for at most `unblock_timeout` plus one
/// `drain` call: the first drain that sees it stalled starts the clock, the first drain
/// at or after `start + unblock_timeout` skips it (counted as `unblocked`). Only that
/// shard waits; producers to other shards are unaffected.
pub struct IngressConsumer {
    ring: ShmRing,
    core: ConsumerCore,
    shard: u32,
}

impl IngressConsumer {
    /// The shard this consumer serves.
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// Set how long a stalled record may block the shard before it is skipped.
    pub fn set_unblock_timeout(&mut self, t: Duration) {
        self.core.unblock_timeout_ns = t.as_nanos().min(u128::from(u64::MAX)) as u64;
    }

    /// True when [`drain`](Self::drain) would find nothing to take or repair: two
    /// loads of the ring's control line, for a worker to skip its bridge stage
    /// in rounds when no client publishes.
    pub fn is_idle(&self) -> bool {
        self.core.is_idle(&self.ring)
    }

    /// Deliver up to about `budget_msgs` messages (whole records: the record that reaches
    /// the budget is finished) to `f`, by reference, in ring order; skip and count
    /// malformed input; zero the consumed bytes and publish the head once.
    /// `now_ns` is a monotonic clock (e.g. [`crate::monotonic_ns`]) used by the unblocker.
    pub fn drain(&mut self, budget_msgs: usize, now_ns: u64, f: impl FnMut(Message<'_>)) -> DrainReport {
        self.core.drain(&self.ring, budget_msgs, now_ns, f)
    }
}

#[derive(Default)]
struct LocalSlot {
    active: bool,
    generation: u32,
    all: bool,
    topics: Vec<u32>,
    ring: Option<EgressWriter>,
    acked: u64,
}

/// A worker's writer into every subscriber's egress ring for its shard.
/// Call [`refresh`](Self::refresh) once per poll round, [`deliver_one`](Self::deliver_one)
/// per forwarded message, and [`flush`](Self::flush) at the end of the round (tails are
/// published only there).
pub struct SubscriberFanout {
    shared: Arc<Shared>,
    shard: u32,
    slots: Vec<LocalSlot>,
    active: Vec<usize>,
    /// The subscription epoch at the last refresh (`u64::MAX`: never refreshed).
    seen_epoch: u64,
}

// SAFETY: the raw pointers inside the egress writers point into the mapping kept alive
// by `shared`; the fan-out is used by one thread at a time (`&mut self`).
unsafe impl Send for SubscriberFanout {}

impl SubscriberFanout {
    /// [`refresh`](Self::refresh) only when a subscriber came, went or is being
    /// reclaimed since the last look: one load of a read-mostly word. Call it
    /// after draining and before delivering what was drained: a message
    /// published after `subscribe` returned was committed after the epoch
    /// moved, so a worker that has read the message sees the new epoch too.
    /// A slot being reclaimed also waits for this (the acknowledgement is in
    /// `refresh`), so call it at least once per poll round.
    #[inline]
    pub fn refresh_if_changed(&mut self) {
        let epoch = self.shared.map.u64_at(crate::layout::off::SUBSCRIPTION_EPOCH as u64).load(Ordering::Acquire);
        if epoch != self.seen_epoch {
            self.seen_epoch = epoch;
            self.refresh();
        }
    }

    /// Re-read which slots are active and their filters (copied when the generation changes).
    pub fn refresh(&mut self) {
        let sh = &self.shared;
        let h = &sh.header;
        self.active.clear();
        for (s, loc) in self.slots.iter_mut().enumerate() {
            let v = SlotView { map: &sh.map, off: egress::slot_off(&h.geometry, s as u32) };
            let st = v.state().load(Ordering::Acquire);
            let gen_ = v.generation().load(Ordering::Acquire);
            let ring_off = egress::egress_off(&h.geometry, h.layout.shards, s as u32, self.shard);
            if st == ACTIVE && loc.active && loc.generation == gen_ {
                self.active.push(s);
                continue;
            }
            if loc.active {
                if let Some(r) = loc.ring.as_mut() {
                    r.flush(&sh.map);
                }
                loc.active = false;
                loc.ring = None;
            }
            if st == ACTIVE {
                // Withdraw the acknowledgement before writing (SeqCst store, then SeqCst
                // re-check of the state), so the reaper can never reset a ring we write.
                let q = sh.map.u64_at(ring_off + ectl::QUIESCED);
                q.store(0, Ordering::SeqCst);
                loc.acked = 0;
                if v.state().load(Ordering::SeqCst) != ACTIVE || v.generation().load(Ordering::SeqCst) != gen_ {
                    continue;
                }
                let (all, topics) = v.filter();
                loc.all = all;
                loc.topics = topics;
                loc.generation = gen_;
                loc.active = true;
                loc.ring = Some(EgressWriter::new(&sh.map, ring_off, u64::from(h.layout.subscriber_ring_bytes)));
                self.active.push(s);
            } else if loc.acked != u64::from(gen_) + 1 {
                loc.acked = u64::from(gen_) + 1;
                sh.map.u64_at(ring_off + ectl::QUIESCED).store(loc.acked, Ordering::SeqCst);
            }
        }
    }

    /// True when at least one subscriber slot is active (after the last refresh).
    #[inline]
    pub fn any_active(&self) -> bool {
        !self.active.is_empty()
    }

    /// Deliver one message to every matching subscriber of this shard. A full ring drops
    /// it and counts `overflow` for that ring only.
    #[inline]
    pub fn deliver_one(&mut self, topic: u32, sender: u32, payload: &[u8]) {
        if self.active.is_empty() {
            return;
        }
        for &s in &self.active {
            let loc = &mut self.slots[s];
            if (loc.all || loc.topics.binary_search(&topic).is_ok())
                && let Some(r) = loc.ring.as_mut()
            {
                r.push(&self.shared.map, topic, sender, payload);
            }
        }
    }

    /// Deliver several messages of one topic and sender (e.g. one frame's records).
    pub fn deliver<'a>(&mut self, topic: u32, sender: u32, payloads: impl Iterator<Item = &'a [u8]>) {
        if self.active.is_empty() {
            return;
        }
        for p in payloads {
            self.deliver_one(topic, sender, p);
        }
    }

    /// Publish the tails (and overflow counters) of every ring written since the last flush.
    pub fn flush(&mut self) {
        for &s in &self.active {
            if let Some(r) = self.slots[s].ring.as_mut() {
                r.flush(&self.shared.map);
            }
        }
    }
}

impl Drop for SubscriberFanout {
    fn drop(&mut self) {
        self.flush();
        self.shared.fanout_live[self.shard as usize].store(false, Ordering::SeqCst);
    }
}
