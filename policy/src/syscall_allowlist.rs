//! The seccomp allowlist every plugin gets: what a Rust std binary and CPython 3.11
//! need, and nothing that reaches outside the sandbox. Names are x86_64 syscall names
//! (legacy calls such as `open` or `stat` included); a compiler for another
//! architecture skips the names that architecture lacks.
//!
//! Deliberately NOT allowed (anything absent is denied with the policy's default action):
//!
//! | syscalls | why not |
//! |---|---|
//! | ptrace, process_vm_readv, process_vm_writev, pidfd_getfd, pidfd_open, kcmp | inspect or steal from other processes |
//! | mount, umount2, pivot_root, chroot, fsopen, fsconfig, fsmount, fspick, move_mount, open_tree, mount_setattr | reshape the file system the sandbox was built on |
//! | unshare, setns, clone3 (ENOSYS so libc falls back to clone, whose flags are filtered) | new or foreign namespaces, escape hatches past user-ns restrictions |
//! | io_uring_setup, io_uring_enter, io_uring_register | bypasses seccomp for the operations it queues |
//! | bpf, perf_event_open, userfaultfd | large kernel attack surface, side channels, race amplifiers |
//! | keyctl, add_key, request_key | the kernel keyring is not namespaced |
//! | kexec_load, kexec_file_load, init_module, finit_module, delete_module, iopl, ioperm | kernel and hardware control |
//! | swapon, swapoff, reboot, syslog, acct, quotactl, vhangup | host administration |
//! | sethostname, setdomainname, settimeofday, clock_settime, adjtimex | host identity and time |
//! | personality | can disable ASLR and change syscall semantics |
//! | name_to_handle_at, open_by_handle_at, lookup_dcookie | open files by handle, bypassing path checks |
//! | setpriority, vfork, rt_sigqueueinfo, memfd_create, chmod, creat, setsid | not needed by the baseline runtimes |
//! | socket, connect, bind, listen, accept, accept4 | no socket without a network grant: a read-only grant that holds a host Unix socket file would otherwise let the plugin `connect()` to a host service (Landlock has no right for that, and a read-only mount does not stop it). The channel is inherited on fd 3 and needs none of them |
//! | socketpair other than `AF_UNIX` stream/seqpacket | a datagram socket could `sendto()` a host socket path |
//! | prctl(PR_SET_PDEATHSIG) | the child arms SIGKILL on the supervisor's death; a plugin must not disarm it and outlive the supervisor |

use crate::spec::{ArgFilter, Origin, SyscallRule};

/// Origin of every baseline entry.
pub const BASELINE_ORIGIN: &str = "seccomp baseline";

/// Syscalls answered with ENOSYS instead of the default action.
pub const ENOSYS_SYSCALLS: [&str; 1] = ["clone3"];

const AF_UNIX: u32 = 1;
const PR_SET_PDEATHSIG: u32 = 1;
const SOCK_STREAM: u32 = 1;
const SOCK_SEQPACKET: u32 = 5;
const SOCK_NONBLOCK: u32 = 0o4000;
const SOCK_CLOEXEC: u32 = 0o2000000;
#[cfg(test)]
const TIOCSTI: u32 = 0x5412;
#[cfg(test)]
const TIOCLINUX: u32 = 0x541C;

/// Namespace flags `clone` may not carry. CLONE_NEWTIME (0x80) is left out: it shares
/// bits with the exit-signal byte of `clone`'s flags.
pub const CLONE_NAMESPACE_FLAGS: [(&str, u64); 7] = [
    ("CLONE_NEWNS", 0x0002_0000),
    ("CLONE_NEWCGROUP", 0x0200_0000),
    ("CLONE_NEWUTS", 0x0400_0000),
    ("CLONE_NEWIPC", 0x0800_0000),
    ("CLONE_NEWUSER", 0x1000_0000),
    ("CLONE_NEWPID", 0x2000_0000),
    ("CLONE_NEWNET", 0x4000_0000),
];

