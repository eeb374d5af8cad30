//! The control socket under hostile or heavy use: peers the policy does not list, wrong tokens,
//! broken frames, many clients at once, and a plugin flooding its output.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;
use wf_integration_tests::daemon::{eventually, fd_count, frame, python_json_as, raw_session, rss_kib, Daemon};
use wf_integration_tests::{require_root, workspace_root, PluginDir};
use wf_protocol::control::{
    read_server_message, Call, ClientError, ControlError, ListArgs, LogsArgs, ManifestSource, Reply, ServerMessage,
    StartArgs,
};

const SOCKET_GROUP: u32 = 4242;
const STRANGER: u32 = 4243;
const READER: u32 = 4244;

/// Run the dependency-free Python client as `uid`:`SOCKET_GROUP`; its JSON verdict.
fn python_client_as(uid: u32, daemon: &Daemon) -> Value {
    let code = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import wfsandbox_client as w
out = {}
try:
    c = w.Client(socket_path=sys.argv[2], client_name="other-uid")
    out["rights"] = c.welcome["rights"] if hasattr(c, "welcome") else "?"
    for verb in ("list", "shutdown", "list"):
        try:
            getattr(c, verb)()
            out[verb + str(len(out))] = "ok"
        except w.WfsandboxError as e:
            out[verb + str(len(out))] = e.code
except w.WfsandboxError as e:
    out["connect"] = e.code
print(json.dumps(out))
"#;
    let sdk = workspace_root().join("sdk/python");
    python_json_as(uid, SOCKET_GROUP, code, &[sdk.as_os_str(), daemon.socket().as_os_str()])
}

#[test]
fn peers_are_authorised_by_uid_with_read_and_control_rights() {
    require_root();
    let daemon = Daemon::start_with_policy(json!({ "authentication": {
        "socket_mode": "0660", "socket_group": SOCKET_GROUP, "read_only_uids": [READER]
    }}));
    let stranger = python_client_as(STRANGER, &daemon);
    assert_eq!(stranger, json!({ "connect": "not_authorised" }), "a uid the policy does not list is refused");
    let reader = python_client_as(READER, &daemon);
    assert_eq!(reader["list1"], "ok", "{reader}");
    assert_eq!(reader["shutdown2"], "not_authorised", "read rights do not cover shutdown: {reader}");
    assert_eq!(reader["list3"], "ok", "the session stays open after a refused verb: {reader}");
    let Reply::List(_) = daemon.call(Call::List(ListArgs {})).expect("root still served") else { panic!() };
    let audit = std::fs::read_to_string(daemon.audit_path()).unwrap_or_default();
    let denied_stranger = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|r| r["kind"] == "auth" && r["event"]["peer"]["uid"] == STRANGER && r["event"]["decision"] == "denied");
    assert!(denied_stranger, "the refusal is in the audit log");
}

fn token_hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

