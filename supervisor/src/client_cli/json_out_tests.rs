use super::*;
use wf_protocol::control::{ExitCause, ListResult, LogStream, PluginState};

fn running(name: &str, pid: u32) -> PluginSummary {
    PluginSummary {
        name: name.into(),
        version: "1.0.0".into(),
        state: PluginState::Running,
        pid: Some(pid),
        instance: Some(format!("{name}-1f")),
        restarts: 2,
        since_ms: 1_733_000_000_450,
    }
}

#[test]
fn a_summary_has_the_stable_keys_and_since_next_to_since_ms() {
    let value = plugin_summary(&running("alpha", 48213));
    assert_eq!(
        value,
        json!({
            "name": "alpha", "version": "1.0.0", "state": "running", "pid": 48213,
            "instance": "alpha-1f", "restarts": 2,
            "since_ms": 1_733_000_000_450u64, "since": "2024-11-30T20:53:20.450Z",
        })
    );
    let stopped = PluginSummary { state: PluginState::Stopped, pid: None, instance: None, ..running("b", 1) };
    let value = plugin_summary(&stopped);
    assert_eq!((&value["state"], &value["pid"], &value["instance"]), (&json!("stopped"), &Value::Null, &Value::Null));
}

#[test]
fn ps_start_stop_and_restart_documents_are_summaries() {
    let list = Reply::List(ListResult { plugins: vec![running("alpha", 1), running("beta", 2)] });
    let document = reply_document(&list);
    let plugins = document["plugins"].as_array().expect("a plugins array");
    assert_eq!(plugins.len(), 2);
    assert_eq!(plugins[1]["name"], "beta");
    assert_eq!(plugins[1]["since"], "2024-11-30T20:53:20.450Z");
    for reply in [Reply::Start(running("a", 3)), Reply::Stop(running("a", 3)), Reply::Restart(running("a", 3))] {
        assert_eq!(reply_document(&reply), plugin_summary(&running("a", 3)));
    }
}

#[test]
fn status_puts_the_summary_keys_at_the_top_and_dates_the_last_exit() {
    let status = PluginStatus {
        plugin: running("clock", 7),
        manifest_path: None,
        plugin_dir: "/opt/plugins/clock".into(),
        last_exit: Some(ExitSummary { cause: ExitCause::Signaled, code: None, signal: Some(31), time_ms: 0 }),
        next_restart_ms: Some(1_000),
        enforcement: Some(json!({ "seccomp": { "status": "enforced" } })),
        events: None,
    };
    let value = reply_document(&Reply::Status(status));
    for key in ["name", "state", "pid", "restarts", "since", "since_ms", "version", "instance"] {
        assert!(value.get(key).is_some(), "status --json lacks {key}: {value}");
    }
    assert_eq!(
        value["last_exit"],
        json!({
            "cause": "signaled", "code": null, "signal": 31, "time_ms": 0, "time": "1970-01-01T00:00:00.000Z"
        })
    );
    assert_eq!((&value["next_restart"], &value["manifest_path"]), (&json!("1970-01-01T00:00:01.000Z"), &Value::Null));
    assert_eq!(value["enforcement"]["seccomp"]["status"], "enforced");
    assert_eq!(value["events"], Value::Null, "no instance connected");
}

#[test]
fn stream_lines_carry_their_kind_and_the_plugins_text_unchanged() {
    let chunk = LogChunk { stream: LogStream::Stderr, time_ms: 5, text: "a\u{1b}[31mred\n".into() };
    let line = log_line(&chunk);
    assert_eq!((&line["kind"], &line["stream"], &line["text"]), (&json!("log"), &json!("stderr"), &json!(chunk.text)));
    let item = EventItem {
        topic: "ui.render".into(),
        payload: json!({ "text": "42 W" }),
        sender: "plugin:energy".into(),
        time_ms: 1_000,
        payload_dropped: false,
    };
    let line = event_line(&item);
    assert_eq!((&line["kind"], &line["time"]), (&json!("event"), &json!("1970-01-01T00:00:01.000Z")));
    assert_eq!(line["payload"], item.payload);
    assert_eq!(
        stream_end_line(StreamEndReason::PluginEnded),
        json!({ "kind": "stream_end", "reason": "plugin_ended" })
    );
    let document = events_document(&None, &[item], StreamEndReason::Complete);
    assert_eq!((&document["topics"], &document["end"]), (&Value::Null, &json!("complete")));
    assert_eq!(document["events"][0]["sender"], "plugin:energy");
}
