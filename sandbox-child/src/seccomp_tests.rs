use super::*;
use crate::bpf_vm::{run, SeccompData};
use wf_policy::spec::{Origin, Sourced};

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541c;
const TCGETS: u64 = 0x5401;
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

pub(crate) fn test_spec(default: SeccompAction) -> SeccompSpec {
    SeccompSpec {
        default_action: Sourced::new(default, Origin::builtin("test")),
        allowed: vec![
            rule("read", vec![]),
            rule("write", vec![]),
            rule("exit_group", vec![]),
            rule("execve", vec![]),
            rule("getpid", vec![]),
            rule("ioctl", vec![ArgFilter::NoneOf { index: 1, values: vec![TIOCSTI, TIOCLINUX], names: vec![] }]),
            rule(
                "socket",
                vec![ArgFilter::OneOf {
                    index: 0,
                    values: vec![libc::AF_UNIX as u32, libc::AF_INET as u32, libc::AF_INET6 as u32],
                    names: vec![],
                }],
            ),
            rule("clone", vec![ArgFilter::MaskClear { index: 0, mask: NS_FLAGS, names: vec![] }]),
        ],
        enosys: vec!["clone3".into()],
    }
}

fn eperm_spec() -> SeccompSpec {
    test_spec(SeccompAction::Errno { errno: libc::EPERM })
}

fn call(program: &[libc::sock_filter], nr: i64, args: [u64; 6]) -> u32 {
    run(program, &SeccompData::x86_64(nr, args)).unwrap()
}

fn nr(name: &str) -> i64 {
    syscalls::number(name).unwrap()
}

#[test]
fn allowed_and_denied_syscalls() {
    let p = compile(&eperm_spec()).unwrap();
    assert_eq!(call(&p, nr("getpid"), [0; 6]), ALLOW);
    assert_eq!(call(&p, nr("execve"), [0; 6]), ALLOW);
    assert_eq!(call(&p, nr("mkdir"), [0; 6]), EPERM);
    assert_eq!(call(&p, nr("ptrace"), [0; 6]), EPERM);
    assert_eq!(call(&p, nr("mount"), [0; 6]), EPERM);
}

#[test]
fn kill_process_default_never_kills_only_the_thread() {
    let p = compile(&test_spec(SeccompAction::KillProcess)).unwrap();
    assert_eq!(call(&p, nr("mkdir"), [0; 6]), KILL);
    assert_eq!(call(&p, nr("getpid") | i64::from(X32_SYSCALL_BIT), [0; 6]), KILL);
    assert!(p.iter().all(|i| i.code != 0x06 || i.k != libc::SECCOMP_RET_KILL_THREAD));
}

#[test]
fn x32_and_out_of_range_numbers_get_the_default() {
    let p = compile(&eperm_spec()).unwrap();
    // getpid's x32 alias must not inherit getpid's ALLOW.
    assert_eq!(call(&p, nr("getpid") | i64::from(X32_SYSCALL_BIT), [0; 6]), EPERM);
    assert_eq!(call(&p, 0x4000_0000, [0; 6]), EPERM);
    assert_eq!(call(&p, -1, [0; 6]), EPERM);
    assert_eq!(call(&p, 0x7fff_ffff, [0; 6]), EPERM);
}

#[test]
fn wrong_arch_is_killed() {
    let p = compile(&eperm_spec()).unwrap();
    for arch in [0x4000_0003u32 /* i386 */, 0xc000_00b7 /* aarch64 */, 0] {
        let data = SeccompData { arch, ..SeccompData::x86_64(nr("getpid"), [0; 6]) };
        assert_eq!(run(&p, &data).unwrap(), KILL, "arch {arch:#x}");
    }
}

#[test]
fn clone3_answers_enosys() {
    let p = compile(&eperm_spec()).unwrap();
    assert_eq!(call(&p, nr("clone3"), [0; 6]), ENOSYS);
}

