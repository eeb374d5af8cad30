//! Whether root may trust a path: no one but root could have chosen what it names.
//!
//! The path is walked from `/` one component at a time (`O_PATH | O_NOFOLLOW`, never a
//! symlink in any component, never `..`), and every object on the way is checked on its fd:
//!
//! - the final object has the expected type, is owned by root and is not writable by group or
//!   others;
//! - every ancestor directory is owned by root and not writable by group or others, with one
//!   exception: a sticky directory (`/tmp`) may be writable by others when the entry below it
//!   is owned by root. The attack an ancestor enables is renaming or replacing the entry below
//!   it; in a sticky directory only the entry's owner (or the directory's owner, root) may do
//!   that, so a root-owned entry in `/tmp` is as safe as one in `/run`. A non-root entry in a
//!   sticky directory is refused: its owner could swap it.
//!
//! [`peer_could_read`] is the other question: whether a non-root peer could have opened a file
//! itself, so the daemon does not read for it what it could not.

use crate::host_path::{open_beneath, open_path_nofollow};
use nix::sys::stat::{fstat, FileStat};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// What the final component must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    File,
    Directory,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: must be an absolute path without `..`")]
    NotAbsolute { path: PathBuf },
    #[error("{path}: {step}: {source}")]
    Io { path: PathBuf, step: &'static str, source: io::Error },
    #[error("{path}: is a symlink (no component of a trusted path may be one)")]
    Symlink { path: PathBuf },
    #[error("{path}: is {found}, expected {expected}")]
    WrongType { path: PathBuf, found: &'static str, expected: &'static str },
    #[error("{path}: owned by uid {uid}, not root (another user could replace what it holds)")]
    NotRootOwned { path: PathBuf, uid: u32 },
    #[error("{path}: mode {mode:o} lets group or others write to it")]
    Writable { path: PathBuf, mode: u32 },
    #[error("{path}: others may write to it (sticky) and its entry {entry} is owned by uid {uid}, who could swap it")]
    SwappableEntry { path: PathBuf, entry: PathBuf, uid: u32 },
}

/// Check `path` under the rules above; the `O_PATH` fd of the final object and its stat.
pub fn open_trusted(path: &Path, expect: Expect) -> Result<(OwnedFd, FileStat), TrustError> {
    let names = components(path)?;
    let mut at = PathBuf::from("/");
    let mut fd = open_path_nofollow(&at).map_err(|e| io_error(&at, "open(O_PATH)", e))?;
    let mut st = stat(&fd, &at)?;
    for name in names {
        if type_of(&st) == "a symlink" {
            return Err(TrustError::Symlink { path: at });
        }
        let child_path = at.join(name);
        let child = open_beneath(&fd, Path::new(name), libc::O_PATH | libc::O_NOFOLLOW, true)
            .map_err(|e| io_error(&child_path, "openat(O_PATH|O_NOFOLLOW)", e))?;
        let child_st = stat(&child, &child_path)?;
        check_ancestor(&at, &st, &child_path, &child_st)?;
        (at, fd, st) = (child_path, child, child_st);
    }
    check_final(&at, &st, expect)?;
    Ok((fd, st))
}

/// [`open_trusted`] for a directory.
pub fn check_trusted_dir(path: &Path) -> Result<(), TrustError> {
    open_trusted(path, Expect::Directory).map(drop)
}

/// [`open_trusted`] for a regular file, then opened for reading. The open is relative to the
/// checked fd (`/proc/self/fd`), so it is the very inode that passed; `O_NONBLOCK` is harmless
/// on a regular file and the type was checked before.
pub fn open_trusted_file(path: &Path) -> Result<File, TrustError> {
    let (fd, _) = open_trusted(path, Expect::File)?;
    reopen_for_reading(&fd, path)
}

