//! Bounds on what a plugin may publish in one run: a token-bucket event rate and a
//! total byte budget, so a granted topic cannot be used to flood the host's stdout
//! (and whatever logs it) for the whole wall-clock limit.
//!
//! The per-plugin rate from manifest and policy arrives with the broker (issue 4);
//! until then these fixed bounds apply to every one-shot run.

use std::time::Instant;

/// Sustained publishes per second.
pub const RATE_PER_SEC: f64 = 1000.0;
/// Publishes allowed in a burst above the sustained rate.
pub const BURST: f64 = 2000.0;
/// Total payload bytes one run may publish.
pub const BYTE_BUDGET: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    RateLimited,
    ByteBudgetExhausted,
}

impl Refusal {
    pub fn kind(self) -> &'static str {
        match self {
            Refusal::RateLimited => "rate_limited",
            Refusal::ByteBudgetExhausted => "publish_budget_exhausted",
        }
    }

    pub fn rule(self) -> String {
        match self {
            Refusal::RateLimited => format!("builtin: at most {RATE_PER_SEC} events/s, burst {BURST}"),
            Refusal::ByteBudgetExhausted => format!("builtin: at most {BYTE_BUDGET} published bytes per run"),
        }
    }
}

pub struct PublishBudget {
    tokens: f64,
    last: Instant,
    bytes_left: u64,
}

impl Default for PublishBudget {
    fn default() -> Self {
        Self { tokens: BURST, last: Instant::now(), bytes_left: BYTE_BUDGET }
    }
}

impl PublishBudget {
    /// The event rate only, for a long-running plugin of the daemon: a byte budget per run
    /// would end a plugin's right to publish after a fixed amount, however slowly it came.
    pub fn rate_only() -> Self {
        Self { bytes_left: u64::MAX, ..Self::default() }
    }

    /// Admit one publish of `bytes` at time `now`, or say why not.
    pub fn admit(&mut self, bytes: u64, now: Instant) -> Result<(), Refusal> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * RATE_PER_SEC).min(BURST);
        if bytes > self.bytes_left {
            return Err(Refusal::ByteBudgetExhausted);
        }
        if self.tokens < 1.0 {
            return Err(Refusal::RateLimited);
        }
        self.tokens -= 1.0;
        self.bytes_left -= bytes;
        Ok(())
    }
}

/// Sustained bytes a second the daemon reads from one plugin instance's channel.
pub const CHANNEL_BYTES_PER_SEC: f64 = 1024.0 * 1024.0;
/// Bytes it reads in a burst above that (several of the largest frames).
pub const CHANNEL_BYTE_BURST: f64 = 4.0 * 1024.0 * 1024.0;

/// A token bucket of bytes, charged with what was read *before* it is parsed: when it runs
/// dry the reader waits (and the plugin blocks on its full channel) instead of parsing and
/// discarding, so a flood costs the daemon at most the rate's worth of parsing.
#[derive(Debug)]
pub struct ByteRate {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl ByteRate {
    /// The daemon's bound for a plugin channel.
    pub fn channel(now: Instant) -> Self {
        Self::new(CHANNEL_BYTES_PER_SEC, CHANNEL_BYTE_BURST, now)
    }

    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self { tokens: burst, last: now, rate: rate.max(1.0), burst }
    }

    /// Charge `bytes` read at `now`; returns how long to wait before reading more. The bucket
    /// may go into debt by one read, so no frame is refused for its size alone.
    pub fn charge(&mut self, bytes: usize, now: Instant) -> std::time::Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - bytes as f64;
        if self.tokens >= 0.0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_secs_f64(-self.tokens / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_byte_burst_passes_then_the_reader_waits_for_the_rate() {
        let t0 = Instant::now();
        let mut rate = ByteRate::new(1000.0, 4000.0, t0);
        assert_eq!(rate.charge(4000, t0), Duration::ZERO);
        assert_eq!(rate.charge(500, t0), Duration::from_millis(500));
        // After the wait the debt is paid and nothing more is owed.
        assert_eq!(rate.charge(0, t0 + Duration::from_millis(500)), Duration::ZERO);
        assert_eq!(rate.charge(1000, t0 + Duration::from_millis(1500)), Duration::ZERO);
        assert!(rate.charge(1, t0 + Duration::from_millis(1500)) > Duration::ZERO);
    }

    #[test]
    fn the_channel_byte_rate_bounds_what_is_parsed_a_second() {
        let t0 = Instant::now();
        let mut rate = ByteRate::channel(t0);
        let mut now = t0;
        let mut read = 0usize;
        while now < t0 + Duration::from_secs(10) {
            now += rate.charge(64 * 1024, now);
            read += 64 * 1024;
        }
        let bound = CHANNEL_BYTE_BURST + 10.0 * CHANNEL_BYTES_PER_SEC + 64.0 * 1024.0;
        assert!(read as f64 <= bound, "{read} bytes in 10 s");
    }

    #[test]
    fn a_burst_is_admitted_then_the_rate_applies() {
        let mut budget = PublishBudget::default();
        let t0 = Instant::now();
        let admitted = (0..5000).filter(|_| budget.admit(10, t0).is_ok()).count();
        assert_eq!(admitted, BURST as usize);
        assert_eq!(budget.admit(10, t0), Err(Refusal::RateLimited));
        // One second later, one second's worth of tokens.
        let t1 = t0 + Duration::from_secs(1);
        let refilled = (0..5000).filter(|_| budget.admit(10, t1).is_ok()).count();
        assert_eq!(refilled, RATE_PER_SEC as usize);
    }

    #[test]
    fn the_byte_budget_is_a_hard_total() {
        let mut budget = PublishBudget::default();
        let t = Instant::now();
        assert!(budget.admit(BYTE_BUDGET, t).is_ok());
        assert_eq!(budget.admit(1, t + Duration::from_secs(10)), Err(Refusal::ByteBudgetExhausted));
    }
}
