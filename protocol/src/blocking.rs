//! Blocking helpers for plugins and tests: one call reads or writes one whole frame.

use crate::codec::{decode_body, encode_with_limit};
use crate::error::ProtocolError;
use crate::message::WireMessage;
use crate::{effective_cap, DEFAULT_MAX_FRAME_BYTES, HEADER_LEN};
use std::io::{self, Read, Write};

/// Reads one frame. `Ok(None)` on end of stream at a frame boundary; `Truncated` if the
/// stream ends inside a frame. The body buffer is allocated only after the length prefix
/// has passed `max`.
pub fn read_message<T: WireMessage>(reader: &mut impl Read, max: u32) -> Result<Option<T>, ProtocolError> {
    let max = effective_cap(max);
    let Some(header) = read_header(reader)? else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(header);
    if len == 0 {
        return Err(ProtocolError::ZeroLength);
    }
    if len > max {
        return Err(ProtocolError::Oversized { len: u64::from(len), max });
    }
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body).map_err(|source| match source.kind() {
        io::ErrorKind::UnexpectedEof => ProtocolError::Truncated,
        _ => ProtocolError::Io { op: "read", source },
    })?;
    decode_body(&body, max).map(Some)
}

/// Writes `msg` as one frame under [`DEFAULT_MAX_FRAME_BYTES`].
pub fn write_message<T: WireMessage>(writer: &mut impl Write, msg: &T) -> Result<(), ProtocolError> {
    write_message_with_limit(writer, msg, DEFAULT_MAX_FRAME_BYTES)
}

/// Writes `msg` as one frame, refusing it (nothing written) if it exceeds `max`.
pub fn write_message_with_limit<T: WireMessage>(
    writer: &mut impl Write,
    msg: &T,
    max: u32,
) -> Result<(), ProtocolError> {
    let frame = encode_with_limit(msg, max)?;
    writer.write_all(&frame).map_err(|source| ProtocolError::Io { op: "write", source })?;
    writer.flush().map_err(|source| ProtocolError::Io { op: "flush", source })
}

/// Reads the 4-byte length prefix; `None` if the stream ends before its first byte.
fn read_header(reader: &mut impl Read) -> Result<Option<[u8; HEADER_LEN]>, ProtocolError> {
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match reader.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(ProtocolError::Truncated),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(ProtocolError::Io { op: "read", source }),
        }
    }
    Ok(Some(header))
}
