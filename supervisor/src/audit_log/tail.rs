//! Finding where the chain stands by reading the end of a log file.
//!
//! The last record is normally the last line. After a crash the last line may be torn (no
//! newline, or not a record); then the chain continues from the last line before it that parses
//! as a record, and everything after that record is the torn region. Only when the last
//! `MAX_TAIL` bytes hold no record at all (never a crash: something wrote junk) is the whole file
//! read, from the start and one bounded line at a time.

use super::error::AuditLogError;
use super::line_reader::LineReader;
use super::record::{parse_line, MAX_RECORD_BYTES};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

const FIRST_READ: u64 = 64 * 1024;
/// Never read more than this from the end: two records of maximal size and some slack.
const MAX_TAIL: u64 = 2 * MAX_RECORD_BYTES as u64 + FIRST_READ;

/// The last record that parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRecord {
    pub seq: u64,
    pub hash: String,
    pub hash_ok: bool,
}

/// Bytes after the last record that are not records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornRegion {
    pub offset: u64,
    pub length: u64,
    /// How many lines (newline-terminated or not) the region holds.
    pub lines: u64,
    /// Whether the region lacks a final newline, so the writer must add one.
    pub needs_newline: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub last: Option<LastRecord>,
    pub torn: Option<TornRegion>,
    /// The file has no newline at all: it is empty or holds one torn line.
    pub no_complete_line: bool,
}

/// Inspects the last bytes of `file` (of length `len`).
pub fn inspect(file: &File, len: u64, path: &Path) -> Result<Tail, AuditLogError> {
    let mut want = len.min(FIRST_READ);
    loop {
        let start = len - want;
        let buf = read_at(file, start, want, path)?;
        let complete = start == 0 || want >= MAX_TAIL;
        match scan(&buf, start, len, complete) {
            // No record in the last MAX_TAIL bytes: no crash tears that much, but the chain must
            // still continue from the last good record, wherever it is.
            Some(Tail { last: None, .. }) if start > 0 => return scan_forward(file, len, path),
            Some(tail) => return Ok(tail),
            None => {}
        }
        want = len.min(want.saturating_mul(4)).min(MAX_TAIL);
    }
}

fn read_at(file: &File, start: u64, want: u64, path: &Path) -> Result<Vec<u8>, AuditLogError> {
    let size = usize::try_from(want).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; size];
    file.read_exact_at(&mut buf, start).map_err(AuditLogError::io("reading the tail", path))?;
    Ok(buf)
}

/// Looks for the last parsable record in `buf`, which holds the file's bytes from `base` to its
/// end `len`. `None` means more of the file must be read first; `complete` forbids that answer.
fn scan(buf: &[u8], base: u64, len: u64, complete: bool) -> Option<Tail> {
    let no_complete_line = base == 0 && !buf.contains(&b'\n');
    let mut end = buf.len();
    // Without a final newline the bytes after the last one are torn, whatever they hold.
    if buf.last().is_some_and(|&b| b != b'\n') {
        match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => end = i + 1,
            None if base > 0 && !complete => return None,
            None => end = 0,
        }
    }
    // Each iteration looks at the line buf[line_start..end), newline included.
    while end > 0 {
        let content_end = end - 1;
        let line_start = match buf[..content_end].iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if base == 0 => 0,
            None if complete => break,
            None => return None,
        };
        if let Ok(record) = parse_line(&buf[line_start..content_end]) {
            let last = LastRecord { seq: record.seq, hash: record.hash.clone(), hash_ok: record.hash_ok() };
            let torn = torn_region(buf, end, base, len);
            return Some(Tail { last: Some(last), torn, no_complete_line });
        }
        end = line_start;
    }
    Some(Tail { last: None, torn: torn_region(buf, end, base, len), no_complete_line })
}

fn torn_region(buf: &[u8], from: usize, base: u64, len: u64) -> Option<TornRegion> {
    let rest = &buf[from..];
    if rest.is_empty() {
        return None;
    }
    let newlines = rest.iter().filter(|&&b| b == b'\n').count() as u64;
    let needs_newline = rest.last() != Some(&b'\n');
    let offset = base + from as u64;
    Some(TornRegion { offset, length: len - offset, lines: newlines + u64::from(needs_newline), needs_newline })
}

/// Reads the whole file from the start, one bounded line at a time, for the last record.
fn scan_forward(file: &File, len: u64, path: &Path) -> Result<Tail, AuditLogError> {
    let mut reader = LineReader::new(BufReader::new(ReadAt { file, pos: 0, end: len }), MAX_RECORD_BYTES - 1);
    let (mut last, mut last_end) = (None, 0);
    let (mut lines_after, mut any_newline, mut ends_in_newline) = (0u64, false, true);
    while let Some(line) = reader.next_line().map_err(AuditLogError::io("reading the log", path))? {
        any_newline |= line.has_newline;
        ends_in_newline = line.has_newline;
        let record = (line.has_newline && !line.too_long).then(|| parse_line(&line.bytes).ok()).flatten();
        match record {
            Some(record) => {
                last = Some(LastRecord { seq: record.seq, hash: record.hash.clone(), hash_ok: record.hash_ok() });
                last_end = line.offset + line.len + 1;
                lines_after = 0;
            }
            None => lines_after += 1,
        }
    }
    let torn = (last_end < len).then_some(TornRegion {
        offset: last_end,
        length: len - last_end,
        lines: lines_after,
        needs_newline: !ends_in_newline,
    });
    Ok(Tail { last, torn, no_complete_line: !any_newline })
}

/// Positioned reads (`pread`) up to `end`, leaving the descriptor's offset alone.
struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
