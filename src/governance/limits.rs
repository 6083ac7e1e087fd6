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

/// Ids a bit of the [`IdProfiles`] screen stands for: a block of 4,096.
const SCREEN_BLOCK_SHIFT: u32 = 12;
/// Bits in the screen; blocks `SCREEN_BITS` apart share a bit.
const SCREEN_BITS: usize = 4096;
const SCREEN_WORDS: usize = SCREEN_BITS / 64;

/// Which profile limits each id: an exact id first, then a range, then the
/// default (None = unlimited).
#[derive(Clone, Debug)]
pub struct IdProfiles {
    exact: IdMap<u32, ProfileId>,
    /// Sorted, non-overlapping.
    ranges: Vec<IdRange>,
    default: Option<ProfileId>,
    /// Without a default: a bit per block of 4,096 ids (modulo
    /// `SCREEN_BITS` blocks), set where some exact id or range lies. A
    /// clear bit proves an id unlimited in a few instructions, without the
    /// exact-id lookup and the range search: with a handful of limited
    /// topics among many, most frames take that answer.
    screen: [u64; SCREEN_WORDS],
}

impl Default for IdProfiles {
    fn default() -> Self {
        IdProfiles::new(IdMap::default(), Vec::new(), None)
    }
}

impl IdProfiles {
    /// `ranges` must be sorted by `first` and must not overlap.
    pub fn new(exact: IdMap<u32, ProfileId>, ranges: Vec<IdRange>, default: Option<ProfileId>) -> Self {
        debug_assert!(ranges.windows(2).all(|w| w[0].last < w[1].first));
        let mut screen = [0u64; SCREEN_WORDS];
        let mut mark = |block: usize| screen[block / 64 % SCREEN_WORDS] |= 1 << (block % 64);
        for &id in exact.keys() {
            mark(screen_block(id));
        }
        for r in &ranges {
            let (first, last) = (screen_block(r.first), screen_block(r.last));
            // A range over SCREEN_BITS blocks or more covers every bit.
            for block in first..=last.min(first + SCREEN_BITS - 1) {
                mark(block);
            }
        }
        IdProfiles { exact, ranges, default, screen }
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

    /// Whether `id` is limited (`profile_of` is Some). With a default,
    /// always; otherwise an id in a block no exact id or range touches is
    /// answered by the screen alone.
    #[inline(always)]
    pub fn limits(&self, id: u32) -> bool {
        if self.default.is_some() {
            return true;
        }
        self.screen_passes(id) && self.profile_of(id).is_some()
    }

    /// Whether the screen lets `id` through to the full lookup.
    #[inline(always)]
    fn screen_passes(&self, id: u32) -> bool {
        let block = screen_block(id);
        self.screen[block / 64 % SCREEN_WORDS] & (1 << (block % 64)) != 0
    }

    /// Whether any id is limited at all.
    pub fn limits_anything(&self) -> bool {
        self.default.is_some() || !self.exact.is_empty() || !self.ranges.is_empty()
    }

    /// Whether every id is limited (there is a default profile): then no
    /// frame can skip its bucket.
    pub fn limits_every_id(&self) -> bool {
        self.default.is_some()
    }
}

/// The screen bit (before wrapping) of `id`'s block.
#[inline(always)]
fn screen_block(id: u32) -> usize {
    (id >> SCREEN_BLOCK_SHIFT) as usize
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
    fn the_screen_answers_as_the_full_lookup_does() {
        // Exact ids and ranges on and around block edges, and ids whose
        // blocks share a screen bit with a limited block (2^24 ids apart).
        let exact: IdMap<u32, ProfileId> = [(4095, 1), (1 << 24, 2), (u32::MAX, 3)].into_iter().collect();
        let ranges = vec![
            IdRange { first: 8192, last: 8193, profile: 0 },
            IdRange { first: 100_000, last: 104_095, profile: 0 },
        ];
        let narrow = IdProfiles::new(exact.clone(), ranges.clone(), None);
        // The same plus a range over more blocks than the screen has bits.
        let mut all_blocks = ranges;
        all_blocks.push(IdRange { first: 1 << 28, last: (1 << 28) + (1 << 25), profile: 4 });
        let wide = IdProfiles::new(exact, all_blocks, None);
        let mut probes = vec![0, 1, 4094, 4095, 4096, 8191, 8192, 8193, 8194, 12288, 99_999, 104_095, 104_096];
        probes.extend([(1 << 24) - 1, 1 << 24, (1 << 24) + 1, (1 << 24) + 4095, (1 << 24) + 8192]);
        probes.extend([(1 << 28) - 1, 1 << 28, (1 << 28) + (1 << 25), (1 << 28) + (1 << 25) + 1]);
        probes.extend([u32::MAX - 1, u32::MAX, 4095 + (1 << 24)]);
        // And a spread of ids over the whole space.
        probes.extend((0..200_000u32).map(|i| i.wrapping_mul(0x9E37_79B9)));
        for m in [&narrow, &wide] {
            for &id in &probes {
                assert_eq!(m.limits(id), m.profile_of(id).is_some(), "id {id}");
            }
        }
        // The narrow screen answers most ids alone; the wide one none.
        let screened_out = probes.iter().filter(|&&id| !narrow.screen_passes(id)).count();
        assert!(screened_out > probes.len() * 9 / 10, "{screened_out} of {}", probes.len());
        assert!(narrow.screen_passes(8193) && narrow.screen_passes((1 << 24) + 5) && !narrow.screen_passes(1 << 20));
        assert!(probes.iter().all(|&id| wide.screen_passes(id)));
        assert!(narrow.limits(8193) && !narrow.limits(8194) && !narrow.limits(1), "the probes met both answers");
        assert!(IdProfiles::new(IdMap::default(), Vec::new(), Some(0)).limits(12345), "a default limits every id");
        assert!(!IdProfiles::default().limits(0));
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
