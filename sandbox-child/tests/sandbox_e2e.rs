//! `run_child` for real (root only): a single-threaded launcher, forked from the test,
//! clones a child into new user/pid/mount/net/ipc/uts namespaces, writes its id maps
//! and releases it; the child builds its root, drops everything and execs `/bin/sh`,
//! which reports what it can observe. No cgroups are touched.

mod common;

use common::{in_child, root_or_skip, Ended};
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use wf_policy::spec::{ArgFilter, Origin, SeccompAction, SeccompSpec, Sourced, SyscallRule};
use wf_sandbox_child::landlock_rules::build_ruleset;
use wf_sandbox_child::mount_source::detached_tree;
use wf_sandbox_child::plan::policy_access::Access;
use wf_sandbox_child::plan::{ChildFds, ChildPlan, ExecPlan, LandlockPlan, Rlimit, RootOp};
use wf_sandbox_child::report::{decode, SetupFailure, SetupStep};
use wf_sandbox_child::{run_child, seccomp, sys::LinuxSys, syscalls};

const OUTSIDE_ID: u32 = 65534;
const DEV_NODES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];
const DENIED: [&str; 12] = [
    "mount",
    "umount2",
    "pivot_root",
    "unshare",
    "setns",
    "ptrace",
    "bpf",
    "kexec_load",
    "init_module",
    "finit_module",
    "io_uring_setup",
    "open_tree",
];

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: room for two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are new and owned here.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn open_path(path: &str) -> OwnedFd {
    let p = c(path);
    // SAFETY: NUL-terminated path.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open {path}: {}", std::io::Error::last_os_error());
    // SAFETY: a new fd owned here.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Everything but the namespace/mount/tracing escapes; arguments filtered like the policy does.
fn allowlist() -> SeccompSpec {
    let ns_flags = (libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP) as u64;
    let rule = |name: &str, filters| SyscallRule { name: name.into(), filters, origin: Origin::builtin("test") };
    let mut allowed: Vec<SyscallRule> = syscalls::all()
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !DENIED.contains(n) && !["clone", "clone3", "ioctl", "socket"].contains(n))
        .map(|n| rule(n, vec![]))
        .collect();
    allowed.push(rule("clone", vec![ArgFilter::MaskClear { index: 0, mask: ns_flags, names: vec![] }]));
    allowed.push(rule("ioctl", vec![ArgFilter::NoneOf { index: 1, values: vec![0x5412, 0x541c], names: vec![] }]));
    let families = vec![libc::AF_UNIX as u32, libc::AF_INET as u32, libc::AF_INET6 as u32];
    allowed.push(rule("socket", vec![ArgFilter::OneOf { index: 0, values: families, names: vec![] }]));
    SeccompSpec {
        default_action: Sourced::new(SeccompAction::Errno { errno: libc::EPERM }, Origin::builtin("test")),
        allowed,
        enosys: vec!["clone3".into()],
    }
}

/// Host objects the plan refers to; must stay open until the child has exec'd.
struct Host {
    usr: OwnedFd,
    usr_tree: OwnedFd,
    data_tree: OwnedFd,
    dev: Vec<(String, OwnedFd, OwnedFd)>,
    _data_dir: tempfile::TempDir,
}

