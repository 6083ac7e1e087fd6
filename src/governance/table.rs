//! A worker's fixed-size table of token buckets keyed by limit key.
//!
//! Open addressing with linear probing and backward-shift deletion: sized
//! once, it never allocates, never rehashes and leaves no tombstones, so
//! `insert` and `remove` in the hot loop stay O(probe length). `std`'s
//! `HashMap` would do for lookups, but it may rehash (and even reallocate)
//! after many removals. Entries are one cache line each, so a lookup that
//! hits its home slot costs one line.

use super::bucket::TokenBucket;
use super::hash::SlotHash;
use crate::dpdk::HugeArray;
use std::collections::TryReserveError;

/// Memory for a worker's bucket tables or report lists could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    #[error("no memory for a bucket table of {0} slots")]
    Table(usize),
    #[error(transparent)]
    List(#[from] TryReserveError),
}

/// Limit profiles a table keeps an overflow bucket for.
pub const MAX_PROFILES: usize = 4096;

/// `Entry::listed` of an id not on the report list.
pub const NOT_LISTED: u32 = u32::MAX;

/// One bucket and its bookkeeping; exactly one cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default)]
pub struct Entry {
    pub key: u64,
    pub bucket: TokenBucket,
    /// Messages offered in the period of `stamp`, until the id is listed
    /// for reporting (then the list entry counts).
    pub demand: u32,
    /// Index in the shard's report list for the period of `stamp`, or
    /// NOT_LISTED.
    pub listed: u32,
    /// Period stamp of the last touch; 0 = never touched.
    pub stamp: u32,
    /// Demand per period that puts this bucket on the report list under
    /// the limit it holds: kept beside the limit, set wherever the limit
    /// or the period changes, so that the per-frame test is one compare.
    pub listing_threshold: u32,
    pub profile: u16,
}

/// `Entry::key` of a vacant hashed slot: no key has all bits set (id keys
/// have bit 63 clear, overflow keys live outside the hashed slots), so a
/// probe tells a hit, a miss and a vacancy apart by the key alone.
const VACANT: u64 = u64::MAX;

const _: () = assert!(std::mem::size_of::<Entry>() == 64);

/// Fixed-capacity bucket table plus one overflow bucket per profile.
pub struct BucketTable {
    /// `slots` hashed slots, then `MAX_PROFILES` overflow entries, on huge
    /// pages (a random probe then costs no TLB miss).
    entries: HugeArray<Entry>,
    /// Hashed slots: 1.5 times the keys allowed, not rounded up to a power
    /// of two (which cost up to twice the memory: 128 MiB rather than 96
    /// for the default million topics). Probes wrap with a compare.
    slots: usize,
    hash: SlotHash,
    len: usize,
    limit: usize,
    max_limit: usize,
}

impl BucketTable {
    /// A table that holds up to `limit` keys at a load factor of at most 2/3
    /// (short probes even when full), its pages preferably on NUMA `node`;
    /// a failed allocation is an error, not an abort.
    pub fn try_with_limit(limit: usize, node: Option<u32>) -> Result<Self, AllocError> {
        let slots = limit.saturating_add(limit / 2 + 1).max(8);
        let len = slots.saturating_add(MAX_PROFILES);
        let vacant = Entry { key: VACANT, ..Entry::default() };
        let entries = HugeArray::new(len, vacant, node).ok_or(AllocError::Table(len))?;
        Ok(BucketTable { entries, slots, hash: SlotHash::new(slots), len: 0, limit, max_limit: limit })
    }

    /// Keys the table was sized for.
    pub fn max_limit(&self) -> usize {
        self.max_limit
    }

