//! Keeping the audit log's volume proportional to what happened, not to how hard a peer
//! hammers the socket (the log rotates: a flood would push the chain's history out of it).
//!
//! - Hellos refused because the peer is backing off are counted per uid; the denial that
//!   started the back-off is written, and the peer's next auth record (or the next periodic
//!   [`AuthTally::drain`]) carries `refused_during_backoff`.
//! - Granted requests of read-only verbs (`list`, `status`, ...) are counted per session and
//!   the session's end record carries `read_requests_granted`. Granted control verbs are
//!   written one by one.
//! - Denied requests (rate limit, rights) are written at most once a second per session; the
//!   others are counted into that session's next written record as
//!   `denied_requests_not_written`.
//!
//! Every table is bounded; a peer or session that does not fit is written one by one.

use crate::auth::{AuthEvent, Outcome, Reason, SessionId, Stage};
use serde_json::{json, Value};
use std::collections::HashMap;
use wf_protocol::control::{Rights, Verb};

/// Peers (by uid) and sessions tallied at once.
pub const MAX_TALLIED: usize = 4096;
/// At most one denied request of a session is written per this interval.
pub const DENIAL_RECORD_INTERVAL_MS: u64 = 1000;

#[derive(Debug, Default)]
pub struct AuthTally {
    refused_during_backoff: HashMap<u32, u64>,
    sessions: HashMap<SessionId, SessionCounts>,
}

#[derive(Debug, Default)]
struct SessionCounts {
    read_requests_granted: u64,
    denied_not_written: u64,
    last_denial_written_ms: Option<u64>,
}

impl AuthTally {
    /// The record to write for `event`, or `None` when it is only counted.
    pub fn admit(&mut self, event: &AuthEvent) -> Option<Value> {
        match event.stage {
            Stage::Request => self.admit_request(event),
            Stage::Session => self.admit_session_end(event),
            Stage::Hello => self.admit_hello(event),
        }
    }

    /// Back-off counts not yet written, as `auth_tally` events (for a periodic flush and for
    /// shutdown, so a peer that never returns is still on record).
    pub fn drain(&mut self) -> Vec<Value> {
        let mut pending: Vec<(u32, u64)> = self.refused_during_backoff.drain().collect();
        pending.sort_unstable();
        pending
            .into_iter()
            .map(|(uid, count)| json!({ "peer": { "uid": uid }, "reason": "backoff", "refused_during_backoff": count }))
            .collect()
    }

    fn admit_hello(&mut self, event: &AuthEvent) -> Option<Value> {
        let uid = event.peer.uid;
        let room = self.refused_during_backoff.len() < MAX_TALLIED || self.refused_during_backoff.contains_key(&uid);
        if event.reason == Reason::Backoff && room {
            let count = self.refused_during_backoff.entry(uid).or_default();
            *count = count.saturating_add(1);
            return None;
        }
        let mut value = serde_json::to_value(event).ok()?;
        if let Some(count) = self.refused_during_backoff.remove(&uid) {
            value["refused_during_backoff"] = json!(count);
        }
        Some(value)
    }

    fn admit_request(&mut self, event: &AuthEvent) -> Option<Value> {
        let Some(session) = &event.session else { return serde_json::to_value(event).ok() };
        if self.sessions.len() >= MAX_TALLIED && !self.sessions.contains_key(session) {
            return serde_json::to_value(event).ok();
        }
        let counts = self.sessions.entry(session.clone()).or_default();
        match event.decision {
            Outcome::Granted if needs_only_read(event.verb.as_deref()) => {
                counts.read_requests_granted = counts.read_requests_granted.saturating_add(1);
                None
            }
            Outcome::Granted => serde_json::to_value(event).ok(),
            Outcome::Denied | Outcome::Ended => {
                let due = counts
                    .last_denial_written_ms
                    .is_none_or(|last| event.time_unix_ms.saturating_sub(last) >= DENIAL_RECORD_INTERVAL_MS);
                if !due {
                    counts.denied_not_written = counts.denied_not_written.saturating_add(1);
                    return None;
                }
                counts.last_denial_written_ms = Some(event.time_unix_ms);
                let mut value = serde_json::to_value(event).ok()?;
                if counts.denied_not_written > 0 {
                    value["denied_requests_not_written"] = json!(std::mem::take(&mut counts.denied_not_written));
                }
                Some(value)
            }
        }
    }

    fn admit_session_end(&mut self, event: &AuthEvent) -> Option<Value> {
        let mut value = serde_json::to_value(event).ok()?;
        let ended = event.decision == Outcome::Ended;
        let counts = match &event.session {
            Some(session) if ended => self.sessions.remove(session),
            _ => None,
        };
        if let Some(counts) = counts {
            value["read_requests_granted"] = json!(counts.read_requests_granted);
            if counts.denied_not_written > 0 {
                value["denied_requests_not_written"] = json!(counts.denied_not_written);
            }
        }
        Some(value)
    }
}

/// A verb that read rights cover; an unknown verb name counts as needing control (written).
fn needs_only_read(verb: Option<&str>) -> bool {
    verb.and_then(Verb::from_name).is_some_and(|verb| verb.required_rights() == Rights::Read)
}

#[cfg(test)]
#[path = "audit_tally_tests.rs"]
mod tests;
