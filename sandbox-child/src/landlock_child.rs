//! Landlock in the child: keep the parent-built ruleset's fd across fd cleanup, add
//! rules for the mounts the child created (paths inside the new root), restrict.

use crate::landlock_rules::{access_rights, best_abi};
use crate::plan::LandlockPlan;
use crate::report::SetupStep;
use crate::step_error::StepError;
use crate::sys::Sys;
use landlock::RulesetStatus;
use nix::errno::Errno;
use std::os::fd::RawFd;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LandlockChildError {
    #[error("keeping the landlock ruleset fd open: {0}")]
    Pin(Errno),
    #[error("landlock rule on {path}: opening it: {errno}")]
    Open { path: String, errno: Errno },
    #[error("landlock rule on {path}: {errno}")]
    AddRule { path: String, errno: Errno },
    #[error("landlock_restrict_self: {0}")]
    Restrict(Errno),
    #[error("landlock is only {status}, and the policy requires full enforcement")]
    NotFull { status: String },
}

impl StepError for LandlockChildError {
    fn step(&self) -> SetupStep {
        match self {
            LandlockChildError::Pin(_) => SetupStep::Fds,
            _ => SetupStep::Landlock,
        }
    }

    fn errno(&self) -> Errno {
        match self {
            LandlockChildError::Pin(e) | LandlockChildError::Restrict(e) => *e,
            LandlockChildError::Open { errno, .. } | LandlockChildError::AddRule { errno, .. } => *errno,
            LandlockChildError::NotFull { .. } => Errno::EOPNOTSUPP,
        }
    }
}

/// Give the ruleset a known fd >= 4 (returned, if it has one) before the plugin's fds
/// are installed on 0..=3, so neither those `dup2`s nor `close_strays` touch it.
/// `anchor` is any open fd (the error pipe).
pub fn pin_ruleset(
    sys: &dyn Sys,
    plan: LandlockPlan,
    anchor: RawFd,
) -> Result<(LandlockPlan, Option<RawFd>), LandlockChildError> {
    let LandlockPlan { ruleset, inside_rules, require_full } = plan;
    let (ruleset, fd) = sys.pin_landlock_ruleset(ruleset, anchor).map_err(LandlockChildError::Pin)?;
    Ok((LandlockPlan { ruleset, inside_rules, require_full }, fd))
}

/// Add the inside rules and restrict the process. With `require_full`, anything
/// short of `FullyEnforced` is a failure.
pub fn restrict(sys: &dyn Sys, plan: LandlockPlan) -> Result<RulesetStatus, LandlockChildError> {
    let LandlockPlan { mut ruleset, inside_rules, require_full } = plan;
    let kernel_abi = sys.landlock_abi();
    // Without Landlock the ruleset is the crate's no-op; there is nothing to add rules to.
    if kernel_abi.is_some() {
        let abi = best_abi(kernel_abi);
        for (path, access) in &inside_rules {
            let name = || path.to_string_lossy().into_owned();
            let fd = sys
                .open_at(libc::AT_FDCWD, path, libc::O_PATH, 0)
                .map_err(|errno| LandlockChildError::Open { path: name(), errno })?;
            let added = sys
                .is_directory(fd)
                .and_then(|is_dir| sys.landlock_add_path_rule(ruleset, fd, access_rights(*access, abi, is_dir)));
            // The O_PATH fd is only needed while the rule is added.
            let closed = sys.close(fd);
            ruleset = added.map_err(|errno| LandlockChildError::AddRule { path: name(), errno })?;
            closed.map_err(|errno| LandlockChildError::AddRule { path: name(), errno })?;
        }
    }
    let status = sys.landlock_restrict_self(ruleset).map_err(LandlockChildError::Restrict)?;
    if require_full && status != RulesetStatus::FullyEnforced {
        return Err(LandlockChildError::NotFull { status: format!("{status:?}") });
    }
    Ok(status)
}
