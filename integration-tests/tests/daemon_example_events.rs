//! The two example plugins under a real `wfsandbox serve`: `energy_sensor` (Rust, typed
//! `energy.update` readings through `wf-sdk`) feeds `energy_monitor` (Python, renders each
//! reading as `ui.render`), and `wfsandbox events --follow --json` shows both streams, each
//! with the sender the daemon gave it from the plugin's connection (`plugin:<manifest name>`).
//!
//! The sensor's binary is the one `cargo build --workspace` put in the target directory
//! (as `scripts/test` builds it), installed with the example's own manifest into a throw-away
//! plugin directory; the monitor runs from `examples/plugins/energy-monitor` as it is.

use serde_json::{json, Value};

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wf_integration_tests::daemon::{stdout_lines, Daemon};
use wf_integration_tests::{binary, require_root, wfsandbox, workspace_root, PluginDir};

const SENSOR: &str = "plugin:energy_sensor";
const MONITOR: &str = "plugin:energy_monitor";
/// Readings (and their renderings) to see before the test is satisfied; the sensor publishes
/// one every 500 ms under the daemon.
const WANTED: usize = 3;
const LIMIT: Duration = Duration::from_secs(40);

/// The energy-sensor example: its manifest, unchanged, and its binary at the entry point.
fn sensor_plugin() -> PluginDir {
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(workspace_root().join("examples/plugins/energy-sensor/manifest.json")).expect("sensor manifest"),
    )
    .expect("the sensor manifest is JSON");
    let entry = manifest["entry_point"].as_str().expect("entry_point").to_owned();
    assert_eq!(entry, "bin/energy-sensor");
    let plugin = PluginDir::empty();
    let bin = plugin.path().join("bin");
    std::fs::create_dir(&bin).expect("bin/");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod bin/");
    plugin.install_file(&binary("energy-sensor"), &entry, 0o755);
    plugin.write_manifest(&manifest);
    plugin
}

fn start(daemon: &Daemon, manifest: &Path) {
    let output = daemon.cli(&["start", &manifest.display().to_string(), "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "start {}: {stdout}{}",
        manifest.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let started: Value = serde_json::from_str(&stdout).expect("start --json prints one document");
    assert_eq!(started["state"], "running", "{started}");
}

/// `wfsandbox events --follow --json`, its lines read on a thread.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn spawn(daemon: &Daemon) -> Self {
        let mut child = Command::new(wfsandbox())
            .arg("--socket")
            .arg(daemon.socket())
            .args(["events", "--follow", "--json", "--backlog", "256"])
            .env_remove("WFSANDBOX_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn wfsandbox events --follow");
        let lines = stdout_lines(&mut child);
        Self { child, lines }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the follower showed so far.
#[derive(Default, Debug)]
struct Seen {
    /// `energy.update` payloads from the sensor, in arrival order.
    readings: Vec<Value>,
    /// `ui.render` payloads from the monitor.
    renders: Vec<Value>,
    /// Every line, for the failure message.
    lines: Vec<String>,
}

impl Seen {
    fn record(&mut self, line: String) {
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        if event["kind"] == "event" {
            match (event["topic"].as_str(), event["sender"].as_str()) {
                (Some("energy.update"), Some(SENSOR)) => self.readings.push(event["payload"].clone()),
                (Some("ui.render"), Some(MONITOR)) => self.renders.push(event["payload"].clone()),
                (Some("energy.update" | "ui.render"), sender) => {
                    panic!("an example's topic from another sender ({sender:?}): {line}")
                }
                _ => {}
            }
        }
        self.lines.push(line);
    }

    /// The renders whose text and watts are those of a reading the sensor published.
    fn matched(&self) -> usize {
        self.renders.iter().filter(|render| self.reading_for(render).is_some()).count()
    }

    fn reading_for(&self, render: &Value) -> Option<&Value> {
        self.readings.iter().find(|reading| {
            let Some(watts) = reading["watts"].as_f64() else { return false };
            render["text"] == json!(format!("{watts:.1} W")) && render["watts"].as_f64() == Some(watts)
        })
    }

    fn complete(&self) -> bool {
        self.readings.len() >= WANTED && self.matched() >= WANTED
    }
}

fn diagnostics(daemon: &Daemon, seen: &Seen) -> String {
    let cli = |args: &[&str]| {
        let output = daemon.cli(args);
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    };
    format!(
        "{} energy.update from {SENSOR}, {} ui.render from {MONITOR} ({} matching a reading)\n\
         events:\n{}\nps:\n{}\nviolations:\n{}\nlogs energy_sensor:\n{}\nlogs energy_monitor:\n{}\ndaemon log:\n{}",
        seen.readings.len(),
        seen.renders.len(),
        seen.matched(),
        seen.lines.join("\n"),
        cli(&["ps"]),
        cli(&["violations"]),
        cli(&["logs", "energy_sensor"]),
        cli(&["logs", "energy_monitor"]),
        daemon.log(),
    )
}

#[test]
fn the_sensor_feeds_the_monitor_and_events_show_both_with_their_own_sender() {
    require_root();
    let daemon = Daemon::start();
    let sensor = sensor_plugin();
    // The consumer first, so that it is connected before the first reading.
    start(&daemon, &workspace_root().join("examples/plugins/energy-monitor/manifest.json"));
    start(&daemon, &sensor.manifest());
    // Started after both: the backlog replays what was published before it attached.
    let follower = Follower::spawn(&daemon);

    let mut seen = Seen::default();
    let deadline = Instant::now() + LIMIT;
    while !seen.complete() {
        let left = deadline.saturating_duration_since(Instant::now());
        match follower.lines.recv_timeout(left) {
            Ok(line) => seen.record(line),
            Err(_) => panic!("not every example's events arrived within {LIMIT:?}:\n{}", diagnostics(&daemon, &seen)),
        }
    }

    // The sensor's readings are its typed payload, numbered from 1 in order.
    for (n, reading) in seen.readings.iter().enumerate() {
        let object = reading.as_object().unwrap_or_else(|| panic!("not an object: {reading}"));
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["seq", "source", "watts"], "{reading}");
        assert_eq!(reading["seq"], json!(n as u64 + 1), "readings arrive in order, none lost: {reading}");
        assert_eq!(reading["source"], "synthetic-meter");
        let watts = reading["watts"].as_f64().unwrap_or(-1.0);
        assert!((0.0..10_000.0).contains(&watts), "{reading}");
    }
    // Every rendering the monitor published is of a reading the sensor published.
    for render in &seen.renders {
        assert_eq!(render["widget"], "energy", "{render}");
        // (The follower sees a reading before its rendering: the broker hands it to the follower
        // when the sensor publishes it, before the monitor has even read it.)
        assert!(
            seen.reading_for(render).is_some(),
            "a rendering of no reading: {render}\n{}",
            diagnostics(&daemon, &seen)
        );
    }
}
