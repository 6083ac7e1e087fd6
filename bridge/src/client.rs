//! Client side: connect, publish batches, subscribe.

use std::cell::RefCell;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::egress::{self, ACTIVE, CLAIMED, Columns, FREE, RECLAIMING, SlotView, ectl};
use crate::error::BridgeError;
use crate::layout::{self, HEADER_BYTES, Header, INGRESS_CTL_BYTES, MAX_FILTER_TOPICS};
use crate::ring::{self, BLOCK_HDR, Ctr, HDR, RingMem, msg_bytes};
use crate::shm::{self, Mapping, ShmRing};
use crate::sync::Ordering;

/// A client's connection to the appliance's bridge region. `Sync`: several threads may
/// publish through one `&Bridge` at once.
pub struct Bridge {
    map: Arc<Mapping>,
    header: Header,
    path: PathBuf,
    rings: Vec<ShmRing>,
    pid: u32,
    /// The appliance understands split parts (parts larger than half a ring).
    split_parts: bool,
}

/// Outcome of [`Bridge::publish_batch`]. Each shard's part is accepted whole or refused
/// whole; check [`PublishReport::all_accepted`] (or `refused_shards.is_empty()`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Messages accepted per shard (index = shard).
    pub accepted: Vec<u64>,
    /// Shards whose part was refused (ring full, contention, or a corrupt ring).
    pub refused_shards: Vec<u32>,
}

impl PublishReport {
    /// True when nothing was refused.
    pub fn all_accepted(&self) -> bool {
        self.refused_shards.is_empty()
    }

    /// Total messages accepted.
    pub fn accepted_total(&self) -> u64 {
        self.accepted.iter().sum()
    }

    /// Per message of the published batch (same `topics`), whether it was accepted.
    pub fn accepted_mask(&self, topics: &[u32]) -> Vec<bool> {
        let shards = self.accepted.len().max(1) as u32;
        topics.iter().map(|t| !self.refused_shards.contains(&(t % shards))).collect()
    }
}

