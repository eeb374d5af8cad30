//! What the host kernel offers the sandbox: Landlock ABI, seccomp (and user
//! notification), user namespaces, cgroup layout, x32 syscalls, pidfds.
//!
//! Facts only: deciding whether a missing layer refuses a plugin or degrades is the
//! policy's business. Each probe is a raw syscall or a procfs read; the interpretation
//! of every result is a pure function, unit-tested with injected values.

use crate::cgroup::{CgroupLayout, LayoutError};
use serde::Serialize;
use std::io;
use std::path::{Path, PathBuf};

const SECCOMP_ACTIONS_AVAIL: &str = "/proc/sys/kernel/seccomp/actions_avail";
const MAX_USER_NAMESPACES: &str = "/proc/sys/user/max_user_namespaces";
/// Debian/Ubuntu switch for unprivileged user namespaces (absent upstream).
const UNPRIVILEGED_USERNS_CLONE: &str = "/proc/sys/kernel/unprivileged_userns_clone";
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
/// `__X32_SYSCALL_BIT`: an x86-64 syscall number with this bit set is an x32 call.
const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// Highest Landlock ABI the kernel supports; `None` if Landlock is absent or disabled.
    pub landlock_abi: Option<i32>,
    /// seccomp filter mode is available.
    pub seccomp: bool,
    /// `SECCOMP_RET_USER_NOTIF` is available.
    pub seccomp_user_notif: bool,
    /// `max_user_namespaces > 0` and, where the switch exists, `unprivileged_userns_clone = 1`.
    pub user_namespaces: bool,
    pub cgroup: CgroupSummary,
    /// x32 syscalls are accepted by the kernel (`CONFIG_X86_X32_ABI` and not disabled).
    pub x32_enabled: bool,
    /// `pidfd_open(2)` works.
    pub pidfd: bool,
}

/// The cgroup layout in a few words, for `wfsandbox` diagnostics and the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupSummary {
    /// `v2`, `hybrid`, or `unavailable`.
    pub kind: &'static str,
    /// Controllers bound to v1 hierarchies we can reach.
    pub v1_controllers: Vec<String>,
    /// The cgroup2 mount, if any.
    pub v2_mount: Option<PathBuf>,
    /// Controllers the cgroup2 root offers (`cgroup.controllers`).
    pub v2_controllers: Vec<String>,
    /// Why the layout could not be determined, if it could not.
    pub error: Option<String>,
}

/// Probes the running kernel.
pub fn probe() -> HostFacts {
    let actions = read_optional(Path::new(SECCOMP_ACTIONS_AVAIL));
    let (seccomp, seccomp_user_notif) = interpret_seccomp(raw_prctl_get_seccomp(), actions.as_deref());
    HostFacts {
        landlock_abi: interpret_landlock(raw_landlock_abi()),
        seccomp,
        seccomp_user_notif,
        user_namespaces: interpret_user_namespaces(
            read_optional(Path::new(MAX_USER_NAMESPACES)).as_deref(),
            read_optional(Path::new(UNPRIVILEGED_USERNS_CLONE)).as_deref(),
        ),
        cgroup: summarize_cgroups(CgroupLayout::detect(), |p| std::fs::read_to_string(p)),
        x32_enabled: interpret_x32(raw_x32_getpid()),
        pidfd: raw_pidfd_works(),
    }
}

