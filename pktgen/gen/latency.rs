//! A log-bucketed latency histogram: fixed size, no allocation per sample,
//! at most 1/16 (6.25 %) relative error, from nanoseconds to centuries.
//! Each power of two is split into 16 equal sub-buckets; values below 16
//! get a bucket each, so they are exact.

/// Bits of each value below its leading one that pick the sub-bucket.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// 16 exact buckets, then 16 per power of two from 2^4 to 2^63.
const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * SUB) as usize;

pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: Box::new([0; BUCKETS]), total: 0, min: u64::MAX, max: 0, sum: 0 }
    }
}

#[inline(always)]
fn bucket_of(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let sub = (value >> (exponent - SUB_BITS)) & (SUB - 1);
    (SUB + u64::from(exponent - SUB_BITS) * SUB + sub) as usize
}

/// Smallest value that lands in `bucket`.
fn bucket_floor(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < SUB {
        return bucket;
    }
    let (shift, sub) = ((bucket - SUB) / SUB, (bucket - SUB) % SUB);
    (SUB + sub) << shift
}

impl Histogram {
    #[inline(always)]
    pub fn record(&mut self, value: u64) {
        self.counts[bucket_of(value)] += 1;
        self.total += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn min(&self) -> Option<u64> {
        (self.total > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<u64> {
        (self.total > 0).then_some(self.max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.total > 0).then(|| self.sum as f64 / self.total as f64)
    }

    /// The value at quantile `q` (0..=1): the middle of the bucket holding
    /// the ⌈q·n⌉-th smallest sample, kept within the observed min and max.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let floor = bucket_floor(bucket);
                let width = if bucket + 1 < BUCKETS { bucket_floor(bucket + 1) - floor } else { 1 };
                return Some((floor + (width - 1) / 2).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(15), 15);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        for bucket in 1..BUCKETS {
            let floor = bucket_floor(bucket);
            assert_eq!(bucket_of(floor), bucket, "floor of bucket {bucket}");
            assert_eq!(bucket_of(floor - 1), bucket - 1, "value just below bucket {bucket}");
        }
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::default();
        for v in [3, 3, 7, 9, 12] {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), Some(7));
        assert_eq!(h.quantile(0.0), Some(3));
        assert_eq!(h.quantile(1.0), Some(12));
        assert_eq!((h.min(), h.max(), h.count()), (Some(3), Some(12), 5));
        assert_eq!(h.mean(), Some(6.8));
    }

    #[test]
    fn quantiles_stay_within_the_relative_error() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 7);
        }
        for (q, exact) in [(0.5, 350_000.0), (0.99, 693_000.0), (0.999, 699_300.0)] {
            let got = h.quantile(q).unwrap() as f64;
            assert!((got - exact).abs() / exact <= 1.0 / 16.0, "q{q}: {got} vs {exact}");
        }
    }

    #[test]
    fn an_empty_histogram_has_no_quantiles_and_one_sample_is_every_quantile() {
        let mut h = Histogram::default();
        assert_eq!((h.quantile(0.5), h.count(), h.mean(), h.min()), (None, 0, None, None));
        h.record(1_000_000);
        assert_eq!(h.quantile(0.0), Some(1_000_000));
        assert_eq!(h.quantile(0.99), Some(1_000_000));
    }
}
