//! Bounds on what a plugin may publish: a token-bucket event rate and, in the one-shot run
//! mode, a total byte budget, so a granted topic cannot be used to flood the host's stdout
//! (and whatever logs it) for the whole wall-clock limit. Plus the byte rate at which the
//! daemon reads a plugin's channel at all.
//!
//! The rates are the plugin's own, from its spec (`EventGrants::rate`: manifest
//! `permissions.events.rate`, else the policy's `sandbox.defaults.event_rate`); every refusal
//! names the field that decided it.

use std::time::{Duration, Instant};
use wf_policy::spec::{EventRate, Origin};

/// Total bytes one one-shot run may publish (the daemon has no per-run total: see
/// [`PublishBudget::rate_only`]).
pub const BYTE_BUDGET: u64 = 64 * 1024 * 1024;

/// The smallest largest-frame the channel's byte burst is sized for.
const CHANNEL_BURST_FRAME_FLOOR: u64 = 1024 * 1024;
/// The channel's byte burst, in frames of `max(max_event_bytes, 1 MiB)`.
const CHANNEL_BURST_FRAMES: u64 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The event bucket is empty; `rule` names the rate and burst fields.
    RateLimited { rule: String },
    /// The run's byte budget is spent.
    ByteBudgetExhausted { budget: u64 },
}

impl Refusal {
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::ByteBudgetExhausted { .. } => "publish_budget_exhausted",
        }
    }

    /// The spec field (a manifest or policy JSON pointer) or built-in bound that decided it.
    pub fn rule(&self) -> String {
        match self {
            Refusal::RateLimited { rule } => rule.clone(),
            Refusal::ByteBudgetExhausted { budget } => format!("builtin: at most {budget} published bytes per run"),
        }
    }
}

/// `/pointer` for a policy or manifest origin, `builtin: why` otherwise (as violations name rules).
fn origin_rule(origin: &Origin) -> String {
    match origin.source {
        wf_policy::spec::OriginSource::Builtin => format!("builtin: {}", origin.pointer),
        _ => origin.pointer.clone(),
    }
}

pub struct PublishBudget {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
    bytes_left: u64,
    byte_budget: u64,
    rate_rule: String,
}

impl PublishBudget {
    /// The spec's event rate and a total of `byte_budget` published bytes (one-shot runs).
    pub fn new(rate: &EventRate, byte_budget: u64) -> Self {
        let per_second = rate.events_per_second.value.max(1);
        let burst = rate.burst.value.max(1);
        let rate_rule = format!(
            "{} ({per_second} events/s), {} (burst {burst})",
            origin_rule(&rate.events_per_second.origin),
            origin_rule(&rate.burst.origin)
        );
        Self {
            tokens: f64::from(burst),
            last: Instant::now(),
            rate: f64::from(per_second),
            burst: f64::from(burst),
            bytes_left: byte_budget,
            byte_budget,
            rate_rule,
        }
    }

    /// The event rate only, for a long-running plugin of the daemon: a byte budget per run
    /// would end a plugin's right to publish after a fixed amount, however slowly it came.
    pub fn rate_only(rate: &EventRate) -> Self {
        Self::new(rate, u64::MAX)
    }

    /// Admit one publish of `bytes` at time `now`, or say why not.
    pub fn admit(&mut self, bytes: u64, now: Instant) -> Result<(), Refusal> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if bytes > self.bytes_left {
            return Err(Refusal::ByteBudgetExhausted { budget: self.byte_budget });
        }
        if self.tokens < 1.0 {
            return Err(Refusal::RateLimited { rule: self.rate_rule.clone() });
        }
        self.tokens -= 1.0;
        self.bytes_left -= bytes;
        Ok(())
    }
}

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
    /// The daemon's bound for a plugin channel: the spec's `bytes_per_second`, with a burst of
    /// `4 × max(max_event_bytes, 1 MiB)` so several of the largest frames always pass at once.
    pub fn channel(rate: &EventRate, max_event_bytes: u32, now: Instant) -> Self {
        let burst = CHANNEL_BURST_FRAMES * u64::from(max_event_bytes).max(CHANNEL_BURST_FRAME_FLOOR);
        Self::new(rate.bytes_per_second.value as f64, burst as f64, now)
    }

    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self { tokens: burst, last: now, rate: rate.max(1.0), burst }
    }

    /// Charge `bytes` read at `now`; returns how long to wait before reading more. The bucket
    /// may go into debt by one read, so no frame is refused for its size alone.
    pub fn charge(&mut self, bytes: usize, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - bytes as f64;
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-self.tokens / self.rate)
    }
}

