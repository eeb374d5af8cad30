use std::time::Duration;

use wf_policy::manifest::{Restart, RestartPolicy};

use super::*;
use crate::clock::FakeClock;

const T0_MS: u64 = 1_700_000_000_000;

fn registry(clock: &FakeClock) -> Registry<&FakeClock> {
    Registry::new(clock)
}

fn on_failure(max_restarts: u32, backoff_ms: u64) -> RestartRule {
    RestartRule::from_manifest(Some(&Restart { policy: RestartPolicy::OnFailure, max_restarts, backoff_ms }))
}

fn load(reg: &mut Registry<&FakeClock>, name: &str, rule: RestartRule) {
    let path = format!("/plugins/{name}/manifest.json");
    assert!(reg.insert(name, "1.0.0", Path::new(&path), rule).is_ok());
}

fn running(reg: &mut Registry<&FakeClock>, name: &str, pid: u32) {
    assert_eq!(reg.start(name, &format!("{name}-run")), Ok(PluginState::Starting));
    assert_eq!(reg.launched(name, pid), Ok(PluginState::Running));
}

#[test]
fn names_are_unique() {
    let clock = FakeClock::starting_at_unix_ms(T0_MS);
    let mut reg = registry(&clock);
    load(&mut reg, "alpha", RestartRule::never());
    let err = reg.insert("alpha", "2.0.0", Path::new("/other"), RestartRule::never()).err();
    assert_eq!(err.as_ref().map(RegistryError::code), Some("already_exists"));
    assert_eq!(reg.get("alpha").map(|e| e.version().to_owned()), Ok("1.0.0".to_owned()));
}

#[test]
fn unknown_names_are_no_such_plugin_for_every_operation() {
    let clock = FakeClock::default();
    let mut reg = registry(&clock);
    let ticket = RestartTicket(0);
    let codes = [
        reg.get("ghost").map(|_| ()).err(),
        reg.start("ghost", "i").map(|_| ()).err(),
        reg.launched("ghost", 1).map(|_| ()).err(),
        reg.stop("ghost").map(|_| ()).err(),
        reg.exited("ghost", Exit::Code(0)).map(|_| ()).err(),
        reg.restart_due("ghost", ticket, "i").map(|_| ()).err(),
        reg.push_log("ghost", LogStream::Stdout, b"x").map(|_| ()).err(),
        reg.remove("ghost").map(|_| ()).err(),
    ];
    for code in codes {
        assert_eq!(code.as_ref().map(RegistryError::code), Some("no_such_plugin"));
    }
}

#[test]
fn the_number_of_plugins_is_bounded() {
    let clock = FakeClock::default();
    let mut reg = Registry::with_limits(&clock, 2, LogLimits::default());
    load(&mut reg, "a", RestartRule::never());
    load(&mut reg, "b", RestartRule::never());
    let err = reg.insert("c", "1", Path::new("/c"), RestartRule::never()).err();
    assert_eq!(err, Some(RegistryError::Full { max: 2 }));
    assert_eq!(err.map(|e| e.code()), Some("refused"));
    assert!(reg.remove("a").is_ok());
    load(&mut reg, "c", RestartRule::never());
    assert_eq!(Registry::new(&clock).max_plugins, MAX_PLUGINS);
}

#[test]
fn list_rows_are_sorted_and_have_stable_keys() {
    let clock = FakeClock::starting_at_unix_ms(T0_MS);
    let mut reg = registry(&clock);
    load(&mut reg, "zeta", RestartRule::never());
    load(&mut reg, "alpha", RestartRule::never());
    clock.advance(Duration::from_secs(2));
    running(&mut reg, "alpha", 4242);
    let rows = reg.list();
    assert_eq!(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["alpha", "zeta"]);
    let json = serde_json::to_value(&rows[0]).unwrap_or_default();
    assert_eq!(json["name"], "alpha");
    assert_eq!(json["state"], "running");
    assert_eq!(json["pid"], 4242);
    assert_eq!(json["restarts"], 0);
    assert_eq!(json["since"], T0_MS + 2_000);
    assert_eq!(json["instance"], "alpha-run");
    let idle = serde_json::to_value(&rows[1]).unwrap_or_default();
    assert_eq!(
        (idle["state"].as_str(), idle["pid"].is_null(), idle["since"].as_u64()),
        (Some("validated"), true, Some(T0_MS))
    );
}

#[test]
fn a_stop_keeps_the_pid_until_the_process_ends_and_ends_as_stopped() {
    let clock = FakeClock::starting_at_unix_ms(T0_MS);
    let mut reg = registry(&clock);
    load(&mut reg, "p", on_failure(5, 100));
    running(&mut reg, "p", 77);
    assert_eq!(reg.stop("p"), Ok(PluginState::Stopping));
    assert_eq!(reg.get("p").map(PluginEntry::pid), Ok(Some(77)));
    assert_eq!(reg.active_names(), ["p"]);
    let outcome = reg.exited("p", Exit::Signal(libc::SIGKILL));
    assert_eq!(outcome, Ok(ExitOutcome { state: PluginState::Stopping, next: NextAction::None, ticket: None }));
    assert_eq!(reg.get("p").map(PluginEntry::pid), Ok(None));
    assert_eq!(reg.stop_completed("p"), Ok(PluginState::Stopped));
    assert!(reg.active_names().is_empty());
    assert_eq!(reg.get("p").map(PluginEntry::last_exit), Ok(Some(Exit::Signal(libc::SIGKILL))));
}

