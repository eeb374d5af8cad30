//! Hostile or broken content: `verify` names every bad line and never panics; `open` keeps the
//! damage in place, chains an `audit_log_recovered` record from the last good record, and the
//! records after it verify.

use super::*;
use crate::audit_log::{Recovery, GENESIS_PREV, MAX_RECORD_BYTES, RECOVERED_KIND};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

/// Replaces the file's content with `bytes`, as a 0600 file whatever the umask.
fn write_raw(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("create the file");
    file.write_all(bytes).expect("write");
}

fn append_raw(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).expect("open for appending");
    file.write_all(bytes).expect("append raw bytes");
}

/// A log of `records` records followed by `garbage`; returns the offset where the garbage starts.
fn records_then(path: &Path, records: u64, garbage: &[u8]) -> u64 {
    write_records(path, records);
    let offset = std::fs::metadata(path).expect("stat").len();
    append_raw(path, garbage);
    offset
}

/// Verifies and also renders the report both ways, which must not panic either.
fn verify_all_ways(path: &Path) -> VerifyReport {
    let report = verify_one(path);
    assert!(!report.to_string().is_empty());
    serde_json::to_string(&report).expect("the report serialises");
    report
}

/// How many lines the verifier sees in `bytes`: one per newline, plus a final unterminated one.
fn line_count(bytes: &[u8]) -> u64 {
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    newlines + u64::from(bytes.last().is_some_and(|&b| b != b'\n'))
}

fn hash_at(path: &Path, index: usize) -> Value {
    record_at(path, index)["hash"].clone()
}

fn record_at(path: &Path, index: usize) -> Value {
    let bytes = std::fs::read(path).expect("read");
    let line = bytes.split(|&b| b == b'\n').nth(index).expect("line");
    serde_json::from_slice(line).expect("a record")
}

/// Opens a damaged log, checks the damage is kept byte for byte, appends one record and
/// returns what the open found.
fn open_recover_and_append(path: &Path) -> Recovery {
    let before = std::fs::read(path).expect("read");
    let log = open(path);
    let found = log.recovery().expect("the open recovered").clone();
    assert_eq!(log.append("spawn", event(99)).expect("append after recovery"), found.seq + 1);
    drop(log);
    let after = std::fs::read(path).expect("read");
    assert_eq!(&after[..before.len()], before.as_slice(), "the torn tail stays in place");
    found
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() >> 56) as u8).collect()
    }
}

#[test]
fn random_bytes_after_records_are_one_break_per_line_and_are_recovered_from() {
    let mut rng = Bytes(0x9e37_79b9_7f4a_7c15);
    for case in 0..60 {
        let dir = tempdir();
        let path = log_path(&dir);
        let len = 1 + (rng.next() % 3000) as usize;
        let garbage = rng.fill(len);
        let lines = line_count(&garbage);
        let torn_at = records_then(&path, 3, &garbage);

        let report = verify_all_ways(&path);
        let garbage_lines: Vec<u64> = (4..4 + lines).collect();
        let broken: Vec<u64> = breaks(&report).into_iter().map(|(line, _)| line).collect();
        assert_eq!(broken, garbage_lines, "case {case}:\n{report}");
        assert_eq!((report.records, report.last_seq), (3, Some(3)), "case {case}");

        let found = open_recover_and_append(&path);
        assert_eq!((found.torn_offset, found.torn_length), (Some(torn_at), len as u64), "case {case}");
        assert_eq!((found.torn_lines, found.newline_added), (lines, garbage.last() != Some(&b'\n')), "case {case}");
        assert_eq!((found.last_good_seq, found.last_record_hash_ok, found.seq), (Some(3), Some(true), 4));
        let recovered = record_at(&path, 3 + lines as usize);
        assert_eq!((recovered["kind"].clone(), recovered["prev"].clone()), (json!(RECOVERED_KIND), hash_at(&path, 2)));

        let report = verify_all_ways(&path);
        assert_eq!((report.records, report.last_seq), (5, Some(5)), "case {case}:\n{report}");
        let broken: Vec<u64> = breaks(&report).into_iter().map(|(line, _)| line).collect();
        if lines == 1 {
            assert!(broken.is_empty(), "case {case}:\n{report}");
            assert_eq!(warnings(&report), vec![(4, "recovered_torn_line".to_owned())], "case {case}");
        } else {
            assert_eq!(broken, garbage_lines, "only the garbage is a break, not the chain after it: {case}");
        }
    }
}

