//! The real [`Sys`]: raw syscalls, errno preserved.
//!
//! Raw `syscall(2)` is used where glibc wrappers keep per-thread or cached state that
//! a fork-like `clone` does not refresh (set*id broadcasting) or where no wrapper exists.

use super::{Sys, SysResult};
use landlock::{AccessFs, BitFlags, PathBeneath, RulesetCreated, RulesetCreatedAttr, RulesetStatus};
use nix::errno::Errno;
use std::ffi::{c_char, c_int, c_long, c_ulong, c_void, CStr, CString};
use std::os::fd::{BorrowedFd, RawFd};
use std::ptr;

/// The real kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxSys;

const EMPTY: &CStr = c"";
const LOOPBACK: &[u8] = b"lo";

fn check(ret: c_long) -> SysResult<c_long> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

fn check_int(ret: c_int) -> SysResult<c_int> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

fn opt_ptr(s: Option<&CStr>) -> *const c_char {
    s.map_or(ptr::null(), CStr::as_ptr)
}

fn prctl(option: c_int, arg2: c_ulong) -> SysResult<()> {
    // SAFETY: the prctl options used here take integer arguments only.
    check_int(unsafe { libc::prctl(option, arg2, 0 as c_ulong, 0 as c_ulong, 0 as c_ulong) }).map(drop)
}

/// Walk an error's sources for the OS error behind it.
fn errno_of(err: &(dyn std::error::Error + 'static)) -> Errno {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(code) = e.downcast_ref::<std::io::Error>().and_then(std::io::Error::raw_os_error) {
            return Errno::from_raw(code);
        }
        cur = e.source();
    }
    Errno::EINVAL
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only inspects the fd table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

