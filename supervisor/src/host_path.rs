//! Opening host paths without being steered by symlinks.
//!
//! Everything the sandbox binds is opened here, in the supervisor, as an `O_PATH`
//! fd; the child mounts the fd, never a path, so nothing can be swapped in between.
//! Paths that come from a plugin (its entry point, its grants) are resolved with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` below a trusted directory fd.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HostPathError {
    #[error("{path}: path contains a NUL byte")]
    Nul { path: PathBuf },
    #[error("{path}: {step} failed: {source}")]
    Io { step: &'static str, path: PathBuf, source: io::Error },
    #[error("{path}: more than {limit} symlinks while resolving")]
    SymlinkLoop { path: PathBuf, limit: usize },
    #[error("{path}: not an absolute, normalised path")]
    NotAbsolute { path: PathBuf },
}

/// What a host path turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

fn cstring(path: &Path) -> Result<CString, HostPathError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| HostPathError::Nul { path: path.to_owned() })
}

fn io_err<'p>(step: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> HostPathError + 'p {
    move |source| HostPathError::Io { step, path: path.to_owned(), source }
}

/// `open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC)`: the last component is never followed.
pub fn open_path_nofollow(path: &Path) -> Result<OwnedFd, HostPathError> {
    let c = cstring(path)?;
    // SAFETY: `c` is a valid NUL-terminated string; the returned fd is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io_err("open(O_PATH)", path)(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by open and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2(dir, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS [| RESOLVE_NO_SYMLINKS])`.
pub fn open_beneath(dir: &OwnedFd, rel: &Path, flags: i32, no_symlinks: bool) -> Result<OwnedFd, HostPathError> {
    let c = cstring(rel)?;
    let mut resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    if no_symlinks {
        resolve |= libc::RESOLVE_NO_SYMLINKS;
    }
    // SAFETY: open_how is plain data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: valid dirfd, NUL-terminated path and a correctly sized open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io_err("openat2(RESOLVE_BENEATH)", rel)(io::Error::last_os_error()));
    }
    // SAFETY: the syscall returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `O_PATH` open of an absolute path that refuses a symlink in ANY component
/// (`openat2(RESOLVE_NO_SYMLINKS)` from `/`). For paths from a plugin's manifest, where
/// the policy's check of the path as written must hold for the object opened.
pub fn open_path_no_symlinks(path: &Path) -> Result<OwnedFd, HostPathError> {
    let relative = path.strip_prefix("/").map_err(|_| HostPathError::NotAbsolute { path: path.to_owned() })?;
    if relative.as_os_str().is_empty() {
        return Err(HostPathError::NotAbsolute { path: path.to_owned() });
    }
    let root = open_path_nofollow(Path::new("/"))?;
    open_beneath(&root, relative, libc::O_PATH | libc::O_NOFOLLOW, true).map_err(|e| match e {
        HostPathError::Io { source, .. } => {
            HostPathError::Io { step: "openat2(RESOLVE_NO_SYMLINKS)", path: path.to_owned(), source }
        }
        other => other,
    })
}

/// File type and mode of an fd (works on `O_PATH` fds).
pub fn stat_fd(fd: &OwnedFd, path: &Path) -> Result<(Kind, u32), HostPathError> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    let empty = c"";
    // SAFETY: fstatat with AT_EMPTY_PATH on a valid fd writes into `st`.
    let rc = unsafe { libc::fstatat(fd.as_raw_fd(), empty.as_ptr(), st.as_mut_ptr(), libc::AT_EMPTY_PATH) };
    if rc < 0 {
        return Err(io_err("fstat", path)(io::Error::last_os_error()));
    }
    // SAFETY: fstatat succeeded, so `st` is initialised.
    let st = unsafe { st.assume_init() };
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFREG => Kind::File,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    };
    Ok((kind, st.st_mode & 0o7777))
}

/// One piece of mirroring a host path inside the sandbox.
#[derive(Debug, PartialEq, Eq)]
pub enum MirrorStep {
    /// Recreate the host symlink `at -> target` inside.
    Symlink { at: PathBuf, target: PathBuf },
    /// Bind the host object at `at` to the same path inside.
    Bind { at: PathBuf },
}

const MAX_SYMLINKS: usize = 40;

