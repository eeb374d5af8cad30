//! The daemon's per-connection and per-uid bounds (docs/decisions.md "Daemon"): what a client
//! that never reads can pin, how many connections and streams one uid may hold, and that root
//! can always get in.

use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use wf_integration_tests::daemon::{eventually, fd_count, frame, raw_session, rss_kib, Daemon};
use wf_integration_tests::{require_root, PluginDir};
use wf_protocol::control::{
    read_server_message, Call, ListArgs, LogsArgs, ManifestSource, ServerMessage, StartArgs, SubscribeEventsArgs,
};

const SOCKET_GROUP: u32 = 4252;
const STRANGER: u32 = 4253;
const READER: u32 = 4254;

/// Raw frames for the Python peers below (they run as other uids).
const PY_FRAMES: &str = r#"
import json, socket, struct, sys, time, resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def conn(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(10); s.connect(path); return s
def send(s, msg):
    body = json.dumps(msg).encode(); s.sendall(struct.pack(">I", len(body)) + body)
def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: return None
        b += c
    return b
def recv(s):
    try:
        h = recvn(s, 4)
        if h is None: return None
        return json.loads(recvn(s, struct.unpack(">I", h)[0]))
    except OSError:
        return None
def hello(s):
    try:
        send(s, {"type": "hello", "protocol": 1, "client": "limits"})
    except OSError:
        return None
    return recv(s)
"#;

fn policy_with_other_uids() -> Value {
    json!({ "authentication": {
        "socket_mode": "0660", "socket_group": SOCKET_GROUP, "read_only_uids": [READER]
    } })
}

/// Run `script` (after [`PY_FRAMES`]) as `uid`, with the socket path as `sys.argv[1]`.
fn python_as(uid: u32, daemon: &Daemon, script: &str) -> Child {
    Command::new("python3")
        .arg("-c")
        .arg(format!("{PY_FRAMES}\n{script}"))
        .arg(daemon.socket())
        .uid(uid)
        .gid(SOCKET_GROUP)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3")
}

/// The first line the peer prints, as JSON.
fn first_line(child: &mut Child) -> Value {
    use std::io::BufRead;
    let mut line = String::new();
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    serde_json::from_str(line.trim()).unwrap_or_else(|_| {
        let _ = child.kill();
        let mut stderr = String::new();
        let _ = std::io::Read::read_to_string(child.stderr.as_mut().expect("piped stderr"), &mut stderr);
        panic!("python peer printed {line:?}; stderr: {stderr}")
    })
}

fn request(stream: &mut UnixStream, id: u64, verb: &str, args: Value) {
    let body = json!({ "type": "request", "id": id, "verb": verb, "args": args }).to_string();
    stream.write_all(&frame(body.as_bytes())).expect("send a request");
}

#[test]
fn connections_that_never_read_pin_about_their_outbox_and_no_more() {
    require_root();
    let daemon = Daemon::start();
    let plugin = PluginDir::daemon_probe("flood", &["flood-output", "2"], json!({}));
    let start = Call::Start(StartArgs::Manifest(ManifestSource::Path(plugin.manifest().display().to_string())));
    daemon.call(start).expect("start");
    std::thread::sleep(Duration::from_secs(3));
    let tail = json!({ "name": "flood", "follow": false, "tail_bytes": 131072 });
    let mut probe = raw_session(&daemon);
    request(&mut probe, 1, "logs", tail.clone());
    let _ = read_server_message(&mut probe);
    let rss_before = rss_kib(daemon.pid());
    const CONNECTIONS: usize = 4;
    let mut idle: Vec<UnixStream> = (0..CONNECTIONS).map(|_| raw_session(&daemon)).collect();
    // ~130 KB replies: the outbox takes ~32 of them; without the bound, the 32 requests in
    // flight behind it would each hold theirs as well (~50 MB for the four, measured).
    for stream in &mut idle {
        for id in 1..=200 {
            request(stream, id, "logs", tail.clone());
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    let grown_kib = rss_kib(daemon.pid()).saturating_sub(rss_before);
    // Per connection: the 4 MiB outbox plus one reply being built (≤ 1 MiB encoded).
    let bound_kib = (CONNECTIONS * 7 * 1024) as u64;
    assert!(grown_kib < bound_kib, "{CONNECTIONS} non-reading connections grew the daemon by {grown_kib} KiB");
    let list = daemon.call(Call::List(ListArgs {}));
    assert!(list.is_ok(), "other clients are still served: {list:?}");
    let logs = daemon.call(Call::Logs(LogsArgs { name: "flood".into(), follow: false, tail_bytes: None }));
    assert!(logs.is_ok(), "{logs:?}");
}

#[test]
fn an_unlisted_uid_holding_many_connections_does_not_lock_root_out() {
    require_root();
    let daemon = Daemon::start_with_policy(policy_with_other_uids());
    let fds_before = fd_count(daemon.pid());
    let mut stranger = python_as(
        STRANGER,
        &daemon,
        r#"
held = [conn(sys.argv[1]) for _ in range(1100)]
print(json.dumps({"connected": len(held)}), flush=True)
time.sleep(8)
"#,
    );
    assert_eq!(first_line(&mut stranger)["connected"], 1100);
    // Refused connections are closed at once; wait for ones still in the accept queue.
    let held_by_stranger = || fd_count(daemon.pid()).saturating_sub(fds_before);
    let mut held = 0;
    let within_share = eventually(Duration::from_secs(5), || {
        held = held_by_stranger();
        held <= 64 + 8
    });
    let ps = daemon.cli(&["ps"]);
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert!(ps.status.success(), "root's ps: {:?} {}", ps.status, String::from_utf8_lossy(&ps.stderr));
    assert!(within_share, "the stranger holds {held} daemon fds");
}

#[test]
fn a_read_only_uid_gets_at_most_its_share_of_sessions() {
    require_root();
    let daemon = Daemon::start_with_policy(policy_with_other_uids());
    let mut reader = python_as(
        READER,
        &daemon,
        r#"
held = []
welcomed = 0
for _ in range(100):
    s = conn(sys.argv[1]); held.append(s)
    reply = hello(s)
    if reply and reply.get("type") == "welcome": welcomed += 1
print(json.dumps({"welcomed": welcomed}), flush=True)
time.sleep(8)
"#,
    );
    let welcomed = first_line(&mut reader)["welcomed"].clone();
    let ps = daemon.cli(&["ps"]);
    let _ = reader.kill();
    let _ = reader.wait();
    assert_eq!(welcomed, 64, "sessions of one read-only uid");
    assert!(ps.status.success(), "root's ps: {:?} {}", ps.status, String::from_utf8_lossy(&ps.stderr));
}

/// `true` for a response to `id`, `false` for a `rate_limited` refusal of it.
fn opened(stream: &mut UnixStream, id: u64) -> bool {
    match read_server_message(stream) {
        Ok(Some(ServerMessage::Response(response))) if response.id == id => match response.outcome {
            Ok(_) => true,
            Err(e) => {
                assert_eq!(e.code().as_str(), "rate_limited", "{e:?}");
                false
            }
        },
        other => panic!("expected the answer to {id}, got {other:?}"),
    }
}

#[test]
fn streams_are_capped_per_connection_and_the_connection_keeps_working() {
    require_root();
    let daemon = Daemon::start();
    let mut stream = raw_session(&daemon);
    let subscribe = serde_json::to_value(SubscribeEventsArgs::default()).expect("args");
    let answers: Vec<bool> = (1..=9)
        .map(|id| {
            request(&mut stream, id, "subscribe_events", subscribe.clone());
            opened(&mut stream, id)
        })
        .collect();
    assert_eq!(answers, [true, true, true, true, true, true, true, true, false], "the 9th stream is refused");
    request(&mut stream, 20, "cancel", json!({ "id": 1 }));
    let cancelled = eventually(
        Duration::from_secs(5),
        || matches!(read_server_message(&mut stream), Ok(Some(ServerMessage::Response(r))) if r.id == 20),
    );
    assert!(cancelled, "the cancel is answered");
    request(&mut stream, 21, "subscribe_events", subscribe);
    assert!(opened(&mut stream, 21), "a freed stream slot can be used again");
    request(&mut stream, 22, "list", json!({}));
    assert!(opened(&mut stream, 22), "requests are still answered");
}

#[test]
fn one_uid_opens_at_most_64_streams_over_all_its_connections() {
    require_root();
    let daemon = Daemon::start_with_policy(policy_with_other_uids());
    let mut reader = python_as(
        READER,
        &daemon,
        r#"
held, ok, limited = [], 0, 0
for c in range(9):
    s = conn(sys.argv[1]); held.append(s); hello(s)
    for i in range(1, 9):
        send(s, {"type": "request", "id": i, "verb": "subscribe_events", "args": {}})
        while True:
            m = recv(s)
            if m is None or m.get("id") == i: break
        if m and "error" in m: limited += 1
        elif m: ok += 1
print(json.dumps({"ok": ok, "limited": limited}), flush=True)
"#,
    );
    let verdict = first_line(&mut reader);
    let _ = reader.wait();
    assert_eq!(verdict, json!({ "ok": 64, "limited": 8 }));
    let mut root = raw_session(&daemon);
    request(&mut root, 1, "subscribe_events", json!({}));
    assert!(opened(&mut root, 1), "root is not held to the uid's share");
}
