use super::*;
use crate::audit_log::{rotated_path, Cause, RECOVERED_KIND};
use std::io::Write;

fn append_raw(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).expect("open for appending");
    file.write_all(bytes).expect("append raw bytes");
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

fn record(path: &Path, index: usize) -> Value {
    serde_json::from_str(&read_lines(path)[index]).expect("json")
}

#[test]
fn a_torn_last_line_is_kept_and_recovered_and_verify_only_warns() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 5);
    let torn_at = file_len(&path);
    let torn = br#"{"event":{"n":6},"kind":"spa"#;
    append_raw(&path, torn);

    let log = open(&path);
    let found = log.recovery().expect("recovered").clone();
    assert_eq!(found.cause, Cause::Open);
    assert_eq!((found.torn_offset, found.torn_length, found.torn_lines), (Some(torn_at), torn.len() as u64, 1));
    assert!(found.newline_added);
    assert_eq!((found.last_good_seq, found.last_record_hash_ok, found.seq), (Some(5), Some(true), 6));
    assert_eq!(log.append("spawn", event(7)).expect("append"), 7);
    drop(log);

    let lines = read_lines(&path);
    assert_eq!(lines[5].as_bytes(), torn, "the torn bytes stay in place, on their own line");
    let recovered = record(&path, 6);
    assert_eq!(recovered["kind"], json!(RECOVERED_KIND));
    assert_eq!(recovered["prev"], record(&path, 4)["hash"]);
    assert_eq!(recovered["event"]["torn_offset"], json!(torn_at));

    let report = verify_one(&path);
    assert_intact(&report);
    assert_eq!(warnings(&report), vec![(6, "recovered_torn_line".to_owned())], "{report}");
    assert_eq!(report.last_seq, Some(7));
}

#[test]
fn a_last_line_that_ends_in_a_newline_but_is_not_a_record_is_recovered_too() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 2);
    append_raw(&path, b"\x00\x00\x00 garbage\n");
    let log = open(&path);
    let found = log.recovery().expect("recovered");
    assert!(!found.newline_added);
    assert_eq!(found.torn_length, 12);
    drop(log);
    assert_eq!(read_lines(&path).len(), 4, "no extra newline was added");
    let report = verify_one(&path);
    assert_intact(&report);
    assert_eq!(warnings(&report), vec![(3, "recovered_torn_line".to_owned())]);
}

#[test]
fn a_recovery_record_that_does_not_match_the_torn_line_is_no_excuse() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 2);
    append_raw(&path, b"torn");
    drop(open(&path));
    // Lengthen the torn line afterwards: its recorded length no longer matches.
    let mut lines = read_lines(&path);
    lines[2].push_str("more");
    write_lines(&path, &lines);
    let report = verify_one(&path);
    assert_eq!(breaks(&report), vec![(3, "bad_json".to_owned())], "{report}");
    assert!(warnings(&report).is_empty());
}

#[test]
fn several_damaged_lines_are_recovered_from_but_reported_as_breaks() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 3);
    append_raw(&path, b"first bad line\nsecond bad line");
    let log = open(&path);
    let found = log.recovery().expect("recovered");
    assert_eq!((found.torn_lines, found.last_good_seq), (2, Some(3)));
    assert_eq!(log.append("spawn", event(5)).expect("append"), 5);
    drop(log);
    let report = verify_one(&path);
    assert_eq!(breaks(&report), vec![(4, "bad_json".to_owned()), (5, "bad_json".to_owned())], "{report}");
}

#[test]
fn a_last_record_whose_hash_fails_is_noted_and_still_chained_from() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 4);
    let mut lines = read_lines(&path);
    lines[3] = lines[3].replace("\"n\":4", "\"n\":5");
    write_lines(&path, &lines);
    let log = open(&path);
    let found = log.recovery().expect("noted");
    assert_eq!((found.torn_offset, found.last_record_hash_ok, found.last_good_seq), (None, Some(false), Some(4)));
    drop(log);
    let report = verify_one(&path);
    assert_eq!(breaks(&report), vec![(4, "hash_mismatch".to_owned())], "{report}");
    assert_eq!(record(&path, 4)["event"]["last_record_hash_ok"], json!(false));
}

#[test]
fn an_empty_live_file_after_a_rotation_continues_from_the_rotated_file() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 3);
    std::fs::rename(&path, rotated_path(&path, 1)).expect("rotate by hand");
    std::fs::write(&path, b"").expect("empty live file");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let log = open(&path);
    assert!(log.recovery().is_none());
    assert_eq!(log.append("spawn", event(4)).expect("append"), 4);
    drop(log);
    assert_intact(&verify(&[rotated_path(&path, 1), path.clone()]));
}

#[test]
fn a_live_file_holding_only_a_torn_line_chains_from_the_rotated_file() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 3);
    std::fs::rename(&path, rotated_path(&path, 1)).expect("rotate by hand");
    drop(open(&path));
    append_raw(&path, b"{\"event\":");
    let log = open(&path);
    let found = log.recovery().expect("recovered");
    assert_eq!(found.chained_from.as_deref(), Some(rotated_path(&path, 1).as_path()));
    assert_eq!((found.torn_offset, found.last_good_seq, found.seq), (Some(0), Some(3), 4));
    drop(log);
    let report = verify(&[rotated_path(&path, 1), path.clone()]);
    assert_intact(&report);
    assert_eq!(warnings(&report), vec![(1, "recovered_torn_line".to_owned())]);
}

#[test]
fn a_write_that_failed_half_way_is_repaired_by_the_next_append() {
    let dir = tempdir();
    let path = log_path(&dir);
    let log = open(&path);
    log.append("spawn", event(1)).expect("append");
    let err = log.simulate_failed_write(40).expect_err("the simulated write fails");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(log.append("spawn", event(2)).expect("append after the failure"), 3);
    drop(log);
    let recovered = record(&path, 2);
    assert_eq!(recovered["kind"], json!(RECOVERED_KIND));
    assert_eq!(recovered["event"]["cause"], json!("write_error"));
    assert_eq!(recovered["event"]["torn_length"], json!(40));
    let report = verify_one(&path);
    assert_intact(&report);
    assert_eq!(warnings(&report), vec![(2, "recovered_torn_line".to_owned())]);
}

#[test]
fn a_file_of_nothing_but_garbage_starts_a_new_chain_that_verify_flags() {
    let dir = tempdir();
    let path = log_path(&dir);
    std::fs::write(&path, b"junk\nmore junk\n").expect("write");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let log = open(&path);
    let found = log.recovery().expect("recovered");
    assert_eq!((found.torn_offset, found.torn_lines, found.last_good_seq, found.seq), (Some(0), 2, None, 1));
    drop(log);
    let report = verify_one(&path);
    assert_eq!(breaks(&report), vec![(1, "bad_json".to_owned()), (2, "bad_json".to_owned())]);
}
