//! Every way the control protocol refuses input, on both sides, and the server's encoding
//! fallbacks.

mod control_samples;

use control_samples::*;
use serde_json::{json, Value};
use std::io::Cursor;
use wf_protocol::control::{
    encode_client_message, encode_reply, encode_stream_item, next_client_message, read_server_message, request_decoder,
    Call, ClientMessage, ControlError, ErrorCode, EventItem, LogChunk, LogStream, PublishArgs, Rejection, Reply,
    Response, ServerMessage, StreamItem, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES,
};
use wf_protocol::{decode_body, ProtocolError, MAX_JSON_DEPTH};

/// Feeds one frame (or raw bytes) to a fresh server-side decoder.
fn server_reads(bytes: &[u8]) -> Result<Option<ClientMessage>, Rejection> {
    let mut decoder = request_decoder();
    let taken = decoder.push(bytes);
    assert!(taken <= bytes.len());
    next_client_message(&mut decoder)
}

fn rejection_of(body: &str) -> Rejection {
    match server_reads(&frame_of(body.as_bytes())) {
        Err(rejection) => rejection,
        Ok(msg) => panic!("accepted {body}: {msg:?}"),
    }
}

fn assert_refused(body: &str, code: ErrorCode, id: Option<u64>, needle: &str) {
    let rejection = rejection_of(body);
    assert_eq!(rejection.error.code(), code, "{body}: {:?}", rejection.error);
    assert_eq!(rejection.id, id, "{body}");
    assert!(rejection.error.message().contains(needle), "{body}: {:?} lacks {needle:?}", rejection.error.message());
    assert!(!rejection.close || code == ErrorCode::UnsupportedVersion, "{body}: framing was intact");
}

fn request(id: u64, verb: &str, args: Value) -> String {
    json!({"type": "request", "id": id, "verb": verb, "args": args}).to_string()
}

#[test]
fn oversized_request_is_refused_before_its_body_is_buffered_and_closes() {
    let mut decoder = request_decoder();
    let header = (MAX_REQUEST_BYTES + 1).to_be_bytes();
    assert_eq!(decoder.push(&header), 4);
    let rejection = next_client_message(&mut decoder).expect_err("oversized");
    assert_eq!(rejection.error, ControlError::too_large(u64::from(MAX_REQUEST_BYTES)));
    assert!(rejection.close);
    assert_eq!(rejection.id, None);
    assert_eq!(decoder.buffered_capacity(), 0);
    assert_eq!(
        value_of(&rejection.reply()),
        json!({"type": "error", "error": {"code": "too_large", "message": "frame exceeds the cap of 65536 bytes",
                                          "details": {"max_bytes": 65536}}})
    );
}

#[test]
fn request_exactly_at_the_cap_is_accepted_and_one_byte_more_is_not() {
    let skeleton = request(1, "publish", json!({"topic": "t", "payload": ""}));
    let fill = MAX_REQUEST_BYTES as usize - skeleton.len();
    let body = request(1, "publish", json!({"topic": "t", "payload": "x".repeat(fill)}));
    assert_eq!(body.len(), MAX_REQUEST_BYTES as usize);
    assert!(matches!(server_reads(&frame_of(body.as_bytes())), Ok(Some(ClientMessage::Request(_)))));
    let call = Call::Publish(PublishArgs { topic: "t".into(), payload: json!("x".repeat(fill + 1)) });
    let err = encode_client_message(&ClientMessage::request(1, call)).expect_err("client refuses to send");
    assert!(matches!(err, ProtocolError::Oversized { max, .. } if max == MAX_REQUEST_BYTES));
}

#[test]
fn zero_length_and_truncated_frames_break_framing() {
    let rejection = server_reads(&[0, 0, 0, 0]).expect_err("zero length");
    assert_eq!((rejection.error.code(), rejection.close), (ErrorCode::BadRequest, true));
    let mut decoder = request_decoder();
    decoder.push(&frame_of(b"{\"type\":")[..8]);
    assert!(matches!(next_client_message(&mut decoder), Ok(None)));
    assert!(matches!(decoder.finish(), Err(ProtocolError::Truncated)));
    let truncated = Rejection::from_protocol(&ProtocolError::Truncated, MAX_REQUEST_BYTES);
    assert_eq!((truncated.error.code(), truncated.close), (ErrorCode::BadRequest, true));
}

