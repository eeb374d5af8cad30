//! The plugin channel's wire format: typed, versioned, bounded messages and their framing.
//!
//! A frame is a 4-byte big-endian unsigned length `N` followed by `N` bytes of UTF-8 JSON
//! holding exactly one object. `N = 0` is invalid, and `N` is checked against the reader's
//! cap before a single byte of the body is buffered. Bodies are further checked, in this
//! order: valid UTF-8, a cheap structural pre-scan (object at the top, nesting depth at most
//! [`MAX_JSON_DEPTH`], nothing after the closing brace), then a strict serde parse (known
//! `type`, no unknown or duplicate fields, no duplicate keys anywhere in a payload).
//!
//! The same rules are implemented by the dependency-free Python SDK (`sdk/python/wfplugin.py`)
//! and documented for other languages in `docs/protocol.md`.
//!
//! The control protocol between an orchestrator or the CLI and the `wfsandbox serve` daemon
//! reuses this framing with its own caps and messages: see [`control`].

mod blocking;
mod codec;
pub mod control;
mod decoder;
mod error;
mod message;
mod scan;
mod strict_value;
pub use strict_value::parse_strict;

pub use blocking::{read_message, write_message, write_message_with_limit};
pub use codec::{decode_body, encode, encode_event, encode_event_locating_payload, encode_with_limit};
pub use decoder::FrameDecoder;
pub use error::ProtocolError;
pub use message::{EventRef, PluginMessage, SupervisorMessage, WireMessage, PROTOCOL_VERSION};

/// Size of the length prefix in bytes.
pub const HEADER_LEN: usize = 4;

/// Default cap on a frame body in either direction (the manifest/policy `max_event_bytes`
/// default).
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 64 * 1024;

/// Hard ceiling on any cap a caller passes: larger caps are lowered to this value, so no
/// configuration can make a reader buffer more than this per frame.
pub const MAX_FRAME_BYTES_CEILING: u32 = 16 * 1024 * 1024;

/// Deepest accepted nesting of JSON arrays/objects in a body, counting the message object
/// itself as depth 1.
pub const MAX_JSON_DEPTH: u32 = 32;

/// The fd number the plugin's channel socket is inherited on.
pub const DEFAULT_CHANNEL_FD: i32 = 3;

/// Environment variable naming the channel fd inside the sandbox.
pub const CHANNEL_FD_ENV: &str = "WFSANDBOX_CHANNEL_FD";

/// Optional environment variable with the frame cap the supervisor applies (both
/// directions); SDKs fall back to [`DEFAULT_MAX_FRAME_BYTES`] when it is absent.
pub const MAX_FRAME_BYTES_ENV: &str = "WFSANDBOX_MAX_FRAME_BYTES";

/// Lowers `max` to [`MAX_FRAME_BYTES_CEILING`].
pub fn effective_cap(max: u32) -> u32 {
    max.min(MAX_FRAME_BYTES_CEILING)
}
