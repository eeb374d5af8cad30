//! Namespace probes: creating, entering and changing namespaces from inside the sandbox.

use super::args::{Args, UsageError};
use super::fs::cstring;
use super::outcome::{last_errno, Outcome};

pub fn unshare_user(_args: &mut Args) -> Result<Outcome, UsageError> {
    Ok(unshare(libc::CLONE_NEWUSER))
}

pub fn unshare_net(_args: &mut Args) -> Result<Outcome, UsageError> {
    Ok(unshare(libc::CLONE_NEWNET))
}

fn unshare(flags: libc::c_int) -> Outcome {
    // SAFETY: unshare takes no pointers; it only changes this process.
    let rc = unsafe { libc::unshare(flags) };
    Outcome::from_rc(i64::from(rc))
}

/// The raw clone syscall with CLONE_NEWUSER (fork semantics: no new stack). The child
/// exits at once.
pub fn clone_newuser(_args: &mut Args) -> Result<Outcome, UsageError> {
    let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: like fork: the probe is single-threaded and the child only calls _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    Ok(reap_forked(pid).with("flags", "CLONE_NEWUSER"))
}

/// clone_args, version 0 layout (64 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// clone3 with no flags (a plain fork). The sandbox must answer ENOSYS, so that libcs fall
/// back to clone, whose flags seccomp can inspect.
pub fn clone3(_args: &mut Args) -> Result<Outcome, UsageError> {
    let args = CloneArgs { exit_signal: libc::SIGCHLD as u64, ..CloneArgs::default() };
    // SAFETY: args is a valid clone_args of the size passed; fork semantics as above.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    Ok(reap_forked(pid))
}

/// Handles a fork-like return value: the child exits, the parent reaps it.
fn reap_forked(pid: libc::c_long) -> Outcome {
    if pid == 0 {
        // SAFETY: in the child; leave without running any parent state's destructors.
        unsafe { libc::_exit(0) };
    }
    if pid < 0 {
        return Outcome::failure(last_errno());
    }
    let mut status = 0;
    // SAFETY: status points to a live c_int; pid is our child.
    unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
    Outcome::success().with("child", pid)
}

/// setns into the namespace at NS_PATH (default /proc/self/ns/net).
pub fn setns(args: &mut Args) -> Result<Outcome, UsageError> {
    let path = args.optional().unwrap_or("/proc/self/ns/net");
    let Some(c_path) = cstring(path) else {
        return Ok(Outcome::failure(libc::EINVAL));
    };
    // SAFETY: valid path; the fd is closed below.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Ok(Outcome::failure(last_errno()).with("step", "open").with("path", path));
    }
    // SAFETY: fd is an open namespace file.
    let rc = unsafe { libc::setns(fd, 0) };
    let outcome = Outcome::from_rc(i64::from(rc)).with("step", "setns").with("path", path);
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    Ok(outcome)
}

/// sethostname to the current hostname: success proves the permission without changing
/// anything, even if the probe is run outside a sandbox.
pub fn sethostname(_args: &mut Args) -> Result<Outcome, UsageError> {
    let name = super::status::hostname();
    let Some(name) = name else {
        return Ok(Outcome::failure(last_errno()).with("step", "uname"));
    };
    // SAFETY: the pointer/length pair describes `name`'s bytes.
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    Ok(Outcome::from_rc(i64::from(rc)).with("hostname", name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_like_calls_reap_their_child() {
        // As root outside a sandbox, clone3 works and the child is reaped.
        let outcome = clone3(&mut Args::new(&[])).expect("args");
        assert!(outcome.ok, "{outcome:?}");
        assert!(outcome.extra["child"].as_i64().is_some_and(|pid| pid > 0));
    }

    #[test]
    fn setns_reports_the_failing_step() {
        let argv = vec!["/nonexistent".to_owned()];
        let outcome = setns(&mut Args::new(&argv)).expect("args");
        assert_eq!(outcome.extra["step"], "open");
        assert_eq!(outcome.errno, Some(libc::ENOENT));
    }
}
