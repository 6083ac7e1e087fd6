//! Hashing of u32/u64 ids.
//!
//! Ids are integers, so a single multiply mixes them well enough; SipHash
//! (std's default) would cost several times more per lookup. DPDK's
//! `rte_hash` is not used: every lookup would cross the FFI boundary through
//! `unsafe`, and it could not be inlined into the per-frame path, while these
//! pure Rust tables compile down to a few instructions.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Odd 64-bit constant derived from the golden ratio: consecutive ids land
/// far apart after multiplication.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// `std` hasher for integer keys of read-only tables built from the config.
/// The keys there are chosen by the operator, not by senders, so a fixed
/// multiplier is enough.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(GOLDEN);
    }

    fn finish(&self) -> u64 {
        // hashbrown indexes with the low bits and tags with the top 7: the
        // rotation moves the well-mixed high half of the product down.
        self.0.rotate_left(32)
    }
}

/// Hash map keyed by ids, with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Hash map keyed by ids that senders choose (the reconciler's index and
/// outboxes, on the control lcore): seeded per map, see [`KeyedIdState`].
pub type KeyedIdMap<K, V> = HashMap<K, V, KeyedIdState>;

/// A per-map secret for [`KeyedIdHasher`], drawn from std's `RandomState`
/// (seeded from the OS once per process, varied per instance). With the
/// unseeded [`IdHasher`], senders who know the multiplier can pick ids that
/// all land in one probe run and slow the control lcore's inserts to O(n)
/// each; without the seed they cannot.
#[derive(Clone, Copy)]
pub struct KeyedIdState {
    k0: u64,
    k1: u64,
}

impl Default for KeyedIdState {
    fn default() -> Self {
        let random = std::collections::hash_map::RandomState::new();
        KeyedIdState { k0: random.hash_one(1u64), k1: random.hash_one(2u64) | 1 }
    }
}

impl BuildHasher for KeyedIdState {
    type Hasher = KeyedIdHasher;

    fn build_hasher(&self) -> KeyedIdHasher {
        KeyedIdHasher { state: self.k0, k1: self.k1 }
    }
}

/// Folded multiply (the high and low halves of the 128-bit product, xored),
/// as in foldhash: two of them, keyed, per integer. Not SipHash: cheaper by
/// several times, and the keys here are integers, not attacker-sized input.
#[derive(Clone, Copy)]
pub struct KeyedIdHasher {
    state: u64,
    k1: u64,
}

#[inline(always)]
fn folded_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for KeyedIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.state = folded_mul(self.state ^ n, self.k1);
    }

    fn finish(&self) -> u64 {
        folded_mul(self.state, self.k1 ^ GOLDEN)
    }
}

/// Hashing for the per-worker bucket tables, whose keys senders choose: the
/// key is xored with a per-table random seed, then mixed by two rounds of
/// fold and multiply, so that structured ids (sequential, strided, or
/// differing only in the dimension and profile bits above bit 32) spread
/// evenly and senders who do not know the seed cannot aim ids at one
/// probe run. The slot is the hash scaled to the slot count (the high half
/// of hash × slots), so it comes from the top bits, which every key bit
/// reaches, and any slot count works. The first fold matters: a multiply
/// carries bits only upward, and without it keys differing only in their
/// high half crowded into half the slots under about one seed in a
/// hundred. SplitMix64's last xor-shift would add cost for no better
/// spread, and one keyed fold of the 128-bit product instead of both
/// rounds (tried 2026-12-03) crowded strided keys under some seeds.
#[derive(Clone, Copy, Debug)]
pub struct SlotHash {
    seed: u64,
    slots: u64,
}

impl SlotHash {
    /// Hash into `slots` slots (at least 1).
    pub fn new(slots: usize) -> Self {
        debug_assert!(slots >= 1);
        // std's RandomState is seeded from the OS once per process and
        // varied per instance: a dependency-free source of a secret.
        Self::with_seed(slots, std::collections::hash_map::RandomState::new().hash_one(GOLDEN))
    }

    fn with_seed(slots: usize, seed: u64) -> Self {
        SlotHash { seed, slots: slots as u64 }
    }

