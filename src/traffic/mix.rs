//! How many packets are malformed, and for which reason. Counts are exact
//! quotas rather than coin flips, so a run of N frames holds precisely the
//! share asked for and a test can demand equality, while the positions of
//! the bad packets stay random.

use std::str::FromStr;

use rand::Rng;

use super::ConfigError;
use super::malformed::PARSER_REASONS;
use crate::dataplane::reason::DropReason;

/// Share of all frames to malform for each parser-decided reason.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MalformedMix {
    /// Indexed like [`PARSER_REASONS`].
    shares: [f64; PARSER_REASONS.len()],
}

impl MalformedMix {
    /// No malformed packets.
    pub fn none() -> MalformedMix {
        MalformedMix::default()
    }

    /// `total` spread evenly over all twelve reasons.
    pub fn spread(total: f64) -> Result<MalformedMix, ConfigError> {
        check_share("malformed share", total)?;
        let each = total / PARSER_REASONS.len() as f64;
        Ok(MalformedMix { shares: [each; PARSER_REASONS.len()] })
    }

    /// This mix with `reason`'s share replaced.
    pub fn with(mut self, reason: DropReason, share: f64) -> Result<MalformedMix, ConfigError> {
        let slot = slot(reason)?;
        check_share(reason.name(), share)?;
        self.shares[slot] = share;
        if self.total() > 1.0 + 1e-9 {
            return Err(ConfigError(format!("malformed shares add up to {} (> 1)", self.total())));
        }
        Ok(self)
    }

    /// Share asked for `reason` (0 for reasons not decided by parsing).
    pub fn share(&self, reason: DropReason) -> f64 {
        slot(reason).map_or(0.0, |s| self.shares[s])
    }

    /// Share of all frames that are malformed.
    pub fn total(&self) -> f64 {
        self.shares.iter().sum()
    }

    /// Exact number of frames per reason out of `frames`, indexed like
    /// [`PARSER_REASONS`]. The total is the rounded total share; it is
    /// split by largest remainder, ties going to the earlier reason, so an
    /// even spread differs between reasons by at most one.
    pub fn quotas(&self, frames: u64) -> [u64; PARSER_REASONS.len()] {
        let exact = self.shares.map(|s| s * frames as f64);
        let mut quotas = exact.map(|e| e.floor() as u64);
        let target = (exact.iter().sum::<f64>().round() as u64).min(frames);
        let floors: u64 = quotas.iter().sum();
        let mut by_remainder: Vec<usize> = (0..quotas.len()).collect();
        by_remainder.sort_by(|&a, &b| {
            let fa = exact[a] - exact[a].floor();
            let fb = exact[b] - exact[b].floor();
            fb.total_cmp(&fa).then(a.cmp(&b))
        });
        for &slot in by_remainder.iter().take(target.saturating_sub(floors) as usize) {
            quotas[slot] += 1;
        }
        quotas
    }
}

fn slot(reason: DropReason) -> Result<usize, ConfigError> {
    PARSER_REASONS
        .iter()
        .position(|&r| r == reason)
        .ok_or_else(|| ConfigError(format!("{reason} is not decided by parsing a packet")))
}

fn check_share(what: &str, share: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&share) {
        Ok(())
    } else {
        Err(ConfigError(format!("{what} must be within 0..=1, got {share}")))
    }
}

/// `0.1` (spread over all reasons) or `bad_magic=0.01,truncated=0.02`.
impl FromStr for MalformedMix {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<MalformedMix, ConfigError> {
        let text = text.trim();
        if let Ok(total) = text.parse::<f64>() {
            return MalformedMix::spread(total);
        }
        let mut mix = MalformedMix::none();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, share) =
                part.split_once('=').ok_or_else(|| ConfigError(format!("expected reason=share, got {part:?}")))?;
            let reason = DropReason::from_name(name.trim())
                .ok_or_else(|| ConfigError(format!("unknown drop reason {name:?}")))?;
            let share: f64 = share
                .trim()
                .parse()
                .map_err(|_| ConfigError(format!("share for {name} is not a number: {share:?}")))?;
            mix = mix.with(reason, share)?;
        }
        Ok(mix)
    }
}

