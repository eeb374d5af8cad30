//! Response policy per violation kind (policy `violations.responses`) against a real
//! `wfsandbox serve`: sandboxed `scripted` probes publish on topics they are not granted (a
//! broker `topic_denied` each), and the daemon kills or quarantines them as the policy says.

use serde_json::{json, Value};
use std::time::Duration;
use wf_integration_tests::daemon::{eventually, Daemon};
use wf_integration_tests::{require_root, PluginDir};
use wf_protocol::control::{
    Call, ClientError, ControlError, ExitCause, ManifestSource, NameArgs, PluginState, StartArgs,
};

/// Long enough for a slow VM; only failures wait this long.
const WAIT: Duration = Duration::from_secs(30);

/// A `scripted` plugin named `name` that reads `cmd.<name>`, may write nothing, and has
/// `restart` as its restart rule.
fn scripted(name: &str, restart: Value) -> PluginDir {
    let mut extra = json!({ "permissions": { "events": { "read": [format!("cmd.{name}")], "write": [] } } });
    if !restart.is_null() {
        extra["restart"] = restart;
    }
    PluginDir::daemon_probe(name, &["scripted", "120"], extra)
}

fn policy(rule: Value) -> Value {
    json!({ "violations": { "responses": [rule] } })
}

/// Makes `name` publish once on a topic it is not granted, and waits until the daemon has
/// recorded `expected` violations of it in all.
fn misbehave(daemon: &Daemon, name: &str, expected: usize) {
    let command = json!({ "cmd": "publish", "topic": format!("secret.{name}"), "payload": { "n": expected } });
    assert_eq!(daemon.publish(&format!("cmd.{name}"), command), 1, "the command reached {name}");
    let recorded = eventually(WAIT, || daemon.violations_of(name).len() >= expected);
    assert!(recorded, "{name}: {} violations, expected {expected}\n{}", daemon.violations_of(name).len(), daemon.log());
}

/// Audit records of `kind` about `plugin`, oldest first.
fn audit_records(daemon: &Daemon, kind: &str, plugin: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(daemon.audit_path()).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == kind && r["event"]["plugin"] == plugin)
        .map(|r| r["event"].clone())
        .collect()
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// (a) + (d): three `topic_denied` within 60 s quarantine the plugin, counted across a
/// restart of it; it is stopped, not restarted although its restart policy says `always`,
/// `start` is a conflict naming `quarantined`, and `wfsandbox release` lets it start again.
#[test]
fn a_threshold_quarantines_the_plugin_until_an_admin_releases_it() {
    require_root();
    let rule = json!({ "kind": "topic_denied", "action": "quarantine", "threshold": { "count": 3, "seconds": 60 } });
    let daemon = Daemon::start_with_policy(policy(rule));
    let restart = json!({ "policy": "always", "max_restarts": 5, "backoff_ms": 100 });
    let plugin = scripted("culprit", restart);
    let first = daemon.start_plugin(&plugin);
    daemon.wait_attached("culprit", WAIT);
    misbehave(&daemon, "culprit", 1);
    misbehave(&daemon, "culprit", 2);
    // Across a restart of the plugin: its count is per plugin, not per instance.
    daemon.call(Call::Restart(NameArgs { name: "culprit".into() })).expect("restart");
    daemon.wait_attached("culprit", WAIT);
    let second = daemon.status_of("culprit");
    assert_ne!(second.plugin.instance, first.instance, "a new instance");
    let pid = second.plugin.pid.expect("running");
    assert_eq!(second.plugin.state, PluginState::Running, "two violations are below the threshold");
    misbehave(&daemon, "culprit", 3);

    let quarantined = eventually(WAIT, || daemon.status_of("culprit").plugin.state == PluginState::Quarantined);
    let status = daemon.status_of("culprit");
    assert!(quarantined, "{status:?}\n{}", daemon.log());
    assert_eq!(status.plugin.pid, None);
    assert!(eventually(WAIT, || !pid_alive(pid)), "the plugin's process {pid} is gone");
    assert_eq!(status.next_restart_ms, None);

    // (d) the record that triggered it says what was done; the others keep the broker's deny.
    let actions: Vec<String> = daemon.violations_of("culprit").into_iter().map(|v| v.action).collect();
    assert_eq!(actions, ["quarantine", "deny", "deny"], "newest first");
    let responses = audit_records(&daemon, "violation_response", "culprit");
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0]["action"], "quarantine");
    assert_eq!(responses[0]["taken"], true);
    assert_eq!(responses[0]["rule"], "/violations/responses/0");
    assert_eq!(responses[0]["violation"]["kind"], "topic_denied");
    assert_eq!(audit_records(&daemon, "quarantine", "culprit").len(), 1);
    // The audit log's own violation records say the same as list_violations, oldest first.
    let audited: Vec<Value> =
        audit_records(&daemon, "violation", "culprit").into_iter().map(|v| v["action"].clone()).collect();
    assert_eq!(audited, ["deny", "deny", "quarantine"], "the action taken, in the audit log too");

    // Not restarted (the back-off is 100 ms), and `start` is refused.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(daemon.status_of("culprit").plugin.state, PluginState::Quarantined);
    let spawns = audit_records(&daemon, "spawn", "culprit").len();
    assert_eq!(spawns, 2, "the start and the requested restart only");
    match daemon.call(Call::Start(StartArgs::Name("culprit".into()))) {
        Err(ClientError::Control(ControlError::Conflict { state, name, .. })) => {
            assert_eq!((state, name.as_str()), (PluginState::Quarantined, "culprit"));
        }
        other => panic!("start of a quarantined plugin: {other:?}"),
    }

    // Nor does a `start MANIFEST` that would replace the entry lift the quarantine.
    let by_manifest = StartArgs::Manifest(ManifestSource::Path(plugin.manifest().display().to_string()));
    match daemon.call(Call::Start(by_manifest)) {
        Err(ClientError::Control(ControlError::Conflict { state, .. })) => assert_eq!(state, PluginState::Quarantined),
        other => panic!("start MANIFEST of a quarantined plugin: {other:?}"),
    }
    assert_eq!(daemon.status_of("culprit").plugin.state, PluginState::Quarantined);

    let released = daemon.cli(&["release", "culprit"]);
    assert!(released.status.success(), "{released:?}");
    assert_eq!(daemon.status_of("culprit").plugin.state, PluginState::Stopped);
    assert_eq!(audit_records(&daemon, "release", "culprit").len(), 1);
    let again = daemon.cli(&["release", "culprit"]);
    assert_eq!(again.status.code(), Some(7), "a second release is a conflict: {again:?}");
    daemon.call(Call::Start(StartArgs::Name("culprit".into()))).expect("start after release");
    assert_eq!(daemon.status_of("culprit").plugin.state, PluginState::Running);
}

