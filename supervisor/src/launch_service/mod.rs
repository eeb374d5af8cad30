//! The daemon's launcher: a single-threaded process, forked from `main` before any
//! async runtime starts, that does every clone for the daemon (DESIGN.md §3).
//!
//! ```text
//! let launcher = launch_service::fork_launcher()?;          // first thing in main()
//! // ... start the runtime; then, from any thread:
//! launcher.send(&Request::Launch { request_id, instance, manifest_json, plugin_dir, policy_json, args })?;
//! let inbound = launcher.recv()?;   // Launched + fds [pidfd, channel, stdout, stderr], or Refused
//! // ... Exited { status } once init ends; Forget to remove the cgroup
//! launcher.shutdown()?;             // or just exit: the launcher kills and removes everything
//! ```
//!
//! The plugins are the launcher's children, so their wait status is trusted and reaped
//! by it; the daemon gets the rest through the fds of `Launched`. Messages are described
//! in [`wire`]; [`transport`] sends and receives them (also on a non-blocking socket).
//!
//! Instance names embed the launcher's pid ([`LauncherHandle::instance_name`]): an orphan
//! sweep removes an instance's cgroup exactly when no live launcher holds it. The
//! launcher sweeps its parent at start, so a daemon killed with SIGKILL leaves nothing
//! behind once it starts again (the plugins themselves die with their launcher, by the
//! parent-death signal set in every sandbox).

mod instances;
mod launch;
mod service;
pub mod transport;
pub mod wire;

pub use instances::MAX_INSTANCES;
pub use launch::spec_hash;
pub use transport::{InboundReply, WireError};
pub use wire::{ErrorCode, Reply, Request, UsageStats, WaitOutcome};

use crate::cgroup::{CgroupLayout, CgroupManager, RealCgroupFs};
use crate::sandbox_cgroup::{self, PARENT_NAME};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// What the launcher needs to know before it is forked.
#[derive(Debug, Clone, Default)]
pub struct LauncherConfig {
    /// The policy's `sandbox.cgroup_parent` (default `wfsandbox` under our own cgroup).
    /// On a pure cgroup v2 host our process moves into a leaf of its own cgroup before
    /// the fork, as the delegation rules require; the parent is then fixed for the
    /// launcher's life (a policy reload that changes it needs a daemon restart there).
    pub cgroup_parent: Option<String>,
}

/// The daemon's side: the socket to the launcher and the launcher's pid.
#[derive(Debug)]
pub struct LauncherHandle {
    sock: OwnedFd,
    pid: Pid,
    cgroup_prepare_error: Option<String>,
}

/// Fork the launcher with the default configuration. See [`fork_launcher_with`].
pub fn fork_launcher() -> io::Result<LauncherHandle> {
    fork_launcher_with(&LauncherConfig::default())
}

/// Fork the launcher. The caller must be single-threaded (checked: an error otherwise),
/// i.e. call this in `main` before any runtime or thread starts.
pub fn fork_launcher_with(config: &LauncherConfig) -> io::Result<LauncherHandle> {
    match thread_count() {
        Some(1) => {}
        n => {
            return Err(io::Error::other(format!(
                "fork_launcher must be called from a single-threaded process (threads: {})",
                n.map_or_else(|| "unknown".to_owned(), |n| n.to_string())
            )))
        }
    }
    let cgroup_prepare_error = prepare_cgroups_before_fork(config.cgroup_parent.as_deref()).err();
    let (daemon_end, launcher_end) = seqpacket_pair()?;
    // SAFETY: the process is single-threaded (checked above), so the child may run Rust code.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        ForkResult::Child => {
            drop(daemon_end);
            close_other_fds(launcher_end.as_raw_fd());
            service::launcher_main(launcher_end, config.clone())
        }
        ForkResult::Parent { child } => {
            drop(launcher_end);
            Ok(LauncherHandle { sock: daemon_end, pid: child, cgroup_prepare_error })
        }
    }
}