#[derive(Default)]
struct Scratch {
    counts: Vec<u32>,
    bytes: Vec<u64>,
    start: Vec<usize>,
    order: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Bridge {
    /// `/dev/shm/tachyon-<file_prefix>.bridge` (DPDK's default file prefix is `rte`).
    pub fn default_path(file_prefix: &str) -> PathBuf {
        PathBuf::from(format!("/dev/shm/tachyon-{file_prefix}.bridge"))
    }

    /// Open, map and fully validate the region, then check the appliance is alive.
    pub fn connect(path: impl AsRef<Path>) -> Result<Bridge, BridgeError> {
        let path = path.as_ref().to_path_buf();
        let file = match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BridgeError::NotFound { path }),
            Err(e) => return Err(BridgeError::io(format!("open {}", path.display()), e)),
        };
        let len = file.metadata().map_err(|e| BridgeError::io("fstat", e))?.size();
        if len < HEADER_BYTES {
            return Err(BridgeError::BadHeader(format!(
                "file is {len} bytes, shorter than the {HEADER_BYTES}-byte header"
            )));
        }
        let mut page = vec![0u8; HEADER_BYTES as usize];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut page, 0)
            .map_err(|e| BridgeError::io("read header", e))?;
        let header = Header::decode(&page, len)?;
        let split_parts = layout::features(&page) & layout::FEATURE_SPLIT_PARTS != 0;
        {
            use std::os::fd::AsRawFd;
            if !shm::is_locked(file.as_raw_fd(), 0)? {
                return Err(BridgeError::ApplianceGone);
            }
        }
        let map = Arc::new(Mapping::map(file, header.geometry.total_len)?);
        let g = &header.geometry;
        let rings = (0..header.layout.shards)
            .map(|s| {
                ShmRing::new(
                    map.clone(),
                    g.ingress_offset + g.ingress_stride * u64::from(s),
                    INGRESS_CTL_BYTES,
                    u64::from(header.layout.ingress_ring_bytes),
                )
            })
            .collect();
        Ok(Bridge { map, header, path, rings, pid: std::process::id(), split_parts })
    }

    /// Number of shards (a message goes to shard `topic % shards`).
    pub fn shards(&self) -> u32 {
        self.header.layout.shards
    }

    /// Largest payload accepted.
    pub fn max_message_bytes(&self) -> u32 {
        self.header.layout.max_message_bytes
    }

    /// Largest shard part [`publish_batch`](Self::publish_batch) accepts, in encoded bytes:
    /// a part (the messages of one batch that go to one shard) takes 16 bytes plus, per
    /// message, its payload length plus 12, rounded up to a multiple of 8. A larger part is
    /// refused with [`BridgeError::InvalidBatch`] before anything is published; split the
    /// batch. This is the ingress ring size minus 16 minus the largest message's size
    /// (the most a part can lose to padding at the ring's end), or half the ring when the
    /// appliance predates split parts. Even a part within the limit needs that much free
    /// ring, so a big part is refused as backpressure more often than a small one.
    pub fn max_part_bytes(&self) -> u64 {
        let cap = u64::from(self.header.layout.ingress_ring_bytes);
        if self.split_parts { ring::max_part_len(cap, msg_bytes(u64::from(self.max_message_bytes()))) } else { cap / 2 }
    }

    /// Path of the region file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Whether the appliance still holds its liveness lock (one `fcntl`).
    pub fn is_alive(&self) -> bool {
        shm::is_locked(self.map.fd(), 0).unwrap_or(false)
    }

    /// Publish a batch in Arrow binary-column layout: message `i` has topic `topics[i]`,
    /// sender `senders[i]` and payload `payloads[offsets[i]..offsets[i+1]]`.
    ///
    /// Everything is validated first; on error nothing is published. Messages are split by
    /// shard (`topic % shards`), keeping their order within a shard; each shard's part is
    /// written with one claim (one CAS; a part over half the ring that would straddle the
    /// ring's end is laid out as two blocks in that claim) and accepted or refused whole.
    /// A part over [`max_part_bytes`](Self::max_part_bytes) is an `InvalidBatch` error. A refused shard (ring full,
    /// i.e. backpressure) never blocks the call or other shards: the call returns `Ok`
    /// with the shard in `refused_shards`, and the caller decides whether to retry it
    /// (see [`PublishReport::accepted_mask`]). Never waits.
    pub fn publish_batch(
        &self,
        topics: &[u32],
        senders: &[u32],
        payloads: &[u8],
        offsets: &[u64],
    ) -> Result<PublishReport, BridgeError> {
        let n = topics.len();
        let shards = self.shards() as usize;
        if senders.len() != n {
            return Err(BridgeError::InvalidBatch(format!("{n} topics but {} senders", senders.len())));
        }
        if offsets.len() != n + 1 {
            return Err(BridgeError::InvalidBatch(format!(
                "{n} messages need {} offsets, got {}",
                n + 1,
                offsets.len()
            )));
        }
        let max = u64::from(self.max_message_bytes());
        let cap = u64::from(self.header.layout.ingress_ring_bytes);
        let max_msg_bytes = msg_bytes(max);
        SCRATCH.with(|sc| {
            let mut sc = sc.borrow_mut();
            let sc = &mut *sc;
            sc.counts.clear();
            sc.counts.resize(shards, 0);
            sc.bytes.clear();
            sc.bytes.resize(shards, HDR + BLOCK_HDR);
            for i in 0..n {
                let (a, b) = (offsets[i], offsets[i + 1]);
                if b < a {
                    return Err(BridgeError::InvalidBatch(format!("offsets[{}]={b} < offsets[{i}]={a}", i + 1)));
                }
                if b > payloads.len() as u64 {
                    return Err(BridgeError::InvalidBatch(format!(
                        "offsets[{}]={b} is past the end of the {}-byte payload buffer",
                        i + 1,
                        payloads.len()
                    )));
                }
                if b - a > max {
                    return Err(BridgeError::InvalidBatch(format!(
                        "message {i} is {} bytes, more than max_message_bytes {max}",
                        b - a
                    )));
                }
                let s = topics[i] as usize % shards;
                sc.counts[s] += 1;
                sc.bytes[s] += msg_bytes(b - a);
            }
            let limit = self.max_part_bytes();
            for s in 0..shards {
                if sc.counts[s] > 0 && sc.bytes[s] > limit {
                    return Err(BridgeError::InvalidBatch(format!(
                        "shard {s} part is {} bytes ({} messages), more than the {limit}-byte limit of one \
                         part on a {cap}-byte ingress ring (Bridge::max_part_bytes); split the batch",
                        sc.bytes[s], sc.counts[s]
                    )));
                }
            }
            // Counting sort of message indices by shard (order kept within a shard).
            sc.start.clear();
            let mut acc = 0usize;
            for s in 0..shards {
                sc.start.push(acc);
                acc += sc.counts[s] as usize;
            }
            sc.order.clear();
            sc.order.resize(n, 0);
            let mut fill = sc.start.clone();
            for (i, t) in topics.iter().enumerate() {
                let s = *t as usize % shards;
                sc.order[fill[s]] = i as u32;
                fill[s] += 1;
            }
            let mut report = PublishReport { accepted: vec![0; shards], refused_shards: Vec::new() };
            for s in 0..shards {
                let cnt = sc.counts[s];
                if cnt == 0 {
                    continue;
                }
                let idx = &sc.order[sc.start[s]..sc.start[s] + cnt as usize];
                let r = &self.rings[s];
                let size = |k: usize| {
                    let i = idx[k] as usize;
                    msg_bytes(offsets[i + 1] - offsets[i])
                };
                let res = ring::claim_part(r, idx.len(), size, sc.bytes[s], max_msg_bytes).and_then(|c| {
                    ring::fill_and_commit_part(r, &c, cnt, self.pid, |out, from, to| {
                        ring::pack_messages(
                            out,
                            idx[from..to].iter().map(|&i| {
                                let i = i as usize;
                                (topics[i], senders[i], &payloads[offsets[i] as usize..offsets[i + 1] as usize])
                            }),
                        )
                    })
                });
                match res {
                    Ok(()) => {
                        r.ctr(Ctr::AcceptedMsgs).fetch_add(u64::from(cnt), Ordering::Relaxed);
                        r.ctr(Ctr::AcceptedBatches).fetch_add(1, Ordering::Relaxed);
                        report.accepted[s] = u64::from(cnt);
                    }
                    Err(_) => {
                        r.ctr(Ctr::RefusedBatches).fetch_add(1, Ordering::Relaxed);
                        report.refused_shards.push(s as u32);
                    }
                }
            }
            Ok(report)
        })
    }

    /// Test hook: claim room for one message of `payload_len` bytes on `shard`, mark it in
    /// progress, and never commit it (simulates a producer dying mid-write).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn claim_without_commit(&self, shard: u32, payload_len: usize) -> Result<(), BridgeError> {
        let r = self.rings.get(shard as usize).ok_or_else(|| BridgeError::InvalidBatch(format!("no shard {shard}")))?;
        ring::claim(r, HDR + BLOCK_HDR + msg_bytes(payload_len as u64))
            .map(|_| ())
            .map_err(|e| BridgeError::InvalidBatch(format!("claim refused: {e:?}")))
    }

    /// Subscribe to `topics` (`None` = every topic, at most 64 exact ids otherwise).
    /// Claims a free slot, takes its lock (the appliance reaps the slot when the lock
    /// disappears, e.g. the process died), writes the filter, then activates the slot.
    pub fn subscribe(&self, topics: Option<&[u32]>) -> Result<Subscription, BridgeError> {
        if let Some(t) = topics
            && t.len() > MAX_FILTER_TOPICS
        {
            return Err(BridgeError::TooManyTopics { got: t.len(), max: MAX_FILTER_TOPICS });
        }
        let h = &self.header;
        let fd = self.map.fd();
        for s in 0..h.layout.subscriber_slots {
            let v = SlotView { map: &self.map, off: egress::slot_off(&h.geometry, s) };
            if v.state().load(Ordering::Acquire) != FREE {
                continue;
            }
            // Lock first, then claim: a slot whose lock is held is never reaped.
            if !shm::try_lock(fd, v.lock_byte())? {
                continue;
            }
            if v.state().compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed).is_err() {
                shm::unlock(fd, v.lock_byte());
                continue;
            }
            v.pid().store(std::process::id(), Ordering::Relaxed);
            v.write_filter(topics);
            let generation = v.generation().load(Ordering::Acquire);
            let ring_offs: Vec<u64> =
                (0..h.layout.shards).map(|w| egress::egress_off(&h.geometry, h.layout.shards, s, w)).collect();
            for &o in &ring_offs {
                // Rings were reset by the reaper; start reading where the worker will write.
                let t = self.map.u64_at(o + ectl::TAIL).load(Ordering::Acquire);
                self.map.u64_at(o + ectl::HEAD).store(t, Ordering::Release);
            }
            v.state().store(ACTIVE, Ordering::Release);
            return Ok(Subscription {
                map: self.map.clone(),
                header: self.header,
                slot: s,
                generation,
                ring_offs,
                cols: Columns::default(),
                pool: Vec::new(),
            });
        }
        Err(BridgeError::NoFreeSlot { slots: h.layout.subscriber_slots })
    }
}

