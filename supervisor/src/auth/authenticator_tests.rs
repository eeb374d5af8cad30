use super::*;
use crate::auth::audit_event::MemorySink;
use crate::auth::peer::peer_cred;
use crate::auth::session_id::{OsRandom, SessionId, SESSION_ID_BYTES};
use crate::clock::FakeClock;
use std::sync::atomic::{AtomicU8, Ordering};
use wf_policy::security_policy::{FailedAuthBackoff, RateLimit};

const TOKEN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const WRONG: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
const ADMIN: PeerCred = PeerCred { pid: 100, uid: 1000, gid: 1000 };
const VIEWER: PeerCred = PeerCred { pid: 200, uid: 2000, gid: 2000 };
const STRANGER: PeerCred = PeerCred { pid: 300, uid: 3000, gid: 3000 };
const TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Ids 01…01, 02…02, … so tests can predict them.
#[derive(Default)]
struct CountingIds(AtomicU8);

impl IdSource for CountingIds {
    fn fill(&self, buf: &mut [u8; SESSION_ID_BYTES]) -> io::Result<()> {
        let n = self.0.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        buf.fill(n);
        Ok(())
    }
}

struct FixedIds;

impl IdSource for FixedIds {
    fn fill(&self, buf: &mut [u8; SESSION_ID_BYTES]) -> io::Result<()> {
        buf.fill(7);
        Ok(())
    }
}

struct BrokenIds;

impl IdSource for BrokenIds {
    fn fill(&self, _: &mut [u8; SESSION_ID_BYTES]) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }
}

fn policy() -> AuthenticationPolicy {
    AuthenticationPolicy {
        allowed_uids: vec![1000],
        read_only_uids: vec![2000],
        session_timeout_minutes: 10,
        rate_limit: RateLimit { requests_per_second: 1, burst: 3 },
        failed_auth: FailedAuthBackoff { max_failures: 2, backoff_initial_ms: 100, backoff_max_ms: 400 },
        ..AuthenticationPolicy::default()
    }
}

fn with_token(mut policy: AuthenticationPolicy) -> AuthenticationPolicy {
    policy.token_sha256 = vec![TokenDigest::of_token(TOKEN).expect("valid token").to_hex()];
    policy
}

struct Fixture {
    auth: Authenticator,
    clock: Arc<FakeClock>,
    sink: Arc<MemorySink>,
}

fn fixture_with(policy: &AuthenticationPolicy, limits: AuthLimits, ids: Arc<dyn IdSource>) -> Fixture {
    let clock = Arc::new(FakeClock::starting_at_unix_ms(1_700_000_000_000));
    let sink = Arc::new(MemorySink::new());
    let auth = Authenticator::new(policy, limits, clock.clone(), sink.clone(), ids);
    Fixture { auth, clock, sink }
}

fn fixture(policy: &AuthenticationPolicy) -> Fixture {
    fixture_with(policy, AuthLimits::default(), Arc::new(CountingIds::default()))
}

impl Fixture {
    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    fn last_event(&self) -> AuthEvent {
        self.sink.events().pop().expect("an event was recorded")
    }

