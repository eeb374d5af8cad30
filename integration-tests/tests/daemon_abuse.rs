//! `wfsandbox serve` against plugins that try to flood or confuse what the daemon writes:
//! the audit log and the daemon's own log, and a restart a reload made impossible.

use serde_json::{json, Value};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wf_integration_tests::daemon::{eventually, Daemon};
use wf_integration_tests::{require_root, PluginDir};
use wf_protocol::control::{
    Call, ExitCause, LogsArgs, ManifestSource, NameArgs, PluginState, PluginStatus, ReloadPolicyArgs, Reply, StartArgs,
    StreamEndReason,
};

/// A topic no grant allows and no topic rule accepts, far longer than any valid one, with a C1
/// CSI and a bidi override in it.
fn hostile_topic() -> String {
    format!("bad topic \u{9b}31m\u{202e}{}", "x".repeat(30_000))
}

fn start_path(plugin: &PluginDir) -> Call {
    Call::Start(StartArgs::Manifest(ManifestSource::Path(plugin.manifest().display().to_string())))
}

fn status(daemon: &Daemon, name: &str) -> PluginStatus {
    match daemon.call(Call::Status(NameArgs { name: name.into() })) {
        Ok(Reply::Status(status)) => status,
        other => panic!("status {name}: {other:?}"),
    }
}

fn violations_of(daemon: &Daemon, plugin: &str) -> Vec<wf_protocol::control::Violation> {
    match daemon.call(Call::ListViolations(Default::default())) {
        Ok(Reply::ListViolations(v)) => v.violations.into_iter().filter(|v| v.plugin == plugin).collect(),
        other => panic!("violations: {other:?}"),
    }
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn a_plugin_flooding_long_invalid_topics_costs_little_log_and_nothing_raw() {
    require_root();
    let daemon = Daemon::start();
    let topic = hostile_topic();
    let plugin = PluginDir::daemon_probe("flooder", &["publish-many", "100000000", &topic], json!({}));
    let (audit_before, log_before) = (file_len(&daemon.audit_path()), file_len(&daemon.log_path()));
    daemon.call(start_path(&plugin)).expect("start");
    std::thread::sleep(Duration::from_secs(3));

    // Before the bounds: 20 records/s of ~30 KB each, in both logs (~1.8 MB in 3 s).
    let audit_growth = file_len(&daemon.audit_path()) - audit_before;
    let log_growth = file_len(&daemon.log_path()) - log_before;
    assert!(audit_growth < 256 * 1024, "the audit log grew {audit_growth} bytes in 3 s");
    assert!(log_growth < 256 * 1024, "the daemon log grew {log_growth} bytes in 3 s");

    let recorded = violations_of(&daemon, "flooder");
    let denied = recorded.iter().find(|v| v.kind == "topic_denied").expect("the refusals are recorded");
    let kept = denied.detail["topic"]["truncated"].as_str().unwrap_or_default();
    assert!(kept.len() <= 256 && topic.starts_with(kept), "{:?}", denied.detail);
    assert_eq!(denied.detail["topic"]["bytes"], json!(topic.len()));

    let log = daemon.log();
    assert!(log.contains("violation"), "the refusals are logged");
    assert!(!log.contains('\u{202e}') && !log.contains('\u{9b}'), "raw controls in the daemon log");
}

fn tightened_policy(daemon: &Daemon) -> std::path::PathBuf {
    let text = std::fs::read_to_string(daemon.policy_path()).expect("policy");
    let mut policy: Value = serde_json::from_str(&text).expect("policy JSON");
    policy["sandbox"]["ceilings"]["max_memory_mb"] = json!(64);
    policy["sandbox"]["defaults"]["memory_mb"] = json!(32);
    let path = daemon.dir().join("policy-tight.json");
    std::fs::write(&path, policy.to_string()).expect("write policy");
    path
}

/// Whether a `logs --follow` of `name` ends `plugin_ended` within `limit`.
fn follow_ends(daemon: &Daemon, name: &str, limit: Duration) -> bool {
    let (tx, rx) = mpsc::channel();
    let mut conn = daemon.connect();
    let name = name.to_owned();
    std::thread::spawn(move || {
        let args = LogsArgs { name, follow: true, tail_bytes: Some(0) };
        let Ok(mut stream) = conn.open_stream(Call::Logs(args)) else { return };
        while let Ok(Some(_)) = stream.next_item() {}
        let _ = tx.send(stream.end_reason());
    });
    rx.recv_timeout(limit).ok().flatten() == Some(StreamEndReason::PluginEnded)
}

#[test]
fn an_automatic_restart_a_reload_made_invalid_is_a_recorded_set_up_failure_and_settles() {
    require_root();
    let daemon = Daemon::start();
    let manifest = json!({
        "restart": { "policy": "always", "max_restarts": 100, "backoff_ms": 300 },
        "permissions": { "resources": { "memory": { "max_mb": 100 } } },
    });
    let plugin = PluginDir::daemon_probe("tightened", &["sleep", "1"], manifest);
    daemon.call(start_path(&plugin)).expect("start");
    let path = tightened_policy(&daemon);
    daemon.call(Call::ReloadPolicy(ReloadPolicyArgs { path: Some(path.display().to_string()) })).expect("reload");

    let settled = eventually(Duration::from_secs(8), || {
        let s = status(&daemon, "tightened");
        s.plugin.state == PluginState::Stopped && s.next_restart_ms.is_none()
    });
    let last = status(&daemon, "tightened");
    assert!(settled, "{last:?}");
    assert_eq!(last.last_exit.map(|e| e.cause), Some(ExitCause::SetupFailed));

    let failed = violations_of(&daemon, "tightened");
    let failure = failed.iter().find(|v| v.detail["step"] == "check_manifest").expect("a violation with the step");
    assert_eq!(failure.rule, "/permissions/resources/memory/max_mb", "{failure:?}");
    let audit = std::fs::read_to_string(daemon.audit_path()).unwrap_or_default();
    assert!(
        audit.lines().any(|l| l.contains("\"violation\"") && l.contains("check_manifest")),
        "no audit record of the failed restart"
    );
    assert!(follow_ends(&daemon, "tightened", Duration::from_secs(3)), "logs --follow never ends");
}

#[test]
fn a_peer_spamming_refused_hellos_costs_a_few_audit_records_not_one_per_attempt() {
    require_root();
    let backoff = json!({ "max_failures": 2, "backoff_initial_ms": 1000, "backoff_max_ms": 1000 });
    let auth = json!({ "authentication": { "token_sha256": ["a".repeat(64)], "failed_auth": backoff } });
    let daemon = Daemon::start_with_policy(auth);
    let started = Instant::now();
    let mut attempts = 0u32;
    while started.elapsed() < Duration::from_millis(2500) {
        assert!(daemon.try_connect(Some("not-the-token".into())).is_err(), "a wrong token was accepted");
        attempts += 1;
    }
    assert!(attempts > 100, "only {attempts} attempts");

    let audit = std::fs::read_to_string(daemon.audit_path()).unwrap_or_default();
    let auth_records: Vec<Value> =
        audit.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|r| r["kind"] == "auth").collect();
    // Two free failures, then one record per 1 s back-off period: about five in 2.5 s.
    assert!(auth_records.len() <= 8, "{} auth records for {attempts} attempts", auth_records.len());
    let counted: u64 = auth_records.iter().filter_map(|r| r["event"]["refused_during_backoff"].as_u64()).sum();
    assert!(counted > 0, "the refusals during back-off are counted into a later record");
}