/// Allowed without argument filters.
#[rustfmt::skip]
const UNFILTERED: &[&str] = &[
    // file descriptors and I/O
    "read", "write", "readv", "writev", "pread64", "pwrite64", "close",
    "close_range", "lseek", "dup", "dup2", "dup3", "pipe", "pipe2", "fcntl", "flock", "fadvise64",
    "ftruncate", "truncate", "fsync", "fdatasync",
    // metadata and directories
    "fstat", "stat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "getdents64", "getcwd", "chdir", "fchdir",
    "unlink", "unlinkat", "rename", "renameat", "renameat2", "rmdir", "utimensat", "umask",
    // memory
    "mmap", "mprotect", "munmap", "mremap", "madvise", "brk", "mincore", "membarrier",
    // signals (Landlock scopes kill/tgkill/tkill to the sandbox)
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "sigaltstack", "kill", "tgkill", "tkill", "restart_syscall",
    // polling, waiting, timers
    "poll", "ppoll", "select", "pselect6", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "eventfd2", "futex", "set_robust_list", "get_robust_list", "wait4", "waitid",
    "pause", "nanosleep", "clock_nanosleep", "alarm", "getitimer", "setitimer",
    // identity and process information
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups",
    "getresuid", "getresgid", "getpgrp", "getpgid", "getsid", "getpriority", "uname", "sysinfo",
    "prlimit64", "getrlimit", "sched_yield", "sched_getaffinity", "sched_getparam",
    "sched_getscheduler",
    // process lifecycle and thread setup
    "execve", "exit", "exit_group", "set_tid_address", "rseq", "arch_prctl",
    // time and randomness
    "clock_gettime", "clock_getres", "gettimeofday", "time", "getrandom",
    // sockets already open (the channel on fd 3, socketpair ends); none can be created
    // except by socketpair, filtered below
    "getsockname", "getpeername", "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown",
    "getsockopt", "setsockopt",
];

/// `socketpair` types: stream or seqpacket, with any of `SOCK_NONBLOCK`/`SOCK_CLOEXEC`.
fn socketpair_types() -> (Vec<u32>, Vec<String>) {
    let mut values = Vec::new();
    let mut names = Vec::new();
    for (base, base_name) in [(SOCK_STREAM, "SOCK_STREAM"), (SOCK_SEQPACKET, "SOCK_SEQPACKET")] {
        for (flags, flag_names) in [
            (0, ""),
            (SOCK_NONBLOCK, "|SOCK_NONBLOCK"),
            (SOCK_CLOEXEC, "|SOCK_CLOEXEC"),
            (SOCK_NONBLOCK | SOCK_CLOEXEC, "|SOCK_NONBLOCK|SOCK_CLOEXEC"),
        ] {
            values.push(base | flags);
            names.push(format!("{base_name}{flag_names}"));
        }
    }
    (values, names)
}

