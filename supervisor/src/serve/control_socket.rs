//! The daemon's listening socket: a private directory, one daemon per socket, no stale file,
//! and never a moment where the socket is more open than the policy says.
//!
//! - A missing directory is created `0700` (`0710`, group = the policy's `socket_group`, when
//!   the socket is shared with a group). An existing directory is never changed (it may be
//!   `/run` itself), except the project's own `/run/wfsandbox`: it must be a real directory
//!   owned by root, writable by nobody else and closed to "other", or the daemon refuses to
//!   start. Every ancestor must be trusted as well ([`crate::trusted_path`]): a user who owns
//!   any directory above could rename the socket directory away and put its own in its place,
//!   and collect the tokens clients send.
//! - `<socket>.lock` is `flock`ed for the daemon's whole life: a second daemon on the same
//!   socket is refused, whatever state the first is in. Holding the lock, any socket file at
//!   the path is stale and is removed (after a connect probe, for a daemon that predates the
//!   lock).
//! - `bind` runs under `umask 0177` (the daemon is single-threaded here), then the mode and
//!   group are applied.

use crate::trusted_path::{check_trusted_dir, TrustError};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::{umask, Mode};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use wf_policy::security_policy::AuthenticationPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ControlSocketError {
    #[error("control socket {path}: must be an absolute path")]
    NotAbsolute { path: PathBuf },
    #[error("control socket directory {path}: {step}: {source}")]
    Directory { path: PathBuf, step: &'static str, source: io::Error },
    #[error("control socket directory {path}: {problem}")]
    UnsafeDirectory { path: PathBuf, problem: String },
    #[error("control socket directory {path}: not trusted: {source}")]
    UntrustedDirectory { path: PathBuf, source: TrustError },
    #[error("another wfsandbox daemon owns {path} (its lock {lock} is held)")]
    AlreadyRunning { path: PathBuf, lock: PathBuf },
    #[error("control socket {path}: exists and is not a socket; remove it or choose another path")]
    NotASocket { path: PathBuf },
    #[error("control socket {path}: {step}: {source}")]
    Socket { path: PathBuf, step: &'static str, source: io::Error },
    #[error("control socket {path}: socket_mode {mode:?} is not an octal mode")]
    BadMode { path: PathBuf, mode: String },
}

/// The bound socket and the lock that makes it ours. Dropping it removes the socket file.
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    listener: Option<UnixListener>,
    inode: u64,
    /// Whether the directory's mode and group are ours to set.
    owns_dir: bool,
    _lock: Flock<File>,
}

impl ControlSocket {
    /// Prepare the directory, take the lock, clear a stale socket and bind.
    pub fn claim(path: &Path, auth: &AuthenticationPolicy) -> Result<Self, ControlSocketError> {
        if !path.is_absolute() {
            return Err(ControlSocketError::NotAbsolute { path: path.to_owned() });
        }
        let dir = path.parent().unwrap_or(Path::new("/"));
        let created = prepare_directory(dir)?;
        let owns_dir = created || Some(dir) == Path::new(wf_protocol::control::DEFAULT_SOCKET_PATH).parent();
        let lock = take_lock(path)?;
        remove_stale_socket(path)?;
        let listener = bind_private(path)?;
        let inode = std::fs::symlink_metadata(path).map_err(socket_err(path, "stat after bind"))?.ino();
        let socket = Self { path: path.to_owned(), listener: Some(listener), inode, owns_dir, _lock: lock };
        socket.apply_permissions(auth)?;
        Ok(socket)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The listener, once, for the runtime to adopt.
    pub fn take_listener(&mut self) -> Option<UnixListener> {
        self.listener.take()
    }

    /// Mode and group from the policy.
    pub fn apply_permissions(&self, auth: &AuthenticationPolicy) -> Result<(), ControlSocketError> {
        self.permissions().apply(auth)
    }

    /// What a policy reload needs to apply the new mode and group.
    pub fn permissions(&self) -> SocketPermissions {
        SocketPermissions { path: self.path.clone(), owns_dir: self.owns_dir }
    }
}

/// The socket's mode and group, applied at start and again after a policy reload.
#[derive(Debug, Clone)]
pub struct SocketPermissions {
    path: PathBuf,
    owns_dir: bool,
}

impl SocketPermissions {
    pub fn apply(&self, auth: &AuthenticationPolicy) -> Result<(), ControlSocketError> {
        let mode = u32::from_str_radix(&auth.socket_mode, 8)
            .map_err(|_| ControlSocketError::BadMode { path: self.path.clone(), mode: auth.socket_mode.clone() })?;
        if self.owns_dir {
            set_directory_access(self.path.parent().unwrap_or(Path::new("/")), auth.socket_group)?;
        }
        std::os::unix::fs::chown(&self.path, Some(0), Some(auth.socket_group.unwrap_or(0)))
            .map_err(socket_err(&self.path, "chown"))?;
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(mode))
            .map_err(socket_err(&self.path, "chmod"))
    }
}

impl Drop for ControlSocket {
    /// Remove the socket file, but only if it is still the one we bound.
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn socket_err(path: &Path, step: &'static str) -> impl FnOnce(io::Error) -> ControlSocketError {
    let path = path.to_owned();
    move |source| ControlSocketError::Socket { path, step, source }
}

fn dir_err(path: &Path, step: &'static str) -> impl FnOnce(io::Error) -> ControlSocketError {
    let path = path.to_owned();
    move |source| ControlSocketError::Directory { path, step, source }
}

/// Whether the directory was created here.
fn prepare_directory(dir: &Path) -> Result<bool, ControlSocketError> {
    let created = match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = dir.parent().unwrap_or(dir);
            std::fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).map_err(dir_err(parent, "mkdir"))?;
            std::fs::DirBuilder::new().mode(0o700).create(dir).map_err(dir_err(dir, "mkdir"))?;
            true
        }
        Err(e) => return Err(dir_err(dir, "mkdir")(e)),
    };
    check_directory_is_ours(dir)?;
    check_trusted_dir(dir).map_err(|source| ControlSocketError::UntrustedDirectory { path: dir.to_owned(), source })?;
    Ok(created)
}