fn read_optional(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`.
fn raw_landlock_abi() -> libc::c_long {
    // SAFETY: with a NULL attribute pointer and size 0 the kernel reads no memory.
    unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    }
}

fn raw_prctl_get_seccomp() -> libc::c_int {
    // SAFETY: PR_GET_SECCOMP takes no pointer arguments.
    unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) }
}

/// `getpid` through its x32 number: ENOSYS when the kernel rejects x32 calls.
fn raw_x32_getpid() -> libc::c_long {
    // SAFETY: getpid takes no arguments and has no side effects.
    unsafe { libc::syscall(libc::SYS_getpid | X32_SYSCALL_BIT) }
}

fn raw_pidfd_works() -> bool {
    // SAFETY: pidfd_open(own pid, 0) only returns a new fd, closed right below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    match libc::c_int::try_from(fd) {
        Ok(fd) if fd >= 0 => {
            // SAFETY: `fd` was just returned to us and is owned by nothing else.
            unsafe { libc::close(fd) };
            true
        }
        _ => false,
    }
}

pub fn interpret_landlock(ret: libc::c_long) -> Option<i32> {
    i32::try_from(ret).ok().filter(|abi| *abi > 0)
}

/// `(seccomp filter mode, user notification)` from `PR_GET_SECCOMP`'s result (negative
/// = seccomp not built in) and the contents of `actions_avail` (absent before 4.14).
pub fn interpret_seccomp(prctl_ret: libc::c_int, actions_avail: Option<&str>) -> (bool, bool) {
    let actions: Vec<&str> = actions_avail.map(|a| a.split_whitespace().collect()).unwrap_or_default();
    let filter = prctl_ret >= 0 && ["allow", "errno", "kill_process"].iter().all(|a| actions.contains(a));
    (filter, filter && actions.contains(&"user_notif"))
}

pub fn interpret_user_namespaces(max_user_namespaces: Option<&str>, unprivileged_userns_clone: Option<&str>) -> bool {
    let max_ok = max_user_namespaces.and_then(|m| m.trim().parse::<u64>().ok()).is_some_and(|m| m > 0);
    let switch_ok = unprivileged_userns_clone.is_none_or(|s| s.trim() == "1");
    max_ok && switch_ok
}

/// Any successful return of the x32 `getpid` means x32 calls run.
pub fn interpret_x32(ret: libc::c_long) -> bool {
    ret >= 0
}

/// Summarises a detected layout; `read` reads the v2 root's `cgroup.controllers`.
pub fn summarize_cgroups(
    layout: Result<CgroupLayout, LayoutError>,
    read: impl Fn(&Path) -> io::Result<String>,
) -> CgroupSummary {
    let controllers_of = |mount: &Path| -> Vec<String> {
        read(&mount.join("cgroup.controllers"))
            .map(|t| t.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    match layout {
        Ok(CgroupLayout::V2 { mount, .. }) => CgroupSummary {
            kind: "v2",
            v1_controllers: Vec::new(),
            v2_controllers: controllers_of(&mount),
            v2_mount: Some(mount),
            error: None,
        },
        Ok(CgroupLayout::Hybrid { v1, unified }) => CgroupSummary {
            kind: "hybrid",
            v1_controllers: v1.keys().cloned().collect(),
            v2_controllers: unified.as_ref().map(|u| controllers_of(&u.mount)).unwrap_or_default(),
            v2_mount: unified.map(|u| u.mount),
            error: None,
        },
        Err(e) => CgroupSummary {
            kind: "unavailable",
            v1_controllers: Vec::new(),
            v2_mount: None,
            v2_controllers: Vec::new(),
            error: Some(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::CgroupMount;
    use std::collections::BTreeMap;

    #[test]
    fn landlock_abi_is_a_positive_version_or_none() {
        assert_eq!(interpret_landlock(7), Some(7));
        assert_eq!(interpret_landlock(-1), None);
        assert_eq!(interpret_landlock(0), None);
        assert_eq!(interpret_landlock(libc::c_long::MAX), None);
    }

    #[test]
    fn seccomp_needs_the_filter_actions_and_user_notif_is_separate() {
        let full = "kill_process kill_thread trap errno user_notif trace log allow\n";
        assert_eq!(interpret_seccomp(0, Some(full)), (true, true));
        assert_eq!(interpret_seccomp(2, Some(full)), (true, true), "already filtered: can still stack");
        let no_notif = "kill_process kill_thread trap errno trace log allow\n";
        assert_eq!(interpret_seccomp(0, Some(no_notif)), (true, false));
        assert_eq!(interpret_seccomp(-1, Some(full)), (false, false), "prctl says no seccomp");
        assert_eq!(interpret_seccomp(0, None), (false, false), "no actions_avail: too old");
        assert_eq!(interpret_seccomp(0, Some("user_notif")), (false, false));
    }

    #[test]
    fn user_namespaces_need_a_positive_max_and_the_debian_switch_if_present() {
        assert!(interpret_user_namespaces(Some("63619\n"), None));
        assert!(interpret_user_namespaces(Some("63619\n"), Some("1\n")));
        assert!(!interpret_user_namespaces(Some("63619\n"), Some("0\n")));
        assert!(!interpret_user_namespaces(Some("0\n"), None));
        assert!(!interpret_user_namespaces(None, None));
        assert!(!interpret_user_namespaces(Some("lots"), None));
    }

    #[test]
    fn x32_is_enabled_only_when_the_call_succeeds() {
        assert!(!interpret_x32(-1));
        assert!(interpret_x32(1234));
    }

    #[test]
    fn cgroup_summaries_for_each_layout() {
        let reader = |p: &Path| -> io::Result<String> {
            if p == Path::new("/cg2/cgroup.controllers") {
                Ok("cpu memory pids\n".into())
            } else if p == Path::new("/unified/cgroup.controllers") {
                Ok("hugetlb\n".into())
            } else {
                Err(io::Error::from_raw_os_error(libc::ENOENT))
            }
        };
        let v2 = summarize_cgroups(Ok(CgroupLayout::V2 { mount: "/cg2".into(), own_path: "/".into() }), reader);
        assert_eq!(v2.kind, "v2");
        assert_eq!(v2.v2_controllers, vec!["cpu", "memory", "pids"]);
        let mut v1 = BTreeMap::new();
        v1.insert("memory".to_owned(), CgroupMount { mount: "/m".into(), own_path: "/x".into() });
        let unified = Some(CgroupMount { mount: "/unified".into(), own_path: "/".into() });
        let hybrid = summarize_cgroups(Ok(CgroupLayout::Hybrid { v1, unified }), reader);
        assert_eq!(hybrid.kind, "hybrid");
        assert_eq!(hybrid.v1_controllers, vec!["memory"]);
        assert_eq!(hybrid.v2_mount, Some(PathBuf::from("/unified")));
        assert_eq!(hybrid.v2_controllers, vec!["hugetlb"]);
        let none = summarize_cgroups(Err(LayoutError::NoHierarchy), reader);
        assert_eq!(none.kind, "unavailable");
        assert!(none.error.is_some_and(|e| e.contains("no usable cgroup hierarchy")));
    }

    /// Cross-checks the live probe against independent evidence on the running host.
    #[test]
    fn live_probe_agrees_with_the_host() {
        let facts = probe();
        if let Ok(lsms) = std::fs::read_to_string("/sys/kernel/security/lsm") {
            let listed = lsms.trim().split(',').any(|l| l == "landlock");
            assert_eq!(facts.landlock_abi.is_some(), listed, "lsm list {lsms:?} vs {:?}", facts.landlock_abi);
        }
        let actions = std::fs::read_to_string(SECCOMP_ACTIONS_AVAIL).unwrap_or_default();
        assert_eq!(facts.seccomp_user_notif, actions.split_whitespace().any(|a| a == "user_notif"));
        assert!(facts.pidfd, "every supported kernel (>= 5.3) has pidfd_open");
        if !facts.x32_enabled {
            let err = io::Error::last_os_error();
            let again = raw_x32_getpid();
            assert_eq!(again, -1);
            let errno = io::Error::last_os_error().raw_os_error();
            assert_eq!(errno, Some(libc::ENOSYS), "previous: {err}");
        } else {
            assert_eq!(raw_x32_getpid(), libc::c_long::from(std::process::id()));
        }
        assert_ne!(facts.cgroup.kind, "unavailable", "{:?}", facts.cgroup.error);
    }
}
