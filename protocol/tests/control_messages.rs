//! Round trips of every control message through the public encoders and decoders, and the
//! fixed parts of the protocol (verb rights, error codes, exit codes).

mod control_samples;

use control_samples::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use wf_protocol::control::{
    encode_client_message, encode_server_message, exit_code, ClientFrame, ClientMessage, ControlError, ErrorCode,
    Hello, Reply, Request, Response, Rights, ServerMessage, StreamEndReason, StreamItem, Verb,
    CONTROL_PROTOCOL_VERSION, EXIT_DAEMON_NOT_RUNNING, EXIT_NOT_AUTHORISED, EXIT_NO_SUCH_PLUGIN, MAX_REQUEST_BYTES,
    MAX_RESPONSE_BYTES, SUPPORTED_VERSIONS,
};
use wf_protocol::{decode_body, ProtocolError};

fn client_round_trip(msg: &ClientMessage) -> ClientMessage {
    let frame = encode_client_message(msg).expect("encode");
    assert_eq!(u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize, frame.len() - 4);
    let typed: ClientMessage = decode_body(body_of(&frame), MAX_REQUEST_BYTES).expect("decode as ClientMessage");
    let frame_view: ClientFrame = decode_body(body_of(&frame), MAX_REQUEST_BYTES).expect("decode as ClientFrame");
    assert_eq!(frame_view.interpret().expect("interpret"), typed);
    typed
}

fn server_round_trip(msg: &ServerMessage) -> ServerMessage {
    let frame = encode_server_message(msg).expect("encode");
    decode_body(body_of(&frame), MAX_RESPONSE_BYTES).expect("decode")
}

#[test]
fn samples_cover_every_verb_reply_and_error_code() {
    assert_eq!(verbs_of(&sample_calls()), Verb::ALL.to_vec());
    let reply_verbs: Vec<Verb> = sample_replies().iter().map(Reply::verb).collect();
    assert_eq!(reply_verbs, Verb::ALL.to_vec());
    let codes: Vec<ErrorCode> = sample_errors().iter().map(ControlError::code).collect();
    assert_eq!(codes, ErrorCode::ALL.to_vec());
}

#[test]
fn hello_round_trips_with_and_without_token() {
    let token = "ab".repeat(32);
    for msg in [ClientMessage::hello("orchestrator", None), ClientMessage::hello("cli", Some(token.clone()))] {
        assert_eq!(client_round_trip(&msg), msg);
    }
    let wire = value_of(&ClientMessage::hello("cli", None));
    assert_eq!(wire, json!({"type": "hello", "protocol": 1, "client": "cli"}));
    let wire = value_of(&ClientMessage::hello("cli", Some(token.clone())));
    assert_eq!(wire, json!({"type": "hello", "protocol": 1, "client": "cli", "token": token}));
}

#[test]
fn hello_debug_never_shows_the_token() {
    let hello = Hello { protocol: 1, client: "cli".into(), token: Some("deadbeef".repeat(8)) };
    let shown = format!("{hello:?}");
    assert!(!shown.contains("deadbeef"), "{shown}");
    assert!(shown.contains("redacted"));
}

#[test]
fn every_request_round_trips() {
    for (id, call) in sample_calls().into_iter().enumerate() {
        let msg = ClientMessage::request(id as u64 * 1_000_000_007, call);
        assert_eq!(client_round_trip(&msg), msg);
    }
}

#[test]
fn request_wire_shape_is_flat_with_verb_and_args() {
    let call = wf_protocol::control::Call::Stop(wf_protocol::control::StopArgs {
        name: "energy_monitor".into(),
        grace_ms: Some(2000),
    });
    let wire = value_of(&ClientMessage::request(u64::MAX, call));
    assert_eq!(
        wire,
        json!({"type": "request", "id": u64::MAX, "verb": "stop", "args": {"name": "energy_monitor", "grace_ms": 2000}})
    );
    let start = wf_protocol::control::Call::Start(wf_protocol::control::StartArgs::Name("x".into()));
    assert_eq!(value_of(&ClientMessage::request(1, start))["args"], json!({"name": "x"}));
    let inline = value_of(&ClientMessage::request(
        1,
        wf_protocol::control::Call::Validate(wf_protocol::control::ValidateArgs { manifest: inline_manifest() }),
    ));
    assert_eq!(inline["args"]["manifest"]["inline"]["plugin_dir"], "/opt/plugins/energy");
}

