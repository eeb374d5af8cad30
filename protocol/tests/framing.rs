//! Framing and validation of the plugin channel, through the public API only.

use serde_json::{json, Value};
use std::io::{Cursor, Read};
use wf_protocol::{
    decode_body, encode, encode_with_limit, read_message, write_message, write_message_with_limit, FrameDecoder,
    PluginMessage, ProtocolError, SupervisorMessage, DEFAULT_MAX_FRAME_BYTES, MAX_FRAME_BYTES_CEILING, MAX_JSON_DEPTH,
    PROTOCOL_VERSION,
};

const MAX: u32 = DEFAULT_MAX_FRAME_BYTES;

fn frame_of(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

fn supervisor_samples() -> Vec<SupervisorMessage> {
    vec![
        SupervisorMessage::Hello {
            protocol: PROTOCOL_VERSION,
            plugin: "energy_monitor".into(),
            instance: "i-1".into(),
        },
        SupervisorMessage::Event {
            topic: "energy.update".into(),
            payload: json!({"watts": 42.5, "tags": ["a", "ü", "\"]}"], "n": null, "big": u64::MAX, "neg": -7}),
            sender: "host".into(),
        },
        SupervisorMessage::Denied { topic: "net.raw".into(), reason: "topic not writable".into() },
    ]
}

fn decode_plugin(body: &[u8]) -> Result<PluginMessage, ProtocolError> {
    decode_body(body, MAX)
}

fn nested_payload(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = json!([value]);
    }
    value
}

#[test]
fn protocol_version_is_one() {
    assert_eq!(PROTOCOL_VERSION, 1);
}

#[test]
fn round_trip_through_blocking_helpers() {
    let mut wire = Vec::new();
    for msg in supervisor_samples() {
        write_message(&mut wire, &msg).expect("write");
    }
    let mut reader = Cursor::new(wire);
    for expected in supervisor_samples() {
        let got: Option<SupervisorMessage> = read_message(&mut reader, MAX).expect("read");
        assert_eq!(got, Some(expected));
    }
    let end: Option<SupervisorMessage> = read_message(&mut reader, MAX).expect("eof");
    assert_eq!(end, None);
}

#[test]
fn round_trip_plugin_publish() {
    let msg = PluginMessage::Publish {
        topic: "ui.render".into(),
        payload: json!({"widget": "energy", "text": "42 W"}),
        claimed_sender: None,
    };
    let frame = encode(&msg).expect("encode");
    assert_eq!(&frame[..4], &((frame.len() - 4) as u32).to_be_bytes());
    let got: Option<PluginMessage> = read_message(&mut Cursor::new(frame), MAX).expect("read");
    assert_eq!(got, Some(msg));
}

#[test]
fn wire_body_is_the_documented_json() {
    let frame =
        encode(&PluginMessage::Publish { topic: "t".into(), payload: json!(1), claimed_sender: None }).expect("encode");
    let body: Value = serde_json::from_slice(&frame[4..]).expect("json");
    assert_eq!(body, json!({"type": "publish", "topic": "t", "payload": 1}));
}

#[test]
fn decoder_handles_many_frames_in_one_buffer() {
    let mut wire = Vec::new();
    for msg in supervisor_samples() {
        wire.extend(encode(&msg).expect("encode"));
    }
    let mut decoder = FrameDecoder::new(MAX);
    let mut rest = &wire[..];
    let mut got = Vec::new();
    while !rest.is_empty() {
        let taken = decoder.push(rest);
        rest = &rest[taken..];
        while let Some(msg) = decoder.next_frame::<SupervisorMessage>().expect("frame") {
            got.push(msg);
        }
    }
    assert_eq!(got, supervisor_samples());
    decoder.finish().expect("clean end");
}

#[test]
fn decoder_takes_only_the_current_frame() {
    let one =
        encode(&PluginMessage::Publish { topic: "a".into(), payload: json!(1), claimed_sender: None }).expect("encode");
    let mut wire = one.clone();
    wire.extend(&one);
    let mut decoder = FrameDecoder::new(MAX);
    assert_eq!(decoder.push(&wire), one.len());
    assert_eq!(decoder.push(&wire[one.len()..]), 0, "nothing taken while a frame waits");
    assert_eq!(decoder.bytes_wanted(), 0);
    assert!(decoder.next_frame::<PluginMessage>().expect("frame").is_some());
    assert_eq!(decoder.bytes_wanted(), 4);
}

