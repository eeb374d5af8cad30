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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