#[test]
fn since_moves_only_when_the_state_changes() {
    let clock = FakeClock::starting_at_unix_ms(T0_MS);
    let mut reg = registry(&clock);
    load(&mut reg, "p", RestartRule::never());
    running(&mut reg, "p", 1);
    clock.advance(Duration::from_secs(5));
    assert!(reg.stop("p").is_ok());
    clock.advance(Duration::from_secs(5));
    assert!(reg.stop("p").is_ok());
    assert_eq!(reg.get("p").map(PluginEntry::since_ms), Ok(T0_MS + 5_000));
}

#[test]
fn a_crash_loop_restarts_with_backoff_then_stays_crashed_at_the_cap() {
    let clock = FakeClock::starting_at_unix_ms(T0_MS);
    let mut reg = registry(&clock);
    load(&mut reg, "flaky", on_failure(2, 100));
    running(&mut reg, "flaky", 10);
    let mut delays = Vec::new();
    for pid in 11..13 {
        let outcome = reg.exited("flaky", Exit::Code(3));
        let Ok(ExitOutcome { state, next: NextAction::Restart { after }, ticket: Some(ticket) }) = outcome else {
            panic!("expected a restart, got {outcome:?}");
        };
        assert_eq!(state, PluginState::Crashed);
        delays.push(after);
        clock.advance(after);
        assert_eq!(reg.restart_due("flaky", ticket, "flaky-next"), Ok(PluginState::Starting));
        assert_eq!(reg.launched("flaky", pid), Ok(PluginState::Running));
    }
    assert_eq!(delays, [Duration::from_millis(100), Duration::from_millis(200)]);
    let last = reg.exited("flaky", Exit::Signal(libc::SIGSEGV));
    assert_eq!(last, Ok(ExitOutcome { state: PluginState::Crashed, next: NextAction::GiveUp, ticket: None }));
    let row = reg.get("flaky").map(PluginEntry::row);
    assert_eq!(
        row.map(|r| (r.state, r.pid, r.restarts, r.instance)),
        Ok((PluginState::Crashed, None, 2, Some("flaky-next".to_owned())))
    );
}

#[test]
fn an_explicit_start_resets_the_restart_count_and_the_loop() {
    let clock = FakeClock::default();
    let mut reg = registry(&clock);
    load(&mut reg, "p", on_failure(1, 100));
    running(&mut reg, "p", 1);
    let ticket = reg.exited("p", Exit::Code(1)).ok().and_then(|o| o.ticket);
    assert!(ticket.is_some());
    assert!(ticket.is_some_and(|t| reg.restart_due("p", t, "i2").is_ok()));
    assert!(reg.launched("p", 2).is_ok());
    assert_eq!(reg.exited("p", Exit::Code(1)).map(|o| o.next), Ok(NextAction::GiveUp));
    assert_eq!(reg.get("p").map(PluginEntry::restarts), Ok(1));
    running(&mut reg, "p", 3);
    assert_eq!(reg.get("p").map(PluginEntry::restarts), Ok(0));
    assert!(matches!(reg.exited("p", Exit::Code(1)).map(|o| o.next), Ok(NextAction::Restart { .. })));
}

#[test]
fn a_restart_timer_voided_by_a_later_change_is_refused() {
    let clock = FakeClock::default();
    let mut reg = registry(&clock);
    load(&mut reg, "p", on_failure(5, 100));
    running(&mut reg, "p", 1);
    let first = reg.exited("p", Exit::Code(1)).ok().and_then(|o| o.ticket);
    // The operator starts it by hand during the back-off, and it crashes again.
    running(&mut reg, "p", 2);
    let second = reg.exited("p", Exit::Code(1)).ok().and_then(|o| o.ticket);
    let (Some(first), Some(second)) = (first, second) else { panic!("both crashes schedule restarts") };
    assert_ne!(first, second);
    let stale = reg.restart_due("p", first, "x");
    assert_eq!(stale.as_ref().map_err(RegistryError::code), Err("conflict"));
    assert_eq!(stale.err().and_then(|e| e.state()), Some(PluginState::Crashed));
    assert_eq!(reg.restart_due("p", second, "x"), Ok(PluginState::Starting));
    // A ticket is good for one restart only.
    assert!(reg.launched("p", 3).is_ok());
    assert!(reg.restart_due("p", second, "x").is_err());
}

#[test]
fn ends_after_a_stop_request_are_never_restarted_even_under_always() {
    let clock = FakeClock::default();
    let mut reg = registry(&clock);
    let always =
        RestartRule::from_manifest(Some(&Restart { policy: RestartPolicy::Always, max_restarts: 9, backoff_ms: 1 }));
    load(&mut reg, "p", always);
    running(&mut reg, "p", 1);
    assert!(reg.stop("p").is_ok());
    assert_eq!(reg.exited("p", Exit::Code(1)).map(|o| (o.next, o.ticket)), Ok((NextAction::None, None)));
}

