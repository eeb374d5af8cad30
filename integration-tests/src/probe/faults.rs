//! Probes that end the process in a chosen way: an exit status or a fatal signal.

use super::args::{Args, UsageError};
use super::outcome::{AfterPrint, Outcome};

/// Exit status used when the requested signal could not be delivered after all.
const UNDELIVERED_EXIT: i32 = 3;

pub fn exit(args: &mut Args) -> Result<Outcome, UsageError> {
    let code: u8 = args.required_parsed("CODE")?;
    Ok(Outcome::success().with("code", code).then(AfterPrint::Exit(i32::from(code))))
}

/// Dies of SIGNAL after printing its line. The init of a pid namespace (pid 1) ignores
/// signals it sends itself unless it has a handler, so there the probe raises the signal
/// with a faulting instruction instead, which the kernel forces; signals with no such
/// instruction cannot kill a pid-namespace init from inside and are reported as `ok: false`.
pub fn kill_self(args: &mut Args) -> Result<Outcome, UsageError> {
    let signal: i32 = args.required_parsed("SIGNAL")?;
    if !(1..=64).contains(&signal) {
        return Err(UsageError::Invalid { what: "SIGNAL", value: signal.to_string() });
    }
    // SAFETY: getpid cannot fail.
    let namespace_init = unsafe { libc::getpid() } == 1;
    let method = match (namespace_init, fault_for(signal).is_some()) {
        (false, _) => "kill",
        (true, true) => "fault",
        (true, false) => {
            return Ok(Outcome::new(false, None)
                .with("signal", signal)
                .with("method", "none")
                .with("reason", "a pid-namespace init cannot send itself this signal"));
        }
    };
    Ok(Outcome::success().with("signal", signal).with("method", method).then(AfterPrint::Die(signal)))
}

/// Ends the process by `signal`; exits with [`UNDELIVERED_EXIT`] if it survives.
pub fn die_of(signal: i32) -> ! {
    disable_core_dumps();
    // SAFETY: restoring the default action and unblocking only affect this process.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), signal);
    }
    if let Some(fault) = fault_for(signal) {
        fault();
    }
    std::process::exit(UNDELIVERED_EXIT)
}

fn disable_core_dumps() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: limit is a live rlimit; lowering the soft limit is always allowed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_CORE, &mut limit) == 0 {
            limit.rlim_cur = 0;
            libc::setrlimit(libc::RLIMIT_CORE, &limit);
        }
    }
}

/// A function executing an instruction that makes the CPU raise `signal`, if there is one.
#[cfg(target_arch = "x86_64")]
fn fault_for(signal: i32) -> Option<fn()> {
    match signal {
        libc::SIGSEGV => Some(fault_segv),
        libc::SIGILL => Some(fault_ill),
        libc::SIGTRAP => Some(fault_trap),
        libc::SIGFPE => Some(fault_fpe),
        _ => None,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn fault_for(_signal: i32) -> Option<fn()> {
    None
}

#[cfg(target_arch = "x86_64")]
fn fault_segv() {
    // SAFETY: deliberately faults: address 0 is never mapped (vm.mmap_min_addr).
    unsafe { std::arch::asm!("mov byte ptr [{0}], 0", in(reg) 0usize, options(nostack)) };
}

#[cfg(target_arch = "x86_64")]
fn fault_ill() {
    // SAFETY: deliberately raises #UD.
    unsafe { std::arch::asm!("ud2", options(nostack)) };
}

#[cfg(target_arch = "x86_64")]
fn fault_trap() {
    // SAFETY: deliberately raises #BP.
    unsafe { std::arch::asm!("int3", options(nostack)) };
}

#[cfg(target_arch = "x86_64")]
fn fault_fpe() {
    // SAFETY: deliberately raises #DE by dividing by zero.
    unsafe {
        std::arch::asm!("div {0}", in(reg) 0u64, inout("rax") 1u64 => _, inout("rdx") 0u64 => _, options(nostack));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_and_signal_arguments_are_checked() {
        let argv = vec!["256".to_owned()];
        assert!(exit(&mut Args::new(&argv)).is_err());
        let argv = vec!["7".to_owned()];
        assert_eq!(exit(&mut Args::new(&argv)).expect("args").then, AfterPrint::Exit(7));
        let argv = vec!["65".to_owned()];
        assert!(kill_self(&mut Args::new(&argv)).is_err());
        let argv = vec!["15".to_owned()];
        assert_eq!(kill_self(&mut Args::new(&argv)).expect("args").then, AfterPrint::Die(15));
    }
}
