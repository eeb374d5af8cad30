//! What a client is told when the auth layer says no. The [`Reason`] inside
//! `NotAuthorised` is for the audit log and the daemon's own logs; the message and
//! [`AuthError::code`] deliberately do not reveal it to the peer.

use super::reason::Reason;
use std::io;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("not authorised")]
    NotAuthorised { reason: Reason },
    #[error("too many failed authentication attempts; retry after {retry_after_ms} ms")]
    Backoff { retry_after_ms: u64 },
    #[error("session expired; authenticate again")]
    SessionExpired,
    #[error("too many requests; retry after {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    #[error("too many open sessions")]
    TooManySessions,
    #[error("creating a session id: getrandom failed: {source}")]
    Entropy {
        #[source]
        source: io::Error,
    },
}

impl AuthError {
    /// The stable protocol error code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::NotAuthorised { .. } => "not_authorised",
            AuthError::Backoff { .. } => "auth_backoff",
            AuthError::SessionExpired => "session_expired",
            AuthError::RateLimited { .. } => "rate_limited",
            AuthError::TooManySessions => "too_many_sessions",
            AuthError::Entropy { .. } => "internal_error",
        }
    }

    /// How long the client should wait before retrying, when the error says so.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            AuthError::Backoff { retry_after_ms } | AuthError::RateLimited { retry_after_ms } => Some(*retry_after_ms),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let cases = [
            (AuthError::NotAuthorised { reason: Reason::TokenMismatch }, "not_authorised"),
            (AuthError::Backoff { retry_after_ms: 5 }, "auth_backoff"),
            (AuthError::SessionExpired, "session_expired"),
            (AuthError::RateLimited { retry_after_ms: 5 }, "rate_limited"),
            (AuthError::TooManySessions, "too_many_sessions"),
            (AuthError::Entropy { source: io::Error::from_raw_os_error(libc::ENOSYS) }, "internal_error"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn refusal_message_does_not_reveal_the_reason() {
        for reason in [Reason::TokenMismatch, Reason::PeerNotListed, Reason::TokenRequired] {
            assert_eq!(AuthError::NotAuthorised { reason }.to_string(), "not authorised");
        }
    }

    #[test]
    fn retry_hints_are_carried() {
        assert_eq!(AuthError::Backoff { retry_after_ms: 7 }.retry_after_ms(), Some(7));
        assert_eq!(AuthError::RateLimited { retry_after_ms: 9 }.retry_after_ms(), Some(9));
        assert_eq!(AuthError::SessionExpired.retry_after_ms(), None);
    }
}
