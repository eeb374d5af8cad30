//! The blocking `Connection` against a scripted server on a socketpair or a socket file.

mod control_samples;

use control_samples::*;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread;
use wf_protocol::control::{
    Call, ClientError, Connection, ControlError, ListArgs, NameArgs, Reply, Request, Response, Rights, ServerMessage,
    StopArgs, StreamEndReason, StreamItem, SubscribeEventsArgs, EXIT_DAEMON_NOT_RUNNING, EXIT_NOT_AUTHORISED,
    EXIT_NO_SUCH_PLUGIN, EXIT_PROTOCOL, EXIT_USAGE,
};

fn with_server(
    hello_answer: ServerMessage,
    answer: impl FnMut(&Request) -> Vec<ServerMessage> + Send + 'static,
) -> (UnixStream, thread::JoinHandle<Vec<Request>>) {
    let (client, server) = UnixStream::pair().expect("socketpair");
    let handle = thread::spawn(move || serve(server, hello_answer, answer));
    (client, handle)
}

fn scratch_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wf-control-{tag}-{}.sock", std::process::id()))
}

#[test]
fn handshake_then_typed_calls() {
    let replies = sample_replies();
    let list = replies[5].clone();
    let (client, server) =
        with_server(ServerMessage::Welcome(welcome(Rights::Read)), move |request| vec![ok(request.id, &list)]);
    let mut connection = Connection::handshake(client, "test", None).expect("welcome");
    assert_eq!(connection.welcome(), &welcome(Rights::Read));
    for _ in 0..3 {
        assert_eq!(connection.call(Call::List(ListArgs {})).expect("list"), replies[5]);
    }
    drop(connection);
    let seen = server.join().expect("server");
    assert_eq!(seen.iter().map(|request| request.id).collect::<Vec<_>>(), vec![1, 2, 3], "ids count up from 1");
}

#[test]
fn server_errors_become_typed_errors_with_cli_exit_codes() {
    let (client, server) = with_server(ServerMessage::Welcome(welcome(Rights::Control)), |request| {
        vec![ServerMessage::Response(Response { id: request.id, outcome: Err(ControlError::no_such_plugin("ghost")) })]
    });
    let mut connection = Connection::handshake(client, "test", None).expect("welcome");
    let err = connection.call(Call::Status(NameArgs { name: "ghost".into() })).expect_err("no such plugin");
    assert!(matches!(&err, ClientError::Control(ControlError::NoSuchPlugin { name, .. }) if name == "ghost"));
    assert_eq!(err.exit_code(), EXIT_NO_SUCH_PLUGIN);
    drop(connection);
    server.join().expect("server");
}

#[test]
fn refused_hello_is_not_authorised() {
    let refusal = ServerMessage::Error { error: ControlError::not_authorised("uid 1000 not allowed") };
    let (client, server) = with_server(refusal, |_| Vec::new());
    let err = Connection::handshake(client, "test", Some("00".repeat(32))).expect_err("refused");
    assert!(matches!(err, ClientError::Control(ControlError::NotAuthorised { .. })));
    assert_eq!(err.exit_code(), EXIT_NOT_AUTHORISED);
    server.join().expect("server");
}

#[test]
fn a_missing_or_dead_socket_means_the_daemon_is_not_running() {
    let missing = scratch_path("missing");
    let _ = std::fs::remove_file(&missing);
    let err = Connection::connect(&missing, "test", None).expect_err("no socket");
    assert!(matches!(err, ClientError::DaemonNotRunning { .. }), "{err}");
    assert_eq!(err.exit_code(), EXIT_DAEMON_NOT_RUNNING);

    let stale = scratch_path("stale");
    let _ = std::fs::remove_file(&stale);
    drop(UnixListener::bind(&stale).expect("bind"));
    let err = Connection::connect(&stale, "test", None).expect_err("nobody listens");
    assert!(matches!(err, ClientError::DaemonNotRunning { .. }), "{err}");
    std::fs::remove_file(&stale).expect("cleanup");
}

#[test]
fn connect_over_a_socket_file() {
    let path = scratch_path("live");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind");
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        serve(stream, ServerMessage::Welcome(welcome(Rights::Control)), |request| {
            vec![ok(request.id, &sample_replies()[13])]
        })
    });
    let mut connection = Connection::connect(&path, "test", None).expect("connect");
    let reply = connection.call(Call::Shutdown(Default::default())).expect("shutdown");
    assert!(matches!(reply, Reply::Shutdown(_)));
    drop(connection);
    server.join().expect("server");
    std::fs::remove_file(&path).expect("cleanup");
}

