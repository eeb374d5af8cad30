//! The event channel: initial events are delivered only on readable topics; publishes are
//! printed when granted, refused and reported otherwise. And both examples run.

use serde_json::json;
use wf_integration_tests::{binary, probe_with, require_root, run, workspace_root, PluginDir};

#[test]
fn an_ungranted_publish_is_refused_and_reported() {
    let result = probe_with(
        json!({"permissions": {"events": {"read": [], "write": ["energy.update"]}}}),
        &["publish", "secrets.leak", "{\"k\": 1}"],
    );
    assert_eq!(result.status, 0, "{}", result.stderr);
    assert!(result.published.is_empty(), "refused event was printed: {:?}", result.published);
    let v = result.violation_of_kind("topic_denied").expect("topic_denied violation");
    assert_eq!(v["layer"], "broker");
    assert_eq!(v["detail"]["topic"], "secrets.leak");
    assert_eq!(v["rule"], "/permissions/events/write");
    assert_eq!(result.report["events"]["denied"], 1);
}

#[test]
fn a_granted_publish_is_printed_as_a_json_line() {
    let result = probe_with(
        json!({"permissions": {"events": {"write": ["energy.update"]}}}),
        &["publish", "energy.update", "{\"watts\": 3}"],
    );
    assert_eq!(result.published, vec![json!({"topic": "energy.update", "payload": {"watts": 3}})], "{}", result.stderr);
}

#[test]
fn ui_topics_need_the_ui_render_grant() {
    let refused = probe_with(json!({}), &["publish", "ui.render", "{}"]);
    assert_eq!(refused.violation_of_kind("topic_denied").expect("refused")["rule"], "/permissions/system/ui/render");
    let allowed =
        probe_with(json!({"permissions": {"system": {"ui": {"render": true}}}}), &["publish", "ui.render", "{}"]);
    assert_eq!(allowed.published.len(), 1, "{}", allowed.stderr);
}

#[test]
fn only_readable_events_are_delivered() {
    require_root();
    let plugin = PluginDir::probe(json!({"permissions": {"events": {"read": ["energy.update"]}}}));
    let result = run(
        &plugin.manifest(),
        &["--event", "energy.update={\"watts\": 1}", "--event", "other.topic={\"x\": 2}"],
        &["echo-events"],
    );
    assert_eq!(result.report["events"]["delivered"], 1, "{}", result.stderr);
    assert_eq!(result.report["events"]["not_delivered"], 1);
    assert!(result.stderr.contains("energy.update"), "{}", result.stderr);
    assert!(!result.stderr.contains("\"x\":2"), "ungranted event reached the plugin: {}", result.stderr);
}

#[test]
fn the_python_example_renders_energy_updates() {
    require_root();
    let manifest = workspace_root().join("examples/plugins/energy-monitor/manifest.json");
    let result = run(&manifest, &["--event", "energy.update={\"watts\": 42.5}"], &[]);
    assert_eq!(result.status, 0, "{}", result.stderr);
    assert_eq!(result.published.len(), 1, "{}", result.stderr);
    assert_eq!(result.published[0]["topic"], "ui.render");
    assert_eq!(result.report["enforced"]["landlock"]["status"], "enforced");
}

#[test]
fn the_native_example_runs() {
    require_root();
    let plugin = PluginDir::empty();
    let example = workspace_root().join("examples/plugins/native-counter/manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(example).unwrap()).unwrap();
    let entry = manifest["entry_point"].as_str().unwrap().to_owned();
    std::fs::create_dir_all(plugin.path().join(&entry).parent().unwrap()).unwrap();
    plugin.install_file(&binary("native-counter"), &entry, 0o755);
    for dir in plugin.path().join(&entry).ancestors().skip(1).take_while(|d| d.starts_with(plugin.path())) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    manifest["name"] = json!("native_counter_test");
    plugin.write_manifest(&manifest);
    let result = run(&plugin.manifest(), &["--event", "energy.update={\"watts\": 5}"], &[]);
    assert_eq!(result.status, 0, "{}", result.stderr);
    assert!(!result.published.is_empty(), "{}", result.stderr);
}

#[test]
fn a_publish_flood_is_rate_limited_and_reported() {
    let result = probe_with(
        json!({"permissions": {"events": {"write": ["energy.update"]}}}),
        &["publish-many", "20000", "energy.update"],
    );
    assert_eq!(result.status, 0, "{}", result.stderr);
    let published = result.report["events"]["published"].as_u64().unwrap_or(0);
    let denied = result.report["events"]["denied"].as_u64().unwrap_or(0);
    assert_eq!(published + denied, 20000, "{}", result.report["events"]);
    assert!(denied > 0, "a flood of 20000 events was not limited: {}", result.report["events"]);
    assert_eq!(result.published.len() as u64, published, "refused events reached stdout");
    let v = result.violation_of_kind("rate_limited").expect("rate_limited violation");
    assert_eq!(v["layer"], "broker");
    // Violations are recorded up to a cap and counted past it.
    assert!(result.violations().len() <= 100);
}

#[test]
fn frames_that_break_the_channel_rules_are_refused_and_reported() {
    for (kind, violation) in [
        ("oversized", "oversized_frame"),
        ("invalid-utf8", "malformed_frame"),
        ("deep", "malformed_frame"),
        ("unknown-field", "malformed_frame"),
    ] {
        let result = probe_with(json!({"permissions": {"events": {"write": ["a"]}}}), &["send-bad-frame", kind]);
        // The supervisor survived it and finished the run normally.
        assert_eq!(result.status, 0, "{kind}: {}", result.stderr);
        assert!(result.published.is_empty(), "{kind}: a bad frame was published");
        let v = result
            .violation_of_kind(violation)
            .unwrap_or_else(|| panic!("{kind}: no {violation} in {}", result.report));
        assert_eq!(v["layer"], "broker");
        assert_eq!(result.probe()["closed"], true, "{kind}: channel left open: {}", result.probe());
    }
}

#[test]
fn a_host_consumer_that_stops_reading_cannot_stall_the_supervisor() {
    require_root();
    let plugin = PluginDir::probe(json!({"permissions": {"events": {"write": ["a"]},
        "resources": {"wall_clock": {"max_seconds": 2}}}}));
    // stdout is a pipe nobody reads: the supervisor's writes would block forever.
    let mut child = std::process::Command::new(wf_integration_tests::wfsandbox())
        .arg("run")
        .arg(plugin.manifest())
        .args(["--", "publish-many", "1000000", "a"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("wfsandbox hung on a stalled stdout consumer");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(128 + libc::SIGKILL), "the wall clock ended the plugin");
    drop(child.stdout.take());
}
