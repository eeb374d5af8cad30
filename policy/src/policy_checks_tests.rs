use super::*;
use serde_json::json;

fn pointers(problems: &Problems) -> Vec<String> {
    problems.clone().normalized().iter().map(|p| p.pointer.clone()).collect()
}

fn assert_only(doc: Value, pointer: &str, reason_part: &str) {
    let problems = check_policy(&doc);
    assert_eq!(pointers(&problems), [pointer], "{problems}");
    let reason = &problems.iter().next().expect("one problem").reason;
    assert!(reason.contains(reason_part), "{reason:?} lacks {reason_part:?}");
}

#[test]
fn empty_and_default_documents_have_no_problems() {
    assert!(check_policy(&json!({})).is_empty());
    let default = serde_json::to_value(SecurityPolicy::default()).unwrap();
    assert!(check_policy(&default).is_empty());
}

#[test]
fn default_above_its_ceiling_names_the_ceiling() {
    let doc = json!({"sandbox": {"defaults": {"memory_mb": 2048}}});
    assert_only(doc, "/sandbox/defaults/memory_mb", "/sandbox/ceilings/max_memory_mb (1024)");
}

#[test]
fn lowered_ceiling_below_an_implicit_default() {
    let doc = json!({"sandbox": {"ceilings": {"max_pids": 10}}});
    assert_only(doc, "/sandbox/defaults/pids", "built-in default");
}

#[test]
fn ceilings_zero_or_above_the_hard_maximum() {
    assert_only(
        json!({"sandbox": {"ceilings": {"max_cpu_percent": 0, "max_memory_mb": 1024}}}),
        "/sandbox/ceilings/max_cpu_percent",
        "at least 1",
    );
    let doc = json!({"sandbox": {"ceilings": {"max_memory_mb": hard::MEMORY_MB + 1}}});
    assert_only(doc, "/sandbox/ceilings/max_memory_mb", "built-in maximum");
    assert_only(
        json!({"sandbox": {"ceilings": {"max_event_bytes": 16_777_217}}}),
        "/sandbox/ceilings/max_event_bytes",
        "built-in maximum",
    );
}

#[test]
fn identity_may_not_be_root() {
    assert_only(json!({"sandbox": {"identity": {"outside_uid": 0}}}), "/sandbox/identity/outside_uid", "must not be 0");
    assert_only(
        json!({"sandbox": {"identity": {"outside_gid": 4_294_967_295u64}}}),
        "/sandbox/identity/outside_gid",
        "built-in maximum",
    );
}

#[test]
fn layer_both_required_and_degradable() {
    assert_only(
        json!({"sandbox": {"degradable_layers": ["landlock"]}}),
        "/sandbox/degradable_layers/0",
        "also listed in /sandbox/required_layers",
    );
}

#[test]
fn layer_in_neither_list() {
    assert_only(
        json!({"sandbox": {"required_layers": ["namespaces", "seccomp", "capabilities", "cgroups", "rlimits"]}}),
        "/sandbox/required_layers",
        "landlock is in neither",
    );
    let doc = json!({"sandbox": {"required_layers": ["namespaces", "seccomp", "capabilities", "cgroups", "rlimits"],
                                 "degradable_layers": ["landlock"]}});
    assert!(check_policy(&doc).is_empty());
}

#[test]
fn allowed_host_paths_must_be_absolute_and_not_special() {
    let doc = json!({"sandbox": {"allowed_host_paths": [
        {"path": "/srv/data", "access": "read_only"},
        {"path": "/", "access": "read_only"},
        {"path": "/proc/1", "access": "read_only"},
        {"path": "srv", "access": "read_write"},
        {"path": "/srv/../etc", "access": "read_write"}]}});
    let problems = check_policy(&doc);
    assert_eq!(
        pointers(&problems),
        [
            "/sandbox/allowed_host_paths/1/path",
            "/sandbox/allowed_host_paths/2/path",
            "/sandbox/allowed_host_paths/3/path",
            "/sandbox/allowed_host_paths/4/path"
        ]
    );
}

