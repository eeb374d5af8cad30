//! `--json` output: the protocol's result objects, with an RFC 3339 UTC companion next to
//! every millisecond time (`since` for `since_ms`, `time` for `time_ms`, `next_restart` for
//! `next_restart_ms`) so scripts need no epoch arithmetic. The protocol's own keys are kept.
//!
//! Keys are written out here rather than derived from the protocol types, so that they are
//! the CLI's stable interface.

use super::timestamp::rfc3339_millis;
use serde::Serialize;
use serde_json::{json, Map, Value};
use wf_protocol::control::{
    EventItem, ExitSummary, LogChunk, PluginStatus, PluginSummary, Problem, Reply, StreamEndReason, Violation,
};

/// The document a non-streaming command prints for `reply`.
pub fn reply_document(reply: &Reply) -> Value {
    match reply {
        Reply::Start(summary) | Reply::Stop(summary) | Reply::Restart(summary) | Reply::Release(summary) => {
            plugin_summary(summary)
        }
        Reply::List(list) => json!({ "plugins": list.plugins.iter().map(plugin_summary).collect::<Vec<_>>() }),
        Reply::Status(status) => plugin_status(status),
        Reply::Load(load) => json!({ "plugin": plugin_summary(&load.plugin), "warnings": problems(&load.warnings) }),
        Reply::Logs(logs) => json!({
            "chunks": logs.chunks.iter().map(log_chunk).collect::<Vec<_>>(),
            "dropped_bytes": logs.dropped_bytes,
        }),
        Reply::ListViolations(result) => json!({
            "violations": result.violations.iter().map(violation).collect::<Vec<_>>(),
            "truncated": result.truncated,
        }),
        Reply::ReloadPolicy(result) => json!({ "path": result.path, "warnings": problems(&result.warnings) }),
        Reply::Stats(stats) => as_json(stats),
        Reply::Publish(result) => as_json(result),
        Reply::Shutdown(result) => as_json(result),
        Reply::Validate(result) => as_json(result),
        Reply::SubscribeEvents(result) => as_json(result),
        Reply::Cancel(result) => as_json(result),
    }
}

/// A plugin summary: `name`, `version`, `state`, `pid`, `instance`, `restarts`, `since_ms`,
/// and `since`.
pub fn plugin_summary(summary: &PluginSummary) -> Value {
    Value::Object(summary_fields(summary))
}

fn summary_fields(summary: &PluginSummary) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("name".into(), summary.name.clone().into());
    fields.insert("version".into(), summary.version.clone().into());
    fields.insert("state".into(), summary.state.as_str().into());
    fields.insert("pid".into(), summary.pid.into());
    fields.insert("instance".into(), summary.instance.clone().into());
    fields.insert("restarts".into(), summary.restarts.into());
    fields.insert("since_ms".into(), summary.since_ms.into());
    fields.insert("since".into(), rfc3339_millis(summary.since_ms).into());
    fields
}

/// `status`: the summary's keys at the top level (as for `ps`, `start`, `stop`, `restart`),
/// then the status's own.
fn plugin_status(status: &PluginStatus) -> Value {
    let mut fields = summary_fields(&status.plugin);
    fields.insert("manifest_path".into(), status.manifest_path.clone().into());
    fields.insert("plugin_dir".into(), status.plugin_dir.clone().into());
    fields.insert("last_exit".into(), status.last_exit.as_ref().map_or(Value::Null, exit_summary));
    fields.insert("next_restart_ms".into(), status.next_restart_ms.into());
    fields.insert("next_restart".into(), status.next_restart_ms.map(rfc3339_millis).into());
    fields.insert("enforcement".into(), status.enforcement.clone().unwrap_or(Value::Null));
    fields.insert("events".into(), status.events.as_ref().map_or(Value::Null, as_json));
    Value::Object(fields)
}

fn exit_summary(exit: &ExitSummary) -> Value {
    json!({
        "cause": as_json(&exit.cause),
        "code": exit.code,
        "signal": exit.signal,
        "time_ms": exit.time_ms,
        "time": rfc3339_millis(exit.time_ms),
    })
}

fn problems(problems: &[Problem]) -> Value {
    problems.iter().map(|p| json!({ "pointer": p.pointer, "reason": p.reason })).collect()
}

fn log_chunk(chunk: &LogChunk) -> Value {
    json!({
        "stream": as_json(&chunk.stream),
        "time_ms": chunk.time_ms,
        "time": rfc3339_millis(chunk.time_ms),
        "text": chunk.text,
    })
}

fn violation(v: &Violation) -> Value {
    json!({
        "time_ms": v.time_ms,
        "time": rfc3339_millis(v.time_ms),
        "plugin": v.plugin,
        "instance": v.instance,
        "layer": v.layer,
        "kind": v.kind,
        "detail": v.detail,
        "rule": v.rule,
        "action": v.action,
    })
}

fn event(event: &EventItem) -> Value {
    json!({
        "topic": event.topic,
        "payload": event.payload,
        "sender": event.sender,
        "time_ms": event.time_ms,
        "time": rfc3339_millis(event.time_ms),
        "payload_dropped": event.payload_dropped,
    })
}

/// One line of a followed stream: `{"kind": "log", ...chunk}`.
pub fn log_line(chunk: &LogChunk) -> Value {
    with_kind("log", log_chunk(chunk))
}

/// One line of a followed stream: `{"kind": "event", ...event}`.
pub fn event_line(item: &EventItem) -> Value {
    with_kind("event", event(item))
}

/// One line of `violations --follow --json`: the violation with exactly the keys of
/// `violations --json` (no `kind` is added: a violation has a `kind` of its own).
pub fn violation_line(v: &Violation) -> Value {
    violation(v)
}

/// The last line of a followed stream: `{"kind": "stream_end", "reason": ...}`.
pub fn stream_end_line(reason: StreamEndReason) -> Value {
    json!({ "kind": "stream_end", "reason": as_json(&reason) })
}

/// `events --json` without `--follow`: one document with every replayed event.
pub fn events_document(topics: &Option<Vec<String>>, events: &[EventItem], reason: StreamEndReason) -> Value {
    json!({
        "topics": topics,
        "events": events.iter().map(event).collect::<Vec<_>>(),
        "end": as_json(&reason),
    })
}

fn with_kind(kind: &str, value: Value) -> Value {
    let mut fields = Map::new();
    fields.insert("kind".into(), kind.into());
    if let Value::Object(rest) = value {
        fields.extend(rest);
    }
    Value::Object(fields)
}

/// The protocol types serialise to JSON objects and strings with string keys only, which
/// cannot fail; `null` stands in should a future type ever not.
fn as_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
#[path = "json_out_tests.rs"]
mod tests;
