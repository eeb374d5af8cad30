//! Everything that can go wrong while opening or writing the audit log.

use std::io;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuditLogError {
    #[error("audit log {path}: {step} failed: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("audit log {path}: is a symbolic link; refusing to write the audit log through it")]
    Symlink { path: PathBuf },
    #[error("audit log {path}: not a regular file ({found})")]
    NotRegularFile { path: PathBuf, found: &'static str },
    #[error("audit log {path}: owned by uid {owner}, not by this process (euid {euid}); refusing a log someone else prepared")]
    WrongOwner { path: PathBuf, owner: u32, euid: u32 },
    #[error("audit log {path}: mode {mode:04o} lets group or others write it; expected 0600")]
    UnsafeMode { path: PathBuf, mode: u32 },
    #[error("audit log directory {path}: owned by uid {owner} with mode {mode:04o}; it must belong to this process (euid {euid}) or root and not be writable by group or others")]
    UnsafeDirectory { path: PathBuf, owner: u32, mode: u32, euid: u32 },
    #[error("audit log directory {path}: not trusted by a root writer: {reason}")]
    UntrustedAncestor { path: PathBuf, reason: String },
    #[error("audit log {path}: another writer (process or open log) holds its lock (flock); two writers would fork the hash chain")]
    InUse { path: PathBuf },
    #[error("audit log {path}: {what}")]
    InvalidConfig { path: PathBuf, what: &'static str },
    #[error("audit record kind {kind:?}: must be 1 to 64 characters of a-z, 0-9 and _, starting with a letter")]
    BadKind { kind: String },
    #[error("audit record kind {kind:?} is reserved for the audit log itself")]
    ReservedKind { kind: String },
    #[error("audit record of kind {kind}: the event must be a JSON object, not {found}")]
    EventNotObject { kind: String, found: &'static str },
    #[error("audit record of kind {kind}: the event nests deeper than {max} levels")]
    EventTooDeep { kind: String, max: usize },
    #[error("audit record of kind {kind}: serialising the event failed: {source}")]
    Encode {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("audit log {path}: a record of kind {kind} is {len} bytes, more than the {max} bytes any record may have")]
    RecordTooLarge { path: PathBuf, kind: String, len: usize, max: usize },
    #[error("audit log {path}: the sequence number is exhausted (last seq {last})")]
    SeqExhausted { path: PathBuf, last: u64 },
}

impl AuditLogError {
    pub(super) fn io(step: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| AuditLogError::Io { step, path, source }
    }
}
