//! `wfsandbox run`: one plugin, once, with every layer, and a report of what happened.
//!
//! Runs in the CLI process itself, which is single-threaded: it is the launcher.

use crate::child_plan;
use crate::enforcement::{self, Decision};
use crate::entry_point;
use crate::host_probe::{self, HostFacts};
use crate::launcher::{self, ChildStreams, IdMap};
use crate::report::{now_ms, ExitInfo, LayerStatus, RunReport, Violation};
use crate::rootfs::RootPlan;
use crate::sandbox_cgroup::{self, SandboxCgroup};
use crate::session::{Session, SessionConfig, SessionIo, SessionOutcome};
use crate::stop_signals;
use crate::watchdog;
use nix::sys::wait::WaitStatus;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;
use wf_policy::spec::{Layer, Runtime, SandboxSpec};

pub const EXIT_REFUSED: u8 = 125;

pub struct RunRequest<'a> {
    pub spec: &'a SandboxSpec,
    pub events: Vec<(String, serde_json::Value)>,
    pub args: &'a [String],
    pub report_path: Option<&'a Path>,
    /// The policy's `sandbox.cgroup_parent`, if any.
    pub cgroup_parent: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum EventArgError {
    #[error("--event {arg:?}: expected TOPIC=JSON")]
    Shape { arg: String },
    #[error("--event {arg:?}: payload is not valid JSON: {source}")]
    Json { arg: String, source: serde_json::Error },
}

pub fn parse_events(raw: &[String]) -> Result<Vec<(String, serde_json::Value)>, EventArgError> {
    raw.iter()
        .map(|arg| {
            let (topic, json) = arg.split_once('=').ok_or_else(|| EventArgError::Shape { arg: arg.clone() })?;
            let payload =
                serde_json::from_str(json).map_err(|source| EventArgError::Json { arg: arg.clone(), source })?;
            Ok((topic.to_owned(), payload))
        })
        .collect()
}

/// A failure before the plugin ran: refused by policy/host, or set-up failed.
#[derive(Debug)]
struct Stop {
    cause: &'static str,
    step: String,
    errno: Option<i32>,
    message: String,
}

impl Stop {
    fn refused(step: &str, message: impl ToString) -> Self {
        Self { cause: "refused", step: step.to_owned(), errno: None, message: message.to_string() }
    }
    fn setup(step: &str, errno: Option<i32>, message: impl ToString) -> Self {
        Self { cause: "setup_failed", step: step.to_owned(), errno, message: message.to_string() }
    }
}

pub fn run_once(req: RunRequest<'_>) -> u8 {
    let spec = req.spec;
    let mut report = RunReport {
        plugin: spec.name.clone(),
        version: spec.version.clone(),
        instance: instance_id(&spec.name),
        ..RunReport::default()
    };
    let status = match execute(&req, &mut report) {
        Ok(status) => status,
        Err(stop) => {
            report.exit = ExitInfo {
                cause: stop.cause.to_owned(),
                status: i32::from(EXIT_REFUSED),
                step: Some(stop.step.clone()),
                errno: stop.errno,
                message: Some(stop.message.clone()),
                ..ExitInfo::default()
            };
            record_setup_violation(&mut report, &stop);
            EXIT_REFUSED
        }
    };
    finish_report(&report, req.report_path);
    status
}

fn record_setup_violation(report: &mut RunReport, stop: &Stop) {
    report.violations.push(Violation {
        time_ms: now_ms(),
        plugin: report.plugin.clone(),
        instance: report.instance.clone(),
        layer: "setup".into(),
        kind: stop.cause.into(),
        detail: serde_json::json!({ "step": stop.step, "errno": stop.errno, "message": stop.message }),
        rule: "/sandbox/required_layers".into(),
        action: "deny".into(),
    });
}

fn finish_report(report: &RunReport, path: Option<&Path>) {
    let mut stderr = std::io::stderr().lock();
    let _ = report.write_summary(&mut stderr);
    if let Some(path) = path {
        if let Err(e) = report.write_json(path) {
            let _ = std::io::Write::write_fmt(
                &mut stderr,
                format_args!("wfsandbox: writing report {}: {e}\n", path.display()),
            );
        }
    }
}

