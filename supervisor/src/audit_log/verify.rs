//! Checking a chain of log files, oldest first, and saying exactly where it breaks.

use super::line_reader::{Line, LineReader};
use super::record::{parse_line, LineError, Parsed, GENESIS_PREV, MAX_RECORD_BYTES};
use super::recovery::RECOVERED_KIND;
use super::report::{FileSummary, Finding, Problem, Severity, Status, VerifyReport};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// The longest line, without its newline, that can hold a record: `MAX_RECORD_BYTES` counts
/// the newline.
const MAX_LINE_LEN: usize = MAX_RECORD_BYTES - 1;

/// Verifies `files` given in chain order (e.g. `audit.jsonl.2 audit.jsonl.1 audit.jsonl`).
/// Never panics and never stops at the first problem: every finding is reported.
pub fn verify(files: &[PathBuf]) -> VerifyReport {
    let mut verifier = Verifier::default();
    for file in files {
        verifier.verify_file(file);
    }
    verifier.finish()
}

/// Prints a report for `files` (human text, or JSON with `json`) on stdout and returns the exit
/// status: 0 intact, 1 broken, 2 unreadable input.
pub fn verify_command(files: &[PathBuf], json: bool) -> u8 {
    if files.is_empty() {
        eprintln!("audit-log verify: no files given (list them oldest first, the live log last)");
        return 2;
    }
    let report = verify(files);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("audit-log verify: serialising the report failed: {e}");
                return 2;
            }
        }
    } else {
        print!("{report}");
    }
    report.exit_code()
}

/// A line that is not a record, held back until the next record shows whether the log itself
/// recovered it.
struct BadLine {
    number: u64,
    offset: u64,
    len: u64,
    problem: Problem,
}

struct ChainHead {
    seq: u64,
    hash: String,
}

#[derive(Default)]
struct Verifier {
    findings: Vec<Finding>,
    files: Vec<FileSummary>,
    head: Option<ChainHead>,
    records: u64,
    pending: Vec<BadLine>,
}

impl Verifier {
    fn verify_file(&mut self, path: &Path) {
        let mut summary = FileSummary { file: path.to_owned(), lines: 0, records: 0, first_seq: None, last_seq: None };
        match File::open(path) {
            Ok(file) => self.read_lines(path, file, &mut summary),
            Err(e) => self.unreadable(path, None, &e),
        }
        self.flush_pending(path);
        if summary.lines == 0 && !self.findings.iter().any(|f| f.file == path) {
            self.push(Severity::Note, path, None, None, Problem::EmptyFile);
        }
        self.files.push(summary);
    }

    fn read_lines(&mut self, path: &Path, file: File, summary: &mut FileSummary) {
        let mut reader = LineReader::new(BufReader::with_capacity(64 * 1024, file), MAX_LINE_LEN);
        loop {
            match reader.next_line() {
                Ok(Some(line)) => {
                    summary.lines += 1;
                    if let Some(seq) = self.check_line(path, summary.lines, line) {
                        summary.records += 1;
                        summary.first_seq.get_or_insert(seq);
                        summary.last_seq = Some(seq);
                    }
                }
                Ok(None) => return,
                Err(e) => return self.unreadable(path, Some(summary.lines + 1), &e),
            }
        }
    }

    /// Checks one line; returns its seq when it is a record.
    fn check_line(&mut self, path: &Path, number: u64, line: Line) -> Option<u64> {
        let bad = |problem| BadLine { number, offset: line.offset, len: line.len, problem };
        if line.too_long {
            self.pending.push(bad(Problem::LineTooLong { length: line.len }));
            return None;
        }
        if !line.has_newline {
            self.pending.push(bad(Problem::TornLastLine { length: line.len }));
            return None;
        }
        match parse_line(&line.bytes) {
            Ok(record) => {
                self.check_record(path, number, line.offset, &record);
                Some(record.seq)
            }
            Err(e) => {
                self.pending.push(bad(line_problem(e)));
                None
            }
        }
    }

