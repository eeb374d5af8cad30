use super::*;
use serde_json::{json, Value};
use std::io::Cursor;
use wf_protocol::control::{
    encode_server_message, LogStream, LogsArgs, Response, Rights, ServerMessage, SubscribeEventsArgs, Welcome,
};

/// A daemon's side of a conversation, scripted: what it will send, and what the client wrote.
struct Scripted {
    from_daemon: Cursor<Vec<u8>>,
    to_daemon: Vec<u8>,
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.from_daemon.read(buf)
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.to_daemon.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A connection whose daemon answers request 1 with `result`, then sends `items` and ends
/// the stream with `reason`.
fn connection(result: Value, items: Vec<StreamItem>, reason: StreamEndReason) -> Connection<Scripted> {
    let welcome = Welcome {
        protocol: 1,
        server: "wfsandbox test".into(),
        session: "s1".into(),
        rights: Rights::Control,
        idle_timeout_ms: 60_000,
    };
    let mut messages =
        vec![ServerMessage::Welcome(welcome), ServerMessage::Response(Response { id: 1, outcome: Ok(result) })];
    messages.extend(items.into_iter().map(|item| ServerMessage::Stream { id: 1, item }));
    messages.push(ServerMessage::StreamEnd { id: 1, reason });
    let frames: Vec<u8> = messages.iter().flat_map(|m| encode_server_message(m).expect("encodable")).collect();
    let transport = Scripted { from_daemon: Cursor::new(frames), to_daemon: Vec::new() };
    Connection::handshake(transport, "test", None).expect("handshake")
}

fn chunk(text: &str) -> LogChunk {
    LogChunk { stream: LogStream::Stdout, time_ms: 1_000, text: text.into() }
}

fn follow_logs_call() -> Call {
    Call::Logs(LogsArgs { name: "alpha".into(), follow: true, tail_bytes: None })
}

fn tail(chunks: &[LogChunk]) -> Value {
    json!({ "chunks": chunks, "dropped_bytes": 0 })
}

fn console(format: Format) -> Console<Vec<u8>> {
    Console::new(Vec::new(), format, "logs alpha".into())
}

fn printed(console: Console<Vec<u8>>) -> String {
    String::from_utf8(console.into_inner()).expect("UTF-8 output")
}

#[test]
fn followed_logs_print_the_tail_then_each_chunk_escaped() {
    let items = vec![StreamItem::Log(chunk("second\n")), StreamItem::Log(chunk("\u{1b}]0;owned\u{7}third\n"))];
    let mut conn = connection(tail(&[chunk("first\n")]), items, StreamEndReason::PluginEnded);
    let mut out = console(Format::Human);
    follow_logs(&mut conn, follow_logs_call(), &mut out).expect("followed");
    assert_eq!(printed(out), "first\nsecond\n\\u{1b}]0;owned\\u{7}third\n");
}

#[test]
fn followed_logs_in_json_are_one_object_per_line_ending_with_the_reason() {
    let mut conn = connection(tail(&[chunk("a")]), vec![StreamItem::Log(chunk("b"))], StreamEndReason::PluginEnded);
    let mut out = console(Format::Json);
    follow_logs(&mut conn, follow_logs_call(), &mut out).expect("followed");
    let lines: Vec<Value> =
        printed(out).lines().map(|l| serde_json::from_str(l).expect("each line is one JSON object")).collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap_or("?")).collect();
    assert_eq!(kinds, ["log", "log", "stream_end"]);
    assert_eq!((&lines[0]["text"], &lines[1]["text"]), (&json!("a"), &json!("b")));
    assert_eq!(lines[2]["reason"], "plugin_ended");
}

#[test]
fn a_closed_stdout_ends_the_stream_quietly() {
    struct ClosedPipe;
    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut conn = connection(tail(&[chunk("a")]), vec![], StreamEndReason::PluginEnded);
    let mut out = Console::new(ClosedPipe, Format::Human, "logs alpha".into());
    let result = follow_logs(&mut conn, follow_logs_call(), &mut out);
    assert!(matches!(result, Err(CommandError::ReaderGone)), "{result:?}");
}

#[test]
fn a_lagged_stream_is_a_failure_after_what_arrived_was_printed() {
    let mut conn = connection(tail(&[]), vec![StreamItem::Log(chunk("x\n"))], StreamEndReason::Lagged);
    let mut out = console(Format::Human);
    let result = follow_logs(&mut conn, follow_logs_call(), &mut out);
    assert!(matches!(result, Err(CommandError::Lagged)), "{result:?}");
    assert_eq!(printed(out), "x\n");
}