fn host_objects() -> Host {
    let data_dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(data_dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let secret = data_dir.path().join("secret.txt");
    std::fs::write(&secret, b"secret\n").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let data = open_path(data_dir.path().to_str().expect("utf-8"));
    let usr = open_path("/usr");
    let dev = DEV_NODES
        .iter()
        .map(|n| {
            let node = open_path(&format!("/dev/{n}"));
            let tree = detached_tree(node.as_fd()).expect("detach dev node");
            (n.to_string(), node, tree)
        })
        .collect();
    Host {
        usr_tree: detached_tree(usr.as_fd()).expect("detach /usr"),
        usr,
        data_tree: detached_tree(data.as_fd()).expect("detach data dir"),
        dev,
        _data_dir: data_dir,
    }
}

fn root_ops(host: &Host) -> Vec<RootOp> {
    let mut ops: Vec<RootOp> = ["bin", "lib", "lib64", "sbin"]
        .iter()
        .map(|l| RootOp::Symlink { at: c(&format!("/{l}")), target: c(&format!("usr/{l}")) })
        .collect();
    ops.extend([
        RootOp::Bind { fd: host.usr_tree.as_raw_fd(), at: c("/usr"), readonly: true, is_dir: true, allow_exec: true },
        RootOp::Bind {
            fd: host.data_tree.as_raw_fd(),
            at: c("/data"),
            readonly: true,
            is_dir: true,
            allow_exec: false,
        },
        RootOp::Tmpfs { at: c("/tmp"), size_bytes: 4 << 20, mode: 0o1777 },
        RootOp::Proc { at: c("/proc") },
        RootOp::Dev {
            at: c("/dev"),
            host_dev_fds: host.dev.iter().map(|(n, _, tree)| (c(n), tree.as_raw_fd())).collect(),
        },
        RootOp::WriteFile { at: c("/etc/note"), contents: b"hello\n" },
    ]);
    ops
}

fn landlock(host: &Host) -> LandlockPlan {
    let mut rules = vec![(host.usr.as_fd(), Access::ReadExec, true)];
    rules.extend(host.dev.iter().map(|(_, node, _)| (node.as_fd(), Access::ReadWrite, false)));
    let (ruleset, report) = build_ruleset(&rules, true, true).expect("landlock ruleset");
    assert!(report.abi.is_some());
    LandlockPlan {
        ruleset,
        inside_rules: vec![(c("/tmp"), Access::ReadWrite), (c("/proc"), Access::Read), (c("/etc"), Access::Read)],
        require_full: true,
    }
}

struct Outcome {
    failure: Option<SetupFailure>,
    output: String,
    ended: Ended,
}

/// Launch `plan` (its fds are filled in here) and collect what comes back.
fn launch(mut plan: ChildPlan) -> Outcome {
    let (sync_read, sync_write) = pipe();
    let (error_read, error_write) = pipe();
    let (out_read, out_write) = pipe();
    let (chan_keep, chan_child) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    plan.fds = ChildFds {
        sync_read: sync_read.as_raw_fd(),
        error_write: error_write.as_raw_fd(),
        channel: chan_child.as_raw_fd(),
        stdout: out_write.as_raw_fd(),
        stderr: out_write.as_raw_fd(),
    };
    let launcher_only = [sync_write.as_raw_fd()];
    let ended = {
        let ended = in_child(move || launcher(plan, &launcher_only));
        drop((sync_read, sync_write, error_write, out_write, chan_child));
        ended
    };
    let mut report = Vec::new();
    std::fs::File::from(error_read).read_to_end(&mut report).expect("read error pipe");
    let mut output = String::new();
    std::fs::File::from(out_read).read_to_string(&mut output).expect("read output");
    drop(chan_keep);
    let failure = (!report.is_empty()).then(|| decode(&report).expect("well-formed report"));
    Outcome { failure, output, ended }
}

/// The single-threaded launcher: clone, map ids, release, wait; exits with the
/// child's status (128+N for signal N).
fn launcher(plan: ChildPlan, parent_only: &[RawFd]) -> i32 {
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    let sync_write = parent_only[0];
    if !block_and_ignore_like_the_supervisor() {
        return 122;
    }
    // SAFETY: fork-like clone (NULL stack) in a single-threaded process.
    let pid = unsafe {
        libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize)
    };
    if pid == 0 {
        // SAFETY: closing the launcher's end in the child's copy of the fd table.
        unsafe { libc::close(sync_write) };
        run_child(plan, &LinuxSys);
    }
    if pid < 0 {
        return 120;
    }
    // Only the child may hold the error and output write ends, or EOF never comes.
    for fd in [plan.fds.error_write, plan.fds.stdout, plan.fds.sync_read, plan.fds.channel] {
        // SAFETY: closing the launcher's copies.
        unsafe { libc::close(fd) };
    }
    let write = |file: &str, content: String| std::fs::write(format!("/proc/{pid}/{file}"), content).is_ok();
    let mapped = write("uid_map", format!("0 {OUTSIDE_ID} 1\n"))
        && write("setgroups", "deny\n".into())
        && write("gid_map", format!("0 {OUTSIDE_ID} 1\n"));
    if mapped {
        // SAFETY: one byte from a live buffer.
        unsafe { libc::write(sync_write, [1u8].as_ptr().cast(), 1) };
    }
    // SAFETY: closing the sync pipe (EOF aborts the child if it was not released).
    unsafe { libc::close(sync_write) };
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
    if !mapped {
        121
    } else if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// The supervisor blocks the signals it reads from a signalfd; Rust's runtime ignores
/// SIGPIPE. The child must not hand either to the plugin.
fn block_and_ignore_like_the_supervisor() -> bool {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live sigset.
    unsafe {
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::sigaddset(&mut set, signal);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0
            && libc::signal(libc::SIGPIPE, libc::SIG_IGN) != libc::SIG_ERR
            && libc::signal(libc::SIGUSR1, libc::SIG_IGN) != libc::SIG_ERR
    }
}

fn plan(ops: Vec<RootOp>, landlock: Option<LandlockPlan>, script: &str) -> ChildPlan {
    ChildPlan {
        fds: ChildFds { sync_read: -1, error_write: -1, channel: -1, stdout: -1, stderr: -1 },
        cgroup_join_fds: Vec::new(),
        root_tmpfs_bytes: 1 << 20,
        root_ops: ops,
        hostname: c("wf-test"),
        rlimits: vec![
            Rlimit { resource: libc::RLIMIT_NOFILE as i32, soft: 64, hard: 64 },
            Rlimit { resource: libc::RLIMIT_CORE as i32, soft: 0, hard: 0 },
        ],
        landlock,
        seccomp: Some(seccomp::compile(&allowlist()).expect("compile")),
        exec: ExecPlan {
            path: c("/bin/sh"),
            argv: vec![c("sh"), c("-c"), c(script)],
            envp: vec![c("PATH=/usr/bin:/bin")],
            cwd: c("/tmp"),
        },
    }
}

const PROBE: &str = r#"
echo "uid=$(id -u)"
echo "host=$(hostname)"
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|SigBlk|SigIgn):' /proc/self/status | tr -d ' \t' | sed 's/:/=/'
echo "pids=$(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ')"
echo "netdevs=$(tail -n +3 /proc/self/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
(echo x > /tmp/f) 2>/dev/null && echo tmp_write=ok || echo tmp_write=fail
(echo x > /usr/f) 2>/dev/null && echo usr_write=ok || echo usr_write=fail
cat /data/secret.txt >/dev/null 2>&1 && echo data_read=ok || echo data_read=fail
echo "note=$(cat /etc/note)"
[ -e /etc/passwd ] && echo passwd=present || echo passwd=absent
[ -e /proc/self/fd/STRAY ] && echo stray=open || echo stray=closed
echo "fds=STRAY $(ls -l /proc/$$/fd | tr "\n" " ")"
echo "chan=$(readlink /proc/self/fd/3 | cut -c1-7)"
unshare -U true 2>/dev/null && echo unshare=ok || echo unshare=fail
echo > /dev/null && echo devnull=ok
echo "session_tty=$(cut -d' ' -f6,7 /proc/$$/stat)"
echo "nofile=$(ulimit -n)"
echo "root_opts=$(grep ' / / ' /proc/self/mountinfo | cut -d' ' -f6)"
echo "cwd=$(pwd)"
echo "usr_opts=$(grep ' /usr ' /proc/self/mountinfo | cut -d' ' -f6)"
echo "data_opts=$(grep ' /data ' /proc/self/mountinfo | cut -d' ' -f6)"
echo "null_opts=$(grep ' /dev/null ' /proc/self/mountinfo | cut -d' ' -f6)"
"#;

