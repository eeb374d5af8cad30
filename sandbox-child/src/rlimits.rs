//! Resource limits, applied in the child before any plugin code runs.

use crate::plan::Rlimit;
use crate::report::SetupStep;
use crate::step_error::StepError;
use crate::sys::Sys;
use nix::errno::Errno;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RlimitError {
    #[error("setrlimit(resource {resource}, soft {soft}, hard {hard}): soft limit above hard limit")]
    SoftAboveHard { resource: i32, soft: u64, hard: u64 },
    #[error("setrlimit(resource {resource}, soft {soft}, hard {hard}): {errno}")]
    Set { resource: i32, soft: u64, hard: u64, errno: Errno },
}

impl StepError for RlimitError {
    fn step(&self) -> SetupStep {
        SetupStep::Rlimits
    }

    fn errno(&self) -> Errno {
        match self {
            RlimitError::SoftAboveHard { .. } => Errno::EINVAL,
            RlimitError::Set { errno, .. } => *errno,
        }
    }
}

/// Apply every limit in order; the first failure stops (a missing limit is never silent).
pub fn apply(sys: &dyn Sys, limits: &[Rlimit]) -> Result<(), RlimitError> {
    for &Rlimit { resource, soft, hard } in limits {
        if soft > hard {
            return Err(RlimitError::SoftAboveHard { resource, soft, hard });
        }
        sys.setrlimit(resource, soft, hard).map_err(|errno| RlimitError::Set { resource, soft, hard, errno })?;
    }
    Ok(())
}
