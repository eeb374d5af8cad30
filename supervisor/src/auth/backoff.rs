//! Exponential back-off after failed authentication, per peer uid.
//!
//! After the k-th consecutive failure of a uid, its next attempt must wait
//! `0` while `k <= max_failures`, then `backoff_initial_ms · 2^(k − max_failures − 1)`,
//! capped at `backoff_max_ms`. Attempts refused during a back-off are not counted as
//! failures (a waiting client is not punished for polling). A success resets the uid.
//!
//! Keyed by uid because that is what the kernel vouches for; a client sharing its uid with a
//! misbehaving one shares its back-off (its existing sessions are unaffected). The table is
//! capped; when full, the uid whose last failure is oldest is forgotten, so a flood of
//! distinct uids (only root can produce one) cannot grow memory.

use super::peer::PeerCred;
use std::collections::HashMap;
use std::time::Duration;
use wf_policy::security_policy::FailedAuthBackoff;

/// The peer must wait this long before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    pub ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Duration,
    blocked_until: Duration,
}

#[derive(Debug)]
pub struct FailureTracker {
    policy: FailedAuthBackoff,
    capacity: usize,
    entries: HashMap<u32, Entry>,
}

impl FailureTracker {
    /// A tracker remembering at most `capacity` uids (at least one).
    pub fn new(policy: FailedAuthBackoff, capacity: usize) -> Self {
        Self { policy, capacity: capacity.max(1), entries: HashMap::new() }
    }

    /// Applies a reloaded policy to future failures; delays already in force stay.
    pub fn set_policy(&mut self, policy: FailedAuthBackoff) {
        self.policy = policy;
    }

    /// `Err` while the peer's uid is backing off.
    pub fn check(&self, peer: &PeerCred, now: Duration) -> Result<(), RetryAfter> {
        match self.entries.get(&peer.uid) {
            Some(entry) if entry.blocked_until > now => Err(RetryAfter { ms: ceil_ms(entry.blocked_until - now) }),
            _ => Ok(()),
        }
    }

    /// Counts a failure; returns the wait now imposed on the uid, if any.
    pub fn record_failure(&mut self, peer: &PeerCred, now: Duration) -> Option<RetryAfter> {
        if !self.entries.contains_key(&peer.uid) && self.entries.len() >= self.capacity {
            self.evict_oldest();
        }
        let entry = self.entries.entry(peer.uid).or_insert(Entry {
            failures: 0,
            last_failure: now,
            blocked_until: Duration::ZERO,
        });
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        let delay = delay_after(&self.policy, entry.failures);
        entry.blocked_until = now.saturating_add(delay);
        (!delay.is_zero()).then(|| RetryAfter { ms: ceil_ms(delay) })
    }

    /// Forgets the uid's failures.
    pub fn record_success(&mut self, peer: &PeerCred) {
        self.entries.remove(&peer.uid);
    }

    /// Number of uids currently remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict_oldest(&mut self) {
        let oldest = self.entries.iter().min_by_key(|(_, e)| e.last_failure).map(|(uid, _)| *uid);
        if let Some(uid) = oldest {
            self.entries.remove(&uid);
        }
    }
}

/// The wait imposed after `failures` consecutive failures.
pub fn delay_after(policy: &FailedAuthBackoff, failures: u32) -> Duration {
    if failures <= policy.max_failures {
        return Duration::ZERO;
    }
    let doublings = failures - policy.max_failures - 1;
    let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
    Duration::from_millis(policy.backoff_initial_ms.saturating_mul(factor).min(policy.backoff_max_ms))
}