    /// Home slot of `key`.
    #[inline(always)]
    pub fn slot(&self, key: u64) -> usize {
        let x = key ^ self.seed;
        let x = (x ^ (x >> 32)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let x = (x ^ (x >> 32)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((u128::from(x) * u128::from(self.slots)) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_hash_stays_in_range_and_spreads_sequential_ids() {
        let hash = SlotHash::new(1024);
        let mut used = [false; 1024];
        for id in 0..1024u64 {
            let slot = hash.slot(id);
            assert!(slot < 1024);
            used[slot] = true;
        }
        // Random placement fills 1 - 1/e ≈ 63 % of the slots (647 ± 15);
        // a hash that clusters sequential ids fills far fewer.
        assert!(used.iter().filter(|&&u| u).count() > 580);
        // A slot count that is no power of two: 1,537 slots (a table for
        // 1,024 keys), every one reachable and none beyond.
        let hash = SlotHash::new(1537);
        let mut hits = vec![0u32; 1537];
        for id in 0..1537 * 64u64 {
            hits[hash.slot(id)] += 1;
        }
        // 64 keys a slot on average; Poisson(64) stays within 64 ± 40.
        assert!(hits.iter().all(|&h| (24..=104).contains(&h)), "{:?}", (hits.iter().min(), hits.iter().max()));
    }

    #[test]
    fn slot_hash_spreads_ids_that_differ_only_in_high_bits() {
        // Keys differing only above bit 32 (dimension, imposed profile):
        // the fold must carry them into the slot.
        let hash = SlotHash::new(1024);
        let used: std::collections::HashSet<usize> = (0..1024u64).map(|p| hash.slot(7 | p << 32)).collect();
        assert!(used.len() > 580, "{} of 1024 slots", used.len());
        let strided: std::collections::HashSet<usize> = (0..1024u64).map(|i| hash.slot(i << 20)).collect();
        assert!(strided.len() > 580, "{} of 1024 slots", strided.len());
    }

    #[test]
    fn slot_hash_spreads_high_bit_keys_whatever_the_seed() {
        // Random placement of 1024 keys fills 647 ± 10 of 1024 slots. The
        // keys differ only above bit 32 (one id under many imposed profiles,
        // both dimensions); every seed must spread them like that.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..300 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let hash = SlotHash::with_seed(1024, seed);
            for (name, key) in [
                ("profile bits", (|i: u64| 1 << 63 | i << 50 | 123) as fn(u64) -> u64),
                ("high half", |i: u64| 7 | i << 32),
                ("stride 2^33", |i: u64| 5 | i << 33),
            ] {
                let used: std::collections::HashSet<usize> = (0..1024u64).map(|i| hash.slot(key(i))).collect();
                assert!(used.len() > 580, "{name}, seed {seed:#x}: {} of 1024 slots", used.len());
            }
        }
    }

    /// Keys whose products with the unseeded multiplier share bits 25..63:
    /// the same hashbrown group and tag for all of them.
    fn colliding_keys(count: u64) -> Vec<u64> {
        let mut inv = GOLDEN;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(GOLDEN.wrapping_mul(inv)));
        }
        assert_eq!(inv.wrapping_mul(GOLDEN), 1);
        (0..count).map(|j| (0x1234_5678_0000_0000 + j).wrapping_mul(inv)).collect()
    }

    #[test]
    fn keyed_maps_are_seeded_and_spread_adversarial_keys() {
        let a: KeyedIdMap<u64, u32> = KeyedIdMap::default();
        let b: KeyedIdMap<u64, u32> = KeyedIdMap::default();
        assert!((0..64u64).any(|k| a.hasher().hash_one(k) != b.hasher().hash_one(k)), "two maps hash alike");
        let keys = colliding_keys(4096);
        let low: std::collections::HashSet<u64> = keys.iter().map(|k| a.hasher().hash_one(k) & 0xfff).collect();
        // 4096 random values fill 1 - 1/e of 4096 buckets (≈ 2589).
        assert!(low.len() > 2300, "adversarial keys land in {} of 4096 buckets", low.len());
        let mut map: KeyedIdMap<u64, u32> = KeyedIdMap::default();
        let t = std::time::Instant::now();
        for (i, k) in colliding_keys(20_000).into_iter().enumerate() {
            map.insert(k, i as u32);
        }
        assert!(t.elapsed() < std::time::Duration::from_millis(200), "20k inserts took {:?}", t.elapsed());
    }

    #[test]
    fn id_map_finds_what_it_stores() {
        let mut map: IdMap<u32, u32> = IdMap::default();
        for id in 0..10_000 {
            map.insert(id * 7, id);
        }
        assert_eq!(map.get(&(700 * 7)), Some(&700));
        assert_eq!(map.get(&1), None);
    }
}
