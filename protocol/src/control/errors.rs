//! Stable error codes of the control protocol, the details each carries, and the exit codes
//! the CLI maps them to.
//!
//! On the wire an error is `{"code": "<code>", "message": "<text>", "details": {...}}`.
//! `details` is present exactly for the codes that define it (see [`ErrorCode::has_details`])
//! and has the shape that code defines; anything else is malformed.

use super::results::PluginState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use thiserror::Error;

/// Every stable error code, serialised in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    UnknownVerb,
    UnsupportedVersion,
    TooLarge,
    NotAuthorised,
    AuthBackoff,
    RateLimited,
    SessionExpired,
    NoSuchPlugin,
    AlreadyExists,
    InvalidManifest,
    InvalidPolicy,
    Refused,
    Conflict,
    Internal,
    ShuttingDown,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownVerb,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TooLarge,
        ErrorCode::NotAuthorised,
        ErrorCode::AuthBackoff,
        ErrorCode::RateLimited,
        ErrorCode::SessionExpired,
        ErrorCode::NoSuchPlugin,
        ErrorCode::AlreadyExists,
        ErrorCode::InvalidManifest,
        ErrorCode::InvalidPolicy,
        ErrorCode::Refused,
        ErrorCode::Conflict,
        ErrorCode::Internal,
        ErrorCode::ShuttingDown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownVerb => "unknown_verb",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::NotAuthorised => "not_authorised",
            ErrorCode::AuthBackoff => "auth_backoff",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::NoSuchPlugin => "no_such_plugin",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::InvalidManifest => "invalid_manifest",
            ErrorCode::InvalidPolicy => "invalid_policy",
            ErrorCode::Refused => "refused",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Internal => "internal",
            ErrorCode::ShuttingDown => "shutting_down",
        }
    }

    /// Whether errors with this code carry a `details` object.
    pub fn has_details(self) -> bool {
        !matches!(
            self,
            ErrorCode::BadRequest
                | ErrorCode::UnknownVerb
                | ErrorCode::NotAuthorised
                | ErrorCode::SessionExpired
                | ErrorCode::Internal
                | ErrorCode::ShuttingDown
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason a manifest or policy is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    /// JSON pointer (RFC 6901) into the document; `""` is the whole document.
    pub pointer: String,
    pub reason: String,
}

/// An error answered to a request (or, without a request id, to the connection).
/// Each variant is one [`ErrorCode`] with the details that code carries.
#[derive(Debug, Clone, PartialEq, Error, Serialize, Deserialize)]
#[serde(try_from = "WireErrorIn", into = "WireErrorOut")]
pub enum ControlError {
    /// The frame or request is not well-formed, or an argument is out of range.
    #[error("bad_request: {message}")]
    BadRequest { message: String },
    /// The verb is not one this protocol version defines.
    #[error("unknown_verb: {message}")]
    UnknownVerb { message: String },
    /// The `hello` names a protocol version the server does not speak.
    #[error("unsupported_version: {message}")]
    UnsupportedVersion { message: String, supported: Vec<u32> },
    /// A frame exceeded its cap.
    #[error("too_large: {message}")]
    TooLarge { message: String, max_bytes: u64 },
    /// The peer (uid/gid/token) may not open a session, or the session may not use the verb.
    #[error("not_authorised: {message}")]
    NotAuthorised { message: String },
    /// The peer failed to authenticate too often; it may retry after `retry_after_ms`.
    #[error("auth_backoff: {message}")]
    AuthBackoff { message: String, retry_after_ms: u64 },
    /// The session exceeded its request rate; it may retry after `retry_after_ms`.
    #[error("rate_limited: {message}")]
    RateLimited { message: String, retry_after_ms: u64 },
    /// The session was idle for longer than the policy allows and is closed.
    #[error("session_expired: {message}")]
    SessionExpired { message: String },
    #[error("no_such_plugin: {message}")]
    NoSuchPlugin { message: String, name: String },
    #[error("already_exists: {message}")]
    AlreadyExists { message: String, name: String },
    #[error("invalid_manifest: {message}")]
    InvalidManifest { message: String, problems: Vec<Problem> },
    #[error("invalid_policy: {message}")]
    InvalidPolicy { message: String, problems: Vec<Problem> },
    /// The supervisor refused to start the plugin, or its set-up failed.
    #[error("refused: {message}")]
    Refused { message: String, layer: Option<String>, step: Option<String>, errno: Option<i32> },
    /// The plugin is in a state that does not allow the verb.
    #[error("conflict: {message}")]
    Conflict { message: String, name: String, state: PluginState },
    #[error("internal: {message}")]
    Internal { message: String },
    /// The daemon is shutting down and takes no new work.
    #[error("shutting_down: {message}")]
    ShuttingDown { message: String },
}

impl ControlError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ControlError::BadRequest { .. } => ErrorCode::BadRequest,
            ControlError::UnknownVerb { .. } => ErrorCode::UnknownVerb,
            ControlError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            ControlError::TooLarge { .. } => ErrorCode::TooLarge,
            ControlError::NotAuthorised { .. } => ErrorCode::NotAuthorised,
            ControlError::AuthBackoff { .. } => ErrorCode::AuthBackoff,
            ControlError::RateLimited { .. } => ErrorCode::RateLimited,
            ControlError::SessionExpired { .. } => ErrorCode::SessionExpired,
            ControlError::NoSuchPlugin { .. } => ErrorCode::NoSuchPlugin,
            ControlError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            ControlError::InvalidManifest { .. } => ErrorCode::InvalidManifest,
            ControlError::InvalidPolicy { .. } => ErrorCode::InvalidPolicy,
            ControlError::Refused { .. } => ErrorCode::Refused,
            ControlError::Conflict { .. } => ErrorCode::Conflict,
            ControlError::Internal { .. } => ErrorCode::Internal,
            ControlError::ShuttingDown { .. } => ErrorCode::ShuttingDown,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ControlError::BadRequest { message }
            | ControlError::UnknownVerb { message }
            | ControlError::UnsupportedVersion { message, .. }
            | ControlError::TooLarge { message, .. }
            | ControlError::NotAuthorised { message }
            | ControlError::AuthBackoff { message, .. }
            | ControlError::RateLimited { message, .. }
            | ControlError::SessionExpired { message }
            | ControlError::NoSuchPlugin { message, .. }
            | ControlError::AlreadyExists { message, .. }
            | ControlError::InvalidManifest { message, .. }
            | ControlError::InvalidPolicy { message, .. }
            | ControlError::Refused { message, .. }
            | ControlError::Conflict { message, .. }
            | ControlError::Internal { message }
            | ControlError::ShuttingDown { message } => message,
        }
    }

    /// The exit status the CLI uses when a command fails with this error.
    pub fn exit_code(&self) -> u8 {
        exit_code(self.code())
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ControlError::BadRequest { message: message.into() }
    }

    pub fn unknown_verb(verb: &str) -> Self {
        ControlError::UnknownVerb { message: format!("unknown verb {:?}", bounded(verb)) }
    }

    pub fn unsupported_version(requested: u32) -> Self {
        ControlError::UnsupportedVersion {
            message: format!("protocol version {requested} is not supported"),
            supported: super::SUPPORTED_VERSIONS.to_vec(),
        }
    }

    pub fn too_large(max_bytes: u64) -> Self {
        ControlError::TooLarge { message: format!("frame exceeds the cap of {max_bytes} bytes"), max_bytes }
    }

    pub fn not_authorised(message: impl Into<String>) -> Self {
        ControlError::NotAuthorised { message: message.into() }
    }

    pub fn no_such_plugin(name: &str) -> Self {
        let name = bounded(name);
        ControlError::NoSuchPlugin { message: format!("no plugin named {name:?}"), name }
    }

    pub fn already_exists(name: &str) -> Self {
        let name = bounded(name);
        ControlError::AlreadyExists { message: format!("a plugin named {name:?} is already loaded"), name }
    }

    pub fn conflict(name: &str, state: PluginState, message: impl Into<String>) -> Self {
        ControlError::Conflict { message: message.into(), name: bounded(name), state }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ControlError::Internal { message: message.into() }
    }

    pub fn shutting_down() -> Self {
        ControlError::ShuttingDown { message: "the daemon is shutting down".to_owned() }
    }
}

