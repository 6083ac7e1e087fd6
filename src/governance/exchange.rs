//! The memory one worker and the control lcore share.
//!
//! Records travel in batches through lock-free bounded queues: a fixed pool
//! of batches, allocated at start, circulates between the `filled` queue
//! (producer → consumer) and the `spare` queue (back to the producer). The
//! pool never grows or shrinks, so no side ever allocates or frees a batch
//! and neither push can fail. Each side touches a queue at most once per
//! 256 records, never per packet; workers never block (an empty spare
//! queue just defers the work).

use super::buckets::BucketHandoff;
use super::counters::PublishedShardCounters;
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicU64, Ordering};

/// Records per batch (4 KiB of reports).
pub const BATCH_LEN: usize = 256;

/// Worker → control: messages offered to one bucket in one period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub key: u64,
    pub demand: u32,
    pub profile: u16,
    /// Largest frame (messages) offered in the period after the bucket
    /// was listed.
    pub max_frame: u16,
}

/// Control → worker: the worker's new share of one global limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShareUpdate {
    pub key: u64,
    /// Share of the profile's rate, in 1/65536ths.
    pub frac: u32,
    /// Share of the profile's burst, in 1/65536ths.
    pub burst_frac: u32,
    pub profile: u16,
}

/// Records of one tables generation and one period.
#[derive(Debug)]
pub struct Batch<T> {
    pub generation: u64,
    pub period: u64,
    pub items: Vec<T>,
}

/// A fixed pool of batches flowing one way.
pub struct Pipe<T> {
    filled: ArrayQueue<Batch<T>>,
    spare: ArrayQueue<Batch<T>>,
}

impl<T> Pipe<T> {
    /// A pipe with `batches` spare batches of BATCH_LEN records.
    pub fn new(batches: usize) -> Self {
        let pipe = Pipe { filled: ArrayQueue::new(batches), spare: ArrayQueue::new(batches) };
        for _ in 0..batches {
            let batch = Batch { generation: 0, period: 0, items: Vec::with_capacity(BATCH_LEN) };
            // Cannot fail: the queue holds exactly `batches`.
            let _ = pipe.spare.push(batch);
        }
        pipe
    }

    /// Producer: an empty batch to fill, if the consumer has returned one.
    pub fn take_spare(&self) -> Option<Batch<T>> {
        self.spare.pop()
    }

    /// Producer: hands a filled batch over.
    pub fn send(&self, batch: Batch<T>) {
        // Every batch belongs to the pool, so there is always room.
        let _ = self.filled.push(batch);
    }

    /// Consumer: the oldest filled batch.
    pub fn receive(&self) -> Option<Batch<T>> {
        // Empty is the usual answer (a worker asks every poll round). Checked
        // with two plain loads first: `ArrayQueue::pop` finds a queue empty
        // only after a full fence (`lock or` on x86), one per round otherwise.
        if self.filled.is_empty() {
            return None;
        }
        self.filled.pop()
    }

    /// Either side: returns a batch to the spare pool.
    pub fn recycle(&self, mut batch: Batch<T>) {
        batch.items.clear();
        let _ = self.spare.push(batch);
    }
}

/// Keeps a hot atomic on a cache line of its own.
#[repr(C, align(64))]
#[derive(Default)]
pub struct Padded<T>(pub T);

/// Everything one worker shares with the control side.
pub struct WorkerLink {
    pub reports: Pipe<Report>,
    pub shares: Pipe<ShareUpdate>,
    /// Last period whose reports are all in `reports` (worker-written,
    /// once per period).
    pub reported_period: Padded<AtomicU64>,
    pub published: PublishedShardCounters,
    /// Bigger bucket tables for a reload that raises the sizes, and back.
    pub buckets: BucketHandoff,
}

impl WorkerLink {
    pub fn new(batches: usize, max_rules: usize) -> Self {
        WorkerLink {
            reports: Pipe::new(batches),
            shares: Pipe::new(batches),
            reported_period: Padded(AtomicU64::new(0)),
            published: PublishedShardCounters::new(max_rules),
            buckets: BucketHandoff::default(),
        }
    }
}

/// The period counter: written by the control lcore once per period, read
/// by each worker once per burst.
#[derive(Default)]
pub struct Epoch(Padded<AtomicU64>);

impl Epoch {
    pub fn new(value: u64) -> Self {
        Epoch(Padded(AtomicU64::new(value)))
    }

    #[inline(always)]
    pub fn load(&self) -> u64 {
        self.0.0.load(Ordering::Acquire)
    }

    pub fn store(&self, value: u64) {
        self.0.0.store(value, Ordering::Release);
    }
}

/// Batches per pipe for the given table sizes: enough to carry a period in
/// which an eighth of all ids are active, within [32, 2048].
pub fn pool_batches(max_topics: usize, max_senders: usize) -> usize {
    ((max_topics + max_senders) / BATCH_LEN / 8).clamp(32, 2048)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_circulate_without_loss() {
        let pipe: Pipe<u32> = Pipe::new(2);
        let mut a = pipe.take_spare().unwrap();
        let b = pipe.take_spare().unwrap();
        assert!(pipe.take_spare().is_none(), "the pool is fixed");
        a.items.push(7);
        pipe.send(a);
        pipe.send(b);
        let got = pipe.receive().unwrap();
        assert_eq!(got.items, [7]);
        pipe.recycle(got);
        let again = pipe.take_spare().unwrap();
        assert!(again.items.is_empty() && again.items.capacity() >= BATCH_LEN);
    }
}
