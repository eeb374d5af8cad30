//! Building the Landlock ruleset in the parent, before clone.
//!
//! The ruleset handles every filesystem right of the best ABI both the kernel and
//! the `landlock` crate know, so anything not granted by a rule is denied. Rules on
//! host objects are attached here to the parent's fds (Landlock rules follow inodes,
//! which bind mounts share); the child adds rules for the mounts it creates itself
//! and calls `restrict_self`.
//!
//! Access classes: `Read` = read files + list dirs; `ReadExec` = that + execute;
//! `ReadWrite` = every right except execute. A rule on a non-directory carries only
//! the file rights of its class (the kernel rejects directory rights on files).

use crate::plan::policy_access::Access;
use landlock::{
    Access as _, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetError, Scope, ABI,
};
use std::os::fd::BorrowedFd;
use thiserror::Error;

/// `LANDLOCK_CREATE_RULESET_VERSION`.
const CREATE_RULESET_VERSION: u32 = 1;
/// First ABI with `LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET` and `LANDLOCK_SCOPE_SIGNAL`.
pub const SCOPES_MIN_ABI: i32 = 6;

#[derive(Debug, Error)]
pub enum LandlockError {
    #[error("landlock: not supported by this kernel, and the policy requires it")]
    Unsupported,
    #[error("landlock: creating the ruleset (abi {abi:?}): {source}")]
    Create { abi: Option<i32>, source: RulesetError },
    #[error("landlock: adding rule {index} ({access:?}, dir={is_dir}): {source}")]
    AddRule { index: usize, access: Access, is_dir: bool, source: RulesetError },
}

/// What the ruleset enforces, for the run report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandlockReport {
    /// The kernel's ABI version (`None`: Landlock unavailable).
    pub abi: Option<i32>,
    /// The ABI the rights were chosen for: min(kernel, newest the crate knows).
    pub effective_abi: i32,
    /// Filesystem rights the ruleset handles (denied unless a rule grants them).
    pub handled_fs: BitFlags<AccessFs>,
    /// Abstract Unix sockets and signals are scoped to the sandbox.
    pub scoped: bool,
    /// Built with `CompatLevel::HardRequirement`.
    pub require_full: bool,
}

impl LandlockReport {
    /// Names of the handled rights, e.g. `["execute", "write_file", ...]`.
    pub fn handled_fs_names(&self) -> Vec<&'static str> {
        self.handled_fs.iter().map(access_name).collect()
    }
}

/// The kernel's Landlock ABI version via `landlock_create_ruleset(NULL, 0, VERSION)`.
pub fn landlock_abi() -> Option<i32> {
    // SAFETY: with a NULL attr and size 0 and the VERSION flag the call only returns a number.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(ret).ok().filter(|v| *v > 0)
}

/// The ABI to choose rights for: the kernel's, capped at the newest the crate knows.
pub fn best_abi(kernel_abi: Option<i32>) -> ABI {
    ABI::from(kernel_abi.unwrap_or(0))
}

/// Rights granted by `access` for the ABI, restricted to file rights when `!is_dir`.
pub fn access_rights(access: Access, abi: ABI, is_dir: bool) -> BitFlags<AccessFs> {
    let all = AccessFs::from_all(abi);
    let rights = match access {
        Access::Read => AccessFs::ReadFile | AccessFs::ReadDir,
        Access::ReadExec => AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::Execute,
        Access::ReadWrite => all & !AccessFs::Execute,
    };
    let rights = rights & all;
    if is_dir {
        rights
    } else {
        rights & AccessFs::from_file(abi)
    }
}

/// Create the ruleset and add one rule per `(fd, access, is_dir)`.
///
/// With `require_full` the crate's `HardRequirement` applies: anything the kernel cannot
/// enforce is an error instead of a silent downgrade. Scopes are requested when
/// `want_scopes` and the kernel's ABI has them (>= 6).
pub fn build_ruleset(
    rules: &[(BorrowedFd<'_>, Access, bool)],
    want_scopes: bool,
    require_full: bool,
) -> Result<(RulesetCreated, LandlockReport), LandlockError> {
    let kernel_abi = landlock_abi();
    if require_full && kernel_abi.is_none() {
        return Err(LandlockError::Unsupported);
    }
    let abi = best_abi(kernel_abi);
    // With no Landlock at all, V1 rights let the crate build its no-op ruleset (best effort).
    let rights_abi = if kernel_abi.is_some() { abi } else { ABI::V1 };
    let handled = AccessFs::from_all(rights_abi);
    let scoped = want_scopes && kernel_abi.is_some_and(|v| v >= SCOPES_MIN_ABI);
    let level = if require_full { CompatLevel::HardRequirement } else { CompatLevel::BestEffort };
    let create = |source| LandlockError::Create { abi: kernel_abi, source };

    let mut ruleset = Ruleset::default().set_compatibility(level).handle_access(handled).map_err(create)?;
    if scoped {
        ruleset = ruleset.scope(Scope::AbstractUnixSocket | Scope::Signal).map_err(create)?;
    }
    let mut created = ruleset.create().map_err(create)?;
    for (index, (fd, access, is_dir)) in rules.iter().enumerate() {
        created = created
            .add_rule(PathBeneath::new(*fd, access_rights(*access, rights_abi, *is_dir)))
            .map_err(|source| LandlockError::AddRule { index, access: *access, is_dir: *is_dir, source })?;
    }
    let report = LandlockReport {
        abi: kernel_abi,
        effective_abi: if kernel_abi.is_some() { abi as i32 } else { 0 },
        handled_fs: if kernel_abi.is_some() { handled } else { BitFlags::EMPTY },
        scoped,
        require_full,
    };
    Ok((created, report))
}

fn access_name(access: AccessFs) -> &'static str {
    match access {
        AccessFs::Execute => "execute",
        AccessFs::WriteFile => "write_file",
        AccessFs::ReadFile => "read_file",
        AccessFs::ReadDir => "read_dir",
        AccessFs::RemoveDir => "remove_dir",
        AccessFs::RemoveFile => "remove_file",
        AccessFs::MakeChar => "make_char",
        AccessFs::MakeDir => "make_dir",
        AccessFs::MakeReg => "make_reg",
        AccessFs::MakeSock => "make_sock",
        AccessFs::MakeFifo => "make_fifo",
        AccessFs::MakeBlock => "make_block",
        AccessFs::MakeSym => "make_sym",
        AccessFs::Refer => "refer",
        AccessFs::Truncate => "truncate",
        AccessFs::IoctlDev => "ioctl_dev",
        AccessFs::ResolveUnix => "resolve_unix",
        _ => "other",
    }
}

#[cfg(test)]
#[path = "landlock_rules_tests.rs"]
mod tests;
