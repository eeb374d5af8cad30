//! Start, stop, restart and automatic restarts, and what the launcher reports about runs.
//!
//! Operations on one plugin hold its op lock for their whole length, so a stop never races a
//! start of the same plugin. Launcher replies are applied by the link's reader, in the order
//! the launcher sent them, before the requester wakes (see [`super::super::launcher_link`]).
//!
//! Stop = SIGTERM to the plugin's init, the grace period, then the whole cgroup is killed; it
//! answers only once the launcher has reaped the init and removed the cgroup. The init is PID 1
//! of its pid namespace, and the kernel drops a signal PID 1 has no handler for: an init that
//! does not catch SIGTERM is killed at once instead of after a grace period it cannot use.

use super::super::daemon::{shutting_down, ActivePolicy, Daemon};
use super::super::violations::truncate_text;
use super::wire_view::registry_error;
use super::{check_manifest, instance_io, LiveInstance, ManifestInput, Phase};
use crate::daemon::{Exit, NextAction, PluginState, RestartTicket};
use crate::launch_service::transport::InboundReply;
use crate::launch_service::wire::{Reply, Request, UsageStats, WaitOutcome};
use crate::terminal_text::escape;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use wf_protocol::control::{ControlError, ExitCause, ExitSummary, PluginSummary, Violation};

