//! What a reload keeps: each bucket (tokens, reconciled share) whose limit
//! did not change.
//!
//! A reload does not walk the tables (up to 2^24 buckets per worker). The
//! shard starts a new period stamp when it adopts new tables, so the first
//! touch of every bucket afterwards takes the once-per-period branch it
//! takes anyway, and only there is the bucket revalidated: its profile is
//! looked up again, and if the global limit it belongs to is not the one it
//! was validated under, it gets its worker's default share of the new limit
//! with its tokens clipped to the new burst, never refilled. The per-frame
//! cost stays one stamp compare.
//!
//! The stamp tells which generation a bucket was last touched in. Only the
//! limits of the previous generation are remembered: a bucket untouched
//! through two reloads counts as changed (it loses a reconciled share, never
//! gains tokens).

use super::bucket::FixedLimit;
use super::limits::ProfileId;
use super::shard::Defaults;
use super::table::{Entry, MAX_PROFILES};
use super::tables::Tables;

/// The global limit of every profile, this generation and the one before,
/// and the stamps at which they were adopted.
pub(super) struct Generations {
    current_from: u32,
    previous_from: u32,
    current: Vec<FixedLimit>,
    previous: Vec<FixedLimit>,
}

impl Generations {
    pub(super) fn new(stamp: u32) -> Self {
        Generations {
            current_from: stamp,
            previous_from: stamp,
            current: Vec::with_capacity(MAX_PROFILES),
            previous: Vec::with_capacity(MAX_PROFILES),
        }
    }

    /// `tables` apply from `stamp` on. Does not allocate (at most
    /// MAX_PROFILES profiles).
    pub(super) fn adopt(&mut self, tables: &Tables, stamp: u32) {
        std::mem::swap(&mut self.current, &mut self.previous);
        self.current.clear();
        self.current.extend(tables.profiles.iter().take(MAX_PROFILES).map(|p| p.fixed));
        self.previous_from = self.current_from;
        self.current_from = stamp;
    }

    /// Whether profile `profile` has the same global limit as in the
    /// previous generation; None when it did not exist then.
    pub(super) fn profile_unchanged(&self, profile: ProfileId) -> Option<bool> {
        let p = usize::from(profile);
        self.previous.get(p).map(|old| self.current.get(p) == Some(old))
    }

    /// Whether a bucket last touched at `entry_stamp` was validated under
    /// the current tables (`stamp` is the current stamp).
    pub(super) fn is_current(&self, stamp: u32, entry_stamp: u32) -> bool {
        entry_stamp == 0 || stamp.wrapping_sub(entry_stamp) <= stamp.wrapping_sub(self.current_from)
    }

    /// The stamp the current tables were adopted at.
    pub(super) fn adopted_at(&self) -> u32 {
        self.current_from
    }

    /// Brings `entry` under the current generation if it was last touched
    /// before it (`stamp` is the current one). `profile` is the profile
    /// its key has now (None: no longer limited) and `defaults` the
    /// worker's default share per profile and the period (a revalidated
    /// entry's listing threshold follows both). Returns false when the
    /// entry has no limit any more and should go.
    pub(super) fn revalidate(
        &self,
        entry: &mut Entry,
        stamp: u32,
        profile: Option<ProfileId>,
        defaults: &Defaults,
        now: u64,
    ) -> bool {
        // Stamp 0: created in this generation and not touched yet.
        if self.is_current(stamp, entry.stamp) {
            return true;
        }
        let age = stamp.wrapping_sub(entry.stamp);
        let Some((profile, &default)) = profile.and_then(|p| Some((p, defaults.limits.get(usize::from(p))?))) else {
            return false;
        };
        let old = (age <= stamp.wrapping_sub(self.previous_from))
            .then(|| self.previous.get(usize::from(entry.profile)))
            .flatten();
        let unchanged = old.is_some() && old == self.current.get(usize::from(profile));
        entry.profile = profile;
        if unchanged {
            defaults.relist(entry);
        } else {
            defaults.set_limit(entry, default, now);
        }
        true
    }
}