/// Resolve an absolute host path the way the kernel would, but record every symlink met
/// so it can be recreated inside the sandbox instead of being followed out of it.
/// Returns the steps; the final step is always a `Bind` of a non-symlink object.
/// `read_link` is injected so tests can fake the filesystem.
pub fn mirror_steps(
    path: &Path,
    read_link: &dyn Fn(&Path) -> io::Result<Option<PathBuf>>,
) -> Result<Vec<MirrorStep>, HostPathError> {
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return Err(HostPathError::NotAbsolute { path: path.to_owned() });
    }
    let mut steps = Vec::new();
    let mut pending: Vec<PathBuf> = path.components().skip(1).map(|c| PathBuf::from(c.as_os_str())).collect();
    pending.reverse();
    let mut resolved = PathBuf::from("/");
    let mut hops = 0;
    while let Some(component) = pending.pop() {
        if component.as_os_str() == ".." {
            resolved.pop();
            continue;
        }
        if component.as_os_str() == "." {
            continue;
        }
        let candidate = resolved.join(&component);
        match read_link(&candidate).map_err(io_err("readlink", &candidate))? {
            None => resolved = candidate,
            Some(target) => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(HostPathError::SymlinkLoop { path: path.to_owned(), limit: MAX_SYMLINKS });
                }
                steps.push(MirrorStep::Symlink { at: candidate, target: target.clone() });
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                for part in target.components().rev() {
                    match part {
                        Component::RootDir => {}
                        other => pending.push(PathBuf::from(other.as_os_str())),
                    }
                }
            }
        }
    }
    steps.push(MirrorStep::Bind { at: resolved });
    Ok(steps)
}

/// `readlink` that answers `None` for anything that is not a symlink.
pub fn read_link_host(path: &Path) -> io::Result<Option<PathBuf>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::read_link(path).map(Some),
        Ok(_) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn fake(links: &[(&str, &str)]) -> impl Fn(&Path) -> io::Result<Option<PathBuf>> {
        let map: HashMap<PathBuf, PathBuf> = links.iter().map(|(a, b)| (PathBuf::from(a), PathBuf::from(b))).collect();
        move |p: &Path| Ok(map.get(p).cloned())
    }

    #[test]
    fn plain_directory_is_one_bind() {
        let steps = mirror_steps(Path::new("/usr/lib"), &fake(&[])).unwrap();
        assert_eq!(steps, vec![MirrorStep::Bind { at: "/usr/lib".into() }]);
    }

    #[test]
    fn relative_symlink_is_recreated_then_target_bound() {
        let steps = mirror_steps(Path::new("/lib64"), &fake(&[("/lib64", "usr/lib64")])).unwrap();
        assert_eq!(
            steps,
            vec![
                MirrorStep::Symlink { at: "/lib64".into(), target: "usr/lib64".into() },
                MirrorStep::Bind { at: "/usr/lib64".into() },
            ]
        );
    }

    #[test]
    fn symlink_in_last_component_and_dotdot_target() {
        let steps =
            mirror_steps(Path::new("/usr/bin/python3"), &fake(&[("/usr/bin/python3", "../libexec/py")])).unwrap();
        assert_eq!(steps.last(), Some(&MirrorStep::Bind { at: "/usr/libexec/py".into() }));
    }

    #[test]
    fn absolute_symlink_restarts_at_root() {
        let steps = mirror_steps(Path::new("/a/b"), &fake(&[("/a", "/x/y")])).unwrap();
        assert_eq!(steps.last(), Some(&MirrorStep::Bind { at: "/x/y/b".into() }));
    }

    #[test]
    fn symlink_loop_is_an_error_not_a_hang() {
        let err = mirror_steps(Path::new("/a"), &fake(&[("/a", "/b"), ("/b", "/a")])).unwrap_err();
        assert!(matches!(err, HostPathError::SymlinkLoop { .. }));
    }

    #[test]
    fn relative_or_dotted_paths_are_refused() {
        assert!(mirror_steps(Path::new("usr/lib"), &fake(&[])).is_err());
        assert!(mirror_steps(Path::new("/usr/../etc"), &fake(&[])).is_err());
    }

    #[test]
    fn a_symlink_anywhere_in_a_grant_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::fs::write(dir.path().join("real/key"), b"x").unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        assert!(open_path_no_symlinks(&dir.path().join("real/key")).is_ok());
        let err = open_path_no_symlinks(&dir.path().join("link/key")).unwrap_err();
        assert!(
            matches!(&err, HostPathError::Io { source, .. } if source.raw_os_error() == Some(libc::ELOOP)),
            "{err}"
        );
        assert!(open_path_no_symlinks(Path::new("relative")).is_err());
    }

    #[test]
    fn open_beneath_refuses_escape_through_symlink() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("evil")).unwrap();
        std::fs::write(dir.path().join("good"), b"x").unwrap();
        let dirfd = open_path_nofollow(dir.path()).unwrap();
        assert!(open_beneath(&dirfd, Path::new("good"), libc::O_PATH, false).is_ok());
        assert!(open_beneath(&dirfd, Path::new("evil"), libc::O_PATH, false).is_err());
        assert!(open_beneath(&dirfd, Path::new("../etc"), libc::O_PATH, false).is_err());
    }
}
