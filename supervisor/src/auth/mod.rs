//! Control-socket authentication and authorisation (issue 3, point 3).
//!
//! The daemon identifies every connection by `SO_PEERCRED` ([`peer`]), decides what the peer
//! may do from the policy's uid/gid lists and optional bearer tokens ([`authorise`], [`token`]),
//! slows down peers that keep failing ([`backoff`]), keeps one [`sessions::Session`] per
//! authenticated connection that expires when idle ([`sessions`]), limits each session's
//! request rate ([`rate_limit`]) and reports every decision as an [`audit_event::AuthEvent`].
//! [`Authenticator`] ties these together; it is the only type the daemon needs to hold.
//!
//! Nothing here reads the wall clock or sleeps by itself: time comes from a [`crate::clock::Clock`],
//! so tests drive it with [`crate::clock::FakeClock`].

pub mod audit_event;
pub mod authenticator;
pub mod authorise;
pub mod backoff;
pub mod error;
pub mod peer;
pub mod rate_limit;
pub mod reason;
pub mod session_id;
pub mod sessions;
pub mod token;

pub use crate::clock::{Clock, FakeClock, SystemClock};
pub use audit_event::{AuditSink, AuthEvent, MemorySink, Outcome, Stage};
pub use authenticator::{AuthLimits, Authenticator};
pub use authorise::{decide, Decision, Rights};
pub use error::AuthError;
pub use peer::{peer_cred, PeerCred};
pub use reason::Reason;
pub use session_id::{IdSource, OsRandom, SessionId};
pub use sessions::Session;
