use super::*;
use crate::security_policy::AllowedHostPath;
use serde_json::json;

fn example() -> Value {
    json!({"name": "my_plugin", "version": "1.0.0", "description": "Example plugin", "author": "Developer",
           "entry_point": "main.py",
           "permissions": {"events": {"read": ["energy.update"], "write": []},
                           "system": {"network": {"enabled": false},
                                      "filesystem": {"enabled": false, "temp_only": true},
                                      "ui": {"render": true}},
                           "resources": {"memory": {"max_mb": 64}, "cpu": {"max_percent": 10}}}})
}

/// `example()` with the value at `pointer` replaced (parents created as objects).
fn with(pointer: &str, value: Value) -> Value {
    let mut doc = example();
    let mut node = &mut doc;
    let tokens: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, token) in tokens.iter().enumerate() {
        let last = i + 1 == tokens.len();
        let object = node.as_object_mut().expect("test pointers walk objects");
        if last {
            object.insert((*token).to_owned(), value);
            break;
        }
        node = object.entry((*token).to_owned()).or_insert_with(|| json!({}));
    }
    doc
}

fn grants_policy() -> SecurityPolicy {
    let mut policy = SecurityPolicy::default();
    policy.sandbox.allowed_host_paths = vec![
        AllowedHostPath { path: "/srv/data".into(), access: HostPathAccess::ReadOnly },
        AllowedHostPath { path: "/srv/rw".into(), access: HostPathAccess::ReadWrite },
    ];
    policy
}

fn pointers(problems: &Problems) -> Vec<String> {
    problems.clone().normalized().iter().map(|p| p.pointer.clone()).collect()
}

fn assert_only(doc: &Value, policy: &SecurityPolicy, pointer: &str, reason_part: &str) {
    let problems = check_manifest(doc, policy);
    assert_eq!(pointers(&problems), [pointer], "{problems}");
    let reason = &problems.iter().next().expect("one problem").reason;
    assert!(reason.contains(reason_part), "{reason:?} lacks {reason_part:?}");
}

#[test]
fn the_platform_example_has_no_problems() {
    assert!(check_manifest(&example(), &SecurityPolicy::default()).is_empty());
}

#[test]
fn bad_name() {
    assert_only(&with("/name", json!("My Plugin")), &SecurityPolicy::default(), "/name", "lowercase");
}

#[test]
fn bad_version() {
    assert_only(&with("/version", json!("1.0")), &SecurityPolicy::default(), "/version", "MAJOR.MINOR.PATCH");
}

#[test]
fn entry_point_escaping_the_plugin_directory() {
    let policy = SecurityPolicy::default();
    assert_only(&with("/entry_point", json!("../outside.py")), &policy, "/entry_point", "'..'");
    assert_only(&with("/entry_point", json!("lib/../../x")), &policy, "/entry_point", "'..'");
}

#[test]
fn entry_point_absolute_nul_control_or_empty() {
    let policy = SecurityPolicy::default();
    assert_only(&with("/entry_point", json!("/usr/bin/python3")), &policy, "/entry_point", "relative");
    assert_only(&with("/entry_point", json!("main\u{0}.py")), &policy, "/entry_point", "NUL");
    assert_only(&with("/entry_point", json!("main\n.py")), &policy, "/entry_point", "control");
    assert_only(&with("/entry_point", json!("")), &policy, "/entry_point", "empty");
}

#[test]
fn unknown_interpreter() {
    let doc = with("/runtime", json!({"interpreter": "ruby"}));
    assert_only(&doc, &SecurityPolicy::default(), "/runtime/interpreter", "not provided by the policy");
    let doc = with("/runtime", json!({"interpreter": "../sh"}));
    assert_only(&doc, &SecurityPolicy::default(), "/runtime/interpreter", "lowercase letter");
}

