//! Subscriptions, typed payloads and the publish queue, against a fake supervisor on the other
//! end of a socketpair.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;
use wf_protocol::{
    encode_with_limit, read_message, write_message, PluginMessage, ProtocolError, SupervisorMessage,
    DEFAULT_MAX_FRAME_BYTES,
};
use wf_sdk::{Channel, Denied, Event, Incoming, SdkError, QUEUE_FLUSH_BYTES};

const MAX: u32 = DEFAULT_MAX_FRAME_BYTES;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reading {
    watts: f64,
    seq: u64,
    source: String,
}

fn reading(seq: u64) -> Reading {
    Reading { watts: 40.0 + seq as f64 / 4.0, seq, source: "test".into() }
}

fn connected_with(max: u32) -> (UnixStream, Channel) {
    let (mut supervisor, plugin) = UnixStream::pair().expect("socketpair");
    let hello = SupervisorMessage::Hello { protocol: 1, plugin: "energy_sensor".into(), instance: "run-1".into() };
    write_message(&mut supervisor, &hello).expect("hello");
    supervisor.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let channel = Channel::from_stream(plugin, max).expect("handshake");
    (supervisor, channel)
}

fn connected() -> (UnixStream, Channel) {
    connected_with(MAX)
}

fn read(supervisor: &mut UnixStream) -> Option<PluginMessage> {
    read_message(supervisor, MAX).expect("a valid frame from the SDK")
}

fn publish(topic: &str, payload: Value) -> Option<PluginMessage> {
    Some(PluginMessage::publish(topic, payload))
}

