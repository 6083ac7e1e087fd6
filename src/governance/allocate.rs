//! How one global limit is split between the workers that use it:
//! max-min fair by demand, with a floor for idle holders and the unused
//! remainder spread evenly.

use super::MAX_WORKERS;
use super::bucket::FRAC_ONE;

/// Extra share over last period's demand, so a worker whose traffic grows
/// has room before the next period (1/64 ≈ 1.6 %).
pub const HEADROOM: f64 = 1.0 + 1.0 / 64.0;

/// Share every holder keeps even with no demand, as a fraction of the
/// limit divided by the number of workers: all floors together are at most
/// 1/64 of the limit.
pub const FLOOR_PER_WORKER: f64 = 1.0 / 64.0;

/// What a holder asks for, as a fraction of the global rate: last period's
/// demand plus headroom, at least the floor.
pub fn want(demand_msgs: u64, msgs_per_period: f64, n_workers: usize) -> f64 {
    let floor = FLOOR_PER_WORKER / n_workers as f64;
    (demand_msgs as f64 / msgs_per_period * HEADROOM).max(floor)
}

/// Splits a limit of 1.0 between holders asking for `wants`: each gets
/// `min(want, level)` with the level chosen so that the shares sum to 1
/// (max-min fairness); when the wants sum to less than 1, each gets its want
/// plus an even part of what is left. Writes 1/65536ths into `fracs`, whose
/// sum never exceeds FRAC_ONE.
pub fn max_min_fair(wants: &[f64], fracs: &mut [u32]) {
    let n = wants.len();
    debug_assert!((1..=MAX_WORKERS).contains(&n) && fracs.len() == n);
    let mut order = [0u8; MAX_WORKERS];
    for (i, slot) in order.iter_mut().enumerate().take(n) {
        *slot = i as u8;
    }
    let order = &mut order[..n];
    order.sort_unstable_by(|&a, &b| wants[usize::from(a)].total_cmp(&wants[usize::from(b)]));
    let mut shares = [0.0f64; MAX_WORKERS];
    let mut remaining = 1.0f64;
    for (served, &i) in order.iter().enumerate() {
        let fair = remaining / (n - served) as f64;
        let share = wants[usize::from(i)].min(fair);
        shares[usize::from(i)] = share;
        remaining -= share;
    }
    let spread = remaining.max(0.0) / n as f64;
    for (frac, share) in fracs.iter_mut().zip(&shares[..n]) {
        // Rounding down keeps the sum within FRAC_ONE.
        *frac = (((share + spread) * f64::from(FRAC_ONE)) as u32).min(FRAC_ONE);
    }
}

/// Splits the burst: each worker's burst share follows its rate share,
/// except that a worker whose largest frame (`needs`, messages) exceeds
/// that gets room for it, taken from the others' room beyond their own
/// largest frames. `burst` is the global burst in messages. Writes
/// 1/65536ths into `out`; the sum never exceeds that of `rate_fracs`.
pub fn split_burst(rate_fracs: &[u32], needs: &[u16], burst: u64, out: &mut [u32]) {
    let one = u64::from(FRAC_ONE);
    let need_frac = |need: u16| (u64::from(need) * one).div_ceil(burst.max(1)).min(one);
    let mut deficit = 0u64;
    let mut surplus = 0u64;
    for (&base, &need) in rate_fracs.iter().zip(needs) {
        let (base, need) = (u64::from(base), need_frac(need));
        deficit += need.saturating_sub(base);
        surplus += base.saturating_sub(need);
    }
    let moved = deficit.min(surplus);
    for ((slot, &base), &need) in out.iter_mut().zip(rate_fracs).zip(needs) {
        let (base, need) = (u64::from(base), need_frac(need));
        // Takers round their gain down, givers their loss up: the sum
        // cannot grow.
        *slot = if need > base {
            base + (need - base) * moved / deficit
        } else if moved == 0 {
            base
        } else {
            base - ((base - need) * moved).div_ceil(surplus)
        } as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(wants: &[f64]) -> Vec<f64> {
        let mut fracs = vec![0u32; wants.len()];
        max_min_fair(wants, &mut fracs);
        assert!(fracs.iter().sum::<u32>() <= FRAC_ONE);
        fracs.iter().map(|&f| f64::from(f) / f64::from(FRAC_ONE)).collect()
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
    }

    #[test]
    fn saturated_holders_split_evenly() {
        assert!(close(&split(&[9.0, 1.0]), &[0.5, 0.5]));
        assert!(close(&split(&[9.0, 0.4, 0.4, 0.4]), &[0.25; 4]));
    }

    #[test]
    fn a_small_holder_gets_its_want_and_the_rest_goes_to_the_big_one() {
        assert!(close(&split(&[9.0, 0.1]), &[0.9, 0.1]));
        assert!(close(&split(&[0.1, 5.0, 0.2]), &[0.1, 0.7, 0.2]));
    }

    #[test]
    fn unused_share_is_spread_evenly() {
        assert!(close(&split(&[0.2, 0.4]), &[0.4, 0.6]));
        assert!(close(&split(&[0.0]), &[1.0]));
    }

    #[test]
    fn an_idle_holder_keeps_only_the_floor() {
        let floor = want(0, 1000.0, 2);
        assert!((floor - 1.0 / 128.0).abs() < 1e-12);
        let shares = split(&[want(10_000, 1000.0, 2), floor]);
        assert!(close(&shares, &[1.0 - floor, floor]));
    }

    #[test]
    fn burst_follows_rate_unless_a_frame_needs_more() {
        let half = FRAC_ONE / 2;
        let mut out = [0u32; 2];
        split_burst(&[half, half], &[10, 10], 100, &mut out);
        assert_eq!(out, [half, half]);
        // Worker 1 holds 1/64 of the rate but sends 50-message frames.
        let small = FRAC_ONE / 64;
        split_burst(&[FRAC_ONE - small, small], &[10, 50], 100, &mut out);
        assert_eq!(out[1], FRAC_ONE / 2, "room for a 50-message frame of 100");
        assert!(out[0] + out[1] <= FRAC_ONE);
        assert!(out[0] >= FRAC_ONE / 2 - 1, "the giver keeps room for its own frames");
    }

    #[test]
    fn burst_needs_beyond_the_total_are_met_in_part() {
        let mut out = [0u32; 2];
        let half = FRAC_ONE / 2;
        split_burst(&[half, half], &[100, 100], 150, &mut out);
        assert_eq!(out, [half, half], "nobody has room to give");
        split_burst(&[FRAC_ONE - 100, 100], &[0, 200], 100, &mut out);
        assert!(out.iter().sum::<u32>() <= FRAC_ONE);
        assert!(out[1] >= FRAC_ONE - 1);
    }

    #[test]
    fn want_adds_headroom_to_demand() {
        assert!((want(500, 1000.0, 4) - 0.5 * HEADROOM).abs() < 1e-12);
    }
}