#[test]
fn bad_topics_and_repeats() {
    let doc = with(
        "/permissions/events",
        json!({"read": ["Energy.update", "a..b", "ok.*", "ok.*"],
                                                   "write": ["*", &"a".repeat(129)]}),
    );
    let problems = check_manifest(&doc, &SecurityPolicy::default());
    assert_eq!(
        pointers(&problems),
        [
            "/permissions/events/read/0",
            "/permissions/events/read/1",
            "/permissions/events/read/3",
            "/permissions/events/write/0",
            "/permissions/events/write/1"
        ]
    );
    assert!(problems.to_string().contains("listed twice"));
    assert!(problems.to_string().contains("longer than 128"));
}

#[test]
fn network_is_refused() {
    let doc = with(NETWORK_POINTER, json!(true));
    assert_only(&doc, &SecurityPolicy::default(), NETWORK_POINTER, "network grants are not supported yet");
}

#[test]
fn grants_need_filesystem_enabled() {
    let doc = with("/permissions/system/filesystem", json!({"read": [{"path": "/srv/data"}]}));
    assert_only(&doc, &grants_policy(), "/permissions/system/filesystem/read", "enabled: true");
}

#[test]
fn write_grants_need_temp_only_false() {
    let doc = with("/permissions/system/filesystem", json!({"enabled": true, "write": [{"path": "/srv/rw/out"}]}));
    assert_only(&doc, &grants_policy(), "/permissions/system/filesystem/write", "temp_only: false");
}

#[test]
fn grants_within_the_policy_pass() {
    let doc = with(
        "/permissions/system/filesystem",
        json!({
        "enabled": true, "temp_only": false,
        "read": [{"path": "/srv/data/models", "inside": "/models", "optional": true}],
        "write": [{"path": "/srv/rw/out"}]}),
    );
    assert!(check_manifest(&doc, &grants_policy()).is_empty());
}

#[test]
fn grant_outside_allowed_host_paths() {
    let doc = with(
        "/permissions/system/filesystem",
        json!({"enabled": true, "read": [{"path": "/srv/data2"}, {"path": "/etc/shadow"}]}),
    );
    let problems = check_manifest(&doc, &grants_policy());
    assert_eq!(
        pointers(&problems),
        ["/permissions/system/filesystem/read/0/path", "/permissions/system/filesystem/read/1/path"]
    );
    assert!(problems.to_string().contains("not beneath any host path the policy allows"));
    // The default policy allows nothing at all.
    let doc = with("/permissions/system/filesystem", json!({"enabled": true, "read": [{"path": "/srv/data"}]}));
    assert_only(&doc, &SecurityPolicy::default(), "/permissions/system/filesystem/read/0/path", "not beneath");
}

#[test]
fn write_grant_under_a_read_only_prefix() {
    let doc = with(
        "/permissions/system/filesystem",
        json!({"enabled": true, "temp_only": false, "write": [{"path": "/srv/data/x"}]}),
    );
    assert_only(
        &doc,
        &grants_policy(),
        "/permissions/system/filesystem/write/0/path",
        "/sandbox/allowed_host_paths/0 is read_only",
    );
}

#[test]
fn grant_paths_must_be_absolute_and_clean() {
    let doc = with(
        "/permissions/system/filesystem",
        json!({"enabled": true, "read": [{"path": "srv/data"}, {"path": "/srv/data/../../etc"},
                                                    {"path": "/srv/data/x", "inside": "rel"}]}),
    );
    let problems = check_manifest(&doc, &grants_policy());
    assert_eq!(
        pointers(&problems),
        [
            "/permissions/system/filesystem/read/0/path",
            "/permissions/system/filesystem/read/1/path",
            "/permissions/system/filesystem/read/2/inside"
        ]
    );
}

#[test]
fn grant_inside_may_not_cover_reserved_or_runtime_paths() {
    let policy = grants_policy();
    for (inside, reason) in [
        ("/tmp", "reserves"),
        ("/", "reserves"),
        ("/plugin/x", "reserves"),
        ("/usr/lib/python3.11", "runtime path"),
        ("/usr", "runtime path"),
    ] {
        let doc = with(
            "/permissions/system/filesystem",
            json!({"enabled": true, "read": [{"path": "/srv/data", "inside": inside}]}),
        );
        assert_only(&doc, &policy, "/permissions/system/filesystem/read/0/inside", reason);
    }
}

