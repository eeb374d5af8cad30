//! The `wfsandbox` client commands against a real daemon: lifecycle through the CLI, its
//! tables and JSON, its exit statuses (no such plugin, no daemon, not authorised), tokens,
//! events, logs, a closed stdout, and `shutdown`.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wf_integration_tests::daemon::{eventually, stdout_lines, Daemon};
use wf_integration_tests::{require_root, wfsandbox, PluginDir};
use wf_protocol::control::{Call, PluginState, Reply};

const SOCKET_GROUP: u32 = 4242;
const STRANGER: u32 = 4243;
const READER: u32 = 4244;

/// What one CLI run left behind.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Ran {
    fn from(output: Output) -> Self {
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Ran {
    fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "{self:?}");
        assert!(self.stderr.is_empty(), "{self:?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}): {self:?}"))
    }

    /// A failure: this exit status, nothing on stdout, and exactly one `wfsandbox: ` line
    /// on stderr starting with `prefix`.
    fn failed(&self, code: i32, prefix: &str) {
        assert_eq!(self.code, Some(code), "{self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "exactly one error line: {self:?}");
        assert!(self.stderr.starts_with(prefix), "expected {prefix:?}: {self:?}");
    }
}

fn cli(daemon: &Daemon, args: &[&str]) -> Ran {
    daemon.cli(args).into()
}

/// The CLI against `daemon` without inheriting a token from the test's environment.
fn command(daemon: &Daemon, args: &[&str]) -> Command {
    let mut command = Command::new(wfsandbox());
    command.arg("--socket").arg(daemon.socket()).args(args).env_remove("WFSANDBOX_TOKEN");
    command
}

fn manifest_arg(plugin: &PluginDir) -> String {
    plugin.manifest().display().to_string()
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn rfc3339_utc(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && text.chars().filter(char::is_ascii_digit).count() == 17
}

fn list(daemon: &Daemon) -> Vec<wf_protocol::control::PluginSummary> {
    match daemon.call(Call::List(Default::default())) {
        Ok(Reply::List(list)) => list.plugins,
        other => panic!("list: {other:?}"),
    }
}

#[test]
fn plugins_are_started_listed_stopped_and_restarted_through_the_cli() {
    require_root();
    let daemon = Daemon::start();
    let alpha = PluginDir::daemon_probe("alpha", &["sleep", "60"], json!({}));
    let beta = PluginDir::daemon_probe("beta", &["sleep", "60"], json!({}));

    let started = cli(&daemon, &["start", &manifest_arg(&alpha)]).ok();
    assert!(started.stdout.starts_with("NAME "), "a one-row table: {started:?}");
    // A relative manifest path is made absolute against the CLI's working directory.
    let relative = command(&daemon, &["start", "manifest.json", "--json"]).current_dir(beta.path()).output();
    let beta_started = Ran::from(relative.expect("run the CLI")).ok().json();
    assert_eq!((&beta_started["name"], &beta_started["state"]), (&json!("beta"), &json!("running")));

    let table = cli(&daemon, &["ps"]).ok().stdout;
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "STATE", "PID", "RESTARTS", "SINCE", "VERSION"], "{table}");
    assert_eq!(rows.len(), 3, "{table}");
    let truth = list(&daemon);
    for (row, plugin) in rows[1..].iter().zip(&truth) {
        let pid = plugin.pid.expect("running").to_string();
        assert_eq!(row[..4], [plugin.name.as_str(), "running", pid.as_str(), "0"], "{table}");
        assert!(row[4].ends_with('Z') && row[4].len() == 20 && row[5] == "1.0.0", "{table}");
    }
    let header_state = table.find("STATE").expect("header");
    assert!(
        table.lines().all(|l| l.len() > header_state && l.as_bytes()[header_state - 1] == b' '),
        "aligned: {table}"
    );

    let document = cli(&daemon, &["ps", "--json"]).ok().json();
    let plugins = document["plugins"].as_array().expect("plugins");
    assert_eq!(plugins.len(), 2);
    for (value, plugin) in plugins.iter().zip(&truth) {
        assert_eq!(value["name"], json!(plugin.name));
        assert_eq!(value["state"], "running");
        assert_eq!(value["pid"], json!(plugin.pid));
        assert_eq!(value["restarts"], 0);
        assert_eq!(value["since_ms"], json!(plugin.since_ms));
        assert!(value["since"].as_str().is_some_and(rfc3339_utc), "{value}");
        assert!(value.get("version").is_some() && value.get("instance").is_some(), "{value}");
    }

    let beta_pid = beta_started["pid"].as_u64().expect("beta pid");
    let stopped = cli(&daemon, &["stop", "beta", "--grace", "2", "--json"]).ok().json();
    assert_eq!((&stopped["state"], &stopped["pid"]), (&json!("stopped"), &Value::Null));
    assert!(!alive(beta_pid), "the plugin is gone when stop answers");

    let alpha_pid = truth[0].pid.expect("alpha pid");
    let restarted = cli(&daemon, &["restart", "alpha", "--json"]).ok().json();
    assert_eq!(restarted["state"], "running");
    let new_pid = restarted["pid"].as_u64().expect("a new pid");
    assert_ne!(new_pid, u64::from(alpha_pid), "restart runs a new process");
    assert!(alive(new_pid) && !alive(u64::from(alpha_pid)));

    cli(&daemon, &["start", "--name", "beta"]).ok();
    cli(&daemon, &["start", "--name", "beta"]).failed(7, "wfsandbox: start beta: conflict: ");
    let status = cli(&daemon, &["status", "beta", "--json"]).ok().json();
    assert_eq!((&status["name"], &status["state"]), (&json!("beta"), &json!("running")));
    assert!(status["since"].as_str().is_some_and(rfc3339_utc) && status["enforcement"].is_object(), "{status}");
    let block = cli(&daemon, &["status", "beta"]).ok().stdout;
    assert!(block.starts_with("name:") && block.contains("\nstate:      running\n"), "{block}");
}

