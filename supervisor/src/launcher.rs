//! Cloning the sandboxed child and releasing it once it is mapped and placed.
//!
//! Must run in a single-threaded process (the one-shot `run` process, or the
//! launcher forked before any async runtime starts): the child is created with a
//! fork-like `clone` and runs Rust code before `execve`.
//!
//! Handshake: the child blocks on the sync pipe; the parent writes the uid/gid maps,
//! then writes one byte. The child reports a setup
//! failure on the `O_CLOEXEC` error pipe; EOF on that pipe means `execve` succeeded.

use nix::unistd::Pid;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use wf_sandbox_child::plan::{ChildFds, ChildPlan};
use wf_sandbox_child::report::SetupFailure;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("launch step {step} failed: {source}")]
    Os { step: &'static str, source: io::Error },
    #[error("writing {file} for pid {pid}: {source}")]
    IdMap { file: &'static str, pid: i32, source: io::Error },
    #[error("{} (errno {}){}", std::io::Error::from_raw_os_error(.0.errno), .0.errno, detail_suffix(&.0.detail))]
    Setup(SetupFailure),
    #[error("the child's failure report was unreadable: {0}")]
    BadReport(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" [{detail}]")
    }
}

impl LaunchError {
    /// The failing step's name, for the report.
    pub fn step(&self) -> String {
        match self {
            LaunchError::Os { step, .. } => (*step).to_owned(),
            LaunchError::IdMap { .. } => "uid_gid_map".to_owned(),
            LaunchError::Setup(f) => f.step.to_string(),
            LaunchError::BadReport(_) => "setup_report".to_owned(),
        }
    }

    /// The errno of the failure, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LaunchError::Os { source, .. } | LaunchError::IdMap { source, .. } => source.raw_os_error(),
            LaunchError::Setup(f) => Some(f.errno),
            _ => None,
        }
    }
}

/// The uid and gid that root inside the sandbox maps to outside.
#[derive(Debug, Clone, Copy)]
pub struct IdMap {
    pub outside_uid: u32,
    pub outside_gid: u32,
}

/// A running sandboxed child.
#[derive(Debug)]
pub struct Launched {
    pub pid: Pid,
    pub pidfd: OwnedFd,
}

/// The parent's ends of the plugin's stdio and channel.
pub struct ChildStreams {
    /// Child side of each, given to the child and closed in the parent after clone.
    pub child_channel: OwnedFd,
    pub child_stdout: OwnedFd,
    pub child_stderr: OwnedFd,
}

const CLONE_FLAGS: i32 = libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_PIDFD;

fn os(step: &'static str) -> impl FnOnce(io::Error) -> LaunchError {
    move |source| LaunchError::Os { step, source }
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded; both fds are new and owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Clone the child into fresh namespaces, map it, release it, and wait until it has
/// either executed the entry point or reported a set-up failure.
///
/// cgroup placement never migrates another process (that takes the kernel's global
/// threadgroup lock and waits an RCU grace period, 5-20 ms): with `clone_into` the child
/// is born in that v2 directory (`clone3(CLONE_INTO_CGROUP)`), and on cgroup v1 it moves
/// itself through `plan.cgroup_join_fds` before doing anything else.
pub fn spawn(
    mut plan: ChildPlan,
    streams: ChildStreams,
    ids: IdMap,
    clone_into: Option<BorrowedFd<'_>>,
) -> Result<Launched, LaunchError> {
    let (sync_read, sync_write) = pipe_cloexec().map_err(os("sync pipe"))?;
    let (error_read, error_write) = pipe_cloexec().map_err(os("error pipe"))?;
    plan.fds = ChildFds {
        sync_read: sync_read.as_raw_fd(),
        error_write: error_write.as_raw_fd(),
        channel: streams.child_channel.as_raw_fd(),
        stdout: streams.child_stdout.as_raw_fd(),
        stderr: streams.child_stderr.as_raw_fd(),
    };
    let parent_ends = [sync_write.as_raw_fd(), error_read.as_raw_fd()];

    let mut pidfd: libc::c_int = -1;
    let rc = match clone_into {
        Some(dir) => clone3_into_cgroup(dir, &mut pidfd),
        None => clone_with_pidfd(&mut pidfd),
    };
    if rc < 0 {
        return Err(os("clone")(io::Error::last_os_error()));
    }
    if rc == 0 {
        close_in_child(&parent_ends);
        wf_sandbox_child::run_child(plan, &wf_sandbox_child::sys::LinuxSys);
    }
    let pid = Pid::from_raw(rc as i32);
    // SAFETY: CLONE_PIDFD returned a new fd owned by us.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(plan);
    drop(streams);
    drop(sync_read);
    drop(error_write);
    let launched = Launched { pid, pidfd };

    if let Err(e) = release(pid, ids, sync_write) {
        kill_and_reap(&launched);
        return Err(e);
    }
    match read_failure(error_read) {
        Ok(None) => Ok(launched),
        Ok(Some(failure)) => {
            kill_and_reap(&launched);
            Err(LaunchError::Setup(failure))
        }
        Err(e) => {
            kill_and_reap(&launched);
            Err(e)
        }
    }
}

/// A fork-like `clone` (NULL stack) into the new namespaces; CLONE_PIDFD stores the
/// pidfd through the parent_tid pointer.
fn clone_with_pidfd(pidfd: &mut libc::c_int) -> libc::c_long {
    // SAFETY: called in a single-threaded process; `pidfd` outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            (CLONE_FLAGS | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            pidfd as *mut libc::c_int,
            std::ptr::null_mut::<libc::c_int>(),
            0usize,
        )
    }
}

