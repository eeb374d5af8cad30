//! Exit statuses and refusals of the CLI.

use serde_json::json;
use std::process::Command;
use wf_integration_tests::{probe_with, require_root, run, wfsandbox, workspace_root, PluginDir};

#[test]
fn the_plugins_exit_status_and_signals_pass_through() {
    assert_eq!(probe_with(json!({}), &["exit", "7"]).status, 7);
    let killed = probe_with(json!({}), &["kill-self", "11"]);
    assert_eq!(killed.status, 128 + 11, "{}", killed.stderr);
    assert_eq!(killed.report["exit"]["cause"], "signaled");
}

#[test]
fn an_invalid_manifest_is_refused_with_125_and_the_field() {
    require_root();
    let plugin = PluginDir::probe(json!({"permissions": {"resources": {"memory": {"max_mb": 0}}}}));
    let result = run(&plugin.manifest(), &[], &["exit", "0"]);
    assert_eq!(result.status, 125);
    assert!(result.stderr.contains("/permissions/resources/memory/max_mb"), "{}", result.stderr);
}

#[test]
fn a_missing_entry_point_is_refused_before_anything_runs() {
    require_root();
    let plugin = PluginDir::empty();
    plugin.write_manifest(&json!({"name": "ghost", "version": "1.0.0", "entry_point": "nope"}));
    let result = run(&plugin.manifest(), &[], &[]);
    assert_eq!(result.status, 125, "{}", result.stderr);
    assert_eq!(result.report["exit"]["cause"], "refused");
    assert_eq!(result.report["exit"]["step"], "entry_point");
}

#[test]
fn an_entry_point_symlinked_out_of_the_plugin_dir_is_refused() {
    require_root();
    let plugin = PluginDir::empty();
    std::os::unix::fs::symlink("/bin/true", plugin.path().join("main")).unwrap();
    plugin.write_manifest(&json!({"name": "escape", "version": "1.0.0", "entry_point": "main"}));
    let result = run(&plugin.manifest(), &[], &[]);
    assert_eq!(result.status, 125, "{}", result.stderr);
}

