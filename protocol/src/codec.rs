//! Encoding a message into one frame and decoding one frame body into a message.

use crate::error::ProtocolError;
use crate::message::{EventRef, WireMessage};
use crate::scan::check_structure;
use crate::{effective_cap, DEFAULT_MAX_FRAME_BYTES, HEADER_LEN, MAX_JSON_DEPTH};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Encodes `msg` as one frame (header + body) under [`DEFAULT_MAX_FRAME_BYTES`].
pub fn encode<T: WireMessage>(msg: &T) -> Result<Vec<u8>, ProtocolError> {
    encode_with_limit(msg, DEFAULT_MAX_FRAME_BYTES)
}

/// Encodes `msg` as one frame, refusing bodies larger than `max` or nested deeper than the
/// decoder accepts, so that every frame this returns is accepted by a peer with the same cap.
pub fn encode_with_limit<T: WireMessage>(msg: &T, max: u32) -> Result<Vec<u8>, ProtocolError> {
    encode_serializable(msg, max)
}

/// Encodes one `event` frame from borrowed parts (what the broker shares between readers),
/// under the same rules as [`encode_with_limit`].
pub fn encode_event(topic: &str, payload: &Value, sender: &str, max: u32) -> Result<Vec<u8>, ProtocolError> {
    encode_serializable(&EventRef::Event { topic, payload, sender }, max)
}

/// [`encode_event`], and where in the frame the payload's JSON is, so that a holder of the
/// frame can read the payload back without keeping a parsed copy.
pub fn encode_event_locating_payload(
    topic: &str,
    payload: &Value,
    sender: &str,
    max: u32,
) -> Result<(Vec<u8>, std::ops::Range<usize>), ProtocolError> {
    let frame = encode_event(topic, payload, sender, max)?;
    let json_len = |s: &str| serde_json::to_string(s).map_or(0, |j| j.len());
    // The compact encoding of EventRef: {"type":"event","topic":T,"payload":P,"sender":S}
    let before = HEADER_LEN + r#"{"type":"event","topic":"#.len() + json_len(topic) + r#","payload":"#.len();
    let after = r#","sender":"#.len() + json_len(sender) + 1;
    let range = before..frame.len().saturating_sub(after);
    Ok((frame, range))
}

fn encode_serializable<T: Serialize>(msg: &T, max: u32) -> Result<Vec<u8>, ProtocolError> {
    let max = effective_cap(max);
    let body = serde_json::to_vec(msg).map_err(|e| ProtocolError::malformed(e.to_string()))?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|len| *len <= max)
        .ok_or(ProtocolError::Oversized { len: body.len() as u64, max })?;
    check_structure(&body, MAX_JSON_DEPTH)?;
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Decodes one frame body (without its length prefix) of at most `max` bytes.
pub fn decode_body<T: WireMessage>(body: &[u8], max: u32) -> Result<T, ProtocolError> {
    let max = effective_cap(max);
    if body.is_empty() {
        return Err(ProtocolError::ZeroLength);
    }
    if body.len() as u64 > u64::from(max) {
        return Err(ProtocolError::Oversized { len: body.len() as u64, max });
    }
    let text = std::str::from_utf8(body).map_err(|_| ProtocolError::InvalidUtf8)?;
    check_structure(body, MAX_JSON_DEPTH)?;
    serde_json::from_str::<T>(text).map_err(|err| classify_parse_error::<T>(text, &err))
}

/// Only the `type` member of a body; other members are skipped without being stored.
#[derive(Deserialize)]
struct TypeTag {
    #[serde(rename = "type")]
    kind: Option<Value>,
}

/// Tells a well-formed body with a `type` this enum does not know apart from every other
/// parse failure.
fn classify_parse_error<T: WireMessage>(text: &str, err: &serde_json::Error) -> ProtocolError {
    if let Ok(TypeTag { kind: Some(Value::String(kind)) }) = serde_json::from_str::<TypeTag>(text) {
        if !T::TYPES.contains(&kind.as_str()) {
            return ProtocolError::unknown_type(&kind);
        }
    }
    ProtocolError::malformed(err.to_string())
}
