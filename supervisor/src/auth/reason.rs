//! Why an auth decision came out the way it did; one stable snake_case code per cause.
//!
//! Reasons go to the audit log. Clients only see the coarser [`super::AuthError`] code, so a
//! refused peer cannot tell a wrong token from an unlisted uid.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Granted: the peer's uid is in `allowed_uids`.
    AllowedUid,
    /// Granted: the peer's primary gid is in `allowed_gids`.
    AllowedGid,
    /// Granted read-only: the peer's uid is in `read_only_uids`.
    ReadOnlyUid,
    /// Granted read-only: the peer's primary gid is in `read_only_gids`.
    ReadOnlyGid,
    /// Denied: neither the uid nor the primary gid is listed anywhere.
    PeerNotListed,
    /// Denied: the policy lists token hashes and the peer presented no token.
    TokenRequired,
    /// Denied: the token is not 64 hex digits.
    TokenMalformed,
    /// Denied: the token's hash matches none in the policy.
    TokenMismatch,
    /// Refused without evaluation: the peer is backing off after failed attempts.
    Backoff,
    /// Refused: the session table is full.
    TooManySessions,
    /// Refused: the system could not produce random bytes for a session id.
    EntropyUnavailable,
    /// Request granted: the session's rights cover the verb.
    SessionRights,
    /// Request denied: the verb needs control rights, the session has read rights.
    InsufficientRights,
    /// Request denied: no session with that id (never issued, closed or swept).
    UnknownSession,
    /// Session ended: idle for at least the policy's session timeout.
    SessionIdle,
    /// Request refused: the session's token bucket is empty.
    RateLimited,
    /// Session ended: the daemon closed it (connection closed).
    SessionClosed,
    /// Session ended: a reloaded policy no longer grants the peer anything.
    PolicyRevoked,
    /// Session kept with new rights after a policy reload.
    PolicyRegranted,
}

impl Reason {
    /// The stable code written to audit records.
    pub fn code(self) -> &'static str {
        match self {
            Reason::AllowedUid => "allowed_uid",
            Reason::AllowedGid => "allowed_gid",
            Reason::ReadOnlyUid => "read_only_uid",
            Reason::ReadOnlyGid => "read_only_gid",
            Reason::PeerNotListed => "peer_not_listed",
            Reason::TokenRequired => "token_required",
            Reason::TokenMalformed => "token_malformed",
            Reason::TokenMismatch => "token_mismatch",
            Reason::Backoff => "backoff",
            Reason::TooManySessions => "too_many_sessions",
            Reason::EntropyUnavailable => "entropy_unavailable",
            Reason::SessionRights => "session_rights",
            Reason::InsufficientRights => "insufficient_rights",
            Reason::UnknownSession => "unknown_session",
            Reason::SessionIdle => "session_idle",
            Reason::RateLimited => "rate_limited",
            Reason::SessionClosed => "session_closed",
            Reason::PolicyRevoked => "policy_revoked",
            Reason::PolicyRegranted => "policy_regranted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_matches_serialised_form() {
        let all = [
            Reason::AllowedUid,
            Reason::AllowedGid,
            Reason::ReadOnlyUid,
            Reason::ReadOnlyGid,
            Reason::PeerNotListed,
            Reason::TokenRequired,
            Reason::TokenMalformed,
            Reason::TokenMismatch,
            Reason::Backoff,
            Reason::TooManySessions,
            Reason::EntropyUnavailable,
            Reason::SessionRights,
            Reason::InsufficientRights,
            Reason::UnknownSession,
            Reason::SessionIdle,
            Reason::RateLimited,
            Reason::SessionClosed,
            Reason::PolicyRevoked,
            Reason::PolicyRegranted,
        ];
        for reason in all {
            let json = serde_json::to_string(&reason).expect("serialise");
            assert_eq!(json, format!("\"{}\"", reason.code()));
        }
    }
}
