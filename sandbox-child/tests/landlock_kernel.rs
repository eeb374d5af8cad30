//! Landlock rules built by `landlock_rules::build_ruleset` really restrict a process
//! (in a forked child; Landlock needs no root, only `no_new_privs`, which the crate sets).

mod common;

use common::{in_child, Ended};
use landlock::{AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr};
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use wf_sandbox_child::landlock_rules::build_ruleset;
use wf_sandbox_child::plan::policy_access::Access;

fn kernel_has_landlock() -> bool {
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::Execute)
        .and_then(|r| r.create())
        .is_ok()
}

fn open_path(p: &Path) -> OwnedFd {
    std::fs::File::open(p).expect("open").into()
}

/// 0 on success, else the errno of `open(p, flags)`.
fn try_open(p: &Path, flags: i32) -> i32 {
    let c = CString::new(p.as_os_str().as_bytes()).expect("path");
    // SAFETY: NUL-terminated path; the fd is closed right away.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
    if fd < 0 {
        return nix::errno::Errno::last_raw();
    }
    // SAFETY: closing the fd just opened.
    unsafe { libc::close(fd) };
    0
}

#[test]
fn built_rules_really_deny_reading_outside_them() {
    if !kernel_has_landlock() {
        eprintln!("SKIPPED (no Landlock in this kernel): built_rules_really_deny_reading_outside_them");
        return;
    }
    let granted = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    let inside = granted.path().join("inside.txt");
    let outside = other.path().join("outside.txt");
    std::fs::write(&inside, b"ok").expect("write");
    std::fs::write(&outside, b"secret").expect("write");
    let single = other.path().join("single.txt");
    std::fs::write(&single, b"file rule").expect("write");

    let dir_fd = open_path(granted.path());
    let file_fd = open_path(&single);
    let rules = [(dir_fd.as_fd(), Access::Read, true), (file_fd.as_fd(), Access::ReadWrite, false)];
    let (ruleset, report) = build_ruleset(&rules, true, true).expect("ruleset");
    assert!(report.abi.is_some());

    let ended = in_child(move || {
        let status = match ruleset.restrict_self() {
            Ok(s) => s,
            Err(_) => return 90,
        };
        if status.ruleset != landlock::RulesetStatus::FullyEnforced {
            return 91;
        }
        let checks = [
            (try_open(&inside, libc::O_RDONLY), 0),
            (try_open(&outside, libc::O_RDONLY), libc::EACCES),
            (try_open(&inside, libc::O_WRONLY), libc::EACCES),
            (try_open(&single, libc::O_RDWR), 0),
            (try_open(Path::new("/etc/hostname"), libc::O_RDONLY), libc::EACCES),
        ];
        match checks.iter().position(|(got, want)| got != want) {
            None => 0,
            Some(i) => 10 + i as i32,
        }
    });
    assert_eq!(ended, Ended::Exited(0));
}

#[test]
fn execute_is_denied_under_read_write() {
    if !kernel_has_landlock() {
        eprintln!("SKIPPED (no Landlock in this kernel): execute_is_denied_under_read_write");
        return;
    }
    let usr = open_path(Path::new("/usr"));
    let rules = [(usr.as_fd(), Access::ReadWrite, true)];
    let (ruleset, _) = build_ruleset(&rules, false, true).expect("ruleset");
    let ended = in_child(move || {
        if ruleset.restrict_self().is_err() {
            return 90;
        }
        let path = c"/usr/bin/true";
        let argv = [path.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        // SAFETY: NULL-terminated argv/envp of static strings.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        if nix::errno::Errno::last_raw() == libc::EACCES {
            0
        } else {
            1
        }
    });
    assert_eq!(ended, Ended::Exited(0));
}

fn is_landlock_ruleset(fd: i32) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .is_ok_and(|target| target.to_string_lossy().contains("landlock-ruleset"))
}

#[test]
fn pinning_moves_the_ruleset_above_the_plugin_fds() {
    use wf_sandbox_child::sys::{LinuxSys, Sys};
    if !kernel_has_landlock() {
        eprintln!("SKIPPED (no Landlock in this kernel): pinning_moves_the_ruleset_above_the_plugin_fds");
        return;
    }
    for ruleset_on_3 in [true, false] {
        let ended = in_child(move || {
            // Free fd 3 so the ruleset lands there (or keep it free below a high ruleset fd).
            // SAFETY: closing fd 3 in this forked child only.
            unsafe { libc::close(3) };
            let filler = if ruleset_on_3 {
                None
            } else {
                // SAFETY: occupying fds 3..=9 with copies of stdin so the ruleset lands above.
                let copies: Vec<i32> = (0..7).map(|_| unsafe { libc::fcntl(0, libc::F_DUPFD, 3) }).collect();
                Some(copies)
            };
            let Ok((ruleset, _)) = build_ruleset(&[], false, true) else { return 90 };
            if let Some(copies) = filler {
                for fd in copies {
                    // SAFETY: closing our own placeholder copies, freeing fd 3 again.
                    unsafe { libc::close(fd) };
                }
            }
            let on_3 = is_landlock_ruleset(3);
            if on_3 != ruleset_on_3 {
                return 91;
            }
            let Ok((_ruleset, Some(fd))) = LinuxSys.pin_landlock_ruleset(ruleset, 0) else { return 92 };
            if fd < 4 {
                return 93;
            }
            if !is_landlock_ruleset(fd) {
                return 94;
            }
            if is_landlock_ruleset(3) {
                return 95; // the original on 3 must be gone (fd 3 is the channel's)
            }
            0
        });
        assert_eq!(ended, Ended::Exited(0), "ruleset_on_3={ruleset_on_3}");
    }
}
