use super::*;
use crate::sys::fake::{Call, FakeSys};

const MIB: u64 = 1 << 20;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn mount(
    source: Option<&str>,
    target: &str,
    via_fd: bool,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> Call {
    Call::Mount {
        source: source.map(String::from),
        target: target.into(),
        via_fd,
        fstype: fstype.map(String::from),
        flags,
        data: data.map(String::from),
    }
}

fn mkdir(path: &str) -> Call {
    Call::MkdirAt { path: path.into(), mode: 0o755 }
}

/// The calls that change the filesystem (fd plumbing left out).
fn effects(sys: &FakeSys) -> Vec<Call> {
    sys.calls()
        .into_iter()
        .filter(|call| match call {
            Call::OpenInRoot { .. } | Call::Close(_) => false,
            Call::OpenAt { flags, .. } => flags & libc::O_CREAT != 0,
            _ => true,
        })
        .collect()
}

fn built(ops: &[RootOp]) -> (FakeSys, Result<Option<ProcMode>, MountError>) {
    let sys = FakeSys::new();
    let result = build_root(&sys, MIB, ops);
    (sys, result)
}

#[test]
fn sequence_is_private_root_tmpfs_ops_pivot_readonly() {
    let (sys, result) = built(&[RootOp::Dir { at: c("/a") }]);
    assert_eq!(result, Ok(None));
    assert_eq!(
        effects(&sys),
        vec![
            mount(None, "/", false, None, libc::MS_REC | libc::MS_PRIVATE, None),
            mount(Some("tmpfs"), "/tmp", false, Some("tmpfs"), TMPFS_FLAGS, Some("size=1048576,mode=755")),
            mkdir("/tmp/a"),
            Call::Fchdir("/tmp".into()),
            Call::PivotRoot(".".into(), ".".into()),
            Call::Umount2(".".into(), libc::MNT_DETACH),
            Call::Chdir("/".into()),
            mount(None, "/", false, None, ROOT_READONLY_FLAGS, None),
        ]
    );
    assert_eq!(
        ROOT_READONLY_FLAGS,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC
    );
}

#[test]
fn every_root_op_maps_to_its_calls_and_flags() {
    let ops = [
        RootOp::Dir { at: c("/usr/lib") },
        RootOp::Symlink { at: c("/lib64"), target: c("usr/lib64") },
        RootOp::Bind { fd: 7, at: c("/usr"), readonly: true, is_dir: true, allow_exec: true },
        RootOp::Bind { fd: 8, at: c("/data/in.txt"), readonly: false, is_dir: false, allow_exec: false },
        RootOp::Tmpfs { at: c("/tmp"), size_bytes: 2 * MIB, mode: 0o1777 },
        RootOp::Proc { at: c("/proc") },
        RootOp::Dev { at: c("/dev"), host_dev_fds: vec![(c("null"), 11), (c("urandom"), 12)] },
        RootOp::WriteFile { at: c("/opt/sdk/mod.py"), contents: b"print(1)" },
    ];
    let (sys, result) = built(&ops);
    assert_eq!(result, Ok(Some(ProcMode::SubsetPid)));
    let all = effects(&sys);
    // Between the root tmpfs mount and fchdir.
    let start = all.iter().position(|c| *c == mkdir("/tmp/usr")).unwrap();
    let end = all.iter().position(|c| matches!(c, Call::Fchdir(_))).unwrap();
    let file_flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY;
    let expected = vec![
        // Dir: mkdir -p
        mkdir("/tmp/usr"),
        mkdir("/tmp/usr/lib"),
        // Symlink
        Call::SymlinkAt { path: "/tmp/lib64".into(), target: "usr/lib64".into() },
        // Bind dir, ro, exec allowed
        mkdir("/tmp/usr"),
        Call::SetMountAttrs {
            tree: 7,
            attrs: libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_RDONLY,
        },
        Call::MoveMount { tree: 7, target: "/tmp/usr".into() },
        // Bind file, rw, noexec: an empty file is the mount point
        mkdir("/tmp/data"),
        Call::OpenAt {
            path: "/tmp/data/in.txt".into(),
            flags: libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW,
            mode: 0o444,
        },
        Call::SetMountAttrs {
            tree: 8,
            attrs: libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC,
        },
        Call::MoveMount { tree: 8, target: "/tmp/data/in.txt".into() },
        // Tmpfs
        mkdir("/tmp/tmp"),
        mount(Some("tmpfs"), "/tmp/tmp", true, Some("tmpfs"), TMPFS_FLAGS, Some("size=2097152,mode=1777")),
        // Proc
        mkdir("/tmp/proc"),
        mount(Some("proc"), "/tmp/proc", true, Some("proc"), PROC_FLAGS, Some("subset=pid,hidepid=invisible")),
        // Dev
        mkdir("/tmp/dev"),
        mount(Some("tmpfs"), "/tmp/dev", true, Some("tmpfs"), TMPFS_FLAGS, Some("size=65536,mode=755")),
        Call::OpenAt { path: "/tmp/dev/null".into(), flags: file_flags, mode: 0o666 },
        Call::SetMountAttrs { tree: 11, attrs: libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOEXEC },
        Call::MoveMount { tree: 11, target: "/tmp/dev/null".into() },
        Call::OpenAt { path: "/tmp/dev/urandom".into(), flags: file_flags, mode: 0o666 },
        Call::SetMountAttrs { tree: 12, attrs: libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOEXEC },
        Call::MoveMount { tree: 12, target: "/tmp/dev/urandom".into() },
        Call::SymlinkAt { path: "/tmp/dev/fd".into(), target: "/proc/self/fd".into() },
        Call::SymlinkAt { path: "/tmp/dev/stdin".into(), target: "/proc/self/fd/0".into() },
        Call::SymlinkAt { path: "/tmp/dev/stdout".into(), target: "/proc/self/fd/1".into() },
        Call::SymlinkAt { path: "/tmp/dev/stderr".into(), target: "/proc/self/fd/2".into() },
        // WriteFile
        mkdir("/tmp/opt"),
        mkdir("/tmp/opt/sdk"),
        Call::OpenAt { path: "/tmp/opt/sdk/mod.py".into(), flags: file_flags | libc::O_NOFOLLOW, mode: 0o444 },
    ];
    assert_eq!(&all[start..start + expected.len()], &expected[..]);
    assert!(matches!(&all[start + expected.len()], Call::Write { bytes, .. } if bytes == b"print(1)"));
    assert_eq!(start + expected.len() + 1, end);
}

#[test]
fn every_path_is_resolved_inside_the_new_root() {
    let ops = [
        RootOp::Bind { fd: 7, at: c("/a/b"), readonly: true, is_dir: true, allow_exec: false },
        RootOp::Tmpfs { at: c("/t"), size_bytes: MIB, mode: 0o700 },
    ];
    let (sys, _) = built(&ops);
    for call in sys.calls() {
        if let Call::OpenInRoot { path, .. } = &call {
            assert!(path.starts_with("/tmp"), "{call:?}");
        }
    }
    let in_root: Vec<String> = sys
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::OpenInRoot { path, flags } if flags & libc::O_PATH != 0 => Some(path),
            _ => None,
        })
        .collect();
    assert!(in_root.contains(&"/tmp/a/b".to_string()));
    assert!(in_root.contains(&"/tmp/t".to_string()));
}

