use super::*;
use crate::landlock_rules::build_ruleset;
use crate::plan::policy_access::Access;
use crate::plan::{ChildFds, ExecPlan, LandlockPlan, Rlimit, RootOp};
use crate::report::SetupStep;
use crate::sys::fake::{Call, FakeExit, FakeSys};
use nix::errno::Errno;
use std::ffi::CString;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn landlock_plan(require_full: bool) -> LandlockPlan {
    let (ruleset, _) = build_ruleset(&[], false, false).expect("best-effort ruleset");
    LandlockPlan {
        ruleset,
        inside_rules: vec![(c("/tmp"), Access::ReadWrite), (c("/etc/motd"), Access::Read)],
        require_full,
    }
}

fn plan_with(error_write: RawFd, landlock: Option<LandlockPlan>, seccomp: bool) -> ChildPlan {
    ChildPlan {
        fds: ChildFds { sync_read: 10, error_write, channel: 12, stdout: 13, stderr: 14 },
        cgroup_join_fds: vec![30, 31],
        root_tmpfs_bytes: 1 << 20,
        root_ops: vec![
            RootOp::Bind { fd: 20, at: c("/usr"), readonly: true, is_dir: true, allow_exec: true },
            RootOp::Tmpfs { at: c("/tmp"), size_bytes: 1 << 20, mode: 0o1777 },
        ],
        hostname: c("sandbox"),
        rlimits: vec![
            Rlimit { resource: libc::RLIMIT_NOFILE as i32, soft: 64, hard: 64 },
            Rlimit { resource: libc::RLIMIT_CORE as i32, soft: 0, hard: 0 },
        ],
        landlock,
        seccomp: seccomp.then(|| vec![libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW }]),
        exec: ExecPlan {
            path: c("/usr/bin/python3"),
            argv: vec![c("python3"), c("/plugin/main.py")],
            envp: vec![c("PATH=/usr/bin")],
            cwd: c("/plugin"),
        },
    }
}

fn full_plan() -> ChildPlan {
    plan_with(11, Some(landlock_plan(false)), true)
}

/// Milestones of DESIGN.md §3, in the order they must first appear.
const MILESTONES: [&str; 26] = [
    "reset_signals",
    "pdeathsig",
    "dumpable",
    "read_byte",
    "write",
    "setresgid",
    "setresuid",
    "pipe_reader_gone",
    "unshare",
    "mount",
    "move_mount",
    "pivot_root",
    "sethostname",
    "loopback_up",
    "setrlimit",
    "setsid",
    "pin_ruleset",
    "dup2",
    "close_range",
    "securebits",
    "drop_bounding",
    "clear_cap_sets",
    "no_new_privs",
    "landlock_restrict",
    "install_seccomp",
    "execve",
];

fn first(kinds: &[&str], kind: &str) -> Option<usize> {
    kinds.iter().position(|k| *k == kind)
}

#[test]
fn the_sequence_follows_the_design_order_and_skips_nothing() {
    let sys = FakeSys::new();
    let mut err = 11;
    assert_eq!(execute(full_plan(), &sys, &mut err), Ok(()));
    let kinds = sys.kinds();
    let positions: Vec<usize> =
        MILESTONES.iter().map(|m| first(&kinds, m).unwrap_or_else(|| panic!("step {m} skipped"))).collect();
    for (pair, names) in positions.windows(2).zip(MILESTONES.windows(2)) {
        assert!(pair[0] < pair[1], "{} must come before {}", names[0], names[1]);
    }
    // The working-directory chdir is the last chdir, right before seccomp and exec.
    let calls = sys.calls();
    let n = calls.len();
    assert_eq!(calls[n - 3], Call::Chdir("/plugin".into()));
    assert_eq!(calls[n - 2], Call::InstallSeccomp { len: 1 });
    assert_eq!(
        calls[n - 1],
        Call::Execve {
            path: "/usr/bin/python3".into(),
            argv: vec!["python3".into(), "/plugin/main.py".into()],
            envp: vec!["PATH=/usr/bin".into()],
        }
    );
    assert!(calls.contains(&Call::Setresgid(0)) && calls.contains(&Call::Setresuid(0)));
    assert!(calls.contains(&Call::Unshare(libc::CLONE_NEWCGROUP)));
    assert!(calls.contains(&Call::ParentDeathSignal(libc::SIGKILL)));
    assert!(calls.contains(&Call::Dumpable(false)));
    assert!(calls.contains(&Call::Sethostname("sandbox".into())));
    assert!(calls.contains(&Call::Setrlimit { resource: libc::RLIMIT_CORE as i32, soft: 0, hard: 0 }));
}

