//! The run report: what was actually enforced, what the plugin used, how it ended.

use crate::output::OutputCounters;
use serde::Serialize;
use std::io::Write;

/// One boundary crossing attempt, DESIGN.md §6 shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub plugin: String,
    pub instance: String,
    pub layer: String,
    pub kind: String,
    pub detail: serde_json::Value,
    /// The manifest or policy field that decided it.
    pub rule: String,
    /// What the supervisor did: `deny`, `kill`, `log`.
    pub action: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerStatus {
    /// `enforced`, `degraded` (the host lacks it and the policy allowed that), or `not_applied`.
    pub status: String,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl Default for LayerStatus {
    /// A layer the run never got to (refused or failed before it was applied).
    fn default() -> Self {
        Self { status: "not_applied".into(), detail: serde_json::Value::Null }
    }
}

impl LayerStatus {
    pub fn enforced(detail: serde_json::Value) -> Self {
        Self { status: "enforced".into(), detail }
    }
    pub fn degraded(why: &str) -> Self {
        Self { status: "degraded".into(), detail: serde_json::json!({ "reason": why }) }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Enforcement {
    pub namespaces: LayerStatus,
    pub filesystem: LayerStatus,
    pub landlock: LayerStatus,
    pub seccomp: LayerStatus,
    pub capabilities: LayerStatus,
    pub no_new_privs: bool,
    pub cgroups: LayerStatus,
    pub rlimits: LayerStatus,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    pub wall_ms: u64,
    pub peak_memory_bytes: Option<u64>,
    pub cpu_usage_usec: Option<u64>,
    pub cpu_throttled_periods: Option<u64>,
    pub oom_kills: Option<u64>,
    pub pids_limit_hits: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ExitInfo {
    /// `exited`, `signaled`, `oom_kill`, `wall_clock_limit`, `refused`, `setup_failed`.
    pub cause: String,
    /// `wfsandbox run`'s own exit status.
    pub status: i32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// For `refused` / `setup_failed`: the failing step, errno and message.
    pub step: Option<String>,
    pub errno: Option<i32>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EventCounters {
    pub delivered: u64,
    pub not_delivered: u64,
    pub published: u64,
    /// Granted publishes the host's stdout did not take (it was closed).
    pub not_written: u64,
    pub denied: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub plugin: String,
    pub version: String,
    pub instance: String,
    pub enforced: Enforcement,
    pub warnings: Vec<String>,
    pub usage: Usage,
    pub exit: ExitInfo,
    pub events: EventCounters,
    pub output: OutputCounters,
    pub violations: Vec<Violation>,
}

impl RunReport {
    pub fn write_json(&self, path: &std::path::Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }

    /// A few lines for a person, on stderr.
    pub fn write_summary(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let e = &self.enforced;
        writeln!(out, "wfsandbox: {} {} ({}) {}", self.plugin, self.version, self.instance, self.exit_line())?;
        writeln!(
            out,
            "wfsandbox: enforced: namespaces={} landlock={} seccomp={} caps={} cgroups={} rlimits={} no_new_privs={}",
            e.namespaces.status,
            e.landlock.status,
            e.seccomp.status,
            e.capabilities.status,
            e.cgroups.status,
            e.rlimits.status,
            e.no_new_privs
        )?;
        let u = &self.usage;
        writeln!(
            out,
            "wfsandbox: used: wall {} ms, peak memory {}, cpu {} us; events delivered {} published {} denied {}",
            u.wall_ms,
            u.peak_memory_bytes.map_or("n/a".into(), |b| format!("{} KiB", b / 1024)),
            u.cpu_usage_usec.map_or("n/a".into(), |c| c.to_string()),
            self.events.delivered,
            self.events.published,
            self.events.denied
        )?;
        for w in &self.warnings {
            writeln!(out, "wfsandbox: warning: {}", crate::terminal_text::escape(w))?;
        }
        for v in &self.violations {
            writeln!(
                out,
                "wfsandbox: violation: {}/{} {} (rule {}, action {})",
                v.layer,
                v.kind,
                crate::terminal_text::json_line(&v.detail),
                crate::terminal_text::escape(&v.rule),
                v.action
            )?;
        }
        Ok(())
    }

    fn exit_line(&self) -> String {
        let x = &self.exit;
        match (x.cause.as_str(), x.code, x.signal) {
            ("exited", Some(code), _) => format!("exited with status {code}"),
            (cause, _, Some(sig)) => format!("ended by signal {sig} ({cause})"),
            (cause, _, _) => match (&x.step, &x.message) {
                (Some(step), Some(msg)) => format!("{cause} at step {step}: {}", crate::terminal_text::escape(msg)),
                _ => cause.to_owned(),
            },
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
