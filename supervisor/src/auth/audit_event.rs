//! The record of every auth decision, and the seam through which the daemon stores it.
//!
//! The hash-chained audit log (issue 5) implements [`AuditSink`]; until it exists the daemon
//! can plug in any sink. [`MemorySink`] is for tests.

use super::authorise::Rights;
use super::peer::PeerCred;
use super::reason::Reason;
use super::session_id::SessionId;
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, MutexGuard};

/// Which step of a connection's life the decision was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The handshake that opens a session.
    Hello,
    /// One request on an open session.
    Request,
    /// A session ending (closed, idle, revoked by a reload) or changing rights on reload.
    Session,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Granted,
    Denied,
    Ended,
}

/// One auth decision. Never contains a token or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthEvent {
    pub time_unix_ms: u64,
    pub peer: PeerCred,
    pub stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    pub decision: Outcome,
    /// The rights granted (or, for a request, held by the session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rights: Option<Rights>,
    pub reason: Reason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Receives every auth decision. Called outside the authenticator's locks; must not block long.
pub trait AuditSink: Send + Sync {
    fn record(&self, event: AuthEvent);
}

/// Keeps events in memory; for tests.
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<AuthEvent>>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything recorded so far, oldest first.
    pub fn events(&self) -> Vec<AuthEvent> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<AuthEvent>> {
        self.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl AuditSink for MemorySink {
    fn record(&self, event: AuthEvent) {
        self.lock().push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AuthEvent {
        AuthEvent {
            time_unix_ms: 1_700_000_000_000,
            peer: PeerCred { pid: 12, uid: 1000, gid: 1000 },
            stage: Stage::Request,
            session: Some(SessionId::from_bytes(&[1; 16])),
            verb: Some("stop".to_string()),
            decision: Outcome::Denied,
            rights: Some(Rights::Read),
            reason: Reason::InsufficientRights,
            retry_after_ms: None,
        }
    }

    #[test]
    fn serialises_with_stable_keys() {
        let json = serde_json::to_value(event()).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({
                "time_unix_ms": 1_700_000_000_000u64,
                "peer": {"pid": 12, "uid": 1000, "gid": 1000},
                "stage": "request",
                "session": "01010101010101010101010101010101",
                "verb": "stop",
                "decision": "denied",
                "rights": "read",
                "reason": "insufficient_rights",
            })
        );
    }

    #[test]
    fn round_trips_and_rejects_unknown_fields() {
        let json = serde_json::to_string(&event()).expect("serialise");
        assert_eq!(serde_json::from_str::<AuthEvent>(&json).expect("parse"), event());
        let mut extra = serde_json::to_value(event()).expect("serialise");
        extra["token"] = serde_json::json!("x");
        assert!(serde_json::from_value::<AuthEvent>(extra).is_err());
    }

    #[test]
    fn memory_sink_keeps_events_in_order() {
        let sink = MemorySink::new();
        let mut second = event();
        second.decision = Outcome::Granted;
        sink.record(event());
        sink.record(second.clone());
        assert_eq!(sink.events(), vec![event(), second]);
    }
}
