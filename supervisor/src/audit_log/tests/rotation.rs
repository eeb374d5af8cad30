use super::*;
use crate::audit_log::{chain_files, rotated_path};

fn open_rotating(path: &Path, size: u64, keep: u32) -> AuditLog {
    AuditLog::open(path, size, keep, clock()).expect("open")
}

fn line_count(path: &Path) -> usize {
    read_lines(path).len()
}

fn seq_of(line: &str) -> u64 {
    serde_json::from_str::<Value>(line).expect("json")["seq"].as_u64().expect("seq")
}

#[test]
fn rotation_with_keep_2_continues_the_chain_and_deletes_the_oldest() {
    let dir = tempdir();
    let path = log_path(&dir);
    let log = open_rotating(&path, 1000, 2);
    for n in 1..=30 {
        log.append("spawn", event(n)).expect("append");
    }
    let files = chain_files(&path).expect("list");
    assert_eq!(files, vec![rotated_path(&path, 2), rotated_path(&path, 1), path.clone()]);
    assert!(!rotated_path(&path, 3).exists());
    for file in &files {
        assert!(std::fs::metadata(file).expect("stat").len() <= 1000, "{} too big", file.display());
    }
    let older = read_lines(&files[0]);
    let newer = read_lines(&files[1]);
    assert_eq!(seq_of(&newer[0]), seq_of(older.last().expect("line")) + 1);
    assert_eq!(seq_of(read_lines(&path).last().expect("line")), 30);

    let report = verify(&files);
    assert_intact(&report);
    assert_eq!(report.last_seq, Some(30));
    assert!(report.records < 30, "the oldest records were rotated away");
    let start = report.findings.iter().find(|f| matches!(f.problem, Problem::ChainStart { .. })).expect("note");
    assert!(matches!(start.problem, Problem::ChainStart { genesis: false, .. }), "{report}");
    assert_eq!(start.file, files[0]);
}

#[test]
fn a_missing_middle_file_is_a_break_at_the_first_line_after_it() {
    let dir = tempdir();
    let path = log_path(&dir);
    let log = open_rotating(&path, 1000, 2);
    for n in 1..=30 {
        log.append("spawn", event(n)).expect("append");
    }
    let report = verify(&[rotated_path(&path, 2), path.clone()]);
    let first = report.first_break().expect("break");
    assert_eq!((first.file.clone(), first.line), (path.clone(), Some(1)));
    assert_eq!(breaks(&report), vec![(1, "prev_mismatch".to_owned()), (1, "seq_gap".to_owned())]);
}

#[test]
fn a_file_fills_exactly_to_the_limit_before_rotating() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 1);
    let line_len = std::fs::metadata(&path).expect("stat").len();
    std::fs::remove_file(&path).expect("start over");

    let log = open_rotating(&path, 2 * line_len, 3);
    log.append("spawn", event(1)).expect("append");
    log.append("spawn", event(2)).expect("append");
    assert!(!rotated_path(&path, 1).exists(), "two lines fit exactly");
    log.append("spawn", event(3)).expect("append");
    assert_eq!(line_count(&rotated_path(&path, 1)), 2);
    assert_eq!(line_count(&path), 1);
    assert_intact(&verify(&chain_files(&path).expect("list")));
}

#[test]
fn a_record_larger_than_the_limit_is_written_alone_into_a_fresh_file() {
    let dir = tempdir();
    let path = log_path(&dir);
    let log = open_rotating(&path, 1000, 3);
    log.append("spawn", event(1)).expect("append");
    let big = json!({ "blob": "b".repeat(3000) });
    assert_eq!(log.append("violation", big).expect("append big"), 2);
    assert_eq!(line_count(&rotated_path(&path, 1)), 1);
    assert_eq!(line_count(&path), 1);
    assert!(std::fs::metadata(&path).expect("stat").len() > 3000);
    log.append("spawn", event(3)).expect("append");
    assert_eq!(line_count(&path), 1, "the next record rotates away from the oversized one");
    assert_eq!(line_count(&rotated_path(&path, 1)), 1);
    assert_eq!(line_count(&rotated_path(&path, 2)), 1);
    assert_intact(&verify(&chain_files(&path).expect("list")));
}

#[test]
fn reopening_after_rotations_continues_seq_and_chain() {
    let dir = tempdir();
    let path = log_path(&dir);
    {
        let log = open_rotating(&path, 1000, 10);
        for n in 1..=10 {
            log.append("spawn", event(n)).expect("append");
        }
    }
    let log = open_rotating(&path, 1000, 10);
    assert!(log.recovery().is_none());
    assert_eq!(log.append("stop", event(11)).expect("append"), 11);
    drop(log);
    let files = chain_files(&path).expect("list");
    assert!(files.len() >= 3);
    let report = verify(&files);
    assert_intact(&report);
    assert_eq!(report.records, 11);
}

#[test]
fn chain_files_ignores_names_rotation_does_not_make() {
    let dir = tempdir();
    let path = log_path(&dir);
    for name in ["audit.jsonl.01", "audit.jsonl.x", "audit.jsonl.0", "other.jsonl.1", "audit.jsonl.12"] {
        std::fs::write(dir.path().join(name), b"").expect("create");
    }
    std::fs::write(rotated_path(&path, 3), b"").expect("create");
    assert_eq!(chain_files(&path).expect("list"), vec![rotated_path(&path, 12), rotated_path(&path, 3)]);
}

#[test]
fn zero_size_or_zero_keep_is_refused() {
    let dir = tempdir();
    let path = log_path(&dir);
    for (size, keep) in [(0, 3), (1000, 0)] {
        let err = AuditLog::open(&path, size, keep, clock()).err().expect("refused");
        assert!(matches!(err, crate::audit_log::AuditLogError::InvalidConfig { .. }), "{err}");
    }
    assert!(!path.exists());
}
