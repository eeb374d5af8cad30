//! The child's plan: everything the code between clone and execve needs, prepared
//! by the parent (the launcher) before clone so the child does no path resolution,
//! no policy logic and no heavy allocation.
//!
//! Host paths the child must bind are passed as fds prepared by the parent (resolved
//! there without following symlinks out of their tree, then detached as mount trees
//! with [`crate::mount_source::detached_tree`]), so the child never walks a host path
//! by name and needs no search permission on host directories.

use std::ffi::CString;
use std::os::fd::RawFd;

/// One step of building the new root, executed in order beneath the new root mount.
/// Paths (`at`) are absolute paths *inside* the sandbox.
#[derive(Debug)]
pub enum RootOp {
    /// Create a directory (and missing parents) with mode 0755.
    Dir { at: CString },
    /// Create a symlink `at -> target` (recreates host symlinks such as `/lib64 -> usr/lib64`).
    Symlink { at: CString, target: CString },
    /// Bind-mount the object behind `fd` at `at`, creating the mount point as a file or
    /// directory to match; nosuid,nodev (+ro if `readonly`, +noexec unless `allow_exec`).
    /// `fd` must be a detached mount tree from [`crate::mount_source::detached_tree`]:
    /// a plain `O_PATH` fd names a mount of the parent's namespace and cannot be bound
    /// from the child's (`EINVAL`).
    Bind { fd: RawFd, at: CString, readonly: bool, is_dir: bool, allow_exec: bool },
    /// Mount a private tmpfs, nosuid,nodev,noexec, with a size limit in bytes.
    Tmpfs { at: CString, size_bytes: u64, mode: u32 },
    /// Mount a fresh procfs (nosuid,nodev,noexec, `hidepid`/`subset=pid` when supported).
    Proc { at: CString },
    /// A minimal /dev: tmpfs + binds of null, zero, full, random, urandom from `host_dev_fds`
    /// (detached mount trees, as for `Bind`) and the `fd`, `stdin`, `stdout`, `stderr` symlinks.
    Dev { at: CString, host_dev_fds: Vec<(CString, RawFd)> },
    /// Write a small read-only file into the new root (e.g. the embedded Python SDK).
    WriteFile { at: CString, contents: &'static [u8] },
}

/// One resource limit, as numbers ready for `setrlimit`.
#[derive(Debug, Clone, Copy)]
pub struct Rlimit {
    /// A `libc::RLIMIT_*` constant.
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

/// What the child executes at the end.
#[derive(Debug)]
pub struct ExecPlan {
    /// Path inside the sandbox of the binary to execve.
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// Working directory inside the sandbox.
    pub cwd: CString,
}

/// Landlock state prepared by the parent.
pub struct LandlockPlan {
    /// Ruleset already created and filled with rules for host-backed paths.
    pub ruleset: landlock::RulesetCreated,
    /// Rules for mounts the child itself creates (tmpfs, proc, dev), added after the
    /// mounts exist: (path inside, access).
    pub inside_rules: Vec<(CString, policy_access::Access)>,
    /// Whether Landlock must be fully enforced (a partial result is then a setup failure).
    pub require_full: bool,
}

/// Access classes for rules the child adds itself; mirrors `wf_policy::spec::FsAccess`
/// without making the child depend on the policy crate.
pub mod policy_access {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Access {
        Read,
        ReadExec,
        ReadWrite,
    }
}

/// The fds the child keeps; everything else >= 3 is closed before execve.
#[derive(Debug, Clone, Copy)]
pub struct ChildFds {
    /// Read end of the sync pipe: the child blocks on it until the parent has written
    /// the uid/gid maps and placed it in its cgroups (one byte = go, EOF = abort).
    pub sync_read: RawFd,
    /// Write end of the error pipe (O_CLOEXEC): a setup failure is written here as a
    /// [`crate::report::SetupFailure`]; a successful execve closes it (EOF = success).
    pub error_write: RawFd,
    /// The plugin's event channel; dup2'ed to [`CHANNEL_FD`] before exec.
    pub channel: RawFd,
    /// stdout/stderr for the plugin (pipes to the supervisor); stdin becomes /dev/null.
    pub stdout: RawFd,
    pub stderr: RawFd,
}

/// The documented fd number of the plugin's event channel inside the sandbox.
pub const CHANNEL_FD: RawFd = 3;

/// Everything the child does, in DESIGN.md §3 order.
pub struct ChildPlan {
    pub fds: ChildFds,
    /// `tasks` files of the instance's cgroup v1 hierarchies, opened for writing by the
    /// parent (`O_CLOEXEC`); the child moves itself into each right after release (see
    /// `cgroup_join`). Empty on pure cgroup v2, where `clone3(CLONE_INTO_CGROUP)` is used.
    pub cgroup_join_fds: Vec<RawFd>,
    /// Size of the tmpfs used as the new root before it is remounted read-only.
    pub root_tmpfs_bytes: u64,
    pub root_ops: Vec<RootOp>,
    pub hostname: CString,
    pub rlimits: Vec<Rlimit>,
    /// `None` only when the policy let Landlock degrade and the host lacks it.
    pub landlock: Option<LandlockPlan>,
    /// Compiled filter (prefix + allowlist), installed last. `None` only when degraded.
    pub seccomp: Option<Vec<libc::sock_filter>>,
    pub exec: ExecPlan,
}