fn instance_id(name: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    sandbox_cgroup::instance_name(name, std::process::id(), nanos)
}

fn is_applied(decisions: &[(Layer, Decision)], layer: Layer) -> bool {
    decisions.iter().any(|(l, d)| *l == layer && *d == Decision::Apply)
}

fn execute(req: &RunRequest<'_>, report: &mut RunReport) -> Result<u8, Stop> {
    let spec = req.spec;
    if !nix::unistd::geteuid().is_root() {
        return Err(Stop::refused("privileges", "wfsandbox run must be started as root"));
    }
    // Before anything is created: from here on a Ctrl-C or SIGTERM is handled, not fatal.
    let stop_signals = stop_signals::block_and_listen().map_err(|e| Stop::setup("signals", e.raw_os_error(), e))?;
    let host = host_probe::probe();
    let decisions = enforcement::decide_all(&host, &spec.layers).map_err(|r| Stop::refused("host_layers", r))?;
    entry_point::check(&spec.entry).map_err(|e| Stop::refused("entry_point", e))?;

    let python =
        matches!(spec.entry.runtime.value, Runtime::Interpreter { ref name, .. } if name.starts_with("python"));
    let native = matches!(spec.entry.runtime.value, Runtime::Native);
    let root = RootPlan::build(&spec.mounts, python, native).map_err(|e| Stop::setup("rootfs_plan", None, e))?;
    report.warnings.extend(root.warnings.iter().cloned());

    let landlock = if is_applied(&decisions, Layer::Landlock) {
        let prepared = crate::landlock_setup::prepare(spec, &root, python, &host)
            .map_err(|e| Stop::setup("landlock_ruleset", None, e))?;
        Some(prepared)
    } else {
        report.enforced.landlock = degraded_status(&decisions, Layer::Landlock);
        None
    };
    let seccomp = if is_applied(&decisions, Layer::Seccomp) {
        Some(crate::seccomp_setup::prepare(spec).map_err(|e| Stop::setup("seccomp_compile", None, e))?)
    } else {
        report.enforced.seccomp = degraded_status(&decisions, Layer::Seccomp);
        None
    };

    let instance = report.instance.clone();
    let (mut cgroup, cgroup_status) =
        sandbox_cgroup::create(spec, &instance, req.cgroup_parent).map_err(|e| Stop::refused("cgroups", e))?;
    if cgroup.is_none() {
        report.enforced.cgroups = cgroup_status.clone();
    }
    let layers = PreparedLayers { landlock, seccomp, cgroup_status };
    let outcome = launch_and_supervise(req, report, root, layers, &cgroup, stop_signals);
    let stats = cgroup.as_ref().map(SandboxCgroup::final_stats);
    if let Some(cg) = cgroup.take() {
        report.warnings.extend(cg.destroy());
    }
    let outcome = outcome?;
    Ok(conclude(spec, report, outcome, stats.flatten(), &host))
}

fn degraded_status(decisions: &[(Layer, Decision)], layer: Layer) -> LayerStatus {
    match decisions.iter().find(|(l, _)| *l == layer) {
        Some((_, Decision::Degrade { reason })) => LayerStatus::degraded(reason),
        _ => LayerStatus::default(),
    }
}

/// Layers built in the parent, each with what it enforces, recorded in the report only
/// once the plugin runs under them.
struct PreparedLayers {
    landlock: Option<(wf_sandbox_child::plan::LandlockPlan, serde_json::Value)>,
    seccomp: Option<(Vec<libc::sock_filter>, serde_json::Value)>,
    cgroup_status: LayerStatus,
}

