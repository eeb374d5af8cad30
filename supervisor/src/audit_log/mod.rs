//! The append-only, hash-chained audit log.
//!
//! Every security-relevant event (auth decisions, policy loads, spawns, stops, violations) is
//! one line of JSON in a file such as `/var/log/wfsandbox/audit.jsonl`. Each line carries the
//! hash of the line before it, so any edit, deletion, insertion or reordering of records shows
//! up in [`verify`]. What a chain cannot show by itself is records cut off its *end*: keep
//! [`AuditLog::last_hash`] (or the `last record` line of `verify`) somewhere else to catch that.
//!
//! # Record format
//!
//! One record per line, UTF-8, terminated by `\n`:
//!
//! ```text
//! {"event":{…},"kind":"spawn","prev":"<64 hex>","seq":42,"time_ms":1700000000000,"hash":"<64 hex>"}
//! ```
//!
//! | member    | meaning |
//! |-----------|---------|
//! | `event`   | a JSON object, whatever the kind needs (nesting at most 64 levels) |
//! | `kind`    | 1–64 characters of `a-z0-9_`, starting with a letter: `auth`, `policy_load`, `spawn`, `stop`, `violation`, … |
//! | `prev`    | `hash` of the previous record; 64 `0`s for the first record of a new chain |
//! | `seq`     | 1 for the first record of a new chain, +1 per record, continuing across rotated files |
//! | `time_ms` | wall-clock milliseconds since the Unix epoch (informational; not checked for order) |
//! | `hash`    | lowercase hex SHA-256 of the record's canonical encoding without `hash` |
//!
//! # Canonical encoding (what `hash` covers)
//!
//! The record without `hash`, as JSON with no whitespace outside strings:
//!
//! - object members sorted by key, comparing the keys' UTF-8 bytes, at every depth — so the
//!   record itself is `{"event":E,"kind":K,"prev":P,"seq":S,"time_ms":T}`;
//! - strings in double quotes, escaping `"` as `\"`, `\` as `\\`, U+0008 as `\b`, U+000C as
//!   `\f`, U+000A as `\n`, U+000D as `\r`, U+0009 as `\t`, any other character below U+0020 as
//!   `\u00xx` (lowercase hex); every other character, `/` and non-ASCII included, as itself;
//! - integers in plain decimal (`-` only when negative); other numbers as serde_json prints an
//!   `f64` (the shortest form that reads back to the same value); `true`, `false`, `null`.
//!
//! The line written is exactly that encoding with its final `}` replaced by
//! `,"hash":"<hash>"}` and a `\n` appended. The verifier therefore needs no JSON serialiser to
//! check a hash: it takes the line, requires it to end with `,"hash":"<64 hex>"}`, replaces that
//! suffix with `}`, and hashes the bytes. Because the bytes themselves are hashed, even an edit
//! that keeps the JSON equivalent (reordered keys, added spaces) is a mismatch.
//!
//! # Writing
//!
//! [`AuditLog::open`] creates the file (0600; missing parent directories 0700) or opens an
//! existing one with `O_APPEND | O_CLOEXEC | O_NOFOLLOW`. It refuses a symlink, a file not owned
//! by the effective uid or writable by group or others, a parent directory that is not the
//! process's (or root's) or is writable by group or others, and a file whose `flock` another
//! writer holds (another process, or another open `AuditLog` in this one). It recovers `seq`
//! and the last hash from the end of the file (it reads the whole file only when the last
//! 16 MiB or so hold no record). Each [`AuditLog::append`] is one `write(2)` of the whole line, so a
//! crash can only tear the last line; there is no fsync per record ([`AuditLog::sync`] does
//! one).
//!
//! A torn tail (a last line without newline, or lines after the last good record that are not
//! records) stays in place: the log adds a newline if needed and writes an
//! `audit_log_recovered` record (event: `cause`, `file`, `torn_offset`, `torn_length`,
//! `torn_lines`, `newline_added`, `last_good_seq`, `last_record_hash_ok`, `chained_from`)
//! chained from the last good record. One is also written when the last record's hash does not
//! verify, and after a write that failed half-way.
//!
//! Rotation: before a record that would take a non-empty file past `rotate_size_bytes`, the
//! files shift (`.keep` deleted, `.n` → `.n+1`, the live file → `.1`) and the record opens a
//! fresh file, its `prev` and `seq` continuing the chain.

mod error;
mod line_reader;
mod record;
mod recovery;
mod report;
mod rotation;
mod secure_file;
mod tail;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

pub use error::AuditLogError;
pub use record::{GENESIS_PREV, MAX_EVENT_DEPTH, MAX_RECORD_BYTES};
pub use recovery::{Cause, Recovery, RECOVERED_KIND};
pub use report::{FileSummary, Finding, Problem, Severity, Status, VerifyReport};
pub use rotation::{chain_files, rotated_path};
pub use verify::{verify, verify_command};
pub use writer::AuditLog;
