//! The Python client (`sdk/python/wfsandbox_client.py`) against this crate's server side:
//! every request Python sends decodes into the expected typed call, and every result, stream
//! and error this crate encodes passes Python's strict checks unchanged.

mod control_samples;

use control_samples::*;
use serde_json::{json, Value};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use wf_protocol::control::{
    Call, ControlError, LogsArgs, NameArgs, Reply, Request, Response, Rights, ServerMessage, StreamEndReason,
    StreamItem, Verb,
};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Issues `sample_calls()` in order through the client's methods, then one status per error
/// code, then a subscription it cancels; prints everything it got back as JSON.
const SCRIPT: &str = r#"
import json, os, wfsandbox_client as wc
c = wc.Client(socket_path=os.environ["WFSANDBOX_SOCKET"], token="ab" * 32, client_name="interop")
inline = {"name": "energy_monitor", "version": "1.0.0", "entry_point": "main.py",
          "permissions": {"events": {"read": ["energy.update"], "write": ["ui.render"]}}}
m, d, n = "/opt/plugins/energy/manifest.json", "/opt/plugins/energy", "energy_monitor"
out = {"welcome": c.welcome, "results": []}
r = out["results"].append
r(c.load(m)); r(c.load(manifest=inline, plugin_dir=d)); r(c.validate(manifest=inline, plugin_dir=d))
r(c.start(m)); r(c.start(name=n)); r(c.stop(n, grace_ms=2500)); r(c.stop(n)); r(c.restart(n))
r(c.list()); r(c.status(n)); r(c.logs(n, tail_bytes=4096))
follow = c.logs(n, follow=True)
out["follow"] = {"chunks": list(follow), "end": follow.end_reason}
r(c.stats()); r(c.stats(n))
r(c.publish("energy.update", {"watts": 42.5, "tags": ["ü", "\"]}"], "n": None, "big": 2**64 - 1}))
live = c.subscribe_events()
out["live"] = {"result": live.result, "events": list(live), "end": live.end_reason}
replay = c.subscribe_events(topics=["ui.render", "energy.update"], backlog=10, follow=False)
out["replay"] = {"events": list(replay), "end": replay.end_reason}
r(c.list_violations()); r(c.list_violations(n, limit=5))
watch = c.follow_violations(limit=1)
out["violations"] = {"result": watch.result, "items": list(watch), "end": watch.end_reason}
r(c.reload_policy())
r(c.reload_policy("/etc/wfsandbox/policy.json")); r(c.shutdown()); r(c.call("cancel", {"id": 7})); r(c.release(n))
out["errors"] = []
for i in range(16):
    try:
        c.status("error-%d" % i)
    except wc.WfsandboxError as err:
        out["errors"].append([err.code, err.message, err.details, err.exit_code])
sub = c.subscribe_events(topics=["x"])
out["cancelled"] = sub.cancel()
print(json.dumps(out))
"#;

fn reply_for(verb: Verb) -> Reply {
    sample_replies().into_iter().find(|reply| reply.verb() == verb).expect("a sample reply per verb")
}

fn answer(request: &Request) -> Vec<ServerMessage> {
    let id = request.id;
    let event = |n: u64| ServerMessage::Stream {
        id,
        item: StreamItem::Event(wf_protocol::control::EventItem { time_ms: n, ..event_item() }),
    };
    let end = |reason| ServerMessage::StreamEnd { id, reason };
    match &request.call {
        Call::Status(NameArgs { name }) if name.starts_with("error-") => {
            let index: usize = name["error-".len()..].parse().expect("index");
            vec![ServerMessage::Response(Response { id, outcome: Err(sample_errors()[index].clone()) })]
        }
        Call::Logs(LogsArgs { follow: true, .. }) => vec![
            ok(id, &reply_for(Verb::Logs)),
            ServerMessage::Stream { id, item: StreamItem::Log(log_chunk()) },
            end(StreamEndReason::PluginEnded),
        ],
        Call::ListViolations(args) if args.follow => vec![
            ok(id, &reply_for(Verb::ListViolations)),
            ServerMessage::Stream { id, item: StreamItem::Violation { violation: violation() } },
            end(StreamEndReason::ShuttingDown),
        ],
        Call::SubscribeEvents(args) if args.topics.as_deref() == Some(&["x".to_owned()][..]) => {
            vec![ok(id, &reply_for(Verb::SubscribeEvents)), event(1)]
        }
        Call::SubscribeEvents(args) => {
            let reason = if args.follow { StreamEndReason::ShuttingDown } else { StreamEndReason::Complete };
            vec![ok(id, &reply_for(Verb::SubscribeEvents)), event(1), event(2), end(reason)]
        }
        Call::Cancel(args) if args.id != 7 => vec![
            ServerMessage::StreamEnd { id: args.id, reason: StreamEndReason::Cancelled },
            ok(id, &reply_for(Verb::Cancel)),
        ],
        call => vec![ok(id, &reply_for(call.verb()))],
    }
}

