//! Preparing the Landlock ruleset in the parent (DESIGN.md §8: build in the parent,
//! only `restrict_self` in the child).

use crate::host_probe::HostFacts;
use crate::landlock_map::{self, child_access};
use crate::rootfs::RootPlan;
use std::os::fd::BorrowedFd;
use wf_policy::spec::{Layer, SandboxSpec};
use wf_sandbox_child::landlock_rules::{self, LandlockError};
use wf_sandbox_child::plan::LandlockPlan;

#[derive(Debug, thiserror::Error)]
pub enum LandlockSetupError {
    #[error("Landlock rule for {inside} matches nothing mounted in the sandbox")]
    Unmatched { inside: String },
    #[error(transparent)]
    Ruleset(#[from] LandlockError),
}

/// The ruleset, and what it enforces (for the report, once the child is running).
pub fn prepare(
    spec: &SandboxSpec,
    root: &RootPlan,
    python: bool,
    host: &HostFacts,
) -> Result<(LandlockPlan, serde_json::Value), LandlockSetupError> {
    let mapped = landlock_map::map_rules(&spec.landlock, root, python);
    if let Some(inside) = mapped.unmatched.first() {
        return Err(LandlockSetupError::Unmatched { inside: inside.clone() });
    }
    // SAFETY: every fd is owned by `root.fds`, which outlives the ruleset construction.
    let host_rules: Vec<(BorrowedFd<'_>, _, bool)> = mapped
        .host
        .iter()
        .map(|(fd, access, is_dir)| (unsafe { BorrowedFd::borrow_raw(*fd) }, child_access(*access), *is_dir))
        .collect();
    let require_full = !spec.layers.degradable.value.contains(&Layer::Landlock);
    let (ruleset, ll) = landlock_rules::build_ruleset(&host_rules, spec.landlock.scope_ipc_and_signals, require_full)?;
    let detail = serde_json::json!({
        "abi": ll.abi.or(host.landlock_abi),
        "effective_abi": ll.effective_abi,
        "fully_enforced": require_full,
        "handled_access_fs": ll.handled_fs_names(),
        "scoped_ipc_and_signals": ll.scoped,
        "host_rules": mapped.host.len(),
        "inside_rules": mapped.inside.len(),
    });
    Ok((LandlockPlan { ruleset, inside_rules: mapped.inside, require_full }, detail))
}
