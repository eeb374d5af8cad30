//! Building the sandbox's root filesystem in the child's private mount namespace.
//!
//! 1. `/` becomes recursively private, so nothing propagates to or from the host.
//! 2. A size-limited tmpfs is mounted on [`NEW_ROOT`] (`/tmp` of our private mount
//!    namespace, as bubblewrap does); it becomes the new `/`.
//! 3. The plan's [`RootOp`]s run in order beneath it. Every path is resolved with
//!    `openat2(RESOLVE_IN_ROOT)` relative to the new root, so a symlink inside it
//!    (ours or one in a bound host tree) can never lead a mount out onto the host's
//!    tree. Mount targets are fds (`/proc/self/fd/N` for `mount(2)`).
//! 4. `pivot_root(".", ".")` + `umount2(".", MNT_DETACH)`: the old root is gone.
//! 5. The root tmpfs is remounted read-only (nosuid, nodev, noexec).
//!
//! Binds: the source fd of [`RootOp::Bind`] and of every `/dev` node must be a
//! *detached mount tree* the parent made with [`crate::mount_source::detached_tree`]
//! (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`). A plain `O_PATH` fd does not work:
//! it names a mount in the parent's mount namespace, which the kernel refuses to bind
//! from another one (`EINVAL`). The child applies the flags with `mount_setattr`
//! (recursive, add-only, so flags locked on the host source are never cleared) and
//! attaches the tree with `move_mount`.

use crate::plan::RootOp;
use crate::report::SetupStep;
use crate::step_error::StepError;
use crate::sys::{Sys, SysResult};
use nix::errno::Errno;
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use thiserror::Error;

/// Where the new root tmpfs is mounted before `pivot_root` (inside our mount namespace).
pub const NEW_ROOT: &CStr = c"/tmp";
/// Size of the `/dev` tmpfs (it holds empty mount points and symlinks only).
pub const DEV_TMPFS_BYTES: u64 = 64 * 1024;
/// Options tried first for procfs: only process directories, other users' hidden.
pub const PROC_OPTIONS: &CStr = c"subset=pid,hidepid=invisible";

const DIR_MODE: u32 = 0o755;
const PATH_MAX: usize = 4096;
const TMPFS_FLAGS: u64 = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
const PROC_FLAGS: u64 = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
const ROOT_READONLY_FLAGS: u64 =
    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
const DEV_LINKS: [(&CStr, &CStr); 4] = [
    (c"fd", c"/proc/self/fd"),
    (c"stdin", c"/proc/self/fd/0"),
    (c"stdout", c"/proc/self/fd/1"),
    (c"stderr", c"/proc/self/fd/2"),
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MountError {
    #[error("making / recursively private: {0}")]
    Propagation(Errno),
    #[error("mounting the root tmpfs ({bytes} bytes) on /tmp: {errno}")]
    RootTmpfs { bytes: u64, errno: Errno },
    #[error("{op} {path}: {errno}")]
    Op { op: &'static str, path: String, errno: Errno },
    #[error("pivot_root into the new root: {what}: {errno}")]
    Pivot { what: &'static str, errno: Errno },
    #[error("remounting / read-only: {0}")]
    Readonly(Errno),
}

impl StepError for MountError {
    fn step(&self) -> SetupStep {
        match self {
            MountError::Propagation(_) => SetupStep::MountPropagation,
            MountError::RootTmpfs { .. } => SetupStep::RootTmpfs,
            MountError::Op { .. } => SetupStep::RootOp,
            MountError::Pivot { .. } => SetupStep::PivotRoot,
            MountError::Readonly(_) => SetupStep::RootReadonly,
        }
    }

    fn errno(&self) -> Errno {
        match self {
            MountError::Propagation(e) | MountError::Readonly(e) => *e,
            MountError::RootTmpfs { errno, .. } | MountError::Op { errno, .. } | MountError::Pivot { errno, .. } => {
                *errno
            }
        }
    }
}

/// Which procfs options the kernel accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcMode {
    /// `subset=pid,hidepid=invisible`.
    SubsetPid,
    /// Plain procfs: the kernel rejected the options (before Linux 5.8).
    Plain,
}

/// Steps 1–5 of the module docs. Returns how `/proc` was mounted, if a `Proc` op ran.
pub fn build_root(sys: &dyn Sys, root_tmpfs_bytes: u64, ops: &[RootOp]) -> Result<Option<ProcMode>, MountError> {
    sys.mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None).map_err(MountError::Propagation)?;
    let root = mount_root_tmpfs(sys, root_tmpfs_bytes)?;
    let builder = RootBuilder { sys, root: root.fd };
    let mut proc_mode = None;
    for op in ops {
        if let Some(mode) = builder.apply(op)? {
            proc_mode = Some(mode);
        }
    }
    pivot_into(sys, root.fd)?;
    drop(root);
    sys.mount(None, c"/", None, ROOT_READONLY_FLAGS, None).map_err(MountError::Readonly)?;
    Ok(proc_mode)
}

fn mount_root_tmpfs(sys: &dyn Sys, bytes: u64) -> Result<Fd<'_>, MountError> {
    let err = |errno| MountError::RootTmpfs { bytes, errno };
    // A tmpfs of size 0 would be unlimited.
    if bytes == 0 {
        return Err(err(Errno::EINVAL));
    }
    let data = tmpfs_options(bytes, DIR_MODE).map_err(err)?;
    sys.mount(Some(c"tmpfs"), NEW_ROOT, Some(c"tmpfs"), TMPFS_FLAGS, Some(&data)).map_err(err)?;
    let fd = sys.open_at(libc::AT_FDCWD, NEW_ROOT, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(err)?;
    Ok(Fd { sys, fd })
}

fn pivot_into(sys: &dyn Sys, root: RawFd) -> Result<(), MountError> {
    let err = |what| move |errno| MountError::Pivot { what, errno };
    sys.fchdir(root).map_err(err("fchdir to the new root"))?;
    sys.pivot_root(c".", c".").map_err(err("pivot_root(., .)"))?;
    sys.umount2(c".", libc::MNT_DETACH).map_err(err("detaching the old root"))?;
    sys.chdir(c"/").map_err(err("chdir /"))
}

fn tmpfs_options(bytes: u64, mode: u32) -> SysResult<CString> {
    CString::new(format!("size={bytes},mode={:o}", mode & 0o7777)).map_err(|_| Errno::EINVAL)
}

fn proc_fd_path(fd: RawFd) -> SysResult<CString> {
    CString::new(format!("/proc/self/fd/{fd}")).map_err(|_| Errno::EINVAL)
}

/// An fd closed (through the seam) when dropped.
struct Fd<'a> {
    sys: &'a dyn Sys,
    fd: RawFd,
}