/// How long a killed plugin may take to be reaped and its cgroup removed.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Daemon {
    pub(super) fn op_lock(&self, name: &str) -> Result<Arc<tokio::sync::Mutex<()>>, ControlError> {
        Ok(Arc::clone(&self.table().record(name)?.op_lock))
    }

    fn refuse_if_shutting_down(&self) -> Result<(), ControlError> {
        if self.is_shutting_down() {
            return Err(ControlError::shutting_down());
        }
        Ok(())
    }

    /// `start` of a loaded plugin.
    pub async fn start(self: &Arc<Self>, name: &str) -> Result<PluginSummary, ControlError> {
        let lock = self.op_lock(name)?;
        let _op = lock.lock().await;
        self.start_locked(name).await
    }

    pub async fn stop(self: &Arc<Self>, name: &str, grace: Option<Duration>) -> Result<PluginSummary, ControlError> {
        let lock = self.op_lock(name)?;
        let _op = lock.lock().await;
        self.stop_locked(name, grace).await
    }

    /// Stop (if anything runs or a restart is pending) with the default grace, then start.
    pub async fn restart(self: &Arc<Self>, name: &str) -> Result<PluginSummary, ControlError> {
        let lock = self.op_lock(name)?;
        let _op = lock.lock().await;
        let state = self.table().registry.get(name).map_err(|e| registry_error(&e))?.state();
        // A restart the policy in force would refuse leaves the running plugin alone.
        let input = self.table().record(name)?.manifest.clone();
        check_manifest(input, &self.policy().policy)?;
        if matches!(state, PluginState::Running | PluginState::Exited | PluginState::Crashed) {
            self.stop_locked(name, None).await?;
        }
        self.start_locked(name).await
    }

    /// Stop everything that runs or would restart, all at once; for shutdown.
    pub async fn stop_all(self: &Arc<Self>) -> usize {
        let names: Vec<String> = {
            let table = self.table();
            let pending = |name: &String| table.records.get(name).is_some_and(|r| r.next_restart_ms.is_some());
            table
                .registry
                .list()
                .into_iter()
                .map(|row| row.name)
                .filter(|name| table.registry.get(name).is_ok_and(|e| e.state().is_active()) || pending(name))
                .collect()
        };
        let stops: Vec<_> = names
            .iter()
            .map(|name| {
                let daemon = Arc::clone(self);
                let name = name.clone();
                tokio::spawn(async move { daemon.stop(&name, None).await })
            })
            .collect();
        for stop in stops {
            let _ = stop.await;
        }
        names.len()
    }

    async fn start_locked(self: &Arc<Self>, name: &str) -> Result<PluginSummary, ControlError> {
        self.refuse_if_shutting_down()?;
        if self.violations.responder.is_quarantined(name) {
            // A `start MANIFEST` may have replaced the quarantined entry: it stays quarantined.
            let _ = self.table().registry.quarantine(name);
            let state = wf_protocol::control::PluginState::Quarantined;
            return Err(ControlError::conflict(name, state, "cannot start a plugin that is quarantined"));
        }
        let input = self.table().record(name)?.manifest.clone();
        let policy = self.policy();
        let checked = check_manifest(input, &policy.policy)?;
        let instance = self.launcher.instance_name(name);
        {
            let mut table = self.table();
            table.registry.start(name, &instance).map_err(|e| registry_error(&e))?;
            table.instances.insert(instance.clone(), name.to_owned());
            let record = table.record_mut(name)?;
            record.pending_spec = Some(Arc::new(checked.spec));
            record.next_restart_ms = None;
        }
        self.launch(name, &instance, &checked.input, &policy).await
    }

    async fn launch(
        self: &Arc<Self>,
        name: &str,
        instance: &str,
        input: &ManifestInput,
        policy: &ActivePolicy,
    ) -> Result<PluginSummary, ControlError> {
        // Responses to this run's violations need the response task.
        self.violations.responder.install(self);
        let expected_hash = self.table().record(name)?.pending_spec.as_deref().map(crate::launch_service::spec_hash);
        let request = |request_id| Request::Launch {
            request_id,
            instance: instance.to_owned(),
            manifest_json: input.json.to_string(),
            plugin_dir: input.plugin_dir.clone(),
            policy_json: policy.json.clone(),
            args: Vec::new(),
        };
        match self.launcher.call(request).await {
            Ok(InboundReply { reply: Reply::Launched { spec_sha256, .. }, .. }) => {
                if expected_hash.as_deref() != Some(spec_sha256.as_str()) {
                    let _ = self.launcher.call(|request_id| kill(request_id, instance)).await;
                    return Err(ControlError::internal(
                        "the launcher enforced a different spec; the plugin was killed",
                    ));
                }
                self.table().summary(name)
            }
            Ok(InboundReply { reply: Reply::Refused { cause, step, errno, message, .. }, .. }) => {
                Err(self.launch_failed(name, instance, SetupFailure::new(&cause, &step, errno, &message)))
            }
            Ok(other) => {
                let message = format!("unexpected launcher reply: {:?}", other.reply);
                Err(self.launch_failed(name, instance, SetupFailure::new("setup_failed", "launch", None, &message)))
            }
            Err(e) => {
                let message = e.to_string();
                Err(self.launch_failed(name, instance, SetupFailure::new("setup_failed", "launch", None, &message)))
            }
        }
    }

    /// Record a set-up failure: the plugin never ran and nothing of it is left. It settles as
    /// `refused` (`stopped` on the wire, `last_exit.cause = setup_failed`) with no restart
    /// pending, and log followers are woken so their streams end.
    fn launch_failed(&self, name: &str, instance: &str, failure: SetupFailure<'_>) -> ControlError {
        let now = self.now_ms();
        {
            let mut table = self.table();
            let _ = table.registry.launch_failed(name);
            table.instances.remove(instance);
            if let Ok(record) = table.record_mut(name) {
                record.pending_spec = None;
                record.next_restart_ms = None;
                record.last_exit =
                    Some(ExitSummary { cause: ExitCause::SetupFailed, code: None, signal: None, time_ms: now });
                record.log_signal.send_modify(|n| *n += 1);
            }
        }
        let layer = layer_of_step(failure.step);
        let rule = match (failure.rule, failure.cause, layer) {
            (Some(rule), _, _) => rule,
            (None, "refused", Some(_)) => "/sandbox/required_layers".to_owned(),
            (None, _, _) => format!("set-up step {}", failure.step),
        };
        let message = truncate_text(failure.message);
        self.violation(Violation {
            time_ms: now,
            plugin: name.to_owned(),
            instance: instance.to_owned(),
            layer: layer.unwrap_or("setup").to_owned(),
            kind: failure.cause.to_owned(),
            detail: serde_json::json!({ "step": failure.step, "errno": failure.errno, "message": message }),
            rule,
            action: "deny".to_owned(),
        });
        ControlError::Refused {
            message: failure.message.to_owned(),
            layer: layer.map(str::to_owned),
            step: Some(failure.step.to_owned()),
            errno: failure.errno,
        }
    }

    pub(super) async fn stop_locked(
        self: &Arc<Self>,
        name: &str,
        grace: Option<Duration>,
    ) -> Result<PluginSummary, ControlError> {
        let grace = grace.unwrap_or_else(|| Duration::from_secs(self.policy().policy.sandbox.stop_grace_seconds));
        let (instance, pid, mut phase) = {
            let mut table = self.table();
            let state = table.registry.stop(name).map_err(|e| registry_error(&e))?;
            let pid = table.registry.get(name).ok().and_then(|e| e.pid());
            let record = table.record_mut(name)?;
            record.next_restart_ms = None;
            match (state, record.live.as_ref()) {
                (PluginState::Stopping, Some(live)) => (live.instance.clone(), pid, live.phase.subscribe()),
                (PluginState::Stopping, None) => {
                    let _ = table.registry.stop_completed(name);
                    return table.summary(name);
                }
                _ => {
                    self.audit.record("stop", serde_json::json!({ "plugin": name, "cancelled_restart": true }));
                    return table.summary(name);
                }
            }
        };
        let grace = if pid.is_some_and(catches_sigterm) { grace } else { Duration::ZERO };
        let _ = self
            .launcher
            .call(|request_id| Request::Signal { request_id, instance: instance.clone(), signal: libc::SIGTERM })
            .await;
        let killed = !reached(&mut phase, Phase::Exited, grace).await;
        if killed {
            let _ = self.launcher.call(|request_id| kill(request_id, &instance)).await;
        }
        if !reached(&mut phase, Phase::Forgotten, KILL_WAIT).await {
            return Err(ControlError::internal(format!("{name}: not gone {} s after the kill", KILL_WAIT.as_secs())));
        }
        let mut table = self.table();
        table.registry.stop_completed(name).map_err(|e| registry_error(&e))?;
        let event = serde_json::json!({ "plugin": name, "instance": instance, "grace_ms": grace.as_millis() as u64, "killed_after_grace": killed });
        self.audit.record("stop", event);
        table.summary(name)
    }

    /// Every reply of the launcher, in order, before its requester wakes.
    pub fn on_launcher_reply(self: &Arc<Self>, inbound: &mut InboundReply) {
        match &inbound.reply {
            Reply::Launched { instance, pid, enforcement, spec_sha256, .. } => {
                let fds = std::mem::take(&mut inbound.fds);
                self.adopt(instance, *pid, enforcement, spec_sha256, fds);
            }
            Reply::Exited { instance, status, oom_killed, stats } => {
                self.on_exited(instance, *status, *oom_killed, *stats)
            }
            Reply::Error { request_id: None, code, message, .. } => {
                tracing::error!(?code, %message, "the launcher refused a message it could not attribute");
            }
            _ => {}
        }
    }

    /// A plugin runs: remember it, connect its output and channel, arm its wall clock.
    fn adopt(
        self: &Arc<Self>,
        instance: &str,
        pid: i32,
        enforcement: &serde_json::Value,
        spec_sha256: &str,
        fds: Vec<OwnedFd>,
    ) {
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        let adopted = {
            let mut table = self.table();
            let Some(name) = table.instances.get(instance).cloned() else {
                tracing::error!(%instance, "the launcher started an instance nobody asked for; killing it");
                drop(table);
                self.spawn_kill(instance);
                return;
            };
            let _ = table.registry.launched(&name, pid.unsigned_abs());
            let Ok(record) = table.record_mut(&name) else { return };
            let spec = record.pending_spec.take();
            record.enforcement = Some(enforcement.clone());
            let pointer = spec.as_ref().map(|s| s.wall_clock_ms.origin.pointer.clone()).unwrap_or_default();
            record.live = Some(LiveInstance {
                instance: instance.to_owned(),
                phase: phase_tx,
                cgroup_dirs: cgroup_dirs(enforcement),
                wall_clock_expired: false,
                wall_clock_pointer: pointer,
            });
            spec.map(|spec| (name, spec))
        };
        let Some((name, spec)) = adopted else {
            self.spawn_kill(instance);
            return;
        };
        let event = serde_json::json!({
            "plugin": name, "instance": instance, "pid": pid, "spec_sha256": spec_sha256, "enforcement": enforcement,
        });
        self.audit.record("spawn", event);
        tracing::info!(plugin = %name, %instance, pid, "plugin running");
        instance_io::connect(self, &name, instance, &spec, fds);
        self.arm_wall_clock(&name, instance, Duration::from_millis(spec.wall_clock_ms.value), phase_rx);
    }

    fn arm_wall_clock(
        self: &Arc<Self>,
        name: &str,
        instance: &str,
        limit: Duration,
        mut phase: watch::Receiver<Phase>,
    ) {
        let daemon = Arc::clone(self);
        let (name, instance) = (name.to_owned(), instance.to_owned());
        tokio::spawn(async move {
            if reached(&mut phase, Phase::Exited, limit).await {
                return;
            }
            let pointer = {
                let mut table = daemon.table();
                let Ok(record) = table.record_mut(&name) else { return };
                let Some(live) = record.live.as_mut().filter(|l| l.instance == instance) else { return };
                live.wall_clock_expired = true;
                live.wall_clock_pointer.clone()
            };
            let _ = daemon.launcher.call(|request_id| kill(request_id, &instance)).await;
            daemon.violation(Violation {
                time_ms: daemon.now_ms(),
                plugin: name,
                instance,
                layer: "resources".into(),
                kind: "wall_clock_limit".into(),
                detail: serde_json::json!({ "limit_ms": limit.as_millis() as u64 }),
                rule: pointer,
                action: "kill".into(),
            });
        });
    }

    /// The init of `instance` was reaped (and the rest of its cgroup killed).
    fn on_exited(self: &Arc<Self>, instance: &str, status: WaitOutcome, oom_killed: bool, stats: Option<UsageStats>) {
        let now = self.now_ms();
        let exit = match status {
            WaitOutcome::Code(code) => Exit::Code(code),
            WaitOutcome::Signal(signal) => Exit::Signal(signal),
        };
        let mut table = self.table();
        let Some(name) = table.instances.get(instance).cloned() else {
            drop(table);
            self.spawn_forget(instance.to_owned(), None);
            return;
        };
        let was_stopping = table.registry.get(&name).is_ok_and(|e| e.state() == PluginState::Stopping);
        let outcome = table.registry.exited(&name, exit).ok();
        let Ok(record) = table.record_mut(&name) else { return };
        let live = record.live.take_if(|live| live.instance == instance);
        let wall_clock = live.as_ref().is_some_and(|l| l.wall_clock_expired);
        let cause = exit_cause(exit, was_stopping, wall_clock, oom_killed);
        let (code, signal) = match exit {
            Exit::Code(code) => (Some(code), None),
            Exit::Signal(signal) => (None, Some(signal)),
        };
        record.last_exit = Some(ExitSummary { cause, code, signal, time_ms: now });
        let restart = outcome.and_then(|o| match (o.next, o.ticket) {
            (NextAction::Restart { after }, Some(ticket)) => Some((after, ticket)),
            _ => None,
        });
        record.next_restart_ms = restart.map(|(after, _)| now.saturating_add(after.as_millis() as u64));
        record.log_signal.send_modify(|n| *n += 1);
        let gave_up = outcome.is_some_and(|o| o.next == NextAction::GiveUp);
        drop(table);

        self.broker.detach_plugin(instance);
        let phase = live.map(|live| {
            live.phase.send_replace(Phase::Exited);
            live.phase
        });
        if oom_killed {
            self.oom_violation(&name, instance, stats);
        }
        let event = serde_json::json!({
            "plugin": name, "instance": instance, "cause": cause, "code": code, "signal": signal,
            "stats": stats, "restart_in_ms": restart.map(|(after, _)| after.as_millis() as u64), "restart_cap_reached": gave_up,
        });
        self.audit.record("exit", event);
        tracing::info!(plugin = %name, %instance, ?cause, ?code, ?signal, "plugin ended");
        self.spawn_forget(instance.to_owned(), phase);
        if let Some((after, ticket)) = restart {
            self.schedule_restart(name, ticket, after);
        }
    }

    fn oom_violation(&self, name: &str, instance: &str, stats: Option<UsageStats>) {
        self.violation(Violation {
            time_ms: self.now_ms(),
            plugin: name.to_owned(),
            instance: instance.to_owned(),
            layer: "resources".into(),
            kind: "oom_kill".into(),
            detail: serde_json::json!({
                "memory_limit_bytes": stats.and_then(|s| s.memory_limit_bytes),
                "memory_peak_bytes": stats.and_then(|s| s.memory_peak_bytes),
            }),
            rule: "/permissions/resources/memory/max_mb".into(),
            action: "kill".into(),
        });
    }

    /// After `after`, restart `name` if nothing has changed its state meanwhile.
    fn schedule_restart(self: &Arc<Self>, name: String, ticket: RestartTicket, after: Duration) {
        let daemon = Arc::clone(self);
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(after) => {}
                _ = shutting_down(daemon.shutdown_signal()) => return,
            }
            let Ok(lock) = daemon.op_lock(&name) else { return };
            let _op = lock.lock().await;
            if daemon.is_shutting_down() {
                return;
            }
            if let Err(e) = daemon.restart_due(&name, ticket).await {
                // Already a violation (and audit record); this is the daemon log's line.
                tracing::warn!(plugin = %name, error = %escape(truncate_text(&e.to_string())), "automatic restart failed");
            }
        });
    }

    /// The restart a ticket was issued for. The manifest is checked under the policy in force
    /// now; one a reload made invalid is a set-up failure like a refused start.
    async fn restart_due(self: &Arc<Self>, name: &str, ticket: RestartTicket) -> Result<(), ControlError> {
        let input = self.table().record(name)?.manifest.clone();
        let policy = self.policy();
        let instance = self.launcher.instance_name(name);
        {
            let mut table = self.table();
            if table.registry.restart_due(name, ticket, &instance).is_err() {
                return Ok(()); // an operator acted since; the ticket is void
            }
            table.instances.insert(instance.clone(), name.to_owned());
            table.record_mut(name)?.next_restart_ms = None;
        }
        let checked = match check_manifest(input, &policy.policy) {
            Ok(checked) => checked,
            Err(error) => return Err(self.restart_refused(name, &instance, &error)),
        };
        self.table().record_mut(name)?.pending_spec = Some(Arc::new(checked.spec));
        self.launch(name, &instance, &checked.input, &policy).await.map(drop)
    }

    fn restart_refused(&self, name: &str, instance: &str, error: &ControlError) -> ControlError {
        let (message, rule) = match error {
            ControlError::InvalidManifest { problems, .. } => {
                let text: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.pointer, p.reason)).collect();
                (text.join("; "), problems.first().map(|p| p.pointer.clone()))
            }
            other => (other.to_string(), None),
        };
        let failure = SetupFailure { rule, ..SetupFailure::new("setup_failed", "check_manifest", None, &message) };
        self.launch_failed(name, instance, failure)
    }

    fn spawn_kill(self: &Arc<Self>, instance: &str) {
        let daemon = Arc::clone(self);
        let instance = instance.to_owned();
        tokio::spawn(async move {
            let _ = daemon.launcher.call(|request_id| kill(request_id, &instance)).await;
        });
    }

    /// Have the launcher remove the ended instance's cgroup; then it is gone for good.
    fn spawn_forget(self: &Arc<Self>, instance: String, phase: Option<watch::Sender<Phase>>) {
        let daemon = Arc::clone(self);
        tokio::spawn(async move {
            let forget = |request_id| Request::Forget { request_id, instance: instance.clone() };
            match daemon.launcher.call(forget).await {
                Ok(InboundReply { reply: Reply::Done { .. }, .. }) => {}
                Ok(other) => tracing::warn!(%instance, reply = ?other.reply, "removing the instance's cgroup"),
                Err(e) => tracing::warn!(%instance, error = %e, "removing the instance's cgroup"),
            }
            daemon.table().instances.remove(&instance);
            if let Some(phase) = phase {
                phase.send_replace(Phase::Forgotten);
            }
        });
    }
}