#[test]
fn byte_at_a_time_feeding() {
    let mut wire = Vec::new();
    for msg in supervisor_samples() {
        wire.extend(encode(&msg).expect("encode"));
    }
    let mut decoder = FrameDecoder::new(MAX);
    let mut got = Vec::new();
    for byte in &wire {
        assert_eq!(decoder.push(std::slice::from_ref(byte)), 1);
        if let Some(msg) = decoder.next_frame::<SupervisorMessage>().expect("frame") {
            got.push(msg);
        }
    }
    assert_eq!(got, supervisor_samples());

    // The blocking reader copes with one byte per read() too.
    struct Trickle(Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let end = buf.len().min(1);
            self.0.read(&mut buf[..end])
        }
    }
    let mut reader = Trickle(Cursor::new(wire));
    for expected in supervisor_samples() {
        assert_eq!(read_message::<SupervisorMessage>(&mut reader, MAX).expect("read"), Some(expected));
    }
}

#[test]
fn header_claiming_4_gib_allocates_nothing() {
    let mut decoder = FrameDecoder::new(MAX);
    let mut wire = vec![0xff, 0xff, 0xff, 0xff];
    wire.extend(vec![b'x'; 1000]);
    assert_eq!(decoder.push(&wire), wire.len(), "a broken stream is discarded");
    assert_eq!(decoder.buffered_capacity(), 0);
    assert!(matches!(
        decoder.next_frame::<PluginMessage>(),
        Err(ProtocolError::Oversized { len: 0xffff_ffff, max: MAX })
    ));
    // Framing is lost: the error sticks, more input is discarded, nothing is buffered.
    assert_eq!(decoder.push(&[0, 0, 0, 2, b'{', b'}']), 6);
    assert!(matches!(decoder.next_frame::<PluginMessage>(), Err(ProtocolError::Oversized { .. })));
    assert!(matches!(decoder.finish(), Err(ProtocolError::Oversized { .. })));
    assert_eq!(decoder.buffered_capacity(), 0);
}

#[test]
fn blocking_reader_stops_after_an_oversized_header() {
    /// Endless stream after the header; counts what was read.
    struct Endless {
        header: Vec<u8>,
        read: usize,
    }
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(4096);
            for (i, slot) in buf[..n].iter_mut().enumerate() {
                *slot = self.header.get(self.read + i).copied().unwrap_or(b'a');
            }
            self.read += n;
            Ok(n)
        }
    }
    let mut reader = Endless { header: vec![0xff; 4], read: 0 };
    let result = read_message::<PluginMessage>(&mut reader, MAX);
    assert!(matches!(result, Err(ProtocolError::Oversized { len: 0xffff_ffff, .. })));
    assert_eq!(reader.read, 4, "the body must not be read");
}

#[test]
fn cap_is_inclusive_and_exceeding_it_is_oversized() {
    let body = br#"{"type":"publish","topic":"t","payload":"xxxxxxxx"}"#;
    let exact = body.len() as u32;
    let mut decoder = FrameDecoder::new(exact);
    decoder.push(&frame_of(body));
    assert!(decoder.next_frame::<PluginMessage>().expect("at cap").is_some());
    let mut decoder = FrameDecoder::new(exact - 1);
    decoder.push(&frame_of(body));
    assert!(matches!(decoder.next_frame::<PluginMessage>(), Err(ProtocolError::Oversized { .. })));
    assert!(matches!(
        read_message::<PluginMessage>(&mut Cursor::new(frame_of(body)), exact - 1),
        Err(ProtocolError::Oversized { .. })
    ));
}

#[test]
fn huge_caps_are_lowered_to_the_ceiling() {
    let decoder = FrameDecoder::new(u32::MAX);
    assert_eq!(decoder.max_bytes(), MAX_FRAME_BYTES_CEILING);
    let header = (MAX_FRAME_BYTES_CEILING + 1).to_be_bytes();
    let mut decoder = FrameDecoder::new(u32::MAX);
    decoder.push(&header);
    assert!(matches!(decoder.next_frame::<PluginMessage>(), Err(ProtocolError::Oversized { .. })));
    assert_eq!(decoder.buffered_capacity(), 0);
}

