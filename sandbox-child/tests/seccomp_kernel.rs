//! The compiled seccomp program, installed for real in a forked child, denies what
//! it must (needs no root: `no_new_privs` is enough to install a filter).

mod common;

use common::{in_child, Ended};
use libc::{c_long, syscall};
use nix::errno::Errno;
use wf_policy::spec::{ArgFilter, Origin, SeccompAction, SeccompSpec, Sourced, SyscallRule};
use wf_sandbox_child::seccomp::{compile, X32_SYSCALL_BIT};
use wf_sandbox_child::sys::{LinuxSys, Sys};

const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541c;
const NS_FLAGS: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u64;

fn rule(name: &str, filters: Vec<ArgFilter>) -> SyscallRule {
    SyscallRule { name: name.into(), filters, origin: Origin::builtin("test") }
}

fn spec(default: SeccompAction) -> SeccompSpec {
    let plain = ["read", "write", "close", "exit", "exit_group", "execve", "getpid", "brk", "mmap", "munmap", "futex"];
    let mut allowed: Vec<SyscallRule> = plain.iter().map(|n| rule(n, vec![])).collect();
    allowed.push(rule("ioctl", vec![ArgFilter::NoneOf { index: 1, values: vec![TIOCSTI, TIOCLINUX], names: vec![] }]));
    allowed.push(rule(
        "socket",
        vec![ArgFilter::OneOf {
            index: 0,
            values: vec![libc::AF_UNIX as u32, libc::AF_INET as u32, libc::AF_INET6 as u32],
            names: vec![],
        }],
    ));
    allowed.push(rule("clone", vec![ArgFilter::MaskClear { index: 0, mask: NS_FLAGS, names: vec![] }]));
    SeccompSpec {
        default_action: Sourced::new(default, Origin::builtin("test")),
        allowed,
        enosys: vec!["clone3".into()],
    }
}

/// `syscall(nr, args...)`: `Ok(ret)` or `Err(errno)`.
fn raw(nr: c_long, a: [u64; 3]) -> Result<c_long, i32> {
    // SAFETY: the calls below are either denied by the filter or harmless
    // (socket/ioctl on fds this process owns, getpid).
    let ret = unsafe { syscall(nr, a[0], a[1], a[2]) };
    if ret < 0 {
        Err(Errno::last_raw())
    } else {
        Ok(ret)
    }
}

fn install(program: &[libc::sock_filter]) -> bool {
    LinuxSys.set_no_new_privs().is_ok() && LinuxSys.install_seccomp(program).is_ok()
}

#[test]
fn denied_calls_fail_with_eperm_and_allowed_ones_work() {
    let program = compile(&spec(SeccompAction::Errno { errno: libc::EPERM })).expect("compile");
    let ended = in_child(move || {
        if !install(&program) {
            return 90;
        }
        let unix = match raw(libc::SYS_socket, [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0]) {
            Ok(fd) => fd as u64,
            Err(_) => return 91,
        };
        let checks: [(Result<c_long, i32>, Result<(), i32>); 10] = [
            (raw(libc::SYS_getpid, [0; 3]), Ok(())),
            (raw(libc::SYS_mkdir, [c"/wf-seccomp-test".as_ptr() as u64, 0o700, 0]), Err(libc::EPERM)),
            (raw(libc::SYS_ptrace, [libc::PTRACE_TRACEME as u64, 0, 0]), Err(libc::EPERM)),
            (raw(libc::SYS_getpid | X32_SYSCALL_BIT as c_long, [0; 3]), Err(libc::EPERM)),
            (raw(libc::SYS_ioctl, [unix, u64::from(TIOCSTI), 0]), Err(libc::EPERM)),
            (raw(libc::SYS_ioctl, [unix, 0xdead_0000_0000_5412, 0]), Err(libc::EPERM)),
            // TCGETS reaches the kernel, which says a socket is no tty.
            (raw(libc::SYS_ioctl, [unix, libc::TCGETS, 0]), Err(libc::ENOTTY)),
            (raw(libc::SYS_clone3, [0; 3]), Err(libc::ENOSYS)),
            (raw(libc::SYS_socket, [libc::AF_PACKET as u64, libc::SOCK_RAW as u64, 0]), Err(libc::EPERM)),
            (raw(libc::SYS_clone, [(libc::CLONE_NEWUSER | libc::SIGCHLD) as u64, 0, 0]), Err(libc::EPERM)),
        ];
        match checks.iter().position(|(got, want)| got.map(drop) != *want) {
            None => 0,
            Some(i) => 10 + i as i32,
        }
    });
    assert_eq!(ended, Ended::Exited(0), "exit code 10+i names the failing check");
}

#[test]
fn kill_process_default_kills_with_sigsys() {
    let program = compile(&spec(SeccompAction::KillProcess)).expect("compile");
    let ended = in_child(move || {
        if !install(&program) {
            return 90;
        }
        let _ = raw(libc::SYS_mkdir, [c"/wf-seccomp-test".as_ptr() as u64, 0o700, 0]);
        0
    });
    assert_eq!(ended, Ended::Signaled(libc::SIGSYS));
}

#[test]
fn an_x32_number_is_killed_under_kill_process() {
    let program = compile(&spec(SeccompAction::KillProcess)).expect("compile");
    let ended = in_child(move || {
        if !install(&program) {
            return 90;
        }
        // getpid is allowed; its x32 alias must not be.
        let _ = raw(libc::SYS_getpid | X32_SYSCALL_BIT as c_long, [0; 3]);
        0
    });
    assert_eq!(ended, Ended::Signaled(libc::SIGSYS));
}
