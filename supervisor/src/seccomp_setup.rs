//! Compiling the seccomp filter in the parent; the child only installs it, last.

use crate::report::{LayerStatus, RunReport};
use wf_policy::spec::SandboxSpec;
use wf_sandbox_child::seccomp::{self, SeccompError};

pub fn prepare(spec: &SandboxSpec, report: &mut RunReport) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let program = seccomp::compile(&spec.seccomp)?;
    report.enforced.seccomp = LayerStatus::enforced(serde_json::json!({
        "filter_instructions": program.len(),
        "sha256": seccomp::program_hash(&program),
        "default_action": spec.seccomp.default_action.value,
        "allowed_syscalls": spec.seccomp.allowed.len(),
        "enosys": spec.seccomp.enosys,
        "arch": "x86_64 only (other architectures killed), x32 numbers rejected",
    }));
    Ok(program)
}
