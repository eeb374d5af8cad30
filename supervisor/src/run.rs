//! `wfsandbox run`: one plugin, once, with every layer, and a report of what happened.
//!
//! Runs in the CLI process itself, which is single-threaded: it is the launcher.

use crate::outlet::Outlet;
use crate::prepare::{self, PrepareTarget, PreparedLayers, Stop};
use crate::report::{now_ms, ExitInfo, RunReport, Violation};
use crate::sandbox_cgroup::{self, SandboxCgroup};
use crate::session::{Session, SessionConfig, SessionIo, SessionOutcome};
use crate::spawn;
use crate::stop_signals;
use crate::watchdog;
use nix::sys::wait::WaitStatus;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;
use wf_policy::spec::SandboxSpec;

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

pub fn run_once(req: RunRequest<'_>) -> u8 {
    let spec = req.spec;
    let mut report = RunReport {
        plugin: spec.name.clone(),
        version: spec.version.clone(),
        instance: instance_id(&spec.name),
        ..RunReport::default()
    };
    let mut outlets = None;
    let status = match execute(&req, &mut report, &mut outlets) {
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
    finish_report(&report, req.report_path, outlets);
    status
}

/// The host's stdout (published events) and stderr (plugin output, supervisor lines),
/// each behind a non-blocking outlet once the plugin runs.
pub struct HostOutlets {
    stdout: Outlet,
    stderr: Outlet,
}

/// How long the end of a run waits for a slow host consumer before abandoning output.
const OUTLET_DRAIN: Duration = Duration::from_secs(2);

impl HostOutlets {
    fn spawn() -> std::io::Result<Self> {
        Ok(Self {
            stdout: Outlet::spawn(Box::new(std::io::stdout()))?,
            stderr: Outlet::spawn(Box::new(std::io::stderr()))?,
        })
    }
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

fn finish_report(report: &RunReport, path: Option<&Path>, outlets: Option<HostOutlets>) {
    if let Some(path) = path {
        if let Err(e) = report.write_json(path) {
            eprintln!("wfsandbox: writing report {}: {e}", path.display());
        }
    }
    let Some(outlets) = outlets else {
        let _ = report.write_summary(&mut std::io::stderr().lock());
        return;
    };
    if let Some(mut stderr) = outlets.stderr.writer() {
        let _ = report.write_summary(&mut stderr);
    }
    let dropped = outlets.stdout.finish(OUTLET_DRAIN) + outlets.stderr.finish(OUTLET_DRAIN);
    if dropped > 0 {
        eprintln!("wfsandbox: {dropped} bytes of output dropped: the host's stdout/stderr stopped reading");
    }
}

fn instance_id(name: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    sandbox_cgroup::instance_name(name, std::process::id(), nanos)
}

fn execute(req: &RunRequest<'_>, report: &mut RunReport, outlets: &mut Option<HostOutlets>) -> Result<u8, Stop> {
    let spec = req.spec;
    if !nix::unistd::geteuid().is_root() {
        return Err(Stop::refused("privileges", "wfsandbox run must be started as root"));
    }
    // Before anything is created: from here on a Ctrl-C or SIGTERM is handled, not fatal.
    let stop_signals = stop_signals::block_and_listen().map_err(|e| Stop::setup("signals", e.raw_os_error(), e))?;
    let instance = report.instance.clone();
    let target = PrepareTarget {
        instance: &instance,
        cgroup_parent: req.cgroup_parent,
        enforced: &mut report.enforced,
        warnings: &mut report.warnings,
    };
    let (layers, mut cgroup) = prepare::prepare(spec, target)?;
    let outcome = launch_and_supervise(req, report, layers, &cgroup, stop_signals, outlets);
    let stats = cgroup.as_ref().map(SandboxCgroup::final_stats);
    if let Some(cg) = cgroup.take() {
        report.warnings.extend(cg.destroy());
    }
    let outcome = outcome?;
    Ok(conclude(spec, report, outcome, stats.flatten()))
}

fn launch_and_supervise(
    req: &RunRequest<'_>,
    report: &mut RunReport,
    layers: PreparedLayers,
    cgroup: &Option<SandboxCgroup>,
    stop_signals: nix::sys::signalfd::SignalFd,
    outlets: &mut Option<HostOutlets>,
) -> Result<SessionOutcome, Stop> {
    let spec = req.spec;
    let spawned = spawn::spawn_prepared(spec, req.args, layers, cgroup.as_ref(), &mut report.enforced)?;
    // Threads only now that the child exists.
    let host = outlets.insert(HostOutlets::spawn().map_err(|e| Stop::setup("output threads", e.raw_os_error(), e))?);
    let (Some(mut out), Some(mut err)) = (host.stdout.writer(), host.stderr.writer()) else {
        return Err(Stop::setup("output threads", None, "outlet closed"));
    };
    let cfg = SessionConfig {
        plugin: &spec.name,
        instance: &report.instance,
        grants: &spec.events,
        max_event_bytes: spec.events.max_event_bytes.value,
        wall_clock: Duration::from_millis(spec.wall_clock_ms.value),
        output_budget: spec.output_limit_bytes.value,
    };
    let init_pidfd = spawned.pidfd.as_raw_fd();
    let io = SessionIo {
        pid: spawned.pid,
        pidfd: spawned.pidfd,
        channel: spawned.channel,
        stdout: spawned.stdout,
        stderr: spawned.stderr,
        stop_signals: Some(stop_signals),
    };
    let mut session = Session::new(cfg, io);
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
        // SIGKILL init too: its death ends the pid namespace. The pidfd outlives the watchdog.
        let _ = spawn::signal_pidfd(init_pidfd, libc::SIGKILL);
    };
    let (outcome, watchdog_fired) =
        watchdog::run_with_watchdog(backstop, &kill_sandbox, || session.run(&mut out, &mut err, &kill_all));
    let mut outcome = outcome.map_err(|e| Stop::setup("supervise", e.raw_os_error(), e))?;
    outcome.wall_clock_expired |= watchdog_fired;
    Ok(outcome)
}

fn conclude(
    spec: &SandboxSpec,
    report: &mut RunReport,
    outcome: SessionOutcome,
    stats: Option<sandbox_cgroup::FinalStats>,
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