/// The baseline allowlist, in a stable order: unfiltered calls, then filtered ones.
pub fn baseline() -> Vec<SyscallRule> {
    let mut rules: Vec<SyscallRule> = UNFILTERED.iter().map(|name| rule(name, Vec::new())).collect();
    let (types, type_names) = socketpair_types();
    rules.push(rule(
        "socketpair",
        vec![
            ArgFilter::OneOf { index: 0, values: vec![AF_UNIX], names: vec!["AF_UNIX".to_owned()] },
            ArgFilter::OneOf { index: 1, values: types, names: type_names },
        ],
    ));
    rules.push(rule(
        "prctl",
        vec![ArgFilter::NoneOf {
            index: 0,
            values: vec![PR_SET_PDEATHSIG],
            names: vec!["PR_SET_PDEATHSIG".to_owned()],
        }],
    ));
    rules.push(rule(
        "ioctl",
        vec![ArgFilter::OneOf {
            index: 1,
            values: IOCTL_ALLOWED.iter().map(|(_, value)| *value).collect(),
            names: IOCTL_ALLOWED.iter().map(|(name, _)| (*name).to_owned()).collect(),
        }],
    ));
    // A file created or chmod'ed with set-uid/set-gid bits in a writable host grant would
    // outlive the sandbox as a set-id program of the sandbox's uid.
    for (name, mode_index) in [("open", 2), ("openat", 3), ("mkdir", 1), ("mkdirat", 2), ("fchmod", 1)] {
        rules.push(rule(name, vec![no_set_id_bits(mode_index)]));
    }
    rules.push(rule(
        "clone",
        vec![ArgFilter::MaskClear {
            index: 0,
            mask: CLONE_NAMESPACE_FLAGS.iter().fold(0, |mask, (_, bit)| mask | bit),
            names: CLONE_NAMESPACE_FLAGS.iter().map(|(name, _)| (*name).to_owned()).collect(),
        }],
    ));
    rules
}

/// The only ioctl commands a plugin may issue: terminal queries that language runtimes
/// make on their stdio, and fd flags. Everything else — TIOCSTI/TIOCLINUX injection, and
/// the socket ioctls (0x89xx, ethtool, wireless) that the channel's socket would answer
/// from the host's network namespace — is refused.
const IOCTL_ALLOWED: [(&str, u32); 7] = [
    ("TCGETS", 0x5401),
    ("TIOCGPGRP", 0x540f),
    ("TIOCGWINSZ", 0x5413),
    ("FIONREAD", 0x541b),
    ("FIONBIO", 0x5421),
    ("FIONCLEX", 0x5450),
    ("FIOCLEX", 0x5451),
];

const S_ISUID: u64 = 0o4000;
const S_ISGID: u64 = 0o2000;

fn no_set_id_bits(index: u8) -> ArgFilter {
    ArgFilter::MaskClear { index, mask: S_ISUID | S_ISGID, names: vec!["S_ISUID".to_owned(), "S_ISGID".to_owned()] }
}