#[test]
fn a_file_of_nothing_but_random_bytes_never_panics() {
    let mut rng = Bytes(42);
    for case in 0..60 {
        let dir = tempdir();
        let path = log_path(&dir);
        let len = 1 + (rng.next() % 5000) as usize;
        let garbage = rng.fill(len);
        write_raw(&path, &garbage);
        let report = verify_all_ways(&path);
        assert_eq!(report.count(Severity::Break) as u64, line_count(&garbage), "case {case}:\n{report}");
        assert_eq!((report.records, report.last_seq), (0, None));

        let found = open_recover_and_append(&path);
        assert_eq!((found.torn_offset, found.last_good_seq, found.seq), (Some(0), None, 1), "case {case}");
        let recovered = record_at(&path, line_count(&garbage) as usize);
        assert_eq!(recovered["prev"], json!(GENESIS_PREV), "a new chain starts after the garbage");
        assert_eq!(verify_all_ways(&path).records, 2);
    }
}

#[test]
fn lines_that_are_not_json_are_bad_json_breaks_at_their_line() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 4);
    let mut lines = read_lines(&path);
    // Inserted from the end, so each index is where the line goes among the original records.
    for (index, text) in [(4, "}{"), (3, "{\"event\":"), (2, "{'kind': 'spawn'}"), (1, "hello")] {
        lines.insert(index, text.to_owned());
    }
    write_lines(&path, &lines);
    let report = verify_all_ways(&path);
    let expected: Vec<(u64, String)> = [2, 4, 6, 8].map(|line| (line, "bad_json".to_owned())).to_vec();
    assert_eq!(breaks(&report), expected, "the records between still chain:\n{report}");
    assert_eq!(report.records, 4);
}

#[test]
fn json_that_is_not_a_record_is_a_break_naming_what_is_wrong() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 3);
    let lines = read_lines(&path);
    let second = &lines[1];
    let hash = hash_at(&path, 1);
    let hash = hash.as_str().expect("hash");
    let cases: Vec<(String, &str, &str)> = vec![
        ("[1,2,3]".into(), "bad_record", "not a JSON object"),
        ("\"spawn\"".into(), "bad_record", "not a JSON object"),
        ("42".into(), "bad_record", "not a JSON object"),
        ("null".into(), "bad_record", "not a JSON object"),
        ("{}".into(), "missing_field", "missing field `seq`"),
        (second.replacen("{\"event\"", "{\"extra\":1,\"event\"", 1), "bad_record", "unexpected field `extra`"),
        (second.replace("\"seq\":2", "\"seq\":\"2\""), "bad_record", "field `seq`"),
        (second.replace("\"seq\":2", "\"seq\":-2"), "bad_record", "field `seq`"),
        (second.replace("\"seq\":2", "\"seq\":2.5"), "bad_record", "field `seq`"),
        (second.replace(hash, &hash.to_uppercase()), "bad_record", "field `hash`"),
        (second.replace("{\"n\":2,\"plugin\":\"counter\"}", "[2]"), "bad_record", "field `event`"),
        (second.replace("\"kind\":\"spawn\"", "\"kind\":7"), "bad_record", "field `kind`"),
        (
            second.replacen(&format!(",\"hash\":\"{hash}\""), "", 1).replacen(
                '{',
                &format!("{{\"hash\":\"{hash}\","),
                1,
            ),
            "bad_record",
            "not the last member",
        ),
        (format!("{second} "), "bad_record", "not the last member"),
        (format!("{second}\r"), "bad_record", "not the last member"),
    ];
    for (text, reason, says) in cases {
        let mut damaged = lines.clone();
        damaged.insert(2, text.clone());
        write_lines(&path, &damaged);
        let report = verify_all_ways(&path);
        assert_eq!(breaks(&report), vec![(3, reason.to_owned())], "{text}:\n{report}");
        let finding = report.first_break().expect("break");
        assert!(finding.problem.to_string().contains(says), "{text}: {}", finding.problem);
        assert_eq!(finding.seq, None, "a line that is not a record has no seq");
    }
}

#[test]
fn a_line_longer_than_any_record_is_reported_unread() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 3);
    let mut lines = read_lines(&path);
    // With its newline this is one byte more than any record may be.
    lines.insert(1, "x".repeat(MAX_RECORD_BYTES));
    // The longest line a record could be is read and parsed: it is merely bad JSON.
    lines.insert(3, "y".repeat(MAX_RECORD_BYTES - 1));
    write_lines(&path, &lines);
    let report = verify_all_ways(&path);
    assert_eq!(breaks(&report), vec![(2, "line_too_long".to_owned()), (4, "bad_json".to_owned())], "{report}");
    let too_long = report.first_break().expect("break");
    assert_eq!(too_long.problem, Problem::LineTooLong { length: MAX_RECORD_BYTES as u64 });
    assert_eq!(report.records, 3);
}