#[test]
fn python_client_and_rust_codec_agree_on_every_verb_stream_and_error() {
    let path = std::env::temp_dir().join(format!("wf-control-interop-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind");
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        serve(stream, ServerMessage::Welcome(welcome(Rights::Control)), answer)
    });
    let output = Command::new("python3")
        .args(["-c", SCRIPT])
        .env_clear()
        .env("PYTHONPATH", repo_root().join("sdk/python"))
        .env("WFSANDBOX_SOCKET", &path)
        .output()
        .expect("python3 must be installed");
    let requests = server.join().expect("server");
    std::fs::remove_file(&path).expect("cleanup");
    assert!(output.status.success(), "python failed: {}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_slice(&output.stdout).expect("python printed JSON");

    let calls: Vec<Call> = requests.iter().map(|request| request.call.clone()).collect();
    let samples = sample_calls();
    assert_eq!(calls[..samples.len()], samples[..], "Python's requests decode into the sample calls");
    let ids: Vec<u64> = requests.iter().map(|request| request.id).collect();
    assert_eq!(ids, (1..=requests.len() as u64).collect::<Vec<_>>());

    assert_eq!(out["welcome"], value_of(&ServerMessage::Welcome(welcome(Rights::Control))));
    let expected_results: Vec<Value> =
        samples.iter().filter(|call| !call.opens_stream()).map(|call| value_of(&reply_for(call.verb()))).collect();
    assert_eq!(out["results"], Value::Array(expected_results));

    let mut chunk = value_of(&log_chunk());
    chunk.as_object_mut().map(|o| o.remove("kind"));
    let tail = value_of(&reply_for(Verb::Logs))["chunks"].clone();
    let mut chunks = tail.as_array().cloned().unwrap_or_default();
    chunks.push(chunk);
    assert_eq!(out["follow"], json!({"chunks": chunks, "end": "plugin_ended"}));
    assert_eq!(out["live"]["result"], value_of(&reply_for(Verb::SubscribeEvents)));
    assert_eq!(out["live"]["events"].as_array().map(Vec::len), Some(2));
    assert_eq!(out["live"]["events"][1]["time_ms"], 2);
    assert_eq!(out["live"]["events"][0]["kind"], Value::Null, "the kind tag is removed");
    assert_eq!(out["live"]["end"], "shutting_down");
    assert_eq!(out["replay"]["end"], "complete");
    let recorded = value_of(&reply_for(Verb::ListViolations));
    assert_eq!(out["violations"]["result"], recorded);
    let mut expected_items = recorded["violations"].as_array().cloned().unwrap_or_default();
    expected_items.reverse();
    expected_items.push(value_of(&violation()));
    assert_eq!(out["violations"]["items"], Value::Array(expected_items), "recorded oldest first, then the record");
    assert_eq!(out["violations"]["end"], "shutting_down");

    let errors = out["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), sample_errors().len());
    for (got, error) in errors.iter().zip(sample_errors()) {
        let wire = value_of(&error);
        let details = wire.get("details").cloned().unwrap_or_else(|| json!({}));
        assert_eq!(got, &json!([wire["code"], wire["message"], details, error.exit_code()]), "{error}");
    }
    assert!(matches!(sample_errors()[8], ControlError::NoSuchPlugin { .. }));

    assert_eq!(out["cancelled"], "cancelled");
    let last = requests.last().expect("requests");
    assert!(matches!(last.call, Call::Cancel(ref args) if args.id == last.id - 1));
}