#[test]
fn too_deep_request_is_refused_and_the_connection_goes_on() {
    let mut args = json!(1);
    for _ in 0..MAX_JSON_DEPTH {
        args = json!([args]);
    }
    let deep = request(1, "publish", json!({"topic": "t", "payload": args}));
    let mut stream = frame_of(deep.as_bytes());
    stream.extend(frame_of(request(2, "list", json!({})).as_bytes()));
    let mut decoder = request_decoder();
    let taken = decoder.push(&stream);
    let rejection = next_client_message(&mut decoder).expect_err("too deep");
    assert_eq!(rejection.error.code(), ErrorCode::BadRequest);
    assert!(rejection.error.message().contains("nesting"), "{:?}", rejection.error);
    assert!(!rejection.close);
    decoder.push(&stream[taken..]);
    assert!(matches!(
        next_client_message(&mut decoder),
        Ok(Some(ClientMessage::Request(wf_protocol::control::Request { id: 2, .. })))
    ));
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    assert_refused(
        r#"{"type":"request","id":4,"verb":"list","args":{},"extra":1}"#,
        ErrorCode::BadRequest,
        Some(4),
        "extra",
    );
    assert_refused(&request(5, "stop", json!({"name": "a", "force": true})), ErrorCode::BadRequest, Some(5), "force");
    assert_refused(&request(6, "list", json!({"all": true})), ErrorCode::BadRequest, Some(6), "all");
    assert_refused(
        &request(7, "load", json!({"manifest": {"inline": {"document": {}, "plugin_dir": "/p", "x": 1}}})),
        ErrorCode::BadRequest,
        Some(7),
        "x",
    );
    assert_refused(r#"{"type":"hello","protocol":1,"client":"c","user":"root"}"#, ErrorCode::BadRequest, None, "user");
}

#[test]
fn unknown_verb_is_answered_under_the_request_id() {
    assert_refused(&request(11, "frobnicate", json!({})), ErrorCode::UnknownVerb, Some(11), "frobnicate");
    assert_refused(&request(12, "LIST", json!({})), ErrorCode::UnknownVerb, Some(12), "LIST");
    let reply = rejection_of(&request(11, "frobnicate", json!({}))).reply();
    assert!(matches!(
        reply,
        ServerMessage::Response(Response { id: 11, outcome: Err(ControlError::UnknownVerb { .. }) })
    ));
}

#[test]
fn unsupported_version_is_refused_and_closes_whatever_else_the_hello_holds() {
    for body in [
        r#"{"type":"hello","protocol":2,"client":"c"}"#,
        r#"{"type":"hello","protocol":0,"client":"c"}"#,
        r#"{"type":"hello","protocol":2,"client":"c","features":["x"]}"#,
        r#"{"type":"hello","protocol":18446744073709551615}"#,
    ] {
        let rejection = rejection_of(body);
        assert!(matches!(&rejection.error, ControlError::UnsupportedVersion { supported, .. } if supported == &[1]));
        assert!(rejection.close, "{body}");
        assert!(matches!(rejection.reply(), ServerMessage::Error { .. }));
    }
    assert_refused(r#"{"type":"hello","protocol":"1","client":"c"}"#, ErrorCode::BadRequest, None, "hello");
    assert_refused(r#"{"type":"hello","client":"c"}"#, ErrorCode::BadRequest, None, "protocol");
}

#[test]
fn bad_ids_are_refused_without_an_id() {
    for id in [r#""5""#, "-1", "1.5", "18446744073709551616", "null", "[1]", "true"] {
        let body = format!(r#"{{"type":"request","id":{id},"verb":"list","args":{{}}}}"#);
        assert_refused(&body, ErrorCode::BadRequest, None, "request");
    }
    assert_refused(r#"{"type":"request","verb":"list"}"#, ErrorCode::BadRequest, None, "id");
    assert_refused(r#"{"type":"request","id":3,"verb":7}"#, ErrorCode::BadRequest, Some(3), "expected a string");
    assert_refused(r#"{"type":"request","id":3}"#, ErrorCode::BadRequest, Some(3), "verb");
}

#[test]
fn duplicate_keys_are_refused_anywhere() {
    assert_refused(r#"{"type":"request","id":1,"id":2,"verb":"list"}"#, ErrorCode::BadRequest, None, "duplicate");
    assert_refused(
        r#"{"type":"request","id":1,"verb":"stop","args":{"name":"a","name":"b"}}"#,
        ErrorCode::BadRequest,
        None,
        "duplicate",
    );
    assert_refused(
        r#"{"type":"request","id":1,"verb":"publish","args":{"topic":"t","payload":{"a":{"k":1,"k":2}}}}"#,
        ErrorCode::BadRequest,
        None,
        "duplicate",
    );
    assert_refused(
        r#"{"type":"hello","type":"hello","protocol":1,"client":"c"}"#,
        ErrorCode::BadRequest,
        None,
        "duplicate",
    );
}

#[test]
fn bodies_that_are_not_one_message_object_are_refused() {
    for body in [&b"[1]"[..], b"{}", b"{\"type\":1}", b"{} ", b"{\"type\":\"request\"}{}", b"\xff{}", b"{\"a\":NaN}"] {
        let rejection = server_reads(&frame_of(body)).expect_err("refused");
        assert_eq!((rejection.error.code(), rejection.close, rejection.id), (ErrorCode::BadRequest, false, None));
    }
    assert_refused(r#"{"type":"welcome"}"#, ErrorCode::BadRequest, None, "unknown message type");
}

#[test]
fn args_must_be_an_object_of_the_right_shape() {
    assert_refused(&request(1, "list", json!([])), ErrorCode::BadRequest, Some(1), "object");
    assert_refused(&request(1, "list", json!("x")), ErrorCode::BadRequest, Some(1), "object");
    assert_refused(&request(1, "stop", json!({})), ErrorCode::BadRequest, Some(1), "name");
    assert_refused(&request(1, "stop", json!({"name": 5})), ErrorCode::BadRequest, Some(1), "stop");
    assert_refused(&request(1, "stop", json!({"name": "a", "grace_ms": -1})), ErrorCode::BadRequest, Some(1), "stop");
    assert_refused(&request(1, "cancel", json!({"id": "7"})), ErrorCode::BadRequest, Some(1), "cancel");
    assert_refused(
        &request(1, "start", json!({"name": "a", "manifest": {"path": "/m.json"}})),
        ErrorCode::BadRequest,
        Some(1),
        "start",
    );
    assert_refused(&request(1, "start", json!({})), ErrorCode::BadRequest, Some(1), "start");
    assert_refused(
        &request(1, "load", json!({"manifest": {"path": "/m.json", "inline": {}}})),
        ErrorCode::BadRequest,
        Some(1),
        "load",
    );
    assert_refused(&request(1, "publish", json!({"topic": "t"})), ErrorCode::BadRequest, Some(1), "payload");
}

#[test]
fn arguments_out_of_range_are_refused() {
    let cases = [
        ("load", json!({"manifest": {"path": "manifest.json"}}), "absolute"),
        ("load", json!({"manifest": {"path": "/a\u{0}b"}}), "NUL"),
        ("load", json!({"manifest": {"path": format!("/{}", "a".repeat(4096))}}), "4096"),
        ("validate", json!({"manifest": {"inline": {"document": [], "plugin_dir": "/p"}}}), "document"),
        ("validate", json!({"manifest": {"inline": {"document": {}, "plugin_dir": "p"}}}), "plugin_dir"),
        ("start", json!({"name": ""}), "empty"),
        ("stop", json!({"name": "a\nb"}), "control"),
        ("stop", json!({"name": "a", "grace_ms": 600_001}), "600000"),
        ("status", json!({"name": "n".repeat(257)}), "256"),
        ("logs", json!({"name": "a", "tail_bytes": 131_073}), "131072"),
        ("publish", json!({"topic": "", "payload": 1}), "topic"),
        ("subscribe_events", json!({"topics": []}), "empty"),
        ("subscribe_events", json!({"topics": vec!["t"; 65]}), "64"),
        ("subscribe_events", json!({"topics": ["ok", ""]}), "topics"),
        ("subscribe_events", json!({"backlog": 257}), "256"),
        ("list_violations", json!({"limit": 0}), "at least 1"),
        ("list_violations", json!({"limit": 1001}), "1000"),
        ("reload_policy", json!({"path": "policy.json"}), "absolute"),
    ];
    for (verb, args, needle) in cases {
        assert_refused(&request(9, verb, args), ErrorCode::BadRequest, Some(9), needle);
    }
    assert!(server_reads(&frame_of(request(9, "stop", json!({"name": "a", "grace_ms": 600_000})).as_bytes())).is_ok());
    assert!(server_reads(&frame_of(request(9, "logs", json!({"name": "a", "tail_bytes": 0})).as_bytes())).is_ok());
}

#[test]
fn hello_client_name_is_bounded() {
    assert_refused(r#"{"type":"hello","protocol":1,"client":""}"#, ErrorCode::BadRequest, None, "client");
    let long = format!(r#"{{"type":"hello","protocol":1,"client":"{}"}}"#, "c".repeat(65));
    assert_refused(&long, ErrorCode::BadRequest, None, "client");
    assert_refused(r#"{"type":"hello","protocol":1,"client":"a\u0007"}"#, ErrorCode::BadRequest, None, "client");
    assert_refused(r#"{"type":"hello","protocol":1,"client":"c","token":5}"#, ErrorCode::BadRequest, None, "hello");
    let ok = format!(r#"{{"type":"hello","protocol":1,"client":"{}"}}"#, "é".repeat(64));
    assert!(matches!(server_reads(&frame_of(ok.as_bytes())), Ok(Some(ClientMessage::Hello(_)))));
}

#[test]
fn echoed_client_text_is_bounded() {
    let rejection = rejection_of(&request(1, &"v".repeat(10_000), json!({})));
    assert!(rejection.error.message().len() < 200, "{}", rejection.error.message().len());
}

fn server_decode(body: &str) -> Result<ServerMessage, ProtocolError> {
    decode_body(body.as_bytes(), MAX_RESPONSE_BYTES)
}

#[test]
fn clients_refuse_inconsistent_or_unknown_server_messages() {
    let bad = [
        r#"{"type":"response","id":1,"ok":true}"#,
        r#"{"type":"response","id":1,"ok":true,"result":[]}"#,
        r#"{"type":"response","id":1,"ok":true,"result":{},"error":{"code":"internal","message":"m"}}"#,
        r#"{"type":"response","id":1,"ok":false}"#,
        r#"{"type":"response","id":1,"ok":false,"result":{}}"#,
        r#"{"type":"response","id":1,"ok":false,"error":{"code":"auth_backoff","message":"m"}}"#,
        r#"{"type":"response","id":1,"ok":false,"error":{"code":"internal","message":"m","details":{}}}"#,
        r#"{"type":"response","id":1,"ok":false,"error":{"code":"teapot","message":"m"}}"#,
        r#"{"type":"response","id":1,"ok":false,"error":{"code":"too_large","message":"m","details":{"max_bytes":1,"x":2}}}"#,
        r#"{"type":"response","id":1,"ok":true,"result":{"a":1,"a":2}}"#,
        r#"{"type":"response","id":-1,"ok":true,"result":{}}"#,
        r#"{"type":"welcome","protocol":1,"server":"s","session":"x","rights":"admin","idle_timeout_ms":1}"#,
        r#"{"type":"welcome","protocol":1,"server":"s","session":"x","rights":"read"}"#,
        r#"{"type":"stream","id":1,"item":{"kind":"metric","value":1}}"#,
        r#"{"type":"stream","id":1,"item":{"kind":"log","stream":"stdout","time_ms":1,"text":"t","extra":1}}"#,
        r#"{"type":"stream_end","id":1,"reason":"bored"}"#,
        r#"{"type":"stream_end","id":1}"#,
        r#"{"type":"error","error":{"code":"internal","message":"m"},"id":1}"#,
    ];
    for body in bad {
        let err = server_decode(body).expect_err(body);
        assert!(matches!(err, ProtocolError::Malformed(_)), "{body}: {err}");
    }
    assert!(matches!(server_decode(r#"{"type":"goodbye"}"#), Err(ProtocolError::UnknownType(_))));
}

#[test]
fn a_result_of_the_wrong_shape_for_its_verb_is_refused() {
    let reply = value_of(&sample_replies()[0]);
    assert!(Reply::parse(wf_protocol::control::Verb::List, reply.clone()).is_err());
    let mut extra = reply;
    extra["surprise"] = json!(1);
    assert!(Reply::parse(wf_protocol::control::Verb::Load, extra).is_err());
}

#[test]
fn oversized_server_frame_is_refused_before_allocation() {
    let mut stream = (MAX_RESPONSE_BYTES + 1).to_be_bytes().to_vec();
    stream.extend(b"{}");
    let err = read_server_message(&mut Cursor::new(stream)).expect_err("oversized");
    assert!(matches!(err, ProtocolError::Oversized { max, .. } if max == MAX_RESPONSE_BYTES));
}

#[test]
fn a_reply_too_large_for_the_cap_becomes_too_large_under_the_same_id() {
    let chunk = LogChunk { stream: LogStream::Stdout, time_ms: 0, text: "\u{1}".repeat(200_000) };
    let reply = Reply::Logs(wf_protocol::control::LogsResult { chunks: vec![chunk], dropped_bytes: 0 });
    let frame = encode_reply(77, Ok(&reply));
    let msg: ServerMessage = decode_body(body_of(&frame), MAX_RESPONSE_BYTES).expect("fallback decodes");
    assert!(matches!(
        msg,
        ServerMessage::Response(Response { id: 77, outcome: Err(ControlError::TooLarge { max_bytes, .. }) })
            if max_bytes == u64::from(MAX_RESPONSE_BYTES)
    ));
    let frame = encode_reply(78, Err(&ControlError::no_such_plugin("x")));
    let msg: ServerMessage = decode_body(body_of(&frame), MAX_RESPONSE_BYTES).expect("error decodes");
    assert!(matches!(
        msg,
        ServerMessage::Response(Response { id: 78, outcome: Err(ControlError::NoSuchPlugin { .. }) })
    ));
}

#[test]
fn an_event_that_does_not_fit_is_streamed_without_its_payload() {
    let mut deep = json!(1);
    // As deep as a plugin may publish: 31 levels below the publish message object.
    for _ in 0..MAX_JSON_DEPTH - 1 {
        deep = json!([deep]);
    }
    let huge = json!("x".repeat(MAX_RESPONSE_BYTES as usize));
    for payload in [deep, huge] {
        let event = EventItem { payload, ..event_item() };
        let frame = encode_stream_item(3, &StreamItem::Event(event)).expect("fallback");
        let msg: ServerMessage = decode_body(body_of(&frame), MAX_RESPONSE_BYTES).expect("decodes");
        let ServerMessage::Stream { id: 3, item: StreamItem::Event(sent) } = msg else {
            panic!("not an event item");
        };
        assert!(sent.payload_dropped);
        assert_eq!(sent.payload, Value::Null);
        assert_eq!(sent.topic, "ui.render");
    }
    let fits = encode_stream_item(3, &StreamItem::Event(event_item())).expect("fits");
    let msg: ServerMessage = decode_body(body_of(&fits), MAX_RESPONSE_BYTES).expect("decodes");
    assert!(matches!(
        msg,
        ServerMessage::Stream { item: StreamItem::Event(EventItem { payload_dropped: false, .. }), .. }
    ));
}

#[test]
fn a_log_chunk_over_the_cap_is_an_error_not_a_silent_cut() {
    let chunk = LogChunk { stream: LogStream::Stdout, time_ms: 0, text: "y".repeat(MAX_RESPONSE_BYTES as usize) };
    assert!(matches!(encode_stream_item(1, &StreamItem::Log(chunk)), Err(ProtocolError::Oversized { .. })));
}
