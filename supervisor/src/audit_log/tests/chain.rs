use super::*;
use crate::audit_log::record::{sha256_hex, GENESIS_PREV};
use crate::audit_log::{AuditLogError, Status, MAX_EVENT_DEPTH};
use crate::auth::{AuditSink, AuthEvent, Outcome, PeerCred, Reason, Stage};
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn the_first_record_has_the_documented_canonical_form_and_hash() {
    let dir = tempdir();
    let path = log_path(&dir);
    let log = open(&path);
    let event = json!({"z": 1, "a": {"y": [true, null, "x\"\\\n\u{1}é/"], "b": -2}, "M": 0.5});
    assert_eq!(log.append("policy_load", event).expect("append"), 1);

    let body = format!(
        r#"{{"event":{{"M":0.5,"a":{{"b":-2,"y":[true,null,"x\"\\\n\u0001é/"]}},"z":1}},"kind":"policy_load","prev":"{GENESIS_PREV}","seq":1,"time_ms":{START_MS}}}"#
    );
    let hash = sha256_hex(body.as_bytes());
    let expected = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    assert_eq!(read_lines(&path), vec![expected]);
    assert_eq!(log.last_hash(), hash);
    assert_eq!(log.last_seq(), 1);
}

#[test]
fn a_long_chain_links_every_record_to_the_one_before() {
    let dir = tempdir();
    let path = log_path(&dir);
    let clock = clock();
    let log = AuditLog::open(&path, NO_ROTATION, 5, clock.clone()).expect("open");
    for n in 1..=500 {
        clock.advance(Duration::from_millis(3));
        assert_eq!(log.append("violation", event(n)).expect("append"), n);
    }
    let lines = read_lines(&path);
    assert_eq!(lines.len(), 500);
    let mut prev = GENESIS_PREV.to_owned();
    for (i, line) in lines.iter().enumerate() {
        let record: Value = serde_json::from_str(line).expect("json");
        assert_eq!(record["seq"], json!(i as u64 + 1));
        assert_eq!(record["prev"], json!(prev));
        assert_eq!(record["time_ms"], json!(START_MS + 3 * (i as u64 + 1)));
        prev = record["hash"].as_str().expect("hash").to_owned();
    }
    let report = verify_one(&path);
    assert_intact(&report);
    assert_eq!(report.records, 500);
    assert_eq!(report.last_seq, Some(500));
    assert_eq!(report.last_hash.as_deref(), Some(prev.as_str()));
    assert_eq!(report.exit_code(), 0);
    let notes: Vec<_> = report.findings.iter().filter(|f| f.severity == Severity::Note).collect();
    assert_eq!(notes.len(), 1);
    assert!(matches!(notes[0].problem, Problem::ChainStart { genesis: true, seq: 1, .. }));
}

#[test]
fn reopening_after_a_clean_close_continues_the_chain() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 3);
    let log = open(&path);
    assert!(log.recovery().is_none());
    assert_eq!(log.last_seq(), 3);
    assert_eq!(log.append("stop", event(4)).expect("append"), 4);
    drop(log);
    let report = verify_one(&path);
    assert_intact(&report);
    assert_eq!(report.records, 4);
    assert!(report.findings.iter().all(|f| f.severity == Severity::Note));
}

#[test]
fn appends_from_eight_threads_form_one_valid_chain() {
    let dir = tempdir();
    let path = log_path(&dir);
    let log = Arc::new(open(&path));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                (0..150).map(|n| log.append("spawn", json!({"thread": t, "n": n})).expect("append")).collect::<Vec<_>>()
            })
        })
        .collect();
    let seqs: BTreeSet<u64> = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
    assert_eq!(seqs, (1..=1200).collect::<BTreeSet<u64>>());
    let report = verify_one(&path);
    assert_intact(&report);
    assert_eq!(report.records, 1200);
    assert_eq!(read_lines(&path).len(), 1200);
}

type ErrorCheck = fn(&AuditLogError) -> bool;