#[test]
fn overlapping_grants() {
    let doc = with(
        "/permissions/system/filesystem",
        json!({
        "enabled": true, "temp_only": false,
        "read": [{"path": "/srv/data/a", "inside": "/data"}],
        "write": [{"path": "/srv/rw/b", "inside": "/data/sub"}]}),
    );
    assert_only(&doc, &grants_policy(), "/permissions/system/filesystem/write/0/inside", "overlaps /data");
}

#[test]
fn limits_zero_negative_fraction() {
    let policy = SecurityPolicy::default();
    assert_only(&with(MEMORY_POINTER, json!(0)), &policy, MEMORY_POINTER, "at least 1");
    assert_only(&with(CPU_POINTER, json!(-10)), &policy, CPU_POINTER, "at least 1");
    assert_only(&with(PIDS_POINTER, json!(2.5)), &policy, PIDS_POINTER, "whole number");
    assert_only(&with(WALL_CLOCK_POINTER, json!(0)), &policy, WALL_CLOCK_POINTER, "at least 1");
    assert_only(&with(TMP_POINTER, json!(-1)), &policy, TMP_POINTER, "at least 1");
}

#[test]
fn limits_that_overflow() {
    let mut policy = SecurityPolicy::default();
    policy.sandbox.ceilings.max_memory_mb = u64::MAX;
    assert_only(&with(MEMORY_POINTER, json!(u64::MAX / MIB + 1)), &policy, MEMORY_POINTER, "overflows");
    assert_only(&with(MEMORY_POINTER, json!(1e30)), &policy, MEMORY_POINTER, "too large");
}

#[test]
fn limits_above_the_ceiling_name_the_ceiling() {
    let policy = SecurityPolicy::default();
    for (pointer, value, ceiling) in [
        (MEMORY_POINTER, 1025, "/sandbox/ceilings/max_memory_mb (1024)"),
        (CPU_POINTER, 101, "/sandbox/ceilings/max_cpu_percent (100)"),
        (PIDS_POINTER, 513, "/sandbox/ceilings/max_pids (512)"),
        (WALL_CLOCK_POINTER, 3601, "/sandbox/ceilings/max_wall_clock_seconds (3600)"),
        (TMP_POINTER, 257, "/sandbox/ceilings/max_tmp_mb (256)"),
    ] {
        assert_only(&with(pointer, json!(value)), &policy, pointer, ceiling);
    }
}

#[test]
fn every_problem_is_listed_at_once() {
    let mut doc = with("/name", json!("Bad"));
    doc["entry_point"] = json!("../x.py");
    doc["permissions"]["resources"]["memory"]["max_mb"] = json!(0);
    doc["permissions"]["events"]["write"] = json!(["BAD"]);
    doc["permissions"]["system"]["network"]["enabled"] = json!(true);
    let problems = check_manifest(&doc, &SecurityPolicy::default());
    assert_eq!(
        pointers(&problems),
        ["/entry_point", "/name", "/permissions/events/write/0", MEMORY_POINTER, NETWORK_POINTER]
    );
}

#[test]
fn wrong_shapes_are_left_to_the_schema() {
    let doc = json!({"name": 5, "entry_point": [], "permissions": {"events": {"read": "x"},
                     "system": {"filesystem": {"enabled": true, "read": [5, {"path": 7}]}}}});
    assert!(check_manifest(&doc, &SecurityPolicy::default()).is_empty());
    assert!(check_manifest(&json!(null), &SecurityPolicy::default()).is_empty());
}

const RATE_EPS: &str = "/permissions/events/rate/events_per_second";
const RATE_BURST: &str = "/permissions/events/rate/burst";
const RATE_BYTES: &str = "/permissions/events/rate/bytes_per_second";