/// A subscription: one slot and one SPSC ring per shard. Dropping it releases the slot
/// (state reclaiming, lock released); the appliance's reaper then frees it.
pub struct Subscription {
    map: Arc<Mapping>,
    header: Header,
    slot: u32,
    generation: u32,
    ring_offs: Vec<u64>,
    cols: Columns,
    /// Column sets given back with [`Subscription::recycle`], reused by `poll_owned`.
    pool: Vec<Columns>,
}

/// Most recycled column sets a subscription keeps.
const POOL_MAX: usize = 4;

/// Messages gathered by one [`Subscription::poll`], in Arrow-like columns; valid until
/// the next poll.
pub struct Batch<'a> {
    cols: &'a Columns,
}

impl<'a> Batch<'a> {
    /// Topic of each message.
    pub fn topics(&self) -> &'a [u32] {
        &self.cols.topics
    }
    /// Sender of each message.
    pub fn senders(&self) -> &'a [u32] {
        &self.cols.senders
    }
    /// `len() + 1` ascending offsets into [`payloads`](Self::payloads).
    pub fn offsets(&self) -> &'a [u64] {
        &self.cols.offsets
    }
    /// All payloads, concatenated.
    pub fn payloads(&self) -> &'a [u8] {
        &self.cols.payloads
    }
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.cols.topics.len()
    }
    /// True when empty (never for a batch returned by `poll`).
    pub fn is_empty(&self) -> bool {
        self.cols.topics.is_empty()
    }
    /// Payload of message `i`.
    pub fn payload(&self, i: usize) -> &'a [u8] {
        &self.cols.payloads[self.cols.offsets[i] as usize..self.cols.offsets[i + 1] as usize]
    }
}

