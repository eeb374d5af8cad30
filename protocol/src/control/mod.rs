//! The control protocol between an orchestrator or the CLI and the `wfsandbox serve` daemon,
//! over a Unix stream socket (docs/protocol.md §2).
//!
//! It reuses the plugin channel's framing and body checks (length prefix checked against the
//! cap before allocation, UTF-8, depth pre-scan, strict parse without duplicate keys), with
//! its own caps: [`MAX_REQUEST_BYTES`] for client frames and [`MAX_RESPONSE_BYTES`] for
//! server frames.
//!
//! - [`message`]: the envelopes (`hello`, `request` / `welcome`, `response`, `stream`,
//!   `stream_end`, `error`).
//! - [`verbs`]: every verb, its typed arguments and the rights it needs.
//! - [`results`]: every verb's typed result and the stream items.
//! - [`errors`]: stable error codes, their details and the CLI exit codes.
//! - [`inbound`]: the server's reading side, which keeps a request's id when refusing it.
//! - [`codec`]: encoding with fallbacks that keep the server within its caps.
//! - [`client`]: a blocking client over any byte stream, for the CLI and tests.

pub mod client;
pub mod codec;
pub mod errors;
pub mod inbound;
pub mod message;
pub mod results;
mod strict;
pub mod verbs;

pub use client::{ClientError, Connection, Stream};
pub use codec::{
    encode_client_message, encode_reply, encode_server_message, encode_stream_item, read_server_message,
    response_decoder,
};
pub use errors::{
    exit_code, ControlError, ErrorCode, Problem, EXIT_CONFLICT, EXIT_DAEMON_NOT_RUNNING, EXIT_FAILURE, EXIT_INVALID,
    EXIT_NOT_AUTHORISED, EXIT_NO_SUCH_PLUGIN, EXIT_OK, EXIT_PROTOCOL, EXIT_REFUSED, EXIT_USAGE,
};
pub use inbound::{next_client_message, request_decoder, ClientFrame, Rejection};
pub use message::{ClientMessage, Hello, Request, Response, ServerMessage, StreamEndReason, Welcome};
pub use results::{
    CancelResult, CpuStats, EventCounters, EventItem, ExitCause, ExitSummary, ListResult, LoadResult, LogChunk,
    LogStream, LogsResult, MemoryStats, PidsStats, PluginState, PluginStats, PluginStatus, PluginSummary, ProcessStats,
    PublishResult, ReloadPolicyResult, Reply, ShutdownResult, StatsResult, StreamItem, SubscribeResult, ValidateResult,
    Violation, ViolationsResult,
};
pub use verbs::{
    Call, CancelArgs, ListArgs, LoadArgs, LogsArgs, ManifestSource, NameArgs, PublishArgs, ReloadPolicyArgs, Rights,
    ShutdownArgs, StartArgs, StatsArgs, StopArgs, SubscribeEventsArgs, ValidateArgs, Verb, ViolationsArgs,
};

/// Version of the control protocol. A server refuses a `hello` naming a version it does not
/// speak with `unsupported_version`, listing the versions it does.
pub const CONTROL_PROTOCOL_VERSION: u32 = 1;

/// Every control protocol version this crate speaks.
pub const SUPPORTED_VERSIONS: &[u32] = &[CONTROL_PROTOCOL_VERSION];

/// Cap on a client → server frame body.
pub const MAX_REQUEST_BYTES: u32 = 64 * 1024;

/// Cap on a server → client frame body.
pub const MAX_RESPONSE_BYTES: u32 = 1024 * 1024;

/// Where `wfsandbox serve` listens unless told otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/wfsandbox/control.sock";

/// A connection that sends no `hello` within this time is closed.
pub const HELLO_TIMEOUT_MS: u64 = 10_000;

/// Longest `client` name in a `hello`, in characters.
pub const MAX_CLIENT_NAME_CHARS: usize = 64;

/// Longest path accepted in an argument, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// Longest plugin name or topic accepted in an argument, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// Longest grace period `stop` accepts (10 minutes).
pub const MAX_GRACE_MS: u64 = 600_000;

/// `logs` returns at most this many bytes of log text when `tail_bytes` is absent.
pub const DEFAULT_LOG_TAIL_BYTES: u32 = 16 * 1024;

/// Largest `tail_bytes`. Even if every byte became a 6-byte JSON escape, the tail fits in
/// [`MAX_RESPONSE_BYTES`].
pub const MAX_LOG_TAIL_BYTES: u32 = 128 * 1024;

/// Most topics one `subscribe_events` may name.
pub const MAX_SUBSCRIBE_TOPICS: usize = 64;

/// Most recent events one `subscribe_events` may ask to be replayed.
pub const MAX_EVENT_BACKLOG: u32 = 256;

/// `list_violations` returns at most this many records when `limit` is absent.
pub const DEFAULT_VIOLATIONS_LIMIT: u32 = 100;

/// Largest `limit` of `list_violations`.
pub const MAX_VIOLATIONS_LIMIT: u32 = 1000;
