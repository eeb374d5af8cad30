//! The server's reading side: client frames are first checked and parsed into a strict
//! JSON object ([`ClientFrame`]), then interpreted, so that a refused request can still be
//! answered under its own id.

use super::errors::ControlError;
use super::message::{ClientMessage, Hello, Request, Response, ServerMessage};
use super::verbs::Call;
use super::{MAX_CLIENT_NAME_CHARS, MAX_REQUEST_BYTES, SUPPORTED_VERSIONS};
use crate::decoder::FrameDecoder;
use crate::error::ProtocolError;
use crate::message::WireMessage;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A client frame body that passed every framing and body check (cap, UTF-8, depth, one
/// object, strict JSON without duplicate keys) and awaits [`ClientFrame::interpret`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClientFrame(Value);

impl ClientFrame {
    pub fn interpret(self) -> Result<ClientMessage, Rejection> {
        interpret(self.0)
    }
}

impl Serialize for ClientFrame {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ClientFrame {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::strict_value::deserialize(deserializer).map(ClientFrame)
    }
}

impl WireMessage for ClientFrame {
    const TYPES: &'static [&'static str] = ClientMessage::TYPES;
}

/// Why a client frame was refused, and how to answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The request's id, when the frame was a request with a usable `id`.
    pub id: Option<u64>,
    pub error: ControlError,
    /// The server must close the connection after answering: framing is lost (oversized,
    /// zero-length or truncated frame) or the client speaks another protocol version.
    pub close: bool,
}

impl Rejection {
    fn open(id: Option<u64>, error: ControlError) -> Self {
        Self { id, error, close: false }
    }

    /// Maps a framing or body error of the frame decoder.
    pub fn from_protocol(err: &ProtocolError, max_bytes: u32) -> Self {
        let error = match err {
            ProtocolError::Oversized { .. } => ControlError::too_large(u64::from(max_bytes)),
            ProtocolError::Io { .. } => ControlError::internal("reading the connection failed"),
            other => ControlError::bad_request(other.to_string()),
        };
        Self { id: None, error, close: err.breaks_framing() }
    }

    /// The answer: a `response` under the request's id if it has one, else a
    /// connection-level `error`.
    pub fn reply(&self) -> ServerMessage {
        match self.id {
            Some(id) => ServerMessage::Response(Response { id, outcome: Err(self.error.clone()) }),
            None => ServerMessage::Error { error: self.error.clone() },
        }
    }
}

/// A frame decoder with the request cap.
pub fn request_decoder() -> FrameDecoder {
    FrameDecoder::new(MAX_REQUEST_BYTES)
}

/// The next complete client message from `decoder`, `Ok(None)` if more bytes are needed.
/// After a rejection with `close`, the decoder is unusable.
pub fn next_client_message(decoder: &mut FrameDecoder) -> Result<Option<ClientMessage>, Rejection> {
    match decoder.next_frame::<ClientFrame>() {
        Ok(Some(frame)) => frame.interpret().map(Some),
        Ok(None) => Ok(None),
        Err(err) => Err(Rejection::from_protocol(&err, decoder.max_bytes())),
    }
}

/// Interprets one strictly parsed client body.
pub(crate) fn interpret(value: Value) -> Result<ClientMessage, Rejection> {
    let Value::Object(mut fields) = value else {
        return Err(Rejection::open(None, ControlError::bad_request("a message is a JSON object")));
    };
    let kind = match fields.remove("type") {
        Some(Value::String(kind)) => kind,
        _ => return Err(Rejection::open(None, ControlError::bad_request("missing or non-string \"type\""))),
    };
    match kind.as_str() {
        "hello" => interpret_hello(fields).map(ClientMessage::Hello),
        "request" => interpret_request(fields).map(ClientMessage::Request),
        _ => Err(Rejection::open(None, ControlError::bad_request("unknown message type (expected hello or request)"))),
    }
}

/// The version is judged before the rest of the hello, so that a client of a later
/// version whose hello has other fields still gets `unsupported_version`.
fn interpret_hello(fields: Map<String, Value>) -> Result<Hello, Rejection> {
    if let Some(requested) = fields.get("protocol").and_then(Value::as_u64) {
        if !SUPPORTED_VERSIONS.iter().any(|&supported| u64::from(supported) == requested) {
            let requested = u32::try_from(requested).unwrap_or(u32::MAX);
            return Err(Rejection { id: None, error: ControlError::unsupported_version(requested), close: true });
        }
    }
    let hello: Hello = serde_json::from_value(Value::Object(fields))
        .map_err(|err| Rejection::open(None, ControlError::bad_request(format!("hello: {err}"))))?;
    check_client_name(&hello.client).map_err(|error| Rejection::open(None, error))?;
    Ok(hello)
}

fn check_client_name(name: &str) -> Result<(), ControlError> {
    let count = name.chars().count();
    if count == 0 || count > MAX_CLIENT_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ControlError::bad_request("hello.client: 1 to 64 characters, no control characters"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    id: u64,
    verb: String,
    #[serde(default)]
    args: Option<Value>,
}

fn interpret_request(fields: Map<String, Value>) -> Result<Request, Rejection> {
    let salvaged = fields.get("id").and_then(Value::as_u64);
    let raw: RawRequest = serde_json::from_value(Value::Object(fields))
        .map_err(|err| Rejection::open(salvaged, ControlError::bad_request(format!("request: {err}"))))?;
    let call = Call::parse(&raw.verb, raw.args).map_err(|error| Rejection::open(Some(raw.id), error))?;
    Ok(Request { id: raw.id, call })
}
