//! Plugin manifests and the host security policy: their types, schema validation,
//! semantic checks, and the pure derivation manifest × policy → [`SandboxSpec`].
//! No syscalls happen here; the supervisor applies what this crate decides.
//!
//! ```
//! let policy = wf_policy::default_policy();
//! let manifest = wf_policy::load_manifest(
//!     br#"{"name": "demo", "version": "1.0.0", "entry_point": "main.py"}"#, &policy).unwrap();
//! let spec = wf_policy::derive_spec(&manifest, std::path::Path::new("/srv/plugins/demo"), &policy).unwrap();
//! assert_eq!(spec.cgroup.memory_max_bytes.value, 128 * 1024 * 1024);
//! ```

pub mod derive;
mod derive_fs;
pub mod event_limits;
pub mod json_input;
pub mod layout;
pub mod limits;
pub mod manifest;
pub mod manifest_checks;
pub mod name_rules;
pub mod path_rules;
pub mod policy_checks;
pub mod problem;
pub mod runtime;
pub mod schema;
pub mod security_policy;
pub mod spec;
pub mod syscall_allowlist;
pub mod topic;
pub mod validation;

pub use derive::derive_spec;
pub use manifest::Manifest;
pub use problem::{Problem, Problems};
pub use security_policy::SecurityPolicy;
pub use spec::SandboxSpec;
pub use topic::{topic_is_valid, topic_matches};
pub use validation::{default_policy, load_manifest, load_policy, DEFAULT_POLICY_JSON};