/// True if the supervisor end has nothing to read right now.
fn nothing_pending(supervisor: &UnixStream) -> bool {
    supervisor.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let empty = matches!((&*supervisor).read(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock);
    supervisor.set_nonblocking(false).expect("blocking");
    empty
}

fn frame_len(topic: &str, payload: &Reading) -> usize {
    let value = serde_json::to_value(payload).expect("to_value");
    encode_with_limit(&PluginMessage::publish(topic, value), MAX).expect("encode").len()
}

#[test]
fn subscribe_and_unsubscribe_send_one_frame_each_and_return_at_once() {
    let (mut supervisor, mut channel) = connected();
    channel.subscribe(&["energy.update", "energy.*"]).expect("subscribe");
    assert_eq!(
        read(&mut supervisor),
        Some(PluginMessage::Subscribe { topics: vec!["energy.update".into(), "energy.*".into()] })
    );
    channel.unsubscribe(&["energy.*"]).expect("unsubscribe");
    assert_eq!(read(&mut supervisor), Some(PluginMessage::Unsubscribe { topics: vec!["energy.*".into()] }));
    // An empty request is valid: the answer is the current set.
    channel.subscribe(&[]).expect("empty subscribe");
    assert_eq!(read(&mut supervisor), Some(PluginMessage::Subscribe { topics: vec![] }));
}

#[test]
fn answers_to_subscriptions_are_messages_and_next_event_skips_the_set() {
    let (mut supervisor, mut channel) = connected();
    let denied = SupervisorMessage::Denied { topic: "secrets.*".into(), reason: "not readable".into() };
    let set = SupervisorMessage::Subscribed { topics: vec!["energy.update".into()] };
    let event = SupervisorMessage::Event {
        topic: "energy.update".into(),
        payload: json!({"watts": 1.5, "seq": 1, "source": "x"}),
        sender: "plugin:energy_sensor".into(),
    };
    for msg in [&denied, &set, &event, &set, &event] {
        write_message(&mut supervisor, msg).expect("write");
    }
    supervisor.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(
        channel.next_message().expect("denied"),
        Some(Incoming::Denied(Denied { topic: "secrets.*".into(), reason: "not readable".into() }))
    );
    assert_eq!(channel.next_message().expect("set"), Some(Incoming::Subscribed(vec!["energy.update".into()])));
    assert!(matches!(channel.next_message(), Ok(Some(Incoming::Event(_)))));
    let skipped = channel.next_event().expect("the set is skipped").expect("an event");
    assert_eq!(skipped.sender, "plugin:energy_sensor");
    assert_eq!(channel.next_event().expect("eof"), None);
}

#[test]
fn invalid_topics_are_refused_before_anything_is_sent() {
    let (mut supervisor, mut channel) = connected();
    let refused = |result: Result<(), SdkError>, name: &str| match result {
        Err(SdkError::InvalidTopic { topic, .. }) => assert_eq!(topic, name),
        other => panic!("{name:?}: {other:?}"),
    };
    refused(channel.publish("Energy.Update", &json!(1)), "Energy.Update");
    refused(channel.publish("energy.*", &json!(1)), "energy.*");
    refused(channel.publish_as("", &reading(1)), "");
    refused(channel.queue("a..b", &json!(1)), "a..b");
    refused(channel.queue_as("ui/render", &reading(1)), "ui/render");
    // One bad name refuses the whole request.
    refused(channel.subscribe(&["energy.update", "*"]), "*");
    refused(channel.unsubscribe(&["energy.*.raw"]), "energy.*.raw");
    assert_eq!(channel.queued_bytes(), 0);
    drop(channel);
    assert_eq!(read(&mut supervisor), None, "nothing may reach the wire");
}

#[test]
fn publish_as_sends_the_serialized_value() {
    let (mut supervisor, mut channel) = connected();
    channel.publish_as("energy.update", &reading(3)).expect("publish_as");
    assert_eq!(read(&mut supervisor), publish("energy.update", json!({"watts": 40.75, "seq": 3, "source": "test"})));
    channel.publish_as("ui.render", &json!({"text": "ok"})).expect("a Value is Serialize too");
    assert_eq!(read(&mut supervisor), publish("ui.render", json!({"text": "ok"})));
    channel.publish_as("energy.note", "plain").expect("unsized str");
    assert_eq!(read(&mut supervisor), publish("energy.note", json!("plain")));
}

#[test]
fn a_value_json_cannot_represent_is_an_encode_error_naming_the_topic() {
    let (mut supervisor, mut channel) = connected();
    let map_with_tuple_keys: HashMap<(u8, u8), u8> = [((1, 2), 3)].into_iter().collect();
    for result in
        [channel.publish_as("energy.map", &map_with_tuple_keys), channel.queue_as("energy.map", &map_with_tuple_keys)]
    {
        assert!(
            matches!(result, Err(SdkError::EncodePayload { ref topic, .. }) if topic == "energy.map"),
            "{result:?}"
        );
    }
    drop(channel);
    assert_eq!(read(&mut supervisor), None);
}

#[test]
fn payload_as_decodes_or_names_the_topic() {
    let event = Event {
        topic: "energy.update".into(),
        payload: json!({"watts": 40.75, "seq": 3, "source": "test"}),
        sender: "plugin:energy_sensor".into(),
    };
    assert_eq!(event.payload_as::<Reading>().expect("typed"), reading(3));
    let bad = Event { payload: json!({"watts": "lots"}), ..event };
    let err = bad.payload_as::<Reading>().expect_err("wrong shape");
    assert!(matches!(err, SdkError::DecodePayload { ref topic, .. } if topic == "energy.update"), "{err:?}");
    assert!(err.to_string().contains("energy.update"), "{err}");
}

#[test]
fn queued_frames_wait_for_flush_and_keep_their_order() {
    let (mut supervisor, mut channel) = connected();
    let mut expected_bytes = 0;
    for seq in 0..100 {
        channel.queue_as("energy.update", &reading(seq)).expect("queue");
        expected_bytes += frame_len("energy.update", &reading(seq));
    }
    channel.queue("energy.update", &json!({"raw": true})).expect("queue a Value");
    assert!(nothing_pending(&supervisor), "queued frames are not written before a flush");
    assert!(channel.queued_bytes() > expected_bytes);
    channel.flush().expect("flush");
    assert_eq!(channel.queued_bytes(), 0);
    for seq in 0..100 {
        let value = serde_json::to_value(reading(seq)).expect("to_value");
        assert_eq!(read(&mut supervisor), publish("energy.update", value), "frame {seq}");
    }
    assert_eq!(read(&mut supervisor), publish("energy.update", json!({"raw": true})));
    channel.flush().expect("an empty flush is a no-op");
    assert!(nothing_pending(&supervisor));
}

#[test]
fn unbuffered_sends_go_out_behind_the_queue() {
    let (mut supervisor, mut channel) = connected();
    channel.queue("energy.update", &json!(1)).expect("queue");
    channel.publish("energy.update", &json!(2)).expect("publish");
    channel.queue("energy.update", &json!(3)).expect("queue");
    channel.subscribe(&["energy.update"]).expect("subscribe");
    assert_eq!(channel.queued_bytes(), 0);
    assert_eq!(read(&mut supervisor), publish("energy.update", json!(1)));
    assert_eq!(read(&mut supervisor), publish("energy.update", json!(2)));
    assert_eq!(read(&mut supervisor), publish("energy.update", json!(3)));
    assert_eq!(read(&mut supervisor), Some(PluginMessage::Subscribe { topics: vec!["energy.update".into()] }));
}

#[test]
fn the_queue_flushes_itself_at_64_kib() {
    let (supervisor, mut channel) = connected();
    let reader = thread::spawn(move || {
        let mut supervisor = supervisor;
        let mut count = 0u64;
        while let Some(msg) = read(&mut supervisor) {
            assert_eq!(Some(msg), publish("energy.update", serde_json::to_value(reading(count)).expect("value")));
            count += 1;
        }
        count
    });
    let one = frame_len("energy.update", &reading(0));
    let mut flushed_at = None;
    for seq in 0..10_000 {
        let before = channel.queued_bytes();
        channel.queue_as("energy.update", &reading(seq)).expect("queue");
        assert!(channel.queued_bytes() < QUEUE_FLUSH_BYTES, "the queue never holds 64 KiB after a call");
        if channel.queued_bytes() < before && flushed_at.is_none() {
            flushed_at = Some(before);
        }
    }
    let flushed_at = flushed_at.expect("the queue flushed by itself");
    assert!(flushed_at + 2 * one >= QUEUE_FLUSH_BYTES, "flushed early, at {flushed_at} bytes");
    drop(channel); // flushes the rest, then closes
    assert_eq!(reader.join().expect("reader"), 10_000);
}

#[test]
fn the_queue_is_flushed_before_a_blocking_read() {
    let (supervisor, mut channel) = connected();
    // A supervisor that answers only after it has seen the queued frame: if the SDK read
    // before flushing, both sides would wait for each other.
    let answerer = thread::spawn(move || {
        let mut supervisor = supervisor;
        let got = read(&mut supervisor);
        let reply = SupervisorMessage::Event {
            topic: "energy.update".into(),
            payload: json!({"echo": true}),
            sender: "plugin:other".into(),
        };
        write_message(&mut supervisor, &reply).expect("reply");
        got
    });
    channel.queue("energy.update", &json!({"ping": 1})).expect("queue");
    let event = channel.next_event().expect("event").expect("not eof");
    assert_eq!(event.payload, json!({"echo": true}));
    assert_eq!(answerer.join().expect("answerer"), publish("energy.update", json!({"ping": 1})));
}

#[test]
fn queued_frames_get_the_same_size_and_depth_checks_as_publish() {
    let (mut supervisor, mut channel) = connected_with(256);
    channel.queue("energy.update", &json!(1)).expect("a small frame");
    let before = channel.queued_bytes();
    let big = json!("x".repeat(300));
    assert!(matches!(
        channel.queue("energy.update", &big),
        Err(SdkError::Protocol(ProtocolError::Oversized { max: 256, .. }))
    ));
    assert!(matches!(
        channel.publish("energy.update", &big),
        Err(SdkError::Protocol(ProtocolError::Oversized { max: 256, .. }))
    ));
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    assert!(matches!(channel.queue("energy.update", &deep), Err(SdkError::Protocol(ProtocolError::TooDeep { .. }))));
    assert!(matches!(channel.queue_as("energy.update", &deep), Err(SdkError::Protocol(ProtocolError::TooDeep { .. }))));
    assert!(matches!(channel.publish("energy.update", &deep), Err(SdkError::Protocol(ProtocolError::TooDeep { .. }))));
    assert_eq!(channel.queued_bytes(), before, "a refused frame is not queued");
    channel.flush().expect("flush");
    assert_eq!(read(&mut supervisor), publish("energy.update", json!(1)));
    assert!(nothing_pending(&supervisor), "nothing but the valid frame was sent");
}

#[test]
fn a_flush_that_fails_part_way_keeps_the_framing() {
    let (mut supervisor, plugin) = UnixStream::pair().expect("socketpair");
    let hello = SupervisorMessage::Hello { protocol: 1, plugin: "p".into(), instance: "i".into() };
    write_message(&mut supervisor, &hello).expect("hello");
    // A non-blocking plugin end makes a full socket buffer an error instead of a wait.
    plugin.set_nonblocking(true).expect("nonblocking");
    let mut channel = Channel::from_stream(plugin, MAX).expect("handshake");
    let text = "y".repeat(1000);
    let mut sent = 0u64;
    let failed = loop {
        match channel.queue("energy.update", &json!({"n": sent, "text": text})) {
            Ok(()) => sent += 1,
            Err(err) => break err,
        }
        assert!(sent < 100_000, "the socket buffer never filled");
    };
    assert!(
        matches!(failed, SdkError::Protocol(ProtocolError::Io { ref source, .. }) if source.kind() == ErrorKind::WouldBlock),
        "{failed:?}"
    );
    sent += 1; // the frame whose queueing triggered the failed flush is queued
    assert!(channel.queued_bytes() > 0, "the unwritten rest stays queued");
    let reader = thread::spawn(move || {
        let mut n = 0u64;
        while let Some(msg) = read(&mut supervisor) {
            let PluginMessage::Publish { payload, .. } = msg else { panic!("not a publish: {msg:?}") };
            assert_eq!(payload["n"], n, "frames arrive whole and in order");
            n += 1;
        }
        n
    });
    while let Err(err) = channel.flush() {
        assert!(
            matches!(err, SdkError::Protocol(ProtocolError::Io { ref source, .. }) if source.kind() == ErrorKind::WouldBlock)
        );
        thread::sleep(Duration::from_millis(1));
    }
    drop(channel);
    assert_eq!(reader.join().expect("reader"), sent);
}

#[test]
fn dropping_the_channel_flushes_the_queue() {
    let (mut supervisor, mut channel) = connected();
    channel.queue_as("energy.update", &reading(7)).expect("queue");
    drop(channel);
    assert_eq!(read(&mut supervisor), publish("energy.update", serde_json::to_value(reading(7)).expect("value")));
    assert_eq!(read(&mut supervisor), None);
}

/// `cargo test --release -p wf-sdk --test subscriptions_and_queue -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn queue_throughput() {
    let (supervisor, mut channel) = connected();
    let reader = thread::spawn(move || {
        let mut supervisor = supervisor;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0usize;
        loop {
            match supervisor.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    });
    let count = 1_000_000u64;
    let started = std::time::Instant::now();
    for seq in 0..count {
        channel.queue_as("energy.update", &reading(seq)).expect("queue");
    }
    channel.flush().expect("flush");
    let elapsed = started.elapsed();
    drop(channel);
    let bytes = reader.join().expect("reader");
    eprintln!("{count} events, {bytes} bytes in {elapsed:?}: {:.0} events/s", count as f64 / elapsed.as_secs_f64());
}
