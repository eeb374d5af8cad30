//! `<state-dir>/daemon.pid`: the daemon's pid for admins and service managers, `flock`ed for
//! the daemon's life so that two daemons never share one state directory. Removed at exit;
//! a file left by a killed daemon is simply taken over (its lock died with it). The directory
//! and all its ancestors must be trusted ([`crate::trusted_path`]): whoever could swap one
//! could point the daemon's pid file and lock at a file of their choosing.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("state directory {path}: {step}: {source}")]
    Io { path: PathBuf, step: &'static str, source: io::Error },
    #[error("state directory {path}: {problem}")]
    Unsafe { path: PathBuf, problem: String },
    #[error("state directory {path}: not trusted: {source}")]
    Untrusted { path: PathBuf, source: crate::trusted_path::TrustError },
    #[error("another wfsandbox daemon uses the state directory (its pid file {path} is locked)")]
    InUse { path: PathBuf },
}

pub struct PidFile {
    path: PathBuf,
    _lock: Flock<File>,
}

impl PidFile {
    pub fn create(state_dir: &Path) -> Result<Self, PidFileError> {
        let io_err = |path: &Path, step| {
            let path = path.to_owned();
            move |source| PidFileError::Io { path, step, source }
        };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(state_dir).map_err(io_err(state_dir, "mkdir"))?;
        let meta = std::fs::symlink_metadata(state_dir).map_err(io_err(state_dir, "lstat"))?;
        if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Err(PidFileError::Unsafe {
                path: state_dir.to_owned(),
                problem: "must be a directory owned by root that nobody else can write to".into(),
            });
        }
        crate::trusted_path::check_trusted_dir(state_dir)
            .map_err(|source| PidFileError::Untrusted { path: state_dir.to_owned(), source })?;
        let path = state_dir.join("daemon.pid");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err(&path, "open"))?;
        let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
            nix::errno::Errno::EWOULDBLOCK => PidFileError::InUse { path: path.clone() },
            other => PidFileError::Io { path: path.clone(), step: "flock", source: other.into() },
        })?;
        lock.set_len(0).map_err(io_err(&path, "truncate"))?;
        writeln!(lock, "{}", std::process::id()).map_err(io_err(&path, "write"))?;
        Ok(Self { path, _lock: lock })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_daemon_on_the_same_state_dir_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let first = PidFile::create(dir.path()).expect("first");
        let content = std::fs::read_to_string(dir.path().join("daemon.pid")).unwrap();
        assert_eq!(content.trim(), std::process::id().to_string());
        assert!(matches!(PidFile::create(dir.path()), Err(PidFileError::InUse { .. })));
        drop(first);
        assert!(!dir.path().join("daemon.pid").exists());
        assert!(PidFile::create(dir.path()).is_ok());
    }

    #[test]
    fn a_state_dir_below_a_user_owned_ancestor_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let user_owned = dir.path().join("anc");
        std::fs::create_dir(&user_owned).unwrap();
        std::os::unix::fs::chown(&user_owned, Some(4321), None).unwrap();
        let refused = PidFile::create(&user_owned.join("state"));
        assert!(matches!(refused, Err(PidFileError::Untrusted { .. })), "{:?}", refused.err());
    }
}
