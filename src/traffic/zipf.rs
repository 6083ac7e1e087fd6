//! A Zipf sampler over ranks 0..n: rank k is drawn with weight 1/(k+1)^s,
//! so a few "hot" topics or senders carry most traffic, as on a real bus.
//! An explicit CDF keeps it exact and easy to check; n stays small enough
//! (topics, senders) that the table costs little.

use rand::Rng;
use rand::distributions::Distribution;

/// Zipf(n, s) over 0-based ranks.
#[derive(Clone, Debug)]
pub struct Zipf {
    /// `cdf[k]` = P(rank ≤ k); the last entry is exactly 1.
    cdf: Vec<f64>,
}

impl Zipf {
    /// Largest n accepted, bounding the table to 128 MiB.
    pub const MAX_N: usize = 1 << 24;

    /// `None` unless 1 ≤ n ≤ [`Zipf::MAX_N`] and s is finite and > 0.
    pub fn new(n: usize, s: f64) -> Option<Zipf> {
        if n == 0 || n > Self::MAX_N || !s.is_finite() || s <= 0.0 {
            return None;
        }
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n {
            total += (rank as f64).powf(-s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        *cdf.last_mut().expect("n ≥ 1") = 1.0;
        Some(Zipf { cdf })
    }

    /// Probability of drawing `rank`.
    pub fn probability(&self, rank: usize) -> f64 {
        let below = if rank == 0 { 0.0 } else { self.cdf[rank - 1] };
        self.cdf[rank] - below
    }
}

impl Distribution<usize> for Zipf {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.gen_range(0.0..1.0);
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn rejects_empty_or_nonsense_parameters() {
        assert!(Zipf::new(0, 1.0).is_none());
        assert!(Zipf::new(3, 0.0).is_none());
        assert!(Zipf::new(3, f64::NAN).is_none());
        assert!(Zipf::new(Zipf::MAX_N + 1, 1.0).is_none());
    }

    #[test]
    fn probabilities_follow_the_power_law() {
        let z = Zipf::new(4, 1.0).unwrap();
        let h = 1.0 + 1.0 / 2.0 + 1.0 / 3.0 + 1.0 / 4.0;
        for k in 0..4 {
            let want = 1.0 / ((k + 1) as f64 * h);
            assert!((z.probability(k) - want).abs() < 1e-12, "rank {k}");
        }
    }

    #[test]
    fn samples_match_probabilities() {
        let z = Zipf::new(10, 1.3).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let draws = 200_000;
        let mut hits = [0u32; 10];
        for _ in 0..draws {
            hits[z.sample(&mut rng)] += 1;
        }
        for (k, &h) in hits.iter().enumerate() {
            let want = z.probability(k) * f64::from(draws);
            // Within 5 standard deviations of the binomial count.
            let sd = (want * (1.0 - z.probability(k))).sqrt();
            assert!((f64::from(h) - want).abs() < 5.0 * sd, "rank {k}: {h} vs {want}");
        }
    }

    #[test]
    fn one_rank_is_always_drawn() {
        let z = Zipf::new(1, 2.0).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!((0..100).all(|_| z.sample(&mut rng) == 0));
    }
}
