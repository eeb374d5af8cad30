//! Every file in `schemas/examples/` is loaded here, with the outcome it must have.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use wf_policy::{default_policy, derive_spec, load_manifest, load_policy, SecurityPolicy};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(examples_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn policy(name: Option<&str>) -> SecurityPolicy {
    name.map_or_else(default_policy, |n| load_policy(&read(n)).unwrap_or_else(|p| panic!("{n}:\n{p}")))
}

/// (manifest file, policy file or the default, pointers of the expected problems; empty = valid)
const MANIFESTS: &[(&str, Option<&str>, &[&str])] = &[
    ("manifest-platform-example.json", None, &[]),
    ("manifest-minimal.json", None, &[]),
    ("manifest-native-full.json", None, &[]),
    ("manifest-grants.json", Some("policy-with-grants.json"), &[]),
    ("manifest-invalid-unknown-field.json", None, &["/permissions/system/gpu"]),
    ("manifest-invalid-duplicate-key.json", None, &["/name"]),
    ("manifest-invalid-entry-escape.json", None, &["/entry_point"]),
    ("manifest-invalid-entry-absolute.json", None, &["/entry_point"]),
    (
        "manifest-invalid-limits.json",
        None,
        &[
            "/permissions/resources/cpu/max_percent",
            "/permissions/resources/memory/max_mb",
            "/permissions/resources/pids/max",
            "/permissions/resources/tmp/max_mb",
            "/permissions/resources/wall_clock/max_seconds",
        ],
    ),
    (
        "manifest-invalid-topics.json",
        None,
        &[
            "/permissions/events/read/0",
            "/permissions/events/read/1",
            "/permissions/events/read/2",
            "/permissions/events/write/0",
            "/permissions/events/write/2",
        ],
    ),
    ("manifest-invalid-network.json", None, &["/permissions/system/network/enabled"]),
    ("manifest-invalid-name-version.json", None, &["/name", "/version"]),
    (
        "manifest-invalid-grant-outside-policy.json",
        Some("policy-with-grants.json"),
        &["/permissions/system/filesystem/read/0/path", "/permissions/system/filesystem/write/0/path"],
    ),
    ("manifest-invalid-missing-required.json", None, &[""]),
    ("manifest-invalid-interpreter.json", None, &["/runtime/interpreter"]),
    (
        "manifest-invalid-event-limits.json",
        None,
        &[
            "/permissions/events/max_event_bytes",
            "/permissions/events/rate/burst",
            "/permissions/events/rate/bytes_per_second",
            "/permissions/events/rate/events_per_second",
        ],
    ),
];

/// (policy file, pointers of the expected problems; empty = valid)
const POLICIES: &[(&str, &[&str])] = &[
    ("policy-minimal.json", &[]),
    ("policy-with-grants.json", &[]),
    ("policy-invalid-default-above-ceiling.json", &["/sandbox/defaults/memory_mb", "/sandbox/defaults/pids"]),
    ("policy-invalid-root-identity.json", &["/sandbox/identity/outside_gid", "/sandbox/identity/outside_uid"]),
    ("policy-invalid-layers.json", &["/sandbox/degradable_layers/0", "/sandbox/degradable_layers/5"]),
    ("policy-invalid-token.json", &["/authentication/token_sha256/0"]),
    ("policy-invalid-unknown-field.json", &["/logging", "/sandbox/ceilings/max_gpu"]),
    (
        "policy-invalid-paths.json",
        &[
            "/audit/path",
            "/sandbox/allowed_host_paths/0/path",
            "/sandbox/allowed_host_paths/1/path",
            "/sandbox/runtimes/native/paths/0",
        ],
    ),
    ("policy-invalid-duplicate-key.json", &["/sandbox/seccomp_default_action"]),
    (
        "policy-invalid-event-rate.json",
        &[
            "/sandbox/defaults/event_rate/burst",
            "/sandbox/defaults/event_rate/bytes_per_second",
            "/sandbox/defaults/event_rate/events_per_second",
        ],
    ),
];

fn distinct_pointers(problems: &wf_policy::Problems) -> Vec<String> {
    let set: BTreeSet<String> = problems.iter().map(|p| p.pointer.clone()).collect();
    set.into_iter().collect()
}