/// Why a start or an automatic restart never ran, for [`Daemon::launch_failed`].
struct SetupFailure<'a> {
    cause: &'a str,
    step: &'a str,
    errno: Option<i32>,
    message: &'a str,
    /// The rule that refused it, when known better than from the step.
    rule: Option<String>,
}

impl<'a> SetupFailure<'a> {
    fn new(cause: &'a str, step: &'a str, errno: Option<i32>, message: &'a str) -> Self {
        Self { cause, step, errno, message, rule: None }
    }
}

/// Whether process `pid` has a handler for SIGTERM (`SigCgt` in /proc/PID/status).
fn catches_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let caught = status.lines().find_map(|line| line.strip_prefix("SigCgt:")).map(str::trim);
    caught
        .and_then(|mask| u64::from_str_radix(mask, 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
}

pub(super) fn kill(request_id: u64, instance: &str) -> Request {
    Request::Kill { request_id, instance: instance.to_owned() }
}

/// Whether `phase` reached `target` within `limit`.
async fn reached(phase: &mut watch::Receiver<Phase>, target: Phase, limit: Duration) -> bool {
    matches!(tokio::time::timeout(limit, phase.wait_for(|p| *p >= target)).await, Ok(Ok(_)))
        || *phase.borrow() >= target
}

fn exit_cause(exit: Exit, was_stopping: bool, wall_clock: bool, oom_killed: bool) -> ExitCause {
    match exit {
        _ if was_stopping => ExitCause::Stopped,
        _ if wall_clock => ExitCause::WallClockLimit,
        _ if oom_killed => ExitCause::OomKill,
        Exit::Signal(_) => ExitCause::Signaled,
        Exit::Code(_) => ExitCause::Exited,
    }
}

/// The layer a failed set-up step belongs to, when it belongs to one.
fn layer_of_step(step: &str) -> Option<&'static str> {
    const LAYERS: [(&str, &str); 9] = [
        ("landlock", "landlock"),
        ("seccomp", "seccomp"),
        ("cgroup", "cgroups"),
        ("rlimit", "rlimits"),
        ("cap", "capabilities"),
        ("namespace", "namespaces"),
        ("uid_map", "namespaces"),
        ("clone", "namespaces"),
        ("mount", "filesystem"),
    ];
    LAYERS.iter().find(|(needle, _)| step.contains(needle)).map(|(_, layer)| *layer)
}

