//! Shared helpers for the real-kernel tests: running a closure in a forked child
//! (for process-wide state such as seccomp, Landlock and fds that must not leak into
//! the harness) and skipping loudly when a test needs root.
#![allow(dead_code)]

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

/// How a forked child ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
}

/// Fork; run `body` in the child and `_exit` with its return value (101 if it panics).
/// The child should only make syscalls: the harness is multi-threaded.
pub fn in_child(body: impl FnOnce() -> i32) -> Ended {
    // SAFETY: the child runs `body`, then `_exit`s without returning to the harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101);
            // SAFETY: leaving the forked child without running the harness's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => Ended::Exited(code),
            WaitStatus::Signaled(_, sig, _) => Ended::Signaled(sig as i32),
            other => panic!("unexpected wait status {other:?}"),
        },
    }
}

/// True when running as root; otherwise prints a loud SKIP line.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIPPED (needs root): {test}");
    false
}
