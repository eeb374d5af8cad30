use super::*;
use crate::auth::{PeerCred, Rights as SessionRights};

const T0: u64 = 1_700_000_000_000;

fn stranger() -> AuthEvent {
    AuthEvent {
        time_unix_ms: T0,
        peer: PeerCred { pid: 7, uid: 4321, gid: 4321 },
        stage: Stage::Hello,
        session: None,
        verb: None,
        decision: Outcome::Denied,
        rights: None,
        reason: Reason::PeerNotListed,
        retry_after_ms: None,
    }
}

fn session(n: u8) -> SessionId {
    SessionId::from_bytes(&[n; crate::auth::session_id::SESSION_ID_BYTES])
}

fn request(n: u8, verb: &str, decision: Outcome, time_unix_ms: u64) -> AuthEvent {
    AuthEvent {
        time_unix_ms,
        peer: PeerCred { pid: 9, uid: 5002, gid: 5002 },
        stage: Stage::Request,
        session: Some(session(n)),
        verb: Some(verb.to_owned()),
        decision,
        rights: Some(SessionRights::Read),
        reason: if decision == Outcome::Granted { Reason::SessionRights } else { Reason::InsufficientRights },
        retry_after_ms: None,
    }
}

fn session_end(n: u8) -> AuthEvent {
    AuthEvent {
        stage: Stage::Session,
        session: Some(session(n)),
        decision: Outcome::Ended,
        reason: Reason::SessionClosed,
        ..request(n, "list", Outcome::Granted, T0)
    }
}

#[test]
fn back_off_refusals_are_counted_into_the_peers_next_record() {
    let mut tally = AuthTally::default();
    let backing_off = AuthEvent { reason: Reason::Backoff, retry_after_ms: Some(100), ..stranger() };
    for _ in 0..30_000 {
        assert_eq!(tally.admit(&backing_off), None, "not one record per refused attempt");
    }
    let other_peer = AuthEvent { peer: PeerCred { pid: 8, uid: 99, gid: 99 }, ..stranger() };
    assert_eq!(tally.admit(&other_peer).map(|v| v.get("refused_during_backoff").is_some()), Some(false));
    let next = tally.admit(&stranger()).expect("written");
    assert_eq!(next["refused_during_backoff"], json!(30_000));
    assert_eq!(tally.admit(&stranger()).map(|v| v.get("refused_during_backoff").is_some()), Some(false));
}

#[test]
fn a_peer_that_never_returns_is_drained_with_its_count() {
    let mut tally = AuthTally::default();
    let backing_off = AuthEvent { reason: Reason::Backoff, ..stranger() };
    for _ in 0..7 {
        assert_eq!(tally.admit(&backing_off), None);
    }
    let drained = tally.drain();
    assert_eq!(drained, [json!({ "peer": { "uid": 4321 }, "reason": "backoff", "refused_during_backoff": 7 })]);
    assert!(tally.drain().is_empty(), "drained once");
}

#[test]
fn the_back_off_tally_is_bounded_and_then_writes_refusals_out() {
    let mut tally = AuthTally::default();
    let refusal = |uid| AuthEvent { peer: PeerCred { pid: 1, uid, gid: uid }, reason: Reason::Backoff, ..stranger() };
    for uid in 0..MAX_TALLIED as u32 {
        assert_eq!(tally.admit(&refusal(uid)), None);
    }
    assert!(tally.admit(&refusal(u32::MAX)).is_some(), "a full tally records instead of growing");
    assert_eq!(tally.refused_during_backoff.len(), MAX_TALLIED);
}

#[test]
fn granted_read_requests_are_counted_into_the_session_end_and_control_ones_written() {
    let mut tally = AuthTally::default();
    for _ in 0..10_000 {
        assert_eq!(tally.admit(&request(1, "list", Outcome::Granted, T0)), None);
    }
    let stop = tally.admit(&request(1, "stop", Outcome::Granted, T0)).expect("a control verb is written");
    assert_eq!(stop["verb"], "stop");
    assert!(tally.admit(&request(1, "no_such_verb", Outcome::Granted, T0)).is_some(), "unknown: written");
    let end = tally.admit(&session_end(1)).expect("the end is written");
    assert_eq!(end["read_requests_granted"], json!(10_000));
    assert!(tally.sessions.is_empty(), "the session's counts go with it");
}

#[test]
fn denied_requests_are_written_at_most_once_a_second_per_session_with_the_rest_counted() {
    let mut tally = AuthTally::default();
    let mut written = Vec::new();
    for ms in 0..3_000u64 {
        if let Some(record) = tally.admit(&request(2, "shutdown", Outcome::Denied, T0 + ms)) {
            written.push(record);
        }
    }
    assert_eq!(written.len(), 3, "one a second over three seconds");
    assert_eq!(written[0].get("denied_requests_not_written"), None);
    assert_eq!(written[1]["denied_requests_not_written"], json!(999));
    assert!(tally.admit(&request(3, "shutdown", Outcome::Denied, T0 + 1)).is_some(), "another session is apart");
    let end = tally.admit(&session_end(2)).expect("end");
    assert_eq!(end["denied_requests_not_written"], json!(999), "the last second's are on the end record");
}

#[test]
fn the_session_table_is_bounded_and_then_writes_requests_out() {
    let mut tally = AuthTally::default();
    for n in 0..MAX_TALLIED {
        let mut event = request(0, "list", Outcome::Granted, T0);
        let bytes: [u8; 16] = u128::try_from(n).unwrap_or_default().to_be_bytes();
        event.session = Some(SessionId::from_bytes(&bytes));
        assert_eq!(tally.admit(&event), None);
    }
    assert!(tally.admit(&request(0xff, "list", Outcome::Granted, T0)).is_some(), "a full table records");
    assert_eq!(tally.sessions.len(), MAX_TALLIED);
}