fn ceil_ms(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> FailedAuthBackoff {
        FailedAuthBackoff { max_failures: 3, backoff_initial_ms: 100, backoff_max_ms: 1_000 }
    }

    fn peer(uid: u32) -> PeerCred {
        PeerCred { pid: 1, uid, gid: uid }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_max_failures_are_free() {
        let mut t = FailureTracker::new(policy(), 16);
        for _ in 0..3 {
            assert_eq!(t.record_failure(&peer(7), ms(0)), None);
            assert_eq!(t.check(&peer(7), ms(0)), Ok(()));
        }
        assert_eq!(t.record_failure(&peer(7), ms(0)), Some(RetryAfter { ms: 100 }));
        assert_eq!(t.check(&peer(7), ms(0)), Err(RetryAfter { ms: 100 }));
    }

    #[test]
    fn delay_doubles_then_caps() {
        let p = policy();
        let delays: Vec<u64> = (1..=10).map(|k| delay_after(&p, k).as_millis() as u64).collect();
        assert_eq!(delays, [0, 0, 0, 100, 200, 400, 800, 1_000, 1_000, 1_000]);
    }

    #[test]
    fn huge_failure_counts_saturate_at_the_cap() {
        let p = FailedAuthBackoff { max_failures: 1, backoff_initial_ms: 3_600_000, backoff_max_ms: 86_400_000 };
        assert_eq!(delay_after(&p, 200), ms(86_400_000));
        assert_eq!(delay_after(&p, u32::MAX), ms(86_400_000));
    }

    #[test]
    fn tracker_applies_growth_from_the_time_of_each_failure() {
        let mut t = FailureTracker::new(policy(), 16);
        let me = peer(7);
        for _ in 0..3 {
            t.record_failure(&me, ms(0));
        }
        t.record_failure(&me, ms(1_000));
        assert_eq!(t.check(&me, ms(1_040)), Err(RetryAfter { ms: 60 }));
        assert_eq!(t.check(&me, ms(1_100)), Ok(()), "free again exactly when the delay ends");
        t.record_failure(&me, ms(1_100));
        assert_eq!(t.check(&me, ms(1_100)), Err(RetryAfter { ms: 200 }));
        assert_eq!(t.check(&me, ms(1_299)), Err(RetryAfter { ms: 1 }));
        assert_eq!(t.check(&me, ms(1_300)), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_milliseconds() {
        let mut t = FailureTracker::new(FailedAuthBackoff { max_failures: 0, ..policy() }, 16);
        t.record_failure(&peer(7), Duration::ZERO);
        assert_eq!(t.check(&peer(7), Duration::from_micros(99_001)), Err(RetryAfter { ms: 1 }));
    }

    #[test]
    fn success_resets_the_count() {
        let mut t = FailureTracker::new(policy(), 16);
        for _ in 0..5 {
            t.record_failure(&peer(7), ms(0));
        }
        t.record_success(&peer(7));
        assert_eq!(t.check(&peer(7), ms(0)), Ok(()));
        assert!(t.is_empty());
        // Back to free failures, not to the grown delay.
        assert_eq!(t.record_failure(&peer(7), ms(0)), None);
    }

    #[test]
    fn uids_back_off_independently() {
        let mut t = FailureTracker::new(policy(), 16);
        for _ in 0..4 {
            t.record_failure(&peer(7), ms(0));
        }
        assert!(t.check(&peer(7), ms(0)).is_err());
        assert_eq!(t.check(&peer(8), ms(0)), Ok(()));
        // Same uid, different pid and gid: same back-off.
        assert!(t.check(&PeerCred { pid: 99, uid: 7, gid: 99 }, ms(0)).is_err());
    }

    #[test]
    fn table_is_capped_and_forgets_the_oldest_failure() {
        let mut t = FailureTracker::new(FailedAuthBackoff { max_failures: 0, ..policy() }, 3);
        for (i, uid) in [1u32, 2, 3, 4].into_iter().enumerate() {
            t.record_failure(&peer(uid), ms(i as u64));
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.check(&peer(1), ms(4)), Ok(()), "uid 1 failed first and was evicted");
        for uid in [2, 3, 4] {
            assert!(t.check(&peer(uid), ms(4)).is_err(), "uid {uid} still tracked");
        }
        for uid in 100..10_000 {
            t.record_failure(&peer(uid), ms(10));
        }
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn a_policy_change_applies_to_later_failures() {
        let mut t = FailureTracker::new(policy(), 16);
        for _ in 0..3 {
            t.record_failure(&peer(7), ms(0));
        }
        t.set_policy(FailedAuthBackoff { max_failures: 3, backoff_initial_ms: 5_000, backoff_max_ms: 60_000 });
        assert_eq!(t.record_failure(&peer(7), ms(0)), Some(RetryAfter { ms: 5_000 }));
    }
}
