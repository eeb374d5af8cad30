//! Signal state the probe inherited, and its parent-death signal.
//!
//! Rust's runtime sets SIGPIPE to SIG_IGN before `main`, which would hide an ignored
//! SIGPIPE inherited across `execve`. So the masks are read from /proc/self/status by a
//! constructor in `.init_array`, which the loader runs before the runtime starts.

use super::args::{Args, UsageError};
use super::outcome::Outcome;
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// The inherited `/proc/self/status` lines, as read before the runtime changed anything.
const INHERITED_KEYS: [&str; 2] = ["SigBlk", "SigIgn"];

static AT_START: OnceLock<Map<String, Value>> = OnceLock::new();

#[used]
#[link_section = ".init_array"]
static CAPTURE_AT_START: extern "C" fn() = capture_at_start;

extern "C" fn capture_at_start() {
    // Nothing may panic here; an unreadable status leaves the map empty.
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let _ = AT_START.set(signal_masks(&text));
}

fn signal_masks(status: &str) -> Map<String, Value> {
    status
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| INHERITED_KEYS.contains(key))
        .map(|(key, value)| (key.to_owned(), Value::from(value.trim())))
        .collect()
}

/// SigBlk and SigIgn as the process started (before Rust's runtime ignored SIGPIPE).
pub fn inherited_masks() -> Map<String, Value> {
    AT_START.get().cloned().unwrap_or_default()
}

/// `prctl(PR_GET_PDEATHSIG)`: the signal this process gets when its parent dies (0: none).
pub fn pdeathsig(_args: &mut Args) -> Result<Outcome, UsageError> {
    let mut signal: libc::c_int = -1;
    // SAFETY: PR_GET_PDEATHSIG stores one int through the pointer, which is live.
    let rc = unsafe { libc::prctl(libc::PR_GET_PDEATHSIG, &mut signal as *mut libc::c_int, 0, 0, 0) };
    let outcome = Outcome::from_rc(i64::from(rc));
    Ok(if outcome.ok { outcome.with("signal", signal) } else { outcome })
}

/// `prctl(PR_SET_PDEATHSIG, SIGNAL)`: an attempt to change (or, with 0, disarm) it.
pub fn set_pdeathsig(args: &mut Args) -> Result<Outcome, UsageError> {
    let signal: i32 = args.required_parsed("SIGNAL")?;
    if !(0..=64).contains(&signal) {
        return Err(UsageError::Invalid { what: "SIGNAL", value: signal.to_string() });
    }
    // SAFETY: integer-only prctl; `signal` is in 0..=64, so the cast is exact.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) };
    Ok(Outcome::from_rc(i64::from(rc)).with("signal", signal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constructor_ran_and_saw_the_masks_before_the_runtime() {
        let masks = inherited_masks();
        for key in INHERITED_KEYS {
            let value = masks[key].as_str().unwrap_or_else(|| panic!("{key} missing: {masks:?}"));
            assert!(u64::from_str_radix(value, 16).is_ok(), "{key}: {value}");
        }
        // The runtime ignores SIGPIPE by now; the captured mask must not show that unless
        // it was inherited (the test runner is Rust too, but it resets SIGPIPE for children).
        let now = std::fs::read_to_string("/proc/self/status").unwrap();
        let ign_now = signal_masks(&now)["SigIgn"].as_str().map(|v| u64::from_str_radix(v, 16).unwrap()).unwrap();
        assert_ne!(ign_now & (1 << (libc::SIGPIPE - 1)), 0, "Rust's runtime ignores SIGPIPE");
    }

    #[test]
    fn parses_the_signal_lines() {
        let status = "Name:\tx\nSigQ:\t0/1\nSigPnd:\t0\nSigBlk:\t0000000000014003\nSigIgn:\t0000000000001000\n";
        let masks = signal_masks(status);
        assert_eq!(masks["SigBlk"], "0000000000014003");
        assert_eq!(masks["SigIgn"], "0000000000001000");
        assert_eq!(masks.len(), 2);
    }

    #[test]
    fn pdeathsig_reports_a_signal_and_bad_signals_are_usage_errors() {
        let outcome = pdeathsig(&mut Args::new(&[])).expect("args");
        assert!(outcome.ok && outcome.extra["signal"].is_i64(), "{outcome:?}");
        let argv = vec!["65".to_owned()];
        assert!(set_pdeathsig(&mut Args::new(&argv)).is_err());
    }
}
