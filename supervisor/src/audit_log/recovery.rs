//! Where a reopened log continues its chain, and the record that notes a torn tail.

use super::error::AuditLogError;
use super::record::GENESIS_PREV;
use super::rotation::rotated_path;
use super::secure_file;
use super::tail::{self, Tail, TornRegion};
use serde::Serialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Kind of the record written after a torn tail or a last record whose hash did not verify.
pub const RECOVERED_KIND: &str = "audit_log_recovered";

/// Why a recovery record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Found when the log was opened (normally a crash in the middle of a write).
    Open,
    /// A write failed after part of the line reached the file.
    WriteError,
}

/// What a recovery found; also the event of the `audit_log_recovered` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recovery {
    pub cause: Cause,
    pub file: PathBuf,
    /// Byte offset and length of what follows the last good record (before the newline the
    /// log added), and how many lines that is; `None` when only the last hash was wrong.
    pub torn_offset: Option<u64>,
    pub torn_length: u64,
    pub torn_lines: u64,
    pub newline_added: bool,
    /// The record the chain continues from; `None` when no good record was found.
    pub last_good_seq: Option<u64>,
    pub last_record_hash_ok: Option<bool>,
    /// Set when the live file held no complete line and the chain continues from `.1`.
    pub chained_from: Option<PathBuf>,
    /// Seq of the recovery record itself.
    pub seq: u64,
}

impl Recovery {
    pub fn event(&self) -> Value {
        json!({
            "cause": self.cause,
            "file": self.file.to_string_lossy(),
            "torn_offset": self.torn_offset,
            "torn_length": self.torn_length,
            "torn_lines": self.torn_lines,
            "newline_added": self.newline_added,
            "last_good_seq": self.last_good_seq,
            "last_record_hash_ok": self.last_record_hash_ok,
            "chained_from": self.chained_from.as_ref().map(|p| p.to_string_lossy()),
        })
    }
}

/// The record a chain continues from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPoint {
    /// 0 before the first record of a new chain.
    pub seq: u64,
    pub hash: String,
    pub hash_ok: Option<bool>,
    pub from_file: Option<PathBuf>,
}

impl ChainPoint {
    fn genesis() -> Self {
        Self { seq: 0, hash: GENESIS_PREV.to_owned(), hash_ok: None, from_file: None }
    }
}

/// Where the chain continues: the live file's last good record, or — when the live file has no
/// complete line (a crash right after a rotation) — the last good record of `.1`.
pub fn chain_point(path: &Path, live: &Tail) -> Result<ChainPoint, AuditLogError> {
    if let Some(last) = &live.last {
        return Ok(ChainPoint { seq: last.seq, hash: last.hash.clone(), hash_ok: Some(last.hash_ok), from_file: None });
    }
    if !live.no_complete_line {
        return Ok(ChainPoint::genesis());
    }
    let previous = rotated_path(path, 1);
    let file = match secure_file::open_for_reading(&previous) {
        Ok(file) => file,
        Err(AuditLogError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ChainPoint::genesis())
        }
        Err(e) => return Err(e),
    };
    let len = file.metadata().map_err(AuditLogError::io("fstat", &previous))?.len();
    let Some(last) = tail::inspect(&file, len, &previous)?.last else { return Ok(ChainPoint::genesis()) };
    Ok(ChainPoint { seq: last.seq, hash: last.hash, hash_ok: Some(last.hash_ok), from_file: Some(previous) })
}

/// Whether the state found calls for a recovery record.
pub fn needed(torn: Option<&TornRegion>, point: &ChainPoint) -> bool {
    torn.is_some() || point.hash_ok == Some(false)
}

pub fn describe(cause: Cause, file: &Path, torn: Option<&TornRegion>, point: &ChainPoint, seq: u64) -> Recovery {
    Recovery {
        cause,
        file: file.to_owned(),
        torn_offset: torn.map(|t| t.offset),
        torn_length: torn.map_or(0, |t| t.length),
        torn_lines: torn.map_or(0, |t| t.lines),
        newline_added: torn.is_some_and(|t| t.needs_newline),
        last_good_seq: point.hash_ok.map(|_| point.seq),
        last_record_hash_ok: point.hash_ok,
        chained_from: point.from_file.clone(),
        seq,
    }
}
