//! What `verify` found, and how it is shown to an admin.

use super::record::MAX_RECORD_BYTES;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Information, e.g. where the chain starts.
    Note,
    /// Damage that the log itself recorded and repaired (a crash during a write).
    Warning,
    /// The chain is broken here: the files were tampered with or corrupted.
    Break,
}

/// Why a finding was made. Serialised with the variant name as `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Problem {
    Unreadable {
        error: String,
    },
    EmptyFile,
    BadJson {
        error: String,
    },
    MissingField {
        field: String,
    },
    BadRecord {
        error: String,
    },
    /// `length` does not count the newline.
    LineTooLong {
        length: u64,
    },
    TornLastLine {
        length: u64,
    },
    HashMismatch {
        stored: String,
        computed: String,
    },
    PrevMismatch {
        expected: String,
        found: String,
    },
    SeqGap {
        expected: u64,
        found: u64,
    },
    SeqNotIncreasing {
        previous: u64,
        found: u64,
    },
    RecoveredTornLine {
        length: u64,
        recovery_seq: u64,
    },
    ChainStart {
        seq: u64,
        prev: String,
        genesis: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based line number, when the finding is about a line.
    pub line: Option<u64>,
    /// Byte offset of that line.
    pub offset: Option<u64>,
    /// The record's seq, when the line parsed as a record.
    pub seq: Option<u64>,
    #[serde(flatten)]
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    pub file: PathBuf,
    pub lines: u64,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Intact,
    Broken,
    Unreadable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub status: Status,
    pub files: Vec<FileSummary>,
    pub records: u64,
    /// Seq and hash of the last record: compare them with a copy kept elsewhere to detect
    /// records cut off the end, which no chain can show by itself.
    pub last_seq: Option<u64>,
    pub last_hash: Option<String>,
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    pub fn first_break(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.severity == Severity::Break)
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == severity).count()
    }

    /// 0 intact, 1 broken, 2 unreadable input.
    pub fn exit_code(&self) -> u8 {
        match self.status {
            Status::Intact => 0,
            Status::Broken => 1,
            Status::Unreadable => 2,
        }
    }

    pub(super) fn settle_status(&mut self) {
        self.status = if self.findings.iter().any(|f| matches!(f.problem, Problem::Unreadable { .. })) {
            Status::Unreadable
        } else if self.first_break().is_some() {
            Status::Broken
        } else {
            Status::Intact
        };
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreadable { error } => write!(f, "cannot read the file: {error}"),
            Problem::EmptyFile => f.write_str("the file is empty"),
            Problem::BadJson { error } => write!(f, "bad JSON: {error}"),
            Problem::MissingField { field } => write!(f, "missing field `{field}`"),
            Problem::BadRecord { error } => write!(f, "not a valid record: {error}"),
            Problem::LineTooLong { length } => {
                write!(f, "line of {length} bytes before its newline; no record is more than {MAX_RECORD_BYTES} bytes with it")
            }
            Problem::TornLastLine { length } => write!(
                f,
                "torn last line: {length} bytes without a newline (truncated, or a crash during a write not yet recovered)"
            ),
            Problem::HashMismatch { stored, computed } => {
                write!(f, "hash mismatch: the record was edited (stored {stored}, computed {computed})")
            }
            Problem::PrevMismatch { expected, found } => write!(
                f,
                "prev mismatch: a record was deleted, inserted or reordered before this one \
                 (expected {expected}, found {found})"
            ),
            Problem::SeqGap { expected, found } => {
                write!(f, "seq gap: expected {expected}, found {found} (records missing)")
            }
            Problem::SeqNotIncreasing { previous, found } => {
                write!(f, "seq not increasing: {found} after {previous} (records reordered or duplicated)")
            }
            Problem::RecoveredTornLine { length, recovery_seq } => write!(
                f,
                "torn line of {length} bytes left by a crash, recovered by the audit_log_recovered record seq {recovery_seq}"
            ),
            Problem::ChainStart { genesis: true, .. } => f.write_str("the chain starts here (seq 1, prev all zeros)"),
            Problem::ChainStart { seq, prev, genesis: false } => write!(
                f,
                "the chain starts at seq {seq} with prev {prev}: earlier records are not in the files given \
                 (rotated away?) and cannot be checked"
            ),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Break => "BREAK",
        };
        write!(f, "{label:<7} {}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        let mut details = Vec::new();
        if let Some(seq) = self.seq {
            details.push(format!("seq {seq}"));
        }
        if let Some(offset) = self.offset {
            details.push(format!("byte {offset}"));
        }
        if !details.is_empty() {
            write!(f, " ({})", details.join(", "))?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for file in &self.files {
            write!(f, "{}: {} lines, {} records", file.file.display(), file.lines, file.records)?;
            if let (Some(first), Some(last)) = (file.first_seq, file.last_seq) {
                write!(f, ", seq {first}..{last}")?;
            }
            writeln!(f)?;
        }
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        let verdict = match self.status {
            Status::Intact => "INTACT".to_owned(),
            Status::Broken => match self.first_break() {
                Some(b) => format!("BROKEN (first break: {} line {})", b.file.display(), b.line.unwrap_or(0)),
                None => "BROKEN".to_owned(),
            },
            Status::Unreadable => "UNREADABLE (some input could not be read)".to_owned(),
        };
        writeln!(
            f,
            "result: {verdict}; {} records, {} breaks, {} warnings",
            self.records,
            self.count(Severity::Break),
            self.count(Severity::Warning)
        )?;
        if let (Some(seq), Some(hash)) = (self.last_seq, &self.last_hash) {
            writeln!(f, "last record: seq {seq}, hash {hash}")?;
        }
        Ok(())
    }
}
