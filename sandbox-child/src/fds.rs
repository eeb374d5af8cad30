//! The plugin's file descriptors: a new session, stdin from `/dev/null`, stdout and
//! stderr from the parent's pipes, the event channel on [`CHANNEL_FD`], and every
//! other fd closed — except the error pipe and the Landlock ruleset, which are
//! close-on-exec and still needed until `execve`.

use crate::plan::{ChildFds, CHANNEL_FD};
use crate::report::SetupStep;
use crate::step_error::StepError;
use crate::sys::Sys;
use nix::errno::Errno;
use std::os::fd::RawFd;
use thiserror::Error;

/// Lowest fd not reserved for the plugin (0..=3 are stdin, stdout, stderr, channel).
pub const FIRST_FREE_FD: RawFd = CHANNEL_FD + 1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FdError {
    #[error("setsid(): {0}")]
    Session(Errno),
    #[error("moving fd {fd} to {FIRST_FREE_FD} or above: {errno}")]
    Lift { fd: RawFd, errno: Errno },
    #[error("marking the error pipe (fd {fd}) close-on-exec: {errno}")]
    Cloexec { fd: RawFd, errno: Errno },
    #[error("opening /dev/null for stdin: {0}")]
    DevNull(Errno),
    #[error("dup2({from}, {to}): {errno}")]
    Dup { from: RawFd, to: RawFd, errno: Errno },
    #[error("close_range({first}, {last}): {errno}")]
    CloseRange { first: u32, last: u32, errno: Errno },
}

impl StepError for FdError {
    fn step(&self) -> SetupStep {
        match self {
            FdError::Session(_) => SetupStep::Session,
            _ => SetupStep::Fds,
        }
    }

    fn errno(&self) -> Errno {
        match self {
            FdError::Session(e) | FdError::DevNull(e) => *e,
            FdError::Lift { errno, .. }
            | FdError::Cloexec { errno, .. }
            | FdError::Dup { errno, .. }
            | FdError::CloseRange { errno, .. } => *errno,
        }
    }
}

/// A new session: no controlling terminal, so no TIOCSTI-style injection into the host's.
pub fn new_session(sys: &dyn Sys) -> Result<(), FdError> {
    sys.setsid().map_err(FdError::Session)
}

/// A source below [`FIRST_FREE_FD`] could be overwritten by one of the `dup2`s onto
/// 0..=3 (and `dup2(x, x)` would keep `O_CLOEXEC`), so every source is moved up first.
fn lift(sys: &dyn Sys, fd: RawFd) -> Result<RawFd, FdError> {
    if fd >= FIRST_FREE_FD {
        return Ok(fd);
    }
    sys.dup_at_least(fd, FIRST_FREE_FD).map_err(|errno| FdError::Lift { fd, errno })
}

/// Put stdin (`/dev/null`), stdout, stderr and the channel on 0..=3. `error_fd` is
/// updated as soon as the error pipe moves, so a later failure is still reported.
pub fn install_plugin_fds(sys: &dyn Sys, fds: &ChildFds, error_fd: &mut RawFd) -> Result<(), FdError> {
    *error_fd = lift(sys, *error_fd)?;
    sys.set_cloexec(*error_fd).map_err(|errno| FdError::Cloexec { fd: *error_fd, errno })?;
    let stdout = lift(sys, fds.stdout)?;
    let stderr = lift(sys, fds.stderr)?;
    let channel = lift(sys, fds.channel)?;
    let null = sys.open_at(libc::AT_FDCWD, c"/dev/null", libc::O_RDWR, 0).map_err(FdError::DevNull)?;
    let null = lift(sys, null)?;
    for (from, to) in [
        (null, libc::STDIN_FILENO),
        (stdout, libc::STDOUT_FILENO),
        (stderr, libc::STDERR_FILENO),
        (channel, CHANNEL_FD),
    ] {
        sys.dup2(from, to).map_err(|errno| FdError::Dup { from, to, errno })?;
    }
    Ok(())
}

/// Close every fd from [`FIRST_FREE_FD`] up, except those in `keep`.
pub fn close_strays(sys: &dyn Sys, keep: &[RawFd]) -> Result<(), FdError> {
    let mut kept: Vec<u32> = keep.iter().filter_map(|fd| u32::try_from(*fd).ok()).collect();
    kept.sort_unstable();
    kept.dedup();
    let mut first = FIRST_FREE_FD as u32;
    for fd in kept {
        if fd < first {
            continue;
        }
        if fd > first {
            close_range(sys, first, fd - 1)?;
        }
        first = fd + 1;
    }
    close_range(sys, first, u32::MAX)
}

