//! The child's ordered setup sequence (DESIGN.md §3), from clone to execve.
//!
//! namespaces → signals → pdeathsig, dumpable → (uid/gid maps: by the parent) → join cgroups →
//! credentials → pdeathsig, dumpable again, parent alive? → mounts and pivot_root →
//! hostname → rlimits → fds → capabilities → no_new_privs → Landlock → seccomp → execve.
//! The first failing step is reported on the error pipe and the child exits.

use crate::capabilities;
use crate::cgroup_join;
use crate::fds;
use crate::handover;
use crate::landlock_child;
use crate::mounts;
use crate::namespaces;
use crate::plan::ChildPlan;
use crate::report::{self, SetupFailure};
use crate::rlimits;
use crate::startup;
use crate::step_error::StepError;
use crate::sys::Sys;
use std::os::fd::RawFd;

/// Exit code after a setup failure was reported on the error pipe.
pub const EXIT_SETUP_FAILED: i32 = 1;
/// Exit code when the parent closed the sync pipe without releasing the child.
pub const EXIT_NOT_RELEASED: i32 = 2;
/// Exit code when the parent died before the parent-death signal was re-armed.
pub const EXIT_PARENT_GONE: i32 = 3;

/// Why the sequence stopped before `execve`.
#[derive(Debug, PartialEq, Eq)]
pub enum Abort {
    /// The parent closed the sync pipe instead of releasing us: exit quietly.
    NotReleased,
    /// The parent is gone (nobody reads the error pipe): exit quietly.
    ParentGone,
    Failed(SetupFailure),
}

impl<E: StepError> From<E> for Abort {
    fn from(e: E) -> Self {
        Abort::Failed(e.to_failure())
    }
}

/// The child's entry point after clone: runs the sequence and never returns — it
/// either becomes the plugin (`execve`) or `_exit`s nonzero, after writing a
/// [`SetupFailure`] to `plan.fds.error_write` when a step failed.
pub fn run_child(plan: ChildPlan, sys: &dyn Sys) -> ! {
    let mut error_fd = plan.fds.error_write;
    match execute(plan, sys, &mut error_fd) {
        // Only a fake `execve` returns success.
        Ok(()) => sys.exit(0),
        Err(Abort::NotReleased) => sys.exit(EXIT_NOT_RELEASED),
        Err(Abort::ParentGone) => sys.exit(EXIT_PARENT_GONE),
        Err(Abort::Failed(failure)) => {
            // Nothing is left to report a failed report to; the exit code still says it.
            let _ = sys.write_all(error_fd, &report::encode(&failure));
            sys.exit(EXIT_SETUP_FAILED)
        }
    }
}

/// The whole sequence. `error_fd` tracks the error pipe, which moves during the fd step.
/// Returns `Ok` only when a fake `execve` simulated success.
pub fn execute(plan: ChildPlan, sys: &dyn Sys, error_fd: &mut RawFd) -> Result<(), Abort> {
    let ChildPlan { fds, cgroup_join_fds, root_tmpfs_bytes, root_ops, hostname, rlimits, landlock, seccomp, exec } =
        plan;

    startup::reset_signals(sys)?;
    startup::detach_from_host(sys)?;
    if !startup::wait_for_release(sys, fds.sync_read)? {
        return Err(Abort::NotReleased);
    }
    // Before any other work: everything from here on is charged to the plugin's cgroups.
    cgroup_join::join_cgroups(sys, &cgroup_join_fds)?;
    startup::become_namespace_root(sys)?;
    if !startup::rearm_after_credentials(sys, *error_fd)? {
        return Err(Abort::ParentGone);
    }
    namespaces::enter_cgroup_namespace(sys)?;

    mounts::build_root(sys, root_tmpfs_bytes, &root_ops)?;
    // The bind sources are attached now; their numbers must not outlive this point.
    drop(root_ops);

    namespaces::set_hostname(sys, &hostname)?;
    namespaces::bring_loopback_up(sys)?;
    rlimits::apply(sys, &rlimits)?;

    fds::new_session(sys)?;
    // The parent's ruleset fd may be any number, 0..=3 included: pin it before the dup2s.
    let (landlock, ruleset_fd) = match landlock {
        Some(plan) => {
            let (plan, fd) = landlock_child::pin_ruleset(sys, plan, *error_fd)?;
            (Some(plan), fd)
        }
        None => (None, None),
    };
    fds::install_plugin_fds(sys, &fds, error_fd)?;
    let keep: Vec<RawFd> = [Some(*error_fd), ruleset_fd].into_iter().flatten().collect();
    fds::close_strays(sys, &keep)?;

    capabilities::drop_all(sys)?;
    capabilities::set_no_new_privs(sys)?;
    if let Some(plan) = landlock {
        landlock_child::restrict(sys, plan)?;
    }

    handover::enter_cwd(sys, &exec)?;
    if let Some(program) = &seccomp {
        handover::install_seccomp(sys, program)?;
    }
    handover::exec(sys, &exec)?;
    Ok(())
}

#[cfg(test)]
#[path = "setup_tests.rs"]
mod tests;
