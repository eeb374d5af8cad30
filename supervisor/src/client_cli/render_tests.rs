use super::*;
use crate::terminal_text::is_terminal_control;
use serde_json::json;
use wf_protocol::control::{CpuStats, LogStream, MemoryStats, PidsStats, PluginState, ProcessStats};

fn summary(name: &str, state: PluginState, pid: Option<u32>, restarts: u32) -> PluginSummary {
    PluginSummary {
        name: name.into(),
        version: "1.0.0".into(),
        state,
        pid,
        instance: None,
        restarts,
        since_ms: 1_733_000_000_450,
    }
}

fn no_terminal_controls(text: &str) -> bool {
    !text.chars().any(|c| (c.is_control() && c != '\n') || is_terminal_control(c))
}

#[test]
fn the_ps_table_aligns_every_column_under_its_header() {
    let plugins = [
        summary("alpha", PluginState::Running, Some(48213), 0),
        summary("energy_monitor", PluginState::Crashed, None, 12),
    ];
    let expected = "\
NAME            STATE    PID    RESTARTS  SINCE                 VERSION
alpha           running  48213  0         2024-11-30T20:53:20Z  1.0.0
energy_monitor  crashed  -      12        2024-11-30T20:53:20Z  1.0.0
";
    assert_eq!(summary_table(&plugins), expected);
}

#[test]
fn an_empty_list_is_just_the_header() {
    assert_eq!(summary_table(&[]), "NAME  STATE  PID  RESTARTS  SINCE  VERSION\n");
}