#[test]
fn a_launch_reported_after_a_stop_request_still_records_the_pid_to_kill() {
    let clock = FakeClock::default();
    let mut reg = registry(&clock);
    load(&mut reg, "p", RestartRule::never());
    assert!(reg.start("p", "i").is_ok());
    assert!(reg.stop("p").is_ok());
    assert_eq!(reg.launched("p", 99), Ok(PluginState::Stopping));
    assert_eq!(reg.get("p").map(PluginEntry::pid), Ok(Some(99)));
}

#[test]
fn a_set_up_failure_is_refused_without_a_pid_or_restart() {
    let clock = FakeClock::default();
    let mut reg = registry(&clock);
    load(&mut reg, "p", on_failure(5, 100));
    assert!(reg.start("p", "i").is_ok());
    assert_eq!(reg.launch_failed("p"), Ok(PluginState::Refused));
    assert_eq!(reg.get("p").map(|e| (e.pid(), e.restarts())), Ok((None, 0)));
}

#[test]
fn invalid_events_are_conflicts_naming_the_state() {
    let clock = FakeClock::default();
    let mut reg = registry(&clock);
    load(&mut reg, "p", RestartRule::never());
    let err = reg.stop("p").err();
    assert_eq!(err.as_ref().map(RegistryError::code), Some("conflict"));
    assert_eq!(err.as_ref().and_then(RegistryError::state), Some(PluginState::Validated));
    assert_eq!(err.map(|e| e.to_string()), Some("plugin \"p\": cannot stop a plugin that is validated".to_owned()));
    running(&mut reg, "p", 1);
    assert_eq!(reg.start("p", "again").map_err(|e| e.code()), Err("conflict"));
    assert_eq!(reg.get("p").map(|e| e.instance().map(str::to_owned)), Ok(Some("p-run".to_owned())));
}

#[test]
fn a_plugin_with_a_process_cannot_be_unloaded_or_quarantined() {
    let clock = FakeClock::default();
    let mut reg = registry(&clock);
    load(&mut reg, "p", RestartRule::never());
    running(&mut reg, "p", 1);
    assert_eq!(reg.remove("p").err(), Some(RegistryError::Busy { name: "p".into(), state: PluginState::Running }));
    assert_eq!(reg.quarantine("p").map_err(|e| e.code()), Err("conflict"));
    assert!(reg.stop("p").is_ok());
    assert!(reg.exited("p", Exit::Signal(libc::SIGTERM)).is_ok());
    assert!(reg.stop_completed("p").is_ok());
    assert_eq!(reg.quarantine("p"), Ok(PluginState::Quarantined));
    assert_eq!(reg.start("p", "i").map_err(|e| e.code()), Err("conflict"));
    assert_eq!(reg.release("p"), Ok(PluginState::Stopped));
    assert!(reg.remove("p").is_ok());
    assert!(reg.is_empty());
}

#[test]
fn captured_output_goes_to_the_plugins_own_bounded_buffer() {
    let clock = FakeClock::default();
    let limits = LogLimits { capacity: 16, bytes_per_sec: 1_000, burst: 1_000 };
    let mut reg = Registry::with_limits(&clock, MAX_PLUGINS, limits);
    load(&mut reg, "a", RestartRule::never());
    load(&mut reg, "b", RestartRule::never());
    assert!(reg.push_log("a", LogStream::Stderr, b"hello from a\n").is_ok());
    assert!(reg.push_log("a", LogStream::Stdout, &[b'x'; 40]).is_ok());
    let a = reg.get("a").map(|e| (e.logs().len(), e.logs().end_offset()));
    assert_eq!(a, Ok((16, 53)));
    assert_eq!(reg.get("b").map(|e| e.logs().is_empty()), Ok(true));
}

#[test]
fn no_pid_is_kept_once_a_stop_completes_even_if_the_exit_was_never_reported() {
    let clock = FakeClock::default();
    let mut reg = registry(&clock);
    load(&mut reg, "p", RestartRule::never());
    running(&mut reg, "p", 5);
    assert!(reg.stop("p").is_ok());
    assert_eq!(reg.stop_completed("p"), Ok(PluginState::Stopped));
    assert_eq!(reg.get("p").map(PluginEntry::pid), Ok(None));
}

#[test]
fn a_stop_while_a_restart_is_pending_voids_the_ticket() {
    let clock = FakeClock::starting_at_unix_ms(T0_MS);
    let mut reg = registry(&clock);
    load(&mut reg, "p", on_failure(3, 100));
    running(&mut reg, "p", 10);
    let outcome = reg.exited("p", Exit::Code(1)).unwrap();
    let ticket = outcome.ticket.expect("a restart is scheduled");
    assert_eq!(reg.stop("p"), Ok(PluginState::Stopped));
    assert!(matches!(reg.restart_due("p", ticket, "p-2"), Err(RegistryError::StaleRestart { .. })));
    assert_eq!(reg.get("p").map(PluginEntry::state), Ok(PluginState::Stopped));
}
