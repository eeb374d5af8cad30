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
    #[error("{path}: the peer could not read or search it itself")]
    PeerCannotRead { path: PathBuf },
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

/// What one walk of a path found: the `O_PATH` fds of the final object and of the directory
/// that holds it (`None` only for `/`), and the final object's stat. Whoever reads or names what
/// the walk checked goes through these fds, never through the path again: a component swapped
/// after the walk (a directory exchanged with a symlink, `renameat2(RENAME_EXCHANGE)`) changes
/// nothing for the daemon.
#[derive(Debug)]
pub struct Walked {
    pub parent: Option<OwnedFd>,
    pub target: OwnedFd,
    pub stat: FileStat,
}

/// Walk `path` from `/` one component at a time, never following a symlink in any component
/// (nor `..`), and check on each fd what the reader could do: for `Some(uid)` (a non-root peer)
/// every ancestor must be searchable by the peer and the final object readable by it (a
/// directory also searchable); for `None` (root) only the types are checked. The final object
/// must be `expect`. See `peer_may` for how the peer's rights are judged.
pub fn walk_as(path: &Path, peer: Option<u32>, expect: Expect) -> Result<Walked, TrustError> {
    let names = components(path)?;
    let mut at = PathBuf::from("/");
    let mut fd = open_path_nofollow(&at).map_err(|e| io_error(&at, "open(O_PATH)", e))?;
    let mut parent = None;
    for name in names {
        let st = stat(&fd, &at)?;
        if type_of(&st) == "a symlink" {
            return Err(TrustError::Symlink { path: at });
        }
        if !is_dir(&st) {
            return Err(TrustError::WrongType { path: at, found: type_of(&st), expected: "a directory" });
        }
        if let Some(uid) = peer {
            if !peer_may(&fd, &st, uid, 0o1) {
                return Err(TrustError::PeerCannotRead { path: at });
            }
        }
        let child_path = at.join(name);
        let child = open_beneath(&fd, Path::new(name), libc::O_PATH | libc::O_NOFOLLOW, true)
            .map_err(|e| io_error(&child_path, "openat(O_PATH|O_NOFOLLOW)", e))?;
        parent = Some(std::mem::replace(&mut fd, child));
        at = child_path;
    }
    let st = stat(&fd, &at)?;
    if type_of(&st) == "a symlink" {
        return Err(TrustError::Symlink { path: at });
    }
    let (ok, expected, needs) = match expect {
        Expect::File => (type_of(&st) == "a regular file", "a regular file", 0o4),
        Expect::Directory => (is_dir(&st), "a directory", 0o5),
    };
    if !ok {
        return Err(TrustError::WrongType { path: at, found: type_of(&st), expected });
    }
    if let Some(uid) = peer {
        if !peer_may(&fd, &st, uid, needs) {
            return Err(TrustError::PeerCannotRead { path: at });
        }
    }
    Ok(Walked { parent, target: fd, stat: st })
}

/// The path an fd names now, as the kernel resolves it (`readlink /proc/self/fd/N`): for a
/// walked directory, the directory that was checked, wherever its name is.
pub fn path_of_fd(fd: &OwnedFd) -> io::Result<PathBuf> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    if !link.is_absolute() || link.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(io::Error::new(io::ErrorKind::NotFound, "the checked directory is gone"));
    }
    Ok(link)
}

/// Whether a peer with `uid` may do `want` (bits of `0o7`: read 4, write 2, search 1) on the
/// object `fd` names. The owner class decides if the peer owns it. Otherwise the peer's groups
/// are not all known (the socket tells the primary gid only, not the supplementary ones), and
/// the kernel uses the group class for a member and the other class for anyone else: so both
/// must grant. An object with a POSIX ACL is refused: its rights cannot be judged from the mode.
/// The approximation only ever refuses: a file readable by the peer only through a group (a
/// `0640` file of its group) is refused, one it cannot read is never read for it.
fn peer_may(fd: &OwnedFd, st: &FileStat, uid: u32, want: u32) -> bool {
    let granted = if st.st_uid == uid { (st.st_mode >> 6) & 0o7 } else { (st.st_mode >> 3) & st.st_mode & 0o7 };
    granted & want == want && !has_posix_acl(fd)
}

/// Whether the object carries an access ACL (`system.posix_acl_access`); an error other than
/// "no such attribute" or "not supported" counts as having one.
fn has_posix_acl(fd: &OwnedFd) -> bool {
    // getxattr through the magic link: fgetxattr does not take an O_PATH fd.
    let proc_path = format!("/proc/self/fd/{}\0", fd.as_raw_fd());
    // SAFETY: NUL-terminated strings; a zero-sized query writes nothing.
    let n = unsafe {
        libc::getxattr(proc_path.as_ptr().cast(), c"system.posix_acl_access".as_ptr(), std::ptr::null_mut(), 0)
    };
    if n >= 0 {
        return true;
    }
    let errno = io::Error::last_os_error().raw_os_error();
    !matches!(errno, Some(libc::ENODATA) | Some(libc::EOPNOTSUPP))
}

/// Whether a peer with `uid` could itself open `path` for reading ([`walk_as`] for a regular
/// file). Any failure on the way, a symlink included, answers `false`, so the answer says
/// nothing about existence. Only a yes/no: whoever then reads must use a [`walk_as`] of its
/// own and read through its fds, or the path may name something else by then.
pub fn peer_could_read(path: &Path, uid: u32) -> bool {
    walk_as(path, Some(uid), Expect::File).is_ok()
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