/// Messages gathered by one [`Subscription::poll_owned`], owned by the caller: the same
/// columns as [`Batch`] (`offsets` has `len() + 1` entries, starting at 0). Give it back
/// with [`Subscription::recycle`] to reuse the allocations, or just keep or drop it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnedBatch {
    /// Topic of each message.
    pub topics: Vec<u32>,
    /// Sender of each message.
    pub senders: Vec<u32>,
    /// `len() + 1` ascending offsets into `payloads`.
    pub offsets: Vec<u64>,
    /// All payloads, concatenated.
    pub payloads: Vec<u8>,
}

impl OwnedBatch {
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.topics.len()
    }
    /// True when empty (never for a batch returned by `poll_owned`).
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
    /// Payload of message `i`.
    pub fn payload(&self, i: usize) -> &[u8] {
        &self.payloads[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
}

impl Subscription {
    /// The slot index this subscription holds.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Messages dropped for this subscriber because it did not read fast enough (all shards).
    pub fn overflow(&self) -> u64 {
        self.ring_offs.iter().map(|&o| self.map.u64_at(o + ectl::OVERFLOW).load(Ordering::Relaxed)).sum()
    }

    fn gather(&mut self) {
        self.cols.clear();
        for &o in &self.ring_offs {
            egress::read_ring(&self.map, &self.header, o, &mut self.cols);
        }
    }

    /// Wait for messages: `None` waits until some arrive or the appliance goes away,
    /// `Some(d)` at most `d` (`Duration::ZERO` = just look). Waiting sleeps with back-off
    /// (50 µs doubling to 2 ms), never spins. `Ok(None)` on timeout,
    /// `Err(ApplianceGone)` when the appliance's liveness lock disappears or the slot was
    /// taken away.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<Option<Batch<'_>>, BridgeError> {
        Ok(if self.wait(timeout)? { Some(Batch { cols: &self.cols }) } else { None })
    }

    /// Like [`poll`](Self::poll), but hands the columns over: the returned [`OwnedBatch`]
    /// owns its four vectors (e.g. for a Python extension to wrap as NumPy arrays without
    /// a copy), and the subscription gathers the next poll into fresh vectors, taken from
    /// the ones given back with [`recycle`](Self::recycle) when there are any. Same
    /// waiting, timeout and errors as `poll`.
    pub fn poll_owned(&mut self, timeout: Option<Duration>) -> Result<Option<OwnedBatch>, BridgeError> {
        if !self.wait(timeout)? {
            return Ok(None);
        }
        let next = self.pool.pop().unwrap_or_default();
        let c = std::mem::replace(&mut self.cols, next);
        Ok(Some(OwnedBatch { topics: c.topics, senders: c.senders, offsets: c.offsets, payloads: c.payloads }))
    }

    /// Give a batch's vectors back so a later [`poll_owned`](Self::poll_owned) reuses their
    /// capacity instead of allocating. Any vectors will do (they are cleared); at most a
    /// few sets are kept, the rest are freed.
    pub fn recycle(&mut self, batch: OwnedBatch) {
        if self.pool.len() < POOL_MAX {
            let OwnedBatch { topics, senders, offsets, payloads } = batch;
            let mut c = Columns { topics, senders, offsets, payloads };
            c.clear();
            self.pool.push(c);
        }
    }

    /// Column sets currently held for reuse by [`poll_owned`](Self::poll_owned).
    pub fn recycled(&self) -> usize {
        self.pool.len()
    }

    /// Gather into `self.cols`, waiting as documented on `poll`; true when it holds messages.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, BridgeError> {
        let deadline = timeout.map(|d| Instant::now() + d);
        let mut backoff = Duration::from_micros(50);
        loop {
            self.gather();
            if !self.cols.topics.is_empty() {
                return Ok(true);
            }
            if !shm::is_locked(self.map.fd(), 0)? {
                return Err(BridgeError::ApplianceGone);
            }
            let v = SlotView { map: &self.map, off: egress::slot_off(&self.header.geometry, self.slot) };
            if v.state().load(Ordering::Acquire) != ACTIVE || v.generation().load(Ordering::Acquire) != self.generation
            {
                return Err(BridgeError::ApplianceGone);
            }
            let now = Instant::now();
            let sleep = match deadline {
                Some(d) if now >= d => return Ok(false),
                Some(d) => backoff.min(d - now),
                None => backoff,
            };
            std::thread::sleep(sleep);
            backoff = (backoff * 2).min(Duration::from_millis(2));
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let v = SlotView { map: &self.map, off: egress::slot_off(&self.header.geometry, self.slot) };
        if v.generation().load(Ordering::Acquire) == self.generation {
            let _ = v.state().compare_exchange(ACTIVE, RECLAIMING, Ordering::SeqCst, Ordering::Relaxed);
        }
        shm::unlock(self.map.fd(), v.lock_byte());
    }
}
