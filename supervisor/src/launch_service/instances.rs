//! The instances a launcher holds: their init (pid, pidfd), their cgroup, and how
//! they ended. Every request about an instance is answered here, in bounded time.

use super::launch::{self, LaunchInput, LaunchedSandbox};
use super::wire::{ErrorCode, Reply, UsageStats, WaitOutcome};
use crate::id_lease::IdLease;
use crate::sandbox_cgroup::SandboxCgroup;
use crate::spawn::signal_pidfd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Instances held at once (running, or exited and not yet forgotten).
pub const MAX_INSTANCES: usize = 1024;
/// How long a shutdown waits for killed inits to die before removing cgroups anyway.
const SHUTDOWN_REAP_LIMIT: Duration = Duration::from_secs(5);

struct Instance {
    pid: Pid,
    pidfd: OwnedFd,
    cgroup: Option<SandboxCgroup>,
    exited: Option<WaitOutcome>,
    /// The outside uid/gid, leased until the instance is forgotten.
    _id_lease: IdLease,
}

/// The launcher's instances, by name.
pub struct Instances {
    launcher_pid: i32,
    held: BTreeMap<String, Instance>,
}

/// A reply and the fds to attach to it.
pub type Outgoing = (Reply, Vec<OwnedFd>);

fn error(request_id: u64, instance: &str, code: ErrorCode, message: impl ToString) -> Reply {
    Reply::Error {
        request_id: Some(request_id),
        instance: Some(instance.to_owned()),
        code,
        message: message.to_string(),
    }
}

impl Instances {
    pub fn new(launcher_pid: i32) -> Self {
        Self { launcher_pid, held: BTreeMap::new() }
    }

    pub fn launch(&mut self, request_id: u64, input: &LaunchInput<'_>) -> Outgoing {
        let instance = input.instance;
        if let Err(e) = launch::check_instance_name(instance, self.launcher_pid) {
            return (error(request_id, instance, ErrorCode::InvalidInstance, e), Vec::new());
        }
        if self.held.contains_key(instance) {
            return (error(request_id, instance, ErrorCode::DuplicateInstance, "already held"), Vec::new());
        }
        if self.held.len() >= MAX_INSTANCES {
            let message = format!("{MAX_INSTANCES} instances held; forget exited ones first");
            return (error(request_id, instance, ErrorCode::TooManyInstances, message), Vec::new());
        }
        match launch::launch(input) {
            Ok(launched) => self.hold(request_id, instance, launched),
            Err(stop) => {
                let refused = Reply::Refused {
                    request_id,
                    instance: instance.to_owned(),
                    cause: stop.cause.to_owned(),
                    step: stop.step,
                    errno: stop.errno,
                    message: stop.message,
                };
                (refused, Vec::new())
            }
        }
    }

    fn hold(&mut self, request_id: u64, instance: &str, launched: LaunchedSandbox) -> Outgoing {
        let LaunchedSandbox { spawned, cgroup, plugin, version, spec_sha256, enforced, warnings } = launched;
        let reply = Reply::Launched {
            request_id,
            instance: instance.to_owned(),
            pid: spawned.pid.as_raw(),
            plugin,
            version,
            spec_sha256,
            enforcement: serde_json::to_value(&enforced).unwrap_or_default(),
            warnings,
        };
        // The pidfd is sent as a copy; the launcher keeps its own to signal init.
        let fds = match spawned.pidfd.try_clone() {
            Ok(pidfd_copy) => vec![pidfd_copy, spawned.channel, spawned.stdout, spawned.stderr],
            Err(e) => {
                let _ = signal_pidfd(spawned.pidfd.as_raw_fd(), libc::SIGKILL);
                let _ = waitpid(spawned.pid, None);
                let problems = cgroup.map(SandboxCgroup::destroy).unwrap_or_default();
                let refused = Reply::Refused {
                    request_id,
                    instance: instance.to_owned(),
                    cause: crate::prepare::CAUSE_SETUP_FAILED.to_owned(),
                    step: "dup_pidfd".to_owned(),
                    errno: e.raw_os_error(),
                    message: format!("{e}{}", cleanup_suffix(&problems)),
                };
                return (refused, Vec::new());
            }
        };
        let held =
            Instance { pid: spawned.pid, pidfd: spawned.pidfd, cgroup, exited: None, _id_lease: spawned.id_lease };
        self.held.insert(instance.to_owned(), held);
        (reply, fds)
    }

    /// Undo a launch whose `Launched` could not be delivered: kill, reap, remove.
    pub fn abandon(&mut self, instance: &str) {
        if let Some(held) = self.held.remove(instance) {
            kill_instance(&held);
            if held.exited.is_none() {
                let _ = waitpid(held.pid, None);
            }
            if let Some(cg) = held.cgroup {
                report_problems(instance, &cg.destroy());
            }
        }
    }

    pub fn signal(&self, request_id: u64, instance: &str, signal: i32) -> Reply {
        let Some(held) = self.held.get(instance) else {
            return error(request_id, instance, ErrorCode::UnknownInstance, "no such instance");
        };
        if nix::sys::signal::Signal::try_from(signal).is_err() {
            return error(request_id, instance, ErrorCode::InvalidRequest, format!("{signal} is not a signal"));
        }
        if held.exited.is_some() {
            return error(request_id, instance, ErrorCode::NotRunning, "the plugin's init has exited");
        }
        match signal_pidfd(held.pidfd.as_raw_fd(), signal) {
            Ok(()) => Reply::Done { request_id, instance: instance.to_owned() },
            Err(e) => error(request_id, instance, ErrorCode::Os, format!("pidfd_send_signal: {e}")),
        }
    }

