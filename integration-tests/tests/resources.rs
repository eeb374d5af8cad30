//! cgroup and wall-clock limits, observed from the kernel's own accounting.

use serde_json::json;
use wf_integration_tests::probe_with;

fn cgroup_dirs(report: &serde_json::Value) -> Vec<String> {
    report["enforced"]["cgroups"]["detail"]["hierarchies"]
        .as_array()
        .map(|h| h.iter().filter_map(|d| d["dir"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[test]
fn allocating_past_max_mb_ends_in_an_oom_kill_the_report_names() {
    let result = probe_with(json!({"permissions": {"resources": {"memory": {"max_mb": 32}}}}), &["alloc-mb", "256"]);
    assert_eq!(result.status, 128 + libc::SIGKILL, "{}", result.stderr);
    assert_eq!(result.report["exit"]["cause"], "oom_kill", "{}", result.report);
    let v = result.violation_of_kind("oom_kill").expect("oom_kill violation");
    assert_eq!(v["layer"], "resources");
    assert_eq!(v["rule"], "/permissions/resources/memory/max_mb");
    let peak = result.report["usage"]["peak_memory_bytes"].as_u64().unwrap_or(0);
    assert!(peak <= 33 * 1024 * 1024, "peak {peak} above the 32 MiB limit");
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit_and_leaves_nothing_behind() {
    let result = probe_with(json!({"permissions": {"resources": {"pids": {"max": 16}}}}), &["fork-bomb"]);
    let line = result.probe();
    assert_eq!(line["errno"], libc::EAGAIN, "{line}");
    let forked = line["children"].as_u64().unwrap_or(u64::MAX);
    assert!(forked < 16, "forked {forked} processes past a pids limit of 16: {line}");
    assert!(result.violation_of_kind("pids_limit").is_some(), "{}", result.report);
    let dirs = cgroup_dirs(&result.report);
    assert!(!dirs.is_empty());
    for dir in dirs {
        assert!(!std::path::Path::new(&dir).exists(), "cgroup {dir} left behind");
    }
}

#[test]
fn a_cpu_bound_plugin_is_held_near_max_percent() {
    let result = probe_with(json!({"permissions": {"resources": {"cpu": {"max_percent": 20}}}}), &["burn-cpu", "2"]);
    assert_eq!(result.status, 0, "{}", result.stderr);
    let usage = result.report["usage"]["cpu_usage_usec"].as_f64().unwrap_or(0.0);
    let wall = result.report["usage"]["wall_ms"].as_f64().unwrap_or(1.0) * 1000.0;
    let share = usage / wall;
    // 20% of one CPU, with room for scheduling noise on a shared 2-core machine.
    assert!((0.10..=0.27).contains(&share), "CPU share {share:.3} (usage {usage} us over {wall} us)");
    assert!(result.report["usage"]["cpu_throttled_periods"].as_u64().unwrap_or(0) > 0, "{}", result.report);
}

#[test]
fn the_wall_clock_limit_kills_the_plugin() {
    let result =
        probe_with(json!({"permissions": {"resources": {"wall_clock": {"max_seconds": 1}}}}), &["sleep", "30"]);
    assert_eq!(result.status, 128 + libc::SIGKILL, "{}", result.stderr);
    assert_eq!(result.report["exit"]["cause"], "wall_clock_limit");
    let wall = result.report["usage"]["wall_ms"].as_u64().unwrap_or(0);
    assert!((1000..10_000).contains(&wall), "ran {wall} ms");
    assert!(result.violation_of_kind("wall_clock_limit").is_some());
}
