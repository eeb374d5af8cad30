//! A token bucket per session: up to `burst` requests at once, refilled at
//! `requests_per_second`. Integer arithmetic in nano-tokens, so refill is exact and
//! nothing drifts. A zero rate or burst (the policy check forbids both) fails closed.

use std::time::Duration;
use wf_policy::security_policy::RateLimit;

const NANO: u128 = 1_000_000_000;

/// Wait this long for the next request to be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_ms: u64,
}

#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    /// Available tokens × 10⁹.
    nano_tokens: u128,
    refilled_at: Duration,
}

impl TokenBucket {
    /// A full bucket as of `now`.
    pub fn new(limit: RateLimit, now: Duration) -> Self {
        Self { limit, nano_tokens: capacity(limit), refilled_at: now }
    }

    /// Takes one token, or says how long until one is available.
    pub fn try_take(&mut self, now: Duration) -> Result<(), Throttled> {
        self.refill(now);
        if self.nano_tokens >= NANO {
            self.nano_tokens -= NANO;
            return Ok(());
        }
        Err(Throttled { retry_after_ms: self.wait_for_one_ms() })
    }

    /// Applies a reloaded limit; tokens above the new burst are dropped.
    pub fn set_limit(&mut self, limit: RateLimit, now: Duration) {
        self.refill(now);
        self.limit = limit;
        self.nano_tokens = self.nano_tokens.min(capacity(limit));
    }

    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.refilled_at).as_nanos();
        let added = elapsed.saturating_mul(u128::from(self.limit.requests_per_second));
        self.nano_tokens = self.nano_tokens.saturating_add(added).min(capacity(self.limit));
        self.refilled_at = self.refilled_at.max(now);
    }

    fn wait_for_one_ms(&self) -> u64 {
        let rate = u128::from(self.limit.requests_per_second);
        if rate == 0 || self.limit.burst == 0 {
            return u64::MAX;
        }
        let missing = NANO - self.nano_tokens;
        // missing nano-tokens at `rate` nano-tokens per ns → ns; rounded up to ms.
        let ns = missing.div_ceil(rate);
        u64::try_from(ns.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

fn capacity(limit: RateLimit) -> u128 {
    u128::from(limit.burst) * NANO
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn limit(requests_per_second: u32, burst: u32) -> RateLimit {
        RateLimit { requests_per_second, burst }
    }

    #[test]
    fn burst_is_admitted_then_refused() {
        let mut b = TokenBucket::new(limit(10, 3), ms(0));
        for _ in 0..3 {
            assert_eq!(b.try_take(ms(0)), Ok(()));
        }
        assert_eq!(b.try_take(ms(0)), Err(Throttled { retry_after_ms: 100 }));
    }

    #[test]
    fn tokens_refill_at_the_configured_rate() {
        let mut b = TokenBucket::new(limit(10, 3), ms(0));
        for _ in 0..3 {
            b.try_take(ms(0)).expect("burst");
        }
        assert_eq!(b.try_take(ms(99)), Err(Throttled { retry_after_ms: 1 }));
        assert_eq!(b.try_take(ms(100)), Ok(()), "one token after 1/rate");
        assert!(b.try_take(ms(100)).is_err());
        assert_eq!(b.try_take(ms(300)), Ok(()));
        assert_eq!(b.try_take(ms(300)), Ok(()), "two tokens after 2/rate");
        assert!(b.try_take(ms(300)).is_err());
    }

    #[test]
    fn refill_never_exceeds_burst() {
        let mut b = TokenBucket::new(limit(10, 3), ms(0));
        for _ in 0..3 {
            b.try_take(ms(0)).expect("burst");
        }
        let later = Duration::from_secs(3_600);
        for _ in 0..3 {
            assert_eq!(b.try_take(later), Ok(()));
        }
        assert!(b.try_take(later).is_err());
    }

    #[test]
    fn sustained_rate_matches_requests_per_second() {
        let mut b = TokenBucket::new(limit(50, 1), ms(0));
        let mut admitted = 0;
        for t in 0..1_000 {
            if b.try_take(ms(t)).is_ok() {
                admitted += 1;
            }
        }
        // One from the initial burst plus 50/s over 0.999 s of refill.
        assert_eq!(admitted, 50);
    }

    #[test]
    fn zero_rate_or_burst_fails_closed_without_panicking() {
        let mut no_refill = TokenBucket::new(limit(0, 1), ms(0));
        assert_eq!(no_refill.try_take(ms(0)), Ok(()));
        assert_eq!(no_refill.try_take(ms(100_000)), Err(Throttled { retry_after_ms: u64::MAX }));
        let mut no_burst = TokenBucket::new(limit(10, 0), ms(0));
        assert!(no_burst.try_take(ms(100_000)).is_err());
    }

    #[test]
    fn a_clock_step_backwards_adds_nothing() {
        let mut b = TokenBucket::new(limit(10, 1), ms(1_000));
        b.try_take(ms(1_000)).expect("burst");
        assert!(b.try_take(ms(500)).is_err());
        assert!(b.try_take(ms(1_099)).is_err());
        assert_eq!(b.try_take(ms(1_100)), Ok(()));
    }

    #[test]
    fn a_smaller_reloaded_burst_drops_excess_tokens() {
        let mut b = TokenBucket::new(limit(10, 100), ms(0));
        b.set_limit(limit(10, 2), ms(0));
        assert_eq!(b.try_take(ms(0)), Ok(()));
        assert_eq!(b.try_take(ms(0)), Ok(()));
        assert!(b.try_take(ms(0)).is_err());
    }
}
