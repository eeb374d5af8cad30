//! Human output: aligned tables and short `key: value` blocks.
//!
//! Everything a plugin can influence (names, versions, log text, event payloads, violation
//! details, and the paths and messages that quote them) goes through
//! [`crate::terminal_text`] before it is shown, so a plugin cannot drive the terminal.

use super::timestamp::rfc3339_seconds;
use crate::terminal_text::{escape, json_line};
use serde_json::Value;
use std::fmt::Write as _;
use wf_protocol::control::{
    EventItem, ExitCause, ExitSummary, LogChunk, PluginStats, PluginStatus, PluginSummary, Problem, Reply, Violation,
};

/// Gap between table columns.
const COLUMN_GAP: usize = 2;

/// What a non-streaming command prints on stdout for `reply`.
pub fn reply_text(reply: &Reply) -> String {
    match reply {
        Reply::List(list) => summary_table(&list.plugins),
        Reply::Start(summary) | Reply::Stop(summary) | Reply::Restart(summary) | Reply::Release(summary) => {
            summary_table(std::slice::from_ref(summary))
        }
        Reply::Status(status) => status_block(status),
        Reply::Stats(stats) => stats_table(&stats.plugins),
        Reply::Load(load) => {
            let plugin = &load.plugin;
            let head = format!("loaded {} {} ({})\n", escape(&plugin.name), escape(&plugin.version), plugin.state);
            head + &warning_lines(&load.warnings)
        }
        Reply::Logs(logs) => logs.chunks.iter().map(log_text).collect(),
        Reply::Publish(result) => format!("delivered: {}\n", result.delivered),
        Reply::ListViolations(result) => violations_table(&result.violations),
        Reply::ReloadPolicy(result) => {
            format!("policy reloaded from {}\n", escape(&result.path)) + &warning_lines(&result.warnings)
        }
        Reply::Shutdown(result) => format!("shutting down: stopping {} plugin(s)\n", result.stopping),
        Reply::Validate(result) => {
            format!("valid: {} {}\n", escape(&result.name), escape(&result.version)) + &warning_lines(&result.warnings)
        }
        Reply::SubscribeEvents(result) => format!("topics: {}\n", topic_list(&result.topics)),
        Reply::Cancel(result) => format!("cancelled: {}\n", result.cancelled),
    }
}

/// Remarks about a reply that belong on stderr, not in the output (logs stay clean when
/// redirected to a file).
pub fn reply_notes(reply: &Reply) -> Vec<String> {
    match reply {
        Reply::Logs(logs) if logs.dropped_bytes > 0 => vec![dropped_note(logs.dropped_bytes)],
        Reply::ListViolations(result) if result.truncated => {
            vec!["more violations matched than are shown (--limit, up to 1000)".to_owned()]
        }
        _ => Vec::new(),
    }
}

pub fn dropped_note(bytes: u64) -> String {
    format!("{bytes} bytes of this plugin's output were dropped (the daemon's buffer or rate cap)")
}

/// `NAME STATE PID RESTARTS SINCE VERSION`, one row per plugin.
pub fn summary_table(plugins: &[PluginSummary]) -> String {
    let rows = plugins
        .iter()
        .map(|p| {
            vec![
                escape(&p.name),
                p.state.to_string(),
                p.pid.map_or_else(|| "-".to_owned(), |pid| pid.to_string()),
                p.restarts.to_string(),
                rfc3339_seconds(p.since_ms),
                escape(&p.version),
            ]
        })
        .collect();
    table(&["NAME", "STATE", "PID", "RESTARTS", "SINCE", "VERSION"], rows)
}