#[test]
fn an_oversized_tail_is_recovered_from_like_any_torn_tail() {
    let dir = tempdir();
    let path = log_path(&dir);
    let mut garbage = vec![b'{'; MAX_RECORD_BYTES + 10];
    garbage.push(b'\n');
    let torn_at = records_then(&path, 2, &garbage);
    assert_eq!(breaks(&verify_all_ways(&path)), vec![(3, "line_too_long".to_owned())]);

    let found = open_recover_and_append(&path);
    assert_eq!((found.torn_offset, found.torn_length, found.torn_lines), (Some(torn_at), garbage.len() as u64, 1));
    assert_eq!((found.newline_added, found.last_good_seq, found.seq), (false, Some(2), 3));
    let report = verify_all_ways(&path);
    assert_intact(&report);
    assert_eq!(warnings(&report), vec![(3, "recovered_torn_line".to_owned())]);
    assert_eq!(report.last_seq, Some(4));
}

#[test]
fn an_oversized_unterminated_last_line_is_too_long_not_merely_torn() {
    let dir = tempdir();
    let path = log_path(&dir);
    records_then(&path, 1, &vec![b'z'; MAX_RECORD_BYTES + 1]);
    let report = verify_all_ways(&path);
    assert_eq!(breaks(&report), vec![(2, "line_too_long".to_owned())], "{report}");
}

#[test]
fn nul_bytes_are_bad_json_and_a_file_of_them_starts_a_new_chain() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 3);
    let mut lines = read_lines(&path);
    lines[1] = lines[1].replace("counter", "coun\0ter");
    lines.insert(2, "\0".repeat(64));
    write_lines(&path, &lines);
    let report = verify_all_ways(&path);
    assert_eq!(
        breaks(&report),
        vec![
            (2, "bad_json".to_owned()),
            (3, "bad_json".to_owned()),
            (4, "prev_mismatch".to_owned()),
            (4, "seq_gap".to_owned())
        ],
        "{report}"
    );

    // What some file systems leave after a crash: the file's size, but only zeros.
    let zeros = dir.path().join("zeros.jsonl");
    write_raw(&zeros, &[0u8; 4096]);
    assert_eq!(breaks(&verify_all_ways(&zeros)), vec![(1, "torn_last_line".to_owned())]);
    let found = open_recover_and_append(&zeros);
    assert_eq!((found.torn_offset, found.torn_length, found.newline_added), (Some(0), 4096, true));
    assert_eq!((found.last_good_seq, found.chained_from.clone(), found.seq), (None, None, 1));
    let report = verify_all_ways(&zeros);
    assert_intact(&report);
    assert_eq!(warnings(&report), vec![(1, "recovered_torn_line".to_owned())]);
    assert_eq!(report.records, 2);
}

#[test]
fn invalid_utf8_is_bad_json_wherever_it_is() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 3);
    let original = std::fs::read(&path).expect("read");
    let cases: Vec<Vec<u8>> = vec![
        b"\xc3\x28\n".to_vec(),
        b"\xff\xfe\xfd\n".to_vec(),
        b"{\"event\":{\"s\":\"\xed\xa0\x80\"}}\n".to_vec(),
        b"{\"event\":{\"s\":\"\\ud800\"}}\n".to_vec(),
        b"\xc0\xaf\n".to_vec(),
    ];
    let lines: Vec<&[u8]> = original.split_inclusive(|&b| b == b'\n').collect();
    let mut broken_record = lines[1].to_vec();
    let name_at = broken_record.windows(7).position(|w| w == b"counter").expect("the plugin name");
    broken_record[name_at + 2] = 0xff;
    for bad in cases {
        // The second record with a byte of its plugin name broken, then a bad line of its own.
        let content = [lines[0], broken_record.as_slice(), &bad, lines[2]].concat();
        write_raw(&path, &content);
        let report = verify_all_ways(&path);
        let expected = [(2, "bad_json"), (3, "bad_json"), (4, "prev_mismatch"), (4, "seq_gap")];
        let shown = String::from_utf8_lossy(&bad).into_owned();
        assert_eq!(breaks(&report), expected.map(|(l, r)| (l, r.to_owned())).to_vec(), "{shown:?}:\n{report}");
    }
}

#[test]
fn invalid_utf8_in_a_torn_tail_is_recovered_from() {
    let dir = tempdir();
    let path = log_path(&dir);
    let torn = b"{\"event\":{\"plugin\":\"co\xff\xfe";
    let torn_at = records_then(&path, 2, torn);
    let found = open_recover_and_append(&path);
    let expected = (Some(torn_at), torn.len() as u64, true, Some(2));
    assert_eq!((found.torn_offset, found.torn_length, found.newline_added, found.last_good_seq), expected);
    let report = verify_all_ways(&path);
    assert_intact(&report);
    assert_eq!(warnings(&report), vec![(3, "recovered_torn_line".to_owned())]);
}