/// Draws each frame's fate so that, after `frames` draws, every reason has
/// been picked exactly its quota (selection sampling without storing the
/// sequence, so unbounded runs cost no memory).
#[derive(Clone, Debug)]
pub struct KindQuota {
    frames_left: u64,
    left: [u64; PARSER_REASONS.len()],
}

impl KindQuota {
    pub fn new(mix: &MalformedMix, frames: u64) -> KindQuota {
        KindQuota { frames_left: frames, left: mix.quotas(frames) }
    }

    /// Frames not yet drawn.
    pub fn frames_left(&self) -> u64 {
        self.frames_left
    }

    /// The next frame's fate: `Some(reason)` to malform it, `None` for a
    /// valid frame; `None` too once all frames are drawn.
    pub fn draw<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<DropReason> {
        if self.frames_left == 0 {
            return None;
        }
        let mut ticket = rng.gen_range(0..self.frames_left);
        self.frames_left -= 1;
        for (slot, left) in self.left.iter_mut().enumerate() {
            if ticket < *left {
                *left -= 1;
                return Some(PARSER_REASONS[slot]);
            }
            ticket -= *left;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn parses_a_total_and_per_reason_shares() {
        let even: MalformedMix = "0.12".parse().unwrap();
        for r in PARSER_REASONS {
            assert!((even.share(r) - 0.01).abs() < 1e-12);
        }
        let some: MalformedMix = "bad_magic=0.01, truncated=0.2".parse().unwrap();
        assert_eq!(some.share(DropReason::BadMagic), 0.01);
        assert_eq!(some.share(DropReason::Truncated), 0.2);
        assert_eq!(some.share(DropReason::NotIpv4), 0.0);
        assert!((some.total() - 0.21).abs() < 1e-12);
    }

    #[test]
    fn refuses_nonsense() {
        for bad in
            ["1.5", "-0.1", "bogus=0.1", "rule_drop=0.1", "bad_magic", "bad_magic=x", "bad_magic=0.6,truncated=0.6"]
        {
            assert!(bad.parse::<MalformedMix>().is_err(), "{bad}");
        }
    }

    #[test]
    fn quotas_hit_the_rounded_total_and_split_evenly() {
        let q = MalformedMix::spread(0.1).unwrap().quotas(1000);
        assert_eq!(q.iter().sum::<u64>(), 100);
        assert_eq!(q, [9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 8]);
        let q = "bad_magic=0.25".parse::<MalformedMix>().unwrap().quotas(10);
        assert_eq!(q.iter().sum::<u64>(), 3, "2.5 rounds away from zero");
        assert_eq!(MalformedMix::spread(1.0).unwrap().quotas(5).iter().sum::<u64>(), 5);
        assert_eq!(MalformedMix::none().quotas(1000), [0; 12]);
    }

    #[test]
    fn draws_meet_quotas_exactly() {
        let mix = MalformedMix::spread(0.3).unwrap();
        let mut quota = KindQuota::new(&mix, 5000);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut seen = [0u64; 12];
        let mut valid = 0;
        let mut first_half_bad = 0;
        for i in 0..5000 {
            match quota.draw(&mut rng) {
                Some(r) => {
                    seen[r.index()] += 1;
                    if i < 2500 {
                        first_half_bad += 1;
                    }
                }
                None => valid += 1,
            }
        }
        assert_eq!(seen, mix.quotas(5000));
        assert_eq!(valid, 3500);
        assert_eq!(quota.frames_left(), 0);
        // Spread over the run, not bunched at one end.
        assert!((650..=850).contains(&first_half_bad), "{first_half_bad}");
    }
}
