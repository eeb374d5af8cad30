//! What a plugin started by the daemon can reach of the daemon: nothing. Not its control
//! socket (not in the plugin's mount namespace, and no socket can be created anyway), not
//! one of its file descriptors, not its processes or another plugin's.

use serde_json::{json, Value};
use std::time::Duration;
use wf_integration_tests::daemon::{eventually, Daemon};
use wf_integration_tests::{require_root, PluginDir};
use wf_protocol::control::{Call, LogsArgs, ManifestSource, NameArgs, PluginState, Reply, StartArgs};

/// Start a probe plugin under `daemon`, wait for it to end, and return its one JSON line.
fn probe_line(daemon: &Daemon, name: &str, args: &[&str]) -> Value {
    let plugin = PluginDir::daemon_probe(name, args, json!({}));
    let start = Call::Start(StartArgs::Manifest(ManifestSource::Path(plugin.manifest().display().to_string())));
    daemon.call(start).expect("start");
    let ended =
        eventually(Duration::from_secs(10), || match daemon.call(Call::Status(NameArgs { name: name.into() })) {
            Ok(Reply::Status(status)) => {
                !matches!(status.plugin.state, PluginState::Starting | PluginState::Running | PluginState::Stopping)
            }
            _ => false,
        });
    assert!(ended, "{name} did not end");
    let Ok(Reply::Logs(logs)) =
        daemon.call(Call::Logs(LogsArgs { name: name.into(), follow: false, tail_bytes: None }))
    else {
        panic!("logs of {name}")
    };
    let text: String = logs.chunks.iter().map(|c| c.text.as_str()).collect();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line.get("probe").is_some())
        .unwrap_or_else(|| panic!("{name} printed no probe line: {text}"))
}

#[test]
fn a_daemon_plugin_cannot_reach_the_control_socket_or_any_daemon_fd() {
    require_root();
    let daemon = Daemon::start();
    let socket = daemon.socket().display().to_string();

    let read = probe_line(&daemon, "reader", &["read-file", &socket]);
    assert_eq!((read["ok"].as_bool(), read["errno"].as_i64()), (Some(false), Some(i64::from(libc::ENOENT))), "{read}");
    let listed = probe_line(&daemon, "lister", &["list-dir", daemon.dir().to_str().expect("utf-8 dir")]);
    assert_eq!(listed["ok"], false, "the daemon's directory is not in the sandbox: {listed}");
    let unix = probe_line(&daemon, "connector", &["socket", "unix"]);
    assert_eq!(unix["ok"], false, "no socket can be made to connect with: {unix}");

    let fds = probe_line(&daemon, "fds", &["fds"]);
    let numbers: Vec<i64> = fds["fds"].as_array().expect("fd list").iter().filter_map(|f| f["fd"].as_i64()).collect();
    assert_eq!(numbers, [0, 1, 2, 3], "stdio and the event channel only: {fds}");
    assert!(fds["fds"][3]["target"].as_str().is_some_and(|t| t.starts_with("socket:")), "{fds}");
}

#[test]
fn a_daemon_plugin_sees_only_its_own_processes() {
    require_root();
    let daemon = Daemon::start();
    let neighbour = PluginDir::daemon_probe("neighbour", &["sleep", "30"], json!({}));
    let start = Call::Start(StartArgs::Manifest(ManifestSource::Path(neighbour.manifest().display().to_string())));
    let Ok(Reply::Start(summary)) = daemon.call(start) else { panic!("start neighbour") };
    assert_eq!(summary.state, PluginState::Running);
    let pids = probe_line(&daemon, "looker", &["proc-pids"]);
    assert_eq!(pids["pids"], json!([1]), "the daemon, its launcher and the neighbour are invisible: {pids}");
}