    fn reasons(&self) -> Vec<Reason> {
        self.sink.events().iter().map(|e| e.reason).collect()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn authenticator_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Authenticator>();
}

#[test]
fn hello_grants_a_session_and_audits_it() {
    let f = fixture(&policy());
    let session = f.auth.hello(ADMIN, None).expect("granted");
    assert_eq!(session, Session { id: SessionId::from_bytes(&[1; 16]), peer: ADMIN, rights: Rights::Control });
    assert_eq!(f.auth.session_count(), 1);
    assert_eq!(
        f.last_event(),
        AuthEvent {
            time_unix_ms: 1_700_000_000_000,
            peer: ADMIN,
            stage: Stage::Hello,
            session: Some(session.id),
            verb: None,
            decision: Outcome::Granted,
            rights: Some(Rights::Control),
            reason: Reason::AllowedUid,
            retry_after_ms: None,
        }
    );
}

#[test]
fn unlisted_peer_is_refused_and_audited() {
    let f = fixture(&policy());
    let err = f.auth.hello(STRANGER, None).expect_err("refused");
    assert!(matches!(err, AuthError::NotAuthorised { reason: Reason::PeerNotListed }));
    assert_eq!(err.code(), "not_authorised");
    let event = f.last_event();
    assert_eq!((event.peer, event.decision, event.reason), (STRANGER, Outcome::Denied, Reason::PeerNotListed));
    assert_eq!(f.auth.session_count(), 0);
}

#[test]
fn wrong_token_is_refused_with_growing_then_capped_delay() {
    let f = fixture(&with_token(policy()));
    // Two free failures.
    for _ in 0..2 {
        assert!(matches!(f.auth.hello(ADMIN, Some(WRONG)), Err(AuthError::NotAuthorised { .. })));
    }
    let mut waits = Vec::new();
    for _ in 0..5 {
        assert!(matches!(f.auth.hello(ADMIN, Some(WRONG)), Err(AuthError::NotAuthorised { .. })));
        let Err(AuthError::Backoff { retry_after_ms }) = f.auth.hello(ADMIN, Some(WRONG)) else {
            panic!("expected back-off")
        };
        waits.push(retry_after_ms);
        f.advance(ms(retry_after_ms));
    }
    assert_eq!(waits, [100, 200, 400, 400, 400]);
}

#[test]
fn backoff_refuses_even_a_correct_token_and_is_not_a_failure() {
    let f = fixture(&with_token(policy()));
    for _ in 0..3 {
        let _ = f.auth.hello(ADMIN, Some(WRONG));
    }
    let err = f.auth.hello(ADMIN, Some(TOKEN)).expect_err("backing off");
    assert_eq!((err.code(), err.retry_after_ms()), ("auth_backoff", Some(100)));
    let event = f.last_event();
    assert_eq!((event.reason, event.retry_after_ms), (Reason::Backoff, Some(100)));
    // Polling during the wait did not grow it.
    for _ in 0..10 {
        let _ = f.auth.hello(ADMIN, Some(TOKEN));
    }
    f.advance(ms(100));
    assert!(f.auth.hello(ADMIN, Some(TOKEN)).is_ok());
}

#[test]
fn success_resets_the_failure_count() {
    let f = fixture(&with_token(policy()));
    for _ in 0..3 {
        let _ = f.auth.hello(ADMIN, Some(WRONG));
    }
    f.advance(ms(100));
    f.auth.hello(ADMIN, Some(TOKEN)).expect("granted");
    // Back to free failures: a wrong token now is refused without imposing a wait.
    assert!(matches!(f.auth.hello(ADMIN, Some(WRONG)), Err(AuthError::NotAuthorised { .. })));
    assert!(matches!(f.auth.hello(ADMIN, Some(WRONG)), Err(AuthError::NotAuthorised { .. })));
    assert!(f.auth.hello(ADMIN, Some(TOKEN)).is_ok());
}

#[test]
fn one_peer_backing_off_does_not_block_another_uid() {
    let f = fixture(&policy());
    for _ in 0..3 {
        let _ = f.auth.hello(STRANGER, None);
    }
    assert!(matches!(f.auth.hello(STRANGER, None), Err(AuthError::Backoff { .. })));
    assert!(f.auth.hello(ADMIN, None).is_ok());
}

#[test]
fn read_session_may_read_but_not_control() {
    let f = fixture(&policy());
    let viewer = f.auth.hello(VIEWER, None).expect("granted");
    assert_eq!(viewer.rights, Rights::Read);
    f.auth.authorise_request(&viewer, "status", Rights::Read).expect("read allowed");
    let err = f.auth.authorise_request(&viewer, "stop", Rights::Control).expect_err("control refused");
    assert!(matches!(err, AuthError::NotAuthorised { reason: Reason::InsufficientRights }));
    let event = f.last_event();
    assert_eq!(event.verb.as_deref(), Some("stop"));
    assert_eq!(
        (event.decision, event.reason, event.rights),
        (Outcome::Denied, Reason::InsufficientRights, Some(Rights::Read))
    );
}

#[test]
fn control_session_may_do_both_and_each_request_is_audited() {
    let f = fixture(&policy());
    let admin = f.auth.hello(ADMIN, None).expect("granted");
    f.auth.authorise_request(&admin, "list", Rights::Read).expect("read");
    f.auth.authorise_request(&admin, "start", Rights::Control).expect("control");
    let event = f.last_event();
    assert_eq!(event.verb.as_deref(), Some("start"));
    assert_eq!((event.stage, event.decision, event.reason), (Stage::Request, Outcome::Granted, Reason::SessionRights));
    assert_eq!(f.sink.events().len(), 3, "hello + two requests");
}

#[test]
fn idle_session_expires_exactly_at_the_timeout() {
    let f = fixture(&policy());
    let admin = f.auth.hello(ADMIN, None).expect("granted");
    f.advance(TIMEOUT - Duration::from_nanos(1));
    f.auth.authorise_request(&admin, "list", Rights::Read).expect("alive just before the timeout");
    f.advance(TIMEOUT);
    let err = f.auth.authorise_request(&admin, "list", Rights::Read).expect_err("expired");
    assert_eq!(err.code(), "session_expired");
    assert_eq!(f.last_event().reason, Reason::SessionIdle);
    assert_eq!(f.auth.session_count(), 0);
    assert!(f.auth.authorise_request(&admin, "list", Rights::Read).is_err());
    assert_eq!(f.last_event().reason, Reason::UnknownSession);
}

#[test]
fn keep_alive_holds_off_expiry_without_a_request_and_fails_once_gone() {
    let f = fixture(&policy());
    let admin = f.auth.hello(ADMIN, None).expect("granted");
    f.advance(TIMEOUT / 2);
    assert!(f.auth.keep_alive(&admin));
    f.advance(TIMEOUT / 2 + ms(1));
    assert!(f.auth.sweep_expired().is_empty(), "kept alive half a timeout ago");
    f.advance(TIMEOUT);
    assert!(!f.auth.keep_alive(&admin), "idle a whole timeout: expired");
    assert_eq!(f.auth.session_count(), 0);
}

#[test]
fn sweep_removes_idle_sessions_and_audits_them() {
    let f = fixture(&policy());
    let old = f.auth.hello(ADMIN, None).expect("granted");
    f.advance(TIMEOUT / 2);
    let young = f.auth.hello(VIEWER, None).expect("granted");
    f.advance(TIMEOUT / 2);
    assert_eq!(f.auth.sweep_expired(), vec![old.clone()]);
    let event = f.last_event();
    assert_eq!((event.stage, event.decision, event.reason), (Stage::Session, Outcome::Ended, Reason::SessionIdle));
    assert_eq!(event.session, Some(old.id));
    assert!(f.auth.authorise_request(&young, "list", Rights::Read).is_ok());
}

#[test]
fn requests_are_rate_limited_per_session_and_refill() {
    let f = fixture(&policy());
    let a = f.auth.hello(ADMIN, None).expect("granted");
    let b = f.auth.hello(ADMIN, None).expect("granted");
    for _ in 0..3 {
        f.auth.authorise_request(&a, "list", Rights::Read).expect("burst");
    }
    let err = f.auth.authorise_request(&a, "list", Rights::Read).expect_err("limited");
    assert_eq!((err.code(), err.retry_after_ms()), ("rate_limited", Some(1_000)));
    assert_eq!(f.last_event().reason, Reason::RateLimited);
    f.auth.authorise_request(&b, "list", Rights::Read).expect("another session has its own bucket");
    f.advance(Duration::from_secs(1));
    f.auth.authorise_request(&a, "list", Rights::Read).expect("refilled");
}

#[test]
fn session_table_is_bounded_and_reclaims_idle_sessions() {
    let limits = AuthLimits { max_sessions: 2, max_tracked_peers: 16 };
    let f = fixture_with(&policy(), limits, Arc::new(CountingIds::default()));
    f.auth.hello(ADMIN, None).expect("first");
    f.auth.hello(ADMIN, None).expect("second");
    let err = f.auth.hello(ADMIN, None).expect_err("full");
    assert_eq!(err.code(), "too_many_sessions");
    assert_eq!(f.last_event().reason, Reason::TooManySessions);
    f.advance(TIMEOUT);
    f.auth.hello(ADMIN, None).expect("idle sessions were swept to make room");
    assert_eq!(f.auth.session_count(), 1);
    let reasons = f.reasons();
    assert_eq!(reasons.iter().filter(|r| **r == Reason::SessionIdle).count(), 2);
}

#[test]
fn backoff_table_is_bounded() {
    let limits = AuthLimits { max_sessions: 16, max_tracked_peers: 4 };
    let f = fixture_with(&policy(), limits, Arc::new(CountingIds::default()));
    for uid in 10_000..10_100 {
        let _ = f.auth.hello(PeerCred { pid: 1, uid, gid: uid }, None);
    }
    assert_eq!(f.auth.lock().failures.len(), 4);
}

#[test]
fn closing_a_session_ends_it() {
    let f = fixture(&policy());
    let admin = f.auth.hello(ADMIN, None).expect("granted");
    assert_eq!(f.auth.close(&admin), Some(admin.clone()));
    assert_eq!(f.last_event().reason, Reason::SessionClosed);
    assert_eq!(f.auth.close(&admin), None);
    assert_eq!(f.auth.authorise_request(&admin, "list", Rights::Read).map_err(|e| e.code()), Err("session_expired"));
}

#[test]
fn a_session_presented_with_another_peer_is_unknown() {
    let f = fixture(&policy());
    let admin = f.auth.hello(ADMIN, None).expect("granted");
    let forged = Session { peer: VIEWER, ..admin.clone() };
    assert_eq!(
        f.auth.authorise_request(&forged, "stop", Rights::Control).map_err(|e| e.code()),
        Err("session_expired")
    );
    assert_eq!(f.last_event().reason, Reason::UnknownSession);
    assert_eq!(f.auth.close(&forged), None);
    assert!(f.auth.authorise_request(&admin, "stop", Rights::Control).is_ok());
}

#[test]
fn a_forged_rights_field_is_ignored() {
    let f = fixture(&policy());
    let viewer = f.auth.hello(VIEWER, None).expect("granted");
    let forged = Session { rights: Rights::Control, ..viewer };
    assert!(f.auth.authorise_request(&forged, "stop", Rights::Control).is_err());
}

#[test]
fn reload_revokes_regrants_and_keeps() {
    let f = fixture(&policy());
    let admin = f.auth.hello(ADMIN, None).expect("granted");
    let viewer = f.auth.hello(VIEWER, None).expect("granted");
    let promoted = AuthenticationPolicy { allowed_uids: vec![2000], read_only_uids: vec![], ..policy() };
    assert_eq!(f.auth.reload_policy(&promoted), vec![admin.clone()]);
    assert_eq!(f.auth.authorise_request(&admin, "list", Rights::Read).map_err(|e| e.code()), Err("session_expired"));
    f.auth.authorise_request(&viewer, "stop", Rights::Control).expect("promoted to control");
    let reasons = f.reasons();
    assert!(reasons.contains(&Reason::PolicyRevoked));
    assert!(reasons.contains(&Reason::PolicyRegranted));
}

#[test]
fn reload_that_adds_tokens_revokes_sessions_without_one() {
    let f = fixture(&policy());
    let plain = f.auth.hello(ADMIN, None).expect("granted");
    let tokened = f.auth.hello(ADMIN, Some(TOKEN)).expect("granted; token ignored for now");
    let revoked = f.auth.reload_policy(&with_token(policy()));
    assert_eq!(revoked, vec![plain]);
    f.auth.authorise_request(&tokened, "list", Rights::Read).expect("its token is listed now");
}

#[test]
fn reload_applies_new_timeout_and_rate_limit() {
    let f = fixture(&policy());
    let admin = f.auth.hello(ADMIN, None).expect("granted");
    let tighter = AuthenticationPolicy {
        session_timeout_minutes: 1,
        rate_limit: RateLimit { requests_per_second: 1, burst: 1 },
        ..policy()
    };
    f.auth.reload_policy(&tighter);
    f.auth.authorise_request(&admin, "list", Rights::Read).expect("one token left");
    assert_eq!(f.auth.authorise_request(&admin, "list", Rights::Read).map_err(|e| e.code()), Err("rate_limited"));
    f.advance(Duration::from_secs(60));
    assert_eq!(f.auth.sweep_expired(), vec![admin]);
}

#[test]
fn broken_randomness_refuses_without_counting_a_failure() {
    let f = fixture_with(&policy(), AuthLimits::default(), Arc::new(BrokenIds));
    for _ in 0..5 {
        let err = f.auth.hello(ADMIN, None).expect_err("no id");
        assert_eq!(err.code(), "internal_error");
    }
    assert_eq!(f.last_event().reason, Reason::EntropyUnavailable);
    assert_eq!(f.auth.session_count(), 0);
    assert!(f.auth.lock().failures.is_empty());
}

#[test]
fn a_repeated_session_id_is_refused_not_shared() {
    let f = fixture_with(&policy(), AuthLimits::default(), Arc::new(FixedIds));
    let first = f.auth.hello(ADMIN, None).expect("granted");
    assert_eq!(f.auth.hello(VIEWER, None).map_err(|e| e.code()), Err("internal_error"));
    assert_eq!(f.auth.session_count(), 1);
    f.auth.authorise_request(&first, "stop", Rights::Control).expect("first session untouched");
}

#[test]
fn audit_events_never_contain_the_token_or_its_hash() {
    let p = with_token(policy());
    let f = fixture(&p);
    let session = f.auth.hello(ADMIN, Some(TOKEN)).expect("granted");
    let _ = f.auth.hello(ADMIN, Some(WRONG));
    f.auth.authorise_request(&session, "list", Rights::Read).expect("read");
    let all = serde_json::to_string(&f.sink.events()).expect("serialise");
    assert!(!all.contains(TOKEN) && !all.contains(WRONG) && !all.contains(&p.token_sha256[0]));
}

#[test]
fn every_decision_reaches_the_sink() {
    let f = fixture(&policy());
    let admin = f.auth.hello(ADMIN, None).expect("granted");
    let _ = f.auth.hello(STRANGER, None);
    let _ = f.auth.authorise_request(&admin, "list", Rights::Read);
    let _ = f.auth.close(&admin);
    assert_eq!(f.reasons(), [Reason::AllowedUid, Reason::PeerNotListed, Reason::SessionRights, Reason::SessionClosed]);
}

#[test]
fn real_socket_peer_with_real_clock_and_randomness() {
    let (ours, _theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let peer = peer_cred(&ours).expect("SO_PEERCRED");
    let policy = AuthenticationPolicy { allowed_uids: vec![peer.uid], ..AuthenticationPolicy::default() };
    let sink = Arc::new(MemorySink::new());
    let auth = Authenticator::new(
        &policy,
        AuthLimits::default(),
        Arc::new(crate::clock::SystemClock::new()),
        sink.clone(),
        Arc::new(OsRandom),
    );
    let session = auth.hello(peer, None).expect("granted");
    assert_eq!(session.peer, peer);
    auth.authorise_request(&session, "shutdown", Rights::Control).expect("control");
    assert_eq!(sink.events().len(), 2);
}
