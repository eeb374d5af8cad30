//! A recording [`Sys`] for unit tests: every call is logged (fds translated back to
//! the paths they were opened for), nothing touches the kernel, and any call can be
//! made to fail with a chosen errno.

use super::{Sys, SysResult};
use landlock::{AccessFs, BitFlags, RulesetCreated, RulesetStatus};
use nix::errno::Errno;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

/// One recorded call. Paths are the logical paths the fake tracks for its fds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    ResetSignals,
    ParentDeathSignal(i32),
    Dumpable(bool),
    ReadByte(RawFd),
    PipeReaderGone(RawFd),
    Write {
        fd: RawFd,
        bytes: Vec<u8>,
    },
    Setresgid(u32),
    Setresuid(u32),
    Unshare(i32),
    /// `via_fd`: the target was given as `/proc/self/fd/N` (shown as N's path).
    Mount {
        source: Option<String>,
        target: String,
        via_fd: bool,
        fstype: Option<String>,
        flags: u64,
        data: Option<String>,
    },
    OpenAt {
        path: String,
        flags: i32,
        mode: u32,
    },
    OpenInRoot {
        path: String,
        flags: i32,
    },
    MkdirAt {
        path: String,
        mode: u32,
    },
    SymlinkAt {
        path: String,
        target: String,
    },
    SetMountAttrs {
        tree: RawFd,
        attrs: u64,
    },
    MoveMount {
        tree: RawFd,
        target: String,
    },
    Fchdir(String),
    Chdir(String),
    PivotRoot(String, String),
    Umount2(String, i32),
    IsDirectory(String),
    Sethostname(String),
    LoopbackUp,
    Setrlimit {
        resource: i32,
        soft: u64,
        hard: u64,
    },
    Setsid,
    DupAtLeast {
        fd: RawFd,
        min: RawFd,
    },
    Dup2 {
        old: RawFd,
        new: RawFd,
    },
    SetCloexec(RawFd),
    Close(RawFd),
    CloseRange {
        first: u32,
        last: u32,
    },
    Securebits(u32),
    ClearAmbient,
    DropBounding(u32),
    ClearCapSets,
    NoNewPrivs,
    PinRuleset {
        anchor: RawFd,
    },
    LandlockAddRule {
        path: String,
        access: BitFlags<AccessFs>,
    },
    LandlockRestrict,
    InstallSeccomp {
        len: usize,
    },
    Execve {
        path: String,
        argv: Vec<String>,
        envp: Vec<String>,
    },
}

impl Call {
    /// Short name of the call kind, for order assertions.
    pub fn kind(&self) -> &'static str {
        match self {
            Call::ResetSignals => "reset_signals",
            Call::ParentDeathSignal(_) => "pdeathsig",
            Call::Dumpable(_) => "dumpable",
            Call::ReadByte(_) => "read_byte",
            Call::PipeReaderGone(_) => "pipe_reader_gone",
            Call::Write { .. } => "write",
            Call::Setresgid(_) => "setresgid",
            Call::Setresuid(_) => "setresuid",
            Call::Unshare(_) => "unshare",
            Call::Mount { .. } => "mount",
            Call::OpenAt { .. } => "open_at",
            Call::OpenInRoot { .. } => "open_in_root",
            Call::MkdirAt { .. } => "mkdir_at",
            Call::SymlinkAt { .. } => "symlink_at",
            Call::SetMountAttrs { .. } => "set_mount_attrs",
            Call::MoveMount { .. } => "move_mount",
            Call::Fchdir(_) => "fchdir",
            Call::Chdir(_) => "chdir",
            Call::PivotRoot(..) => "pivot_root",
            Call::Umount2(..) => "umount2",
            Call::IsDirectory(_) => "is_directory",
            Call::Sethostname(_) => "sethostname",
            Call::LoopbackUp => "loopback_up",
            Call::Setrlimit { .. } => "setrlimit",
            Call::Setsid => "setsid",
            Call::DupAtLeast { .. } => "dup_at_least",
            Call::Dup2 { .. } => "dup2",
            Call::SetCloexec(_) => "set_cloexec",
            Call::Close(_) => "close",
            Call::CloseRange { .. } => "close_range",
            Call::Securebits(_) => "securebits",
            Call::ClearAmbient => "clear_ambient",
            Call::DropBounding(_) => "drop_bounding",
            Call::ClearCapSets => "clear_cap_sets",
            Call::NoNewPrivs => "no_new_privs",
            Call::PinRuleset { .. } => "pin_ruleset",
            Call::LandlockAddRule { .. } => "landlock_add_rule",
            Call::LandlockRestrict => "landlock_restrict",
            Call::InstallSeccomp { .. } => "install_seccomp",
            Call::Execve { .. } => "execve",
        }
    }
}

