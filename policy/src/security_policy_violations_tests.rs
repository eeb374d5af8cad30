//! `violations.responses`: loading, strict refusals with pointers, and the schema's enums
//! kept equal to the typed lists.

use super::*;
use crate::load_policy;
use serde_json::{json, Value};

fn pointers_of(doc: &Value) -> Vec<String> {
    let bytes = serde_json::to_vec(doc).expect("encodable");
    match load_policy(&bytes) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.iter().map(|p| p.pointer.clone()).collect(),
    }
}

fn responses(rules: Value) -> Value {
    json!({ "violations": { "responses": rules } })
}

#[test]
fn rules_load_in_order_with_optional_layer_and_threshold() {
    let doc = responses(json!([
        {"kind": "forged_sender", "action": "log"},
        {"kind": "topic_denied", "layer": "broker", "action": "quarantine", "threshold": {"count": 3, "seconds": 60}},
        {"kind": "*", "action": "kill"},
    ]));
    let policy = load_policy(&serde_json::to_vec(&doc).unwrap()).expect("valid");
    let rules = &policy.violations.responses;
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0].action, ResponseAction::Log);
    assert_eq!(rules[1].layer.as_deref(), Some("broker"));
    assert_eq!(rules[1].threshold, Some(ResponseThreshold { count: 3, seconds: 60 }));
    assert!(rules[1].matches("topic_denied", "broker") && !rules[1].matches("topic_denied", "resources"));
    assert!(rules[2].matches("oom_kill", "resources"));
    assert!(!rules[0].matches("topic_denied", "broker"));
}

#[test]
fn no_section_means_no_rules() {
    let policy = load_policy(b"{}").expect("valid");
    assert!(policy.violations.responses.is_empty());
}

#[test]
fn bad_kinds_actions_layers_keys_and_ranges_are_refused_with_pointers() {
    let cases = [
        (json!([{"kind": "no_such_kind", "action": "kill"}]), "/violations/responses/0/kind"),
        (json!([{"kind": "topic_denied", "action": "deny"}]), "/violations/responses/0/action"),
        (json!([{"kind": "topic_denied", "action": "kill", "layer": "kernel"}]), "/violations/responses/0/layer"),
        (
            json!([{"kind": "*", "action": "log"}, {"kind": "*", "action": "kill", "why": 1}]),
            "/violations/responses/1/why",
        ),
        (json!([{"action": "kill"}]), "/violations/responses/0"),
        (
            json!([{"kind": "*", "action": "kill", "threshold": {"count": 0, "seconds": 1}}]),
            "/violations/responses/0/threshold/count",
        ),
        (
            json!([{"kind": "*", "action": "kill", "threshold": {"count": 100_001, "seconds": 1}}]),
            "/violations/responses/0/threshold/count",
        ),
        (
            json!([{"kind": "*", "action": "kill", "threshold": {"count": 1, "seconds": 86_401}}]),
            "/violations/responses/0/threshold/seconds",
        ),
        (
            json!([{"kind": "*", "action": "kill", "threshold": {"count": 1.5, "seconds": 1}}]),
            "/violations/responses/0/threshold/count",
        ),
        (json!([{"kind": "*", "action": "kill", "threshold": {"count": 1}}]), "/violations/responses/0/threshold"),
        (json!({"kind": "*"}), "/violations/responses"),
    ];
    for (rules, pointer) in cases {
        let found = pointers_of(&responses(rules.clone()));
        assert!(found.iter().any(|p| p == pointer), "{rules}: {found:?} lacks {pointer}");
    }
    let found = pointers_of(&json!({"violations": {"rules": []}}));
    assert!(found.iter().any(|p| p == "/violations/rules"), "{found:?}");
}

#[test]
fn the_bounds_themselves_are_accepted() {
    let rules = json!([
        {"kind": "*", "action": "kill", "threshold": {"count": 1, "seconds": 1}},
        {"kind": "*", "action": "kill", "threshold": {"count": MAX_THRESHOLD_COUNT, "seconds": MAX_THRESHOLD_SECONDS}},
    ]);
    assert_eq!(pointers_of(&responses(rules)), Vec::<String>::new());
}

#[test]
fn the_schema_lists_exactly_the_typed_kinds_and_layers() {
    let schema: Value =
        serde_json::from_str(include_str!("../../schemas/security-policy.schema.json")).expect("schema");
    let item = &schema["properties"]["violations"]["properties"]["responses"]["items"]["properties"];
    let listed = |field: &str| -> Vec<String> {
        item[field]["enum"].as_array().expect("enum").iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
    };
    let mut kinds = vec!["*".to_owned()];
    kinds.extend(VIOLATION_KINDS.iter().map(|k| (*k).to_owned()));
    assert_eq!(listed("kind"), kinds);
    assert_eq!(listed("layer"), VIOLATION_LAYERS.map(str::to_owned));
    let actions: Vec<String> =
        [ResponseAction::Log, ResponseAction::Kill, ResponseAction::Quarantine].map(|a| a.as_str().to_owned()).into();
    assert_eq!(listed("action"), actions);
}