    /// Keys in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Keys allowed (the configured size, at most `max_limit`).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sets the key limit (at most what the table was sized for). Keys
    /// beyond a lowered limit stay until they expire.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(self.max_limit);
    }

    /// Whether hashed slot `index` holds a key.
    #[inline(always)]
    fn in_use(&self, index: usize) -> bool {
        self.entries[index].key != VACANT
    }

    /// The hashed slot after `index`, wrapping at the end.
    #[inline(always)]
    fn next(&self, index: usize) -> usize {
        let next = index + 1;
        if next == self.slots { 0 } else { next }
    }

    /// How many slots forward from `from` the slot `to` lies (cyclically).
    fn distance(&self, from: usize, to: usize) -> usize {
        if to >= from { to - from } else { to + self.slots - from }
    }

    /// Index of `key`, or `Err` with the vacant slot where it would go.
    #[inline]
    pub fn find(&self, key: u64) -> Result<usize, usize> {
        self.find_from(key, self.home(key))
    }

    /// [`BucketTable::find`] with `key`'s home slot already hashed.
    #[inline(always)]
    pub fn find_from(&self, key: u64, home: usize) -> Result<usize, usize> {
        debug_assert!(home < self.slots, "a home slot comes from `home`");
        debug_assert_ne!(key, VACANT);
        let mut i = home;
        loop {
            let slot_key = self.entries[i].key;
            if slot_key == key {
                return Ok(i);
            }
            if slot_key == VACANT {
                return Err(i);
            }
            i = self.next(i);
        }
    }

    /// The slot `key`'s probe starts from.
    #[inline(always)]
    pub fn home(&self, key: u64) -> usize {
        self.hash.slot(key)
    }

    /// Starts fetching slot `home` (from [`BucketTable::home`]), so that a
    /// burst's lookups take their cache misses side by side instead of one
    /// after another.
    #[inline(always)]
    pub fn prefetch(&self, home: usize) {
        self.entries.prefetch(home);
    }

    /// Puts `entry` into the vacant slot `find` returned, unless the table
    /// is at its limit. Returns the entry's index.
    #[inline]
    pub fn insert_at(&mut self, vacant: usize, entry: Entry) -> Option<usize> {
        if self.len >= self.limit {
            return None;
        }
        self.entries[vacant] = entry;
        self.len += 1;
        Some(vacant)
    }

    /// Removes the entry at `index`, shifting later entries of the probe
    /// run back so that lookups never need tombstones.
    pub fn remove(&mut self, index: usize) {
        if index >= self.slots {
            // An overflow entry: outside the probed slots, always kept.
            return;
        }
        let mut hole = index;
        let mut next = self.next(index);
        while self.in_use(next) {
            let home = self.hash.slot(self.entries[next].key);
            // The entry may move into the hole if the hole lies between its
            // home slot and where it sits now (cyclically).
            if self.distance(home, next) >= self.distance(hole, next) {
                self.entries[hole] = self.entries[next];
                hole = next;
            }
            next = self.next(next);
        }
        self.entries[hole].key = VACANT;
        self.len -= 1;
    }

    /// Visits `budget` hashed slots from `*cursor` on (wrapping), removing
    /// the entries `expired` picks; leaves `*cursor` where it stopped.
    /// Returns how many were removed.
    pub fn sweep(&mut self, cursor: &mut usize, budget: usize, mut expired: impl FnMut(&mut Entry) -> bool) -> u64 {
        let mut i = *cursor % self.slots;
        let mut removed = 0;
        for _ in 0..budget {
            if self.in_use(i) && expired(&mut self.entries[i]) {
                // Backward shift may have moved another entry into slot i:
                // look at it again.
                self.remove(i);
                removed += 1;
            } else {
                i = self.next(i);
            }
        }
        *cursor = i;
        removed
    }

    /// Index of the overflow entry of `profile`.
    #[inline]
    pub fn overflow_index(&self, profile: u16) -> usize {
        self.slots + usize::from(profile)
    }

    /// Sets up the overflow entry of `profile` (overflow entries live
    /// outside the hashed slots and are always in use).
    pub fn init_overflow(&mut self, profile: u16, entry: Entry) {
        let i = self.overflow_index(profile);
        self.entries[i] = entry;
    }

    /// Indices of the hashed slots in use.
    #[cfg(test)]
    pub fn in_use_indices(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots).filter(|&i| self.in_use(i))
    }

    #[inline(always)]
    pub fn entry(&self, index: usize) -> &Entry {
        &self.entries[index]
    }

    #[inline(always)]
    pub fn entry_mut(&mut self, index: usize) -> &mut Entry {
        &mut self.entries[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl BucketTable {
        fn sized(limit: usize) -> Self {
            Self::try_with_limit(limit, None).unwrap()
        }
    }

    fn entry(key: u64) -> Entry {
        Entry { key, ..Entry::default() }
    }

    fn insert(t: &mut BucketTable, key: u64) -> Option<usize> {
        let vacant = t.find(key).expect_err("key already present");
        t.insert_at(vacant, entry(key))
    }

    #[test]
    fn stores_up_to_the_limit_and_no_more() {
        let mut t = BucketTable::sized(100);
        for k in 0..100 {
            assert!(insert(&mut t, k * 31).is_some());
        }
        assert_eq!(insert(&mut t, 7), None);
        for k in 0..100 {
            let i = t.find(k * 31).unwrap();
            assert_eq!(t.entry(i).key, k * 31);
        }
        assert!(t.find(7).is_err());
    }

    #[test]
    fn removal_keeps_every_other_key_reachable() {
        let mut t = BucketTable::sized(1000);
        for k in 0..1000 {
            insert(&mut t, k).unwrap();
        }
        for k in (0..1000).step_by(3) {
            let i = t.find(k).unwrap();
            t.remove(i);
        }
        for k in 0..1000 {
            assert_eq!(t.find(k).is_ok(), k % 3 != 0, "key {k}");
        }
        assert_eq!(t.len(), 666);
        // Freed room is usable again.
        for k in 5000..5334 {
            insert(&mut t, k).unwrap();
        }
        assert_eq!(t.len(), 1000);
    }

    #[test]
    fn sweep_removes_what_it_is_told_and_nothing_else() {
        let mut t = BucketTable::sized(1000);
        for k in 0..1000 {
            insert(&mut t, k).unwrap();
        }
        let mut cursor = 0;
        let slots = t.slots;
        // Two full passes: removals shift entries back over the cursor's path.
        let removed = t.sweep(&mut cursor, 2 * slots, |e| e.key % 2 == 0);
        assert_eq!(removed, 500);
        for k in 0..1000 {
            assert_eq!(t.find(k).is_ok(), k % 2 == 1, "key {k}");
        }
    }

    #[test]
    fn probes_and_removals_wrap_around_the_last_slot() {
        // Small full tables of 31 slots: some probe runs wrap from the last
        // slot to the first, and removing from them must shift entries
        // back across that seam. Each table has its own random seed.
        for round in 0..300u64 {
            let mut t = BucketTable::sized(20);
            assert_eq!(t.slots, 31);
            let keys: Vec<u64> = (0..20).map(|k| round * 1000 + k).collect();
            for &k in &keys {
                insert(&mut t, k).unwrap();
            }
            for &k in keys.iter().filter(|&&k| (k * 7 + round) % 3 == 0) {
                let i = t.find(k).unwrap();
                t.remove(i);
            }
            for &k in &keys {
                assert_eq!(t.find(k).is_ok(), (k * 7 + round) % 3 != 0, "round {round} key {k}");
            }
            assert!((0..t.slots).all(|i| !t.in_use(i) || t.find(t.entry(i).key) == Ok(i)));
        }
    }

    #[test]
    fn overflow_entries_are_never_removed() {
        let mut t = BucketTable::sized(10);
        for k in 0..10 {
            insert(&mut t, k).unwrap();
        }
        t.init_overflow(3, entry(99));
        t.remove(t.overflow_index(3));
        assert_eq!(t.len(), 10);
        assert_eq!(t.entry(t.overflow_index(3)).key, 99);
        assert!((0..10).all(|k| t.find(k).is_ok()));
    }

    #[test]
    fn a_lowered_limit_refuses_new_keys_and_keeps_the_old_ones() {
        let mut t = BucketTable::sized(10);
        insert(&mut t, 1).unwrap();
        t.set_limit(1);
        assert!(t.find(1).is_ok());
        assert_eq!(insert(&mut t, 2), None, "new limit applies");
        t.set_limit(100);
        assert_eq!(t.limit(), 10, "never above what the table was sized for");
    }

    #[test]
    fn an_impossible_size_is_an_error_not_an_abort() {
        assert!(BucketTable::try_with_limit(usize::MAX / 2, None).is_err());
    }
}