#[test]
fn signals_are_reset_before_anything_else() {
    let sys = FakeSys::new();
    let mut err = 11;
    execute(full_plan(), &sys, &mut err).unwrap();
    assert_eq!(sys.calls()[0], Call::ResetSignals);
    assert_eq!(sys.kinds().iter().filter(|k| **k == "reset_signals").count(), 1);
}

#[test]
fn the_death_signal_and_dumpable_are_rearmed_after_the_credential_change() {
    let sys = FakeSys::new();
    let mut err = 11;
    execute(full_plan(), &sys, &mut err).unwrap();
    let calls = sys.calls();
    let at =
        |want: &Call| -> Vec<usize> { calls.iter().enumerate().filter(|(_, c)| *c == want).map(|(i, _)| i).collect() };
    let pdeathsig = at(&Call::ParentDeathSignal(libc::SIGKILL));
    let dumpable = at(&Call::Dumpable(false));
    let setresuid = at(&Call::Setresuid(0));
    let release = at(&Call::ReadByte(10));
    let parent_check = at(&Call::PipeReaderGone(11));
    assert_eq!((pdeathsig.len(), dumpable.len(), setresuid.len(), parent_check.len()), (2, 2, 1, 1), "{calls:?}");
    // Once early, for the wait for the release; once after the credentials, which cleared it.
    assert!(pdeathsig[0] < release[0] && dumpable[0] < release[0]);
    assert!(setresuid[0] < pdeathsig[1] && setresuid[0] < dumpable[1]);
    // The parent check comes after the signal is armed, and before anything else runs.
    assert!(pdeathsig[1] < parent_check[0] && dumpable[1] < parent_check[0]);
    assert_eq!(calls[parent_check[0] + 1], Call::Unshare(libc::CLONE_NEWCGROUP));
}

#[test]
fn a_dead_parent_is_noticed_after_the_death_signal_is_rearmed() {
    let sys = FakeSys::new();
    sys.parent_gone.set(true);
    let mut err = 11;
    assert_eq!(execute(full_plan(), &sys, &mut err), Err(Abort::ParentGone));
    let kinds = sys.kinds();
    assert_eq!(kinds.last(), Some(&"pipe_reader_gone"), "nothing runs after the check: {kinds:?}");
    assert!(!kinds.contains(&"execve"));

    let quiet = FakeSys::new();
    quiet.parent_gone.set(true);
    assert_eq!(run_to_exit(full_plan(), &quiet), EXIT_PARENT_GONE);
    assert!(!quiet.calls().iter().any(|c| matches!(c, Call::Write { fd: 11, .. })), "no report for nobody");
}

#[test]
fn a_failing_rearm_is_reported_as_the_death_signal_step() {
    let sys = FakeSys::new();
    let seen = std::cell::Cell::new(0);
    sys.fail_when(move |c| {
        if c.kind() != "pdeathsig" {
            return None;
        }
        seen.set(seen.get() + 1);
        (seen.get() == 2).then_some(Errno::EINVAL)
    });
    let mut err = 11;
    let result = execute(full_plan(), &sys, &mut err);
    let Err(Abort::Failed(failure)) = result else { panic!("{result:?}") };
    assert_eq!((failure.step, failure.errno), (SetupStep::ParentDeathSignal, libc::EINVAL));
    assert_eq!(sys.kinds().last(), Some(&"pdeathsig"));
    assert!(sys.kinds().contains(&"setresuid"));
}

#[test]
fn the_error_pipe_and_the_ruleset_survive_fd_cleanup() {
    let sys = FakeSys::new();
    let mut err = 11;
    execute(full_plan(), &sys, &mut err).unwrap();
    let ranges: Vec<(u32, u32)> = sys
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::CloseRange { first, last } => Some((first, last)),
            _ => None,
        })
        .collect();
    // Kept: 11 (error pipe) and 60 (the fake's pinned ruleset fd).
    assert_eq!(ranges, vec![(4, 10), (12, 59), (61, u32::MAX)]);
}

