//! Bucket tables allocated off the worker, for a reload that raises
//! `max_topics` / `max_senders`.
//!
//! Up to 2^25 slots per table and per worker: allocating and filling them
//! in the poll loop would stall RX for as long, and a failed allocation
//! would abort the data plane. So the control lcore allocates them (a
//! failure refuses the reload, the running rules stay) and hands each
//! worker its set through [`BucketHandoff`] before it publishes the tables;
//! the worker swaps pointers at its next burst start and sends its old set
//! back, so freeing it is the control lcore's work too.

use super::exchange::Report;
use super::table::{AllocError, BucketTable, MAX_PROFILES};
use crossbeam_queue::ArrayQueue;
use std::collections::TryReserveError;

/// Sets the control lcore may have handed over and not yet had back.
const HANDOFF_SLOTS: usize = 4;

/// One worker's bucket tables and the report lists sized for them.
pub struct Buckets {
    pub topics: BucketTable,
    pub senders: BucketTable,
    pub touched: Vec<Report>,
    pub reporting: Vec<Report>,
}

impl Buckets {
    /// Tables for `max_topics` topic and `max_senders` sender buckets, their
    /// pages preferably on NUMA `node` (the worker's), or the allocation error.
    pub fn try_new(max_topics: usize, max_senders: usize, node: Option<u32>) -> Result<Self, AllocError> {
        let capacity = list_capacity(max_topics, max_senders);
        Ok(Buckets {
            topics: BucketTable::try_with_limit(max_topics, node)?,
            senders: BucketTable::try_with_limit(max_senders, node)?,
            touched: report_list(capacity).map_err(AllocError::List)?,
            reporting: report_list(capacity).map_err(AllocError::List)?,
        })
    }

    /// Whether these tables hold `max_topics` and `max_senders` keys.
    pub fn fits(&self, max_topics: usize, max_senders: usize) -> bool {
        self.topics.max_limit() >= max_topics && self.senders.max_limit() >= max_senders
    }
}

fn report_list(capacity: usize) -> Result<Vec<Report>, TryReserveError> {
    let mut list = Vec::new();
    list.try_reserve_exact(capacity)?;
    Ok(list)
}

/// Most records a report list holds: more than the control lcore
/// reconciles in its longest period (10 ms at about 50 ns a record is
/// 200,000), so a longer list would only carry demand that ends the period
/// at its deadline anyway. A bucket that finds the list full stays
/// unreported for that period (counted as `listings_refused`), which can
/// only lower the shares the reconciler computes, never raise their sum.
pub const MAX_LIST_LEN: usize = 1 << 18;

/// Length of each report list: every bucket (overflow buckets included)
/// up to [`MAX_LIST_LEN`].
pub fn list_capacity(max_topics: usize, max_senders: usize) -> usize {
    max_topics.saturating_add(max_senders).saturating_add(2 * MAX_PROFILES).min(MAX_LIST_LEN)
}

/// Control → worker: bigger tables; worker → control: the ones replaced.
pub struct BucketHandoff {
    incoming: ArrayQueue<Box<Buckets>>,
    /// Twice as deep as `incoming`: the worker returns one set per set it
    /// takes, and the control lcore empties it before it hands more over,
    /// so the worker's push always finds room.
    returned: ArrayQueue<Box<Buckets>>,
}

impl Default for BucketHandoff {
    fn default() -> Self {
        BucketHandoff { incoming: ArrayQueue::new(HANDOFF_SLOTS), returned: ArrayQueue::new(2 * HANDOFF_SLOTS) }
    }
}

impl BucketHandoff {
    /// Control: whether another set can be handed over.
    pub fn has_room(&self) -> bool {
        !self.incoming.is_full()
    }

    /// Control: hands a set over; gives it back if there is no room.
    pub fn offer(&self, buckets: Box<Buckets>) -> Result<(), Box<Buckets>> {
        self.incoming.push(buckets)
    }

    /// Control: frees the sets the worker has replaced.
    pub fn free_returned(&self) -> usize {
        let mut freed = 0;
        while self.returned.pop().is_some() {
            freed += 1;
        }
        freed
    }

    /// Worker: the oldest set handed over, if any.
    pub fn take(&self) -> Option<Box<Buckets>> {
        self.incoming.pop()
    }

    /// Worker: gives a replaced set back to be freed off the worker.
    pub fn give_back(&self, buckets: Box<Buckets>) {
        // Cannot be full (see `returned`); were it ever, the set would be
        // freed here, which is slow but correct.
        let _ = self.returned.push(buckets);
    }
}