pub fn status_block(status: &PluginStatus) -> String {
    let plugin = &status.plugin;
    let mut pairs = vec![
        ("name", escape(&plugin.name)),
        ("version", escape(&plugin.version)),
        ("state", plugin.state.to_string()),
        ("pid", plugin.pid.map_or_else(|| "-".to_owned(), |pid| pid.to_string())),
        ("instance", plugin.instance.as_deref().map_or_else(|| "-".to_owned(), escape)),
        ("restarts", plugin.restarts.to_string()),
        ("since", rfc3339_seconds(plugin.since_ms)),
        ("manifest", status.manifest_path.as_deref().map_or_else(|| "(inline)".to_owned(), escape)),
        ("plugin dir", escape(&status.plugin_dir)),
        ("last exit", status.last_exit.as_ref().map_or_else(|| "-".to_owned(), describe_exit)),
    ];
    if let Some(next) = status.next_restart_ms {
        pairs.push(("next restart", rfc3339_seconds(next)));
    }
    if let Some(events) = &status.events {
        pairs.push(("events out", format!("{} published, {} refused", events.published, events.refused)));
        pairs.push((
            "events in",
            format!(
                "{} delivered, {} dropped (inbox full), {} dropped (over its size limit)",
                events.delivered, events.dropped_full, events.dropped_too_large
            ),
        ));
        pairs.push(("subscribed", escape(&events.subscriptions.join(", "))));
    }
    let mut text = key_value_block(&pairs);
    text.push_str(&enforcement_lines(status.enforcement.as_ref()));
    text
}

fn describe_exit(exit: &ExitSummary) -> String {
    let what = match exit.cause {
        ExitCause::Exited => {
            format!("exited with code {}", exit.code.map_or_else(|| "?".to_owned(), |c| c.to_string()))
        }
        ExitCause::Signaled => match exit.signal {
            Some(signal) => format!("killed by signal {}", describe_signal(signal)),
            None => "killed by a signal".to_owned(),
        },
        ExitCause::OomKill => "killed for exceeding its memory limit (OOM)".to_owned(),
        ExitCause::WallClockLimit => "killed at its wall-clock limit".to_owned(),
        ExitCause::SetupFailed => "set-up failed before the plugin ran".to_owned(),
        ExitCause::Stopped => "stopped".to_owned(),
    };
    format!("{what} at {}", rfc3339_seconds(exit.time_ms))
}

fn describe_signal(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(name) => format!("{signal} ({name:?})"),
        Err(_) => signal.to_string(),
    }
}

/// `enforcement:` then one indented `layer: status` line per layer (the detail objects
/// are in `--json`).
fn enforcement_lines(enforcement: Option<&Value>) -> String {
    let Some(Value::Object(layers)) = enforcement else {
        return "enforcement:  -\n".to_owned();
    };
    let pairs: Vec<(String, String)> =
        layers.iter().map(|(layer, value)| (escape(layer), escape(&layer_status(value)))).collect();
    let mut text = "enforcement:\n".to_owned();
    for line in key_value_block(&pairs).lines() {
        let _ = writeln!(text, "  {line}");
    }
    text
}

fn layer_status(value: &Value) -> String {
    match value {
        Value::Object(fields) => {
            let status = fields.get("status").and_then(Value::as_str).unwrap_or("?");
            match fields.get("detail").and_then(|d| d.get("reason")).and_then(Value::as_str) {
                Some(reason) => format!("{status} ({reason})"),
                None => status.to_owned(),
            }
        }
        Value::String(text) => text.clone(),
        other => json_line(other),
    }
}

/// One row per plugin: memory now, peak and limit, CPU time, throttled periods, OOM kills,
/// pids, processes. `-` where the plugin has no cgroup.
pub fn stats_table(plugins: &[PluginStats]) -> String {
    let rows = plugins.iter().map(stats_row).collect();
    table(&["NAME", "STATE", "MEMORY", "PEAK", "LIMIT", "OOM", "CPU", "THROTTLED", "PIDS", "PROCS"], rows)
}