#[test]
fn inside_landlock_rules_get_rights_for_their_file_type() {
    let sys = FakeSys::new();
    sys.files.borrow_mut().push("/etc/motd".into());
    let mut err = 11;
    execute(full_plan(), &sys, &mut err).unwrap();
    let rules: Vec<(String, landlock::BitFlags<landlock::AccessFs>)> = sys
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::LandlockAddRule { path, access } => Some((path, access)),
            _ => None,
        })
        .collect();
    let abi = landlock::ABI::V7;
    assert_eq!(
        rules,
        vec![
            ("/tmp".into(), crate::landlock_rules::access_rights(Access::ReadWrite, abi, true)),
            ("/etc/motd".into(), landlock::AccessFs::ReadFile.into()),
        ]
    );
}

#[test]
fn without_landlock_or_seccomp_those_steps_are_absent_not_faked() {
    let sys = FakeSys::new();
    let mut err = 11;
    execute(plan_with(11, None, false), &sys, &mut err).unwrap();
    let kinds = sys.kinds();
    for absent in ["pin_ruleset", "landlock_add_rule", "landlock_restrict", "install_seccomp"] {
        assert!(!kinds.contains(&absent), "{absent}");
    }
    assert!(sys.calls().contains(&Call::CloseRange { first: 12, last: u32::MAX }));
}

/// (what fails, how it is recognised, the step reported)
type FailureCase = (&'static str, fn(&Call) -> bool, SetupStep);

fn failure_cases() -> Vec<FailureCase> {
    vec![
        ("signals", |c| c.kind() == "reset_signals", SetupStep::Signals),
        ("pdeathsig", |c| c.kind() == "pdeathsig", SetupStep::ParentDeathSignal),
        ("dumpable", |c| c.kind() == "dumpable", SetupStep::Dumpable),
        ("release read", |c| c.kind() == "read_byte", SetupStep::SyncWait),
        ("join cgroup", |c| matches!(c, Call::Write { fd: 31, .. }), SetupStep::JoinCgroups),
        ("setresgid", |c| c.kind() == "setresgid", SetupStep::Credentials),
        ("setresuid", |c| c.kind() == "setresuid", SetupStep::Credentials),
        ("parent check", |c| c.kind() == "pipe_reader_gone", SetupStep::ParentDeathSignal),
        ("cgroupns", |c| c.kind() == "unshare", SetupStep::CgroupNamespace),
        (
            "private",
            |c| matches!(c, Call::Mount { flags, .. } if flags & libc::MS_PRIVATE != 0),
            SetupStep::MountPropagation,
        ),
        ("root tmpfs", |c| matches!(c, Call::Mount { target, .. } if target == "/tmp"), SetupStep::RootTmpfs),
        ("bind", |c| c.kind() == "move_mount", SetupStep::RootOp),
        ("pivot", |c| c.kind() == "pivot_root", SetupStep::PivotRoot),
        (
            "readonly",
            |c| matches!(c, Call::Mount { flags, .. } if flags & libc::MS_REMOUNT != 0),
            SetupStep::RootReadonly,
        ),
        ("hostname", |c| c.kind() == "sethostname", SetupStep::Hostname),
        ("lo", |c| c.kind() == "loopback_up", SetupStep::Loopback),
        ("rlimit", |c| c.kind() == "setrlimit", SetupStep::Rlimits),
        ("setsid", |c| c.kind() == "setsid", SetupStep::Session),
        ("dup2", |c| c.kind() == "dup2", SetupStep::Fds),
        ("pin", |c| c.kind() == "pin_ruleset", SetupStep::Fds),
        ("close_range", |c| c.kind() == "close_range", SetupStep::Fds),
        ("securebits", |c| c.kind() == "securebits", SetupStep::Capabilities),
        ("ambient", |c| c.kind() == "clear_ambient", SetupStep::Capabilities),
        ("bounding", |c| *c == Call::DropBounding(3), SetupStep::Capabilities),
        ("capset", |c| c.kind() == "clear_cap_sets", SetupStep::Capabilities),
        ("nnp", |c| c.kind() == "no_new_privs", SetupStep::NoNewPrivs),
        ("landlock rule", |c| c.kind() == "landlock_add_rule", SetupStep::Landlock),
        ("landlock restrict", |c| c.kind() == "landlock_restrict", SetupStep::Landlock),
        ("cwd", |c| *c == Call::Chdir("/plugin".into()), SetupStep::Cwd),
        ("seccomp", |c| c.kind() == "install_seccomp", SetupStep::Seccomp),
        ("execve", |c| c.kind() == "execve", SetupStep::Exec),
    ]
}

#[test]
fn a_failing_step_stops_the_sequence_and_reports_step_and_errno() {
    for (what, matches, step) in failure_cases() {
        let sys = FakeSys::new();
        sys.fail_when(move |c| matches(c).then_some(Errno::ENOTRECOVERABLE));
        let mut err = 11;
        let result = execute(full_plan(), &sys, &mut err);
        let Err(Abort::Failed(failure)) = result else { panic!("{what}: expected a failure, got {result:?}") };
        assert_eq!(failure.step, step, "{what}: {failure}");
        assert_eq!(failure.errno, libc::ENOTRECOVERABLE, "{what}");
        assert!(!failure.detail.is_empty(), "{what}");
        // Nothing but closing fds runs after the failing call.
        let calls = sys.calls();
        let failed_at = calls.iter().position(matches).unwrap();
        let after: Vec<&Call> = calls[failed_at + 1..].iter().filter(|c| c.kind() != "close").collect();
        assert!(after.is_empty(), "{what}: ran on after the failure: {after:?}");
        if step != SetupStep::Exec {
            assert!(!sys.kinds().contains(&"execve"), "{what}");
        }
    }
}

#[test]
fn a_partial_landlock_is_refused_when_full_is_required() {
    let sys = FakeSys::new();
    sys.landlock_status.set(false);
    let mut err = 11;
    let result = execute(plan_with(11, Some(landlock_plan(true)), true), &sys, &mut err);
    let Err(Abort::Failed(failure)) = result else { panic!("{result:?}") };
    assert_eq!((failure.step, failure.errno), (SetupStep::Landlock, libc::EOPNOTSUPP));
    assert!(!sys.kinds().contains(&"install_seccomp"));

    let lenient = FakeSys::new();
    lenient.landlock_status.set(false);
    assert_eq!(execute(plan_with(11, Some(landlock_plan(false)), true), &lenient, &mut err), Ok(()));
}

#[test]
fn closing_the_sync_pipe_aborts_quietly() {
    let sys = FakeSys::new();
    sys.release.set(None);
    let mut err = 11;
    assert_eq!(execute(full_plan(), &sys, &mut err), Err(Abort::NotReleased));
    assert_eq!(sys.kinds(), vec!["reset_signals", "pdeathsig", "dumpable", "read_byte"]);
}

fn run_to_exit(plan: ChildPlan, sys: &FakeSys) -> i32 {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_child(plan, sys)));
    match outcome {
        Err(payload) => payload.downcast_ref::<FakeExit>().map(|e| e.0).expect("exit through the seam"),
        Ok(()) => panic!("run_child returned"),
    }
}