/// `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// A fork-like `clone3` (no stack) that creates the child directly in `cgroup_dir`.
fn clone3_into_cgroup(cgroup_dir: BorrowedFd<'_>, pidfd: &mut libc::c_int) -> libc::c_long {
    let args = CloneArgs {
        flags: CLONE_FLAGS as u64 | CLONE_INTO_CGROUP,
        pidfd: pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: called in a single-threaded process; `args` and `pidfd` outlive the call.
    unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) }
}

fn close_in_child(fds: &[RawFd]) {
    for fd in fds {
        // SAFETY: closing the parent's ends in the child's copy of the fd table.
        unsafe { libc::close(*fd) };
    }
}

fn release(pid: Pid, ids: IdMap, sync_write: OwnedFd) -> Result<(), LaunchError> {
    write_id_maps(pid, ids)?;
    let mut go = std::fs::File::from(sync_write);
    go.write_all(&[1]).map_err(os("release child"))?;
    Ok(())
}

/// uid 0 and gid 0 inside map to one unprivileged id outside; `setgroups` is denied
/// so the child can never drop supplementary groups to gain access.
pub fn write_id_maps(pid: Pid, ids: IdMap) -> Result<(), LaunchError> {
    let raw = pid.as_raw();
    let write = |file: &'static str, content: String| {
        std::fs::write(format!("/proc/{raw}/{file}"), content).map_err(|source| LaunchError::IdMap {
            file,
            pid: raw,
            source,
        })
    };
    write("uid_map", format!("0 {} 1\n", ids.outside_uid))?;
    write("setgroups", "deny\n".to_owned())?;
    write("gid_map", format!("0 {} 1\n", ids.outside_gid))
}

/// Read the child's failure report; `None` means the pipe closed on exec (success).
fn read_failure(error_read: OwnedFd) -> Result<Option<SetupFailure>, LaunchError> {
    let mut buf = Vec::new();
    let mut file = std::fs::File::from(error_read);
    Read::by_ref(&mut file).take(4096).read_to_end(&mut buf).map_err(os("read setup report"))?;
    if buf.is_empty() {
        return Ok(None);
    }
    wf_sandbox_child::report::decode(&buf).map(Some).map_err(|e| LaunchError::BadReport(e.to_string()))
}

/// SIGKILL the child through its pidfd and reap it.
pub fn kill_and_reap(child: &Launched) {
    // SAFETY: pidfd_send_signal on our own child's pidfd.
    unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, child.pidfd.as_raw_fd(), libc::SIGKILL, 0usize, 0u32);
    }
    let _ = nix::sys::wait::waitpid(child.pid, None);
}
