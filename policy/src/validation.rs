//! The loading pipeline shared by policies and manifests: bounded parse (size, depth,
//! duplicate keys) → schema → semantic checks → typed value. Every stage runs even when
//! an earlier one found problems, so one pass lists all of them.

use crate::json_input;
use crate::manifest::Manifest;
use crate::manifest_checks;
use crate::policy_checks;
use crate::problem::{Problem, Problems};
use crate::schema;
use crate::security_policy::SecurityPolicy;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The built-in default policy, as shipped in `schemas/default-security-policy.json`.
pub const DEFAULT_POLICY_JSON: &str = include_str!("../../schemas/default-security-policy.json");

/// Parses and validates a security policy document.
pub fn load_policy(bytes: &[u8]) -> Result<SecurityPolicy, Problems> {
    let parsed = json_input::parse(bytes)?;
    let mut problems = parsed.duplicate_keys;
    problems.extend(policy_problems(&parsed.value));
    problems.into_result(())?;
    into_typed(parsed.value)
}

/// The embedded default policy. Never fails: the embedded document is checked by a
/// test to load and to equal `SecurityPolicy::default()`, which is the fallback.
pub fn default_policy() -> SecurityPolicy {
    SecurityPolicy::default()
}

/// Parses and validates a manifest document under `policy`.
pub fn load_manifest(bytes: &[u8], policy: &SecurityPolicy) -> Result<Manifest, Problems> {
    let parsed = json_input::parse(bytes)?;
    let mut problems = parsed.duplicate_keys;
    problems.extend(manifest_problems(&parsed.value, policy));
    problems.into_result(())?;
    into_typed(parsed.value)
}

/// Schema and semantic problems of a policy document.
pub fn policy_problems(document: &Value) -> Problems {
    merge(schema::check_policy(document), policy_checks::check_policy(document))
}

/// Schema and semantic problems of a manifest document under `policy`.
pub fn manifest_problems(document: &Value, policy: &SecurityPolicy) -> Problems {
    merge(schema::check_manifest(document), manifest_checks::check_manifest(document, policy))
}

/// Semantic problems only, for values whose structure their Rust type already guarantees
/// (`derive_spec` re-checks typed inputs this way; the schema ran when they were loaded).
pub fn policy_semantic_problems(document: &Value) -> Problems {
    policy_checks::check_policy(document)
}

/// Semantic problems of a typed manifest document under `policy`.
pub fn manifest_semantic_problems(document: &Value, policy: &SecurityPolicy) -> Problems {
    manifest_checks::check_manifest(document, policy)
}

/// Re-checks an already typed value (e.g. one built in code) through its document form.
pub fn recheck<T: Serialize>(value: &T, problems_of: impl FnOnce(&Value) -> Problems) -> Problems {
    match serde_json::to_value(value) {
        Ok(document) => problems_of(&document),
        Err(e) => Problems::single("", format!("cannot be represented as JSON: {e}")),
    }
}

/// Where the schema and a semantic check both reject a value, the semantic check's plain
/// reason is kept and the schema's (which quotes patterns and keywords) is dropped.
fn merge(schema_problems: Problems, semantic: Problems) -> Problems {
    let mut all = semantic.clone();
    all.extend(schema_problems.into_iter().filter(|p| !semantic.has_pointer(&p.pointer)));
    all
}

