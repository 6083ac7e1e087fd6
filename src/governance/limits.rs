//! Limit profiles and the mapping from topic or sender id to profile.

use super::bucket::FixedLimit;
use super::hash::IdMap;

/// Index of a profile in [`super::Tables`].
pub type ProfileId = u16;

/// A named (or inline) global limit: every id under it gets its own bucket
/// of this rate and burst.
#[derive(Clone, Debug)]
pub struct Profile {
    pub name: String,
    /// Messages per second.
    pub rate: u64,
    /// Messages.
    pub burst: u64,
    pub fixed: FixedLimit,
}

/// An inclusive id range and its profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    pub first: u32,
    pub last: u32,
    pub profile: ProfileId,
}

/// Which profile limits each id: an exact id first, then a range, then the
/// default (None = unlimited).
#[derive(Clone, Debug, Default)]
pub struct IdProfiles {
    exact: IdMap<u32, ProfileId>,
    /// Sorted, non-overlapping.
    ranges: Vec<IdRange>,
    default: Option<ProfileId>,
}

impl IdProfiles {
    /// `ranges` must be sorted by `first` and must not overlap.
    pub fn new(exact: IdMap<u32, ProfileId>, ranges: Vec<IdRange>, default: Option<ProfileId>) -> Self {
        debug_assert!(ranges.windows(2).all(|w| w[0].last < w[1].first));
        IdProfiles { exact, ranges, default }
    }

    /// The profile limiting `id`, None when it is unlimited.
    #[inline]
    pub fn profile_of(&self, id: u32) -> Option<ProfileId> {
        if let Some(&p) = self.exact.get(&id) {
            return Some(p);
        }
        let after = self.ranges.partition_point(|r| r.first <= id);
        if after > 0 {
            let r = &self.ranges[after - 1];
            if id <= r.last {
                return Some(r.profile);
            }
        }
        self.default
    }

    /// Whether any id is limited at all.
    pub fn limits_anything(&self) -> bool {
        self.default.is_some() || !self.exact.is_empty() || !self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(default: Option<ProfileId>) -> IdProfiles {
        let exact: IdMap<u32, ProfileId> = [(150, 9)].into_iter().collect();
        let ranges = vec![IdRange { first: 100, last: 199, profile: 1 }, IdRange { first: 300, last: 300, profile: 2 }];
        IdProfiles::new(exact, ranges, default)
    }

    #[test]
    fn exact_beats_range_beats_default() {
        let m = mapping(Some(0));
        assert_eq!(m.profile_of(150), Some(9));
        assert_eq!(m.profile_of(100), Some(1));
        assert_eq!(m.profile_of(199), Some(1));
        assert_eq!(m.profile_of(200), Some(0));
        assert_eq!(m.profile_of(300), Some(2));
        assert_eq!(m.profile_of(99), Some(0));
        assert_eq!(m.profile_of(u32::MAX), Some(0));
    }

    #[test]
    fn without_default_unnamed_ids_are_unlimited() {
        let m = mapping(None);
        assert_eq!(m.profile_of(0), None);
        assert_eq!(m.profile_of(301), None);
        assert!(m.limits_anything());
        assert!(!IdProfiles::default().limits_anything());
    }
}