impl Sys for LinuxSys {
    fn reset_signals(&self) -> SysResult<()> {
        let empty: KernelSigset = 0;
        // SAFETY: `empty` outlives the call and its size is passed; no old mask is asked for.
        check(unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &empty as *const KernelSigset,
                ptr::null_mut::<KernelSigset>(),
                size_of::<KernelSigset>(),
            )
        })?;
        let default = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
        for signal in 1..=MAX_SIGNAL {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            // SAFETY: `default` outlives the call and its mask size is passed; no old action is asked for.
            check(unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    &default as *const KernelSigaction,
                    ptr::null_mut::<KernelSigaction>(),
                    size_of::<KernelSigset>(),
                )
            })?;
        }
        Ok(())
    }

    fn set_parent_death_signal(&self, signal: i32) -> SysResult<()> {
        let signal = c_ulong::try_from(signal).map_err(|_| Errno::EINVAL)?;
        prctl(libc::PR_SET_PDEATHSIG, signal)
    }

    fn set_dumpable(&self, dumpable: bool) -> SysResult<()> {
        prctl(libc::PR_SET_DUMPABLE, c_ulong::from(dumpable))
    }

    fn read_byte(&self, fd: RawFd) -> SysResult<Option<u8>> {
        let mut byte = 0u8;
        loop {
            // SAFETY: reads at most one byte into `byte`.
            let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast::<c_void>(), 1) };
            match n {
                0 => return Ok(None),
                1 => return Ok(Some(byte)),
                _ if Errno::last() == Errno::EINTR => continue,
                _ => return Err(Errno::last()),
            }
        }
    }

    fn pipe_reader_gone(&self, fd: RawFd) -> SysResult<bool> {
        let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
        loop {
            // SAFETY: one live pollfd, zero timeout.
            let ret = unsafe { libc::poll(&mut pfd, 1, 0) };
            if ret >= 0 {
                break;
            }
            if Errno::last() != Errno::EINTR {
                return Err(Errno::last());
            }
        }
        if pfd.revents & libc::POLLNVAL != 0 {
            return Err(Errno::EBADF);
        }
        Ok(pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0)
    }

    fn write_all(&self, fd: RawFd, mut bytes: &[u8]) -> SysResult<()> {
        while !bytes.is_empty() {
            // SAFETY: writes from a live slice of the given length.
            let n = unsafe { libc::write(fd, bytes.as_ptr().cast::<c_void>(), bytes.len()) };
            if n < 0 {
                if Errno::last() == Errno::EINTR {
                    continue;
                }
                return Err(Errno::last());
            }
            let written = usize::try_from(n).map_err(|_| Errno::EIO)?;
            bytes = bytes.get(written..).ok_or(Errno::EIO)?;
        }
        Ok(())
    }

    fn setresgid(&self, gid: u32) -> SysResult<()> {
        // SAFETY: plain integer syscall.
        check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
    }

    fn setresuid(&self, uid: u32) -> SysResult<()> {
        // SAFETY: plain integer syscall.
        check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
    }

    fn unshare(&self, flags: i32) -> SysResult<()> {
        // SAFETY: plain integer syscall.
        check_int(unsafe { libc::unshare(flags) }).map(drop)
    }

    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: u64,
        data: Option<&CStr>,
    ) -> SysResult<()> {
        // SAFETY: every pointer is a NUL-terminated string or NULL.
        let ret = unsafe {
            libc::mount(
                opt_ptr(source),
                target.as_ptr(),
                opt_ptr(fstype),
                flags as c_ulong,
                opt_ptr(data).cast::<c_void>(),
            )
        };
        check_int(ret).map(drop)
    }

    fn open_at(&self, dirfd: RawFd, path: &CStr, flags: i32, mode: u32) -> SysResult<RawFd> {
        // SAFETY: `path` is NUL-terminated.
        check_int(unsafe { libc::openat(dirfd, path.as_ptr(), flags | libc::O_CLOEXEC, mode) })
    }

    fn open_in_root(&self, root: RawFd, path: &CStr, flags: i32) -> SysResult<RawFd> {
        let how = OpenHow {
            flags: u64::try_from(flags | libc::O_CLOEXEC).map_err(|_| Errno::EINVAL)?,
            mode: 0,
            resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
        };
        // SAFETY: `path` is NUL-terminated and `how` lives across the call with its size.
        let ret =
            unsafe { libc::syscall(libc::SYS_openat2, root, path.as_ptr(), &how as *const OpenHow, size_of_val(&how)) };
        check(ret).and_then(|fd| RawFd::try_from(fd).map_err(|_| Errno::EBADF))
    }

    fn mkdir_at(&self, dirfd: RawFd, name: &CStr, mode: u32) -> SysResult<()> {
        // SAFETY: `name` is NUL-terminated.
        check_int(unsafe { libc::mkdirat(dirfd, name.as_ptr(), mode) }).map(drop)
    }

    fn symlink_at(&self, target: &CStr, dirfd: RawFd, name: &CStr) -> SysResult<()> {
        // SAFETY: both strings are NUL-terminated.
        check_int(unsafe { libc::symlinkat(target.as_ptr(), dirfd, name.as_ptr()) }).map(drop)
    }

    fn set_mount_attrs(&self, tree: RawFd, attr_set: u64) -> SysResult<()> {
        let attr = libc::mount_attr { attr_set, attr_clr: 0, propagation: 0, userns_fd: 0 };
        let flags = (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as c_ulong;
        // SAFETY: `attr` lives across the call with its size; the path is "".
        let ret = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree,
                EMPTY.as_ptr(),
                flags,
                &attr as *const libc::mount_attr,
                size_of_val(&attr),
            )
        };
        check(ret).map(drop)
    }

    fn move_mount(&self, tree: RawFd, target: RawFd) -> SysResult<()> {
        let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
        // SAFETY: both paths are "" and both fds are used as-is.
        let ret = unsafe { libc::syscall(libc::SYS_move_mount, tree, EMPTY.as_ptr(), target, EMPTY.as_ptr(), flags) };
        check(ret).map(drop)
    }

    fn fchdir(&self, fd: RawFd) -> SysResult<()> {
        // SAFETY: plain integer syscall.
        check_int(unsafe { libc::fchdir(fd) }).map(drop)
    }

    fn chdir(&self, path: &CStr) -> SysResult<()> {
        // SAFETY: `path` is NUL-terminated.
        check_int(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult<()> {
        // SAFETY: both strings are NUL-terminated.
        check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) }).map(drop)
    }

    fn umount2(&self, target: &CStr, flags: i32) -> SysResult<()> {
        // SAFETY: `target` is NUL-terminated.
        check_int(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
    }

    fn is_directory(&self, fd: RawFd) -> SysResult<bool> {
        // SAFETY: an all-zero `stat` is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid out-pointer.
        check_int(unsafe { libc::fstat(fd, &mut st) })?;
        Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    }

    fn sethostname(&self, name: &CStr) -> SysResult<()> {
        let bytes = name.to_bytes();
        // SAFETY: pointer and length describe `bytes`.
        check_int(unsafe { libc::sethostname(bytes.as_ptr().cast::<c_char>(), bytes.len()) }).map(drop)
    }

    fn bring_loopback_up(&self) -> SysResult<()> {
        // SAFETY: plain socket creation.
        let sock = check_int(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
        let result = set_interface_up(sock, LOOPBACK);
        // SAFETY: closing the socket created above.
        unsafe { libc::close(sock) };
        result
    }

    fn setrlimit(&self, resource: i32, soft: u64, hard: u64) -> SysResult<()> {
        let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
        let resource = libc::__rlimit_resource_t::try_from(resource).map_err(|_| Errno::EINVAL)?;
        // SAFETY: `limit` is a valid rlimit.
        check_int(unsafe { libc::setrlimit(resource, &limit) }).map(drop)
    }

    fn setsid(&self) -> SysResult<()> {
        // SAFETY: no arguments.
        check_int(unsafe { libc::setsid() }).map(drop)
    }

    fn dup_at_least(&self, fd: RawFd, min: RawFd) -> SysResult<RawFd> {
        // SAFETY: integer-only fcntl.
        check_int(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
    }

    fn dup2(&self, old: RawFd, new: RawFd) -> SysResult<()> {
        // SAFETY: integer-only syscall.
        check_int(unsafe { libc::dup2(old, new) }).map(drop)
    }

    fn set_cloexec(&self, fd: RawFd) -> SysResult<()> {
        // SAFETY: integer-only fcntl.
        let flags = check_int(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
        // SAFETY: integer-only fcntl.
        check_int(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) }).map(drop)
    }

    fn close(&self, fd: RawFd) -> SysResult<()> {
        // SAFETY: closing an fd the caller names; the child owns its whole fd table.
        check_int(unsafe { libc::close(fd) }).map(drop)
    }

    fn close_range(&self, first: u32, last: u32) -> SysResult<()> {
        // SAFETY: integer-only syscall.
        check(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) }).map(drop)
    }

    fn set_securebits(&self, bits: u32) -> SysResult<()> {
        prctl(libc::PR_SET_SECUREBITS, c_ulong::from(bits))
    }

    fn clear_ambient_caps(&self) -> SysResult<()> {
        // SAFETY: integer-only prctl.
        let ret = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
            )
        };
        check_int(ret).map(drop)
    }

    fn drop_bounding_cap(&self, cap: u32) -> SysResult<()> {
        prctl(libc::PR_CAPBSET_DROP, c_ulong::from(cap))
    }

    fn clear_cap_sets(&self) -> SysResult<()> {
        let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
        let data = [CapData::default(); 2];
        // SAFETY: header and two data structs as capset(2) expects for version 3.
        check(unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) }).map(drop)
    }

    fn set_no_new_privs(&self) -> SysResult<()> {
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
    }

    fn landlock_abi(&self) -> Option<i32> {
        crate::landlock_rules::landlock_abi()
    }

    fn pin_landlock_ruleset(
        &self,
        ruleset: RulesetCreated,
        anchor: RawFd,
    ) -> SysResult<(RulesetCreated, Option<RawFd>)> {
        // `RulesetCreated` hides its fd. Its clone is made with F_DUPFD_CLOEXEC from 3,
        // i.e. on the lowest free fd >= 3; free fds below PINNED_MIN_FD are occupied by
        // placeholders first, so in this single-threaded process the clone lands exactly
        // on the fd probed here.
        let mut placeholders = Vec::new();
        let expected = loop {
            let fd = match self.dup_at_least(anchor, 3) {
                Ok(fd) => fd,
                Err(e) => {
                    self.close_all(&placeholders);
                    return Err(e);
                }
            };
            if fd >= PINNED_MIN_FD {
                let _ = self.close(fd);
                break fd;
            }
            placeholders.push(fd);
        };
        let clone = ruleset.try_clone();
        self.close_all(&placeholders);
        let clone = clone.map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EMFILE)))?;
        drop(ruleset);
        Ok((clone, is_open(expected).then_some(expected)))
    }

    fn landlock_add_path_rule(
        &self,
        ruleset: RulesetCreated,
        fd: RawFd,
        access: BitFlags<AccessFs>,
    ) -> SysResult<RulesetCreated> {
        // SAFETY: the caller keeps `fd` open for the duration of this call.
        let parent = unsafe { BorrowedFd::borrow_raw(fd) };
        ruleset.add_rule(PathBeneath::new(parent, access)).map_err(|e| errno_of(&e))
    }

    fn landlock_restrict_self(&self, ruleset: RulesetCreated) -> SysResult<RulesetStatus> {
        ruleset.restrict_self().map(|status| status.ruleset).map_err(|e| errno_of(&e))
    }

    fn install_seccomp(&self, program: &[libc::sock_filter]) -> SysResult<()> {
        let len = u16::try_from(program.len()).map_err(|_| Errno::EINVAL)?;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let prog = libc::sock_fprog { len, filter: program.as_ptr().cast_mut() };
        // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies it.
        let ret = unsafe {
            libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0u32, &prog as *const libc::sock_fprog)
        };
        check(ret).map(drop)
    }

    fn execve(&self, path: &CStr, argv: &[CString], envp: &[CString]) -> SysResult<()> {
        let argv_ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).chain([ptr::null()]).collect();
        let envp_ptrs: Vec<*const c_char> = envp.iter().map(|e| e.as_ptr()).chain([ptr::null()]).collect();
        // SAFETY: NULL-terminated arrays of NUL-terminated strings that outlive the call.
        unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
        Err(Errno::last())
    }

    fn exit(&self, code: i32) -> ! {
        // SAFETY: _exit skips atexit handlers and stdio flushing, as a forked child must.
        unsafe { libc::_exit(code) }
    }
}