impl Drop for Fd<'_> {
    fn drop(&mut self) {
        // Nothing useful can be done about a failed close of a path fd during setup.
        let _ = self.sys.close(self.fd);
    }
}

/// `at` (absolute, inside the sandbox) as a path relative to the new root.
/// Rejects relative paths, `.`/`..`/empty components, `/` itself and over-long paths.
fn relative(at: &CStr) -> SysResult<&[u8]> {
    let bytes = at.to_bytes();
    let rel = bytes.strip_prefix(b"/").ok_or(Errno::EINVAL)?;
    if rel.is_empty() || bytes.len() >= PATH_MAX {
        return Err(Errno::EINVAL);
    }
    if rel.split(|b| *b == b'/').any(|c| c.is_empty() || c == b"." || c == b"..") {
        return Err(Errno::EINVAL);
    }
    Ok(rel)
}

/// Split a relative path into (parent, final component); parent is empty at the top.
fn split_last(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|b| *b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

fn cstring(bytes: &[u8]) -> SysResult<CString> {
    CString::new(bytes).map_err(|_| Errno::EINVAL)
}

struct RootBuilder<'a> {
    sys: &'a dyn Sys,
    root: RawFd,
}

impl<'a> RootBuilder<'a> {
    fn apply(&self, op: &RootOp) -> Result<Option<ProcMode>, MountError> {
        let fail = |op: &'static str, at: &CStr| {
            let path = at.to_string_lossy().into_owned();
            move |errno| MountError::Op { op, path, errno }
        };
        match op {
            RootOp::Dir { at } => self.make_dir(at).map_err(fail("mkdir", at))?,
            RootOp::Symlink { at, target } => self.make_symlink(at, target).map_err(fail("symlink", at))?,
            RootOp::Bind { fd, at, readonly, is_dir, allow_exec } => {
                self.bind(*fd, at, *readonly, *is_dir, *allow_exec).map_err(fail("bind", at))?
            }
            RootOp::Tmpfs { at, size_bytes, mode } => {
                self.tmpfs(at, *size_bytes, *mode).map_err(fail("mount tmpfs", at))?
            }
            RootOp::Proc { at } => return self.proc(at).map(Some).map_err(fail("mount proc", at)),
            RootOp::Dev { at, host_dev_fds } => self.dev(at, host_dev_fds).map_err(fail("mount dev", at))?,
            RootOp::WriteFile { at, contents } => self.write_file(at, contents).map_err(fail("write", at))?,
        }
        Ok(None)
    }

    /// Open `rel` resolved inside the new root (`""` is the root itself).
    fn open(&self, rel: &[u8], flags: i32) -> SysResult<Fd<'a>> {
        let path = if rel.is_empty() { cstring(b".")? } else { cstring(rel)? };
        let fd = self.sys.open_in_root(self.root, &path, flags)?;
        Ok(Fd { sys: self.sys, fd })
    }

    fn open_dir(&self, rel: &[u8]) -> SysResult<Fd<'a>> {
        self.open(rel, libc::O_PATH | libc::O_DIRECTORY)
    }

    /// `mkdir -p` beneath the root; existing entries (including symlinks to dirs) are fine.
    fn make_dirs(&self, rel: &[u8]) -> SysResult<()> {
        let mut start = 0;
        while start < rel.len() {
            let end = rel[start..].iter().position(|b| *b == b'/').map_or(rel.len(), |i| start + i);
            let parent = self.open_dir(rel.get(..start.saturating_sub(1)).unwrap_or_default())?;
            match self.sys.mkdir_at(parent.fd, &cstring(&rel[start..end])?, DIR_MODE) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
            start = end + 1;
        }
        Ok(())
    }

    /// Create the parents of `at` and return (parent dir fd, final component).
    fn parent_of(&self, at: &CStr) -> SysResult<(Fd<'a>, CString)> {
        let (parent, name) = split_last(relative(at)?);
        self.make_dirs(parent)?;
        Ok((self.open_dir(parent)?, cstring(name)?))
    }

    fn make_dir(&self, at: &CStr) -> SysResult<()> {
        self.make_dirs(relative(at)?)
    }

    fn make_symlink(&self, at: &CStr, target: &CStr) -> SysResult<()> {
        let (parent, name) = self.parent_of(at)?;
        self.sys.symlink_at(target, parent.fd, &name)
    }

    /// An empty directory or file to mount on, opened as an `O_PATH` fd.
    fn mount_point(&self, at: &CStr, is_dir: bool) -> SysResult<Fd<'a>> {
        let (parent, name) = self.parent_of(at)?;
        if is_dir {
            match self.sys.mkdir_at(parent.fd, &name, DIR_MODE) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
        } else {
            let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW;
            let file = self.sys.open_at(parent.fd, &name, flags, 0o444)?;
            drop(Fd { sys: self.sys, fd: file });
        }
        let dir_flag = if is_dir { libc::O_DIRECTORY } else { 0 };
        self.open(relative(at)?, libc::O_PATH | libc::O_NOFOLLOW | dir_flag)
    }

    fn bind(&self, tree: RawFd, at: &CStr, readonly: bool, is_dir: bool, allow_exec: bool) -> SysResult<()> {
        let target = self.mount_point(at, is_dir)?;
        let mut attrs = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
        if readonly {
            attrs |= libc::MOUNT_ATTR_RDONLY;
        }
        if !allow_exec {
            attrs |= libc::MOUNT_ATTR_NOEXEC;
        }
        self.sys.set_mount_attrs(tree, attrs)?;
        self.sys.move_mount(tree, target.fd)
    }

    fn tmpfs(&self, at: &CStr, size_bytes: u64, mode: u32) -> SysResult<()> {
        // A tmpfs of size 0 would be unlimited.
        if size_bytes == 0 {
            return Err(Errno::EINVAL);
        }
        let target = self.mount_point(at, true)?;
        let data = tmpfs_options(size_bytes, mode)?;
        self.sys.mount(Some(c"tmpfs"), &proc_fd_path(target.fd)?, Some(c"tmpfs"), TMPFS_FLAGS, Some(&data))
    }

    fn proc(&self, at: &CStr) -> SysResult<ProcMode> {
        let target = self.mount_point(at, true)?;
        let path = proc_fd_path(target.fd)?;
        match self.sys.mount(Some(c"proc"), &path, Some(c"proc"), PROC_FLAGS, Some(PROC_OPTIONS)) {
            Ok(()) => Ok(ProcMode::SubsetPid),
            Err(Errno::EINVAL) => {
                self.sys.mount(Some(c"proc"), &path, Some(c"proc"), PROC_FLAGS, None)?;
                Ok(ProcMode::Plain)
            }
            Err(e) => Err(e),
        }
    }

    fn dev(&self, at: &CStr, nodes: &[(CString, RawFd)]) -> SysResult<()> {
        self.tmpfs(at, DEV_TMPFS_BYTES, DIR_MODE)?;
        // Re-resolve: the fd taken before mounting names the directory underneath.
        let dev = self.open_dir(relative(at)?)?;
        for (name, tree) in nodes {
            if name.as_bytes().contains(&b'/') || relative_name_is_special(name) {
                return Err(Errno::EINVAL);
            }
            let file = self.sys.open_at(dev.fd, name, libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY, 0o666)?;
            drop(Fd { sys: self.sys, fd: file });
            let target = Fd { sys: self.sys, fd: self.sys.open_at(dev.fd, name, libc::O_PATH | libc::O_NOFOLLOW, 0)? };
            // Device nodes keep the host's `dev`; they get nosuid and noexec.
            self.sys.set_mount_attrs(*tree, libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOEXEC)?;
            self.sys.move_mount(*tree, target.fd)?;
        }
        for (name, target) in DEV_LINKS {
            self.sys.symlink_at(target, dev.fd, name)?;
        }
        Ok(())
    }

    fn write_file(&self, at: &CStr, contents: &[u8]) -> SysResult<()> {
        let (parent, name) = self.parent_of(at)?;
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW;
        let file = Fd { sys: self.sys, fd: self.sys.open_at(parent.fd, &name, flags, 0o444)? };
        self.sys.write_all(file.fd, contents)
    }
}

fn relative_name_is_special(name: &CStr) -> bool {
    matches!(name.to_bytes(), b"" | b"." | b"..")
}

#[cfg(test)]
#[path = "mounts_tests.rs"]
mod tests;