#[test]
fn runtime_paths_must_be_absolute_and_avoid_reserved_places() {
    let doc = json!({"sandbox": {"runtimes": {"native": {"paths": ["/lib64", "lib", "/tmp/lib", "/"]}}}});
    let problems = check_policy(&doc);
    assert_eq!(
        pointers(&problems),
        ["/sandbox/runtimes/native/paths/1", "/sandbox/runtimes/native/paths/2", "/sandbox/runtimes/native/paths/3"]
    );
}

#[test]
fn interpreter_binary_must_be_within_its_paths() {
    let doc = json!({"sandbox": {"runtimes": {"interpreters": {"python3": {
        "path": "/usr/local/bin/python3", "args": [], "extensions": [".py"], "paths": ["/usr/lib"]}}}}});
    assert_only(doc, "/sandbox/runtimes/interpreters/python3/path", "not within any");
}

#[test]
fn an_extension_belongs_to_one_interpreter() {
    let interp = json!({"path": "/usr/bin/x", "args": [], "extensions": [".py"], "paths": ["/usr/bin/x"]});
    let doc = json!({"sandbox": {"runtimes": {"interpreters": {"a": interp.clone(), "b": interp}}}});
    assert_only(doc, "/sandbox/runtimes/interpreters/b/extensions/0", "already claimed");
}

#[test]
fn interpreter_args_and_extensions_are_checked() {
    let doc = json!({"sandbox": {"runtimes": {"interpreters": {"x": {
        "path": "/usr/bin/x", "args": ["-a\u{0}b"], "extensions": ["py"], "paths": ["/usr/bin/x"]}}}}});
    let problems = check_policy(&doc);
    assert_eq!(
        pointers(&problems),
        ["/sandbox/runtimes/interpreters/x/args/0", "/sandbox/runtimes/interpreters/x/extensions/0"]
    );
}

#[test]
fn service_paths_must_be_absolute() {
    assert_only(json!({"audit": {"path": "audit.log"}}), "/audit/path", "absolute");
    assert_only(json!({"data_protection": {"state_dir": "/var/../x"}}), "/data_protection/state_dir", "'..'");
    assert_only(json!({"sandbox": {"cgroup_parent": "/"}}), "/sandbox/cgroup_parent", "must not be '/'");
}

#[test]
fn tmp_wipe_cannot_be_switched_off() {
    assert_only(
        json!({"data_protection": {"temp": {"wipe_on_exit": false}}}),
        "/data_protection/temp/wipe_on_exit",
        "must be true",
    );
}

#[test]
fn backoff_max_below_initial() {
    assert_only(
        json!({"authentication": {"failed_auth": {"backoff_initial_ms": 5000, "backoff_max_ms": 100}}}),
        "/authentication/failed_auth/backoff_max_ms",
        "below",
    );
}

#[test]
fn zero_rate_limit_or_session_timeout() {
    assert_only(
        json!({"authentication": {"rate_limit": {"requests_per_second": 0}}}),
        "/authentication/rate_limit/requests_per_second",
        "at least 1",
    );
    assert_only(
        json!({"authentication": {"session_timeout_minutes": 0}}),
        "/authentication/session_timeout_minutes",
        "at least 1",
    );
}

#[test]
fn token_entries_must_be_hashes() {
    assert_only(
        json!({"authentication": {"token_sha256": ["my-secret-token"]}}),
        "/authentication/token_sha256/0",
        "64 lowercase hex",
    );
    let ok = json!({"authentication": {"token_sha256": ["a".repeat(64)]}});
    assert!(check_policy(&ok).is_empty());
}

#[test]
fn metrics_listener_must_be_loopback_when_localhost_only() {
    assert_only(json!({"metrics": {"listen": "0.0.0.0:9464"}}), "/metrics/listen", "not a loopback");
    assert_only(json!({"metrics": {"listen": "localhost"}}), "/metrics/listen", "address:port");
    assert!(check_policy(&json!({"metrics": {"listen": "[::1]:9464"}})).is_empty());
    let open = json!({"network": {"localhost_only": false}, "metrics": {"listen": "0.0.0.0:9464"}});
    assert!(check_policy(&open).is_empty());
}

