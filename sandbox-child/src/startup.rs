//! First steps in the child: tie its life to the parent, make it non-dumpable, wait
//! for the parent's go (uid/gid maps written, cgroups placed), then become root of
//! the new user namespace.

use crate::report::SetupStep;
use crate::step_error::StepError;
use crate::sys::Sys;
use nix::errno::Errno;
use std::os::fd::RawFd;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum StartupError {
    #[error("prctl(PR_SET_PDEATHSIG, SIGKILL): {0}")]
    DeathSignal(Errno),
    #[error("prctl(PR_SET_DUMPABLE, 0): {0}")]
    Dumpable(Errno),
    #[error("waiting for the release byte on fd {fd}: {errno}")]
    Release { fd: RawFd, errno: Errno },
    #[error("setresgid(0, 0, 0): {0}")]
    Gid(Errno),
    #[error("setresuid(0, 0, 0): {0}")]
    Uid(Errno),
}

impl StepError for StartupError {
    fn step(&self) -> SetupStep {
        match self {
            StartupError::DeathSignal(_) => SetupStep::ParentDeathSignal,
            StartupError::Dumpable(_) => SetupStep::Dumpable,
            StartupError::Release { .. } => SetupStep::SyncWait,
            StartupError::Gid(_) | StartupError::Uid(_) => SetupStep::Credentials,
        }
    }

    fn errno(&self) -> Errno {
        match self {
            StartupError::DeathSignal(e) | StartupError::Dumpable(e) | StartupError::Gid(e) | StartupError::Uid(e) => {
                *e
            }
            StartupError::Release { errno, .. } => *errno,
        }
    }
}

/// Die with the parent; keep other processes of our uid out of /proc/self and ptrace.
pub fn detach_from_host(sys: &dyn Sys) -> Result<(), StartupError> {
    sys.set_parent_death_signal(libc::SIGKILL).map_err(StartupError::DeathSignal)?;
    sys.set_dumpable(false).map_err(StartupError::Dumpable)
}

/// Block until the parent releases us. `Ok(false)`: the parent closed the pipe (abort).
pub fn wait_for_release(sys: &dyn Sys, sync_read: RawFd) -> Result<bool, StartupError> {
    match sys.read_byte(sync_read) {
        Ok(byte) => Ok(byte.is_some()),
        Err(errno) => Err(StartupError::Release { fd: sync_read, errno }),
    }
}

/// Become uid/gid 0 of the new user namespace; until then we still carry the
/// parent's (host root's) ids, which map to nothing here.
pub fn become_namespace_root(sys: &dyn Sys) -> Result<(), StartupError> {
    sys.setresgid(0).map_err(StartupError::Gid)?;
    sys.setresuid(0).map_err(StartupError::Uid)
}
