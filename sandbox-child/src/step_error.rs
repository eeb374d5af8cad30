//! How each child-side module's error becomes the [`SetupFailure`] sent to the parent.

use crate::report::{SetupFailure, SetupStep};
use nix::errno::Errno;

/// Implemented by every child-side error enum: which step failed and with which errno;
/// its `Display` (naming the path or resource) becomes the report's detail.
pub(crate) trait StepError: std::fmt::Display {
    fn step(&self) -> SetupStep;
    fn errno(&self) -> Errno;

    fn to_failure(&self) -> SetupFailure {
        SetupFailure::new(self.step(), self.errno() as i32, &self.to_string())
    }
}
