//! JSON Schema (draft-07) validation against the schemas in `schemas/`.
//!
//! The validators are generated at build time from the schema files (`jsonschema`'s
//! `validator` macro): a run compiles nothing, which saved ~1.1 ms of every `wfsandbox`
//! invocation (the runtime compiler also validated the schema against the draft-07
//! meta-schema each time). `jsonschema` is built with its default features off, so no
//! `$ref` is ever fetched from a file or the network; the schemas only use local
//! `#/definitions/...` refs. The unit tests check the generated validators against the
//! runtime compiler on every example document.

use crate::problem::{child, Problem, Problems};
use jsonschema::error::ValidationErrorKind;
use jsonschema::{ErrorIterator, ValidationError};
use serde_json::Value;

/// The plugin manifest schema, as shipped in `schemas/plugin-manifest.schema.json`.
pub const MANIFEST_SCHEMA_JSON: &str = include_str!("../../schemas/plugin-manifest.schema.json");
/// The security policy schema, as shipped in `schemas/security-policy.schema.json`.
pub const POLICY_SCHEMA_JSON: &str = include_str!("../../schemas/security-policy.schema.json");

#[jsonschema::validator(path = "../schemas/plugin-manifest.schema.json", draft = Draft7)]
struct ManifestSchema;

#[jsonschema::validator(path = "../schemas/security-policy.schema.json", draft = Draft7)]
struct PolicySchema;

/// Every schema violation in a manifest document.
pub fn check_manifest(document: &Value) -> Problems {
    collect(ManifestSchema::iter_errors(document))
}

/// Every schema violation in a policy document.
pub fn check_policy(document: &Value) -> Problems {
    collect(PolicySchema::iter_errors(document))
}

fn collect(errors: ErrorIterator<'_>) -> Problems {
    let mut problems = Problems::new();
    for error in errors {
        problems.extend(error_to_problems(&error));
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

    /// The same document through the runtime compiler, for comparison.
    fn runtime_problems(schema_json: &str, document: &Value) -> Problems {
        let schema: Value = serde_json::from_str(schema_json).expect("schema is JSON");
        let validator = jsonschema::draft7::new(&schema).expect("schema compiles at run time");
        collect(validator.iter_errors(document))
    }

    fn example_documents() -> Vec<(String, Value)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples");
        let mut documents: Vec<(String, Value)> = std::fs::read_dir(&dir)
            .expect("schemas/examples")
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let text = std::fs::read_to_string(&path).ok()?;
                Some((path.file_name()?.to_string_lossy().into_owned(), serde_json::from_str(&text).ok()?))
            })
            .collect();
        documents.sort_by(|a, b| a.0.cmp(&b.0));
        documents
    }

    #[test]
    fn generated_validators_agree_with_the_runtime_compiler_on_every_example() {
        let documents = example_documents();
        assert!(documents.len() >= 20, "examples found: {}", documents.len());
        let mut invalid = 0;
        for (name, document) in &documents {
            let generated = (check_manifest(document), check_policy(document));
            let runtime =
                (runtime_problems(MANIFEST_SCHEMA_JSON, document), runtime_problems(POLICY_SCHEMA_JSON, document));
            assert_eq!(generated, runtime, "{name}");
            invalid += usize::from(!generated.0.is_empty() && !generated.1.is_empty());
        }
        assert!(invalid > 0, "some example is invalid under both schemas");
    }

    #[test]
    fn generated_validators_agree_on_hostile_values() {
        let hostile = [
            json!({"name": "a", "version": "1.0.0", "entry_point": "x", "permissions": {"resources": {"memory": {"max_mb": -1}}}}),
            json!({"name": "a", "version": "1.0.0", "entry_point": "x", "permissions": {"resources": {"memory": {"max_mb": 1e300}}}}),
            json!({"name": "\u{202e}", "version": "1.0.0.0", "entry_point": ["x"]}),
            json!({"schema_version": "9", "network": {"enabled": "yes"}, "audit": {"rotate_keep": 1.5}}),
            json!([1, 2, 3]),
            json!(null),
        ];
        let mut rejected = 0;
        for document in &hostile {
            let generated = (check_manifest(document), check_policy(document));
            let runtime =
                (runtime_problems(MANIFEST_SCHEMA_JSON, document), runtime_problems(POLICY_SCHEMA_JSON, document));
            assert_eq!(generated, runtime, "{document}");
            rejected += usize::from(!generated.0.is_empty());
        }
        // 1e300 MB passes the schema (no maximum there); the policy's ceiling rejects it.
        assert_eq!(rejected, hostile.len() - 1);
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
