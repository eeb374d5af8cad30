//! Every way a frame can be refused.

use std::io;
use thiserror::Error;

/// Longest excerpt of peer-controlled text (a type name, a serde message) kept in an error,
/// so a hostile frame cannot blow up logs or audit records.
pub(crate) const MAX_DETAIL_CHARS: usize = 200;

#[derive(Debug, Error)]
pub enum ProtocolError {
    /// The length prefix (or an encoded message) exceeds the cap.
    #[error("frame of {len} bytes exceeds the cap of {max} bytes")]
    Oversized { len: u64, max: u32 },
    /// A length prefix of zero.
    #[error("frame with a zero length prefix")]
    ZeroLength,
    /// End of stream in the middle of a frame (inside the header or the body).
    #[error("end of stream in the middle of a frame")]
    Truncated,
    /// The body is not valid UTF-8.
    #[error("frame body is not valid UTF-8")]
    InvalidUtf8,
    /// The body nests arrays/objects deeper than allowed.
    #[error("JSON nesting deeper than {max} levels")]
    TooDeep { max: u32 },
    /// The body is not one well-formed message of the expected shape.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The body's `type` is not a message this direction of the channel carries.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// The underlying stream failed (blocking helpers only).
    #[error("channel {op} failed: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl ProtocolError {
    pub(crate) fn malformed(detail: impl AsRef<str>) -> Self {
        Self::Malformed(bounded(detail.as_ref()))
    }

    pub(crate) fn unknown_type(found: &str) -> Self {
        Self::UnknownType(bounded(found))
    }

    /// True when the stream's framing is lost after this error (the reader cannot find the
    /// next frame boundary), as opposed to one bad body inside intact framing.
    pub fn breaks_framing(&self) -> bool {
        matches!(self, Self::Oversized { .. } | Self::ZeroLength | Self::Truncated | Self::Io { .. })
    }
}

fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_is_bounded() {
        let long = "x".repeat(10_000);
        let ProtocolError::Malformed(detail) = ProtocolError::malformed(&long) else {
            panic!("wrong variant");
        };
        assert_eq!(detail.chars().count(), MAX_DETAIL_CHARS + 1);
        let ProtocolError::UnknownType(found) = ProtocolError::unknown_type("héllo") else {
            panic!("wrong variant");
        };
        assert_eq!(found, "héllo");
    }

    #[test]
    fn framing_errors_are_classified() {
        assert!(ProtocolError::ZeroLength.breaks_framing());
        assert!(ProtocolError::Oversized { len: 5, max: 4 }.breaks_framing());
        assert!(!ProtocolError::InvalidUtf8.breaks_framing());
        assert!(!ProtocolError::TooDeep { max: 32 }.breaks_framing());
    }
}
