//! `wfsandbox serve` with real plugins: start, list, stop, restart, automatic restarts, logs,
//! events, shutdown, and what is left after the daemon is killed.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wf_integration_tests::daemon::{eventually, Daemon};
use wf_integration_tests::{require_root, PluginDir};
use wf_protocol::control::{
    Call, ExitCause, LogsArgs, ManifestSource, NameArgs, PluginState, PluginSummary, Reply, StartArgs, StopArgs,
    StreamEndReason, StreamItem, SubscribeEventsArgs,
};

fn start_path(plugin: &PluginDir) -> Call {
    Call::Start(StartArgs::Manifest(ManifestSource::Path(plugin.manifest().display().to_string())))
}

fn summary(reply: Reply) -> PluginSummary {
    match reply {
        Reply::Start(s) | Reply::Stop(s) | Reply::Restart(s) => s,
        other => panic!("not a summary: {other:?}"),
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn cgroup_dirs(enforcement: &Value) -> Vec<PathBuf> {
    let hierarchies = enforcement["cgroups"]["detail"]["hierarchies"].as_array().cloned().unwrap_or_default();
    hierarchies.iter().filter_map(|h| h["dir"].as_str().map(PathBuf::from)).collect()
}

fn status(daemon: &Daemon, name: &str) -> wf_protocol::control::PluginStatus {
    match daemon.call(Call::Status(NameArgs { name: name.into() })) {
        Ok(Reply::Status(status)) => status,
        other => panic!("status {name}: {other:?}"),
    }
}

#[test]
fn several_plugins_are_started_listed_stopped_and_restarted() {
    require_root();
    let daemon = Daemon::start();
    let plugins: Vec<PluginDir> =
        ["alpha", "beta", "gamma"].iter().map(|n| PluginDir::daemon_probe(n, &["sleep", "60"], json!({}))).collect();
    let mut conn = daemon.connect();
    let mut pids = Vec::new();
    for plugin in &plugins {
        let started = summary(conn.call(start_path(plugin)).expect("start"));
        assert_eq!(started.state, PluginState::Running, "{started:?}");
        pids.push(started.pid.expect("a running plugin has a pid"));
    }
    assert!(pids.iter().all(|&pid| alive(pid)));
    let Reply::List(list) = conn.call(Call::List(Default::default())).expect("list") else { panic!() };
    let names: Vec<&str> = list.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    assert!(list.plugins.iter().all(|p| p.state == PluginState::Running));

    let beta_cgroups = cgroup_dirs(&status(&daemon, "beta").enforcement.unwrap_or_default());
    assert!(!beta_cgroups.is_empty() && beta_cgroups.iter().all(|d| d.is_dir()), "{beta_cgroups:?}");
    let stopped = summary(conn.call(Call::Stop(StopArgs { name: "beta".into(), grace_ms: Some(2000) })).expect("stop"));
    assert_eq!((stopped.state, stopped.pid), (PluginState::Stopped, None));
    assert!(!alive(pids[1]), "the stopped plugin's process is gone when stop answers");
    assert!(beta_cgroups.iter().all(|d| !d.exists()), "its cgroups are removed when stop answers");
    assert_eq!(status(&daemon, "beta").last_exit.map(|e| e.cause), Some(ExitCause::Stopped));

    let restarted = summary(conn.call(Call::Restart(NameArgs { name: "alpha".into() })).expect("restart"));
    assert_eq!(restarted.state, PluginState::Running);
    assert_ne!(restarted.pid, Some(pids[0]));
    assert!(!alive(pids[0]) && restarted.pid.is_some_and(alive));

    let again = summary(conn.call(Call::Start(StartArgs::Name("beta".into()))).expect("start beta again"));
    assert_eq!(again.state, PluginState::Running);
    let refused = conn.call(Call::Start(StartArgs::Name("beta".into())));
    assert!(matches!(refused, Err(ref e) if e.exit_code() == wf_protocol::control::EXIT_CONFLICT), "{refused:?}");
    let ghost = conn.call(Call::Status(NameArgs { name: "ghost".into() }));
    assert!(matches!(ghost, Err(ref e) if e.exit_code() == wf_protocol::control::EXIT_NO_SUCH_PLUGIN), "{ghost:?}");
}

#[test]
fn a_crashing_plugin_restarts_with_growing_backoff_then_stops_at_the_cap() {
    require_root();
    let daemon = Daemon::start();
    let restart = json!({ "restart": { "policy": "on-failure", "max_restarts": 3, "backoff_ms": 150 } });
    let plugin = PluginDir::daemon_probe("crasher", &["exit", "3"], restart);
    daemon.call(start_path(&plugin)).expect("start");
    let settled = eventually(Duration::from_secs(15), || {
        let s = status(&daemon, "crasher");
        s.plugin.state == PluginState::Crashed && s.next_restart_ms.is_none() && s.plugin.restarts == 3
    });
    let last = status(&daemon, "crasher");
    assert!(settled, "{last:?}");
    let exit = last.last_exit.expect("last exit");
    assert_eq!((exit.cause, exit.code), (ExitCause::Exited, Some(3)));

    // Four runs (the start and three restarts), each further apart than the one before.
    let spawns = audit_times(&daemon, "spawn", "crasher");
    assert_eq!(spawns.len(), 4, "{spawns:?}");
    let gaps: Vec<u64> = spawns.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= 150 && gaps[1] >= 300 && gaps[2] >= 600, "back-off 150, 300, 600 ms: {gaps:?}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(audit_times(&daemon, "spawn", "crasher").len(), 4, "no restart after the cap");
}

/// `time_ms` of the audit records of `kind` about `plugin`.
fn audit_times(daemon: &Daemon, kind: &str, plugin: &str) -> Vec<u64> {
    let text = std::fs::read_to_string(daemon.audit_path()).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == kind && r["event"]["plugin"] == plugin)
        .filter_map(|r| r["time_ms"].as_u64())
        .collect()
}

#[test]
fn a_stop_cancels_a_pending_restart() {
    require_root();
    let daemon = Daemon::start();
    let restart = json!({ "restart": { "policy": "always", "max_restarts": 5, "backoff_ms": 3000 } });
    let plugin = PluginDir::daemon_probe("looper", &["exit", "1"], restart);
    daemon.call(start_path(&plugin)).expect("start");
    assert!(eventually(Duration::from_secs(5), || status(&daemon, "looper").next_restart_ms.is_some()));
    let stopped = summary(daemon.call(Call::Stop(StopArgs { name: "looper".into(), grace_ms: None })).expect("stop"));
    assert_eq!(stopped.state, PluginState::Stopped);
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(status(&daemon, "looper").plugin.state, PluginState::Stopped);
    assert_eq!(audit_times(&daemon, "spawn", "looper").len(), 1);
}

#[test]
fn events_flow_between_the_orchestrator_and_plugins_and_grants_hold() {
    require_root();
    let daemon = Daemon::start();
    let grants = json!({ "permissions": { "events": { "read": ["energy.update"], "write": ["energy.seen"] } } });
    let echo = PluginDir::daemon_probe("echo", &["echo-events"], grants);
    let publisher = PluginDir::daemon_probe(
        "publisher",
        &["publish", "secret.topic", "{\"x\":1}"],
        json!({ "permissions": { "events": { "read": [], "write": ["energy.seen"] } } }),
    );
    let mut watcher = daemon.connect();
    let mut stream = watcher
        .open_stream(Call::SubscribeEvents(SubscribeEventsArgs { topics: None, backlog: 0, follow: true }))
        .expect("subscribe");
    let mut conn = daemon.connect();
    conn.call(start_path(&echo)).expect("start echo");
    let Reply::Publish(published) = conn
        .call(Call::Publish(wf_protocol::control::PublishArgs {
            topic: "energy.update".into(),
            payload: json!({"watts": 42}),
        }))
        .expect("publish")
    else {
        panic!()
    };
    assert_eq!(published.delivered, 2, "the echo plugin and the subscription");
    let Some(StreamItem::Event(event)) = stream.next_item().expect("an event") else { panic!("no event") };
    assert_eq!((event.topic.as_str(), event.sender.as_str()), ("energy.update", "control:0"));

    // The echo plugin saw it (its stdout is captured) with the daemon-set sender.
    assert!(eventually(Duration::from_secs(5), || logs_text(&daemon, "echo").contains("\"sender\":\"control:0\"")));

    // A publish on a topic the plugin may not write is refused and reported.
    conn.call(start_path(&publisher)).expect("start publisher");
    assert!(eventually(Duration::from_secs(5), || {
        let Ok(Reply::ListViolations(v)) = daemon.call(Call::ListViolations(Default::default())) else { return false };
        v.violations
            .iter()
            .any(|v| v.plugin == "publisher" && v.kind == "topic_denied" && v.detail["topic"] == "secret.topic")
    }));
    // The plugin's own account of the refusal reaches its log after the violation is recorded.
    assert!(
        eventually(Duration::from_secs(10), || logs_text(&daemon, "publisher").contains("\"denied\":true")),
        "{}",
        logs_text(&daemon, "publisher")
    );
}

fn logs_text(daemon: &Daemon, name: &str) -> String {
    match daemon.call(Call::Logs(LogsArgs { name: name.into(), follow: false, tail_bytes: None })) {
        Ok(Reply::Logs(logs)) => logs.chunks.iter().map(|c| c.text.as_str()).collect(),
        other => panic!("logs {name}: {other:?}"),
    }
}

#[test]
fn a_followed_log_streams_new_output_and_ends_with_the_plugin() {
    require_root();
    let daemon = Daemon::start();
    let plugin = PluginDir::daemon_probe("sleeper", &["sleep", "1"], json!({}));
    let mut conn = daemon.connect();
    conn.call(start_path(&plugin)).expect("start");
    let mut stream = conn
        .open_stream(Call::Logs(LogsArgs { name: "sleeper".into(), follow: true, tail_bytes: Some(0) }))
        .expect("follow");
    let mut text = String::new();
    while let Some(item) = stream.next_item().expect("stream item") {
        if let StreamItem::Log(chunk) = item {
            text.push_str(&chunk.text);
        }
    }
    assert_eq!(stream.end_reason(), Some(StreamEndReason::PluginEnded));
    assert!(text.contains("\"probe\":\"sleep\""), "{text}");
}

#[test]
fn shutdown_stops_every_plugin_and_leaves_nothing() {
    require_root();
    let mut daemon = Daemon::start();
    let plugins: Vec<PluginDir> =
        ["one", "two"].iter().map(|n| PluginDir::daemon_probe(n, &["sleep", "60"], json!({}))).collect();
    let mut conn = daemon.connect();
    let mut left = Vec::new();
    for plugin in &plugins {
        let started = summary(conn.call(start_path(plugin)).expect("start"));
        left.push(started.pid.expect("pid"));
    }
    let cgroups: Vec<PathBuf> =
        ["one", "two"].iter().flat_map(|n| cgroup_dirs(&status(&daemon, n).enforcement.unwrap_or_default())).collect();
    let Reply::Shutdown(result) = conn.call(Call::Shutdown(Default::default())).expect("shutdown") else { panic!() };
    assert_eq!(result.stopping, 2);
    let status = daemon.wait_exit(Duration::from_secs(30)).expect("the daemon exits");
    assert!(status.success(), "{status}\n{}", daemon.log());
    assert!(left.iter().all(|&pid| !alive(pid)));
    assert!(cgroups.iter().all(|d| !d.exists()), "{cgroups:?}");
    assert!(!daemon.socket().exists(), "the socket is removed");
}

#[test]
fn after_sigkill_of_the_daemon_nothing_of_its_plugins_survives_a_restart() {
    require_root();
    let mut daemon = Daemon::start();
    let plugins: Vec<PluginDir> =
        ["first", "second"].iter().map(|n| PluginDir::daemon_probe(n, &["sleep", "60"], json!({}))).collect();
    let mut pids = Vec::new();
    let mut cgroups = Vec::new();
    for plugin in &plugins {
        let started = summary(daemon.call(start_path(plugin)).expect("start"));
        pids.push(started.pid.expect("pid"));
        cgroups.extend(cgroup_dirs(&status(&daemon, &started.name).enforcement.unwrap_or_default()));
    }
    // Kill the launcher too, at once: the plugins then die of their parent-death signal, and
    // their cgroups are left for the next daemon to find.
    let launcher = daemon.launcher_pid().expect("the launcher runs");
    // SAFETY: kill(2) on a process this test started (through the daemon).
    unsafe { libc::kill(launcher as i32, libc::SIGKILL) };
    daemon.kill_hard();
    assert!(eventually(Duration::from_secs(10), || pids.iter().all(|&p| !alive(p))), "plugins outlived the daemon");
    daemon.spawn();
    assert!(eventually(Duration::from_secs(10), || cgroups.iter().all(|d| !d.exists())), "{cgroups:?}");
    let Reply::List(list) = daemon.call(Call::List(Default::default())).expect("list") else { panic!() };
    assert!(list.plugins.is_empty(), "a new daemon starts with no plugins: {list:?}");
}

#[test]
fn a_refused_start_names_the_step_and_leaves_the_plugin_stopped() {
    require_root();
    let daemon = Daemon::start();
    let plugin = PluginDir::daemon_probe("missing", &["sleep", "1"], json!({ "entry_point": "not-there" }));
    let refused = daemon.call(start_path(&plugin));
    let Err(wf_protocol::control::ClientError::Control(error)) = refused else { panic!("{refused:?}") };
    assert_eq!(error.exit_code(), wf_protocol::control::EXIT_REFUSED, "{error:?}");
    let wf_protocol::control::ControlError::Refused { step, .. } = &error else { panic!("{error:?}") };
    assert_eq!(step.as_deref(), Some("entry_point"));
    let after = status(&daemon, "missing");
    assert_eq!((after.plugin.state, after.plugin.pid), (PluginState::Stopped, None));
    assert_eq!(after.last_exit.map(|e| e.cause), Some(ExitCause::SetupFailed));
    let Ok(Reply::ListViolations(v)) = daemon.call(Call::ListViolations(Default::default())) else { panic!() };
    assert!(v.violations.iter().any(|v| v.plugin == "missing" && v.detail["step"] == "entry_point"), "{v:?}");
}

#[test]
fn when_only_the_daemon_is_killed_its_launcher_cleans_up_before_exiting() {
    require_root();
    let mut daemon = Daemon::start();
    let plugin = PluginDir::daemon_probe("orphan", &["sleep", "60"], json!({}));
    let started = summary(daemon.call(start_path(&plugin)).expect("start"));
    let pid = started.pid.expect("pid");
    let cgroups = cgroup_dirs(&status(&daemon, "orphan").enforcement.unwrap_or_default());
    let launcher = daemon.launcher_pid().expect("the launcher runs");
    daemon.kill_hard();
    assert!(
        eventually(Duration::from_secs(10), || !alive(pid) && !alive(launcher)),
        "plugin or launcher outlived the daemon"
    );
    assert!(cgroups.iter().all(|d| !d.exists()), "{cgroups:?}");
}
