//! The SDK's client-side topic check agrees with the broker's rule (`wf_policy::topic`, a
//! dev-dependency only): a name the SDK refuses is one the broker would refuse, and the other
//! way round, for publish topics and for subscription patterns.

use serde_json::json;
use std::os::unix::net::UnixStream;
use std::thread;
use wf_protocol::{read_message, write_message, PluginMessage, SupervisorMessage, DEFAULT_MAX_FRAME_BYTES};
use wf_sdk::{Channel, SdkError};

/// Every string over a small alphabet up to `len` characters, plus edge cases.
fn candidates() -> Vec<String> {
    let alphabet = ['a', 'z', '0', '_', '.', '*', 'A', '-', 'é', ' '];
    let mut all = vec![String::new()];
    let mut level = vec![String::new()];
    for _ in 0..4 {
        level = level.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
        all.extend(level.iter().cloned());
    }
    for n in [126, 127, 128, 129] {
        all.push("a".repeat(n));
        all.push(format!("{}.*", "a".repeat(n - 2)));
        all.push(format!("{}.b", "a".repeat(n - 2)));
    }
    all.extend(["energy.update", "energy.*", "ui.render", "a1_b.c_2", "a.*.b", "a.**", "\0", "a\nb"].map(String::from));
    all
}

#[test]
fn the_sdk_refuses_exactly_what_the_broker_refuses() {
    let (mut supervisor, plugin) = UnixStream::pair().expect("socketpair");
    let hello = SupervisorMessage::Hello { protocol: 1, plugin: "p".into(), instance: "i".into() };
    write_message(&mut supervisor, &hello).expect("hello");
    let mut channel = Channel::from_stream(plugin, DEFAULT_MAX_FRAME_BYTES).expect("handshake");
    let drain = thread::spawn(move || {
        let mut n = 0usize;
        while read_message::<PluginMessage>(&mut supervisor, DEFAULT_MAX_FRAME_BYTES).expect("frame").is_some() {
            n += 1;
        }
        n
    });
    let mut sent = 0;
    for name in candidates() {
        let as_topic = channel.queue(&name, &json!(null));
        assert_eq!(as_topic.is_ok(), wf_policy::topic_is_valid(&name), "publish topic {name:?}: {as_topic:?}");
        let as_pattern = channel.subscribe(&[name.as_str()]);
        assert_eq!(as_pattern.is_ok(), wf_policy::topic::grant_is_valid(&name), "pattern {name:?}: {as_pattern:?}");
        for result in [as_topic, as_pattern] {
            match result {
                Ok(()) => sent += 1,
                Err(SdkError::InvalidTopic { .. }) => {}
                Err(other) => panic!("{name:?}: {other:?}"),
            }
        }
    }
    drop(channel);
    assert_eq!(drain.join().expect("drain"), sent);
}