#[test]
fn an_unknown_plugin_is_exit_5_with_one_error_line() {
    require_root();
    let daemon = Daemon::start();
    cli(&daemon, &["status", "ghost"]).failed(5, "wfsandbox: status ghost: no_such_plugin: ");
    cli(&daemon, &["stop", "ghost", "--json"]).failed(5, "wfsandbox: stop ghost: no_such_plugin: ");
    cli(&daemon, &["logs", "ghost", "--follow"]).failed(5, "wfsandbox: logs ghost: no_such_plugin: ");
}

#[test]
fn without_a_daemon_the_cli_exits_3() {
    require_root();
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("control.sock");
    let ran: Ran = Command::new(wfsandbox()).arg("--socket").arg(&missing).arg("ps").output().expect("CLI").into();
    ran.failed(3, "wfsandbox: ps: the wfsandbox daemon is not running");
    // A socket file nobody accepts on (a daemon that died) is "not running" too.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let ran: Ran =
        Command::new(wfsandbox()).arg("--socket").arg(&stale).args(["status", "x"]).output().expect("CLI").into();
    ran.failed(3, "wfsandbox: status x: the wfsandbox daemon is not running");
}

#[test]
fn a_uid_the_policy_does_not_list_is_exit_4_and_read_rights_stop_at_control_verbs() {
    require_root();
    let daemon = Daemon::start_with_policy(json!({ "authentication": {
        "socket_mode": "0660", "socket_group": SOCKET_GROUP, "read_only_uids": [READER]
    }}));
    let as_uid = |uid: u32, args: &[&str]| -> Ran {
        command(&daemon, args).uid(uid).gid(SOCKET_GROUP).output().expect("run the CLI as another uid").into()
    };
    as_uid(STRANGER, &["ps"]).failed(4, "wfsandbox: ps: not_authorised: ");
    as_uid(STRANGER, &["ps", "--json"]).failed(4, "wfsandbox: ps: not_authorised: ");
    let listed = as_uid(READER, &["ps", "--json"]).ok().json();
    assert_eq!(listed, json!({ "plugins": [] }));
    as_uid(READER, &["shutdown"]).failed(4, "wfsandbox: shutdown: not_authorised: ");
    cli(&daemon, &["ps"]).ok();
}

fn token_hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