fn refusal(result: Result<impl std::fmt::Debug, ClientError>) -> ControlError {
    match result {
        Err(ClientError::Control(error)) => error,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn wrong_tokens_are_refused_with_a_growing_delay() {
    require_root();
    let good = "3f9a0c27e4b81d65f0a2c9e7b4d1836a5e0f7c2b9d4a61e8c3f5b0a7d2e9c41b";
    let bad = "0000000000000000000000000000000000000000000000000000000000000000";
    let daemon = Daemon::start_with_policy(json!({ "authentication": {
        "token_sha256": [token_hash(good)],
        "failed_auth": { "max_failures": 1, "backoff_initial_ms": 300, "backoff_max_ms": 5000 }
    }}));
    assert!(matches!(refusal(daemon.try_connect(None)), ControlError::NotAuthorised { .. }), "a token is required");
    assert!(matches!(refusal(daemon.try_connect(Some(bad.into()))), ControlError::NotAuthorised { .. }));
    let first = match refusal(daemon.try_connect(Some(good.into()))) {
        ControlError::AuthBackoff { retry_after_ms, .. } => retry_after_ms,
        other => panic!("even the right token waits out the back-off: {other:?}"),
    };
    assert!((1..=300).contains(&first), "{first}");
    std::thread::sleep(Duration::from_millis(first + 20));
    assert!(matches!(refusal(daemon.try_connect(Some(bad.into()))), ControlError::NotAuthorised { .. }));
    let second = match refusal(daemon.try_connect(Some(bad.into()))) {
        ControlError::AuthBackoff { retry_after_ms, .. } => retry_after_ms,
        other => panic!("{other:?}"),
    };
    assert!(second > 300 && second <= 600, "the delay doubles: {first} then {second}");
    std::thread::sleep(Duration::from_millis(second + 20));
    let mut conn = daemon.try_connect(Some(good.into())).expect("the right token after the wait");
    assert_eq!(conn.welcome().rights, wf_protocol::control::Rights::Control);
    conn.call(Call::List(ListArgs {})).expect("served");
}

fn next_error(stream: &mut UnixStream) -> (Option<u64>, ControlError) {
    match read_server_message(stream) {
        Ok(Some(ServerMessage::Error { error })) => (None, error),
        Ok(Some(ServerMessage::Response(response))) => (Some(response.id), response.outcome.expect_err("an error")),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn broken_frames_get_errors_and_never_disturb_other_clients() {
    require_root();
    let daemon = Daemon::start();
    let mut good = daemon.connect();

    let mut oversized = raw_session(&daemon);
    oversized.write_all(&(1u32 << 20).to_be_bytes()).expect("header");
    assert!(matches!(next_error(&mut oversized).1, ControlError::TooLarge { max_bytes: 65536, .. }));
    let mut rest = Vec::new();
    assert_eq!(oversized.read_to_end(&mut rest).ok(), Some(0), "closed after a frame over the cap");

    let mut malformed = raw_session(&daemon);
    let bodies: [&[u8]; 4] = [
        br#"{"type":"request","id":5,"verb":"list","args":"#,
        b"{\"type\":\"request\",\"id\":6,\"verb\":\"li\xffst\"}",
        format!(
            "{{\"type\":\"request\",\"id\":7,\"verb\":\"list\",\"args\":{{\"x\":{}1{}}}}}",
            "[".repeat(64),
            "]".repeat(64)
        )
        .leak()
        .as_bytes(),
        br#"{"type":"request","id":8,"verb":"list","args":{"x":1}}"#,
    ];
    for body in bodies {
        malformed.write_all(&frame(body)).expect("write");
        let (_, error) = next_error(&mut malformed);
        assert!(matches!(error, ControlError::BadRequest { .. }), "{error:?}");
    }
    malformed.write_all(&frame(br#"{"type":"request","id":9,"verb":"explode"}"#)).expect("write");
    assert!(matches!(next_error(&mut malformed), (Some(9), ControlError::UnknownVerb { .. })));
    malformed.write_all(&frame(br#"{"type":"request","id":10,"verb":"list"}"#)).expect("write");
    assert!(
        matches!(read_server_message(&mut malformed), Ok(Some(ServerMessage::Response(r))) if r.id == 10 && r.outcome.is_ok())
    );

    let mut silent = UnixStream::connect(daemon.socket()).expect("connect");
    silent.write_all(&[0, 0]).expect("half a header");
    good.call(Call::List(ListArgs {})).expect("another client is served meanwhile");
    drop(silent);
    good.call(Call::List(ListArgs {})).expect("and after");
}

#[test]
fn fifty_clients_times_a_thousand_requests_without_an_error_or_an_fd_leak() {
    require_root();
    let daemon = Daemon::start_with_policy(json!({ "authentication": {
        "rate_limit": { "requests_per_second": 100000, "burst": 100000 }
    }}));
    let plugin = PluginDir::daemon_probe("steady", &["sleep", "120"], json!({}));
    let start = Call::Start(StartArgs::Manifest(ManifestSource::Path(plugin.manifest().display().to_string())));
    daemon.call(start).expect("start");
    std::thread::sleep(Duration::from_millis(200));
    let fds_before = fd_count(daemon.pid());
    let socket = daemon.socket();
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut conn = wf_protocol::control::Connection::connect(&socket, &format!("load-{i}"), None)
                    .map_err(|e| e.to_string())?;
                for n in 0..1000 {
                    let call = if n % 2 == 0 {
                        Call::List(ListArgs {})
                    } else {
                        Call::Status(wf_protocol::control::NameArgs { name: "steady".into() })
                    };
                    conn.call(call).map_err(|e| format!("client {i} request {n}: {e}"))?;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    let errors: Vec<String> = clients.into_iter().filter_map(|c| c.join().expect("client thread").err()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let settled = eventually(Duration::from_secs(5), || fd_count(daemon.pid()) <= fds_before);
    assert!(settled, "fds before {fds_before}, after {}", fd_count(daemon.pid()));
}

#[test]
fn a_plugin_flooding_stdout_leaves_daemon_memory_bounded() {
    require_root();
    let daemon = Daemon::start();
    let mut conn = daemon.connect();
    let rss_before = rss_kib(daemon.pid());
    let plugin = PluginDir::daemon_probe("flood", &["flood-output", "4"], json!({}));
    let start = Call::Start(StartArgs::Manifest(ManifestSource::Path(plugin.manifest().display().to_string())));
    conn.call(start).expect("start");
    std::thread::sleep(Duration::from_secs(2));
    let started = std::time::Instant::now();
    conn.call(Call::List(ListArgs {})).expect("the daemon answers during the flood");
    let answered_in = started.elapsed();
    let Reply::Logs(logs) = conn
        .call(Call::Logs(LogsArgs { name: "flood".into(), follow: false, tail_bytes: Some(131072) }))
        .expect("logs")
    else {
        panic!()
    };
    let rss_after = rss_kib(daemon.pid());
    assert!(logs.dropped_bytes > 0, "the flood is over the rate cap and is dropped, counted");
    assert!(logs.chunks.iter().map(|c| c.text.len()).sum::<usize>() <= 131072);
    assert!(rss_after < rss_before + 16 * 1024, "daemon RSS grew from {rss_before} KiB to {rss_after} KiB");
    assert!(answered_in < Duration::from_secs(2), "a request took {answered_in:?} during the flood");
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    require_root();
    let daemon = Daemon::start();
    let output = Command::new(wf_integration_tests::wfsandbox())
        .args(["serve", "--socket"])
        .arg(daemon.socket())
        .arg("--state-dir")
        .arg(daemon.dir().join("state-2"))
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another wfsandbox daemon owns"), "{stderr}");
    daemon.call(Call::List(ListArgs {})).expect("the first daemon still serves");
}