#[test]
fn bad_paths_are_refused_before_any_mount() {
    for at in ["relative", "/", "/a/../etc", "/a//b", "/./a", "/a/", ""] {
        let (sys, result) = built(&[RootOp::Tmpfs { at: c(at), size_bytes: MIB, mode: 0o755 }]);
        assert_eq!(result, Err(MountError::Op { op: "mount tmpfs", path: at.into(), errno: Errno::EINVAL }), "{at:?}");
        assert!(!sys.kinds().contains(&"pivot_root"));
        assert_eq!(sys.kinds().iter().filter(|k| **k == "mount").count(), 2, "{at:?}: only private + root");
    }
    let long = format!("/{}", "a/".repeat(2100));
    let (_, result) = built(&[RootOp::Dir { at: c(long.trim_end_matches('/')) }]);
    assert!(matches!(result, Err(MountError::Op { errno: Errno::EINVAL, .. })));
}

#[test]
fn zero_sizes_never_mean_unlimited() {
    let (_, result) = built(&[RootOp::Tmpfs { at: c("/tmp"), size_bytes: 0, mode: 0o1777 }]);
    assert_eq!(result, Err(MountError::Op { op: "mount tmpfs", path: "/tmp".into(), errno: Errno::EINVAL }));
    let sys = FakeSys::new();
    let err = build_root(&sys, 0, &[]).unwrap_err();
    assert_eq!(err, MountError::RootTmpfs { bytes: 0, errno: Errno::EINVAL });
    assert_eq!(err.step(), SetupStep::RootTmpfs);
    assert!(!sys.kinds().contains(&"open_at"));
}