/// Highest signal number on Linux (`_NSIG`).
const MAX_SIGNAL: c_int = 64;

/// The kernel's `sigset_t`: one bit per signal 1..=64 (glibc's is 128 bytes).
type KernelSigset = u64;

/// The kernel's `struct sigaction` for `rt_sigaction` on x86_64 (and the other 64-bit
/// architectures with `SA_RESTORER`); glibc's differs in layout.
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: c_ulong,
    restorer: usize,
    mask: KernelSigset,
}

/// `struct open_how` (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// The ruleset is pinned above the plugin's fds 0..=3.
const PINNED_MIN_FD: RawFd = crate::plan::CHANNEL_FD + 1;

impl LinuxSys {
    fn close_all(&self, fds: &[RawFd]) {
        for fd in fds {
            let _ = self.close(*fd);
        }
    }
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn set_interface_up(sock: RawFd, name: &[u8]) -> SysResult<()> {
    // SAFETY: an all-zero ifreq is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(Errno::ENAMETOOLONG);
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name) {
        *dst = *src as c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the flags member of a valid ifreq.
    check_int(unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req as *mut libc::ifreq) })?;
    // SAFETY: after SIOCGIFFLAGS the flags member is the initialised union field.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads a valid ifreq.
    check_int(unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &mut req as *mut libc::ifreq) }).map(drop)
}
