//! Compiling the seccomp filter in the parent; the child only installs it, last.

use wf_policy::spec::SandboxSpec;
use wf_sandbox_child::seccomp::{self, SeccompError};

/// The compiled program, and what it enforces (for the report, once the child is running).
pub fn prepare(spec: &SandboxSpec) -> Result<(Vec<libc::sock_filter>, serde_json::Value), SeccompError> {
    let program = seccomp::compile(&spec.seccomp)?;
    let detail = serde_json::json!({
        "filter_instructions": program.len(),
        "sha256": seccomp::program_hash(&program),
        "default_action": spec.seccomp.default_action.value,
        "allowed_syscalls": spec.seccomp.allowed.len(),
        "enosys": spec.seccomp.enosys,
        "arch": "x86_64 only (other architectures killed), x32 numbers rejected",
    });
    Ok((program, detail))
}
