//! The supervisor's time source, injected so tests never sleep.
//!
//! Two readings, for two different jobs: a monotonic one for intervals (back-off, session
//! expiry, rate limits, stable-run detection), which never jumps when an admin sets the wall
//! clock, and a wall-clock one only for timestamps shown to people, clients and the audit log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    /// Time since a fixed, arbitrary origin; never goes backwards.
    fn monotonic(&self) -> Duration;
    /// Milliseconds since the Unix epoch, for display only.
    fn unix_ms(&self) -> u64;
}

/// The real clock: `Instant` for intervals, `SystemTime` for timestamps.
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
        // A wall clock set before 1970 reads as 0 rather than failing a state change.
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to; both readings advance together.
#[derive(Debug, Default)]
pub struct FakeClock {
    monotonic_ns: AtomicU64,
    unix_ms_at_origin: u64,
}

impl FakeClock {
    pub fn starting_at_unix_ms(unix_ms: u64) -> Self {
        Self { monotonic_ns: AtomicU64::new(0), unix_ms_at_origin: unix_ms }
    }

    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self.monotonic_ns.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| Some(now.saturating_add(ns)));
    }
}

impl Clock for FakeClock {
    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.monotonic_ns.load(Ordering::SeqCst))
    }

    fn unix_ms(&self) -> u64 {
        let elapsed_ms = self.monotonic_ns.load(Ordering::SeqCst) / 1_000_000;
        self.unix_ms_at_origin.saturating_add(elapsed_ms)
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn monotonic(&self) -> Duration {
        (**self).monotonic()
    }

    fn unix_ms(&self) -> u64 {
        (**self).unix_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_clock_moves_only_when_advanced_and_both_readings_agree() {
        let clock = FakeClock::starting_at_unix_ms(1_000);
        assert_eq!(clock.monotonic(), Duration::ZERO);
        assert_eq!(clock.unix_ms(), 1_000);
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clock.monotonic(), Duration::from_millis(1_500));
        assert_eq!(clock.unix_ms(), 2_500);
    }

    #[test]
    fn the_fake_clock_saturates_instead_of_wrapping() {
        let clock = FakeClock::default();
        clock.advance(Duration::MAX);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.monotonic(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn the_system_clock_is_monotonic_and_after_2020() {
        let clock = SystemClock::new();
        let a = clock.monotonic();
        let b = clock.monotonic();
        assert!(b >= a);
        assert!(clock.unix_ms() > 1_577_836_800_000);
    }
}