#[test]
fn run_child_reports_on_the_moved_error_pipe_and_exits_1() {
    let sys = FakeSys::new();
    sys.fail_when(|c| (c.kind() == "clear_cap_sets").then_some(Errno::EPERM));
    // Error pipe on fd 3: it must be moved off the channel's slot and still be used.
    let code = run_to_exit(plan_with(3, None, true), &sys);
    assert_eq!(code, EXIT_SETUP_FAILED);
    let calls = sys.calls();
    let lifted = calls
        .iter()
        .find_map(|c| match c {
            Call::DupAtLeast { fd: 3, .. } => Some(()),
            _ => None,
        })
        .and_then(|()| {
            calls.iter().find_map(|c| match c {
                Call::SetCloexec(fd) => Some(*fd),
                _ => None,
            })
        })
        .expect("error pipe lifted and marked cloexec");
    let Some(Call::Write { fd, bytes }) = calls.last() else { panic!("no report written: {:?}", calls.last()) };
    assert_eq!(*fd, lifted);
    assert_ne!(*fd, 3);
    let failure = report::decode(bytes).unwrap();
    assert_eq!((failure.step, failure.errno), (SetupStep::Capabilities, libc::EPERM));
}

#[test]
fn run_child_exits_2_without_a_report_when_not_released() {
    let sys = FakeSys::new();
    sys.release.set(None);
    assert_eq!(run_to_exit(full_plan(), &sys), EXIT_NOT_RELEASED);
    assert!(!sys.kinds().contains(&"write"));
}
