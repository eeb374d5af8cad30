//! `wfsandbox audit-log verify`, run as a newcomer would, on logs the daemon's writer made.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use wfsandbox::audit_log::AuditLog;
use wfsandbox::clock::SystemClock;

fn write_log(path: &Path, records: u64, rotate_bytes: u64) {
    let log = AuditLog::open(path, rotate_bytes, 5, Arc::new(SystemClock::new())).expect("open the log");
    for n in 0..records {
        log.append("test_event", serde_json::json!({ "n": n, "text": "x".repeat(100) })).expect("append");
    }
}

fn verify(args: &[&Path], extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wfsandbox"))
        .args(["audit-log", "verify"])
        .args(extra)
        .args(args)
        .output()
        .expect("run wfsandbox");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).expect("read").lines().map(str::to_owned).collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).expect("write");
}

fn fresh(records: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    write_log(&path, records, 100 * 1024 * 1024);
    (dir, path)
}

#[test]
fn an_intact_log_verifies() {
    let (_dir, path) = fresh(5);
    let (code, out) = verify(&[&path], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("result: INTACT; 5 records"), "{out}");
}

#[test]
fn a_flipped_byte_a_deleted_line_and_a_swap_are_each_reported_at_their_line() {
    let flip = |lines: &mut Vec<String>| lines[2] = lines[2].replacen("\"n\":2", "\"n\":7", 1);
    let delete = |lines: &mut Vec<String>| {
        lines.remove(2);
    };
    let swap = |lines: &mut Vec<String>| lines.swap(1, 2);
    type Tamper<'a> = &'a dyn Fn(&mut Vec<String>);
    let cases: [(&str, Tamper, &str); 3] =
        [("flip", &flip, "line 3)"), ("delete", &delete, "line 3)"), ("swap", &swap, "line 2)")];
    for (what, tamper, at) in cases {
        let (_dir, path) = fresh(5);
        let mut content = lines(&path);
        tamper(&mut content);
        rewrite(&path, &content);
        let (code, out) = verify(&[&path], &[]);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(out.contains("BROKEN (first break: ") && out.contains(at), "{what}: expected the break at {at}: {out}");
    }
}

#[test]
fn rotated_files_continue_the_chain_and_json_names_the_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 40, 1024);
    assert!(path.with_extension("jsonl.1").exists(), "the log did not rotate");
    let (code, out) = verify(&[&path], &["--rotated", "--json"]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(report["status"], "intact", "{out}");
    assert!(report["files"].as_array().is_some_and(|f| f.len() > 1), "{out}");
    // The live file alone starts mid-chain: that is said, not hidden.
    let (_, out) = verify(&[&path], &[]);
    assert!(out.contains("earlier records are not in the files given"), "{out}");
}

#[test]
fn an_unreadable_file_exits_2() {
    let (code, _) = verify(&[Path::new("/nonexistent/audit.jsonl")], &[]);
    assert_eq!(code, 2);
}
