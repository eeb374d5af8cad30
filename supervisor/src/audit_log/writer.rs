//! The writer: one mutex-guarded file, one `write(2)` per record, rotation by size.

use super::error::AuditLogError;
use super::record::{encode_value, Unsealed, MAX_RECORD_BYTES};
use super::recovery::{self, Cause, ChainPoint, Recovery, RECOVERED_KIND};
use super::rotation;
use super::secure_file;
use super::tail;
use crate::auth::{AuditSink, AuthEvent};
use crate::clock::Clock;
use serde_json::Value;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

const MAX_KIND_LEN: usize = 64;

/// The append-only, hash-chained audit log. Cheap to share behind an `Arc`; every method takes
/// `&self`.
pub struct AuditLog {
    path: PathBuf,
    rotate_size_bytes: u64,
    rotate_keep: u32,
    clock: Arc<dyn Clock>,
    state: Mutex<Writer>,
    recovery: Option<Recovery>,
    write_errors: AtomicU64,
    sink_failure_reported: AtomicBool,
}

struct Writer {
    file: File,
    /// Bytes in the live file.
    size: u64,
    /// Seq of the last record in the chain, 0 before the first.
    last_seq: u64,
    last_hash: String,
    /// A failed write left part of a line in the file; the next append repairs it first.
    torn_by_failed_write: bool,
}

