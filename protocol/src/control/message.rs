//! The envelopes of the control protocol, one enum per direction.
//!
//! Client → server: `hello` (first frame), then `request`s. Server → client: `welcome` (or an
//! `error` and close), then `response`s, `stream` items and `stream_end`s, and a
//! connection-level `error` for anything that cannot be tied to a request.

use super::errors::ControlError;
use super::inbound;
use super::results::StreamItem;
use super::verbs::{Call, Rights, Verb};
use crate::message::WireMessage;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;

/// The first frame a client sends.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// The protocol version the client speaks.
    pub protocol: u32,
    /// A short name for logs and the audit trail (`"orchestrator"`, `"wfsandbox-cli"`).
    pub client: String,
    /// A bearer token (64 hex digits), if the client has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl fmt::Debug for Hello {
    /// Never prints the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hello")
            .field("protocol", &self.protocol)
            .field("client", &self.client)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A request with its parsed, range-checked arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Chosen by the client; echoed in the response and every stream item.
    pub id: u64,
    pub call: Call,
}

/// Client → server.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Hello(Hello),
    Request(Request),
}

impl ClientMessage {
    /// A `hello` for the version this crate speaks.
    pub fn hello(client: impl Into<String>, token: Option<String>) -> Self {
        ClientMessage::Hello(Hello { protocol: super::CONTROL_PROTOCOL_VERSION, client: client.into(), token })
    }

    pub fn request(id: u64, call: Call) -> Self {
        ClientMessage::Request(Request { id, call })
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientOut<'a> {
    Hello(&'a Hello),
    Request { id: u64, verb: Verb, args: &'a Call },
}

impl Serialize for ClientMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ClientMessage::Hello(hello) => ClientOut::Hello(hello),
            ClientMessage::Request(Request { id, call }) => {
                ClientOut::Request { id: *id, verb: call.verb(), args: call }
            }
        }
        .serialize(serializer)
    }
}

/// Parses like the server does (see [`inbound::ClientFrame::interpret`]); a refusal becomes a serde
/// error, so the request id it may carry is lost. Servers read [`inbound::ClientFrame`].
impl<'de> Deserialize<'de> for ClientMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = crate::strict_value::deserialize(deserializer)?;
        inbound::interpret(value).map_err(|rejection| D::Error::custom(rejection.error))
    }
}

impl WireMessage for ClientMessage {
    const TYPES: &'static [&'static str] = &["hello", "request"];
}

/// The server's answer to a good `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Welcome {
    /// The version this session speaks (the one the client asked for).
    pub protocol: u32,
    /// `"wfsandbox <version>"`.
    pub server: String,
    /// Opaque session id, as recorded in the audit log.
    pub session: String,
    pub rights: Rights,
    /// The session is closed after this long without a frame from the client while no
    /// stream is open.
    pub idle_timeout_ms: u64,
}

/// The answer to one request: a result object or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ResponseIn", into = "ResponseOut")]
pub struct Response {
    pub id: u64,
    pub outcome: Result<Value, ControlError>,
}

#[derive(Serialize)]
struct ResponseOut {
    id: u64,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ControlError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseIn {
    id: u64,
    ok: bool,
    #[serde(default, deserialize_with = "super::strict::option")]
    result: Option<Value>,
    #[serde(default)]
    error: Option<ControlError>,
}

impl From<Response> for ResponseOut {
    fn from(response: Response) -> Self {
        match response.outcome {
            Ok(result) => ResponseOut { id: response.id, ok: true, result: Some(result), error: None },
            Err(error) => ResponseOut { id: response.id, ok: false, result: None, error: Some(error) },
        }
    }
}

impl TryFrom<ResponseIn> for Response {
    type Error = &'static str;

    fn try_from(wire: ResponseIn) -> Result<Self, Self::Error> {
        let outcome = match (wire.ok, wire.result, wire.error) {
            (true, Some(result @ Value::Object(_)), None) => Ok(result),
            (true, Some(_), None) => return Err("result must be a JSON object"),
            (false, None, Some(error)) => Err(error),
            (true, _, _) => return Err("a response with ok=true has a result and no error"),
            (false, _, _) => return Err("a response with ok=false has an error and no result"),
        };
        Ok(Response { id: wire.id, outcome })
    }
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamEndReason {
    /// Everything asked for was sent (`follow: false` after the backlog).
    Complete,
    /// The client sent `cancel` for it.
    Cancelled,
    /// The client read too slowly; the daemon dropped the stream rather than buffer more.
    Lagged,
    /// `logs` follow: the plugin stopped and no restart is pending.
    PluginEnded,
    /// The daemon is shutting down.
    ShuttingDown,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMessage {
    Welcome(Welcome),
    Response(Response),
    /// One item of the stream opened by request `id`.
    Stream {
        id: u64,
        item: StreamItem,
    },
    /// The stream opened by request `id` is over; no more items follow.
    StreamEnd {
        id: u64,
        reason: StreamEndReason,
    },
    /// An error not tied to a request: a refused `hello`, a frame without a usable id, an
    /// expired session. The server closes the connection after it unless the code is
    /// `bad_request` for a frame whose framing was intact.
    Error {
        error: ControlError,
    },
}

impl WireMessage for ServerMessage {
    const TYPES: &'static [&'static str] = &["welcome", "response", "stream", "stream_end", "error"];
}