#[test]
fn absent_or_null_args_mean_empty_args() {
    for body in [r#"{"type":"request","id":3,"verb":"list"}"#, r#"{"type":"request","id":3,"verb":"list","args":null}"#]
    {
        let msg: ClientMessage = decode_body(body.as_bytes(), MAX_REQUEST_BYTES).expect(body);
        assert!(matches!(msg, ClientMessage::Request(Request { id: 3, call: wf_protocol::control::Call::List(_) })));
    }
    let defaults: ClientMessage =
        decode_body(br#"{"type":"request","id":1,"verb":"subscribe_events","args":{}}"#, MAX_REQUEST_BYTES)
            .expect("defaults");
    let ClientMessage::Request(Request { call: wf_protocol::control::Call::SubscribeEvents(args), .. }) = defaults
    else {
        panic!("not a subscription: {defaults:?}");
    };
    assert_eq!((args.topics, args.backlog, args.follow), (None, 0, true));
}

#[test]
fn list_violations_follows_only_when_asked_and_then_opens_a_stream() {
    use wf_protocol::control::{Call, ViolationsArgs};
    let parse = |args: &str| -> Call {
        let body = format!(r#"{{"type":"request","id":1,"verb":"list_violations","args":{args}}}"#);
        match decode_body::<ClientMessage>(body.as_bytes(), MAX_REQUEST_BYTES).expect("request") {
            ClientMessage::Request(Request { call, .. }) => call,
            other => panic!("not a request: {other:?}"),
        }
    };
    let plain = parse("{}");
    assert_eq!(plain, Call::ListViolations(ViolationsArgs { name: None, limit: None, follow: false }));
    assert!(!plain.opens_stream());
    let followed = parse(r#"{"name":"energy_monitor","follow":true}"#);
    assert!(followed.opens_stream(), "{followed:?}");
    assert_eq!(value_of(&ClientMessage::request(1, followed))["args"]["follow"], json!(true));
    let wrong = br#"{"type":"request","id":1,"verb":"list_violations","args":{"follow":"yes"}}"#;
    assert!(decode_body::<ClientMessage>(wrong, MAX_REQUEST_BYTES).is_err(), "follow is a bool");
}

#[test]
fn welcome_stream_items_stream_ends_and_errors_round_trip() {
    let mut messages = vec![
        ServerMessage::Welcome(welcome(Rights::Read)),
        ServerMessage::Welcome(welcome(Rights::Control)),
        ServerMessage::Stream { id: 9, item: StreamItem::Event(event_item()) },
        ServerMessage::Stream { id: 9, item: StreamItem::Log(log_chunk()) },
        ServerMessage::Stream { id: 9, item: StreamItem::Violation { violation: violation() } },
    ];
    for reason in [
        StreamEndReason::Complete,
        StreamEndReason::Cancelled,
        StreamEndReason::Lagged,
        StreamEndReason::PluginEnded,
        StreamEndReason::ShuttingDown,
    ] {
        messages.push(ServerMessage::StreamEnd { id: 9, reason });
    }
    for error in sample_errors() {
        messages.push(ServerMessage::Error { error: error.clone() });
        messages.push(ServerMessage::Response(Response { id: 4, outcome: Err(error) }));
    }
    for msg in messages {
        assert_eq!(server_round_trip(&msg), msg);
    }
}

#[test]
fn every_reply_round_trips_as_a_response_result() {
    for (id, reply) in sample_replies().into_iter().enumerate() {
        let msg = ok(id as u64, &reply);
        let ServerMessage::Response(Response { id: got, outcome: Ok(result) }) = server_round_trip(&msg) else {
            panic!("not an ok response");
        };
        assert_eq!(got, id as u64);
        assert_eq!(Reply::parse(reply.verb(), result).expect("typed result"), reply);
    }
}

#[test]
fn server_wire_shapes_match_the_documentation() {
    assert_eq!(
        value_of(&ok(5, &Reply::Cancel(wf_protocol::control::CancelResult { cancelled: false }))),
        json!({"type": "response", "id": 5, "ok": true, "result": {"cancelled": false}})
    );
    let error = ServerMessage::Response(Response { id: 6, outcome: Err(ControlError::no_such_plugin("x")) });
    assert_eq!(
        value_of(&error),
        json!({"type": "response", "id": 6, "ok": false,
               "error": {"code": "no_such_plugin", "message": "no plugin named \"x\"", "details": {"name": "x"}}})
    );
    let item = ServerMessage::Stream { id: 2, item: StreamItem::Log(log_chunk()) };
    assert_eq!(value_of(&item)["item"]["kind"], "log");
    let item = ServerMessage::Stream { id: 3, item: StreamItem::Violation { violation: violation() } };
    let wire = value_of(&item);
    assert_eq!(wire["item"]["kind"], "violation", "{wire}");
    assert_eq!(wire["item"]["violation"], value_of(&violation()), "the record is nested whole, its own kind kept");
    let end = ServerMessage::StreamEnd { id: 2, reason: StreamEndReason::PluginEnded };
    assert_eq!(value_of(&end), json!({"type": "stream_end", "id": 2, "reason": "plugin_ended"}));
    let summary = value_of(&summary(wf_protocol::control::PluginState::Validated));
    assert_eq!(summary["pid"], Value::Null, "optional values are sent as null, not left out");
}

#[test]
fn error_details_exist_exactly_for_the_codes_that_define_them() {
    for error in sample_errors() {
        let wire = value_of(&error);
        assert_eq!(wire["code"], error.code().as_str());
        assert_eq!(wire["message"], error.message());
        assert_eq!(wire.get("details").is_some(), error.code().has_details(), "{wire}");
    }
    let backoff = value_of(&sample_errors()[5]);
    assert_eq!(backoff["details"], json!({"retry_after_ms": 4000}));
    let invalid = value_of(&sample_errors()[10]);
    assert_eq!(invalid["details"]["problems"][0]["pointer"], "/permissions/system/filesystem/read/0");
    let refused = value_of(&sample_errors()[12]);
    assert_eq!(refused["details"], json!({"layer": "landlock", "step": "landlock_restrict_self", "errno": 38}));
    let conflict = value_of(&sample_errors()[13]);
    assert_eq!(conflict["details"], json!({"name": "energy_monitor", "state": "running"}));
    let version = value_of(&ControlError::unsupported_version(9));
    assert_eq!(version["details"], json!({"supported": SUPPORTED_VERSIONS}));
}

#[test]
fn error_code_strings_are_stable_and_unique() {
    let expected = [
        "bad_request",
        "unknown_verb",
        "unsupported_version",
        "too_large",
        "not_authorised",
        "auth_backoff",
        "rate_limited",
        "session_expired",
        "no_such_plugin",
        "already_exists",
        "invalid_manifest",
        "invalid_policy",
        "refused",
        "conflict",
        "internal",
        "shutting_down",
    ];
    let names: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    assert_eq!(names, expected);
    for code in ErrorCode::ALL {
        assert_eq!(value_of(&code), json!(code.as_str()));
        assert_eq!(code.to_string(), code.as_str());
    }
}

#[test]
fn verb_names_and_rights_are_fixed() {
    let read = ["list", "status", "logs", "stats", "list_violations", "subscribe_events", "validate", "cancel"];
    let control = ["load", "start", "stop", "restart", "release", "publish", "reload_policy", "shutdown"];
    let mut seen = HashSet::new();
    for verb in Verb::ALL {
        assert_eq!(value_of(&verb), json!(verb.as_str()));
        assert_eq!(Verb::from_name(verb.as_str()), Some(verb));
        assert!(seen.insert(verb.as_str()));
        let expected = if read.contains(&verb.as_str()) { Rights::Read } else { Rights::Control };
        assert_eq!(verb.required_rights(), expected, "{verb}");
    }
    assert_eq!(seen.len(), read.len() + control.len());
    assert!(control.iter().all(|name| Verb::from_name(name).map(Verb::required_rights) == Some(Rights::Control)));
    assert_eq!(Verb::from_name("Start"), None);
}

#[test]
fn control_rights_cover_read_but_not_the_reverse() {
    assert!(Rights::Control.covers(Rights::Read));
    assert!(Rights::Control.covers(Rights::Control));
    assert!(Rights::Read.covers(Rights::Read));
    assert!(!Rights::Read.covers(Rights::Control));
    assert_eq!(value_of(&Rights::Read), json!("read"));
    assert_eq!(value_of(&Rights::Control), json!("control"));
}

#[test]
fn cli_exit_codes_tell_the_main_failures_apart() {
    let not_authorised = exit_code(ErrorCode::NotAuthorised);
    let no_such_plugin = exit_code(ErrorCode::NoSuchPlugin);
    assert_eq!(not_authorised, EXIT_NOT_AUTHORISED);
    assert_eq!(no_such_plugin, EXIT_NO_SUCH_PLUGIN);
    let distinct: HashSet<u8> = [not_authorised, no_such_plugin, EXIT_DAEMON_NOT_RUNNING].into_iter().collect();
    assert_eq!(distinct.len(), 3);
    assert_eq!(exit_code(ErrorCode::AuthBackoff), EXIT_NOT_AUTHORISED);
    assert_eq!(exit_code(ErrorCode::SessionExpired), EXIT_NOT_AUTHORISED);
    assert_eq!(exit_code(ErrorCode::Refused), 125, "same status as `wfsandbox run` uses for a refusal");
    for code in ErrorCode::ALL {
        assert_ne!(exit_code(code), 0, "{code} must fail the command");
    }
}

#[test]
fn protocol_version_is_one() {
    assert_eq!(CONTROL_PROTOCOL_VERSION, 1);
    assert_eq!(SUPPORTED_VERSIONS, &[1]);
    assert_eq!(MAX_REQUEST_BYTES, 64 * 1024);
    assert_eq!(MAX_RESPONSE_BYTES, 1024 * 1024);
}

#[test]
fn typed_client_decoding_refuses_what_the_server_refuses() {
    let err = decode_body::<ClientMessage>(br#"{"type":"request","id":1,"verb":"nope"}"#, MAX_REQUEST_BYTES)
        .expect_err("unknown verb");
    assert!(matches!(&err, ProtocolError::Malformed(text) if text.contains("unknown_verb")), "{err}");
    let err = decode_body::<ClientMessage>(br#"{"type":"bye"}"#, MAX_REQUEST_BYTES).expect_err("unknown type");
    assert!(matches!(&err, ProtocolError::UnknownType(found) if found == "bye"), "{err}");
}
