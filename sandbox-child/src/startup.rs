//! First steps in the child: shed the signal state inherited from the supervisor, tie
//! its life to the parent, make it non-dumpable, wait for the parent's go (uid/gid maps
//! written, cgroups placed), become root of the new user namespace, then tie its life
//! to the parent again — the credential change cleared the parent-death signal.

use crate::report::SetupStep;
use crate::step_error::StepError;
use crate::sys::Sys;
use nix::errno::Errno;
use std::os::fd::RawFd;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum StartupError {
    #[error("resetting the signal mask and dispositions: {0}")]
    Signals(Errno),
    #[error("prctl(PR_SET_PDEATHSIG, SIGKILL): {0}")]
    DeathSignal(Errno),
    #[error("polling the error pipe (fd {fd}) for the parent's end: {errno}")]
    ParentCheck { fd: RawFd, errno: Errno },
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
            StartupError::Signals(_) => SetupStep::Signals,
            StartupError::DeathSignal(_) | StartupError::ParentCheck { .. } => SetupStep::ParentDeathSignal,
            StartupError::Dumpable(_) => SetupStep::Dumpable,
            StartupError::Release { .. } => SetupStep::SyncWait,
            StartupError::Gid(_) | StartupError::Uid(_) => SetupStep::Credentials,
        }
    }

    fn errno(&self) -> Errno {
        match self {
            StartupError::Signals(e)
            | StartupError::DeathSignal(e)
            | StartupError::Dumpable(e)
            | StartupError::Gid(e)
            | StartupError::Uid(e) => *e,
            StartupError::Release { errno, .. } | StartupError::ParentCheck { errno, .. } => *errno,
        }
    }
}

/// Unblock every signal and restore every default disposition. The supervisor blocks
/// the signals it reads from a signalfd and Rust's runtime ignores `SIGPIPE`; a blocked
/// mask and ignored signals survive `execve`, so the plugin would inherit both.
pub fn reset_signals(sys: &dyn Sys) -> Result<(), StartupError> {
    sys.reset_signals().map_err(StartupError::Signals)
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

/// After the credential change, which cleared the parent-death signal and reset the
/// dumpable flag to `fs.suid_dumpable`: set both again, then make sure the parent did
/// not die before the signal was armed. `getppid()` says nothing here (0: the parent
/// lives outside our pid namespace), but the parent holds the read end of the error pipe
/// until we exec, so a write end without readers means it is gone.
/// `Ok(false)`: the parent is gone, exit quietly.
pub fn rearm_after_credentials(sys: &dyn Sys, error_write: RawFd) -> Result<bool, StartupError> {
    detach_from_host(sys)?;
    match sys.pipe_reader_gone(error_write) {
        Ok(gone) => Ok(!gone),
        Err(errno) => Err(StartupError::ParentCheck { fd: error_write, errno }),
    }
}
