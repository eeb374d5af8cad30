//! A byte-rate token bucket: `rate` bytes per second on average, bursts up to `burst` bytes.
//!
//! Integer arithmetic only; the fraction of a token earned between two calls is carried over
//! (the refill time is advanced only by the time the granted tokens account for), so many
//! small calls earn exactly what one large one would. A rate of 0 means nothing beyond the
//! initial burst, never "unlimited".

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

#[derive(Debug, Clone)]
pub struct RateCap {
    rate: u64,
    burst: u64,
    tokens: u64,
    refilled_at: Duration,
}

impl RateCap {
    /// A full bucket at monotonic time `now`.
    pub fn new(bytes_per_sec: u64, burst: u64, now: Duration) -> Self {
        Self { rate: bytes_per_sec, burst, tokens: burst, refilled_at: now }
    }

    /// Grants up to `want` bytes at time `now`; the caller drops the rest.
    pub fn take(&mut self, want: u64, now: Duration) -> u64 {
        self.refill(now);
        let granted = want.min(self.tokens);
        self.tokens -= granted;
        granted
    }

    fn refill(&mut self, now: Duration) {
        if self.tokens >= self.burst || self.rate == 0 {
            // Nothing to earn: time spent full (or at rate 0) does not bank tokens.
            self.refilled_at = self.refilled_at.max(now);
            return;
        }
        let elapsed = now.saturating_sub(self.refilled_at).as_nanos();
        let earned = elapsed.saturating_mul(u128::from(self.rate)) / NANOS_PER_SEC;
        if earned == 0 {
            return;
        }
        let room = u128::from(self.burst - self.tokens);
        if earned >= room {
            self.tokens = self.burst;
            self.refilled_at = now;
        } else {
            // `earned < room <= u64::MAX`, and the time it accounts for is at most `elapsed`,
            // so neither the token count nor the refill time can overflow.
            self.tokens += earned as u64;
            let spent_ns = earned * NANOS_PER_SEC / u128::from(self.rate);
            let spent = Duration::new((spent_ns / NANOS_PER_SEC) as u64, (spent_ns % NANOS_PER_SEC) as u32);
            self.refilled_at = self.refilled_at.checked_add(spent).unwrap_or(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_full_bucket_grants_the_burst_then_nothing() {
        let mut cap = RateCap::new(100, 1_000, Duration::ZERO);
        assert_eq!(cap.take(5_000, Duration::ZERO), 1_000);
        assert_eq!(cap.take(1, Duration::ZERO), 0);
    }

    #[test]
    fn tokens_come_back_at_the_rate() {
        let mut cap = RateCap::new(100, 1_000, Duration::ZERO);
        cap.take(1_000, Duration::ZERO);
        assert_eq!(cap.take(1_000, S * 2), 200);
        assert_eq!(cap.take(1_000, S * 2), 0);
    }

    #[test]
    fn refill_never_exceeds_the_burst() {
        let mut cap = RateCap::new(100, 1_000, Duration::ZERO);
        cap.take(1_000, Duration::ZERO);
        assert_eq!(cap.take(u64::MAX, S * 3_600), 1_000);
    }

    #[test]
    fn fractions_of_a_token_are_carried_between_calls() {
        // 3 bytes/s asked every 100 ms: each call alone earns 0.3 of a byte.
        let mut cap = RateCap::new(3, 10, Duration::ZERO);
        cap.take(10, Duration::ZERO);
        let granted: u64 = (1..=10).map(|i| cap.take(10, Duration::from_millis(100 * i))).sum();
        assert_eq!(granted, 3);
    }

    #[test]
    fn time_spent_full_is_not_banked() {
        let mut cap = RateCap::new(100, 100, Duration::ZERO);
        assert_eq!(cap.take(0, S * 100), 0);
        assert_eq!(cap.take(1_000, S * 100), 100);
        assert_eq!(cap.take(1_000, S * 100 + Duration::from_millis(500)), 50);
    }

    #[test]
    fn a_zero_rate_is_not_unlimited() {
        let mut cap = RateCap::new(0, 10, Duration::ZERO);
        assert_eq!(cap.take(100, Duration::ZERO), 10);
        assert_eq!(cap.take(100, S * 1_000_000), 0);
    }

    #[test]
    fn a_clock_reading_from_the_past_grants_nothing_extra() {
        let mut cap = RateCap::new(100, 100, S * 10);
        cap.take(100, S * 10);
        assert_eq!(cap.take(100, S), 0);
        assert_eq!(cap.take(100, S * 11), 100);
    }

    #[test]
    fn a_slow_rate_over_a_huge_interval_does_not_overflow() {
        let mut cap = RateCap::new(1, u64::MAX, Duration::ZERO);
        cap.take(u64::MAX, Duration::ZERO);
        let far = Duration::from_secs(u64::MAX / 2);
        assert_eq!(cap.take(u64::MAX, far), u64::MAX / 2);
        assert_eq!(cap.take(u64::MAX, far), 0);
    }

    #[test]
    fn huge_rates_and_times_do_not_overflow() {
        let mut cap = RateCap::new(u64::MAX, u64::MAX, Duration::ZERO);
        assert_eq!(cap.take(u64::MAX, Duration::ZERO), u64::MAX);
        assert_eq!(cap.take(u64::MAX, Duration::MAX), u64::MAX);
    }
}