/// Longest echo of client-supplied text (a verb, a name) kept in an error.
const MAX_ECHO_CHARS: usize = 128;

fn bounded(text: &str) -> String {
    text.chars().take(MAX_ECHO_CHARS).collect()
}

/// Exit statuses of the `wfsandbox` client commands (`ps`, `start`, `stop`, ...).
pub const EXIT_OK: u8 = 0;
/// Any failure without a more specific status (internal, shutting_down, rate_limited).
pub const EXIT_FAILURE: u8 = 1;
/// Bad command-line usage or a request the daemon called malformed (bad_request, unknown_verb).
pub const EXIT_USAGE: u8 = 2;
/// No daemon listens on the socket (it does not exist or refuses connections).
pub const EXIT_DAEMON_NOT_RUNNING: u8 = 3;
/// not_authorised, auth_backoff, session_expired.
pub const EXIT_NOT_AUTHORISED: u8 = 4;
/// no_such_plugin.
pub const EXIT_NO_SUCH_PLUGIN: u8 = 5;
/// invalid_manifest, invalid_policy.
pub const EXIT_INVALID: u8 = 6;
/// conflict, already_exists.
pub const EXIT_CONFLICT: u8 = 7;
/// The daemon spoke an unsupported version, sent something malformed, refused a frame as
/// too large, or closed the connection mid-conversation.
pub const EXIT_PROTOCOL: u8 = 8;
/// refused: the same status as `wfsandbox run` uses for a refusal.
pub const EXIT_REFUSED: u8 = 125;