#[test]
fn negative_stop_grace_and_zero_allowed() {
    assert!(check_policy(&json!({"sandbox": {"stop_grace_seconds": 0}})).is_empty());
    assert_only(json!({"sandbox": {"stop_grace_seconds": -1}}), "/sandbox/stop_grace_seconds", "negative");
}

#[test]
fn a_group_readable_socket_needs_a_group_and_a_group_needs_that_mode() {
    let missing = check_policy(&serde_json::json!({"authentication": {"socket_mode": "0660"}}));
    assert!(missing.has_pointer("/authentication/socket_group"), "{missing}");
    let unused = check_policy(&serde_json::json!({"authentication": {"socket_group": 100}}));
    assert!(unused.has_pointer("/authentication/socket_group"), "{unused}");
    let fine = check_policy(&serde_json::json!({"authentication": {"socket_mode": "0660", "socket_group": 100}}));
    assert!(!fine.has_pointer("/authentication/socket_group"), "{fine}");
}

#[test]
fn event_rate_default_above_its_ceiling_names_the_ceiling() {
    let doc = json!({"sandbox": {"defaults": {"event_rate": {"burst": 20_001}}}});
    assert_only(doc, "/sandbox/defaults/event_rate/burst", "/sandbox/ceilings/max_event_rate/burst (20000)");
    let doc = json!({"sandbox": {"defaults": {"event_rate": {"bytes_per_second": 64 << 20}},
                                 "ceilings": {"max_event_rate": {"bytes_per_second": 32 << 20}}}});
    assert_only(doc, "/sandbox/defaults/event_rate/bytes_per_second", "max_event_rate/bytes_per_second (33554432)");
}

#[test]
fn lowered_event_rate_ceiling_below_an_implicit_default() {
    let doc = json!({"sandbox": {"ceilings": {"max_event_rate": {"events_per_second": 500}}}});
    assert_only(doc, "/sandbox/defaults/event_rate/events_per_second", "built-in default");
    let doc = json!({"sandbox": {"ceilings": {"max_event_rate": {"events_per_second": 500}},
                                 "defaults": {"event_rate": {"events_per_second": 500}}}});
    assert!(check_policy(&doc).is_empty());
}

#[test]
fn event_rate_ceilings_zero_or_above_the_hard_maximum() {
    for (field, bad, reason) in [
        ("events_per_second", json!(0), "at least 1"),
        ("events_per_second", json!(1_000_001), "built-in maximum 1000000"),
        ("burst", json!(-3), "at least 1"),
        ("burst", json!(1_000_001), "built-in maximum 1000000"),
        ("bytes_per_second", json!(1023), "at least 1024"),
        ("bytes_per_second", json!(1_073_741_825u64), "built-in maximum 1073741824"),
        ("bytes_per_second", json!("1MiB"), "whole number"),
    ] {
        // Defaults set to the minimum so only the ceiling is at fault.
        let doc = json!({"sandbox": {"ceilings": {"max_event_rate": {field: bad}},
                                     "defaults": {"event_rate": {field: if field == "bytes_per_second" { 1024 } else { 1 }}}}});
        assert_only(doc, &format!("/sandbox/ceilings/max_event_rate/{field}"), reason);
    }
}

#[test]
fn event_rate_defaults_zero_or_fractional() {
    let doc = json!({"sandbox": {"defaults": {"event_rate": {"events_per_second": 0}}}});
    assert_only(doc, "/sandbox/defaults/event_rate/events_per_second", "never means unlimited");
    let doc = json!({"sandbox": {"defaults": {"event_rate": {"burst": 1.5}}}});
    assert_only(doc, "/sandbox/defaults/event_rate/burst", "whole number");
}