type FailRule = Box<dyn Fn(&Call) -> Option<Errno>>;

/// The exit code `FakeSys::exit` panics with, for tests of `run_child`.
#[derive(Debug, PartialEq, Eq)]
pub struct FakeExit(pub i32);

pub struct FakeSys {
    calls: RefCell<Vec<Call>>,
    paths: RefCell<HashMap<RawFd, String>>,
    next_fd: Cell<RawFd>,
    fail: RefCell<Vec<FailRule>>,
    /// What the release read returns.
    pub release: Cell<Option<u8>>,
    /// What `pipe_reader_gone` answers (true: the parent died).
    pub parent_gone: Cell<bool>,
    /// Bounding caps above this answer EINVAL (the kernel's last cap).
    pub last_cap: u32,
    /// Paths `is_directory` reports as files.
    pub files: RefCell<Vec<String>>,
    /// What `landlock_restrict_self` reports.
    pub landlock_status: Cell<bool>,
    pub abi: Option<i32>,
    /// The fd `pin_landlock_ruleset` reports.
    pub pinned_fd: Option<RawFd>,
}

impl Default for FakeSys {
    fn default() -> Self {
        let paths = HashMap::from([(libc::AT_FDCWD, String::new())]);
        FakeSys {
            calls: RefCell::new(Vec::new()),
            paths: RefCell::new(paths),
            next_fd: Cell::new(100),
            fail: RefCell::new(Vec::new()),
            release: Cell::new(Some(1)),
            parent_gone: Cell::new(false),
            last_cap: 40,
            files: RefCell::new(Vec::new()),
            landlock_status: Cell::new(true),
            abi: Some(7),
            pinned_fd: Some(60),
        }
    }
}

fn s(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

impl FakeSys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make every call for which `rule` returns `Some` fail with that errno.
    pub fn fail_when(&self, rule: impl Fn(&Call) -> Option<Errno> + 'static) {
        self.fail.borrow_mut().push(Box::new(rule));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.calls.borrow().iter().map(Call::kind).collect()
    }

    /// The logical path the fake associates with `fd`.
    pub fn path_of(&self, fd: RawFd) -> String {
        self.paths.borrow().get(&fd).cloned().unwrap_or_else(|| format!("fd:{fd}"))
    }

    fn record(&self, call: Call) -> SysResult<()> {
        let verdict = self.fail.borrow().iter().find_map(|rule| rule(&call));
        self.calls.borrow_mut().push(call);
        verdict.map_or(Ok(()), Err)
    }

    fn new_fd(&self, path: String) -> RawFd {
        let fd = self.next_fd.get();
        self.next_fd.set(fd + 1);
        self.paths.borrow_mut().insert(fd, path);
        fd
    }

    fn join(&self, dirfd: RawFd, name: &CStr) -> String {
        let name = s(name);
        if name.starts_with('/') {
            return name;
        }
        let base = self.path_of(dirfd);
        match name.as_str() {
            "" | "." => base,
            _ => format!("{}/{}", base.trim_end_matches('/'), name),
        }
    }

    /// `/proc/self/fd/N` targets are shown as the path behind N (and flagged).
    fn target_path(&self, target: &CStr) -> (String, bool) {
        let t = s(target);
        match t.strip_prefix("/proc/self/fd/").and_then(|n| n.parse::<RawFd>().ok()) {
            Some(fd) => (self.path_of(fd), true),
            None => (t, false),
        }
    }
}

