//! The table of authenticated sessions: one per successful hello, touched by every request,
//! expired once idle for the policy's session timeout (idle time `>=` timeout is expired).
//! The table is capped; a full table refuses new sessions instead of evicting live ones, so an
//! authorised client flooding hellos cannot log out the others.

use super::authorise::Rights;
use super::peer::PeerCred;
use super::rate_limit::TokenBucket;
use super::session_id::SessionId;
use super::token::TokenDigest;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// What the daemon keeps about an authenticated connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub id: SessionId,
    pub peer: PeerCred,
    pub rights: Rights,
}

/// A session plus the state the auth layer needs for each of its requests.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub session: Session,
    /// The hash of the token presented at hello, to re-check the session after a reload.
    pub token: Option<TokenDigest>,
    pub bucket: TokenBucket,
    last_seen: Duration,
}

/// Why a session id did not lead to a live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gone {
    Unknown,
    /// It existed but had been idle too long; it has now been removed.
    Expired(Session),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    Full,
    DuplicateId,
}

#[derive(Debug)]
pub struct SessionTable {
    timeout: Duration,
    capacity: usize,
    live: HashMap<SessionId, LiveSession>,
}

/// The policy's `session_timeout_minutes` as a duration.
pub fn timeout_from_minutes(minutes: u32) -> Duration {
    Duration::from_secs(u64::from(minutes) * 60)
}

impl SessionTable {
    pub fn new(timeout: Duration, capacity: usize) -> Self {
        Self { timeout, capacity, live: HashMap::new() }
    }

