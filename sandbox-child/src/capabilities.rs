//! Dropping every capability and setting `no_new_privs`.
//!
//! Order matters: securebits and the bounding set need `CAP_SETPCAP`, so they go
//! first; ambient and bounding sets are cleared before permitted (clearing permitted
//! first would leave no right to change the others).

use crate::report::SetupStep;
use crate::step_error::StepError;
use crate::sys::Sys;
use nix::errno::Errno;
use thiserror::Error;

/// Root inside gets no capabilities from exec (NOROOT), keep-caps can never be turned
/// on, set*id never adjusts caps, ambient caps can never be raised; all locked.
pub const SECUREBITS: u32 = (libc::SECBIT_NOROOT
    | libc::SECBIT_NOROOT_LOCKED
    | libc::SECBIT_NO_SETUID_FIXUP
    | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
    | libc::SECBIT_KEEP_CAPS_LOCKED
    | libc::SECBIT_NO_CAP_AMBIENT_RAISE
    | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) as u32;

/// Upper bound for the bounding-set loop (capability numbers are < 64).
pub const MAX_CAP: u32 = 63;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CapabilityError {
    #[error("prctl(PR_SET_SECUREBITS, {bits:#x}): {errno}")]
    Securebits { bits: u32, errno: Errno },
    #[error("clearing the ambient capability set: {0}")]
    Ambient(Errno),
    #[error("dropping capability {cap} from the bounding set: {errno}")]
    Bounding { cap: u32, errno: Errno },
    #[error("capset(effective = permitted = inheritable = 0): {0}")]
    Sets(Errno),
    #[error("prctl(PR_SET_NO_NEW_PRIVS, 1): {0}")]
    NoNewPrivs(Errno),
}

impl StepError for CapabilityError {
    fn step(&self) -> SetupStep {
        match self {
            CapabilityError::NoNewPrivs(_) => SetupStep::NoNewPrivs,
            _ => SetupStep::Capabilities,
        }
    }

    fn errno(&self) -> Errno {
        match self {
            CapabilityError::Ambient(e) | CapabilityError::Sets(e) | CapabilityError::NoNewPrivs(e) => *e,
            CapabilityError::Securebits { errno, .. } | CapabilityError::Bounding { errno, .. } => *errno,
        }
    }
}

/// Lock the securebits, then empty the ambient, bounding, inheritable, permitted and
/// effective sets. Returns how many bounding capabilities were dropped.
pub fn drop_all(sys: &dyn Sys) -> Result<u32, CapabilityError> {
    sys.set_securebits(SECUREBITS).map_err(|errno| CapabilityError::Securebits { bits: SECUREBITS, errno })?;
    sys.clear_ambient_caps().map_err(CapabilityError::Ambient)?;
    let dropped = drop_bounding_set(sys)?;
    sys.clear_cap_sets().map_err(CapabilityError::Sets)?;
    Ok(dropped)
}

/// Drop caps 0, 1, ... until the kernel answers EINVAL (past its last capability).
fn drop_bounding_set(sys: &dyn Sys) -> Result<u32, CapabilityError> {
    for cap in 0..=MAX_CAP {
        match sys.drop_bounding_cap(cap) {
            Ok(()) => {}
            // Cap 0 (CAP_CHOWN) always exists, so EINVAL there is a real error.
            Err(Errno::EINVAL) if cap > 0 => return Ok(cap),
            Err(errno) => return Err(CapabilityError::Bounding { cap, errno }),
        }
    }
    Ok(MAX_CAP + 1)
}

pub fn set_no_new_privs(sys: &dyn Sys) -> Result<(), CapabilityError> {
    sys.set_no_new_privs().map_err(CapabilityError::NoNewPrivs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::{Call, FakeSys};

    #[test]
    fn securebits_then_ambient_then_every_bounding_cap_then_sets() {
        let sys = FakeSys::new();
        assert_eq!(drop_all(&sys).unwrap(), 41);
        let calls = sys.calls();
        assert_eq!(calls[0], Call::Securebits(SECUREBITS));
        assert_eq!(calls[1], Call::ClearAmbient);
        for cap in 0..=41 {
            assert_eq!(calls[2 + cap as usize], Call::DropBounding(cap));
        }
        assert_eq!(calls.last(), Some(&Call::ClearCapSets));
        assert_eq!(calls.len(), 2 + 42 + 1);
    }

    #[test]
    fn securebits_lock_what_they_set() {
        for (bit, lock) in [
            (libc::SECBIT_NOROOT, libc::SECBIT_NOROOT_LOCKED),
            (libc::SECBIT_NO_SETUID_FIXUP, libc::SECBIT_NO_SETUID_FIXUP_LOCKED),
            (libc::SECBIT_NO_CAP_AMBIENT_RAISE, libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED),
        ] {
            assert_ne!(SECUREBITS & bit as u32, 0);
            assert_ne!(SECUREBITS & lock as u32, 0);
        }
        assert_eq!(SECUREBITS & libc::SECBIT_KEEP_CAPS as u32, 0, "keep-caps must stay off");
        assert_ne!(SECUREBITS & libc::SECBIT_KEEP_CAPS_LOCKED as u32, 0);
    }

    #[test]
    fn a_failing_drop_stops_before_the_sets_are_cleared() {
        let sys = FakeSys::new();
        sys.fail_when(|c| (*c == Call::DropBounding(12)).then_some(Errno::EPERM));
        let err = drop_all(&sys).unwrap_err();
        assert_eq!(err, CapabilityError::Bounding { cap: 12, errno: Errno::EPERM });
        assert_eq!(err.step(), SetupStep::Capabilities);
        assert!(!sys.calls().contains(&Call::ClearCapSets));
    }

    #[test]
    fn einval_on_cap_zero_is_an_error_not_an_empty_set() {
        let sys = FakeSys::new();
        sys.fail_when(|c| (*c == Call::DropBounding(0)).then_some(Errno::EINVAL));
        assert!(matches!(drop_all(&sys), Err(CapabilityError::Bounding { cap: 0, .. })));
    }

    #[test]
    fn no_new_privs_is_its_own_step() {
        let sys = FakeSys::new();
        sys.fail_when(|c| (*c == Call::NoNewPrivs).then_some(Errno::EINVAL));
        assert_eq!(set_no_new_privs(&sys).unwrap_err().step(), SetupStep::NoNewPrivs);
    }
}