#[test]
fn the_token_comes_from_the_environment_or_a_token_file() {
    require_root();
    let good = "3f9a0c27e4b81d65f0a2c9e7b4d1836a5e0f7c2b9d4a61e8c3f5b0a7d2e9c41b";
    let daemon = Daemon::start_with_policy(json!({ "authentication": { "token_sha256": [token_hash(good)] } }));
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{good}\n")).expect("write token file");
    let token_file = token_file.display().to_string();

    let from_env: Ran = command(&daemon, &["ps"]).env("WFSANDBOX_TOKEN", good).output().expect("CLI").into();
    from_env.ok();
    let from_file: Ran = command(&daemon, &["ps", "--token-file", &token_file]).output().expect("CLI").into();
    from_file.ok();
    let missing: Ran = command(&daemon, &["ps", "--token-file", "/nonexistent/token"]).output().expect("CLI").into();
    missing.failed(2, "wfsandbox: ps: --token-file /nonexistent/token: ");
    let without: Ran = command(&daemon, &["ps"]).output().expect("CLI").into();
    without.failed(4, "wfsandbox: ps: not_authorised: ");
}

#[test]
fn published_events_come_back_from_events_as_json_and_escaped_for_people() {
    require_root();
    let daemon = Daemon::start();
    let published = cli(&daemon, &["publish", "energy.update", "{\"watts\": 42.5}", "--json"]).ok().json();
    assert_eq!(published, json!({ "delivered": 0 }));
    let hostile = "{\"text\": \"\\u001b]0;owned\\u0007 \\u009b2J \\u202e\"}";
    cli(&daemon, &["publish", "ui.note", hostile]).ok();

    let document = cli(&daemon, &["events", "--json", "--topic", "energy.update"]).ok().json();
    let events = document["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{document}");
    assert_eq!((&events[0]["topic"], &events[0]["sender"]), (&json!("energy.update"), &json!("control:0")));
    assert_eq!(events[0]["payload"], json!({ "watts": 42.5 }));
    assert!(events[0]["time"].as_str().is_some_and(rfc3339_utc), "{document}");
    assert_eq!((&document["topics"], &document["end"]), (&json!(["energy.update"]), &json!("complete")));

    let people = cli(&daemon, &["events", "--topic", "ui.note"]).ok().stdout;
    assert_eq!(people.lines().count(), 1, "{people:?}");
    assert!(!people.contains(['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}']), "{people:?}");
    assert!(
        people.contains(" ui.note control:0 ") && people.contains("\\u009b") && people.contains("\\u202e"),
        "{people}"
    );

    // Following: the replayed event arrives as one JSON line, then a new one as it is published.
    let mut follower =
        spawn_lines(command(&daemon, &["events", "--follow", "--json", "--backlog", "1", "--topic", "ui.note"]));
    let first = follower.next_json(Duration::from_secs(10));
    assert_eq!((&first["kind"], &first["topic"]), (&json!("event"), &json!("ui.note")));
    cli(&daemon, &["publish", "ui.note", "{\"n\": 2}"]).ok();
    let second = follower.next_json(Duration::from_secs(10));
    assert_eq!(second["payload"], json!({ "n": 2 }));
}

/// A CLI run whose stdout lines are read on a thread.
struct Lines {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn spawn_lines(mut command: Command) -> Lines {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn the CLI");
    let lines = stdout_lines(&mut child);
    Lines { child, lines }
}

impl Lines {
    fn next_json(&mut self, limit: Duration) -> Value {
        let line = self.lines.recv_timeout(limit).unwrap_or_else(|e| panic!("no line within {limit:?}: {e}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"))
    }