    pub fn kill(&self, request_id: u64, instance: &str) -> Reply {
        let Some(held) = self.held.get(instance) else {
            return error(request_id, instance, ErrorCode::UnknownInstance, "no such instance");
        };
        kill_instance(held);
        Reply::Done { request_id, instance: instance.to_owned() }
    }

    pub fn stats(&self, request_id: u64, instance: &str) -> Reply {
        let Some(held) = self.held.get(instance) else {
            return error(request_id, instance, ErrorCode::UnknownInstance, "no such instance");
        };
        Reply::StatsReply {
            request_id,
            instance: instance.to_owned(),
            running: held.exited.is_none(),
            stats: cgroup_stats(held.cgroup.as_ref()),
        }
    }

    pub fn forget(&mut self, request_id: u64, instance: &str) -> Reply {
        match self.held.get(instance) {
            None => return error(request_id, instance, ErrorCode::UnknownInstance, "no such instance"),
            Some(held) if held.exited.is_none() => {
                return error(request_id, instance, ErrorCode::StillRunning, "kill it and wait for exited first")
            }
            Some(_) => {}
        }
        let problems = self.held.remove(instance).and_then(|held| held.cgroup).map(SandboxCgroup::destroy);
        match problems {
            Some(problems) if !problems.is_empty() => {
                error(request_id, instance, ErrorCode::Os, format!("forgotten, but cleanup: {}", problems.join("; ")))
            }
            _ => Reply::Done { request_id, instance: instance.to_owned() },
        }
    }

    /// Reap every child that has ended; one `Exited` per instance.
    pub fn reap(&mut self) -> Vec<Reply> {
        let mut exited = Vec::new();
        loop {
            let status = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("wfsandbox launcher: waitpid: {e}");
                    break;
                }
                Ok(status) => status,
            };
            let outcome = match status {
                WaitStatus::Exited(_, code) => WaitOutcome::Code(code),
                WaitStatus::Signaled(_, signal, _) => WaitOutcome::Signal(signal as i32),
                _ => continue,
            };
            let Some(pid) = status.pid() else { continue };
            if let Some((name, held)) = self.held.iter_mut().find(|(_, h)| h.pid == pid && h.exited.is_none()) {
                exited.push(conclude(name, held, outcome));
            }
        }
        exited
    }

    /// Kill every instance, wait (bounded) for the inits to die, and remove every cgroup.
    pub fn shutdown(&mut self) {
        for held in self.held.values() {
            kill_instance(held);
        }
        let deadline = Instant::now() + SHUTDOWN_REAP_LIMIT;
        while self.held.values().any(|h| h.exited.is_none()) && Instant::now() < deadline {
            self.reap();
            wait_for_any_exit(self.held.values().filter(|h| h.exited.is_none()), Duration::from_millis(50));
        }
        for (name, held) in std::mem::take(&mut self.held) {
            if held.exited.is_none() {
                eprintln!("wfsandbox launcher: {name} (pid {}) did not die within the shutdown limit", held.pid);
            }
            if let Some(cg) = held.cgroup {
                report_problems(&name, &cg.destroy());
            }
        }
    }
}

/// Record init's end, make sure nothing of the sandbox is left running, and read its
/// final counters.
fn conclude(name: &str, held: &mut Instance, outcome: WaitOutcome) -> Reply {
    held.exited = Some(outcome);
    if let Some(cg) = held.cgroup.as_ref() {
        cg.kill();
    }
    let stats = cgroup_stats(held.cgroup.as_ref());
    let oom_killed = outcome == WaitOutcome::Signal(libc::SIGKILL) && stats.is_some_and(|s| s.oom_kills > 0);
    Reply::Exited { instance: name.to_owned(), status: outcome, oom_killed, stats }
}

fn kill_instance(held: &Instance) {
    if let Some(cg) = held.cgroup.as_ref() {
        cg.kill();
    }
    if held.exited.is_none() {
        // Init's death ends its pid namespace, which matters when cgroups degraded.
        let _ = signal_pidfd(held.pidfd.as_raw_fd(), libc::SIGKILL);
    }
}

fn cgroup_stats(cgroup: Option<&SandboxCgroup>) -> Option<UsageStats> {
    cgroup.and_then(|cg| cg.stats().ok()).map(UsageStats::from)
}

fn wait_for_any_exit<'a>(running: impl Iterator<Item = &'a Instance>, limit: Duration) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds: Vec<PollFd<'_>> = running.map(|h| PollFd::new(h.pidfd.as_fd(), PollFlags::POLLIN)).collect();
    if fds.is_empty() {
        return;
    }
    let ms = u16::try_from(limit.as_millis()).unwrap_or(u16::MAX);
    let _ = poll(&mut fds, PollTimeout::from(ms));
}

fn cleanup_suffix(problems: &[String]) -> String {
    if problems.is_empty() {
        String::new()
    } else {
        format!("; cleanup: {}", problems.join("; "))
    }
}

fn report_problems(instance: &str, problems: &[String]) {
    for problem in problems {
        eprintln!("wfsandbox launcher: {instance}: {problem}");
    }
}
