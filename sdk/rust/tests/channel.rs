//! The SDK against a fake supervisor on the other end of a socketpair.

use serde_json::json;
use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use wf_protocol::{
    read_message, write_message, PluginMessage, ProtocolError, SupervisorMessage, DEFAULT_MAX_FRAME_BYTES,
};
use wf_sdk::{Channel, Denied, Event, Hello, Incoming, SdkError};

const MAX: u32 = DEFAULT_MAX_FRAME_BYTES;

fn hello(protocol: u32) -> SupervisorMessage {
    SupervisorMessage::Hello { protocol, plugin: "energy_monitor".into(), instance: "run-1".into() }
}

fn event(watts: f64) -> SupervisorMessage {
    SupervisorMessage::Event { topic: "energy.update".into(), payload: json!({"watts": watts}), sender: "cli".into() }
}

/// A connected (supervisor, plugin channel) pair after a successful hello.
fn connected() -> (UnixStream, Channel) {
    let (mut supervisor, plugin) = UnixStream::pair().expect("socketpair");
    write_message(&mut supervisor, &hello(1)).expect("hello");
    let channel = Channel::from_stream(plugin, MAX).expect("handshake");
    (supervisor, channel)
}

#[test]
fn handshake_exposes_the_hello() {
    let (_supervisor, channel) = connected();
    assert_eq!(channel.hello(), &Hello { protocol: 1, plugin: "energy_monitor".into(), instance: "run-1".into() });
    assert_eq!(channel.max_frame_bytes(), MAX);
}

#[test]
fn handshake_failures() {
    let (mut supervisor, plugin) = UnixStream::pair().expect("socketpair");
    write_message(&mut supervisor, &event(1.0)).expect("write");
    assert!(matches!(Channel::from_stream(plugin, MAX), Err(SdkError::Handshake(_))));

    let (supervisor, plugin) = UnixStream::pair().expect("socketpair");
    drop(supervisor);
    assert!(matches!(Channel::from_stream(plugin, MAX), Err(SdkError::Handshake(_))));

    let (mut supervisor, plugin) = UnixStream::pair().expect("socketpair");
    write_message(&mut supervisor, &hello(2)).expect("write");
    assert!(matches!(Channel::from_stream(plugin, MAX), Err(SdkError::VersionMismatch { found: 2, expected: 1 })));
}

#[test]
fn events_until_the_supervisor_half_closes() {
    let (mut supervisor, mut channel) = connected();
    write_message(&mut supervisor, &event(42.5)).expect("write");
    write_message(&mut supervisor, &event(7.0)).expect("write");
    supervisor.shutdown(Shutdown::Write).expect("half-close");
    let first = channel.next_event().expect("event");
    assert_eq!(
        first,
        Some(Event { topic: "energy.update".into(), payload: json!({"watts": 42.5}), sender: "cli".into() })
    );
    assert_eq!(channel.next_event().expect("event").map(|e| e.payload), Some(json!({"watts": 7.0})));
    assert_eq!(channel.next_event().expect("eof"), None);
    // The write side still works after the supervisor's half-close.
    channel.publish("ui.render", &json!({"text": "bye"})).expect("publish after EOF");
    let got: Option<PluginMessage> = read_message(&mut supervisor, MAX).expect("read");
    assert_eq!(
        got,
        Some(PluginMessage::Publish {
            topic: "ui.render".into(),
            payload: json!({"text": "bye"}),
            claimed_sender: None
        })
    );
}

#[test]
fn publish_sends_one_frame() {
    let (mut supervisor, mut channel) = connected();
    channel.publish("ui.render", &json!({"widget": "energy", "text": "42.5 W"})).expect("publish");
    let got: Option<PluginMessage> = read_message(&mut supervisor, MAX).expect("read");
    assert_eq!(
        got,
        Some(PluginMessage::Publish {
            topic: "ui.render".into(),
            payload: json!({"widget": "energy", "text": "42.5 W"}),
            claimed_sender: None
        })
    );
}

#[test]
fn over_cap_publish_is_refused_unsent() {
    let (mut supervisor, plugin) = UnixStream::pair().expect("socketpair");
    write_message(&mut supervisor, &hello(1)).expect("hello");
    let mut channel = Channel::from_stream(plugin, 128).expect("handshake");
    let result = channel.publish("ui.render", &json!("x".repeat(200)));
    assert!(matches!(result, Err(SdkError::Protocol(ProtocolError::Oversized { max: 128, .. }))));
    drop(channel);
    let got: Option<PluginMessage> = read_message(&mut supervisor, MAX).expect("read");
    assert_eq!(got, None, "nothing may reach the wire");
}

#[test]
fn denied_surfaces_as_error_and_as_message() {
    let (mut supervisor, mut channel) = connected();
    let denied = SupervisorMessage::Denied { topic: "net.raw".into(), reason: "not writable".into() };
    write_message(&mut supervisor, &denied).expect("write");
    write_message(&mut supervisor, &event(1.0)).expect("write");
    write_message(&mut supervisor, &denied).expect("write");
    let result = channel.next_event();
    assert!(matches!(result, Err(SdkError::Denied { ref topic, .. }) if topic == "net.raw"), "{result:?}");
    assert!(channel.next_event().expect("channel still usable").is_some());
    assert_eq!(
        channel.next_message().expect("message"),
        Some(Incoming::Denied(Denied { topic: "net.raw".into(), reason: "not writable".into() }))
    );
}

#[test]
fn second_hello_is_unexpected() {
    let (mut supervisor, mut channel) = connected();
    write_message(&mut supervisor, &hello(1)).expect("write");
    assert!(matches!(channel.next_event(), Err(SdkError::UnexpectedMessage("hello"))));
}

#[test]
fn incoming_frames_are_validated() {
    let (mut supervisor, mut channel) = connected();
    supervisor.write_all(&u32::MAX.to_be_bytes()).expect("write");
    assert!(matches!(channel.next_event(), Err(SdkError::Protocol(ProtocolError::Oversized { .. }))));

    let (mut supervisor, mut channel) = connected();
    let body = br#"{"type":"event","topic":"t","payload":1,"sender":"s","admin":true}"#;
    supervisor.write_all(&(body.len() as u32).to_be_bytes()).expect("write");
    supervisor.write_all(body).expect("write");
    assert!(matches!(channel.next_event(), Err(SdkError::Protocol(ProtocolError::Malformed(_)))));

    let (mut supervisor, mut channel) = connected();
    supervisor.write_all(&[0, 0, 0, 10, b'{']).expect("write");
    drop(supervisor);
    assert!(matches!(channel.next_event(), Err(SdkError::Protocol(ProtocolError::Truncated))));
}