#[test]
fn every_example_file_is_covered_by_a_test() {
    let mut listed: BTreeSet<&str> = MANIFESTS.iter().map(|m| m.0).collect();
    listed.extend(POLICIES.iter().map(|p| p.0));
    let on_disk: BTreeSet<String> =
        std::fs::read_dir(examples_dir()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    let on_disk: BTreeSet<&str> = on_disk.iter().map(String::as_str).collect();
    assert_eq!(on_disk, listed);
}

#[test]
fn manifests_have_exactly_the_expected_problems() {
    for (file, policy_file, expected) in MANIFESTS {
        let policy = policy(*policy_file);
        match load_manifest(&read(file), &policy) {
            Ok(manifest) => {
                assert!(expected.is_empty(), "{file} should be invalid");
                let spec = derive_spec(&manifest, Path::new("/srv/plugins/example"), &policy);
                assert!(spec.is_ok(), "{file}: {}", spec.unwrap_err());
            }
            Err(problems) => {
                assert_eq!(distinct_pointers(&problems), *expected, "{file}:\n{problems}");
            }
        }
    }
}

#[test]
fn policies_have_exactly_the_expected_problems() {
    for (file, expected) in POLICIES {
        match load_policy(&read(file)) {
            Ok(_) => assert!(expected.is_empty(), "{file} should be invalid"),
            Err(problems) => assert_eq!(distinct_pointers(&problems), *expected, "{file}:\n{problems}"),
        }
    }
}

#[test]
fn the_platform_example_is_accepted_unchanged() {
    let manifest = load_manifest(&read("manifest-platform-example.json"), &default_policy()).unwrap();
    assert_eq!(manifest.name, "my_plugin");
    assert_eq!(manifest.description.as_deref(), Some("Example plugin"));
    assert_eq!(manifest.permissions.resources.memory.map(|m| m.max_mb), Some(64));
    assert_eq!(manifest.permissions.resources.cpu.map(|c| c.max_percent), Some(10));
    assert!(manifest.permissions.system.ui.is_some_and(|ui| ui.render));
}

#[test]
fn the_shipped_default_policy_file_is_the_embedded_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/default-security-policy.json");
    let on_disk = load_policy(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(on_disk, default_policy());
    assert_eq!(on_disk, SecurityPolicy::default());
    let layers = &on_disk.sandbox.required_layers;
    assert_eq!(layers.len(), 6);
    assert!(on_disk.sandbox.degradable_layers.is_empty());
    assert!(on_disk.sandbox.allowed_host_paths.is_empty());
    assert!(!on_disk.network.allow_network_grants);
    assert_eq!(on_disk.sandbox.identity.outside_uid, 200_000);
    assert_eq!(on_disk.authentication.session_timeout_minutes, 60);
    assert_eq!((on_disk.audit.rotate_size_mb, on_disk.audit.rotate_keep), (100, 5));
    assert_eq!(on_disk.compliance.min_audit_score, 85);
}

#[test]
fn the_native_example_sets_its_event_limits() {
    let policy = default_policy();
    let manifest = load_manifest(&read("manifest-native-full.json"), &policy).unwrap();
    let spec = derive_spec(&manifest, Path::new("/srv/plugins/example"), &policy).unwrap();
    let events = &spec.events;
    assert_eq!(
        (events.max_event_bytes.value, events.max_event_bytes.origin.pointer.as_str()),
        (16_384, "/permissions/events/max_event_bytes")
    );
    assert_eq!(
        (events.rate.events_per_second.value, events.rate.burst.value, events.rate.bytes_per_second.value),
        (200, 400, 262_144)
    );
    assert_eq!(events.rate.burst.origin.pointer, "/permissions/events/rate/burst");
}

#[test]
fn the_shipped_default_policy_sets_the_documented_event_rates() {
    let sandbox = default_policy().sandbox;
    let d = sandbox.defaults.event_rate;
    assert_eq!((d.events_per_second, d.burst, d.bytes_per_second), (1000, 2000, 1_048_576));
    let c = sandbox.ceilings.max_event_rate;
    assert_eq!((c.events_per_second, c.burst, c.bytes_per_second), (10_000, 20_000, 16_777_216));
    assert_eq!(sandbox.ceilings.max_event_bytes, 65_536);
}
