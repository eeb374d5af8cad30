//! JSON Schema (draft-07) validation against the schemas embedded from `schemas/`.
//!
//! `jsonschema` is built with its default features off, so no `$ref` is ever fetched
//! from a file or the network; the schemas only use local `#/definitions/...` refs.

use crate::problem::{child, Problem, Problems};
use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;
use std::sync::LazyLock;

/// The plugin manifest schema, as shipped in `schemas/plugin-manifest.schema.json`.
pub const MANIFEST_SCHEMA_JSON: &str = include_str!("../../schemas/plugin-manifest.schema.json");
/// The security policy schema, as shipped in `schemas/security-policy.schema.json`.
pub const POLICY_SCHEMA_JSON: &str = include_str!("../../schemas/security-policy.schema.json");

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("embedded {which} schema is not valid JSON: {detail}")]
    NotJson { which: &'static str, detail: String },
    #[error("embedded {which} schema does not compile: {detail}")]
    DoesNotCompile { which: &'static str, detail: String },
}

static MANIFEST_VALIDATOR: LazyLock<Result<Validator, SchemaError>> =
    LazyLock::new(|| compile("manifest", MANIFEST_SCHEMA_JSON));
static POLICY_VALIDATOR: LazyLock<Result<Validator, SchemaError>> =
    LazyLock::new(|| compile("policy", POLICY_SCHEMA_JSON));

fn compile(which: &'static str, text: &str) -> Result<Validator, SchemaError> {
    let schema: Value =
        serde_json::from_str(text).map_err(|e| SchemaError::NotJson { which, detail: e.to_string() })?;
    jsonschema::draft7::new(&schema).map_err(|e| SchemaError::DoesNotCompile { which, detail: e.to_string() })
}

/// Every schema violation in a manifest document.
pub fn check_manifest(document: &Value) -> Problems {
    check(&MANIFEST_VALIDATOR, document)
}

/// Every schema violation in a policy document.
pub fn check_policy(document: &Value) -> Problems {
    check(&POLICY_VALIDATOR, document)
}

fn check(validator: &Result<Validator, SchemaError>, document: &Value) -> Problems {
    let mut problems = Problems::new();
    match validator {
        Ok(validator) => {
            for error in validator.iter_errors(document) {
                problems.extend(error_to_problems(&error));
            }
        }
        Err(e) => problems.push(Problem::new("", e.to_string())),
    }
    problems
}

/// An unknown field is reported at the field itself, one problem per field; every other
/// error at the value the schema rejected.
fn error_to_problems(error: &ValidationError<'_>) -> Vec<Problem> {
    let at = error.instance_path().as_str();
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            unexpected.iter().map(|name| Problem::new(child(at, name), "unknown field")).collect()
        }
        _ => vec![Problem::new(at, error.to_string())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn embedded_schemas_compile() {
        assert!(MANIFEST_VALIDATOR.is_ok());
        assert!(POLICY_VALIDATOR.is_ok());
    }

    #[test]
    fn unknown_fields_are_reported_one_by_one_at_their_pointer() {
        let doc = json!({"name": "a", "version": "1.0.0", "entry_point": "x",
                         "permissions": {"bogus": 1, "other": 2}});
        let problems = check_manifest(&doc).normalized();
        let pointers: Vec<_> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/permissions/bogus", "/permissions/other"]);
        assert!(problems.iter().all(|p| p.reason == "unknown field"));
    }

    #[test]
    fn every_violation_is_listed() {
        let doc = json!({"name": "Bad Name", "version": "one", "entry_point": ""});
        let problems = check_manifest(&doc);
        for pointer in ["/name", "/version", "/entry_point"] {
            assert!(problems.has_pointer(pointer), "{pointer} missing from {problems}");
        }
    }

    #[test]
    fn file_refs_are_never_resolved() {
        let schema = json!({"$ref": "file:///etc/passwd"});
        assert!(jsonschema::draft7::new(&schema).is_err());
        let schema = json!({"$ref": "http://127.0.0.1:9/x.json"});
        assert!(jsonschema::draft7::new(&schema).is_err());
    }
}
