//! The seam between the child's setup logic and the kernel.
//!
//! Every privileged or process-altering operation the child performs goes through
//! [`Sys`], so the ordered sequence in `setup` and each step's logic can be unit
//! tested with a recording fake, without root. [`LinuxSys`] is the real thing.
//! Methods are thin: one syscall (or one tight syscall loop) each, returning the errno.

use landlock::{AccessFs, BitFlags, RulesetCreated, RulesetStatus};
use nix::errno::Errno;
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

mod linux;
pub use linux::LinuxSys;

#[cfg(test)]
pub(crate) mod fake;

pub type SysResult<T> = Result<T, Errno>;

pub trait Sys {
    // --- process attributes and the release handshake
    /// Unblock every signal (`rt_sigprocmask(SIG_SETMASK, {})`) and set every signal
    /// 1..=64 but `SIGKILL`/`SIGSTOP` to `SIG_DFL` (`rt_sigaction`): undoes the mask and
    /// the ignored signals inherited from the supervisor, which would survive `execve`.
    fn reset_signals(&self) -> SysResult<()>;
    /// `prctl(PR_SET_PDEATHSIG, signal)`.
    fn set_parent_death_signal(&self, signal: i32) -> SysResult<()>;
    /// `prctl(PR_SET_DUMPABLE, dumpable)`.
    fn set_dumpable(&self, dumpable: bool) -> SysResult<()>;
    /// Read one byte (retrying `EINTR`); `None` on end of file.
    fn read_byte(&self, fd: RawFd) -> SysResult<Option<u8>>;
    /// Whether the read end of the pipe whose write end is `fd` is closed everywhere:
    /// `poll(fd, POLLOUT, 0)` reports `POLLERR` (or `POLLHUP`). Does not block.
    fn pipe_reader_gone(&self, fd: RawFd) -> SysResult<bool>;
    /// Write all of `bytes` (retrying `EINTR` and short writes).
    fn write_all(&self, fd: RawFd, bytes: &[u8]) -> SysResult<()>;
    /// `setresgid(gid, gid, gid)`.
    fn setresgid(&self, gid: u32) -> SysResult<()>;
    /// `setresuid(uid, uid, uid)`.
    fn setresuid(&self, uid: u32) -> SysResult<()>;
    /// `unshare(flags)`.
    fn unshare(&self, flags: i32) -> SysResult<()>;