fn launch_and_supervise(
    req: &RunRequest<'_>,
    report: &mut RunReport,
    root: RootPlan,
    layers: PreparedLayers,
    cgroup: &Option<SandboxCgroup>,
    stop_signals: nix::sys::signalfd::SignalFd,
) -> Result<SessionOutcome, Stop> {
    let spec = req.spec;
    let (channel, child_channel) = socketpair().map_err(|e| Stop::setup("channel socketpair", e.raw_os_error(), e))?;
    let (stdout, child_stdout) = pipe().map_err(|e| Stop::setup("stdout pipe", e.raw_os_error(), e))?;
    let (stderr, child_stderr) = pipe().map_err(|e| Stop::setup("stderr pipe", e.raw_os_error(), e))?;
    let max_frame = spec.events.max_event_bytes.value;
    let extra_env = [("WFSANDBOX_MAX_FRAME_BYTES".to_owned(), max_frame.to_string())];
    let exec = child_plan::exec_plan(spec, req.args, &extra_env).map_err(|e| Stop::setup("exec_plan", None, e))?;
    let join_fds = match cgroup.as_ref() {
        Some(cg) => cg.join_fds().map_err(|e| Stop::setup("cgroup_tasks_fds", e.raw_os_error(), e))?,
        None => Vec::new(),
    };
    let PreparedLayers { landlock, seccomp, cgroup_status } = layers;
    let (landlock, landlock_detail) = landlock.unzip();
    let (seccomp, seccomp_detail) = seccomp.unzip();
    let (mut plan, root_keepalive) =
        child_plan::build(spec, root, landlock, seccomp, exec, true).map_err(|e| Stop::setup("child_plan", None, e))?;
    plan.cgroup_join_fds = join_fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let ids = IdMap { outside_uid: spec.identity.outside_uid.value, outside_gid: spec.identity.outside_gid.value };
    let streams = ChildStreams { child_channel, child_stdout, child_stderr };
    let clone_into = match cgroup.as_ref().and_then(SandboxCgroup::clone_into_fd) {
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
    report.enforced.namespaces =
        LayerStatus::enforced(serde_json::json!(["user", "pid", "mount", "net", "ipc", "uts", "cgroup"]));
    report.enforced.filesystem = LayerStatus::enforced(
        serde_json::json!({ "root": "tmpfs, read-only, pivot_root", "mounts": spec.mounts.len() }),
    );
    report.enforced.capabilities =
        LayerStatus::enforced(serde_json::json!({ "effective": 0, "permitted": 0, "bounding": 0, "ambient": 0 }));
    report.enforced.no_new_privs = true;
    report.enforced.cgroups = cgroup_status;
    if let Some(detail) = landlock_detail {
        report.enforced.landlock = LayerStatus::enforced(detail);
    }
    if let Some(detail) = seccomp_detail {
        report.enforced.seccomp = LayerStatus::enforced(detail);
    }
    report.enforced.rlimits = LayerStatus::enforced(serde_json::to_value(&spec.rlimits).unwrap_or_default());

    let cfg = SessionConfig {
        plugin: &spec.name,
        instance: &report.instance,
        grants: &spec.events,
        max_event_bytes: max_frame,
        wall_clock: Duration::from_millis(spec.wall_clock_ms.value),
        output_budget: spec.output_limit_bytes.value,
    };
    let init_pidfd = launched.pidfd.as_raw_fd();
    let io = SessionIo {
        pid: launched.pid,
        pidfd: launched.pidfd,
        channel,
        stdout,
        stderr,
        stop_signals: Some(stop_signals),
    };
    let mut session = Session::new(cfg, io);
    let mut err = std::io::stderr();
    session.queue_initial(&req.events, &mut err);
    let kill_all = || {
        if let Some(cg) = cgroup.as_ref() {
            cg.kill();
        }
    };
    // The backstop fires a little after the loop's own deadline check would.
    let backstop = Duration::from_millis(spec.wall_clock_ms.value.saturating_add(250));
    let kill_sandbox = || {
        kill_all();
        kill_init(init_pidfd);
    };
    let (outcome, watchdog_fired) = watchdog::run_with_watchdog(backstop, &kill_sandbox, || {
        session.run(&mut std::io::stdout(), &mut err, &kill_all)
    });
    let mut outcome = outcome.map_err(|e| Stop::setup("supervise", e.raw_os_error(), e))?;
    outcome.wall_clock_expired |= watchdog_fired;
    Ok(outcome)
}

/// SIGKILL the sandbox's init through its pidfd (its death ends the pid namespace).
fn kill_init(pidfd: std::os::fd::RawFd) {
    // SAFETY: pidfd_send_signal on our own child's pidfd, which outlives the watchdog.
    unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd, libc::SIGKILL, std::ptr::null::<libc::siginfo_t>(), 0u32);
    }
}