impl Sys for FakeSys {
    fn reset_signals(&self) -> SysResult<()> {
        self.record(Call::ResetSignals)
    }
    fn set_parent_death_signal(&self, signal: i32) -> SysResult<()> {
        self.record(Call::ParentDeathSignal(signal))
    }
    fn set_dumpable(&self, dumpable: bool) -> SysResult<()> {
        self.record(Call::Dumpable(dumpable))
    }
    fn read_byte(&self, fd: RawFd) -> SysResult<Option<u8>> {
        self.record(Call::ReadByte(fd)).map(|()| self.release.get())
    }
    fn pipe_reader_gone(&self, fd: RawFd) -> SysResult<bool> {
        self.record(Call::PipeReaderGone(fd)).map(|()| self.parent_gone.get())
    }
    fn write_all(&self, fd: RawFd, bytes: &[u8]) -> SysResult<()> {
        self.record(Call::Write { fd, bytes: bytes.to_vec() })
    }
    fn setresgid(&self, gid: u32) -> SysResult<()> {
        self.record(Call::Setresgid(gid))
    }
    fn setresuid(&self, uid: u32) -> SysResult<()> {
        self.record(Call::Setresuid(uid))
    }
    fn unshare(&self, flags: i32) -> SysResult<()> {
        self.record(Call::Unshare(flags))
    }
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: u64,
        data: Option<&CStr>,
    ) -> SysResult<()> {
        let (target, via_fd) = self.target_path(target);
        self.record(Call::Mount {
            source: source.map(s),
            target,
            via_fd,
            fstype: fstype.map(s),
            flags,
            data: data.map(s),
        })
    }
    fn open_at(&self, dirfd: RawFd, path: &CStr, flags: i32, mode: u32) -> SysResult<RawFd> {
        let full = self.join(dirfd, path);
        self.record(Call::OpenAt { path: full.clone(), flags, mode })?;
        Ok(self.new_fd(full))
    }
    fn open_in_root(&self, root: RawFd, path: &CStr, flags: i32) -> SysResult<RawFd> {
        let full = self.join(root, &CString::new(s(path).trim_start_matches('/')).unwrap_or_default());
        self.record(Call::OpenInRoot { path: full.clone(), flags })?;
        Ok(self.new_fd(full))
    }
    fn mkdir_at(&self, dirfd: RawFd, name: &CStr, mode: u32) -> SysResult<()> {
        self.record(Call::MkdirAt { path: self.join(dirfd, name), mode })
    }
    fn symlink_at(&self, target: &CStr, dirfd: RawFd, name: &CStr) -> SysResult<()> {
        self.record(Call::SymlinkAt { path: self.join(dirfd, name), target: s(target) })
    }
    fn set_mount_attrs(&self, tree: RawFd, attr_set: u64) -> SysResult<()> {
        self.record(Call::SetMountAttrs { tree, attrs: attr_set })
    }
    fn move_mount(&self, tree: RawFd, target: RawFd) -> SysResult<()> {
        self.record(Call::MoveMount { tree, target: self.path_of(target) })
    }
    fn fchdir(&self, fd: RawFd) -> SysResult<()> {
        self.record(Call::Fchdir(self.path_of(fd)))
    }
    fn chdir(&self, path: &CStr) -> SysResult<()> {
        self.record(Call::Chdir(s(path)))
    }
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult<()> {
        self.record(Call::PivotRoot(s(new_root), s(put_old)))
    }
    fn umount2(&self, target: &CStr, flags: i32) -> SysResult<()> {
        self.record(Call::Umount2(s(target), flags))
    }
    fn is_directory(&self, fd: RawFd) -> SysResult<bool> {
        let path = self.path_of(fd);
        let is_file = self.files.borrow().contains(&path);
        self.record(Call::IsDirectory(path)).map(|()| !is_file)
    }
    fn sethostname(&self, name: &CStr) -> SysResult<()> {
        self.record(Call::Sethostname(s(name)))
    }
    fn bring_loopback_up(&self) -> SysResult<()> {
        self.record(Call::LoopbackUp)
    }
    fn setrlimit(&self, resource: i32, soft: u64, hard: u64) -> SysResult<()> {
        self.record(Call::Setrlimit { resource, soft, hard })
    }
    fn setsid(&self) -> SysResult<()> {
        self.record(Call::Setsid)
    }
    fn dup_at_least(&self, fd: RawFd, min: RawFd) -> SysResult<RawFd> {
        self.record(Call::DupAtLeast { fd, min })?;
        let path = self.path_of(fd);
        Ok(self.new_fd(path))
    }
    fn dup2(&self, old: RawFd, new: RawFd) -> SysResult<()> {
        self.record(Call::Dup2 { old, new })
    }
    fn set_cloexec(&self, fd: RawFd) -> SysResult<()> {
        self.record(Call::SetCloexec(fd))
    }
    fn close(&self, fd: RawFd) -> SysResult<()> {
        self.record(Call::Close(fd))
    }
    fn close_range(&self, first: u32, last: u32) -> SysResult<()> {
        self.record(Call::CloseRange { first, last })
    }
    fn set_securebits(&self, bits: u32) -> SysResult<()> {
        self.record(Call::Securebits(bits))
    }
    fn clear_ambient_caps(&self) -> SysResult<()> {
        self.record(Call::ClearAmbient)
    }
    fn drop_bounding_cap(&self, cap: u32) -> SysResult<()> {
        if cap > self.last_cap {
            self.record(Call::DropBounding(cap))?;
            return Err(Errno::EINVAL);
        }
        self.record(Call::DropBounding(cap))
    }
    fn clear_cap_sets(&self) -> SysResult<()> {
        self.record(Call::ClearCapSets)
    }
    fn set_no_new_privs(&self) -> SysResult<()> {
        self.record(Call::NoNewPrivs)
    }
    fn landlock_abi(&self) -> Option<i32> {
        self.abi
    }
    fn pin_landlock_ruleset(
        &self,
        ruleset: RulesetCreated,
        anchor: RawFd,
    ) -> SysResult<(RulesetCreated, Option<RawFd>)> {
        self.record(Call::PinRuleset { anchor }).map(|()| (ruleset, self.pinned_fd))
    }
    fn landlock_add_path_rule(
        &self,
        ruleset: RulesetCreated,
        fd: RawFd,
        access: BitFlags<AccessFs>,
    ) -> SysResult<RulesetCreated> {
        self.record(Call::LandlockAddRule { path: self.path_of(fd), access }).map(|()| ruleset)
    }
    fn landlock_restrict_self(&self, ruleset: RulesetCreated) -> SysResult<RulesetStatus> {
        drop(ruleset);
        self.record(Call::LandlockRestrict)?;
        Ok(if self.landlock_status.get() { RulesetStatus::FullyEnforced } else { RulesetStatus::PartiallyEnforced })
    }
    fn install_seccomp(&self, program: &[libc::sock_filter]) -> SysResult<()> {
        self.record(Call::InstallSeccomp { len: program.len() })
    }
    fn execve(&self, path: &CStr, argv: &[CString], envp: &[CString]) -> SysResult<()> {
        self.record(Call::Execve {
            path: s(path),
            argv: argv.iter().map(|a| s(a)).collect(),
            envp: envp.iter().map(|e| s(e)).collect(),
        })
    }
    fn exit(&self, code: i32) -> ! {
        std::panic::panic_any(FakeExit(code))
    }
}