#[test]
fn hostile_names_and_versions_are_escaped_and_still_aligned() {
    let mut hostile = summary("x\u{1b}]0;pwned\u{7}", PluginState::Running, Some(1), 0);
    hostile.version = "1\u{9b}2J\u{202e}".into();
    let text = summary_table(&[hostile, summary("b", PluginState::Stopped, None, 0)]);
    assert!(no_terminal_controls(&text), "{text:?}");
    assert!(text.contains("x\\u{1b}]0;pwned\\u{7}") && text.contains("1\\u{9b}2J\\u{202e}"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let state_column = lines[0].find("STATE").expect("header");
    assert!(
        lines.iter().skip(1).all(|line| line[state_column..].starts_with(|c: char| c.is_ascii_lowercase())),
        "{text}"
    );
}

#[test]
fn log_text_keeps_line_breaks_and_tabs_but_not_terminal_escapes() {
    let chunk = LogChunk {
        stream: LogStream::Stdout,
        time_ms: 0,
        text: "ok\tfine\n\u{1b}[2J\u{1b}]52;c;Y2xpcA==\u{7}\rfake prompt\u{9b}\u{202e}\n".into(),
    };
    let text = log_text(&chunk);
    assert_eq!(text, "ok\tfine\n\\u{1b}[2J\\u{1b}]52;c;Y2xpcA==\\u{7}\\u{d}fake prompt\\u{9b}\\u{202e}\n");
}

#[test]
fn event_payloads_are_json_with_terminal_controls_escaped() {
    let event = EventItem {
        topic: "ui.render\u{1b}[1m".into(),
        payload: json!({ "text": "\u{1b}]0;t\u{7} \u{9b}31m \u{202e}" }),
        sender: "plugin:energy".into(),
        time_ms: 1_733_000_000_450,
        payload_dropped: false,
    };
    let line = event_line(&event);
    assert!(no_terminal_controls(&line), "{line:?}");
    assert!(line.starts_with("2024-11-30T20:53:20Z ui.render\\u{1b}[1m plugin:energy {"), "{line}");
    let dropped = EventItem { payload: Value::Null, payload_dropped: true, ..event };
    assert!(event_line(&dropped).contains("(payload dropped"), "{}", event_line(&dropped));
}

#[test]
fn violation_details_from_plugins_are_escaped() {
    let violation = Violation {
        time_ms: 0,
        plugin: "bad\u{1b}[8m".into(),
        instance: "bad-1".into(),
        layer: "events".into(),
        kind: "topic_denied".into(),
        detail: json!({ "topic": "secret\u{9b}\u{7f}" }),
        rule: "permissions.events.write".into(),
        action: "deny".into(),
    };
    let text = violations_table(&[violation]);
    assert!(no_terminal_controls(&text), "{text:?}");
    assert!(text.starts_with("TIME "), "{text}");
    assert!(text.contains("bad\\u{1b}[8m") && text.contains("secret\\u009b\\u007f"), "{text}");
}

#[test]
fn status_is_a_key_value_block_with_the_last_exit_and_each_layer() {
    let status = PluginStatus {
        plugin: summary("clock", PluginState::Crashed, None, 3),
        manifest_path: Some("/opt/plugins/clock/manifest.json".into()),
        plugin_dir: "/opt/plugins/clock".into(),
        last_exit: Some(ExitSummary { cause: ExitCause::Signaled, code: None, signal: Some(9), time_ms: 1_000 }),
        next_restart_ms: Some(2_000),
        enforcement: Some(json!({
            "seccomp": { "status": "enforced", "detail": { "rules": 180 } },
            "landlock": { "status": "degraded", "detail": { "reason": "kernel lacks it" } },
            "no_new_privs": true,
        })),
        events: Some(wf_protocol::control::EventCounters {
            published: 40,
            refused: 1,
            delivered: 12,
            dropped_full: 3,
            dropped_too_large: 0,
            subscriptions: vec!["energy.update".into(), "sensor.*".into()],
        }),
    };
    let text = status_block(&status);
    assert!(
        text.contains("events in:    12 delivered, 3 dropped (inbox full), 0 dropped (over its size limit)\n"),
        "{text}"
    );
    assert!(text.contains("subscribed:   energy.update, sensor.*\n"), "{text}");
    assert!(
        text.starts_with("name:         clock\nversion:      1.0.0\nstate:        crashed\npid:          -\n"),
        "{text}"
    );
    assert!(text.contains("last exit:    killed by signal 9 (SIGKILL) at 1970-01-01T00:00:01Z\n"), "{text}");
    assert!(text.contains("next restart: 1970-01-01T00:00:02Z\n"), "{text}");
    assert!(text.contains("  landlock:     degraded (kernel lacks it)\n"), "{text}");
    assert!(text.contains("  seccomp:      enforced\n") && text.contains("  no_new_privs: true\n"), "{text}");
}

#[test]
fn stats_rows_show_units_and_dashes_without_a_cgroup() {
    let running = PluginStats {
        name: "energy".into(),
        state: PluginState::Running,
        memory: Some(MemoryStats {
            current: 1_048_576,
            peak: Some(1536),
            limit: None,
            oom_kills: 0,
            limit_hits: 0,
            swap_max: Some(0),
        }),
        cpu: Some(CpuStats { usage_usec: 12_345_678, nr_periods: 10, nr_throttled: 1, throttled_usec: 500 }),
        pids: Some(PidsStats { current: 3, max: Some(16), max_events: 0 }),
        processes: vec![ProcessStats { pid: 1, rss_bytes: 1, threads: 1, fds: 4 }],
    };
    let idle = PluginStats {
        name: "idle".into(),
        state: PluginState::Stopped,
        memory: None,
        cpu: None,
        pids: None,
        processes: vec![],
    };
    let text = stats_table(&[running, idle]);
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[1], ["energy", "running", "1.0MiB", "1.5KiB", "unlimited", "0", "12.345s", "1/10", "3/16", "1"]);
    assert_eq!(lines[2], ["idle", "stopped", "-", "-", "-", "-", "-", "-", "-", "0"]);
}

#[test]
fn notes_mention_dropped_output_and_truncated_violations() {
    let logs = Reply::Logs(wf_protocol::control::LogsResult { chunks: vec![], dropped_bytes: 42 });
    assert_eq!(reply_notes(&logs), vec![dropped_note(42)]);
    let clean = Reply::Logs(wf_protocol::control::LogsResult { chunks: vec![], dropped_bytes: 0 });
    assert!(reply_notes(&clean).is_empty());
}
