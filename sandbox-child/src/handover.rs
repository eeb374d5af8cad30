//! The last steps: enter the working directory, install seccomp (last, so every
//! earlier step could use any syscall), and execve the entry point.

use crate::plan::ExecPlan;
use crate::report::SetupStep;
use crate::step_error::StepError;
use crate::sys::Sys;
use nix::errno::Errno;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HandoverError {
    #[error("chdir({path}): {errno}")]
    Cwd { path: String, errno: Errno },
    #[error("installing the seccomp filter ({len} instructions): {errno}")]
    Seccomp { len: usize, errno: Errno },
    #[error("execve({path}): {errno}")]
    Exec { path: String, errno: Errno },
}

impl StepError for HandoverError {
    fn step(&self) -> SetupStep {
        match self {
            HandoverError::Cwd { .. } => SetupStep::Cwd,
            HandoverError::Seccomp { .. } => SetupStep::Seccomp,
            HandoverError::Exec { .. } => SetupStep::Exec,
        }
    }

    fn errno(&self) -> Errno {
        match self {
            HandoverError::Cwd { errno, .. }
            | HandoverError::Seccomp { errno, .. }
            | HandoverError::Exec { errno, .. } => *errno,
        }
    }
}

pub fn enter_cwd(sys: &dyn Sys, exec: &ExecPlan) -> Result<(), HandoverError> {
    sys.chdir(&exec.cwd).map_err(|errno| HandoverError::Cwd { path: exec.cwd.to_string_lossy().into_owned(), errno })
}

pub fn install_seccomp(sys: &dyn Sys, program: &[libc::sock_filter]) -> Result<(), HandoverError> {
    sys.install_seccomp(program).map_err(|errno| HandoverError::Seccomp { len: program.len(), errno })
}

/// Returns only if `execve` failed (or a fake simulated success with `Ok`).
pub fn exec(sys: &dyn Sys, exec: &ExecPlan) -> Result<(), HandoverError> {
    sys.execve(&exec.path, &exec.argv, &exec.envp)
        .map_err(|errno| HandoverError::Exec { path: exec.path.to_string_lossy().into_owned(), errno })
}