/// Re-open an `O_PATH` fd for reading, as the same inode.
pub fn reopen_for_reading(fd: &OwnedFd, path: &Path) -> Result<File, TrustError> {
    let proc_path = format!("/proc/self/fd/{}\0", fd.as_raw_fd());
    // SAFETY: a NUL-terminated string; the returned fd is owned below.
    let raw = unsafe {
        libc::open(proc_path.as_ptr().cast(), libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
    };
    if raw < 0 {
        return Err(TrustError::Io {
            path: path.to_owned(),
            step: "reopen for reading",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: `raw` was just returned by open and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(raw) })
}

/// Whether a peer with `uid` could itself open `path` for reading, judged by owner and "other"
/// bits only (group membership is not known from the socket): every ancestor owned by the peer
/// or searchable by others, the file owned by the peer or readable by others. Any failure on the
/// way, a symlink included, answers `false`, so the answer says nothing about existence.
pub fn peer_could_read(path: &Path, uid: u32) -> bool {
    let Ok(names) = components(path) else { return false };
    let root = Path::new("/");
    let Ok(mut fd) = open_path_nofollow(root) else { return false };
    for name in names {
        let Ok(st) = fstat(&fd) else { return false };
        if !is_dir(&st) || (st.st_uid != uid && st.st_mode & 0o001 == 0) {
            return false;
        }
        match open_beneath(&fd, Path::new(name), libc::O_PATH | libc::O_NOFOLLOW, true) {
            Ok(child) => fd = child,
            Err(_) => return false,
        }
    }
    let Ok(st) = fstat(&fd) else { return false };
    type_of(&st) == "a regular file" && (st.st_uid == uid || st.st_mode & 0o004 != 0)
}

fn components(path: &Path) -> Result<Vec<&OsStr>, TrustError> {
    let refuse = || TrustError::NotAbsolute { path: path.to_owned() };
    if !path.is_absolute() || path.as_os_str().as_bytes().contains(&0) {
        return Err(refuse());
    }
    path.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(refuse()),
        })
        .collect()
}

fn check_ancestor(path: &Path, dir: &FileStat, entry: &Path, child: &FileStat) -> Result<(), TrustError> {
    if type_of(dir) == "a symlink" {
        return Err(TrustError::Symlink { path: path.to_owned() });
    }
    if !is_dir(dir) {
        return Err(TrustError::WrongType { path: path.to_owned(), found: type_of(dir), expected: "a directory" });
    }
    if dir.st_uid != 0 {
        return Err(TrustError::NotRootOwned { path: path.to_owned(), uid: dir.st_uid });
    }
    if dir.st_mode & 0o022 == 0 {
        return Ok(());
    }
    if dir.st_mode & libc::S_ISVTX == 0 {
        return Err(TrustError::Writable { path: path.to_owned(), mode: dir.st_mode & 0o7777 });
    }
    if child.st_uid != 0 {
        return Err(TrustError::SwappableEntry { path: path.to_owned(), entry: entry.to_owned(), uid: child.st_uid });
    }
    Ok(())
}

fn check_final(path: &Path, st: &FileStat, expect: Expect) -> Result<(), TrustError> {
    let (ok, expected) = match expect {
        Expect::File => (type_of(st) == "a regular file", "a regular file"),
        Expect::Directory => (is_dir(st), "a directory"),
    };
    if type_of(st) == "a symlink" {
        return Err(TrustError::Symlink { path: path.to_owned() });
    }
    if !ok {
        return Err(TrustError::WrongType { path: path.to_owned(), found: type_of(st), expected });
    }
    if st.st_uid != 0 {
        return Err(TrustError::NotRootOwned { path: path.to_owned(), uid: st.st_uid });
    }
    if st.st_mode & 0o022 != 0 {
        return Err(TrustError::Writable { path: path.to_owned(), mode: st.st_mode & 0o7777 });
    }
    Ok(())
}

fn stat(fd: &OwnedFd, path: &Path) -> Result<FileStat, TrustError> {
    fstat(fd).map_err(|e| TrustError::Io { path: path.to_owned(), step: "fstat", source: e.into() })
}

fn io_error(path: &Path, step: &'static str, error: crate::host_path::HostPathError) -> TrustError {
    match error {
        crate::host_path::HostPathError::Io { source, .. } if source.raw_os_error() == Some(libc::ELOOP) => {
            TrustError::Symlink { path: path.to_owned() }
        }
        crate::host_path::HostPathError::Io { source, .. } => TrustError::Io { path: path.to_owned(), step, source },
        other => TrustError::Io { path: path.to_owned(), step, source: io::Error::other(other.to_string()) },
    }
}

fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn type_of(st: &FileStat) -> &'static str {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symlink",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR | libc::S_IFBLK => "a device",
        _ => "an unknown file type",
    }
}

#[cfg(test)]
#[path = "trusted_path_tests.rs"]
mod tests;