fn into_typed<T: DeserializeOwned>(document: Value) -> Result<T, Problems> {
    serde_json::from_value(document)
        .map_err(|e| Problems::from(Problem::new("", format!("does not match the expected structure: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_policy_loads_and_equals_the_built_in_default() {
        let loaded = load_policy(DEFAULT_POLICY_JSON.as_bytes());
        assert_eq!(loaded, Ok(SecurityPolicy::default()));
        assert_eq!(default_policy(), SecurityPolicy::default());
    }

    #[test]
    fn an_empty_policy_is_the_default_policy() {
        assert_eq!(load_policy(b"{}"), Ok(SecurityPolicy::default()));
    }

    #[test]
    fn a_partial_policy_keeps_defaults_elsewhere() {
        let policy = load_policy(br#"{"sandbox": {"defaults": {"memory_mb": 256}}}"#).unwrap();
        assert_eq!(policy.sandbox.defaults.memory_mb, 256);
        assert_eq!(policy.sandbox.defaults.cpu_percent, 50);
        assert_eq!(policy.audit.rotate_keep, 5);
    }

    #[test]
    fn one_plain_reason_per_value_rejected_by_both_schema_and_checks() {
        let problems = load_policy(br#"{"sandbox": {"identity": {"outside_uid": 0}}}"#).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems}");
        let problem = problems.iter().next().unwrap();
        assert_eq!(problem.pointer, "/sandbox/identity/outside_uid");
        assert!(problem.reason.contains("unprivileged"), "{problem}");
    }

    #[test]
    fn a_partial_event_rate_keeps_the_defaults_of_its_own_section() {
        let policy = load_policy(br#"{"sandbox": {"ceilings": {"max_event_rate": {"burst": 5000}}}}"#).unwrap();
        let ceilings = policy.sandbox.ceilings.max_event_rate;
        assert_eq!((ceilings.events_per_second, ceilings.burst, ceilings.bytes_per_second), (10_000, 5000, 16 << 20));
        let policy = load_policy(br#"{"sandbox": {"defaults": {"event_rate": {"burst": 5000}}}}"#).unwrap();
        let defaults = policy.sandbox.defaults.event_rate;
        assert_eq!((defaults.events_per_second, defaults.burst, defaults.bytes_per_second), (1000, 5000, 1 << 20));
    }

    #[test]
    fn event_limits_load_with_one_plain_reason_per_bad_value() {
        let manifest = load_manifest(
            br#"{"name": "a", "version": "1.0.0", "entry_point": "x",
                 "permissions": {"events": {"max_event_bytes": 4096, "rate": {"burst": 10}}}}"#,
            &SecurityPolicy::default(),
        )
        .unwrap();
        let events = manifest.permissions.events.unwrap();
        assert_eq!((events.max_event_bytes, events.rate.and_then(|r| r.burst)), (Some(4096), Some(10)));
        let problems = load_manifest(
            br#"{"name": "a", "version": "1.0.0", "entry_point": "x",
                 "permissions": {"events": {"max_event_bytes": "big", "rate": {"burst": 0, "per_minute": 5}}}}"#,
            &SecurityPolicy::default(),
        )
        .unwrap_err();
        let found: Vec<_> = problems.iter().map(|p| (p.pointer.as_str(), p.reason.as_str())).collect();
        assert_eq!(found.len(), 3, "{problems}");
        assert!(found.contains(&("/permissions/events/max_event_bytes", "must be a whole number")), "{problems}");
        assert!(found.contains(&("/permissions/events/rate/per_minute", "unknown field")), "{problems}");
        assert!(problems
            .iter()
            .any(|p| p.pointer == "/permissions/events/rate/burst" && p.reason.contains("at least 1")));
        let problems =
            load_policy(br#"{"sandbox": {"ceilings": {"max_event_rate": {"burst": 2e6, "x": 1}}}}"#).unwrap_err();
        let pointers: Vec<_> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert!(pointers.contains(&"/sandbox/ceilings/max_event_rate/x"), "{problems}");
        assert!(pointers.contains(&"/sandbox/ceilings/max_event_rate/burst"), "{problems}");
    }

    #[test]
    fn duplicate_keys_schema_and_semantic_problems_are_listed_together() {
        let text = br#"{"name": "x", "name": "y", "version": "1.0.0", "entry_point": "../a",
                        "bogus": 1, "permissions": {"resources": {"memory": {"max_mb": 4096}}}}"#;
        let problems = load_manifest(text, &SecurityPolicy::default()).unwrap_err();
        let pointers: Vec<_> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/bogus", "/entry_point", "/name", "/permissions/resources/memory/max_mb"]);
    }
}