impl LauncherHandle {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The socket, to register with a reactor (set it non-blocking first) or to poll.
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Why preparing the cgroup parent before the fork failed, if it did (launches that
    /// need cgroups will then be refused at their `cgroups` step, with the reason).
    pub fn cgroup_prepare_error(&self) -> Option<&str> {
        self.cgroup_prepare_error.as_deref()
    }

    /// A fresh instance name for `plugin` that this launcher accepts; `nonce` must make
    /// it unique among the instances the daemon has not forgotten.
    pub fn instance_name(&self, plugin: &str, nonce: u32) -> String {
        instance_name(plugin, self.pid, nonce)
    }

    /// Send one request (blocking unless the socket was made non-blocking).
    pub fn send(&self, request: &Request) -> Result<(), WireError> {
        transport::send(self.sock.as_fd(), request, &[])
    }

    /// Receive one reply; `None` when the launcher has gone.
    pub fn recv(&self) -> Result<Option<InboundReply>, WireError> {
        transport::recv_reply(self.sock.as_fd())
    }

    /// Close the socket (the launcher kills and removes every instance, then exits) and
    /// reap the launcher. Blocks until it has exited.
    pub fn shutdown(self) -> io::Result<WaitStatus> {
        let pid = self.pid;
        drop(self.sock);
        loop {
            match waitpid(pid, None) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => return other.map_err(io::Error::from),
            }
        }
    }

    /// The socket and pid, for a caller that manages both itself (it must reap the pid).
    pub fn into_parts(self) -> (OwnedFd, Pid) {
        (self.sock, self.pid)
    }
}

/// `<plugin>-<launcher pid>-<nonce as 8 hex digits>`.
pub fn instance_name(plugin: &str, launcher_pid: Pid, nonce: u32) -> String {
    sandbox_cgroup::instance_name(plugin, launcher_pid.as_raw().unsigned_abs(), nonce)
}

/// The `Threads:` line of /proc/self/status.
fn thread_count() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok())
}

pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(io::Error::from)
}

/// Everything the daemon had open except stdio and the launcher's socket: in particular
/// the daemon's own socket end, whose copy here would hide the daemon's exit.
fn close_other_fds(keep: i32) {
    let keep = keep.unsigned_abs();
    // SAFETY: close_range on fds this forked process does not use.
    unsafe {
        if keep > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, keep - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32);
    }
}

fn manager(cgroup_parent: Option<&str>) -> Result<CgroupManager, String> {
    let layout = CgroupLayout::detect().map_err(|e| e.to_string())?;
    CgroupManager::new(layout, cgroup_parent.unwrap_or(PARENT_NAME), Box::new(RealCgroupFs)).map_err(|e| e.to_string())
}

/// On pure v2 with the parent under our own cgroup, the daemon must leave its own cgroup
/// for a leaf before the launcher exists: controllers can only be enabled for the
/// parent once no process of ours sits in our own cgroup.
fn prepare_cgroups_before_fork(cgroup_parent: Option<&str>) -> Result<(), String> {
    if cgroup_parent.is_some_and(|p| p.starts_with('/')) {
        return Ok(());
    }
    let manager = manager(cgroup_parent)?;
    if !matches!(manager.layout(), CgroupLayout::V2 { .. }) {
        return Ok(());
    }
    manager.prepare().map_err(|e| e.to_string())
}

/// Remove what dead launchers (and dead one-shot runs) left under the parent.
fn sweep_orphans(cgroup_parent: Option<&str>) {
    let swept = manager(cgroup_parent).and_then(|m| {
        m.cleanup_orphans_where(|name| sandbox_cgroup::supervisor_of(name).is_some_and(|pid| !process_alive(pid)))
            .map_err(|e| e.to_string())
    });
    match swept {
        Ok(names) if !names.is_empty() => eprintln!("wfsandbox launcher: removed leftover cgroups {names:?}"),
        Ok(_) => {}
        Err(e) => eprintln!("wfsandbox launcher: sweeping leftover cgroups: {e}"),
    }
}

/// At exit: the parent directories, if nothing else uses them.
fn remove_parent_dirs(cgroup_parent: Option<&str>) {
    if let Err(e) = manager(cgroup_parent).and_then(|m| m.remove_parents().map(drop).map_err(|e| e.to_string())) {
        eprintln!("wfsandbox launcher: removing the cgroup parent: {e}");
    }
}

fn process_alive(pid: i32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
}