#[test]
fn encode_refuses_over_cap_and_writes_nothing() {
    let msg = PluginMessage::Publish { topic: "t".into(), payload: json!("x".repeat(100)), claimed_sender: None };
    assert!(matches!(encode_with_limit(&msg, 50), Err(ProtocolError::Oversized { max: 50, .. })));
    let big =
        PluginMessage::Publish { topic: "t".into(), payload: json!("x".repeat(MAX as usize)), claimed_sender: None };
    assert!(matches!(encode(&big), Err(ProtocolError::Oversized { .. })));
    let mut wire = Vec::new();
    assert!(write_message_with_limit(&mut wire, &msg, 50).is_err());
    assert!(wire.is_empty());
}

#[test]
fn encode_refuses_what_a_peer_would_reject_as_too_deep() {
    let deepest_ok = PluginMessage::Publish {
        topic: "t".into(),
        payload: nested_payload(MAX_JSON_DEPTH as usize - 1),
        claimed_sender: None,
    };
    let frame = encode(&deepest_ok).expect("depth at limit");
    assert_eq!(read_message::<PluginMessage>(&mut Cursor::new(frame), MAX).expect("read"), Some(deepest_ok));
    let too_deep = PluginMessage::Publish {
        topic: "t".into(),
        payload: nested_payload(MAX_JSON_DEPTH as usize),
        claimed_sender: None,
    };
    assert!(matches!(encode(&too_deep), Err(ProtocolError::TooDeep { max: MAX_JSON_DEPTH })));
}

#[test]
fn zero_length_is_rejected() {
    let mut decoder = FrameDecoder::new(MAX);
    assert_eq!(decoder.push(&[0, 0, 0, 0, 1, 2]), 6);
    assert!(matches!(decoder.next_frame::<PluginMessage>(), Err(ProtocolError::ZeroLength)));
    assert!(matches!(
        read_message::<PluginMessage>(&mut Cursor::new(vec![0, 0, 0, 0]), MAX),
        Err(ProtocolError::ZeroLength)
    ));
    assert!(matches!(decode_plugin(b""), Err(ProtocolError::ZeroLength)));
}

#[test]
fn truncation_mid_header_and_mid_body() {
    let frame =
        encode(&PluginMessage::Publish { topic: "t".into(), payload: json!(1), claimed_sender: None }).expect("encode");
    for cut in [1, 3, 4, frame.len() - 1] {
        let result = read_message::<PluginMessage>(&mut Cursor::new(frame[..cut].to_vec()), MAX);
        assert!(matches!(result, Err(ProtocolError::Truncated)), "cut at {cut}");
        let mut decoder = FrameDecoder::new(MAX);
        decoder.push(&frame[..cut]);
        assert!(decoder.next_frame::<PluginMessage>().expect("incomplete").is_none());
        assert!(matches!(decoder.finish(), Err(ProtocolError::Truncated)), "cut at {cut}");
    }
}

#[test]
fn invalid_utf8_is_rejected() {
    let cases: [&[u8]; 4] = [
        b"{\"type\":\"publish\",\"topic\":\"\xff\",\"payload\":1}",
        // UTF-8-encoded surrogate U+D800.
        b"{\"type\":\"publish\",\"topic\":\"\xed\xa0\x80\",\"payload\":1}",
        // Overlong encoding of '/'.
        b"{\"type\":\"publish\",\"topic\":\"\xc0\xaf\",\"payload\":1}",
        // Truncated multi-byte sequence at the end of a string.
        b"{\"type\":\"publish\",\"topic\":\"\xe2\x82\",\"payload\":1}",
    ];
    for body in cases {
        assert!(matches!(decode_plugin(body), Err(ProtocolError::InvalidUtf8)), "{body:?}");
        let mut decoder = FrameDecoder::new(MAX);
        decoder.push(&frame_of(body));
        assert!(matches!(decoder.next_frame::<PluginMessage>(), Err(ProtocolError::InvalidUtf8)));
    }
}