#[test]
fn ioctl_tiocsti_is_denied_even_with_high_bits_set() {
    let p = compile(&eperm_spec()).unwrap();
    let ioctl = nr("ioctl");
    assert_eq!(call(&p, ioctl, [0, u64::from(TIOCSTI), 0, 0, 0, 0]), EPERM);
    assert_eq!(call(&p, ioctl, [0, 0xdead_0000_0000_5412, 0, 0, 0, 0]), EPERM);
    assert_eq!(call(&p, ioctl, [0, u64::from(TIOCLINUX) | 1 << 40, 0, 0, 0, 0]), EPERM);
    assert_eq!(call(&p, ioctl, [0, TCGETS, 0, 0, 0, 0]), ALLOW);
    // The kernel truncates the command to 32 bits, so this is TCGETS too.
    assert_eq!(call(&p, ioctl, [0, 0xffff_ffff_0000_5401, 0, 0, 0, 0]), ALLOW);
}

#[test]
fn socket_families_are_filtered() {
    let p = compile(&eperm_spec()).unwrap();
    let socket = nr("socket");
    assert_eq!(call(&p, socket, [libc::AF_UNIX as u64, 1, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&p, socket, [libc::AF_INET6 as u64, 2, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&p, socket, [libc::AF_PACKET as u64, 3, 0, 0, 0, 0]), EPERM);
    assert_eq!(call(&p, socket, [libc::AF_NETLINK as u64, 3, 0, 0, 0, 0]), EPERM);
    assert_eq!(call(&p, socket, [(1 << 32) | libc::AF_PACKET as u64, 3, 0, 0, 0, 0]), EPERM);
}

#[test]
fn clone_with_namespace_flags_is_denied() {
    let p = compile(&eperm_spec()).unwrap();
    let clone = nr("clone");
    let thread = (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_THREAD) as u64;
    assert_eq!(call(&p, clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&p, clone, [thread, 0, 0, 0, 0, 0]), ALLOW);
    for flag in [libc::CLONE_NEWUSER, libc::CLONE_NEWNS, libc::CLONE_NEWNET, libc::CLONE_NEWCGROUP] {
        let flags = flag as u64 | libc::SIGCHLD as u64;
        assert_eq!(call(&p, clone, [flags, 0, 0, 0, 0, 0]), EPERM, "flag {flag:#x}");
    }
}

#[test]
fn every_syscall_is_allowed_only_if_listed() {
    let spec = eperm_spec();
    let p = compile(&spec).unwrap();
    let unconditional: Vec<&str> =
        spec.allowed.iter().filter(|r| r.filters.is_empty()).map(|r| r.name.as_str()).collect();
    for (name, number) in syscalls::all() {
        let got = call(&p, *number, [0; 6]);
        let want = if unconditional.contains(name) || ["ioctl", "clone"].contains(name) {
            ALLOW // zero args pass the ioctl and clone filters
        } else if *name == "clone3" {
            ENOSYS
        } else {
            EPERM // socket(0) is AF_UNSPEC: not in the OneOf set
        };
        assert_eq!(got, want, "{name} ({number})");
    }
}

#[test]
fn duplicate_rules_are_ored_and_unconditional_wins() {
    let mut spec = eperm_spec();
    spec.allowed.push(rule(
        "socket",
        vec![ArgFilter::OneOf { index: 0, values: vec![libc::AF_NETLINK as u32], names: vec![] }],
    ));
    let p = compile(&spec).unwrap();
    let socket = nr("socket");
    assert_eq!(call(&p, socket, [libc::AF_NETLINK as u64, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&p, socket, [libc::AF_UNIX as u64, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&p, socket, [libc::AF_PACKET as u64, 0, 0, 0, 0, 0]), EPERM);
    spec.allowed.push(rule("socket", vec![]));
    let p = compile(&spec).unwrap();
    assert_eq!(call(&p, socket, [libc::AF_PACKET as u64, 0, 0, 0, 0, 0]), ALLOW);
}

#[test]
fn several_filters_on_one_rule_must_all_hold() {
    let mut spec = eperm_spec();
    spec.allowed.push(rule(
        "setsockopt",
        vec![
            ArgFilter::OneOf { index: 1, values: vec![1, 6], names: vec![] },
            ArgFilter::OneOf { index: 2, values: vec![2, 3], names: vec![] },
            ArgFilter::NoneOf { index: 3, values: vec![7], names: vec![] },
            ArgFilter::MaskClear { index: 4, mask: 0xf000_0000_0000_0000, names: vec![] },
        ],
    ));
    let p = compile(&spec).unwrap();
    let n = nr("setsockopt");
    assert_eq!(call(&p, n, [0, 6, 3, 0, 0, 0]), ALLOW);
    assert_eq!(call(&p, n, [0, 1, 2, 0, 0, 0]), ALLOW);
    assert_eq!(call(&p, n, [0, 2, 2, 0, 0, 0]), EPERM);
    assert_eq!(call(&p, n, [0, 1, 4, 0, 0, 0]), EPERM);
    assert_eq!(call(&p, n, [0, 1, 2, 7, 0, 0]), EPERM);
    assert_eq!(call(&p, n, [0, 1, 2, 0, 1 << 63, 0]), EPERM);
    assert_eq!(call(&p, n, [0, 1, 2, 0, 1 << 59, 0]), ALLOW);
}

#[test]
fn prefix_is_laid_out_as_documented() {
    let p = compile(&eperm_spec()).unwrap();
    assert_eq!((p[0].code, p[0].k), (0x20, OFFSET_ARCH));
    assert_eq!((p[1].code, p[1].k, p[1].jt, p[1].jf), (0x15, AUDIT_ARCH_X86_64, 1, 0));
    assert_eq!((p[2].code, p[2].k), (0x06, KILL));
    assert_eq!((p[3].code, p[3].k), (0x20, OFFSET_NR));
    assert_eq!((p[4].code, p[4].k), (0x35, X32_SYSCALL_BIT));
    assert!(p.len() <= MAX_PROGRAM_LEN);
}

#[test]
fn many_enosys_names_keep_every_jump_in_range() {
    let mut spec = eperm_spec();
    spec.enosys = syscalls::all()
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !["read", "write", "exit_group", "execve", "getpid", "ioctl", "socket", "clone"].contains(n))
        .take(MAX_ENOSYS)
        .map(String::from)
        .collect();
    let p = compile(&spec).unwrap();
    for name in &spec.enosys {
        assert_eq!(call(&p, nr(name), [0; 6]), ENOSYS, "{name}");
    }
    assert_eq!(call(&p, nr("getpid"), [0; 6]), ALLOW);
    assert_eq!(call(&p, 0x4000_0000 | nr("getpid"), [0; 6]), EPERM);
    spec.enosys.push("mkdir".into());
    assert!(matches!(compile(&spec), Err(SeccompError::TooManyEnosys { count: 201 })));
}

#[test]
fn invalid_specs_are_refused() {
    let mut unknown = eperm_spec();
    unknown.allowed.push(rule("frobnicate", vec![]));
    assert!(matches!(compile(&unknown), Err(SeccompError::UnknownSyscall { name }) if name == "frobnicate"));

    let mut unknown_enosys = eperm_spec();
    unknown_enosys.enosys.push("frobnicate".into());
    assert!(matches!(compile(&unknown_enosys), Err(SeccompError::UnknownSyscall { .. })));

    for errno in [0, -1, 4096] {
        let spec = test_spec(SeccompAction::Errno { errno });
        assert!(matches!(compile(&spec), Err(SeccompError::InvalidErrno { .. })), "errno {errno}");
    }

    let mut no_exec = eperm_spec();
    no_exec.allowed.retain(|r| r.name != "execve");
    assert!(matches!(compile(&no_exec), Err(SeccompError::ExecveNotAllowed)));

    let mut bad_index = eperm_spec();
    bad_index.allowed.push(rule("dup", vec![ArgFilter::NoneOf { index: 6, values: vec![1], names: vec![] }]));
    assert!(matches!(compile(&bad_index), Err(SeccompError::ArgIndex { index: 6, .. })));

    let mut empty = eperm_spec();
    empty.allowed.push(rule("dup", vec![ArgFilter::OneOf { index: 0, values: vec![], names: vec![] }]));
    assert!(matches!(compile(&empty), Err(SeccompError::EmptyOneOf { .. })));

    let mut both = eperm_spec();
    both.allowed.push(rule("clone3", vec![]));
    assert!(matches!(compile(&both), Err(SeccompError::AllowedAndEnosys { name }) if name == "clone3"));

    let mut explode = eperm_spec();
    let many: Vec<u32> = (0..9).collect();
    explode.allowed.push(rule(
        "dup3",
        vec![
            ArgFilter::OneOf { index: 0, values: many.clone(), names: vec![] },
            ArgFilter::OneOf { index: 1, values: many, names: vec![] },
        ],
    ));
    assert!(matches!(compile(&explode), Err(SeccompError::TooManyAlternatives { count: 81, .. })));
}

#[test]
fn program_hash_is_stable_hex_and_sensitive() {
    let a = compile(&eperm_spec()).unwrap();
    let b = compile(&test_spec(SeccompAction::KillProcess)).unwrap();
    let ha = program_hash(&a);
    assert_eq!(ha, program_hash(&compile(&eperm_spec()).unwrap()));
    assert_eq!(ha.len(), 64);
    assert!(ha.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_ne!(ha, program_hash(&b));
    // Known answer: the hash of nothing is SHA-256("").
    assert_eq!(program_hash(&[]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

fn baseline_program() -> Vec<libc::sock_filter> {
    let spec = SeccompSpec {
        default_action: Sourced::new(SeccompAction::Errno { errno: libc::EPERM }, Origin::builtin("test")),
        allowed: wf_policy::syscall_allowlist::baseline(),
        enosys: wf_policy::syscall_allowlist::ENOSYS_SYSCALLS.iter().map(|n| n.to_string()).collect(),
    };
    compile(&spec).unwrap()
}

#[test]
fn baseline_prctl_allows_everything_but_setting_the_parent_death_signal() {
    let p = baseline_program();
    let prctl = nr("prctl");
    let set = libc::PR_SET_PDEATHSIG as u64;
    assert_eq!(call(&p, prctl, [set, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(call(&p, prctl, [set, libc::SIGKILL as u64, 0, 0, 0, 0]), EPERM);
    // The kernel reads the option as an int: high bits do not make it another option.
    assert_eq!(call(&p, prctl, [(1 << 32) | set, 0, 0, 0, 0, 0]), EPERM);
    for option in [libc::PR_GET_PDEATHSIG, libc::PR_SET_NAME, libc::PR_GET_NAME, libc::PR_SET_DUMPABLE] {
        assert_eq!(call(&p, prctl, [option as u64, 0, 0, 0, 0, 0]), ALLOW, "option {option}");
    }
}

#[test]
fn baseline_creates_no_socket_but_stream_socketpairs() {
    let p = baseline_program();
    for name in ["socket", "connect", "bind", "listen", "accept", "accept4"] {
        assert_eq!(call(&p, nr(name), [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0]), EPERM, "{name}");
    }
    let socketpair = nr("socketpair");
    let unix = libc::AF_UNIX as u64;
    for kind in [libc::SOCK_STREAM, libc::SOCK_SEQPACKET] {
        for flags in [0, libc::SOCK_CLOEXEC, libc::SOCK_NONBLOCK, libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK] {
            let ty = (kind | flags) as u64;
            assert_eq!(call(&p, socketpair, [unix, ty, 0, 0, 0, 0]), ALLOW, "type {ty:#x}");
        }
    }
    for kind in [libc::SOCK_DGRAM, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::SOCK_RAW, libc::SOCK_STREAM | 0x40] {
        assert_eq!(call(&p, socketpair, [unix, kind as u64, 0, 0, 0, 0]), EPERM, "type {kind:#x}");
    }
    for family in [libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK] {
        assert_eq!(call(&p, socketpair, [family as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0]), EPERM);
    }
    for name in ["sendmsg", "recvmsg", "shutdown", "getsockopt", "getsockname"] {
        assert_eq!(call(&p, nr(name), [3, 0, 0, 0, 0, 0]), ALLOW, "{name}");
    }
}