    /// Applies a reloaded timeout to every session, counting from its last request.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub fn insert(
        &mut self,
        session: Session,
        token: Option<TokenDigest>,
        bucket: TokenBucket,
        now: Duration,
    ) -> Result<(), InsertError> {
        if self.live.contains_key(&session.id) {
            return Err(InsertError::DuplicateId);
        }
        if self.live.len() >= self.capacity {
            return Err(InsertError::Full);
        }
        self.live.insert(session.id.clone(), LiveSession { session, token, bucket, last_seen: now });
        Ok(())
    }

    /// Marks a request on session `id` at `now`; an expired session is removed instead.
    pub fn touch(&mut self, id: &SessionId, now: Duration) -> Result<&mut LiveSession, Gone> {
        let expired = match self.live.get(id) {
            None => return Err(Gone::Unknown),
            Some(live) => self.is_idle(live, now),
        };
        if expired {
            return Err(self.live.remove(id).map_or(Gone::Unknown, |live| Gone::Expired(live.session)));
        }
        let live = self.live.get_mut(id).ok_or(Gone::Unknown)?;
        live.last_seen = live.last_seen.max(now);
        Ok(live)
    }

    /// Removes and returns every session idle for at least the timeout.
    pub fn sweep(&mut self, now: Duration) -> Vec<Session> {
        let expired: Vec<SessionId> =
            self.live.iter().filter(|(_, live)| self.is_idle(live, now)).map(|(id, _)| id.clone()).collect();
        expired.iter().filter_map(|id| self.live.remove(id)).map(|live| live.session).collect()
    }

    pub fn remove(&mut self, id: &SessionId) -> Option<Session> {
        self.live.remove(id).map(|live| live.session)
    }

    pub fn get(&self, id: &SessionId) -> Option<&Session> {
        self.live.get(id).map(|live| &live.session)
    }

    pub fn ids(&self) -> Vec<SessionId> {
        self.live.keys().cloned().collect()
    }

    pub fn get_mut(&mut self, id: &SessionId) -> Option<&mut LiveSession> {
        self.live.get_mut(id)
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    fn is_idle(&self, live: &LiveSession, now: Duration) -> bool {
        now.saturating_sub(live.last_seen) >= self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_policy::security_policy::RateLimit;

    const TIMEOUT: Duration = Duration::from_secs(60);

    fn session(n: u8) -> Session {
        Session {
            id: SessionId::from_bytes(&[n; 16]),
            peer: PeerCred { pid: 1, uid: 0, gid: 0 },
            rights: Rights::Control,
        }
    }

    fn add(table: &mut SessionTable, n: u8, now: Duration) -> Result<(), InsertError> {
        table.insert(session(n), None, TokenBucket::new(RateLimit::default(), now), now)
    }

    #[test]
    fn timeout_is_minutes() {
        assert_eq!(timeout_from_minutes(60), Duration::from_secs(3_600));
        assert_eq!(timeout_from_minutes(u32::MAX), Duration::from_secs(u64::from(u32::MAX) * 60));
    }

    #[test]
    fn expiry_happens_exactly_at_the_timeout() {
        let mut t = SessionTable::new(TIMEOUT, 8);
        add(&mut t, 1, Duration::ZERO).expect("insert");
        let id = session(1).id;
        assert!(t.touch(&id, TIMEOUT - Duration::from_nanos(1)).is_ok(), "alive just before");
        // The touch above restarted the idle clock.
        let last = TIMEOUT - Duration::from_nanos(1);
        assert!(t.touch(&id, last + TIMEOUT - Duration::from_nanos(1)).is_ok());
        let last = last + TIMEOUT - Duration::from_nanos(1);
        assert_eq!(t.touch(&id, last + TIMEOUT).map(|_| ()), Err(Gone::Expired(session(1))));
        assert!(t.is_empty(), "an expired session is removed on touch");
        assert_eq!(t.touch(&id, last + TIMEOUT).map(|_| ()), Err(Gone::Unknown));
    }

    #[test]
    fn sweep_removes_exactly_the_idle_sessions() {
        let mut t = SessionTable::new(TIMEOUT, 8);
        add(&mut t, 1, Duration::ZERO).expect("insert");
        add(&mut t, 2, Duration::from_secs(10)).expect("insert");
        add(&mut t, 3, Duration::ZERO).expect("insert");
        t.touch(&session(3).id, Duration::from_secs(30)).expect("touch");
        assert!(t.sweep(TIMEOUT - Duration::from_nanos(1)).is_empty());
        assert_eq!(t.sweep(TIMEOUT), vec![session(1)]);
        assert_eq!(t.sweep(Duration::from_secs(70)), vec![session(2)]);
        assert_eq!(t.len(), 1);
        assert!(t.get(&session(3).id).is_some());
    }

    #[test]
    fn unknown_ids_are_reported_as_unknown() {
        let mut t = SessionTable::new(TIMEOUT, 8);
        assert_eq!(t.touch(&session(9).id, Duration::ZERO).map(|_| ()), Err(Gone::Unknown));
    }

    #[test]
    fn table_refuses_sessions_beyond_capacity() {
        let mut t = SessionTable::new(TIMEOUT, 2);
        add(&mut t, 1, Duration::ZERO).expect("insert");
        add(&mut t, 2, Duration::ZERO).expect("insert");
        assert_eq!(add(&mut t, 3, Duration::ZERO), Err(InsertError::Full));
        assert_eq!(t.len(), 2);
        t.remove(&session(1).id);
        assert_eq!(add(&mut t, 3, Duration::ZERO), Ok(()));
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let mut t = SessionTable::new(TIMEOUT, 8);
        add(&mut t, 1, Duration::ZERO).expect("insert");
        assert_eq!(add(&mut t, 1, Duration::ZERO), Err(InsertError::DuplicateId));
    }

    #[test]
    fn a_shorter_reloaded_timeout_applies_to_existing_sessions() {
        let mut t = SessionTable::new(TIMEOUT, 8);
        add(&mut t, 1, Duration::ZERO).expect("insert");
        t.set_timeout(Duration::from_secs(5));
        assert_eq!(t.sweep(Duration::from_secs(5)), vec![session(1)]);
    }

    #[test]
    fn a_clock_step_backwards_does_not_expire_or_rewind() {
        let mut t = SessionTable::new(TIMEOUT, 8);
        add(&mut t, 1, Duration::from_secs(100)).expect("insert");
        assert!(t.touch(&session(1).id, Duration::from_secs(50)).is_ok());
        assert!(t.sweep(Duration::from_secs(100) + TIMEOUT - Duration::from_nanos(1)).is_empty());
    }
}