#[test]
fn too_deep_is_rejected_before_parsing() {
    let deep = format!(r#"{{"type":"publish","topic":"t","payload":{}1{}}}"#, "[".repeat(40), "]".repeat(40));
    assert!(matches!(decode_plugin(deep.as_bytes()), Err(ProtocolError::TooDeep { max: MAX_JSON_DEPTH })));
    // Far beyond serde_json's own recursion limit: still our error, no stack trouble.
    let abyss = format!(r#"{{"payload":{}"#, "[".repeat(60_000));
    assert!(matches!(decode_plugin(abyss.as_bytes()), Err(ProtocolError::TooDeep { .. })));
}

#[test]
fn malformed_bodies_are_rejected() {
    let cases: &[&str] = &[
        r#"{"type":"publish","topic":"t"}"#,                              // missing field
        r#"{"type":"publish","topic":"t","payload":1,"extra":true}"#,     // unknown field
        r#"{"type":"publish","topic":7,"payload":1}"#,                    // wrong field type
        r#"{"type":"publish","topic":"a","topic":"b","payload":1}"#,      // duplicate field
        r#"{"type":"publish","type":"publish","topic":"a","payload":1}"#, // duplicate tag
        r#"{"type":"publish","topic":"t","payload":{"k":1,"k":2}}"#,      // duplicate payload key
        r#"{"topic":"t","payload":1}"#,                                   // no type
        r#"{"type":5,"topic":"t","payload":1}"#,                          // type not a string
        r#"{"type":"publish","topic":"t","payload":1} "#,                 // trailing whitespace
        r#"{"type":"publish","topic":"t","payload":1}{}"#,                // trailing object
        r#" {"type":"publish","topic":"t","payload":1}"#,                 // leading whitespace
        r#"["publish","t",1]"#,                                           // not an object
        r#"{"type":"publish","topic":"t","payload":NaN}"#,                // not JSON
        r#"{"type":"publish","topic":"\ud800","payload":1}"#,             // lone surrogate escape
        r#"{"type":"publish","topic":"t","payload":1"#,                   // unterminated
    ];
    for body in cases {
        let result = decode_plugin(body.as_bytes());
        assert!(matches!(result, Err(ProtocolError::Malformed(_))), "{body}: {result:?}");
    }
}

#[test]
fn unknown_types_are_named() {
    let result = decode_plugin(br#"{"type":"hello","protocol":1,"plugin":"p","instance":"i"}"#);
    assert!(matches!(result, Err(ProtocolError::UnknownType(ref t)) if t == "hello"), "{result:?}");
    let result: Result<SupervisorMessage, _> = decode_body(br#"{"type":"publish","topic":"t","payload":1}"#, MAX);
    assert!(matches!(result, Err(ProtocolError::UnknownType(ref t)) if t == "publish"));
    let result = decode_plugin(br#"{"type":"shutdown_host"}"#);
    assert!(matches!(result, Err(ProtocolError::UnknownType(ref t)) if t == "shutdown_host"));
}

#[test]
fn a_bad_body_does_not_break_the_stream() {
    let mut wire = frame_of(br#"{"type":"publish","topic":"t","payload":1,"x":1}"#);
    wire.extend(frame_of(b"\xff"));
    wire.extend(
        encode(&PluginMessage::Publish { topic: "ok".into(), payload: json!(2), claimed_sender: None })
            .expect("encode"),
    );
    let mut decoder = FrameDecoder::new(MAX);
    let mut rest = &wire[..];
    let mut results = Vec::new();
    while !rest.is_empty() {
        let taken = decoder.push(rest);
        rest = &rest[taken..];
        match decoder.next_frame::<PluginMessage>() {
            Ok(Some(msg)) => results.push(Ok(msg)),
            Ok(None) => {}
            Err(err) => results.push(Err(err.breaks_framing())),
        }
    }
    assert_eq!(results.len(), 3);
    assert_eq!(results[0], Err(false));
    assert_eq!(results[1], Err(false));
    assert_eq!(results[2], Ok(PluginMessage::Publish { topic: "ok".into(), payload: json!(2), claimed_sender: None }));
}