    /// The exit status and stderr, killing the CLI if it outlives `limit`.
    fn finish(mut self, limit: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.code(),
                _ if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("the CLI did not exit within {limit:?}");
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status, stderr)
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_closed_stdout_ends_a_followed_stream_quietly_with_status_0() {
    require_root();
    let daemon = Daemon::start();
    for n in 0..3 {
        cli(&daemon, &["publish", "tick", &format!("{{\"n\": {n}}}")]).ok();
    }
    let mut follower = spawn_lines(command(&daemon, &["events", "--follow", "--backlog", "3"]));
    let _ = follower.lines.recv_timeout(Duration::from_secs(10)).expect("the first replayed event");
    // Close the reading end (like `| head -1`), then give the CLI something more to write.
    follower.lines = mpsc::channel().1;
    std::thread::sleep(Duration::from_millis(200));
    let closed = eventually(Duration::from_secs(10), || {
        cli(&daemon, &["publish", "tick", "{\"n\": 9}"]).ok();
        matches!(follower.child.try_wait(), Ok(Some(_)))
    });
    assert!(closed, "the CLI noticed its closed stdout");
    let (code, stderr) = follower.finish(Duration::from_secs(5));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "no error and no panic: {stderr}");
}

#[test]
fn logs_show_captured_output_escaped_and_follow_it_to_the_plugins_end() {
    require_root();
    let daemon = Daemon::start();
    let sleeper = PluginDir::daemon_probe("sleeper", &["sleep", "1"], json!({}));
    cli(&daemon, &["start", &manifest_arg(&sleeper)]).ok();
    let mut follower = spawn_lines(command(&daemon, &["logs", "sleeper", "--follow", "--json"]));
    let mut kinds = Vec::new();
    let mut text = String::new();
    while kinds.last() != Some(&"stream_end".to_owned()) {
        let line = follower.next_json(Duration::from_secs(15));
        kinds.push(line["kind"].as_str().unwrap_or("?").to_owned());
        text.push_str(line["text"].as_str().unwrap_or(""));
        if line["kind"] == "stream_end" {
            assert_eq!(line["reason"], "plugin_ended", "{line}");
        }
    }
    assert!(text.contains("\"probe\":\"sleep\""), "{text}");
    let (code, stderr) = follower.finish(Duration::from_secs(5));
    assert_eq!(code, Some(0), "{stderr}");

    let logs = cli(&daemon, &["logs", "sleeper"]).ok().stdout;
    assert!(logs.contains("\"probe\":\"sleep\""), "{logs}");
    let document = cli(&daemon, &["logs", "sleeper", "--json", "--tail", "100000"]).ok().json();
    assert!(document["chunks"][0]["time"].as_str().is_some_and(rfc3339_utc), "{document}");
    assert_eq!(document["dropped_bytes"], 0);

    // What a plugin prints reaches a terminal only escaped: the echo plugin prints the
    // bidi override and C1 CSI it was sent; the daemon stores them as visible byte escapes.
    let grants = json!({ "permissions": { "events": { "read": ["energy.update"], "write": [] } } });
    let echo = PluginDir::daemon_probe("echo", &["echo-events"], grants);
    cli(&daemon, &["start", &manifest_arg(&echo)]).ok();
    cli(&daemon, &["publish", "energy.update", "{\"label\": \"\\u202edrowssap\\u009b2J\"}"]).ok();
    let echoed = || cli(&daemon, &["logs", "echo"]).ok().stdout;
    assert!(eventually(Duration::from_secs(10), || echoed().contains("drowssap")), "{}", echoed());
    let shown = echoed();
    assert!(!shown.contains(['\u{202e}', '\u{9b}']), "{shown:?}");
    assert!(shown.contains("\\xe2\\x80\\xaedrowssap\\xc2\\x9b2J"), "{shown}");
}

#[test]
fn shutdown_through_the_cli_makes_the_daemon_exit() {
    require_root();
    let mut daemon = Daemon::start();
    let plugins: Vec<PluginDir> =
        ["one", "two"].iter().map(|n| PluginDir::daemon_probe(n, &["sleep", "60"], json!({}))).collect();
    let mut pids = Vec::new();
    for plugin in &plugins {
        pids.push(cli(&daemon, &["start", &manifest_arg(plugin), "--json"]).ok().json()["pid"].as_u64().expect("pid"));
    }
    assert!(list(&daemon).iter().all(|p| p.state == PluginState::Running));
    let answer = cli(&daemon, &["shutdown", "--json"]).ok().json();
    assert_eq!(answer, json!({ "stopping": 2 }));
    let status = daemon.wait_exit(Duration::from_secs(30)).expect("the daemon exits");
    assert!(status.success(), "{status}\n{}", daemon.log());
    assert!(pids.iter().all(|&pid| !alive(pid)), "no plugin outlives the daemon");
    cli(&daemon, &["ps"]).failed(3, "wfsandbox: ps: the wfsandbox daemon is not running");
}