fn value<'a>(output: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    output
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("{key} missing in:\n{output}"))
}

#[test]
fn every_layer_is_applied_in_a_real_sandbox() {
    if !root_or_skip("every_layer_is_applied_in_a_real_sandbox") {
        return;
    }
    let host = host_objects();
    // A stray fd without O_CLOEXEC (at a high number, clear of 0..=3) must not reach the plugin.
    let file = std::fs::File::open("/etc/hostname").expect("open");
    // SAFETY: F_DUPFD (no CLOEXEC) of our own fd; the copy is owned below.
    let stray_fd = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD, 200) };
    assert!(stray_fd >= 200);
    // SAFETY: the new fd is owned here.
    let stray = unsafe { OwnedFd::from_raw_fd(stray_fd) };
    let script = PROBE.replace("STRAY", &stray_fd.to_string());
    let out = launch(plan(root_ops(&host), Some(landlock(&host)), &script));
    assert_eq!(out.failure, None, "setup failed; output:\n{}", out.output);
    assert_eq!(out.ended, Ended::Exited(0), "output:\n{}", out.output);
    let o = out.output.as_str();
    assert_eq!(value(o, "uid"), "0");
    assert_eq!(value(o, "host"), "wf-test");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(value(o, cap), "0000000000000000", "{cap}");
    }
    assert_eq!(value(o, "NoNewPrivs"), "1");
    assert_eq!(value(o, "Seccomp"), "2");
    // The launcher blocked and ignored signals before clone; none of it reaches the plugin.
    assert_eq!(value(o, "SigBlk"), "0000000000000000");
    assert_eq!(value(o, "SigIgn"), "0000000000000000");
    let pids: Vec<u32> = value(o, "pids").split_whitespace().map(|p| p.parse().expect("pid")).collect();
    assert!(pids.contains(&1) && pids.iter().all(|p| *p < 50), "pids {pids:?}");
    assert_eq!(value(o, "netdevs").trim(), "lo");
    assert_eq!(value(o, "tmp_write"), "ok");
    assert_eq!(value(o, "usr_write"), "fail");
    assert_eq!(value(o, "data_read"), "fail", "Landlock must deny the bound but ungranted /data");
    assert_eq!(value(o, "note"), "hello");
    assert_eq!(value(o, "passwd"), "absent");
    assert_eq!(value(o, "stray"), "closed", "{}", value(o, "fds"));
    assert_eq!(value(o, "chan"), "socket:");
    assert_eq!(value(o, "unshare"), "fail");
    assert_eq!(value(o, "devnull"), "ok");
    assert_eq!(value(o, "session_tty"), "1 0", "session leader (pid 1), no controlling tty");
    assert_eq!(value(o, "nofile"), "64");
    let root_opts = value(o, "root_opts");
    for opt in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(root_opts.split(',').any(|x| x == opt), "/ lacks {opt}: {root_opts}");
    }
    assert_eq!(value(o, "cwd"), "/tmp");
    let has = |key: &str, opt: &str| value(o, key).split(',').any(|x| x == opt);
    for opt in ["ro", "nosuid", "nodev"] {
        assert!(has("usr_opts", opt) && has("data_opts", opt), "{opt}: {o}");
    }
    assert!(!has("usr_opts", "noexec") && has("data_opts", "noexec"), "{o}");
    assert!(has("null_opts", "nosuid") && has("null_opts", "noexec") && !has("null_opts", "nodev"), "{o}");
    drop((stray, file));
}

#[test]
fn setup_failures_come_back_as_typed_reports() {
    if !root_or_skip("setup_failures_come_back_as_typed_reports") {
        return;
    }
    let host = host_objects();
    // A plain O_PATH fd (not a detached tree) cannot be bound from the child's namespace.
    let mut ops = root_ops(&host);
    ops.push(RootOp::Bind {
        fd: host.usr.as_raw_fd(),
        at: c("/usr2"),
        readonly: true,
        is_dir: true,
        allow_exec: false,
    });
    let out = launch(plan(ops, None, "true"));
    let failure = out.failure.expect("a failure report");
    assert_eq!((failure.step, failure.errno), (SetupStep::RootOp, libc::EINVAL), "{failure}");
    assert!(failure.detail.contains("/usr2"), "{failure}");
    assert_eq!(out.ended, Ended::Exited(1));

    let host = host_objects();
    let mut missing = plan(root_ops(&host), Some(landlock(&host)), "true");
    missing.exec.path = c("/usr/bin/no-such-binary");
    let out = launch(missing);
    let failure = out.failure.expect("a failure report");
    assert_eq!((failure.step, failure.errno), (SetupStep::Exec, libc::ENOENT), "{failure}");
}
