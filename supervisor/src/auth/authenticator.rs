//! The facade the daemon holds: hello → session, then one check per request, with every
//! decision sent to the [`AuditSink`].
//!
//! Order of checks on `hello`: back-off (refused without evaluating credentials, not counted
//! as a failure) → uid/gid/token decision (a denial counts as a failure, a grant resets the
//! peer) → session creation (sweeping idle sessions first if the table is full).
//! Order on each request: session lookup (idle ⇒ removed, `session_expired`) → the session's
//! token bucket (`rate_limited`) → the verb's rights (`not_authorised`).

use super::audit_event::{AuditSink, AuthEvent, Outcome, Stage};
use super::authorise::{decide_presented, Decision, Rights};
use super::backoff::FailureTracker;
use super::error::AuthError;
use super::peer::PeerCred;
use super::rate_limit::TokenBucket;
use super::reason::Reason;
use super::session_id::{new_session_id, IdSource};
use super::sessions::{timeout_from_minutes, Gone, InsertError, Session, SessionTable};
use super::token::{AcceptedHashes, TokenDigest};
use crate::clock::Clock;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use wf_policy::security_policy::AuthenticationPolicy;

/// Memory bounds of the auth layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// Open sessions at most; a hello beyond this gets `too_many_sessions`.
    pub max_sessions: usize,
    /// Peers (uids) whose failures are remembered at most.
    pub max_tracked_peers: usize,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self { max_sessions: 1024, max_tracked_peers: 4096 }
    }
}

struct State {
    policy: AuthenticationPolicy,
    accepted: AcceptedHashes,
    failures: FailureTracker,
    sessions: SessionTable,
}

pub struct Authenticator {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    sink: Arc<dyn AuditSink>,
    ids: Arc<dyn IdSource>,
}

impl Authenticator {
    pub fn new(
        policy: &AuthenticationPolicy,
        limits: AuthLimits,
        clock: Arc<dyn Clock>,
        sink: Arc<dyn AuditSink>,
        ids: Arc<dyn IdSource>,
    ) -> Self {
        let state = State {
            policy: policy.clone(),
            accepted: AcceptedHashes::from_policy(&policy.token_sha256),
            failures: FailureTracker::new(policy.failed_auth, limits.max_tracked_peers),
            sessions: SessionTable::new(timeout_from_minutes(policy.session_timeout_minutes), limits.max_sessions),
        };
        Self { state: Mutex::new(state), clock, sink, ids }
    }

    /// Authenticates a new connection from `peer` (as read by [`super::peer_cred`]) that
    /// presented `token` in its handshake.
    pub fn hello(&self, peer: PeerCred, token: Option<&str>) -> Result<Session, AuthError> {
        let now = self.clock.monotonic();
        let mut events = Vec::new();
        let result = self.hello_locked(&mut self.lock(), peer, token, now, &mut events);
        self.emit(events);
        result
    }

    /// Checks one request of `verb`, needing `needs`, on `session` (as returned by
    /// [`Self::hello`] for this connection). Rights come from the table, not from the caller's
    /// copy, so a policy reload takes effect on the next request.
    pub fn authorise_request(&self, session: &Session, verb: &str, needs: Rights) -> Result<(), AuthError> {
        let now = self.clock.monotonic();
        let (result, event) = self.request_locked(&mut self.lock(), session, verb, needs, now);
        self.emit(vec![event]);
        result
    }

    /// Counts as activity on `session` without a request (a connection with an open stream
    /// is not idle). `false` if the session is gone.
    pub fn keep_alive(&self, session: &Session) -> bool {
        let now = self.clock.monotonic();
        self.lock().sessions.touch(&session.id, now).is_ok_and(|live| live.session.peer == session.peer)
    }

