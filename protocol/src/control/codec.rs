//! Encoding control messages under their caps, with the fallbacks a server needs so that
//! an answer it cannot fit is replaced by an error instead of being lost.

use super::errors::ControlError;
use super::message::{ClientMessage, Response, ServerMessage};
use super::results::{EventItem, Reply, StreamItem};
use super::{MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};
use crate::blocking::read_message;
use crate::codec::encode_with_limit;
use crate::decoder::FrameDecoder;
use crate::error::ProtocolError;
use serde_json::Value;
use std::io::Read;

/// One client frame, refused (nothing produced) over [`MAX_REQUEST_BYTES`].
pub fn encode_client_message(msg: &ClientMessage) -> Result<Vec<u8>, ProtocolError> {
    encode_with_limit(msg, MAX_REQUEST_BYTES)
}

/// One server frame, refused (nothing produced) over [`MAX_RESPONSE_BYTES`] or too deep.
pub fn encode_server_message(msg: &ServerMessage) -> Result<Vec<u8>, ProtocolError> {
    encode_with_limit(msg, MAX_RESPONSE_BYTES)
}

/// The response frame for request `id`. Never fails: a result that does not fit the
/// response cap becomes a `too_large` error, one that cannot be encoded otherwise an
/// `internal` error, both under the same id.
pub fn encode_reply(id: u64, outcome: Result<&Reply, &ControlError>) -> Vec<u8> {
    let outcome = match outcome {
        Ok(reply) => serde_json::to_value(reply).map_err(|err| ControlError::internal(format!("result: {err}"))),
        Err(error) => Err(error.clone()),
    };
    match encode_response(id, outcome) {
        Ok(frame) => frame,
        Err(ProtocolError::Oversized { .. }) => {
            let error = ControlError::TooLarge {
                message: "the result exceeds the response cap; ask for less".to_owned(),
                max_bytes: u64::from(MAX_RESPONSE_BYTES),
            };
            encode_response(id, Err(error)).unwrap_or_else(|_| last_resort_frame(id))
        }
        Err(err) => encode_response(id, Err(ControlError::internal(format!("result not encodable: {err}"))))
            .unwrap_or_else(|_| last_resort_frame(id)),
    }
}

fn encode_response(id: u64, outcome: Result<Value, ControlError>) -> Result<Vec<u8>, ProtocolError> {
    encode_server_message(&ServerMessage::Response(Response { id, outcome }))
}

/// A fixed, tiny frame for the case where even an error response failed to encode (which
/// would need a message longer than the cap).
fn last_resort_frame(id: u64) -> Vec<u8> {
    let body = format!(
        r#"{{"type":"response","id":{id},"ok":false,"error":{{"code":"internal","message":"response not encodable"}}}}"#
    );
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body.as_bytes());
    frame
}

/// One `stream` frame for request `id`. An event whose payload does not fit (too large or
/// nested too deep) is sent without it, with `payload_dropped: true`. A log chunk that does
/// not fit is an error: the daemon keeps chunks far below the cap.
pub fn encode_stream_item(id: u64, item: &StreamItem) -> Result<Vec<u8>, ProtocolError> {
    let first = encode_server_message(&ServerMessage::Stream { id, item: item.clone() });
    match (first, item) {
        (Err(ProtocolError::Oversized { .. } | ProtocolError::TooDeep { .. }), StreamItem::Event(event)) => {
            let stripped = EventItem { payload: Value::Null, payload_dropped: true, ..event.clone() };
            encode_server_message(&ServerMessage::Stream { id, item: StreamItem::Event(stripped) })
        }
        (result, _) => result,
    }
}

/// Reads one server frame under [`MAX_RESPONSE_BYTES`]; `Ok(None)` at end of stream.
pub fn read_server_message(reader: &mut impl Read) -> Result<Option<ServerMessage>, ProtocolError> {
    read_message(reader, MAX_RESPONSE_BYTES)
}

/// A frame decoder with the response cap, for non-blocking clients.
pub fn response_decoder() -> FrameDecoder {
    FrameDecoder::new(MAX_RESPONSE_BYTES)
}
