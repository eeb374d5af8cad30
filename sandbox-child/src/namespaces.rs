//! Finishing the namespaces the child was cloned into: a cgroup namespace rooted at
//! its own cgroup, its hostname, and a working loopback in the empty network namespace.

use crate::report::SetupStep;
use crate::step_error::StepError;
use crate::sys::Sys;
use nix::errno::Errno;
use std::ffi::CStr;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NamespaceError {
    #[error("unshare(CLONE_NEWCGROUP): {0}")]
    Cgroup(Errno),
    #[error("sethostname({name:?}): {errno}")]
    Hostname { name: String, errno: Errno },
    #[error("bringing up lo: {0}")]
    Loopback(Errno),
}

impl StepError for NamespaceError {
    fn step(&self) -> SetupStep {
        match self {
            NamespaceError::Cgroup(_) => SetupStep::CgroupNamespace,
            NamespaceError::Hostname { .. } => SetupStep::Hostname,
            NamespaceError::Loopback(_) => SetupStep::Loopback,
        }
    }

    fn errno(&self) -> Errno {
        match self {
            NamespaceError::Cgroup(e) | NamespaceError::Loopback(e) => *e,
            NamespaceError::Hostname { errno, .. } => *errno,
        }
    }
}

/// The parent has already placed us in our cgroups, so that cgroup becomes our `/`.
pub fn enter_cgroup_namespace(sys: &dyn Sys) -> Result<(), NamespaceError> {
    sys.unshare(libc::CLONE_NEWCGROUP).map_err(NamespaceError::Cgroup)
}

pub fn set_hostname(sys: &dyn Sys, name: &CStr) -> Result<(), NamespaceError> {
    sys.sethostname(name).map_err(|errno| NamespaceError::Hostname { name: name.to_string_lossy().into_owned(), errno })
}

pub fn bring_loopback_up(sys: &dyn Sys) -> Result<(), NamespaceError> {
    sys.bring_loopback_up().map_err(NamespaceError::Loopback)
}