fn rule(name: &str, filters: Vec<ArgFilter>) -> SyscallRule {
    SyscallRule { name: name.to_owned(), filters, origin: Origin::builtin(BASELINE_ORIGIN) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn names() -> Vec<String> {
        baseline().into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn no_name_is_listed_twice() {
        let names = names();
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn dangerous_syscalls_are_absent() {
        let names = names();
        for denied in [
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "pidfd_getfd",
            "pidfd_open",
            "mount",
            "umount2",
            "pivot_root",
            "chroot",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "unshare",
            "setns",
            "clone3",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "keyctl",
            "add_key",
            "request_key",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "iopl",
            "ioperm",
            "swapon",
            "swapoff",
            "reboot",
            "syslog",
            "acct",
            "quotactl",
            "sethostname",
            "setdomainname",
            "settimeofday",
            "clock_settime",
            "adjtimex",
            "personality",
            "name_to_handle_at",
            "open_by_handle_at",
            "lookup_dcookie",
            "kcmp",
            "vhangup",
            "setpriority",
            "vfork",
            "rt_sigqueueinfo",
            "memfd_create",
            "chmod",
            "creat",
            "setsid",
            "socket",
            "connect",
            "bind",
            "listen",
            "accept",
            "accept4",
        ] {
            assert!(!names.iter().any(|n| n == denied), "{denied} must not be allowed");
        }
    }

    #[test]
    fn runtime_essentials_are_present() {
        let names = names();
        for needed in [
            "execve",
            "exit_group",
            "mmap",
            "futex",
            "clone",
            "rt_sigreturn",
            "openat",
            "read",
            "write",
            "getrandom",
            "sched_getaffinity",
            "rseq",
            "recvmsg",
            "sendmsg",
            "poll",
            "prctl",
            "socketpair",
            "shutdown",
            "getsockopt",
            "getsockname",
        ] {
            assert!(names.iter().any(|n| n == needed), "{needed} missing");
        }
    }

    fn only_rule(name: &str) -> SyscallRule {
        let mut rules: Vec<SyscallRule> = baseline().into_iter().filter(|r| r.name == name).collect();
        assert_eq!(rules.len(), 1, "{name}");
        rules.remove(0)
    }

    #[test]
    fn socketpair_is_unix_stream_or_seqpacket_only() {
        let rule = only_rule("socketpair");
        assert_eq!(rule.filters.len(), 2);
        assert_eq!(rule.filters[0], ArgFilter::OneOf { index: 0, values: vec![1], names: vec!["AF_UNIX".into()] });
        let ArgFilter::OneOf { index: 1, values, names } = &rule.filters[1] else { panic!("wrong filter") };
        let mut got = values.clone();
        got.sort_unstable();
        // SOCK_STREAM 1, SOCK_SEQPACKET 5, each with SOCK_NONBLOCK 0x800 and SOCK_CLOEXEC 0x80000.
        assert_eq!(got, vec![1, 5, 0x801, 0x805, 0x8_0001, 0x8_0005, 0x8_0801, 0x8_0805]);
        assert_eq!(names.len(), values.len());
        for dgram in [2, 2 | 0x80000, 3, 10] {
            assert!(!values.contains(&dgram), "type {dgram:#x} must not be allowed");
        }
    }

    #[test]
    fn prctl_cannot_change_the_parent_death_signal() {
        let rule = only_rule("prctl");
        assert_eq!(
            rule.filters,
            vec![ArgFilter::NoneOf { index: 0, values: vec![1], names: vec!["PR_SET_PDEATHSIG".into()] }]
        );
    }

    #[test]
    fn ioctl_is_an_allowlist_without_injection_or_socket_commands() {
        let ioctl = baseline().into_iter().find(|r| r.name == "ioctl").unwrap();
        let ArgFilter::OneOf { index, values, .. } = &ioctl.filters[0] else { panic!("wrong filter") };
        assert_eq!(*index, 1);
        for refused in [TIOCSTI, TIOCLINUX, 0x8912 /* SIOCGIFCONF */, 0x8946 /* SIOCETHTOOL */] {
            assert!(!values.contains(&refused), "{refused:#x} allowed");
        }
        assert!(values.contains(&0x5451), "FIOCLEX, used by Rust's std, must stay allowed");
    }

    #[test]
    fn creating_or_chmodding_set_id_files_is_filtered() {
        for (name, index) in [("open", 2), ("openat", 3), ("mkdir", 1), ("mkdirat", 2), ("fchmod", 1)] {
            let rule = baseline().into_iter().find(|r| r.name == name).unwrap();
            assert_eq!(rule.filters, vec![no_set_id_bits(index)], "{name}");
        }
        for absent in ["chmod", "fchmodat", "fchmodat2", "creat"] {
            assert!(!names().iter().any(|n| n == absent), "{absent} allowed");
        }
    }

    #[test]
    fn clone_mask_has_every_namespace_flag_but_not_newtime() {
        let clone = baseline().into_iter().find(|r| r.name == "clone").unwrap();
        let ArgFilter::MaskClear { index, mask, names } = &clone.filters[0] else { panic!("wrong filter") };
        assert_eq!(*index, 0);
        assert_eq!(*mask, 0x7E02_0000);
        assert_eq!(mask & 0x80, 0, "CLONE_NEWTIME overlaps the exit signal");
        assert_eq!(mask & 0xff, 0, "the exit-signal byte must stay free");
        assert_eq!(names.len(), 7);
    }

    #[test]
    fn every_entry_names_the_baseline() {
        assert!(baseline().iter().all(|r| r.origin == Origin::builtin(BASELINE_ORIGIN)));
        assert_eq!(ENOSYS_SYSCALLS, ["clone3"]);
    }
}
