//! Tests of the audit log. All use temporary directories; the two in `open` that chown a file
//! or directory to another uid need root.

mod chain;
mod garbage;
mod open;
mod recovery;
mod rotation;
mod tamper;

use super::{verify, AuditLog, Problem, Severity, VerifyReport};
use crate::clock::FakeClock;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;

pub const START_MS: u64 = 1_700_000_000_000;
pub const NO_ROTATION: u64 = u64::MAX;

pub fn tempdir() -> TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub fn log_path(dir: &TempDir) -> PathBuf {
    dir.path().join("audit.jsonl")
}

pub fn clock() -> Arc<FakeClock> {
    Arc::new(FakeClock::starting_at_unix_ms(START_MS))
}

pub fn open(path: &Path) -> AuditLog {
    AuditLog::open(path, NO_ROTATION, 5, clock()).expect("open the audit log")
}

pub fn event(n: u64) -> Value {
    json!({"plugin": "counter", "n": n})
}

/// A log with `count` records of kind `spawn`, closed again.
pub fn write_records(path: &Path, count: u64) {
    let log = open(path);
    for n in 1..=count {
        log.append("spawn", event(n)).expect("append");
    }
}

pub fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read the log");
    text.lines().map(str::to_owned).collect()
}

/// Replaces the file's content with `lines`, each followed by a newline.
pub fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).expect("rewrite the log");
}

pub fn verify_one(path: &Path) -> VerifyReport {
    verify(&[path.to_owned()])
}

/// (line, reason) of every break, in order; the reason is the serialised tag of the problem.
pub fn breaks(report: &VerifyReport) -> Vec<(u64, String)> {
    findings(report, Severity::Break)
}

pub fn warnings(report: &VerifyReport) -> Vec<(u64, String)> {
    findings(report, Severity::Warning)
}

fn findings(report: &VerifyReport, severity: Severity) -> Vec<(u64, String)> {
    report
        .findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| (f.line.unwrap_or(0), reason(&f.problem)))
        .collect()
}

pub fn reason(problem: &Problem) -> String {
    let value = serde_json::to_value(problem).expect("serialise a problem");
    value["reason"].as_str().expect("reason tag").to_owned()
}

pub fn assert_intact(report: &VerifyReport) {
    assert_eq!(report.status, super::Status::Intact, "expected an intact chain:\n{report}");
    assert!(breaks(report).is_empty(), "{report}");
}