fn event(topic: &str, payload: Value) -> EventItem {
    EventItem { topic: topic.into(), payload, sender: "control:0".into(), time_ms: 0, payload_dropped: false }
}

#[test]
fn events_without_follow_in_json_are_one_document() {
    let items = vec![StreamItem::Event(event("a", json!(1))), StreamItem::Event(event("b", json!({ "x": 2 })))];
    let mut conn = connection(json!({ "topics": ["a", "b"] }), items, StreamEndReason::Complete);
    let call = Call::SubscribeEvents(SubscribeEventsArgs { topics: None, backlog: 10, follow: false });
    let mut out = console(Format::Json);
    events(&mut conn, call, &mut out).expect("events");
    let text = printed(out);
    assert_eq!(text.lines().count(), 1, "{text}");
    let document: Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(document["topics"], json!(["a", "b"]));
    assert_eq!(document["events"][1]["payload"], json!({ "x": 2 }));
    assert_eq!(document["end"], "complete");
}

#[test]
fn followed_events_for_humans_are_one_escaped_line_each() {
    let items = vec![StreamItem::Event(event("ui\u{9b}2J", json!({ "t": "\u{202e}" })))];
    let mut conn = connection(json!({ "topics": null }), items, StreamEndReason::ShuttingDown);
    let call = Call::SubscribeEvents(SubscribeEventsArgs { topics: None, backlog: 0, follow: true });
    let mut out = console(Format::Human);
    events(&mut conn, call, &mut out).expect("events");
    assert_eq!(printed(out), "1970-01-01T00:00:00Z ui\\u{9b}2J control:0 {\"t\":\"\\u202e\"}\n");
}

fn violation(plugin: &str, time_ms: u64, kind: &str) -> Violation {
    Violation {
        time_ms,
        plugin: plugin.into(),
        instance: format!("{plugin}-1"),
        layer: "broker".into(),
        kind: kind.into(),
        detail: json!({ "topic": "secret.keys" }),
        rule: "/permissions/events/write".into(),
        action: "deny".into(),
    }
}

fn follow_violations_call() -> Call {
    Call::ListViolations(wf_protocol::control::ViolationsArgs { name: None, limit: None, follow: true })
}

/// `list_violations` answers newest first.
fn recorded(violations: &[Violation], truncated: bool) -> Value {
    json!({ "violations": violations, "truncated": truncated })
}

#[test]
fn followed_violations_in_json_are_the_recorded_oldest_first_then_the_new_ones() {
    let items = vec![StreamItem::Violation { violation: violation("b", 3, "oversized_event") }];
    let answer = recorded(&[violation("a", 2, "topic_denied"), violation("a", 1, "topic_denied")], false);
    let mut conn = connection(answer, items, StreamEndReason::ShuttingDown);
    let mut out = console(Format::Json);
    follow_violations(&mut conn, follow_violations_call(), &mut out).expect("followed");
    let lines: Vec<Value> =
        printed(out).lines().map(|l| serde_json::from_str(l).expect("each line is one JSON object")).collect();
    let times: Vec<&Value> = lines.iter().map(|l| &l["time_ms"]).collect();
    assert_eq!(times, [&json!(1), &json!(2), &json!(3), &Value::Null]);
    let keys: Vec<&str> = lines[2].as_object().expect("object").keys().map(String::as_str).collect();
    let mut expected = ["action", "detail", "instance", "kind", "layer", "plugin", "rule", "time", "time_ms"];
    expected.sort_unstable();
    assert_eq!(keys, expected, "the keys of `violations --json`");
    assert_eq!((&lines[2]["kind"], &lines[2]["plugin"]), (&json!("oversized_event"), &json!("b")));
    assert_eq!(lines[3], json!({ "kind": "stream_end", "reason": "shutting_down" }));
}

#[test]
fn followed_violations_for_humans_are_one_escaped_line_each_and_lagging_fails() {
    let mut hostile = violation("evil\u{1b}[2J", 0, "topic_denied");
    hostile.detail = json!({ "topic": "\u{202e}x" });
    let items = vec![StreamItem::Violation { violation: hostile }];
    let mut conn = connection(recorded(&[], false), items, StreamEndReason::Lagged);
    let mut out = console(Format::Human);
    let result = follow_violations(&mut conn, follow_violations_call(), &mut out);
    assert!(matches!(result, Err(CommandError::Lagged)), "{result:?}");
    assert_eq!(
        printed(out),
        "1970-01-01T00:00:00Z evil\\u{1b}[2J broker topic_denied deny /permissions/events/write {\"topic\":\"\\u202ex\"}\n"
    );
}