#[test]
fn streams_deliver_items_until_cancelled() {
    let (client, server) = with_server(ServerMessage::Welcome(welcome(Rights::Read)), |request| match &request.call {
        Call::SubscribeEvents(_) => vec![
            ok(request.id, &sample_replies()[10]),
            ServerMessage::Stream { id: request.id, item: StreamItem::Event(event_item()) },
            ServerMessage::Stream { id: request.id, item: StreamItem::Event(event_item()) },
            ServerMessage::Stream { id: request.id, item: StreamItem::Event(event_item()) },
        ],
        Call::Cancel(args) => vec![
            ServerMessage::StreamEnd { id: args.id, reason: StreamEndReason::Cancelled },
            ok(request.id, &sample_replies()[14]),
        ],
        Call::List(_) => vec![ok(request.id, &sample_replies()[5])],
        other => panic!("unexpected {other:?}"),
    });
    let mut connection = Connection::handshake(client, "test", None).expect("welcome");
    let mut stream = connection.open_stream(Call::SubscribeEvents(SubscribeEventsArgs::default())).expect("open");
    assert!(matches!(stream.reply(), Reply::SubscribeEvents(_)));
    assert_eq!(stream.next_item().expect("item"), Some(StreamItem::Event(event_item())));
    // One item is read; two more are in flight when the client cancels.
    assert_eq!(stream.cancel().expect("cancel"), StreamEndReason::Cancelled);
    assert!(matches!(connection.call(Call::List(ListArgs {})).expect("usable after cancel"), Reply::List(_)));
    drop(connection);
    let seen = server.join().expect("server");
    assert!(matches!(seen[1].call, Call::Cancel(ref args) if args.id == seen[0].id));
}

#[test]
fn a_stream_that_ends_by_itself_reports_why() {
    let (client, server) = with_server(ServerMessage::Welcome(welcome(Rights::Read)), |request| {
        vec![
            ok(request.id, &sample_replies()[10]),
            ServerMessage::Stream { id: request.id, item: StreamItem::Event(event_item()) },
            ServerMessage::StreamEnd { id: request.id, reason: StreamEndReason::Complete },
        ]
    });
    let mut connection = Connection::handshake(client, "test", None).expect("welcome");
    let args = SubscribeEventsArgs { topics: None, backlog: 5, follow: false };
    let mut stream = connection.open_stream(Call::SubscribeEvents(args)).expect("open");
    assert!(stream.next_item().expect("item").is_some());
    assert_eq!(stream.next_item().expect("end"), None);
    assert_eq!(stream.end_reason(), Some(StreamEndReason::Complete));
    assert_eq!(stream.next_item().expect("still ended"), None);
    assert_eq!(stream.cancel().expect("no-op"), StreamEndReason::Complete);
    drop(connection);
    assert_eq!(server.join().expect("server").len(), 1, "cancelling an ended stream sends nothing");
}

#[test]
fn bad_calls_are_refused_before_anything_is_sent() {
    let (client, server) = with_server(ServerMessage::Welcome(welcome(Rights::Control)), |_| Vec::new());
    let mut connection = Connection::handshake(client, "test", None).expect("welcome");
    let too_long = Call::Stop(StopArgs { name: "a".into(), grace_ms: Some(u64::MAX) });
    let err = connection.call(too_long).expect_err("range");
    assert!(matches!(err, ClientError::Control(ControlError::BadRequest { .. })));
    assert_eq!(err.exit_code(), EXIT_USAGE);
    let follow = Call::SubscribeEvents(SubscribeEventsArgs::default());
    assert!(connection.call(follow).is_err(), "a streaming verb needs open_stream");
    assert!(connection.open_stream(Call::List(ListArgs {})).is_err(), "list does not stream");
    drop(connection);
    assert!(server.join().expect("server").is_empty());
}

#[test]
fn a_server_that_hangs_up_or_answers_nonsense_is_a_protocol_failure() {
    let (client, mut server_end) = UnixStream::pair().expect("socketpair");
    let server = thread::spawn(move || {
        let mut decoder = wf_protocol::control::request_decoder();
        let mut header = [0u8; 4];
        std::io::Read::read_exact(&mut server_end, &mut header).expect("hello header");
        let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
        std::io::Read::read_exact(&mut server_end, &mut body).expect("hello body");
        decoder.push(&header);
        decoder.push(&body);
        assert!(matches!(wf_protocol::control::next_client_message(&mut decoder), Ok(Some(_))));
        write(&mut server_end, &ServerMessage::Welcome(welcome(Rights::Read)));
        // Hangs up without answering anything else.
    });
    let mut connection = Connection::handshake(client, "test", None).expect("welcome");
    server.join().expect("server");
    let err = connection.call(Call::List(ListArgs {})).expect_err("hung up");
    assert!(matches!(err, ClientError::Closed), "{err}");
    assert_eq!(err.exit_code(), EXIT_PROTOCOL);

    let (client, server) = with_server(ServerMessage::Welcome(welcome(Rights::Read)), |request| {
        vec![ok(request.id + 100, &sample_replies()[5])]
    });
    let mut connection = Connection::handshake(client, "test", None).expect("welcome");
    let err = connection.call(Call::List(ListArgs {})).expect_err("wrong id");
    assert!(matches!(err, ClientError::Unexpected(_)), "{err}");
    assert_eq!(err.exit_code(), EXIT_PROTOCOL);
    drop(connection);
    server.join().expect("server");

    let (client, server) = with_server(ServerMessage::Welcome(welcome(Rights::Read)), |request| {
        vec![ok(request.id, &sample_replies()[0])]
    });
    let mut connection = Connection::handshake(client, "test", None).expect("welcome");
    let err = connection.call(Call::List(ListArgs {})).expect_err("result of another verb");
    assert!(matches!(err, ClientError::Unexpected(_)), "{err}");
    drop(connection);
    server.join().expect("server");
}