fn close_range(sys: &dyn Sys, first: u32, last: u32) -> Result<(), FdError> {
    sys.close_range(first, last).map_err(|errno| FdError::CloseRange { first, last, errno })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::{Call, FakeSys};

    fn fds(error_write: RawFd) -> ChildFds {
        ChildFds { sync_read: 5, error_write, channel: 7, stdout: 8, stderr: 9 }
    }

    #[test]
    fn stdio_and_channel_land_on_0_to_3() {
        let sys = FakeSys::new();
        let mut err = 6;
        install_plugin_fds(&sys, &fds(6), &mut err).unwrap();
        assert_eq!(err, 6);
        let calls = sys.calls();
        assert!(calls.contains(&Call::SetCloexec(6)));
        assert!(calls.contains(&Call::OpenAt { path: "/dev/null".into(), flags: libc::O_RDWR, mode: 0 }));
        let dups: Vec<(RawFd, RawFd)> = calls
            .iter()
            .filter_map(|c| match c {
                Call::Dup2 { old, new } => Some((*old, *new)),
                _ => None,
            })
            .collect();
        // /dev/null got fake fd 100.
        assert_eq!(dups, vec![(100, 0), (8, 1), (9, 2), (7, 3)]);
    }

    #[test]
    fn sources_below_4_are_moved_up_before_any_dup2() {
        let sys = FakeSys::new();
        let mut err = 3;
        let low = ChildFds { sync_read: 5, error_write: 3, channel: 1, stdout: 2, stderr: 0 };
        install_plugin_fds(&sys, &low, &mut err).unwrap();
        assert!(err >= FIRST_FREE_FD, "error pipe must leave fd 3 (the channel's slot)");
        let calls = sys.calls();
        let first_dup2 = calls.iter().position(|c| matches!(c, Call::Dup2 { .. })).unwrap();
        for fd in [3, 1, 2, 0] {
            let lifted = calls.iter().position(|c| *c == Call::DupAtLeast { fd, min: FIRST_FREE_FD }).unwrap();
            assert!(lifted < first_dup2, "fd {fd} lifted after a dup2");
        }
        assert!(calls.iter().all(|c| !matches!(c, Call::Dup2 { old, new } if old == new)));
        assert!(calls.contains(&Call::SetCloexec(err)));
    }

    #[test]
    fn a_failed_dup2_is_reported_with_both_fds() {
        let sys = FakeSys::new();
        sys.fail_when(|c| matches!(c, Call::Dup2 { new: 2, .. }).then_some(Errno::EBADF));
        let mut err = 6;
        let e = install_plugin_fds(&sys, &fds(6), &mut err).unwrap_err();
        assert_eq!(e, FdError::Dup { from: 9, to: 2, errno: Errno::EBADF });
        assert_eq!(e.step(), SetupStep::Fds);
        assert!(!sys.calls().contains(&Call::Dup2 { old: 7, new: 3 }), "stopped at the failure");
    }

    #[test]
    fn strays_are_closed_around_the_kept_fds() {
        let sys = FakeSys::new();
        close_strays(&sys, &[9, 5, 2, 9]).unwrap();
        assert_eq!(
            sys.calls(),
            vec![
                Call::CloseRange { first: 4, last: 4 },
                Call::CloseRange { first: 6, last: 8 },
                Call::CloseRange { first: 10, last: u32::MAX },
            ]
        );
        let adjacent = FakeSys::new();
        close_strays(&adjacent, &[4, 5]).unwrap();
        assert_eq!(adjacent.calls(), vec![Call::CloseRange { first: 6, last: u32::MAX }]);
        let none = FakeSys::new();
        close_strays(&none, &[]).unwrap();
        assert_eq!(none.calls(), vec![Call::CloseRange { first: 4, last: u32::MAX }]);
    }

    #[test]
    fn setsid_failure_is_the_session_step() {
        let sys = FakeSys::new();
        sys.fail_when(|c| (*c == Call::Setsid).then_some(Errno::EPERM));
        assert_eq!(new_session(&sys).unwrap_err().step(), SetupStep::Session);
    }
}
