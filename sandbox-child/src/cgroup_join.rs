//! Joining cgroup v1 hierarchies from inside the child.
//!
//! The parent opens each instance's `tasks` file (as root) and passes the fds. The
//! child writes `0` — "the calling thread" — to each. A task moving itself by thread
//! skips the global `cgroup_threadgroup_rwsem` that a write of another pid takes; that
//! write waits for an RCU grace period (5–20 ms on the development hosts), this one
//! takes tens of microseconds. The kernel checks permission against the file's opener.
//! Each fd is closed right after use: no writable cgroup file reaches plugin code.

use crate::report::SetupStep;
use crate::step_error::StepError;
use crate::sys::Sys;
use nix::errno::Errno;
use std::os::fd::RawFd;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CgroupJoinError {
    #[error("joining the cgroup whose tasks file is fd {fd}: {errno}")]
    Write { fd: RawFd, errno: Errno },
    #[error("closing cgroup tasks fd {fd}: {errno}")]
    Close { fd: RawFd, errno: Errno },
}

impl StepError for CgroupJoinError {
    fn step(&self) -> SetupStep {
        SetupStep::JoinCgroups
    }

    fn errno(&self) -> Errno {
        match self {
            CgroupJoinError::Write { errno, .. } | CgroupJoinError::Close { errno, .. } => *errno,
        }
    }
}

/// Move the calling (single-threaded) child into every cgroup behind `task_fds`.
pub fn join_cgroups(sys: &dyn Sys, task_fds: &[RawFd]) -> Result<(), CgroupJoinError> {
    for &fd in task_fds {
        sys.write_all(fd, b"0").map_err(|errno| CgroupJoinError::Write { fd, errno })?;
        sys.close(fd).map_err(|errno| CgroupJoinError::Close { fd, errno })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::{Call, FakeSys};

    #[test]
    fn writes_zero_then_closes_each_fd_in_order() {
        let sys = FakeSys::new();
        join_cgroups(&sys, &[40, 41]).unwrap();
        assert_eq!(
            sys.calls(),
            vec![
                Call::Write { fd: 40, bytes: b"0".to_vec() },
                Call::Close(40),
                Call::Write { fd: 41, bytes: b"0".to_vec() },
                Call::Close(41),
            ]
        );
    }

    #[test]
    fn a_refused_write_is_reported_with_its_fd() {
        let sys = FakeSys::new();
        sys.fail_when(|c| matches!(c, Call::Write { fd: 41, .. }).then_some(Errno::EACCES));
        assert_eq!(join_cgroups(&sys, &[40, 41]), Err(CgroupJoinError::Write { fd: 41, errno: Errno::EACCES }));
    }
}
