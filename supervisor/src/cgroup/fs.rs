//! The seam between the cgroup manager and the kernel: every privileged operation the
//! manager performs (cgroupfs reads/writes, mkdir/rmdir, SIGKILL) goes through
//! [`CgroupFs`], so unit tests run the whole manager against a fake cgroupfs in a tempdir.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub trait CgroupFs: Send + Sync + fmt::Debug {
    /// Reads a whole control file.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Writes `value` to an existing control file in one `write(2)` (never creates it).
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    /// Creates one cgroup directory (not its parents); `AlreadyExists` if present.
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    /// Removes one empty cgroup directory.
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    /// The sub-directories (child cgroups) of `path`, not following symlinks.
    fn list_dirs(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    /// Sends SIGKILL to one process. Callers have checked that `pid` is a positive pid
    /// read from a cgroup we created (never 0 or -1, which would mean a group or everyone).
    fn sigkill(&self, pid: u32) -> io::Result<()>;
    /// Our own process id (the only process the manager ever moves, and only into a
    /// cgroup it created).
    fn own_pid(&self) -> u32;
}

/// The real cgroupfs and the real `kill(2)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealCgroupFs;

impl CgroupFs for RealCgroupFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW).open(path)?;
        // cgroupfs applies a write as a whole; a short write would be a kernel bug.
        let written = file.write(value.as_bytes())?;
        if written != value.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, format!("short write: {written} of {}", value.len())));
        }
        Ok(())
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn exists(&self, path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok()
    }

    fn list_dirs(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            }
        }
        dirs.sort();
        Ok(dirs)
    }

    fn sigkill(&self, pid: u32) -> io::Result<()> {
        let raw =
            i32::try_from(pid).ok().filter(|p| *p > 0).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), nix::sys::signal::Signal::SIGKILL)
            .map_err(|errno| io::Error::from_raw_os_error(errno as i32))
    }

    fn own_pid(&self) -> u32 {
        std::process::id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_never_creates_a_file_and_reports_enoent() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("memory.max");
        let err = RealCgroupFs.write(&missing, "1").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        assert!(!missing.exists());
    }

    #[test]
    fn write_refuses_a_symlink_as_last_component() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "old").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = RealCgroupFs.write(&link, "new").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
    }

    #[test]
    fn list_dirs_lists_only_directories_sorted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), "").unwrap();
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("c")).unwrap();
        let listed = RealCgroupFs.list_dirs(dir.path()).unwrap();
        assert_eq!(listed, vec![dir.path().join("a"), dir.path().join("b")]);
    }

    #[test]
    fn mkdir_and_rmdir_are_single_level() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("x/y");
        assert!(RealCgroupFs.mkdir(&nested).is_err(), "parents are never created implicitly");
        RealCgroupFs.mkdir(&dir.path().join("x")).unwrap();
        assert_eq!(RealCgroupFs.mkdir(&dir.path().join("x")).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        RealCgroupFs.mkdir(&nested).unwrap();
        assert!(RealCgroupFs.rmdir(&dir.path().join("x")).is_err(), "not empty");
        RealCgroupFs.rmdir(&nested).unwrap();
        RealCgroupFs.rmdir(&dir.path().join("x")).unwrap();
        assert!(!RealCgroupFs.exists(&dir.path().join("x")));
    }

    #[test]
    fn sigkill_rejects_pids_that_mean_a_group_or_everyone() {
        for pid in [0, u32::MAX, 1 << 31] {
            assert_eq!(RealCgroupFs.sigkill(pid).unwrap_err().raw_os_error(), Some(libc::EINVAL), "pid {pid}");
        }
    }

    #[test]
    fn sigkill_kills_a_child_we_started() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        RealCgroupFs.sigkill(child.id()).unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