fn auth_records(daemon: &Daemon) -> Vec<Value> {
    let text = std::fs::read_to_string(daemon.audit_path()).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "auth")
        .map(|r| r["event"].clone())
        .collect()
}

#[test]
fn a_request_flood_costs_a_few_audit_records_and_every_request_is_still_accounted_for() {
    require_root();
    let daemon = Daemon::start_with_policy(json!({ "authentication": {
        "rate_limit": { "requests_per_second": 20, "burst": 20 }
    }}));
    let mut conn = daemon.connect();
    let (mut granted, mut refused) = (0u64, 0u64);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        match conn.call(Call::List(Default::default())) {
            Ok(_) => granted += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(granted >= 20 && refused > 100, "the flood was over the rate limit: {granted} granted, {refused} refused");
    drop(conn);
    let ended = |r: &Value| r["stage"] == "session" && r.get("read_requests_granted").is_some();
    assert!(eventually(Duration::from_secs(5), || auth_records(&daemon).iter().any(ended)), "the session's end record");
    let records = auth_records(&daemon);
    let requests = records.iter().filter(|r| r["stage"] == "request").count();
    assert!(requests <= 4, "{requests} request records for {} requests", granted + refused);
    let end = records.iter().find(|r| ended(r)).expect("end record");
    // Denials are written (one record each) or counted into a later record of the session.
    let counted: u64 = records.iter().filter_map(|r| r["denied_requests_not_written"].as_u64()).sum();
    assert_eq!(end["read_requests_granted"].as_u64(), Some(granted), "{end}");
    assert_eq!(counted + requests as u64, refused, "every refusal is on record, written or counted");
}

#[test]
fn a_restart_the_policy_now_refuses_leaves_the_running_plugin_running() {
    require_root();
    let daemon = Daemon::start();
    let manifest = json!({ "permissions": { "resources": { "memory": { "max_mb": 100 } } } });
    let plugin = PluginDir::daemon_probe("steady", &["sleep", "30"], manifest);
    let Ok(Reply::Start(started)) = daemon.call(start_path(&plugin)) else { panic!("start") };
    let path = tightened_policy(&daemon);
    daemon.call(Call::ReloadPolicy(ReloadPolicyArgs { path: Some(path.display().to_string()) })).expect("reload");
    let refused = daemon.call(Call::Restart(NameArgs { name: "steady".into() }));
    assert!(matches!(refused, Err(ref e) if e.exit_code() == wf_protocol::control::EXIT_INVALID), "{refused:?}");
    let after = status(&daemon, "steady");
    assert_eq!((after.plugin.state, after.plugin.pid), (PluginState::Running, started.pid), "{after:?}");
}