    /// Ends a session whose connection closed. Returns it if it was still open.
    pub fn close(&self, session: &Session) -> Option<Session> {
        let removed = {
            let mut state = self.lock();
            match state.sessions.get(&session.id) {
                Some(live) if live.peer == session.peer => state.sessions.remove(&session.id),
                _ => None,
            }
        };
        if let Some(closed) = &removed {
            self.emit(vec![self.session_event(closed, Outcome::Ended, Reason::SessionClosed)]);
        }
        removed
    }

    /// Removes every session idle for the policy's timeout; the daemon calls this
    /// periodically. The daemon should also close the connections of the returned sessions.
    pub fn sweep_expired(&self) -> Vec<Session> {
        let now = self.clock.monotonic();
        let expired = self.lock().sessions.sweep(now);
        self.emit(expired.iter().map(|s| self.session_event(s, Outcome::Ended, Reason::SessionIdle)).collect());
        expired
    }

    /// Switches to a reloaded policy. Every open session is decided again with its original
    /// token: sessions the new policy refuses are removed and returned, the others take the
    /// new rights, rate limit and timeout. Back-off already in force stays.
    pub fn reload_policy(&self, policy: &AuthenticationPolicy) -> Vec<Session> {
        let now = self.clock.monotonic();
        let mut events = Vec::new();
        let revoked = {
            let mut state = self.lock();
            let state = &mut *state;
            state.policy = policy.clone();
            state.accepted = AcceptedHashes::from_policy(&policy.token_sha256);
            state.failures.set_policy(policy.failed_auth);
            state.sessions.set_timeout(timeout_from_minutes(policy.session_timeout_minutes));
            let mut revoked = Vec::new();
            for id in state.sessions.ids() {
                let Some(live) = state.sessions.get_mut(&id) else { continue };
                let decision = decide_presented(policy, &state.accepted, &live.session.peer, live.token.map(Ok));
                match decision {
                    Decision::Denied(_) => {
                        if let Some(gone) = state.sessions.remove(&id) {
                            events.push(self.session_event(&gone, Outcome::Ended, Reason::PolicyRevoked));
                            revoked.push(gone);
                        }
                    }
                    Decision::Granted { rights, .. } => {
                        live.bucket.set_limit(policy.rate_limit, now);
                        if live.session.rights != rights {
                            live.session.rights = rights;
                            events.push(self.session_event(&live.session, Outcome::Granted, Reason::PolicyRegranted));
                        }
                    }
                }
            }
            revoked
        };
        self.emit(events);
        revoked
    }

    /// Open sessions right now.
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    fn hello_locked(
        &self,
        state: &mut State,
        peer: PeerCred,
        token: Option<&str>,
        now: Duration,
        events: &mut Vec<AuthEvent>,
    ) -> Result<Session, AuthError> {
        if let Err(wait) = state.failures.check(&peer, now) {
            events.push(AuthEvent {
                retry_after_ms: Some(wait.ms),
                ..self.event(peer, Stage::Hello, Outcome::Denied, Reason::Backoff)
            });
            return Err(AuthError::Backoff { retry_after_ms: wait.ms });
        }
        let presented = token.map(TokenDigest::of_token);
        let kept_token = presented.and_then(Result::ok);
        let (rights, reason) = match decide_presented(&state.policy, &state.accepted, &peer, presented) {
            Decision::Granted { rights, reason } => (rights, reason),
            Decision::Denied(reason) => {
                let wait = state.failures.record_failure(&peer, now);
                events.push(AuthEvent {
                    retry_after_ms: wait.map(|w| w.ms),
                    ..self.event(peer, Stage::Hello, Outcome::Denied, reason)
                });
                return Err(AuthError::NotAuthorised { reason });
            }
        };
        state.failures.record_success(&peer);
        let id = match new_session_id(self.ids.as_ref()) {
            Ok(id) => id,
            Err(source) => {
                events.push(self.event(peer, Stage::Hello, Outcome::Denied, Reason::EntropyUnavailable));
                return Err(AuthError::Entropy { source });
            }
        };
        let session = Session { id, peer, rights };
        let bucket = TokenBucket::new(state.policy.rate_limit, now);
        let mut inserted = state.sessions.insert(session.clone(), kept_token, bucket.clone(), now);
        if inserted == Err(InsertError::Full) {
            for idle in state.sessions.sweep(now) {
                events.push(self.session_event(&idle, Outcome::Ended, Reason::SessionIdle));
            }
            inserted = state.sessions.insert(session.clone(), kept_token, bucket, now);
        }
        match inserted {
            Ok(()) => {
                events.push(AuthEvent {
                    session: Some(session.id.clone()),
                    rights: Some(rights),
                    ..self.event(peer, Stage::Hello, Outcome::Granted, reason)
                });
                Ok(session)
            }
            Err(InsertError::Full) => {
                events.push(self.event(peer, Stage::Hello, Outcome::Denied, Reason::TooManySessions));
                Err(AuthError::TooManySessions)
            }
            Err(InsertError::DuplicateId) => {
                events.push(self.event(peer, Stage::Hello, Outcome::Denied, Reason::EntropyUnavailable));
                Err(AuthError::Entropy { source: io::Error::other("the random source repeated a session id") })
            }
        }
    }