#[test]
fn event_limits_within_the_ceilings_pass() {
    let policy = SecurityPolicy::default();
    let mut doc = with(MAX_EVENT_BYTES_POINTER, json!(65_536));
    doc["permissions"]["events"]["rate"] =
        json!({"events_per_second": 10_000, "burst": 20_000, "bytes_per_second": 16_777_216});
    assert!(check_manifest(&doc, &policy).is_empty());
    for (pointer, value) in [(MAX_EVENT_BYTES_POINTER, 1024), (RATE_EPS, 1), (RATE_BURST, 1), (RATE_BYTES, 1024)] {
        assert!(check_manifest(&with(pointer, json!(value)), &policy).is_empty(), "{pointer} = {value}");
    }
    // Every field is optional.
    assert!(check_manifest(&with("/permissions/events/rate", json!({})), &policy).is_empty());
}

#[test]
fn event_limits_above_the_ceiling_are_refused_naming_the_ceiling() {
    let policy = SecurityPolicy::default();
    for (pointer, value, ceiling) in [
        (MAX_EVENT_BYTES_POINTER, 65_537, "/sandbox/ceilings/max_event_bytes (65536)"),
        (RATE_EPS, 10_001, "/sandbox/ceilings/max_event_rate/events_per_second (10000)"),
        (RATE_BURST, 20_001, "/sandbox/ceilings/max_event_rate/burst (20000)"),
        (RATE_BYTES, 16_777_217, "/sandbox/ceilings/max_event_rate/bytes_per_second (16777216)"),
    ] {
        assert_only(&with(pointer, json!(value)), &policy, pointer, ceiling);
    }
    // A raised ceiling lets the same values through.
    let mut raised = SecurityPolicy::default();
    raised.sandbox.ceilings.max_event_bytes = 1 << 20;
    raised.sandbox.ceilings.max_event_rate.burst = 50_000;
    assert!(check_manifest(&with(MAX_EVENT_BYTES_POINTER, json!(1 << 20)), &raised).is_empty());
    assert!(check_manifest(&with(RATE_BURST, json!(50_000)), &raised).is_empty());
}

#[test]
fn event_limits_zero_negative_or_too_small_never_mean_unlimited() {
    let policy = SecurityPolicy::default();
    assert_only(&with(MAX_EVENT_BYTES_POINTER, json!(0)), &policy, MAX_EVENT_BYTES_POINTER, "at least 1024");
    assert_only(&with(MAX_EVENT_BYTES_POINTER, json!(1023)), &policy, MAX_EVENT_BYTES_POINTER, "at least 1024");
    assert_only(&with(RATE_EPS, json!(0)), &policy, RATE_EPS, "never means unlimited");
    assert_only(&with(RATE_BURST, json!(-1)), &policy, RATE_BURST, "at least 1");
    assert_only(&with(RATE_BYTES, json!(1023)), &policy, RATE_BYTES, "at least 1024");
}

#[test]
fn event_limits_of_the_wrong_type_or_huge() {
    let policy = SecurityPolicy::default();
    assert_only(&with(MAX_EVENT_BYTES_POINTER, json!("64k")), &policy, MAX_EVENT_BYTES_POINTER, "whole number");
    assert_only(&with(RATE_EPS, json!(2.5)), &policy, RATE_EPS, "whole number");
    assert_only(&with(RATE_BURST, json!(100.0)), &policy, RATE_BURST, "plain integer");
    assert_only(&with(RATE_BYTES, json!(1e30)), &policy, RATE_BYTES, "too large");
    assert_only(&with(RATE_EPS, json!(u64::MAX)), &policy, RATE_EPS, "exceeds the policy ceiling");
    // A rate that is not an object is left to the schema.
    assert!(check_manifest(&with("/permissions/events/rate", json!(5)), &policy).is_empty());
}

#[test]
fn a_read_grant_too_long_to_list_in_one_frame_is_refused() {
    let policy = SecurityPolicy::default();
    let topics: Vec<String> = (0..16).map(|n| format!("t.{}{n:02}", "x".repeat(95))).collect();
    let mut doc = with(MAX_EVENT_BYTES_POINTER, json!(1024));
    doc["permissions"]["events"]["read"] = json!(topics);
    assert_only(&doc, &policy, "/permissions/events/read", "to list in one frame");
    doc["permissions"]["events"]["max_event_bytes"] = json!(4096);
    assert!(check_manifest(&doc, &policy).is_empty(), "fits a larger frame");
}