/// A directory someone else could write to (or a symlink to one) would let them replace the
/// socket with their own and collect what clients send.
fn check_directory_is_ours(dir: &Path) -> Result<(), ControlSocketError> {
    let meta = std::fs::symlink_metadata(dir).map_err(dir_err(dir, "lstat"))?;
    let unsafe_dir =
        |problem: &str| ControlSocketError::UnsafeDirectory { path: dir.to_owned(), problem: problem.into() };
    if !meta.file_type().is_dir() {
        return Err(unsafe_dir("not a directory (a symlink is not accepted)"));
    }
    if meta.uid() != 0 {
        return Err(unsafe_dir(&format!("owned by uid {}, not root", meta.uid())));
    }
    if meta.mode() & 0o027 != 0 {
        let mode = meta.mode() & 0o7777;
        return Err(unsafe_dir(&format!(
            "mode {mode:o} opens it to others (allowed at most 0750); use a directory only root can enter"
        )));
    }
    Ok(())
}

fn set_directory_access(dir: &Path, group: Option<u32>) -> Result<(), ControlSocketError> {
    // The group only needs to reach the socket, not to list what else is there.
    let mode = if group.is_some() { 0o710 } else { 0o700 };
    std::os::unix::fs::chown(dir, Some(0), Some(group.unwrap_or(0))).map_err(dir_err(dir, "chown"))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(dir_err(dir, "chmod"))
}

fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    socket.with_file_name(name)
}

fn take_lock(socket: &Path) -> Result<Flock<File>, ControlSocketError> {
    let path = lock_path(socket);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(socket_err(&path, "open lock"))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        nix::errno::Errno::EWOULDBLOCK => ControlSocketError::AlreadyRunning { path: socket.to_owned(), lock: path },
        other => ControlSocketError::Socket { path: socket.to_owned(), step: "flock", source: other.into() },
    })
}

