//! Fixed-point token bucket arithmetic.
//!
//! Integers rather than floats so that refill is exact and reproducible:
//! tokens are counted in 2^-32 of a message, rates in 2^-48 of a message per
//! TSC tick, and the 16 bits that the conversion between the two drops are
//! carried to the next refill instead of being lost.

/// Tokens are messages scaled by 2^32.
pub const TOKEN_SHIFT: u32 = 32;
/// Rates are messages per tick scaled by 2^48 (low rates stay precise).
pub const RATE_SHIFT: u32 = 48;
const CARRY_BITS: u32 = RATE_SHIFT - TOKEN_SHIFT;
const CARRY_MASK: u128 = (1 << CARRY_BITS) - 1;

/// A worker's share of a global limit, in 1/65536ths.
pub const FRAC_ONE: u32 = 1 << 16;

/// Largest burst the fixed point represents.
pub const MAX_BURST: u64 = 1 << 31;

/// A global limit (rate, burst) converted to fixed point for one TSC rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FixedLimit {
    /// Messages per tick << RATE_SHIFT.
    pub rate: u64,
    /// Messages << TOKEN_SHIFT.
    pub burst: u64,
}

impl FixedLimit {
    /// `rate` in messages per second, `burst` in messages (≤ MAX_BURST).
    /// Returns None when the rate does not fit the fixed point for `tsc_hz`.
    pub fn new(rate: u64, burst: u64, tsc_hz: u64) -> Option<Self> {
        // Rounded up: a rate a hair high (< 2^-48 msg per tick) rather
        // than a bucket that is a token short at exact refill times.
        let per_tick = (u128::from(rate) << RATE_SHIFT).div_ceil(u128::from(tsc_hz.max(1)));
        Some(FixedLimit { rate: u64::try_from(per_tick).ok()?, burst: burst.checked_mul(1 << TOKEN_SHIFT)? })
    }

    /// This limit scaled by `frac / FRAC_ONE`.
    #[inline]
    pub fn share(&self, frac: u32) -> FixedLimit {
        self.split(frac, frac)
    }

    /// Rate scaled by `rate_frac`, burst by `burst_frac` (in FRAC_ONE units).
    #[inline]
    pub fn split(&self, rate_frac: u32, burst_frac: u32) -> FixedLimit {
        let scale = |v: u64, frac: u32| ((u128::from(v) * u128::from(frac)) >> 16) as u64;
        FixedLimit { rate: scale(self.rate, rate_frac), burst: scale(self.burst, burst_frac) }
    }
}

/// One local token bucket. `#[repr(C, packed(4))]` keeps its 36 bytes
/// predictable inside the 64-byte table entry, and leaves the 4 bytes that
/// 8-byte alignment would pad it with to the entry (its listing threshold).
/// Its 64-bit fields still sit on 8-byte boundaries there (the entry puts
/// it at offset 8 of a line).
#[repr(C, packed(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenBucket {
    tokens: u64,
    last_tsc: u64,
    limit_rate: u64,
    limit_burst: u64,
    /// Sub-token remainder of the last refill.
    carry: u32,
}

impl TokenBucket {
    /// A bucket with `limit`, full at `now`.
    pub fn full(limit: FixedLimit, now: u64) -> Self {
        TokenBucket { tokens: limit.burst, last_tsc: now, limit_rate: limit.rate, limit_burst: limit.burst, carry: 0 }
    }

    /// Adds the tokens earned since the last refill. A clock that went
    /// backwards earns nothing and keeps the later timestamp.
    #[inline(always)]
    pub fn refill(&mut self, now: u64) {
        if now <= self.last_tsc {
            return;
        }
        let elapsed = now - self.last_tsc;
        self.last_tsc = now;
        // In 64 bits whenever the product fits (a busy bucket's elapsed
        // time is short); the 128-bit sum only after a long idle spell.
        let Some(earned) = elapsed.checked_mul(self.limit_rate).and_then(|e| e.checked_add(u64::from(self.carry)))
        else {
            return self.refill_wide(elapsed);
        };
        // tokens <= burst <= MAX_BURST << TOKEN_SHIFT = 2^63 and the
        // addend is below 2^48: no overflow.
        let tokens = self.tokens + (earned >> CARRY_BITS);
        if tokens >= self.limit_burst {
            self.tokens = self.limit_burst;
            self.carry = 0;
        } else {
            self.tokens = tokens;
            self.carry = (earned & CARRY_MASK as u64) as u32;
        }
    }

    /// `refill` for an `elapsed * rate` beyond 64 bits.
    #[cold]
    fn refill_wide(&mut self, elapsed: u64) {
        let earned = u128::from(elapsed) * u128::from(self.limit_rate) + u128::from(self.carry);
        let tokens = u128::from(self.tokens) + (earned >> CARRY_BITS);
        if tokens >= u128::from(self.limit_burst) {
            self.tokens = self.limit_burst;
            self.carry = 0;
        } else {
            self.tokens = tokens as u64;
            self.carry = (earned & CARRY_MASK) as u32;
        }
    }

    /// Whether `msgs` tokens are available (call `refill` first).
    #[inline(always)]
    pub fn covers(&self, msgs: u64) -> bool {
        self.tokens >= msgs << TOKEN_SHIFT
    }

    /// Removes `msgs` tokens; only after `covers(msgs)` said yes.
    #[inline(always)]
    pub fn take(&mut self, msgs: u64) {
        self.tokens -= msgs << TOKEN_SHIFT;
    }