/// The CLI exit status for an error code.
pub fn exit_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::BadRequest | ErrorCode::UnknownVerb => EXIT_USAGE,
        ErrorCode::NotAuthorised | ErrorCode::AuthBackoff | ErrorCode::SessionExpired => EXIT_NOT_AUTHORISED,
        ErrorCode::NoSuchPlugin => EXIT_NO_SUCH_PLUGIN,
        ErrorCode::InvalidManifest | ErrorCode::InvalidPolicy => EXIT_INVALID,
        ErrorCode::AlreadyExists | ErrorCode::Conflict => EXIT_CONFLICT,
        ErrorCode::UnsupportedVersion | ErrorCode::TooLarge => EXIT_PROTOCOL,
        ErrorCode::Refused => EXIT_REFUSED,
        ErrorCode::RateLimited | ErrorCode::Internal | ErrorCode::ShuttingDown => EXIT_FAILURE,
    }
}

// ---- wire form -------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Versions {
    supported: Vec<u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    max_bytes: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryAfter {
    retry_after_ms: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginName {
    name: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Problems {
    problems: Vec<Problem>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Refusal {
    layer: Option<String>,
    step: Option<String>,
    errno: Option<i32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateOf {
    name: String,
    state: PluginState,
}

#[derive(Serialize)]
#[serde(untagged)]
enum DetailsOut {
    Versions(Versions),
    Limit(Limit),
    RetryAfter(RetryAfter),
    PluginName(PluginName),
    Problems(Problems),
    Refusal(Refusal),
    StateOf(StateOf),
}

#[derive(Serialize)]
struct WireErrorOut {
    code: ErrorCode,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<DetailsOut>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireErrorIn {
    code: ErrorCode,
    message: String,
    #[serde(default, deserialize_with = "super::strict::option")]
    details: Option<Value>,
}

impl From<ControlError> for WireErrorOut {
    fn from(error: ControlError) -> Self {
        let code = error.code();
        let (message, details) = match error {
            ControlError::BadRequest { message }
            | ControlError::UnknownVerb { message }
            | ControlError::NotAuthorised { message }
            | ControlError::SessionExpired { message }
            | ControlError::Internal { message }
            | ControlError::ShuttingDown { message } => (message, None),
            ControlError::UnsupportedVersion { message, supported } => {
                (message, Some(DetailsOut::Versions(Versions { supported })))
            }
            ControlError::TooLarge { message, max_bytes } => (message, Some(DetailsOut::Limit(Limit { max_bytes }))),
            ControlError::AuthBackoff { message, retry_after_ms }
            | ControlError::RateLimited { message, retry_after_ms } => {
                (message, Some(DetailsOut::RetryAfter(RetryAfter { retry_after_ms })))
            }
            ControlError::NoSuchPlugin { message, name } | ControlError::AlreadyExists { message, name } => {
                (message, Some(DetailsOut::PluginName(PluginName { name })))
            }
            ControlError::InvalidManifest { message, problems } | ControlError::InvalidPolicy { message, problems } => {
                (message, Some(DetailsOut::Problems(Problems { problems })))
            }
            ControlError::Refused { message, layer, step, errno } => {
                (message, Some(DetailsOut::Refusal(Refusal { layer, step, errno })))
            }
            ControlError::Conflict { message, name, state } => {
                (message, Some(DetailsOut::StateOf(StateOf { name, state })))
            }
        };
        WireErrorOut { code, message, details }
    }
}

impl TryFrom<WireErrorIn> for ControlError {
    type Error = String;

    fn try_from(wire: WireErrorIn) -> Result<Self, String> {
        let WireErrorIn { code, message, details } = wire;
        let details = match (code.has_details(), details) {
            (false, None) => Value::Null,
            (false, Some(_)) => return Err(format!("error code {code} takes no details")),
            (true, None) => return Err(format!("error code {code} needs details")),
            (true, Some(details)) => details,
        };
        let error = match code {
            ErrorCode::BadRequest => ControlError::BadRequest { message },
            ErrorCode::UnknownVerb => ControlError::UnknownVerb { message },
            ErrorCode::NotAuthorised => ControlError::NotAuthorised { message },
            ErrorCode::SessionExpired => ControlError::SessionExpired { message },
            ErrorCode::Internal => ControlError::Internal { message },
            ErrorCode::ShuttingDown => ControlError::ShuttingDown { message },
            ErrorCode::UnsupportedVersion => {
                let Versions { supported } = parse(code, details)?;
                ControlError::UnsupportedVersion { message, supported }
            }
            ErrorCode::TooLarge => {
                let Limit { max_bytes } = parse(code, details)?;
                ControlError::TooLarge { message, max_bytes }
            }
            ErrorCode::AuthBackoff => {
                let RetryAfter { retry_after_ms } = parse(code, details)?;
                ControlError::AuthBackoff { message, retry_after_ms }
            }
            ErrorCode::RateLimited => {
                let RetryAfter { retry_after_ms } = parse(code, details)?;
                ControlError::RateLimited { message, retry_after_ms }
            }
            ErrorCode::NoSuchPlugin => {
                let PluginName { name } = parse(code, details)?;
                ControlError::NoSuchPlugin { message, name }
            }
            ErrorCode::AlreadyExists => {
                let PluginName { name } = parse(code, details)?;
                ControlError::AlreadyExists { message, name }
            }
            ErrorCode::InvalidManifest => {
                let Problems { problems } = parse(code, details)?;
                ControlError::InvalidManifest { message, problems }
            }
            ErrorCode::InvalidPolicy => {
                let Problems { problems } = parse(code, details)?;
                ControlError::InvalidPolicy { message, problems }
            }
            ErrorCode::Refused => {
                let Refusal { layer, step, errno } = parse(code, details)?;
                ControlError::Refused { message, layer, step, errno }
            }
            ErrorCode::Conflict => {
                let StateOf { name, state } = parse(code, details)?;
                ControlError::Conflict { message, name, state }
            }
        };
        Ok(error)
    }
}

fn parse<T: serde::de::DeserializeOwned>(code: ErrorCode, details: Value) -> Result<T, String> {
    serde_json::from_value(details).map_err(|err| format!("details of {code}: {err}"))
}
