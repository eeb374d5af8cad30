//! The real `Sys` calls behind the child's first steps (no root needed): the signal
//! reset leaves no blocked, ignored or caught signal, and the parent check sees a pipe
//! whose read end is gone. Both run in a forked, single-threaded child.

mod common;

use common::{in_child, Ended};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use wf_sandbox_child::sys::{LinuxSys, Sys};

/// The `Sig*` masks of /proc/self/status, as numbers.
fn status_masks() -> Option<(u64, u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let mask = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim_start_matches(':').trim(), 16).ok())
    };
    Some((mask("SigBlk")?, mask("SigIgn")?, mask("SigCgt")?))
}

extern "C" fn on_signal(_: libc::c_int) {}

/// Block, ignore and catch a few signals, as the supervisor and Rust's runtime do.
fn dirty_signal_state() -> bool {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    let rt = libc::SIGRTMIN() + 6;
    // SAFETY: `set` is a live sigset; the handler is a valid extern "C" fn.
    unsafe {
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, rt] {
            libc::sigaddset(&mut set, signal);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0
            && libc::signal(libc::SIGPIPE, libc::SIG_IGN) != libc::SIG_ERR
            && libc::signal(libc::SIGUSR1, libc::SIG_IGN) != libc::SIG_ERR
            && libc::signal(rt + 1, libc::SIG_IGN) != libc::SIG_ERR
            && libc::signal(libc::SIGUSR2, on_signal as *const () as libc::sighandler_t) != libc::SIG_ERR
    }
}

#[test]
fn reset_signals_leaves_nothing_blocked_ignored_or_caught() {
    let ended = in_child(|| {
        if !dirty_signal_state() {
            return 90;
        }
        match status_masks() {
            Some((blk, ign, cgt)) if blk != 0 && ign & (1 << (libc::SIGPIPE - 1)) != 0 && cgt != 0 => {}
            _ => return 91, // the setup did not take: the check below would prove nothing
        }
        if LinuxSys.reset_signals().is_err() {
            return 92;
        }
        match status_masks() {
            Some((0, 0, 0)) => 0,
            Some((blk, _, _)) if blk != 0 => 10,
            Some((_, ign, _)) if ign != 0 => 11,
            Some(_) => 12,
            None => 93,
        }
    });
    assert_eq!(ended, Ended::Exited(0), "10/11/12: SigBlk/SigIgn/SigCgt not empty after the reset");
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: room for two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are new and owned here.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

#[test]
fn pipe_reader_gone_tells_a_live_reader_from_a_closed_one() {
    // In a forked child: no other test can fork a copy of the read end meanwhile.
    let ended = in_child(|| {
        let (read, write) = pipe();
        if LinuxSys.pipe_reader_gone(write.as_raw_fd()) != Ok(false) {
            return 10;
        }
        drop(read);
        if LinuxSys.pipe_reader_gone(write.as_raw_fd()) != Ok(true) {
            return 11;
        }
        let stale = write.as_raw_fd();
        drop(write);
        if LinuxSys.pipe_reader_gone(stale) != Err(nix::errno::Errno::EBADF) {
            return 12;
        }
        0
    });
    assert_eq!(ended, Ended::Exited(0), "exit code 10+i names the failing check");
}
