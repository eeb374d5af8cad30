//! Opening the log file so that nobody else can have prepared or redirected it.

use super::error::AuditLogError;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const GROUP_OR_OTHER_WRITABLE: u32 = 0o022;

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Creates missing parent directories (mode 0700) and checks the immediate parent: whoever can
/// write it can rename the log away or plant the next rotated file. A root writer also checks
/// every ancestor (`trusted_path`).
pub fn prepare_parent(path: &Path) -> Result<(), AuditLogError> {
    let parent = parent_of(path);
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .map_err(AuditLogError::io("creating the parent directory", &parent))?;
    let meta = std::fs::metadata(&parent).map_err(AuditLogError::io("stat of the parent directory", &parent))?;
    let mode = meta.mode() & 0o7777;
    let owner_ok = meta.uid() == euid() || meta.uid() == 0;
    if !meta.is_dir() || !owner_ok || mode & GROUP_OR_OTHER_WRITABLE != 0 {
        return Err(AuditLogError::UnsafeDirectory { path: parent, owner: meta.uid(), mode, euid: euid() });
    }
    if euid() == 0 {
        check_ancestors(&parent)?;
    }
    Ok(())
}

/// For a root writer, every directory above the log too: a user who owns one of them could
/// swap the whole subtree, log included, for one of their own.
fn check_ancestors(parent: &Path) -> Result<(), AuditLogError> {
    let absolute = std::path::absolute(parent).map_err(AuditLogError::io("making the parent path absolute", parent))?;
    crate::trusted_path::check_trusted_dir(&absolute)
        .map_err(|reason| AuditLogError::UntrustedAncestor { path: parent.to_owned(), reason: reason.to_string() })
}

/// Opens (creating with mode 0600 if missing) the log for appending and reading its tail:
/// `O_APPEND | O_CLOEXEC | O_NOFOLLOW`, then checks type, owner and mode on the open fd and
/// takes an exclusive `flock` so a second supervisor cannot interleave its own chain.
pub fn open_log(path: &Path, create_new: bool) -> Result<File, AuditLogError> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .append(true)
        .mode(0o600)
        // O_NONBLOCK so that a FIFO planted at the path cannot hang the open; cleared below.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true);
    }
    let file = options.open(path).map_err(|e| open_error(path, e))?;
    check_opened(path, &file)?;
    clear_nonblock(path, &file)?;
    lock_exclusive(path, &file)?;
    Ok(file)
}

/// Opens a rotated file read-only, not following a symlink, to read its tail.
pub fn open_for_reading(path: &Path) -> Result<File, AuditLogError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| open_error(path, e))
}

fn open_error(path: &Path, e: io::Error) -> AuditLogError {
    if e.raw_os_error() == Some(libc::ELOOP) {
        AuditLogError::Symlink { path: path.to_owned() }
    } else {
        AuditLogError::Io { step: "open", path: path.to_owned(), source: e }
    }
}

fn check_opened(path: &Path, file: &File) -> Result<(), AuditLogError> {
    let meta = file.metadata().map_err(AuditLogError::io("fstat", path))?;
    if !meta.file_type().is_file() {
        return Err(AuditLogError::NotRegularFile { path: path.to_owned(), found: describe(&meta) });
    }
    if meta.uid() != euid() {
        return Err(AuditLogError::WrongOwner { path: path.to_owned(), owner: meta.uid(), euid: euid() });
    }
    let mode = meta.mode() & 0o7777;
    if mode & GROUP_OR_OTHER_WRITABLE != 0 {
        return Err(AuditLogError::UnsafeMode { path: path.to_owned(), mode });
    }
    Ok(())
}

fn describe(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

fn clear_nonblock(path: &Path, file: &File) -> Result<(), AuditLogError> {
    // SAFETY: fcntl on an fd we own; F_GETFL/F_SETFL take no pointers.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(AuditLogError::io("fcntl(F_GETFL)", path)(io::Error::last_os_error()));
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(AuditLogError::io("fcntl(F_SETFL)", path)(io::Error::last_os_error()));
    }
    Ok(())
}

fn lock_exclusive(path: &Path, file: &File) -> Result<(), AuditLogError> {
    // SAFETY: flock on an fd we own; the lock goes away when the file is closed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Err(AuditLogError::InUse { path: path.to_owned() })
    } else {
        Err(AuditLogError::io("flock", path)(e))
    }
}

/// fsync of the directory holding `path`, so a created or renamed entry survives a crash.
pub fn sync_parent(path: &Path) -> Result<(), AuditLogError> {
    let parent = parent_of(path);
    let dir = File::open(&parent).map_err(AuditLogError::io("opening the directory to fsync it", &parent))?;
    dir.sync_all().map_err(AuditLogError::io("fsync of the directory", &parent))
}