    fn check_record(&mut self, path: &Path, number: u64, offset: u64, record: &Parsed) {
        self.settle_pending(path, record);
        let at = (Some(number), Some(offset), Some(record.seq));
        if !record.hash_ok() {
            let problem = Problem::HashMismatch { stored: record.hash.clone(), computed: record.computed_hash.clone() };
            self.push_at(Severity::Break, path, at, problem);
        }
        match &self.head {
            None => {
                let genesis = record.seq == 1 && record.prev == GENESIS_PREV;
                let problem = Problem::ChainStart { seq: record.seq, prev: record.prev.clone(), genesis };
                self.push_at(Severity::Note, path, at, problem);
            }
            Some(head) => {
                for problem in chain_problems(head, record) {
                    self.push_at(Severity::Break, path, at, problem);
                }
            }
        }
        // Later records are checked against this one even when it is wrong, so one edit or one
        // deletion is reported where it happened rather than on every record after it.
        self.head = Some(ChainHead { seq: record.seq, hash: record.hash.clone() });
        self.records += 1;
    }

    /// A single bad line followed by the recovery record that describes it is a warning;
    /// anything else held back is a break.
    fn settle_pending(&mut self, path: &Path, record: &Parsed) {
        if let [bad] = self.pending.as_slice() {
            if recovers(record, bad) {
                let problem = Problem::RecoveredTornLine { length: bad.len, recovery_seq: record.seq };
                let at = (Some(bad.number), Some(bad.offset), None);
                self.push_at(Severity::Warning, path, at, problem);
                self.pending.clear();
                return;
            }
        }
        self.flush_pending(path);
    }

    fn flush_pending(&mut self, path: &Path) {
        for bad in std::mem::take(&mut self.pending) {
            self.push_at(Severity::Break, path, (Some(bad.number), Some(bad.offset), None), bad.problem);
        }
    }

    fn unreadable(&mut self, path: &Path, line: Option<u64>, e: &std::io::Error) {
        self.push(Severity::Break, path, line, None, Problem::Unreadable { error: e.to_string() });
    }

    fn push(&mut self, severity: Severity, path: &Path, line: Option<u64>, offset: Option<u64>, problem: Problem) {
        self.push_at(severity, path, (line, offset, None), problem);
    }

    fn push_at(
        &mut self,
        severity: Severity,
        path: &Path,
        (line, offset, seq): (Option<u64>, Option<u64>, Option<u64>),
        problem: Problem,
    ) {
        self.findings.push(Finding { severity, file: path.to_owned(), line, offset, seq, problem });
    }

    fn finish(self) -> VerifyReport {
        let mut report = VerifyReport {
            status: Status::Intact,
            files: self.files,
            records: self.records,
            last_seq: self.head.as_ref().map(|h| h.seq),
            last_hash: self.head.map(|h| h.hash),
            findings: self.findings,
        };
        report.settle_status();
        report
    }
}

fn chain_problems(head: &ChainHead, record: &Parsed) -> Vec<Problem> {
    let mut problems = Vec::new();
    if record.prev != head.hash {
        problems.push(Problem::PrevMismatch { expected: head.hash.clone(), found: record.prev.clone() });
    }
    match head.seq.checked_add(1) {
        Some(expected) if record.seq == expected => {}
        Some(expected) if record.seq > expected => problems.push(Problem::SeqGap { expected, found: record.seq }),
        _ => problems.push(Problem::SeqNotIncreasing { previous: head.seq, found: record.seq }),
    }
    problems
}

/// Whether `record` is the `audit_log_recovered` record written for exactly this one line.
fn recovers(record: &Parsed, bad: &BadLine) -> bool {
    if record.kind != RECOVERED_KIND {
        return false;
    }
    let field = |name: &str| record.event.get(name);
    let newline_added = field("newline_added").and_then(|v| v.as_bool());
    // The recorded length is what was there before the log added a newline, if it did.
    let expected_length = match newline_added {
        Some(true) => bad.len,
        Some(false) => bad.len + 1,
        None => return false,
    };
    field("torn_offset").and_then(|v| v.as_u64()) == Some(bad.offset)
        && field("torn_length").and_then(|v| v.as_u64()) == Some(expected_length)
        && field("torn_lines").and_then(|v| v.as_u64()) == Some(1)
}

fn line_problem(e: LineError) -> Problem {
    match e {
        LineError::BadJson(error) => Problem::BadJson { error },
        LineError::MissingField(field) => Problem::MissingField { field: field.to_owned() },
        other => Problem::BadRecord { error: other.to_string() },
    }
}
