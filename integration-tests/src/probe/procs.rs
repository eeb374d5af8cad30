//! Process probes: what is visible under /proc, and reaching into other processes.

use super::args::{Args, UsageError};
use super::outcome::{last_errno, Outcome};
use serde_json::json;

const PID_LIMIT: usize = 1000;

/// Every pid visible under /proc, with its command name.
pub fn proc_pids(_args: &mut Args) -> Result<Outcome, UsageError> {
    let listing = std::fs::read_dir("/proc").map(|dir| {
        let mut pids: Vec<i32> =
            dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok()).take(PID_LIMIT).collect();
        pids.sort_unstable();
        pids
    });
    let outcome = Outcome::from_io(&listing).with("self", std::process::id());
    let Ok(pids) = listing else {
        return Ok(outcome);
    };
    let processes: Vec<_> = pids.iter().map(|pid| json!({"pid": pid, "comm": comm_of(*pid)})).collect();
    Ok(outcome.with("count", pids.len()).with("pids", pids).with("processes", processes))
}

fn comm_of(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|comm| comm.trim_end().to_owned())
}

pub fn ptrace_traceme(_args: &mut Args) -> Result<Outcome, UsageError> {
    // SAFETY: PTRACE_TRACEME takes no pointers.
    let rc = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
    Ok(Outcome::from_rc(rc))
}

/// PTRACE_ATTACH to PID; on success waits for the attach stop and detaches again.
pub fn ptrace_attach(args: &mut Args) -> Result<Outcome, UsageError> {
    let pid: libc::pid_t = args.required_parsed("PID")?;
    // SAFETY: PTRACE_ATTACH takes no pointers.
    let rc = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
    let outcome = Outcome::from_rc(rc).with("pid", pid);
    if !outcome.ok {
        return Ok(outcome);
    }
    let mut status = 0;
    // SAFETY: status points to a live c_int; the pid is our tracee now.
    let detached = unsafe {
        libc::waitpid(pid, &mut status, libc::__WALL);
        libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) == 0
    };
    Ok(outcome.with("detached", detached))
}

/// process_vm_readv of 8 bytes from PID (default: this process) at the address of a local.
pub fn process_vm_readv(args: &mut Args) -> Result<Outcome, UsageError> {
    // SAFETY: getpid has no preconditions.
    let pid: libc::pid_t = args.optional_parsed("PID")?.unwrap_or_else(|| unsafe { libc::getpid() });
    let source: u64 = 0x5746_5f50_524f_4245;
    let mut target: u64 = 0;
    let local = libc::iovec { iov_base: (&mut target as *mut u64).cast(), iov_len: 8 };
    let remote = libc::iovec { iov_base: (&source as *const u64).cast_mut().cast(), iov_len: 8 };
    // SAFETY: the local iovec points to a live u64; the remote address is only read by the
    // kernel on the target's side.
    let read = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    let outcome = Outcome::from_rc(read as i64).with("pid", pid);
    Ok(if outcome.ok { outcome.with("bytes", read).with("matched", target == source) } else { outcome })
}

/// pidfd_open(PID) then pidfd_getfd(FD): stealing an fd from another process.
pub fn pidfd_getfd(args: &mut Args) -> Result<Outcome, UsageError> {
    // SAFETY: getpid has no preconditions.
    let pid: libc::pid_t = args.optional_parsed("PID")?.unwrap_or_else(|| unsafe { libc::getpid() });
    let target_fd: libc::c_int = args.optional_parsed("FD")?.unwrap_or(0);
    // SAFETY: raw syscall without pointers.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Ok(Outcome::failure(last_errno()).with("step", "pidfd_open").with("pid", pid));
    }
    // SAFETY: raw syscall without pointers.
    let stolen = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target_fd, 0) };
    let outcome = super::fs::close_if_fd(stolen).with("step", "pidfd_getfd").with("pid", pid).with("fd", target_fd);
    // SAFETY: closing the pidfd this probe opened.
    unsafe { libc::close(pidfd as libc::c_int) };
    Ok(outcome)
}

/// kill(PID, SIGNAL), SIGNAL defaulting to SIGKILL.
pub fn kill_pid(args: &mut Args) -> Result<Outcome, UsageError> {
    let pid: libc::pid_t = args.required_parsed("PID")?;
    let signal: libc::c_int = args.optional_parsed("SIGNAL")?.unwrap_or(libc::SIGKILL);
    // SAFETY: kill takes no pointers.
    let rc = unsafe { libc::kill(pid, signal) };
    Ok(Outcome::from_rc(i64::from(rc)).with("pid", pid).with("signal", signal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pid_is_visible() {
        let outcome = proc_pids(&mut Args::new(&[])).expect("args");
        let me = std::process::id() as i64;
        let pids = outcome.extra["pids"].as_array().expect("pids");
        assert!(pids.iter().any(|pid| pid.as_i64() == Some(me)));
    }

    #[test]
    fn reading_own_memory_works_outside_a_sandbox() {
        let outcome = process_vm_readv(&mut Args::new(&[])).expect("args");
        assert_eq!(outcome.extra.get("matched"), Some(&serde_json::Value::Bool(true)), "{outcome:?}");
    }

    #[test]
    fn signal_zero_probes_without_harm() {
        let me = std::process::id().to_string();
        let argv = vec![me, "0".to_owned()];
        assert!(kill_pid(&mut Args::new(&argv)).expect("args").ok);
        let argv = vec!["999999999".to_owned(), "0".to_owned()];
        assert_eq!(kill_pid(&mut Args::new(&argv)).expect("args").errno, Some(libc::ESRCH));
    }
}