impl AuditLog {
    /// Opens or creates the log at `path`, recovering the chain from the file's last line.
    ///
    /// `rotate_size_bytes` is the most a file may hold before the next record goes to a fresh
    /// one; `rotate_keep` how many rotated files (`.1` … `.keep`) are kept. Neither may be 0.
    pub fn open(
        path: &Path,
        rotate_size_bytes: u64,
        rotate_keep: u32,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuditLogError> {
        check_config(path, rotate_size_bytes, rotate_keep)?;
        secure_file::prepare_parent(path)?;
        let file = secure_file::open_log(path, false)?;
        secure_file::sync_parent(path)?;
        let size = file_len(&file, path)?;
        let live = tail::inspect(&file, size, path)?;
        let point = recovery::chain_point(path, &live)?;
        let writer =
            Writer { file, size, last_seq: point.seq, last_hash: point.hash.clone(), torn_by_failed_write: false };
        let mut log = Self {
            path: path.to_owned(),
            rotate_size_bytes,
            rotate_keep,
            clock,
            state: Mutex::new(writer),
            recovery: None,
            write_errors: AtomicU64::new(0),
            sink_failure_reported: AtomicBool::new(false),
        };
        if recovery::needed(live.torn.as_ref(), &point) {
            let mut writer = log.lock();
            let found = log.write_recovery(&mut writer, Cause::Open, live.torn.as_ref(), &point)?;
            drop(writer);
            tracing::warn!(path = %log.path.display(), recovery = ?found, "audit log recovered a damaged tail");
            log.recovery = Some(found);
        }
        Ok(log)
    }

    /// Appends one record and returns its seq. `kind` is 1–64 characters of `a-z0-9_` starting
    /// with a letter; `event` must be a JSON object nesting at most 64 levels.
    pub fn append(&self, kind: &str, event: Value) -> Result<u64, AuditLogError> {
        let result = self.try_append(kind, &event);
        if result.is_err() {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Flushes written records to stable storage (`fdatasync`).
    pub fn sync(&self) -> Result<(), AuditLogError> {
        let writer = self.lock();
        writer.file.sync_data().map_err(AuditLogError::io("fdatasync", &self.path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seq of the last record written or recovered (0 when the chain is empty).
    pub fn last_seq(&self) -> u64 {
        self.lock().last_seq
    }

    /// Hash of the last record: worth keeping somewhere else, since a chain alone cannot show
    /// that its newest records were cut off.
    pub fn last_hash(&self) -> String {
        self.lock().last_hash.clone()
    }

    /// What the open found and repaired, if the tail was damaged.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// How many appends failed (including those made through [`AuditSink`]).
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn try_append(&self, kind: &str, event: &Value) -> Result<u64, AuditLogError> {
        check_kind(kind)?;
        let encoded = encode_event(kind, event)?;
        let mut writer = self.lock();
        if writer.torn_by_failed_write {
            self.repair_failed_write(&mut writer)?;
        }
        self.write_record(&mut writer, kind, &encoded, Placement::MayRotate)
    }

    fn repair_failed_write(&self, writer: &mut Writer) -> Result<(), AuditLogError> {
        let size = file_len(&writer.file, &self.path)?;
        writer.size = size;
        let found = tail::inspect(&writer.file, size, &self.path)?;
        let hash_ok = (writer.last_seq > 0).then_some(true);
        let point = ChainPoint { seq: writer.last_seq, hash: writer.last_hash.clone(), hash_ok, from_file: None };
        if found.torn.is_some() {
            self.write_recovery(writer, Cause::WriteError, found.torn.as_ref(), &point)?;
        }
        writer.torn_by_failed_write = false;
        Ok(())
    }

    fn write_recovery(
        &self,
        writer: &mut Writer,
        cause: Cause,
        torn: Option<&tail::TornRegion>,
        point: &ChainPoint,
    ) -> Result<Recovery, AuditLogError> {
        let seq = next_seq(&self.path, writer.last_seq)?;
        let found = recovery::describe(cause, &self.path, torn, point, seq);
        let encoded = encode_event(RECOVERED_KIND, &found.event())?;
        let placement = if found.newline_added { Placement::AfterNewline } else { Placement::Here };
        self.write_record(writer, RECOVERED_KIND, &encoded, placement)?;
        Ok(found)
    }

    fn write_record(
        &self,
        writer: &mut Writer,
        kind: &str,
        event: &[u8],
        placement: Placement,
    ) -> Result<u64, AuditLogError> {
        let seq = next_seq(&self.path, writer.last_seq)?;
        let time_ms = self.clock.unix_ms();
        let sealed = Unsealed { seq, time_ms, kind, event, prev: &writer.last_hash }.seal();
        if sealed.line.len() > MAX_RECORD_BYTES {
            let (path, kind) = (self.path.clone(), kind.to_owned());
            return Err(AuditLogError::RecordTooLarge { path, kind, len: sealed.line.len(), max: MAX_RECORD_BYTES });
        }
        let bytes = match placement {
            Placement::MayRotate => {
                self.rotate_if_needed(writer, sealed.line.len() as u64)?;
                sealed.line
            }
            Placement::Here => sealed.line,
            Placement::AfterNewline => [b"\n".as_slice(), &sealed.line].concat(),
        };
        self.write_whole(writer, &bytes)?;
        writer.last_seq = seq;
        writer.last_hash = sealed.hash;
        Ok(seq)
    }

    /// Rotates when `incoming` more bytes would take a non-empty file past the limit, so an
    /// oversized record still gets written, alone in a fresh file.
    fn rotate_if_needed(&self, writer: &mut Writer, incoming: u64) -> Result<(), AuditLogError> {
        if writer.size == 0 || writer.size.saturating_add(incoming) <= self.rotate_size_bytes {
            return Ok(());
        }
        writer.file.sync_data().map_err(AuditLogError::io("fdatasync before rotation", &self.path))?;
        rotation::shift(&self.path, self.rotate_keep)?;
        let fresh = secure_file::open_log(&self.path, true)?;
        secure_file::sync_parent(&self.path)?;
        writer.file = fresh;
        writer.size = 0;
        Ok(())
    }

    /// One `write(2)` for the whole line; only a short write (disk full, a signal) loops.
    fn write_whole(&self, writer: &mut Writer, bytes: &[u8]) -> Result<(), AuditLogError> {
        let mut done = 0;
        while done < bytes.len() {
            match (&writer.file).write(&bytes[done..]) {
                Ok(0) => return self.failed_write(writer, done, io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.failed_write(writer, done, e),
            }
        }
        writer.size += done as u64;
        Ok(())
    }

    fn failed_write(&self, writer: &mut Writer, done: usize, e: io::Error) -> Result<(), AuditLogError> {
        if done > 0 {
            writer.size += done as u64;
            writer.torn_by_failed_write = true;
        }
        Err(AuditLogError::io("write", &self.path)(e))
    }
}

#[cfg(test)]
impl AuditLog {
    /// Writes only the first `keep` bytes of a record's line and then fails as a full disk
    /// would, through the same bookkeeping as a real failed write.
    pub(super) fn simulate_failed_write(&self, keep: usize) -> Result<(), AuditLogError> {
        let mut writer = self.lock();
        let seq = next_seq(&self.path, writer.last_seq)?;
        let sealed = Unsealed { seq, time_ms: 0, kind: "spawn", event: b"{}", prev: &writer.last_hash }.seal();
        let part = &sealed.line[..keep.min(sealed.line.len() - 1)];
        (&writer.file).write_all(part).map_err(AuditLogError::io("write", &self.path))?;
        self.failed_write(&mut writer, part.len(), io::Error::from_raw_os_error(libc::ENOSPC))
    }
}

enum Placement {
    /// A normal record: rotate first if it would not fit.
    MayRotate,
    /// Right after a torn line that already ends with a newline.
    Here,
    /// After a torn line without a newline: the newline goes in the same write.
    AfterNewline,
}

impl AuditSink for AuditLog {
    fn record(&self, event: AuthEvent) {
        let result = serde_json::to_value(&event)
            .map_err(|source| AuditLogError::Encode { kind: "auth".to_owned(), source })
            .and_then(|value| self.append("auth", value));
        if let Err(e) = result {
            if matches!(e, AuditLogError::Encode { .. }) {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
            }
            if !self.sink_failure_reported.swap(true, Ordering::Relaxed) {
                eprintln!("wfsandbox: recording an auth decision failed: {e} (further failures are only counted)");
            }
        }
    }
}

fn check_config(path: &Path, size: u64, keep: u32) -> Result<(), AuditLogError> {
    let what = if size == 0 {
        "rotate_size_bytes is 0; give the size at which to rotate"
    } else if keep == 0 {
        "rotate_keep is 0; at least one rotated file must be kept"
    } else {
        return Ok(());
    };
    Err(AuditLogError::InvalidConfig { path: path.to_owned(), what })
}

fn check_kind(kind: &str) -> Result<(), AuditLogError> {
    let bytes = kind.as_bytes();
    let well_formed = !bytes.is_empty()
        && bytes.len() <= MAX_KIND_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return Err(AuditLogError::BadKind { kind: kind.chars().take(MAX_KIND_LEN + 1).collect() });
    }
    if kind == RECOVERED_KIND {
        return Err(AuditLogError::ReservedKind { kind: kind.to_owned() });
    }
    Ok(())
}

fn encode_event(kind: &str, event: &Value) -> Result<Vec<u8>, AuditLogError> {
    if !event.is_object() {
        return Err(AuditLogError::EventNotObject { kind: kind.to_owned(), found: json_type(event) });
    }
    let mut out = Vec::new();
    encode_value(&mut out, event, 1)
        .map_err(|_| AuditLogError::EventTooDeep { kind: kind.to_owned(), max: super::record::MAX_EVENT_DEPTH })?;
    Ok(out)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn next_seq(path: &Path, last: u64) -> Result<u64, AuditLogError> {
    last.checked_add(1).ok_or_else(|| AuditLogError::SeqExhausted { path: path.to_owned(), last })
}

fn file_len(file: &File, path: &Path) -> Result<u64, AuditLogError> {
    Ok(file.metadata().map_err(AuditLogError::io("fstat", path))?.len())
}
