//! Errors a plugin sees from the SDK.

use thiserror::Error;
use wf_protocol::ProtocolError;

#[derive(Debug, Error)]
pub enum SdkError {
    /// The environment does not name a channel fd: not running under the supervisor.
    #[error("{var} is not set: not running inside a wfsandbox sandbox")]
    NoChannel { var: &'static str },
    /// An SDK environment variable holds an unusable value.
    #[error("{var}={value:?} is invalid: {reason}")]
    BadEnv { var: &'static str, value: String, reason: &'static str },
    /// The channel fd failed a check.
    #[error("channel fd {fd}: {step} failed: {source}")]
    BadFd {
        fd: i32,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The channel fd is open but not an AF_UNIX stream socket.
    #[error("channel fd {fd} is not an AF_UNIX stream socket")]
    NotAStreamSocket { fd: i32 },
    /// A frame could not be read, decoded, encoded or written.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The first frame was not a valid hello.
    #[error("handshake failed: {0}")]
    Handshake(&'static str),
    /// The supervisor speaks another protocol version.
    #[error("supervisor speaks protocol {found}, this SDK speaks {expected}")]
    VersionMismatch { found: u32, expected: u32 },
    /// A message that is only valid at another point of the conversation.
    #[error("unexpected {0} message")]
    UnexpectedMessage(&'static str),
    /// The supervisor refused an earlier publish, or one topic of an earlier subscribe or
    /// unsubscribe.
    #[error("{topic:?} denied: {reason}")]
    Denied { topic: String, reason: String },
    /// A topic or subscription pattern the broker would refuse; nothing was sent.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic { topic: String, reason: &'static str },
    /// A value given to `publish_as`/`queue_as` could not be serialized as JSON; nothing was
    /// sent.
    #[error("payload for {topic:?} is not serializable as JSON: {source}")]
    EncodePayload {
        topic: String,
        #[source]
        source: serde_json::Error,
    },
    /// An event's payload does not have the shape `Event::payload_as` asked for.
    #[error("payload of the {topic:?} event does not match the expected type: {source}")]
    DecodePayload {
        topic: String,
        #[source]
        source: serde_json::Error,
    },
}