/// (b): `kill` on the first `topic_denied` kills the instance at once; the end is a crash by
/// SIGKILL and the restart policy applies (one restart here); the new run is left alone.
#[test]
fn kill_on_the_first_violation_kills_the_instance_and_the_restart_policy_applies() {
    require_root();
    let daemon = Daemon::start_with_policy(policy(json!({ "kind": "topic_denied", "action": "kill" })));
    let restart = json!({ "policy": "on-failure", "max_restarts": 1, "backoff_ms": 200 });
    let plugin = scripted("victim", restart);
    let started = daemon.start_plugin(&plugin);
    daemon.wait_attached("victim", WAIT);
    let pid = started.pid.expect("running");
    misbehave(&daemon, "victim", 1);

    assert!(eventually(WAIT, || !pid_alive(pid)), "process {pid} still alive\n{}", daemon.log());
    let restarted = eventually(WAIT, || {
        let s = daemon.status_of("victim");
        s.plugin.state == PluginState::Running && s.plugin.instance != started.instance
    });
    let status = daemon.status_of("victim");
    assert!(restarted, "{status:?}");
    let exit = status.last_exit.expect("last exit");
    assert_eq!((exit.cause, exit.signal), (ExitCause::Signaled, Some(9)), "{exit:?}");
    assert_eq!(status.plugin.restarts, 1);
    let violations = daemon.violations_of("victim");
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].action, "kill");
    assert_eq!(violations[0].instance, started.instance.clone().unwrap_or_default());
    let responses = audit_records(&daemon, "violation_response", "victim");
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!((responses[0]["action"].clone(), responses[0]["taken"].clone()), (json!("kill"), json!(true)));
}

/// (c): below the threshold nothing happens, and the records keep the broker's `deny`.
#[test]
fn below_the_threshold_nothing_happens() {
    require_root();
    let rule = json!({ "kind": "topic_denied", "action": "kill", "threshold": { "count": 3, "seconds": 60 } });
    let daemon = Daemon::start_with_policy(policy(rule));
    let plugin = scripted("nearly", Value::Null);
    let started = daemon.start_plugin(&plugin);
    daemon.wait_attached("nearly", WAIT);
    misbehave(&daemon, "nearly", 1);
    misbehave(&daemon, "nearly", 2);
    std::thread::sleep(Duration::from_millis(1000));
    let status = daemon.status_of("nearly");
    assert_eq!((status.plugin.state, status.plugin.pid), (PluginState::Running, started.pid));
    let actions: Vec<String> = daemon.violations_of("nearly").into_iter().map(|v| v.action).collect();
    assert_eq!(actions, ["deny", "deny"]);
    assert!(audit_records(&daemon, "violation_response", "nearly").is_empty());
}

/// Suppressed records count: a plugin flooding an ungranted topic gets 20 records a second
/// (the per-instance budget) but thousands of violations, and a threshold of 1000 in 60 s
/// fires within seconds, on a record that reports the suppressed ones.
#[test]
fn violations_the_budget_suppressed_count_towards_a_threshold() {
    require_root();
    let rule = json!({ "kind": "topic_denied", "action": "kill", "threshold": { "count": 1000, "seconds": 60 } });
    let daemon = Daemon::start_with_policy(policy(rule));
    let write_nothing = json!({ "permissions": { "events": { "read": [], "write": [] } } });
    let plugin = PluginDir::daemon_probe("flooder", &["flood", "secret.flood", "60"], write_nothing);
    let started = daemon.start_plugin(&plugin);
    let pid = started.pid.expect("running");
    let killed = eventually(WAIT, || daemon.status_of("flooder").last_exit.is_some());
    let status = daemon.status_of("flooder");
    assert!(killed, "{status:?}\n{}", daemon.log());
    let exit = status.last_exit.expect("last exit");
    assert_eq!((exit.cause, exit.signal), (ExitCause::Signaled, Some(9)), "{exit:?}");
    assert!(!pid_alive(pid));
    let violations = daemon.violations_of("flooder");
    assert!(violations.len() < 1000, "far fewer records than violations: {}", violations.len());
    let fired: Vec<_> = violations.iter().filter(|v| v.action == "kill").collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(fired[0].detail["suppressed_before"].as_u64().is_some_and(|n| n > 0), "{:?}", fired[0].detail);
}