fn conclude(
    spec: &SandboxSpec,
    report: &mut RunReport,
    outcome: SessionOutcome,
    stats: Option<sandbox_cgroup::FinalStats>,
    _host: &HostFacts,
) -> u8 {
    report.usage.wall_ms = outcome.wall_ms;
    report.events = outcome.events.clone();
    report.output = outcome.output;
    report.violations.extend(outcome.violations.iter().cloned());
    if outcome.violations_suppressed > 0 {
        report.warnings.push(format!("{} further violations not recorded individually", outcome.violations_suppressed));
    }
    let oom_killed = stats.as_ref().is_some_and(|s| s.oom_kills > 0);
    if let Some(s) = &stats {
        report.usage.peak_memory_bytes = s.peak_memory_bytes;
        report.usage.cpu_usage_usec = Some(s.cpu_usage_usec);
        report.usage.cpu_throttled_periods = Some(s.throttled_periods);
        report.usage.oom_kills = Some(s.oom_kills);
        report.usage.pids_limit_hits = Some(s.pids_limit_hits);
        resource_violations(spec, report, s);
    }
    let (cause, status, code, signal) = match outcome.status {
        Some(WaitStatus::Exited(_, code)) => ("exited", code, Some(code), None),
        Some(WaitStatus::Signaled(_, sig, _)) => {
            let n = sig as i32;
            let cause = if outcome.wall_clock_expired {
                "wall_clock_limit"
            } else if oom_killed && n == libc::SIGKILL {
                "oom_kill"
            } else {
                "signaled"
            };
            (cause, 128 + n, None, Some(n))
        }
        _ => ("unknown", i32::from(EXIT_REFUSED), None, None),
    };
    // Stopped by a signal to the supervisor: exit as a shell expects of that signal.
    let (cause, status) = match outcome.interrupted_by {
        Some(signal) => ("interrupted", 128 + signal),
        None => (cause, status),
    };
    if outcome.wall_clock_expired {
        report.violations.push(resource_violation(
            report,
            "wall_clock_limit",
            serde_json::json!({ "limit_ms": spec.wall_clock_ms.value }),
            &spec.wall_clock_ms.origin.pointer,
            "kill",
        ));
    }
    report.exit = ExitInfo { cause: cause.into(), status, code, signal, ..ExitInfo::default() };
    status.clamp(0, 255) as u8
}

fn resource_violations(spec: &SandboxSpec, report: &mut RunReport, s: &sandbox_cgroup::FinalStats) {
    if s.oom_kills > 0 {
        let v = resource_violation(
            report,
            "oom_kill",
            serde_json::json!({ "oom_kills": s.oom_kills, "limit_bytes": spec.cgroup.memory_max_bytes.value }),
            &spec.cgroup.memory_max_bytes.origin.pointer,
            "kill",
        );
        report.violations.push(v);
    }
    if s.pids_limit_hits > 0 {
        let v = resource_violation(
            report,
            "pids_limit",
            serde_json::json!({ "refused_forks": s.pids_limit_hits, "limit": spec.cgroup.pids_max.value }),
            &spec.cgroup.pids_max.origin.pointer,
            "deny",
        );
        report.violations.push(v);
    }
}

fn resource_violation(
    report: &RunReport,
    kind: &str,
    detail: serde_json::Value,
    rule: &str,
    action: &str,
) -> Violation {
    Violation {
        time_ms: now_ms(),
        plugin: report.plugin.clone(),
        instance: report.instance.clone(),
        layer: "resources".into(),
        kind: kind.into(),
        detail,
        rule: rule.into(),
        action: action.into(),
    }
}

fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).map_err(std::io::Error::from)
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}