fn stats_row(stats: &PluginStats) -> Vec<String> {
    let dash = || "-".to_owned();
    let memory = stats.memory.as_ref();
    let cpu = stats.cpu.as_ref();
    vec![
        escape(&stats.name),
        stats.state.to_string(),
        memory.map_or_else(dash, |m| bytes(m.current)),
        memory.and_then(|m| m.peak).map_or_else(dash, bytes),
        memory.map_or_else(dash, |m| m.limit.map_or_else(|| "unlimited".to_owned(), bytes)),
        memory.map_or_else(dash, |m| m.oom_kills.to_string()),
        cpu.map_or_else(dash, |c| format!("{}.{:03}s", c.usage_usec / 1_000_000, c.usage_usec % 1_000_000 / 1000)),
        cpu.map_or_else(dash, |c| format!("{}/{}", c.nr_throttled, c.nr_periods)),
        stats.pids.as_ref().map_or_else(dash, |p| match p.max {
            Some(max) => format!("{}/{max}", p.current),
            None => p.current.to_string(),
        }),
        stats.processes.len().to_string(),
    ]
}

/// Binary units with one decimal: `512B`, `1.5KiB`, `64.0MiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// A chunk of captured output with its line breaks (and tabs) kept and every other
/// control character made visible.
pub fn log_text(chunk: &LogChunk) -> String {
    chunk
        .text
        .split('\n')
        .map(|line| line.split('\t').map(escape).collect::<Vec<_>>().join("\t"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `TIME TOPIC SENDER PAYLOAD` on one line.
pub fn event_line(event: &EventItem) -> String {
    let payload = if event.payload_dropped {
        "(payload dropped: over the control protocol's limits)".to_owned()
    } else {
        json_line(&event.payload)
    };
    format!("{} {} {} {}\n", rfc3339_seconds(event.time_ms), escape(&event.topic), escape(&event.sender), payload)
}

/// `TIME PLUGIN LAYER KIND ACTION RULE DETAIL` on one line (a followed violation: the
/// columns of [`violations_table`], unaligned).
pub fn violation_line(v: &Violation) -> String {
    violation_cells(v).join(" ") + "\n"
}

/// One violation's columns, as the table and the followed lines show them.
fn violation_cells(v: &Violation) -> Vec<String> {
    vec![
        rfc3339_seconds(v.time_ms),
        escape(&v.plugin),
        escape(&v.layer),
        escape(&v.kind),
        escape(&v.action),
        escape(&v.rule),
        json_line(&v.detail),
    ]
}

pub fn violations_table(violations: &[Violation]) -> String {
    let rows = violations.iter().map(violation_cells).collect();
    table(&["TIME", "PLUGIN", "LAYER", "KIND", "ACTION", "RULE", "DETAIL"], rows)
}

fn topic_list(topics: &Option<Vec<String>>) -> String {
    match topics {
        Some(topics) => topics.iter().map(|t| escape(t)).collect::<Vec<_>>().join(", "),
        None => "(every topic)".to_owned(),
    }
}

fn warning_lines(warnings: &[Problem]) -> String {
    warnings
        .iter()
        .map(|w| {
            let pointer = if w.pointer.is_empty() { "(document)" } else { w.pointer.as_str() };
            format!("warning: {}: {}\n", escape(pointer), escape(&w.reason))
        })
        .collect()
}

/// `key:` padded to the longest key, then the value. Keys and values must already be
/// escaped.
fn key_value_block<K: AsRef<str>>(pairs: &[(K, String)]) -> String {
    let width = pairs.iter().map(|(key, _)| key.as_ref().chars().count() + 1).max().unwrap_or(0) + 1;
    let mut text = String::new();
    for (key, value) in pairs {
        let label = format!("{}:", key.as_ref());
        let _ = writeln!(text, "{label:<width$}{value}");
    }
    text
}

/// Columns padded to their widest cell; the last column is not padded. Cells must already
/// be escaped (one line, no control characters).
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header_row: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut text = String::new();
    for row in std::iter::once(&header_row).chain(&rows) {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate() {
            if index + 1 < row.len() {
                let width = widths.get(index).copied().unwrap_or(0) + COLUMN_GAP;
                let _ = write!(line, "{cell:<width$}");
            } else {
                line.push_str(cell);
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
