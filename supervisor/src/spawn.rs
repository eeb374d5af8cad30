//! Cloning a prepared sandbox and releasing it: the plugin's channel and stdio, its
//! exec plan, the child plan, the clone itself, and the record of what now holds.
//!
//! Must run in a single-threaded process (see `launcher`): the one-shot `run`, or the
//! daemon's launcher.

use crate::child_plan;
use crate::id_lease::{self, IdLease, LEASE_DIR};
use crate::launcher::{self, ChildStreams, IdMap};
use crate::prepare::{PreparedLayers, Stop};
use crate::report::{Enforcement, LayerStatus};
use crate::sandbox_cgroup::SandboxCgroup;
use nix::unistd::Pid;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use wf_policy::spec::SandboxSpec;

/// A running sandbox, seen from the process that cloned it.
#[derive(Debug)]
pub struct SpawnedSandbox {
    /// The plugin's init (PID 1 of its pid namespace), our child.
    pub pid: Pid,
    pub pidfd: OwnedFd,
    /// Our end of the plugin's event channel (a stream socket, `wf-protocol` frames).
    pub channel: OwnedFd,
    /// Read ends of the plugin's stdout and stderr pipes.
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// The sandbox's own outside uid/gid, held until this is dropped: keep it as long
    /// as the sandbox lives.
    pub id_lease: IdLease,
}

/// Clone the child under the prepared layers, into `cgroup` if there is one, and record
/// in `enforced` every layer that now holds. On failure nothing of the child is left
/// running; the cgroup stays the caller's to destroy.
pub fn spawn_prepared(
    spec: &SandboxSpec,
    args: &[String],
    layers: PreparedLayers,
    cgroup: Option<&SandboxCgroup>,
    enforced: &mut Enforcement,
) -> Result<SpawnedSandbox, Stop> {
    let (channel, child_channel) = socketpair().map_err(|e| Stop::setup("channel socketpair", e.raw_os_error(), e))?;
    let (stdout, child_stdout) = pipe().map_err(|e| Stop::setup("stdout pipe", e.raw_os_error(), e))?;
    let (stderr, child_stderr) = pipe().map_err(|e| Stop::setup("stderr pipe", e.raw_os_error(), e))?;
    let max_frame = spec.events.max_event_bytes.value;
    let extra_env = [(wf_protocol::MAX_FRAME_BYTES_ENV.to_owned(), max_frame.to_string())];
    let exec = child_plan::exec_plan(spec, args, &extra_env).map_err(|e| Stop::setup("exec_plan", None, e))?;
    let join_fds = match cgroup {
        Some(cg) => cg.join_fds().map_err(|e| Stop::setup("cgroup_tasks_fds", e.raw_os_error(), e))?,
        None => Vec::new(),
    };
    let PreparedLayers { root, landlock, seccomp, cgroup_status } = layers;
    let (landlock, landlock_detail) = landlock.unzip();
    let (seccomp, seccomp_detail) = seccomp.unzip();
    let (mut plan, root_keepalive) =
        child_plan::build(spec, root, landlock, seccomp, exec, true).map_err(|e| Stop::setup("child_plan", None, e))?;
    plan.cgroup_join_fds = join_fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let seed = format!("{}-{}-{:?}", spec.name, std::process::id(), std::time::Instant::now());
    let id_lease =
        id_lease::lease(spec.identity.outside_uid.value, spec.identity.outside_gid.value, &seed, Path::new(LEASE_DIR))
            .map_err(|e| Stop::setup("outside_identity", None, e))?;
    let ids = IdMap { outside_uid: id_lease.uid, outside_gid: id_lease.gid };
    let streams = ChildStreams { child_channel, child_stdout, child_stderr };
    let clone_into = match cgroup.and_then(SandboxCgroup::clone_into_fd) {
        Some(Ok(fd)) => Some(fd),
        Some(Err(e)) => return Err(Stop::setup("cgroup_dir_fd", e.raw_os_error(), e)),
        None => None,
    };
    let launched = launcher::spawn(plan, streams, ids, clone_into.as_ref().map(|fd| fd.as_fd())).map_err(|e| {
        let step = e.step();
        Stop::setup(&step, e.errno(), e)
    })?;
    drop(join_fds);
    drop(root_keepalive);
    record_enforced(spec, enforced, cgroup_status, landlock_detail, seccomp_detail, &id_lease);
    Ok(SpawnedSandbox { pid: launched.pid, pidfd: launched.pidfd, channel, stdout, stderr, id_lease })
}

fn record_enforced(
    spec: &SandboxSpec,
    enforced: &mut Enforcement,
    cgroup_status: LayerStatus,
    landlock_detail: Option<serde_json::Value>,
    seccomp_detail: Option<serde_json::Value>,
    ids: &IdLease,
) {
    enforced.namespaces = LayerStatus::enforced(serde_json::json!({
        "kinds": ["user", "pid", "mount", "net", "ipc", "uts", "cgroup"],
        "root_inside_is": { "uid": ids.uid, "gid": ids.gid },
    }));
    enforced.filesystem = LayerStatus::enforced(
        serde_json::json!({ "root": "tmpfs, read-only, pivot_root", "mounts": spec.mounts.len() }),
    );
    enforced.capabilities =
        LayerStatus::enforced(serde_json::json!({ "effective": 0, "permitted": 0, "bounding": 0, "ambient": 0 }));
    enforced.no_new_privs = true;
    enforced.cgroups = cgroup_status;
    if let Some(detail) = landlock_detail {
        enforced.landlock = LayerStatus::enforced(detail);
    }
    if let Some(detail) = seccomp_detail {
        enforced.seccomp = LayerStatus::enforced(detail);
    }
    enforced.rlimits = LayerStatus::enforced(serde_json::to_value(&spec.rlimits).unwrap_or_default());
}

/// Send `signal` to a child of ours through its pidfd.
pub fn signal_pidfd(pidfd: RawFd, signal: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal with a null siginfo on a pidfd the caller holds open.
    let rc =
        unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, signal, std::ptr::null::<libc::siginfo_t>(), 0u32) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).map_err(io::Error::from)
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}