    // --- mounts and the new root
    /// `mount(2)`.
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: u64,
        data: Option<&CStr>,
    ) -> SysResult<()>;
    /// `openat(dirfd, path, flags | O_CLOEXEC, mode)`.
    fn open_at(&self, dirfd: RawFd, path: &CStr, flags: i32, mode: u32) -> SysResult<RawFd>;
    /// `openat2(root, path, flags | O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`:
    /// `path` is resolved as if `root` were `/`, symlinks included.
    fn open_in_root(&self, root: RawFd, path: &CStr, flags: i32) -> SysResult<RawFd>;
    /// `mkdirat(dirfd, name, mode)`.
    fn mkdir_at(&self, dirfd: RawFd, name: &CStr, mode: u32) -> SysResult<()>;
    /// `symlinkat(target, dirfd, name)`.
    fn symlink_at(&self, target: &CStr, dirfd: RawFd, name: &CStr) -> SysResult<()>;
    /// `mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, {attr_set})`: only adds flags.
    fn set_mount_attrs(&self, tree: RawFd, attr_set: u64) -> SysResult<()>;
    /// `move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)`.
    fn move_mount(&self, tree: RawFd, target: RawFd) -> SysResult<()>;
    /// `fchdir(fd)`.
    fn fchdir(&self, fd: RawFd) -> SysResult<()>;
    /// `chdir(path)`.
    fn chdir(&self, path: &CStr) -> SysResult<()>;
    /// `pivot_root(new_root, put_old)`.
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult<()>;
    /// `umount2(target, flags)`.
    fn umount2(&self, target: &CStr, flags: i32) -> SysResult<()>;
    /// Whether `fd` refers to a directory (`fstat`).
    fn is_directory(&self, fd: RawFd) -> SysResult<bool>;

    // --- uts, network, resources
    /// `sethostname(name)`.
    fn sethostname(&self, name: &CStr) -> SysResult<()>;
    /// Set `IFF_UP` on `lo` (`SIOCGIFFLAGS` + `SIOCSIFFLAGS` on an `AF_INET` datagram socket).
    fn bring_loopback_up(&self) -> SysResult<()>;
    /// `setrlimit(resource, {soft, hard})`.
    fn setrlimit(&self, resource: i32, soft: u64, hard: u64) -> SysResult<()>;

    // --- session and file descriptors
    /// `setsid()`.
    fn setsid(&self) -> SysResult<()>;
    /// `fcntl(fd, F_DUPFD_CLOEXEC, min)`: a close-on-exec copy at the lowest free fd >= `min`.
    fn dup_at_least(&self, fd: RawFd, min: RawFd) -> SysResult<RawFd>;
    /// `dup2(old, new)` (the copy is not close-on-exec).
    fn dup2(&self, old: RawFd, new: RawFd) -> SysResult<()>;
    /// Set `FD_CLOEXEC` on `fd`.
    fn set_cloexec(&self, fd: RawFd) -> SysResult<()>;
    /// `close(fd)`.
    fn close(&self, fd: RawFd) -> SysResult<()>;
    /// `close_range(first, last, 0)`.
    fn close_range(&self, first: u32, last: u32) -> SysResult<()>;

    // --- privileges
    /// `prctl(PR_SET_SECUREBITS, bits)`.
    fn set_securebits(&self, bits: u32) -> SysResult<()>;
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`.
    fn clear_ambient_caps(&self) -> SysResult<()>;
    /// `prctl(PR_CAPBSET_DROP, cap)`; `EINVAL` once `cap` is past the kernel's last capability.
    fn drop_bounding_cap(&self, cap: u32) -> SysResult<()>;
    /// `capset` with empty effective, permitted and inheritable sets.
    fn clear_cap_sets(&self) -> SysResult<()>;
    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
    fn set_no_new_privs(&self) -> SysResult<()>;

    // --- landlock
    /// The kernel's Landlock ABI version, `None` if Landlock is unavailable.
    fn landlock_abi(&self) -> Option<i32>;
    /// Move the ruleset's fd to a known number >= 4 (returned; `None` if the ruleset has
    /// no fd because Landlock is unsupported), so it is neither overwritten by the dup2s
    /// onto 0..=3 nor closed with the stray fds. `anchor` is any open fd.
    fn pin_landlock_ruleset(
        &self,
        ruleset: RulesetCreated,
        anchor: RawFd,
    ) -> SysResult<(RulesetCreated, Option<RawFd>)>;
    /// Add a path-beneath rule for the object behind `fd`.
    fn landlock_add_path_rule(
        &self,
        ruleset: RulesetCreated,
        fd: RawFd,
        access: BitFlags<AccessFs>,
    ) -> SysResult<RulesetCreated>;
    /// `landlock_restrict_self`; returns how completely the ruleset is enforced.
    fn landlock_restrict_self(&self, ruleset: RulesetCreated) -> SysResult<RulesetStatus>;

    // --- seccomp, exec, exit
    /// `seccomp(SECCOMP_SET_MODE_FILTER, 0, program)`.
    fn install_seccomp(&self, program: &[libc::sock_filter]) -> SysResult<()>;
    /// `execve(path, argv, envp)`. The real implementation returns only on failure;
    /// `Ok` exists for fakes that simulate a successful exec.
    fn execve(&self, path: &CStr, argv: &[CString], envp: &[CString]) -> SysResult<()>;
    /// `_exit(code)`.
    fn exit(&self, code: i32) -> !;
}