fn remove_stale_socket(path: &Path) -> Result<(), ControlSocketError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(socket_err(path, "lstat")(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ControlSocketError::NotASocket { path: path.to_owned() });
    }
    if UnixStream::connect(path).is_ok() {
        return Err(ControlSocketError::AlreadyRunning { path: path.to_owned(), lock: lock_path(path) });
    }
    std::fs::remove_file(path).map_err(socket_err(path, "remove stale socket"))
}

fn bind_private(path: &Path) -> Result<UnixListener, ControlSocketError> {
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound.map_err(socket_err(path, "bind"))?;
    listener.set_nonblocking(true).map_err(socket_err(path, "set non-blocking"))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AuthenticationPolicy {
        AuthenticationPolicy::default()
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn a_second_claim_on_the_same_socket_is_refused_and_the_first_still_serves() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let first = ControlSocket::claim(&path, &policy()).expect("first claim");
        let second = ControlSocket::claim(&path, &policy());
        assert!(matches!(second, Err(ControlSocketError::AlreadyRunning { .. })), "{second:?}");
        assert!(UnixStream::connect(&path).is_ok());
        drop(first);
        assert!(!path.exists(), "the socket file is removed on drop");
    }

    #[test]
    fn the_socket_and_its_directory_are_private() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let _socket = ControlSocket::claim(&path, &policy()).expect("claim");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[test]
    fn a_group_shared_socket_gets_a_directory_the_group_can_pass_but_not_list() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let shared = AuthenticationPolicy { socket_mode: "0660".into(), socket_group: Some(4242), ..policy() };
        let _socket = ControlSocket::claim(&path, &shared).expect("claim");
        let meta = |p: &Path| std::fs::metadata(p).unwrap();
        assert_eq!((meta(&path).mode() & 0o7777, meta(&path).gid()), (0o660, 4242));
        let parent = meta(path.parent().unwrap());
        assert_eq!((parent.mode() & 0o7777, parent.gid()), (0o710, 4242));
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_regular_file_is_not() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::DirBuilder::new().mode(0o700).create(&run).unwrap();
        let path = run.join("control.sock");
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "a stale socket file is left behind");
        let socket = ControlSocket::claim(&path, &policy()).expect("claim over a stale socket");
        drop(socket);
        std::fs::write(&path, b"not a socket").unwrap();
        let refused = ControlSocket::claim(&path, &policy());
        assert!(matches!(refused, Err(ControlSocketError::NotASocket { .. })), "{refused:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    }

    #[test]
    fn a_directory_others_can_write_to_or_a_symlink_is_refused() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = ControlSocket::claim(&shared.join("control.sock"), &policy());
        assert!(matches!(refused, Err(ControlSocketError::UnsafeDirectory { .. })), "{refused:?}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        let refused = ControlSocket::claim(&link.join("control.sock"), &policy());
        assert!(matches!(refused, Err(ControlSocketError::UnsafeDirectory { .. })), "{refused:?}");
        let readable = dir.path().join("readable");
        std::fs::create_dir(&readable).unwrap();
        std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o755)).unwrap();
        let refused = ControlSocket::claim(&readable.join("control.sock"), &policy());
        assert!(matches!(refused, Err(ControlSocketError::UnsafeDirectory { .. })), "{refused:?}");
        let mode = std::fs::metadata(&readable).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o755, "an existing directory is never changed");
    }

    #[test]
    fn a_directory_below_an_ancestor_another_user_owns_is_refused() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let user_owned = dir.path().join("anc");
        std::fs::create_dir(&user_owned).unwrap();
        std::os::unix::fs::chown(&user_owned, Some(4321), None).unwrap();
        let run = user_owned.join("run");
        std::fs::DirBuilder::new().mode(0o700).create(&run).unwrap();
        let refused = ControlSocket::claim(&run.join("control.sock"), &policy());
        assert!(matches!(refused, Err(ControlSocketError::UntrustedDirectory { .. })), "{refused:?}");
        assert!(!run.join("control.sock").exists(), "nothing is bound");
    }

    #[test]
    fn relative_paths_are_refused() {
        let refused = ControlSocket::claim(Path::new("control.sock"), &policy());
        assert!(matches!(refused, Err(ControlSocketError::NotAbsolute { .. })), "{refused:?}");
    }
}
