//! Signals that ask the supervisor to stop (Ctrl-C, SIGTERM, a closed terminal).
//!
//! They are blocked before the child is cloned and read from a signalfd in the run
//! loop, so the supervisor always gets to kill the sandbox and remove its cgroups
//! instead of dying with the plugin still running. The child unblocks every signal
//! before it runs plugin code.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io;

/// Every catchable signal whose default action would end or suspend the supervisor
/// without cleaning up (SIGTSTP would also freeze the wall clock). SIGKILL and SIGSTOP
/// cannot be caught; after SIGKILL the next run sweeps the cgroups (see sandbox_cgroup).
pub const STOP_SIGNALS: [Signal; 13] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGXCPU,
];

/// Block the stop signals in the calling thread (and threads it starts later) and
/// return a non-blocking signalfd that receives them.
pub fn block_and_listen() -> io::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for signal in STOP_SIGNALS {
        mask.add(signal);
    }
    mask.thread_block().map_err(io::Error::from)?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(io::Error::from)
}

/// The next pending stop signal's number, if any.
pub fn take_pending(fd: &SignalFd) -> Option<i32> {
    match fd.read_signal() {
        Ok(Some(info)) => i32::try_from(info.ssi_signo).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_stop_signal_is_read_from_the_fd_instead_of_killing_us() {
        // Runs in its own thread so the mask change stays out of other tests.
        std::thread::spawn(|| {
            let fd = block_and_listen().unwrap();
            assert_eq!(take_pending(&fd), None);
            // SAFETY: raising a signal we have blocked only makes it pending for this thread.
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGHUP) };
            assert_eq!(take_pending(&fd), Some(libc::SIGHUP));
        })
        .join()
        .unwrap();
    }
}
