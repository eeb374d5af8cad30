//! The time source of the auth layer, injected so tests never sleep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the auth layer gets its time from.
pub trait Clock: Send + Sync {
    /// Monotonic time since a fixed, arbitrary origin; drives expiry, back-off and refill.
    fn monotonic(&self) -> Duration;
    /// Milliseconds since the Unix epoch; only written into audit records.
    fn unix_ms(&self) -> u64;
}

/// The real clock: `Instant` for intervals, `SystemTime` for records.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        Self { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn unix_ms(&self) -> u64 {
        // A wall clock set before 1970 is recorded as 0 rather than failing a decision.
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to; for tests of this module and of the daemon.
#[derive(Debug, Default)]
pub struct FakeClock {
    monotonic_ns: AtomicU64,
    unix_ms: AtomicU64,
}

impl FakeClock {
    /// A clock at monotonic zero whose wall clock reads `unix_ms`.
    pub fn new(unix_ms: u64) -> Self {
        Self { monotonic_ns: AtomicU64::new(0), unix_ms: AtomicU64::new(unix_ms) }
    }

    /// Moves both the monotonic and the wall clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.monotonic_ns.fetch_add(ns, Ordering::SeqCst);
        self.unix_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.monotonic_ns.load(Ordering::SeqCst))
    }

    fn unix_ms(&self) -> u64 {
        self.unix_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_advanced() {
        let clock = FakeClock::new(1_000);
        assert_eq!(clock.monotonic(), Duration::ZERO);
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clock.monotonic(), Duration::from_millis(1_500));
        assert_eq!(clock.unix_ms(), 2_500);
    }

    #[test]
    fn system_clock_is_monotonic_and_after_2020() {
        let clock = SystemClock::new();
        let a = clock.monotonic();
        let b = clock.monotonic();
        assert!(b >= a);
        assert!(clock.unix_ms() > 1_577_836_800_000);
    }
}