#[test]
fn malformed_appends_are_refused_and_counted_without_writing() {
    let dir = tempdir();
    let path = log_path(&dir);
    let log = open(&path);
    let deep = (0..MAX_EVENT_DEPTH).fold(json!(1), |inner, _| json!({ "d": inner }));
    let cases: Vec<(&str, Value, ErrorCheck)> = vec![
        ("spawn", json!([1, 2]), |e| matches!(e, AuditLogError::EventNotObject { .. })),
        ("spawn", json!("text"), |e| matches!(e, AuditLogError::EventNotObject { .. })),
        ("", json!({}), |e| matches!(e, AuditLogError::BadKind { .. })),
        ("Spawn", json!({}), |e| matches!(e, AuditLogError::BadKind { .. })),
        ("spawn\n{", json!({}), |e| matches!(e, AuditLogError::BadKind { .. })),
        ("audit_log_recovered", json!({}), |e| matches!(e, AuditLogError::ReservedKind { .. })),
        ("spawn", deep, |e| matches!(e, AuditLogError::EventTooDeep { .. })),
    ];
    let count = cases.len() as u64;
    for (kind, event, expected) in cases {
        let err = log.append(kind, event).expect_err("refused");
        assert!(expected(&err), "unexpected error for kind {kind:?}: {err}");
    }
    assert_eq!(log.write_errors(), count);
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), 0);
    let just_deep_enough = (0..MAX_EVENT_DEPTH - 1).fold(json!(1), |inner, _| json!({ "d": inner }));
    assert_eq!(log.append("spawn", just_deep_enough).expect("at the depth limit"), 1);
    assert_intact(&verify_one(&path));
}

#[test]
fn a_record_over_the_size_cap_is_refused_with_the_path() {
    let dir = tempdir();
    let path = log_path(&dir);
    let log = open(&path);
    let huge = "x".repeat(crate::audit_log::MAX_RECORD_BYTES);
    let err = log.append("spawn", json!({ "blob": huge })).expect_err("too large");
    assert!(matches!(err, AuditLogError::RecordTooLarge { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(log.append("spawn", event(1)).expect("the chain is untouched"), 1);
}

fn auth_event(verb: String) -> AuthEvent {
    AuthEvent {
        time_unix_ms: START_MS,
        peer: PeerCred { pid: 7, uid: 1000, gid: 1000 },
        stage: Stage::Request,
        session: None,
        verb: Some(verb),
        decision: Outcome::Denied,
        rights: None,
        reason: Reason::PeerNotListed,
        retry_after_ms: None,
    }
}

#[test]
fn auth_decisions_are_recorded_with_kind_auth() {
    let dir = tempdir();
    let path = log_path(&dir);
    let log = open(&path);
    let sink: &dyn AuditSink = &log;
    sink.record(auth_event("stop".to_owned()));
    let record: Value = serde_json::from_str(&read_lines(&path)[0]).expect("json");
    assert_eq!(record["kind"], json!("auth"));
    assert_eq!(record["event"], serde_json::to_value(auth_event("stop".to_owned())).expect("value"));
    assert_eq!(log.write_errors(), 0);
}

#[test]
fn a_failing_auth_record_is_counted_not_panicked() {
    let dir = tempdir();
    let path = log_path(&dir);
    let log = open(&path);
    let too_big = "v".repeat(crate::audit_log::MAX_RECORD_BYTES);
    log.record(auth_event(too_big.clone()));
    log.record(auth_event(too_big));
    assert_eq!(log.write_errors(), 2);
    log.record(auth_event("start".to_owned()));
    assert_eq!(log.write_errors(), 2);
    assert_eq!(log.last_seq(), 1);
}

#[test]
fn sync_succeeds_on_an_open_log() {
    let dir = tempdir();
    let path = log_path(&dir);
    let log = open(&path);
    log.append("spawn", event(1)).expect("append");
    log.sync().expect("sync");
    assert_eq!(verify_one(&path).status, Status::Intact);
}
