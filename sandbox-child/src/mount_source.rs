//! Preparing bind sources in the parent, before clone.
//!
//! The child cannot bind a host object through an ordinary fd: such an fd names a
//! mount of the parent's mount namespace, and the kernel refuses to copy mounts from
//! a namespace other than the caller's (`open_tree`/`mount(MS_BIND)` fail with
//! `EINVAL`). A *detached* copy made here with `open_tree(OPEN_TREE_CLONE)` belongs
//! to no namespace yet, and the child may attach it with `move_mount`.
//!
//! Each detached tree can be attached once. Keep the returned fd open until the child
//! has executed (or failed); closing an unattached tree unmounts it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MountSourceError {
    #[error("open_tree(fd {fd}, OPEN_TREE_CLONE | AT_RECURSIVE): {source}")]
    Clone { fd: i32, source: io::Error },
}

/// A detached, recursive copy of the mount tree at `object` (an `O_PATH` fd of a
/// directory or file, e.g. opened without following symlinks). The copy is
/// close-on-exec. Needs `CAP_SYS_ADMIN` over the caller's mount namespace.
pub fn detached_tree(object: BorrowedFd<'_>) -> Result<OwnedFd, MountSourceError> {
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as u32;
    // SAFETY: the path is "" (AT_EMPTY_PATH), so only the fd is used.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, object.as_raw_fd(), c"".as_ptr(), flags) };
    if ret < 0 {
        return Err(MountSourceError::Clone { fd: object.as_raw_fd(), source: io::Error::last_os_error() });
    }
    let fd = i32::try_from(ret).map_err(|_| MountSourceError::Clone {
        fd: object.as_raw_fd(),
        source: io::Error::from_raw_os_error(libc::EBADF),
    })?;
    // SAFETY: open_tree returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