/// Subscribe and unsubscribe requests one plugin instance may make a second (and in a burst).
/// Each is answered with the whole subscription set (up to tens of KiB), so they are held to
/// a control-plane rate of their own, whatever event rate the plugin was granted.
pub const SUBSCRIPTION_REQUESTS_PER_SEC: f64 = 100.0;

/// A plain token bucket that refuses rather than waits: `try_take` succeeds while tokens last.
#[derive(Debug)]
pub struct RequestRate {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl RequestRate {
    /// The bucket for a plugin's subscription requests.
    pub fn subscriptions(now: Instant) -> Self {
        Self::new(SUBSCRIPTION_REQUESTS_PER_SEC, SUBSCRIPTION_REQUESTS_PER_SEC, now)
    }

    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self { tokens: burst, last: now, rate, burst }
    }

    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    pub fn rule() -> String {
        format!("builtin: at most {SUBSCRIPTION_REQUESTS_PER_SEC} subscribe/unsubscribe requests a second")
    }
}

#[cfg(test)]
mod request_rate_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate_and_refusals_build_no_debt() {
        let t0 = Instant::now();
        let mut rate = RequestRate::new(10.0, 5.0, t0);
        assert_eq!((0..100).filter(|_| rate.try_take(t0)).count(), 5);
        // A second later: one second's worth, however many were refused before.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| rate.try_take(t1)).count(), 5, "capped at the burst");
        let t2 = t1 + Duration::from_millis(300);
        assert_eq!((0..100).filter(|_| rate.try_take(t2)).count(), 3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_policy::spec::Sourced;

    const MIB: u64 = 1024 * 1024;

    /// A rate as a manifest sets it, unlike any default.
    fn manifest_rate(events_per_second: u32, burst: u32, bytes_per_second: u64) -> EventRate {
        let origin = |field: &str| Origin::manifest(&format!("/permissions/events/rate/{field}"));
        EventRate {
            events_per_second: Sourced::new(events_per_second, origin("events_per_second")),
            burst: Sourced::new(burst, origin("burst")),
            bytes_per_second: Sourced::new(bytes_per_second, origin("bytes_per_second")),
        }
    }

    fn admitted(budget: &mut PublishBudget, at: Instant) -> usize {
        (0..100_000).take_while(|_| budget.admit(10, at).is_ok()).count()
    }

    #[test]
    fn the_burst_and_the_rate_are_the_specs() {
        let mut budget = PublishBudget::rate_only(&manifest_rate(7, 3, 4096));
        let t0 = Instant::now();
        assert_eq!(admitted(&mut budget, t0), 3);
        // One second later, one second's worth of tokens, capped at the burst.
        assert_eq!(admitted(&mut budget, t0 + Duration::from_secs(1)), 3);
        assert_eq!(admitted(&mut budget, t0 + Duration::from_millis(1500)), 3);
        let mut budget = PublishBudget::rate_only(&manifest_rate(50, 100, 4096));
        assert_eq!(admitted(&mut budget, t0), 100);
        assert_eq!(admitted(&mut budget, t0 + Duration::from_secs(1)), 50);
    }

    #[test]
    fn the_default_policy_rate_is_1000_a_second_with_a_burst_of_2000() {
        let mut budget = PublishBudget::new(&EventRate::for_tests(), BYTE_BUDGET);
        let t0 = Instant::now();
        assert_eq!(admitted(&mut budget, t0), 2000);
        assert_eq!(admitted(&mut budget, t0 + Duration::from_secs(1)), 1000);
    }

    #[test]
    fn a_rate_refusal_names_the_fields_that_decided_it() {
        let mut budget = PublishBudget::rate_only(&manifest_rate(7, 1, 4096));
        let t0 = Instant::now();
        assert!(budget.admit(1, t0).is_ok());
        let refusal = budget.admit(1, t0).unwrap_err();
        assert_eq!(refusal.kind(), "rate_limited");
        assert_eq!(
            refusal.rule(),
            "/permissions/events/rate/events_per_second (7 events/s), /permissions/events/rate/burst (burst 1)"
        );
        let mut budget = PublishBudget::rate_only(&EventRate::for_tests());
        let refusal = (0..3000).find_map(|_| budget.admit(1, t0).err()).unwrap();
        assert!(refusal.rule().starts_with("/sandbox/defaults/event_rate/events_per_second (1000 events/s)"));
        assert!(refusal.rule().contains("/sandbox/defaults/event_rate/burst (burst 2000)"));
    }

    #[test]
    fn the_byte_budget_is_a_hard_total() {
        let mut budget = PublishBudget::new(&manifest_rate(1000, 1000, 4096), 100);
        let t = Instant::now();
        assert!(budget.admit(100, t).is_ok());
        let refusal = budget.admit(1, t + Duration::from_secs(10)).unwrap_err();
        assert_eq!(refusal, Refusal::ByteBudgetExhausted { budget: 100 });
        assert_eq!(
            (refusal.kind(), refusal.rule().as_str()),
            ("publish_budget_exhausted", "builtin: at most 100 published bytes per run")
        );
        // The daemon's budget has no total.
        let mut budget = PublishBudget::rate_only(&manifest_rate(1000, 1000, 4096));
        assert!(budget.admit(u64::MAX / 2, t).is_ok() && budget.admit(u64::MAX / 2, t).is_ok());
    }

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
    fn the_channel_reads_the_specs_bytes_per_second() {
        let t0 = Instant::now();
        let mut rate = ByteRate::channel(&manifest_rate(1, 1, 4096), 65_536, t0);
        // The burst: 4 × 1 MiB (the floor above a 64 KiB frame limit).
        assert_eq!(rate.charge((4 * MIB) as usize, t0), Duration::ZERO);
        assert_eq!(rate.charge(4096, t0), Duration::from_secs(1));
        let mut rate = ByteRate::channel(&manifest_rate(1, 1, 8192), 65_536, t0);
        assert_eq!(rate.charge((4 * MIB) as usize + 4096, t0), Duration::from_millis(500));
    }

    #[test]
    fn the_channel_burst_is_four_of_the_largest_frames() {
        let t0 = Instant::now();
        let mut rate = ByteRate::channel(&manifest_rate(1, 1, 1024), 4 * MIB as u32, t0);
        assert_eq!(rate.charge((16 * MIB) as usize, t0), Duration::ZERO);
        assert_eq!(rate.charge(1024, t0), Duration::from_secs(1));
        let mut rate = ByteRate::channel(&manifest_rate(1, 1, 1024), 64, t0);
        assert_eq!(rate.charge((4 * MIB) as usize + 1024, t0), Duration::from_secs(1));
    }

    #[test]
    fn the_channel_byte_rate_bounds_what_is_parsed_a_second() {
        let t0 = Instant::now();
        let spec_rate = EventRate::for_tests();
        let mut rate = ByteRate::channel(&spec_rate, 65_536, t0);
        let mut now = t0;
        let mut read = 0usize;
        while now < t0 + Duration::from_secs(10) {
            now += rate.charge(64 * 1024, now);
            read += 64 * 1024;
        }
        let bound = (4 * MIB + 10 * spec_rate.bytes_per_second.value + 64 * 1024) as f64;
        assert!(read as f64 <= bound, "{read} bytes in 10 s");
    }
}