#[test]
fn proc_falls_back_only_on_einval() {
    let sys = FakeSys::new();
    sys.fail_when(|c| {
        matches!(c, Call::Mount { data: Some(d), .. } if d.starts_with("subset")).then_some(Errno::EINVAL)
    });
    assert_eq!(build_root(&sys, MIB, &[RootOp::Proc { at: c("/proc") }]), Ok(Some(ProcMode::Plain)));
    let proc_mounts: Vec<Call> =
        sys.calls().into_iter().filter(|c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "proc")).collect();
    assert_eq!(proc_mounts.len(), 2);
    assert!(matches!(&proc_mounts[1], Call::Mount { data: None, flags, .. } if *flags == PROC_FLAGS));

    let denied = FakeSys::new();
    denied.fail_when(|c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "proc").then_some(Errno::EPERM));
    let err = build_root(&denied, MIB, &[RootOp::Proc { at: c("/proc") }]).unwrap_err();
    assert_eq!(err, MountError::Op { op: "mount proc", path: "/proc".into(), errno: Errno::EPERM });
}

#[test]
fn a_failing_op_stops_everything_after_it() {
    let sys = FakeSys::new();
    sys.fail_when(|c| matches!(c, Call::MoveMount { tree: 7, .. }).then_some(Errno::EINVAL));
    let ops = [
        RootOp::Bind { fd: 7, at: c("/usr"), readonly: true, is_dir: true, allow_exec: true },
        RootOp::Dir { at: c("/after") },
    ];
    let err = build_root(&sys, MIB, &ops).unwrap_err();
    assert_eq!(err, MountError::Op { op: "bind", path: "/usr".into(), errno: Errno::EINVAL });
    assert_eq!(err.step(), SetupStep::RootOp);
    assert!(!sys.calls().contains(&mkdir("/tmp/after")));
    assert!(!sys.kinds().contains(&"pivot_root"));
}

#[test]
fn existing_directories_are_reused() {
    let sys = FakeSys::new();
    sys.fail_when(|c| matches!(c, Call::MkdirAt { .. }).then_some(Errno::EEXIST));
    assert!(build_root(&sys, MIB, &[RootOp::Dir { at: c("/a/b") }, RootOp::Proc { at: c("/a/b") }]).is_ok());
    let other = FakeSys::new();
    other.fail_when(|c| matches!(c, Call::MkdirAt { .. }).then_some(Errno::ENOSPC));
    assert!(matches!(
        build_root(&other, MIB, &[RootOp::Dir { at: c("/a") }]),
        Err(MountError::Op { errno: Errno::ENOSPC, .. })
    ));
}

#[test]
fn dev_node_names_must_be_single_components() {
    for name in ["../null", "a/b", "..", "."] {
        let (sys, result) = built(&[RootOp::Dev { at: c("/dev"), host_dev_fds: vec![(c(name), 11)] }]);
        assert!(matches!(result, Err(MountError::Op { errno: Errno::EINVAL, .. })), "{name}");
        assert!(!sys.kinds().contains(&"move_mount"));
    }
}

#[test]
fn pivot_and_readonly_failures_name_their_steps() {
    let sys = FakeSys::new();
    sys.fail_when(|c| matches!(c, Call::PivotRoot(..)).then_some(Errno::EBUSY));
    let err = build_root(&sys, MIB, &[]).unwrap_err();
    assert_eq!(err, MountError::Pivot { what: "pivot_root(., .)", errno: Errno::EBUSY });
    assert_eq!(err.step(), SetupStep::PivotRoot);

    let ro = FakeSys::new();
    ro.fail_when(|c| matches!(c, Call::Mount { flags, .. } if flags & libc::MS_REMOUNT != 0).then_some(Errno::EPERM));
    let err = build_root(&ro, MIB, &[]).unwrap_err();
    assert_eq!(err, MountError::Readonly(Errno::EPERM));
    assert_eq!(err.step(), SetupStep::RootReadonly);

    let private = FakeSys::new();
    private.fail_when(|c| {
        matches!(c, Call::Mount { flags, .. } if flags & libc::MS_PRIVATE != 0).then_some(Errno::EINVAL)
    });
    assert_eq!(build_root(&private, MIB, &[]).unwrap_err().step(), SetupStep::MountPropagation);
}