#[test]
fn an_empty_file_is_a_note_and_opens_as_a_new_chain() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_raw(&path, b"");
    let report = verify_all_ways(&path);
    assert_eq!(report.status, crate::audit_log::Status::Intact);
    assert_eq!(report.findings.len(), 1, "{report}");
    assert_eq!((report.findings[0].severity, &report.findings[0].problem), (Severity::Note, &Problem::EmptyFile));
    assert_eq!((report.records, report.last_seq, report.last_hash.clone()), (0, None, None));

    let log = open(&path);
    assert!(log.recovery().is_none());
    assert_eq!((log.last_seq(), log.last_hash()), (0, GENESIS_PREV.to_owned()));
    assert_eq!(log.append("spawn", event(1)).expect("append"), 1);
    drop(log);
    assert_eq!(record_at(&path, 0)["prev"], json!(GENESIS_PREV));
    assert_intact(&verify_all_ways(&path));
}

#[test]
fn a_file_of_only_newlines_is_a_break_per_line_and_recovered_from() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_raw(&path, b"\n\n\n");
    let report = verify_all_ways(&path);
    let expected: Vec<(u64, String)> = (1..=3).map(|line| (line, "bad_json".to_owned())).collect();
    assert_eq!(breaks(&report), expected, "{report}");

    let found = open_recover_and_append(&path);
    assert_eq!((found.torn_offset, found.torn_length, found.torn_lines, found.newline_added), (Some(0), 3, 3, false));
    assert_eq!((found.last_good_seq, found.seq), (None, 1));
    let report = verify_all_ways(&path);
    assert_eq!(breaks(&report), expected, "the records after the newlines chain:\n{report}");
    assert_eq!((report.records, report.last_seq), (2, Some(2)));
}

#[test]
fn a_single_blank_line_after_records_is_a_recovered_torn_line() {
    let dir = tempdir();
    let path = log_path(&dir);
    let torn_at = records_then(&path, 2, b"\n");
    assert_eq!(breaks(&verify_all_ways(&path)), vec![(3, "bad_json".to_owned())]);
    let found = open_recover_and_append(&path);
    assert_eq!(
        (found.torn_offset, found.torn_length, found.torn_lines, found.newline_added),
        (Some(torn_at), 1, 1, false)
    );
    let report = verify_all_ways(&path);
    assert_intact(&report);
    assert_eq!(warnings(&report), vec![(3, "recovered_torn_line".to_owned())]);
}

#[test]
fn nesting_deeper_than_the_parser_allows_is_bad_json_not_a_stack_overflow() {
    let dir = tempdir();
    let path = log_path(&dir);
    let deep = format!("{}\n{}", "[".repeat(200_000), "{\"a\":".repeat(200_000));
    let torn_at = records_then(&path, 1, deep.as_bytes());
    let report = verify_all_ways(&path);
    assert_eq!(breaks(&report), vec![(2, "bad_json".to_owned()), (3, "torn_last_line".to_owned())], "{report}");
    let found = open_recover_and_append(&path);
    assert_eq!((found.torn_offset, found.torn_lines, found.last_good_seq), (Some(torn_at), 2, Some(1)));
}

#[test]
fn a_tail_of_garbage_longer_than_the_tail_read_still_chains_from_the_last_good_record() {
    let dir = tempdir();
    let path = log_path(&dir);
    // More than two maximal records of junk: more than `open` reads backwards from the end.
    let garbage = vec![b'#'; 2 * MAX_RECORD_BYTES + 128 * 1024];
    let torn_at = records_then(&path, 3, &garbage);
    let found = open_recover_and_append(&path);
    assert_eq!((found.torn_offset, found.torn_length, found.torn_lines), (Some(torn_at), garbage.len() as u64, 1));
    assert_eq!((found.newline_added, found.last_good_seq, found.seq), (true, Some(3), 4));
    assert_eq!(record_at(&path, 4)["prev"], hash_at(&path, 2));
    let report = verify_all_ways(&path);
    assert_intact(&report);
    assert_eq!(warnings(&report), vec![(4, "recovered_torn_line".to_owned())], "{report}");
    assert_eq!(report.last_seq, Some(5));
}

#[test]
fn a_file_without_any_newline_longer_than_the_tail_read_chains_from_the_rotated_file() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 2);
    std::fs::rename(&path, crate::audit_log::rotated_path(&path, 1)).expect("rotate by hand");
    write_raw(&path, &vec![b'#'; 2 * MAX_RECORD_BYTES + 128 * 1024]);
    let found = open_recover_and_append(&path);
    assert_eq!(found.chained_from, Some(crate::audit_log::rotated_path(&path, 1)));
    assert_eq!((found.torn_offset, found.last_good_seq, found.seq), (Some(0), Some(2), 3));
}
