//! Structural rules for the shipped schemas: draft-07 with `$id` and `title`, a
//! `description` on every property, and no object that accepts unknown fields.

use serde_json::Value;
use wf_policy::schema::{MANIFEST_SCHEMA_JSON, POLICY_SCHEMA_JSON};

fn schemas() -> [(&'static str, Value); 2] {
    [
        ("manifest", serde_json::from_str(MANIFEST_SCHEMA_JSON).unwrap()),
        ("policy", serde_json::from_str(POLICY_SCHEMA_JSON).unwrap()),
    ]
}

/// Calls `visit(pointer, schema)` on every subschema.
fn walk(pointer: &str, schema: &Value, visit: &mut dyn FnMut(&str, &Value)) {
    visit(pointer, schema);
    let Some(object) = schema.as_object() else { return };
    for keyword in ["properties", "definitions"] {
        if let Some(Value::Object(children)) = object.get(keyword) {
            for (name, child) in children {
                walk(&format!("{pointer}/{keyword}/{name}"), child, visit);
            }
        }
    }
    for keyword in ["items", "additionalProperties", "propertyNames"] {
        if let Some(child @ Value::Object(_)) = object.get(keyword) {
            walk(&format!("{pointer}/{keyword}"), child, visit);
        }
    }
}

#[test]
fn headers() {
    for (which, schema) in schemas() {
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#", "{which}");
        assert!(schema["$id"].as_str().is_some_and(|id| id.starts_with("https://")), "{which}");
        assert!(schema["title"].as_str().is_some_and(|t| !t.is_empty()), "{which}");
        assert!(schema["description"].as_str().is_some_and(|t| !t.is_empty()), "{which}");
    }
}

#[test]
fn every_property_has_a_description() {
    for (which, schema) in schemas() {
        let mut missing = Vec::new();
        let mut count = 0;
        walk("", &schema, &mut |pointer, node| {
            if let Some(Value::Object(properties)) = node.get("properties") {
                for (name, property) in properties {
                    count += 1;
                    let described = property.get("description").and_then(Value::as_str).is_some_and(|d| d.len() > 3);
                    if !described {
                        missing.push(format!("{pointer}/properties/{name}"));
                    }
                }
            }
        });
        assert!(missing.is_empty(), "{which}: properties without a description: {missing:?}");
        assert!(count > 20, "{which}: the walk found only {count} properties");
    }
}

#[test]
fn no_object_accepts_unknown_fields() {
    for (which, schema) in schemas() {
        let mut open = Vec::new();
        walk("", &schema, &mut |pointer, node| {
            let is_object = node.get("type") == Some(&Value::String("object".into()));
            if !is_object {
                return;
            }
            let closed = match node.get("additionalProperties") {
                Some(Value::Bool(false)) => node.get("properties").is_some(),
                // A map (e.g. interpreters by name): keys constrained, values a closed schema.
                Some(Value::Object(_)) => node.get("propertyNames").is_some() && node.get("properties").is_none(),
                _ => false,
            };
            if !closed {
                open.push(pointer.to_owned());
            }
        });
        assert!(open.is_empty(), "{which}: objects open to unknown fields: {open:?}");
    }
}

#[test]
fn the_walker_would_notice_a_missing_description() {
    let schema = serde_json::json!({"type": "object", "additionalProperties": false,
                                    "properties": {"a": {"type": "object", "additionalProperties": false,
                                                         "properties": {"b": {"type": "string"}}}}});
    let mut missing = Vec::new();
    walk("", &schema, &mut |pointer, node| {
        if let Some(Value::Object(properties)) = node.get("properties") {
            for (name, property) in properties {
                if property.get("description").is_none() {
                    missing.push(format!("{pointer}/properties/{name}"));
                }
            }
        }
    });
    assert_eq!(missing, ["/properties/a", "/properties/a/properties/b"]);
}
