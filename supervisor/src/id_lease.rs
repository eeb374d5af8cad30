//! A distinct outside uid/gid for every running sandbox.
//!
//! Per-user kernel limits (file descriptors in flight over SCM_RIGHTS, pipe buffer pages,
//! inotify watches, pending signals) are counted by uid. Sandboxes sharing one outside
//! uid would share them, and one could exhaust them for all others. Each sandbox leases
//! `base + n` from a pool of [`POOL_SIZE`] ids, held by an exclusive `flock` on
//! `<lease dir>/<uid>`: the kernel releases it when the holder dies, however it dies.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How many consecutive ids, from the policy's `sandbox.identity`, the pool spans.
pub const POOL_SIZE: u32 = 65536;
/// Where the lease files live (root-only).
pub const LEASE_DIR: &str = "/run/wfsandbox/id-leases";
/// Ids tried before giving up (the pool is far larger than any plugin count).
const MAX_PROBES: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum IdLeaseError {
    #[error("identity pool {base}+{POOL_SIZE} overflows or includes uid/gid 0")]
    BadBase { base: u32 },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("no free outside uid after {MAX_PROBES} tries from {base}")]
    Exhausted { base: u32 },
}

/// An outside uid/gid held for as long as this value lives.
#[derive(Debug)]
pub struct IdLease {
    pub uid: u32,
    pub gid: u32,
    path: PathBuf,
    _lock: File,
}

impl Drop for IdLease {
    fn drop(&mut self) {
        // Unlink while still holding the lock; a waiter that opened the old file notices
        // the path no longer names its inode and retries (see `try_lease`).
        let _ = std::fs::remove_file(&self.path);
        // `_lock` closes after this, releasing the flock.
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> IdLeaseError + '_ {
    move |source| IdLeaseError::Io { path: path.to_owned(), source }
}

/// Lease an id pair `(base_uid + n, base_gid + n)`; `seed` spreads starting points.
pub fn lease(base_uid: u32, base_gid: u32, seed: &str, dir: &Path) -> Result<IdLease, IdLeaseError> {
    for base in [base_uid, base_gid] {
        if base == 0 || base.checked_add(POOL_SIZE).is_none() {
            return Err(IdLeaseError::BadBase { base });
        }
    }
    create_lease_dir(dir)?;
    let start = fnv1a(seed) % POOL_SIZE;
    for probe in 0..MAX_PROBES {
        let offset = (start + probe) % POOL_SIZE;
        if let Some(lock) = try_lease(dir, base_uid + offset)? {
            let (uid, gid) = (base_uid + offset, base_gid + offset);
            return Ok(IdLease { uid, gid, path: dir.join(uid.to_string()), _lock: lock });
        }
    }
    Err(IdLeaseError::Exhausted { base: base_uid })
}

fn create_lease_dir(dir: &Path) -> Result<(), IdLeaseError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// The lock for `uid`, or `None` if another sandbox holds it.
fn try_lease(dir: &Path, uid: u32) -> Result<Option<File>, IdLeaseError> {
    let path = dir.join(uid.to_string());
    loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err(&path))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            return Err(io_err(&path)(err));
        }
        // The previous holder may have unlinked the file between our open and our lock:
        // then we locked an orphan inode, and must lock the file now at the path.
        let held = file.metadata().map_err(io_err(&path))?;
        match std::fs::symlink_metadata(&path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(Some(file)),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&path)(e)),
        }
    }
}

/// FNV-1a: a small, stable hash to spread starting offsets (not security relevant:
/// whichever id is leased, it is held exclusively).
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_leases_get_distinct_ids_and_ids_are_reused_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let a = lease(200_000, 300_000, "same-seed", dir.path()).unwrap();
        let b = lease(200_000, 300_000, "same-seed", dir.path()).unwrap();
        assert_ne!(a.uid, b.uid);
        assert_eq!(a.gid - 300_000, a.uid - 200_000, "uid and gid share the offset");
        assert!((200_000..200_000 + POOL_SIZE).contains(&a.uid));
        let first = a.uid;
        drop(a);
        assert!(!dir.path().join(first.to_string()).exists(), "the lease file is removed");
        let c = lease(200_000, 300_000, "same-seed", dir.path()).unwrap();
        assert_eq!(c.uid, first, "a released id is leased again");
        drop((b, c));
    }

    #[test]
    fn a_lease_is_held_by_an_flock_another_process_sees() {
        let dir = tempfile::tempdir().unwrap();
        let held = lease(200_000, 200_000, "x", dir.path()).unwrap();
        let path = dir.path().join(held.uid.to_string());
        // A separate open file description (as another process would have) cannot lock it.
        let other = std::fs::OpenOptions::new().read(true).open(&path).unwrap();
        // SAFETY: flock on an fd we own.
        let rc = unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(rc, -1);
        assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EWOULDBLOCK));
    }

    #[test]
    fn pools_that_include_root_or_overflow_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(lease(0, 200_000, "x", dir.path()), Err(IdLeaseError::BadBase { .. })));
        assert!(matches!(lease(200_000, u32::MAX - 5, "x", dir.path()), Err(IdLeaseError::BadBase { .. })));
    }
}
