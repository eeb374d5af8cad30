//! `wf-sandbox-child`: what runs between `clone` and `execve` inside the new
//! namespaces, plus the parent-side preparation it needs.
//!
//! # Parent side (before clone, single-threaded launcher)
//! - [`mount_source::detached_tree`] for every [`plan::RootOp::Bind`] source and every
//!   `/dev` node: the child attaches detached trees; it cannot bind plain `O_PATH` fds
//!   from the parent's mount namespace. Keep those fds open until the child has exec'd.
//! - [`landlock_rules::build_ruleset`] (rules on host objects, `require_full` = hard
//!   requirement) and [`landlock_rules::landlock_abi`] for the report.
//! - [`seccomp::compile`] the spec's allowlist, [`seccomp::program_hash`] for the report.
//! - Every fd in [`plan::ChildFds`] is inherited; `error_write` should be `O_CLOEXEC`
//!   (the child also sets it), and the parent's own pipe ends must be closed in the child
//!   or be `O_CLOEXEC` (all fds >= 4 except the error pipe and the Landlock ruleset are
//!   closed before exec anyway). The child's copy of the error pipe's READ end must be
//!   closed before [`run_child`]: after its credential change the child re-arms
//!   `PR_SET_PDEATHSIG` and takes a write end without readers to mean the parent died
//!   (it then exits with [`setup::EXIT_PARENT_GONE`]).
//! - Signals may be blocked or ignored in the parent: the child unblocks all and
//!   restores every default disposition first.
//! - `clone(CLONE_NEWUSER|NEWPID|NEWNS|NEWNET|NEWIPC|NEWUTS)`, then in the child call
//!   [`run_child`]`(plan, &sys::LinuxSys)`. In the parent: write `uid_map` (`0 <uid> 1`),
//!   `setgroups` (`deny`), `gid_map`, place the child in its cgroups, write one byte to
//!   the sync pipe (or close it to abort: the child exits with
//!   [`setup::EXIT_NOT_RELEASED`]), then read the error pipe: EOF means `execve`
//!   succeeded; otherwise [`report::decode`] the [`report::SetupFailure`].
//!
//! # Child side
//! [`run_child`] runs [`setup`]'s ordered sequence; every privileged operation goes
//! through the [`sys::Sys`] seam. Requirements on the host: Linux >= 5.12 (`openat2`,
//! `mount_setattr`, `move_mount`, `close_range`); Landlock and seccomp as the policy asks.
//! The root tmpfs is mounted on `/tmp` of the child's private mount namespace, and host
//! `/proc` must be mounted there (mount targets are passed as `/proc/self/fd/N`).
//!
//! Securebits: the child locks NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE and
//! KEEP_CAPS (off) before dropping capabilities.

pub mod capabilities;
pub mod cgroup_join;
pub mod fds;
pub mod handover;
pub mod landlock_child;
pub mod landlock_rules;
pub mod mount_source;
pub mod mounts;
pub mod namespaces;
pub mod plan;
pub mod report;
pub mod rlimits;
pub mod seccomp;
pub mod setup;
pub mod startup;
mod step_error;
pub mod sys;
pub mod syscalls;

#[cfg(test)]
mod bpf_vm;

pub use setup::run_child;