#[test]
fn validate_lists_every_problem_with_its_pointer() {
    let plugin = PluginDir::empty();
    plugin.write_manifest(&json!({
        "name": "Bad Name", "version": "1.0.0", "entry_point": "../x",
        "permissions": {"events": {"read": ["Energy..update"]}, "resources": {"pids": {"max": 0}}}
    }));
    let out = Command::new(wfsandbox()).arg("validate").arg(plugin.manifest()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for pointer in ["/name", "/entry_point", "/permissions/events/read/0", "/permissions/resources/pids/max"] {
        assert!(stderr.contains(pointer), "{pointer} not reported:\n{stderr}");
    }
}

#[test]
fn validate_accepts_the_platform_example_and_explain_shows_origins() {
    let manifest = workspace_root().join("schemas/examples/manifest-platform-example.json");
    let out = Command::new(wfsandbox()).arg("validate").arg(&manifest).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(wfsandbox()).args(["explain", "--json"]).arg(&manifest).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let spec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(spec["cgroup"]["memory_max_bytes"]["value"], 64 * 1024 * 1024);
    assert_eq!(spec["cgroup"]["memory_max_bytes"]["from"]["pointer"], "/permissions/resources/memory/max_mb");
}

#[test]
fn a_policy_ceiling_below_the_request_refuses_the_manifest() {
    let dir = PluginDir::probe(json!({"permissions": {"resources": {"memory": {"max_mb": 512}}}}));
    dir.write_file(
        "policy.json",
        br#"{"sandbox": {"ceilings": {"max_memory_mb": 256}, "defaults": {"memory_mb": 128}}}"#,
        0o644,
    );
    let out = Command::new(wfsandbox())
        .arg("validate")
        .arg(dir.manifest())
        .arg("--policy")
        .arg(dir.path().join("policy.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_memory_mb"));
}

/// A policy whose cgroup parent does not exist makes the cgroup layer unavailable.
fn policy_without_usable_cgroups(dir: &PluginDir, degradable: bool) -> std::path::PathBuf {
    let layers = if degradable {
        json!({"required_layers": ["namespaces", "landlock", "seccomp", "capabilities", "rlimits"],
               "degradable_layers": ["cgroups"]})
    } else {
        json!({})
    };
    let mut policy = json!({"sandbox": {"cgroup_parent": "/wf-test-no-such-ancestor/child.slice"}});
    wf_integration_tests::merge(&mut policy["sandbox"], layers);
    dir.write_file("policy.json", policy.to_string().as_bytes(), 0o644);
    dir.path().join("policy.json")
}

#[test]
fn a_missing_layer_is_refused_unless_the_policy_lets_it_degrade() {
    require_root();
    let plugin = PluginDir::probe(json!({"permissions": {"resources": {"wall_clock": {"max_seconds": 1}}}}));
    let strict = policy_without_usable_cgroups(&plugin, false);
    let refused = run(&plugin.manifest(), &["--policy", strict.to_str().unwrap()], &["exit", "0"]);
    assert_eq!(refused.status, 125, "{}", refused.stderr);
    assert_eq!(refused.report["exit"]["step"], "cgroups");

    let lenient = policy_without_usable_cgroups(&plugin, true);
    let degraded = run(&plugin.manifest(), &["--policy", lenient.to_str().unwrap()], &["sleep", "30"]);
    assert_eq!(degraded.report["enforced"]["cgroups"]["status"], "degraded", "{}", degraded.report);
    assert_eq!(degraded.report["enforced"]["seccomp"]["status"], "enforced");
    // Without a cgroup to kill, the wall-clock limit still ends the plugin.
    assert_eq!(degraded.status, 128 + libc::SIGKILL, "{}", degraded.stderr);
    assert_eq!(degraded.report["exit"]["cause"], "wall_clock_limit");
}

#[test]
fn the_report_says_what_was_enforced_and_used() {
    let result = probe_with(json!({"permissions": {"resources": {"memory": {"max_mb": 48}}}}), &["alloc-mb", "8"]);
    assert_eq!(result.status, 0, "{}", result.stderr);
    let enforced = &result.report["enforced"];
    for layer in ["namespaces", "filesystem", "landlock", "seccomp", "capabilities", "cgroups", "rlimits"] {
        assert_eq!(enforced[layer]["status"], "enforced", "{layer}: {enforced}");
    }
    assert_eq!(enforced["no_new_privs"], true);
    assert!(enforced["landlock"]["detail"]["abi"].as_i64().unwrap_or(0) >= 1);
    assert_eq!(enforced["landlock"]["detail"]["fully_enforced"], true);
    let hash = enforced["seccomp"]["detail"]["sha256"].as_str().unwrap_or_default();
    assert!(hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{hash}");
    assert!(enforced["seccomp"]["detail"]["filter_instructions"].as_u64().unwrap_or(0) > 100);
    assert_eq!(enforced["cgroups"]["detail"]["memory_max_bytes"], 48 * 1024 * 1024);
    assert_eq!(enforced["cgroups"]["detail"]["swap"]["max_bytes"], 0);
    let usage = &result.report["usage"];
    let peak = usage["peak_memory_bytes"].as_u64().unwrap_or(0);
    assert!(peak >= 8 * 1024 * 1024, "peak memory {peak} below what the plugin touched");
    assert!(usage["cpu_usage_usec"].as_u64().unwrap_or(0) > 0);
    assert_eq!(result.report["exit"]["cause"], "exited");
}

#[test]
fn a_symlinked_manifest_cannot_choose_the_plugin_directory() {
    require_root();
    let real = PluginDir::probe(json!({}));
    let decoy = PluginDir::empty();
    std::os::unix::fs::symlink(real.manifest(), decoy.path().join("manifest.json")).unwrap();
    let result = run(&decoy.path().join("manifest.json"), &[], &["exit", "0"]);
    assert_eq!(result.status, 125, "{}", result.stderr);
    assert!(result.stderr.contains("symlink"), "{}", result.stderr);
}

#[test]
fn stopping_the_supervisor_kills_the_sandbox_and_removes_its_cgroups() {
    require_root();
    let plugin = PluginDir::probe(json!({}));
    let report = plugin.path().join("report.json");
    let mut child = Command::new(wfsandbox())
        .arg("run")
        .arg(plugin.manifest())
        .arg("--report")
        .arg(&report)
        .args(["--", "sleep", "30"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the plugin runs (its pid namespace init is a `probe` process).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !plugin_running(plugin.path()) {
        assert!(std::time::Instant::now() < deadline, "the plugin never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: signalling the wfsandbox process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["exit"]["cause"], "interrupted", "{report}");
    assert!(!plugin_running(plugin.path()), "the plugin outlived the supervisor");
    let dirs = report["enforced"]["cgroups"]["detail"]["hierarchies"].as_array().cloned().unwrap_or_default();
    assert!(!dirs.is_empty());
    for dir in dirs {
        let dir = dir["dir"].as_str().unwrap_or_default();
        assert!(!std::path::Path::new(dir).exists(), "cgroup {dir} left behind");
    }
}

/// Is a process running the probe from this plugin directory? (Its /proc/PID/cmdline
/// names /plugin/probe; the plugin dir is unique to the test, matched via the mount.)
fn plugin_running(plugin_dir: &std::path::Path) -> bool {
    let needle = plugin_dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").into_iter().flatten().flatten().any(|entry| {
        let pid_dir = entry.path();
        let cmdline = std::fs::read(pid_dir.join("cmdline")).unwrap_or_default();
        cmdline.starts_with(b"/plugin/probe\0sleep")
            && std::fs::read_to_string(pid_dir.join("mountinfo")).is_ok_and(|m| m.contains(&needle))
    })
}