/// The instance's cgroup directories, as the launch's enforcement report lists them.
fn cgroup_dirs(enforcement: &serde_json::Value) -> Vec<PathBuf> {
    let hierarchies = enforcement["cgroups"]["detail"]["hierarchies"].as_array();
    hierarchies.into_iter().flatten().filter_map(|h| h["dir"].as_str().map(PathBuf::from)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_stop_wins_over_every_other_cause() {
        let kill = Exit::Signal(libc::SIGKILL);
        assert_eq!(exit_cause(kill, true, true, true), ExitCause::Stopped);
        assert_eq!(exit_cause(kill, false, true, true), ExitCause::WallClockLimit);
        assert_eq!(exit_cause(kill, false, false, true), ExitCause::OomKill);
        assert_eq!(exit_cause(kill, false, false, false), ExitCause::Signaled);
        assert_eq!(exit_cause(Exit::Code(3), false, false, false), ExitCause::Exited);
    }

    #[test]
    fn a_sigterm_handler_is_seen_in_procfs() {
        // libtest's process has no SIGTERM handler; a freshly spawned `sleep` neither.
        assert!(!catches_sigterm(std::process::id()));
        let mut python = std::process::Command::new("python3")
            .args(["-c", "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: None); print(flush=True); time.sleep(30)"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(python.stdout.take().unwrap()), &mut line).unwrap();
        assert!(catches_sigterm(python.id()));
        let _ = python.kill();
        let _ = python.wait();
    }

    #[test]
    fn set_up_steps_map_to_their_layers() {
        assert_eq!(layer_of_step("landlock_ruleset"), Some("landlock"));
        assert_eq!(layer_of_step("cgroup_dir_fd"), Some("cgroups"));
        assert_eq!(layer_of_step("seccomp_compile"), Some("seccomp"));
        assert_eq!(layer_of_step("load_manifest"), None);
    }

    #[test]
    fn cgroup_dirs_come_from_the_enforcement_report() {
        let report = serde_json::json!({"cgroups": {"detail": {"hierarchies": [{"dir": "/a"}, {"dir": "/b"}, {}]}}});
        assert_eq!(cgroup_dirs(&report), [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(cgroup_dirs(&serde_json::json!({})).is_empty());
    }
}
