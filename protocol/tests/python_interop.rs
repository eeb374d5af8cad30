//! The Python side of the plugin channel against this crate: the `wfplugin` SDK, the
//! SDK-free example in docs/protocol.md, and the energy-monitor example plugin, each run
//! as a real python3 process with the channel on fd 3.

use serde_json::{json, Value};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use wf_protocol::{read_message, write_message, PluginMessage, SupervisorMessage, DEFAULT_MAX_FRAME_BYTES};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Starts `python3 args...` with the plugin end of a socketpair on fd 3, as the sandbox does.
fn spawn_python(args: &[&str]) -> (UnixStream, Child) {
    let (supervisor, plugin_end) = UnixStream::pair().expect("socketpair");
    let fd = plugin_end.as_raw_fd();
    let mut command = Command::new("python3");
    command
        .args(args)
        .env_clear()
        .env("WFSANDBOX_CHANNEL_FD", "3")
        .env("PYTHONPATH", repo_root().join("sdk/python"))
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: dup2 and fcntl are async-signal-safe; fd 3 ends up without close-on-exec.
    unsafe {
        command.pre_exec(move || {
            let rc = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
            match rc {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            }
        });
    }
    let child = command.spawn().expect("python3 must be installed");
    (supervisor, child)
}

/// Sends hello + `messages`, half-closes, collects every publish until the plugin closes.
fn converse(mut supervisor: UnixStream, child: Child, messages: &[SupervisorMessage]) -> Vec<(String, Value)> {
    let hello = SupervisorMessage::Hello { protocol: 1, plugin: "py".into(), instance: "t-1".into() };
    write_message(&mut supervisor, &hello).expect("hello");
    for msg in messages {
        write_message(&mut supervisor, msg).expect("send");
    }
    supervisor.shutdown(Shutdown::Write).expect("half-close");
    let mut published = Vec::new();
    loop {
        match read_message::<PluginMessage>(&mut supervisor, DEFAULT_MAX_FRAME_BYTES) {
            Ok(Some(PluginMessage::Publish { topic, payload, .. })) => published.push((topic, payload)),
            Ok(Some(other)) => panic!("the example sent {other:?}, not a publish"),
            Ok(None) => break,
            Err(err) => panic!("python sent an invalid frame: {err}"),
        }
    }
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "python failed: {}", String::from_utf8_lossy(&output.stderr));
    published
}

fn event(topic: &str, payload: Value) -> SupervisorMessage {
    SupervisorMessage::Event { topic: topic.into(), payload, sender: "cli".into() }
}

const ECHO_PLUGIN: &str = r#"
import wfplugin
ch = wfplugin.Channel()
ch.publish("hello.seen", list(ch.hello))
for msg in ch.messages():
    if isinstance(msg, wfplugin.Denial):
        ch.publish("denied.seen", {"topic": msg.topic, "reason": msg.reason})
    else:
        ch.publish("echo", {"topic": msg.topic, "payload": msg.payload, "sender": msg.sender})
"#;

#[test]
fn python_sdk_round_trips_with_the_rust_codec() {
    let tricky =
        json!({"text": "ü \"quoted\" \\ [{", "n": [1, -2, 3.25, null, true], "big": u64::MAX, "deep": [[[[{}]]]]});
    let messages = [
        event("energy.update", json!({"watts": 42.5})),
        event("odd.payload", tricky.clone()),
        SupervisorMessage::Denied { topic: "net.raw".into(), reason: "not writable".into() },
    ];
    let (supervisor, child) = spawn_python(&["-c", ECHO_PLUGIN]);
    let published = converse(supervisor, child, &messages);
    assert_eq!(
        published,
        vec![
            ("hello.seen".to_owned(), json!([1, "py", "t-1"])),
            ("echo".to_owned(), json!({"topic": "energy.update", "payload": {"watts": 42.5}, "sender": "cli"})),
            ("echo".to_owned(), json!({"topic": "odd.payload", "payload": tricky, "sender": "cli"})),
            ("denied.seen".to_owned(), json!({"topic": "net.raw", "reason": "not writable"})),
        ]
    );
}

/// The python block that follows the `example: raw-python` marker in docs/protocol.md.
fn documented_raw_python_example() -> String {
    let doc = std::fs::read_to_string(repo_root().join("docs/protocol.md")).expect("docs/protocol.md");
    let after_marker = doc.split("<!-- example: raw-python").nth(1).expect("example marker");
    let code = after_marker.split("```python\n").nth(1).expect("python block");
    code.split("```").next().expect("block end").to_owned()
}

#[test]
fn documented_sdk_free_python_example_speaks_the_protocol() {
    let code = documented_raw_python_example();
    assert!(!code.contains("wfplugin"), "the example must not use the SDK");
    assert!(code.lines().count() <= 14, "the example should stay short");
    let (supervisor, child) = spawn_python(&["-c", &code]);
    let published = converse(
        supervisor,
        child,
        &[event("energy.update", json!({"watts": 1})), event("energy.update", json!({"watts": 2}))],
    );
    assert_eq!(published.len(), 2);
    assert!(published.iter().all(|(topic, payload)| topic == "ui.render" && payload["widget"] == "raw"));
    assert_eq!(published[1].1["text"], "{'watts': 2}");
}

#[test]
fn energy_monitor_example_renders_each_reading() {
    let main_py = repo_root().join("examples/plugins/energy-monitor/main.py");
    let (supervisor, child) = spawn_python(&[main_py.to_str().expect("utf-8 path")]);
    let published = converse(
        supervisor,
        child,
        &[
            event("energy.update", json!({"watts": 42.5})),
            event("energy.update", json!({"watts": 1500})),
            event("energy.update", json!({"watts": "lots"})),
            SupervisorMessage::Denied { topic: "ui.render".into(), reason: "test".into() },
        ],
    );
    assert_eq!(
        published,
        vec![
            ("ui.render".into(), json!({"widget": "energy", "text": "42.5 W", "watts": 42.5, "level": "normal"})),
            ("ui.render".into(), json!({"widget": "energy", "text": "1500.0 W", "watts": 1500, "level": "high"})),
            ("ui.render".into(), json!({"widget": "energy", "text": "invalid reading", "level": "unknown"})),
        ]
    );
}