    /// Gives back `msgs` tokens just taken, before any refill: the bucket
    /// is then exactly as if they had never been taken.
    pub fn give_back(&mut self, msgs: u64) {
        self.tokens += msgs << TOKEN_SHIFT;
    }

    /// Changes the limit from `now` on: tokens earned so far count at the
    /// old rate, and a smaller burst clips the tokens held (so the sum of
    /// tokens over workers never exceeds the sum of their bursts).
    pub fn set_limit(&mut self, limit: FixedLimit, now: u64) {
        self.refill(now);
        self.limit_rate = limit.rate;
        self.limit_burst = limit.burst;
        if self.tokens >= limit.burst {
            self.tokens = limit.burst;
            self.carry = 0;
        }
    }

    /// The limit in force.
    pub fn limit(&self) -> FixedLimit {
        FixedLimit { rate: self.limit_rate, burst: self.limit_burst }
    }

    /// Whether the bucket holds its whole burst (after `refill`).
    pub fn is_full(&self) -> bool {
        self.tokens >= self.limit_burst
    }

    /// Whole messages available now.
    #[cfg(test)]
    pub fn available(&self) -> u64 {
        self.tokens >> TOKEN_SHIFT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 1_000_000_000;

    fn limit(rate: u64, burst: u64) -> FixedLimit {
        FixedLimit::new(rate, burst, HZ).unwrap()
    }

    #[test]
    fn starts_full_and_empties_by_the_burst() {
        let mut b = TokenBucket::full(limit(1000, 10), 0);
        assert!(b.covers(10));
        assert!(!b.covers(11));
        b.take(10);
        assert!(!b.covers(1));
    }

    #[test]
    fn refills_at_the_rate_and_stops_at_the_burst() {
        let mut b = TokenBucket::full(limit(1000, 10), 0);
        b.take(10);
        b.refill(4_999_999); // 4.999999 ms at 1000/s
        assert_eq!(b.available(), 4);
        b.refill(5_000_000);
        assert_eq!(b.available(), 5);
        b.refill(1_000_000_000);
        assert_eq!(b.available(), 10);
        assert!(b.is_full());
    }

    #[test]
    fn many_tiny_refills_lose_nothing() {
        // 1 msg/s refilled every tick: each step earns 4.29 token units, so
        // dropping the fraction every time would lose 7 %.
        let one_per_s = limit(1, 1_000);
        let mut b = TokenBucket::full(one_per_s, 0);
        b.take(1_000);
        let ticks = 10_000_000u64; // 10 ms
        for now in 1..=ticks {
            b.refill(now);
        }
        let expected = ((u128::from(ticks) * u128::from(one_per_s.rate)) >> CARRY_BITS) as u64;
        let tokens = b.tokens;
        assert!(tokens.abs_diff(expected) <= 2, "{tokens} vs {expected}");
    }

    #[test]
    fn long_idle_spells_refill_as_short_ones_do() {
        // A high rate over a long gap overflows 64 bits in elapsed * rate:
        // the wide path must give what many short refills give.
        let fast = limit(1_000_000_000, 1_000_000);
        let gap = 40 * HZ;
        assert!(gap.checked_mul(fast.rate).is_none(), "the gap takes the wide path");
        let mut once = TokenBucket::full(fast, 0);
        let mut stepwise = once;
        once.take(1_000_000);
        stepwise.take(1_000_000);
        once.refill(gap);
        for now in (1..=4).map(|i| i * 100) {
            stepwise.refill(now);
        }
        assert_eq!(stepwise.available(), 400);
        stepwise.refill(gap);
        assert!(once.is_full() && stepwise.is_full());
        // And below the burst: exact to the token either way.
        let slow = limit(3, 1_000_000_000);
        let mut wide = TokenBucket::full(slow, 0);
        wide.take(1_000_000_000);
        wide.tokens = 0;
        let long = u64::MAX / slow.rate + 1;
        wide.refill(long);
        assert_eq!(wide.available(), ((u128::from(long) * u128::from(slow.rate)) >> RATE_SHIFT) as u64);
    }

    #[test]
    fn clock_going_backwards_earns_nothing() {
        let mut b = TokenBucket::full(limit(1000, 10), 1_000_000);
        b.take(10);
        b.refill(0);
        assert_eq!(b.available(), 0);
        b.refill(2_000_000); // 1 ms after the original timestamp
        assert_eq!(b.available(), 1);
    }

    #[test]
    fn shrinking_the_limit_clips_tokens() {
        let mut b = TokenBucket::full(limit(1000, 100), 0);
        b.set_limit(limit(1000, 100).share(FRAC_ONE / 4), 0);
        assert_eq!(b.available(), 25);
        b.set_limit(limit(1000, 100), 0);
        assert_eq!(b.available(), 25, "growing the burst adds no tokens");
    }

    #[test]
    fn share_scales_rate_and_burst() {
        let full = limit(1_000_000, 5000);
        let half = full.share(FRAC_ONE / 2);
        assert_eq!(half.burst, full.burst / 2);
        assert_eq!(half.rate, full.rate / 2);
        assert_eq!(full.share(FRAC_ONE), full);
    }

    #[test]
    fn rejects_rates_beyond_the_fixed_point() {
        assert!(FixedLimit::new(u64::MAX, 1, 1).is_none());
        assert!(FixedLimit::new(1, u64::MAX, HZ).is_none());
    }
}