    fn request_locked(
        &self,
        state: &mut State,
        session: &Session,
        verb: &str,
        needs: Rights,
        now: Duration,
    ) -> (Result<(), AuthError>, AuthEvent) {
        let denied = |reason: Reason| AuthEvent {
            session: Some(session.id.clone()),
            verb: Some(verb.to_string()),
            ..self.event(session.peer, Stage::Request, Outcome::Denied, reason)
        };
        let live = match state.sessions.touch(&session.id, now) {
            Ok(live) if live.session.peer == session.peer => live,
            Ok(_) | Err(Gone::Unknown) => return (Err(AuthError::SessionExpired), denied(Reason::UnknownSession)),
            Err(Gone::Expired(_)) => return (Err(AuthError::SessionExpired), denied(Reason::SessionIdle)),
        };
        let rights = live.session.rights;
        if let Err(throttled) = live.bucket.try_take(now) {
            let retry_after_ms = throttled.retry_after_ms;
            let event =
                AuthEvent { retry_after_ms: Some(retry_after_ms), rights: Some(rights), ..denied(Reason::RateLimited) };
            return (Err(AuthError::RateLimited { retry_after_ms }), event);
        }
        if !rights.covers(needs) {
            let event = AuthEvent { rights: Some(rights), ..denied(Reason::InsufficientRights) };
            return (Err(AuthError::NotAuthorised { reason: Reason::InsufficientRights }), event);
        }
        let event = AuthEvent {
            session: Some(session.id.clone()),
            verb: Some(verb.to_string()),
            rights: Some(rights),
            ..self.event(session.peer, Stage::Request, Outcome::Granted, Reason::SessionRights)
        };
        (Ok(()), event)
    }

    fn event(&self, peer: PeerCred, stage: Stage, decision: Outcome, reason: Reason) -> AuthEvent {
        AuthEvent {
            time_unix_ms: self.clock.unix_ms(),
            peer,
            stage,
            session: None,
            verb: None,
            decision,
            rights: None,
            reason,
            retry_after_ms: None,
        }
    }

    fn session_event(&self, session: &Session, decision: Outcome, reason: Reason) -> AuthEvent {
        AuthEvent {
            session: Some(session.id.clone()),
            rights: Some(session.rights),
            ..self.event(session.peer, Stage::Session, decision, reason)
        }
    }

    /// Called only after the state lock is released: a slow sink delays its caller, never
    /// other connections' decisions.
    fn emit(&self, events: Vec<AuthEvent>) {
        for event in events {
            self.sink.record(event);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; recover the state if one ever does.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
#[path = "authenticator_tests.rs"]
mod tests;
