//! Every kind of tampering is a break at the line where it happened.

use super::*;
use crate::audit_log::record::Unsealed;
use crate::audit_log::Status;

const RECORDS: u64 = 10;

/// A fresh 10-record log and its lines.
fn fixture() -> (TempDir, PathBuf, Vec<String>) {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, RECORDS);
    let lines = read_lines(&path);
    assert_intact(&verify_one(&path));
    (dir, path, lines)
}

fn first_break(report: &VerifyReport) -> (u64, String) {
    breaks(report).into_iter().next().unwrap_or_else(|| panic!("expected a break:\n{report}"))
}

fn field(line: &str, name: &str) -> Value {
    serde_json::from_str::<Value>(line).expect("json")[name].clone()
}

/// A correctly hashed line that claims `prev` and `seq`.
fn forged(prev: &str, seq: u64) -> String {
    let event = br#"{"forged":true}"#;
    let sealed = Unsealed { seq, time_ms: START_MS, kind: "stop", event, prev }.seal();
    String::from_utf8(sealed.line).expect("utf-8").trim_end().to_owned()
}

#[test]
fn editing_a_field_is_a_hash_mismatch_on_that_line_only() {
    let (_dir, path, mut lines) = fixture();
    lines[3] = lines[3].replace("\"n\":4", "\"n\":40");
    write_lines(&path, &lines);
    let report = verify_one(&path);
    assert_eq!(breaks(&report), vec![(4, "hash_mismatch".to_owned())], "{report}");
    assert_eq!(report.status, Status::Broken);
    assert_eq!(report.exit_code(), 1);
    let b = report.first_break().expect("break");
    assert_eq!((b.seq, b.file.clone()), (Some(4), path.clone()));
}

#[test]
fn an_equivalent_reformatting_is_still_a_mismatch() {
    let (_dir, path, mut lines) = fixture();
    lines[6] = lines[6].replacen("\"kind\":", "\"kind\": ", 1);
    write_lines(&path, &lines);
    assert_eq!(breaks(&verify_one(&path)), vec![(7, "hash_mismatch".to_owned())]);
}

#[test]
fn an_edit_with_a_recomputed_hash_breaks_the_next_line() {
    let (_dir, path, mut lines) = fixture();
    let prev = field(&lines[4], "prev");
    lines[4] = forged(prev.as_str().expect("prev"), 5);
    write_lines(&path, &lines);
    let report = verify_one(&path);
    assert_eq!(breaks(&report), vec![(6, "prev_mismatch".to_owned())], "{report}");
}

#[test]
fn deleting_a_line_breaks_at_the_record_after_the_gap() {
    let (_dir, path, mut lines) = fixture();
    lines.remove(4);
    write_lines(&path, &lines);
    let report = verify_one(&path);
    assert_eq!(breaks(&report), vec![(5, "prev_mismatch".to_owned()), (5, "seq_gap".to_owned())], "{report}");
    assert_eq!(report.first_break().and_then(|b| b.seq), Some(6));
}

#[test]
fn swapping_two_lines_breaks_at_the_first_of_them() {
    let (_dir, path, mut lines) = fixture();
    lines.swap(2, 3);
    write_lines(&path, &lines);
    let report = verify_one(&path);
    assert_eq!(first_break(&report), (3, "prev_mismatch".to_owned()), "{report}");
    let reasons = breaks(&report);
    assert!(reasons.contains(&(4, "seq_not_increasing".to_owned())), "{report}");
    assert!(reasons.iter().all(|(line, _)| (3..=5).contains(line)), "{report}");
}

#[test]
fn an_inserted_line_with_its_own_valid_hash_but_wrong_prev_is_caught() {
    let (_dir, path, mut lines) = fixture();
    lines.insert(4, forged(crate::audit_log::GENESIS_PREV, 5));
    write_lines(&path, &lines);
    let report = verify_one(&path);
    assert_eq!(first_break(&report), (5, "prev_mismatch".to_owned()), "{report}");
    assert!(breaks(&report).contains(&(6, "seq_not_increasing".to_owned())), "{report}");
}

#[test]
fn an_inserted_line_chained_correctly_still_breaks_the_record_after_it() {
    let (_dir, path, mut lines) = fixture();
    let hash_of_4 = field(&lines[3], "hash");
    lines.insert(4, forged(hash_of_4.as_str().expect("hash"), 5));
    write_lines(&path, &lines);
    let report = verify_one(&path);
    assert_eq!(breaks(&report), vec![(6, "prev_mismatch".to_owned()), (6, "seq_not_increasing".to_owned())]);
}

#[test]
fn truncating_the_last_line_is_a_torn_last_line() {
    let (_dir, path, lines) = fixture();
    let mut text = lines.join("\n");
    text.truncate(text.len() - 20);
    std::fs::write(&path, text).expect("truncate");
    let report = verify_one(&path);
    assert_eq!(breaks(&report), vec![(RECORDS, "torn_last_line".to_owned())], "{report}");
}

#[test]
fn an_inserted_garbage_line_is_bad_json_at_that_line() {
    let (_dir, path, mut lines) = fixture();
    lines.insert(2, "{not json".to_owned());
    write_lines(&path, &lines);
    let report = verify_one(&path);
    assert_eq!(breaks(&report), vec![(3, "bad_json".to_owned())], "{report}");
}

#[test]
fn a_record_without_a_field_is_a_break_and_the_next_record_cannot_chain_to_it() {
    let (_dir, path, mut lines) = fixture();
    lines[5] = lines[5].replacen("\"kind\":\"spawn\",", "", 1);
    write_lines(&path, &lines);
    let report = verify_one(&path);
    let expected = [(6, "missing_field"), (7, "prev_mismatch"), (7, "seq_gap")].map(|(l, r)| (l, r.to_owned()));
    assert_eq!(breaks(&report), expected.to_vec(), "{report}");
}

#[test]
fn cutting_whole_records_off_the_end_shows_only_in_the_last_seq_and_hash() {
    let (_dir, path, mut lines) = fixture();
    let true_last_hash = field(&lines[9], "hash");
    lines.pop();
    write_lines(&path, &lines);
    let report = verify_one(&path);
    assert_intact(&report);
    assert_eq!(report.last_seq, Some(RECORDS - 1));
    assert_ne!(report.last_hash.as_deref(), true_last_hash.as_str());
}
