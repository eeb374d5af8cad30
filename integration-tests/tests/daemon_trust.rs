//! What the root daemon trusts: policy files only root could have written (and only root may
//! name a new one), manifest paths only as far as the peer could read them itself, and on the
//! client side, a socket served by root and nobody else.

use serde_json::{json, Value};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wf_integration_tests::daemon::{python_json_as, Daemon};
use wf_integration_tests::{require_root, wfsandbox};
use wf_protocol::control::{Call, ClientError, ControlError, ListArgs, ReloadPolicyArgs, Reply};

const SOCKET_GROUP: u32 = 4342;
const CONTROLLER: u32 = 4343;
const READER: u32 = 4344;

/// One request over the raw protocol as `uid`; the response frame.
fn call_as(uid: u32, daemon: &Daemon, verb: &str, args: Value) -> Value {
    let code = r#"
import json, socket, struct, sys
def send(s, m):
    b = json.dumps(m).encode(); s.sendall(struct.pack(">I", len(b)) + b)
def recv(s):
    h = b""
    while len(h) < 4: h += s.recv(4 - len(h))
    n = struct.unpack(">I", h)[0]; b = b""
    while len(b) < n: b += s.recv(n - len(b))
    return json.loads(b)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])
send(s, {"type": "hello", "protocol": 1, "client": "trust-test"}); recv(s)
send(s, {"type": "request", "id": 1, "verb": sys.argv[2], "args": json.loads(sys.argv[3])})
print(json.dumps(recv(s)))
"#;
    let args = args.to_string();
    python_json_as(uid, SOCKET_GROUP, code, &[daemon.socket().as_os_str(), verb.as_ref(), args.as_ref()])
}

/// A daemon a group of peers can reach: the test dir is opened for search (still root's).
fn shared_daemon(auth: Value) -> Daemon {
    let mut auth = auth;
    auth["socket_mode"] = json!("0660");
    auth["socket_group"] = json!(SOCKET_GROUP);
    let daemon = Daemon::start_with_policy(json!({ "authentication": auth }));
    std::fs::set_permissions(daemon.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
    daemon
}

fn root_is_served(daemon: &Daemon) {
    let Ok(Reply::List(_)) = daemon.call(Call::List(ListArgs {})) else { panic!("root refused:\n{}", daemon.log()) };
}

#[test]
fn a_control_uid_cannot_make_root_adopt_its_own_policy_file() {
    require_root();
    let daemon = shared_daemon(json!({ "allowed_uids": [0, CONTROLLER] }));
    let home = daemon.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let evil = home.join("evil-policy.json");
    let mut policy: Value = serde_json::from_slice(&std::fs::read(daemon.policy_path()).unwrap()).unwrap();
    policy["authentication"]["allowed_uids"] = json!([CONTROLLER]);
    std::fs::write(&evil, policy.to_string()).unwrap();
    chown(&home, Some(CONTROLLER), None).unwrap();
    chown(&evil, Some(CONTROLLER), None).unwrap();

    let named = call_as(CONTROLLER, &daemon, "reload_policy", json!({ "path": evil }));
    assert_eq!(named["error"]["code"], "not_authorised", "{named}");
    let again = call_as(CONTROLLER, &daemon, "reload_policy", json!({}));
    assert_eq!(again["ok"], true, "the configured file may be reloaded by a control peer: {again}");
    root_is_served(&daemon);

    // Root naming the user's file is refused too: the file (and its directory) is not root's.
    let refused = daemon.call(Call::ReloadPolicy(ReloadPolicyArgs { path: Some(evil.display().to_string()) }));
    let Err(ClientError::Control(ControlError::InvalidPolicy { message, .. })) = refused else { panic!("{refused:?}") };
    assert!(message.contains("not trusted") && message.contains(&CONTROLLER.to_string()), "{message}");
    root_is_served(&daemon);
}

#[test]
fn a_reader_learns_nothing_from_validating_a_root_only_file() {
    require_root();
    let daemon = shared_daemon(json!({ "read_only_uids": [READER] }));
    let secret = daemon.dir().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    let creds = secret.join("creds.json");
    std::fs::write(&creds, br#"{"name":"x","db_password":"hunter2","aws_key_id":"AKIA"}"#).unwrap();

    let existing = call_as(READER, &daemon, "validate", json!({ "manifest": { "path": creds } }));
    let missing = call_as(READER, &daemon, "validate", json!({ "manifest": { "path": secret.join("nope.json") } }));
    assert_eq!(existing["error"]["code"], "not_authorised", "{existing}");
    assert_eq!(existing["error"], missing["error"], "one answer whether the file exists or not");
    let text = existing.to_string();
    assert!(!text.contains("db_password") && !text.contains("aws_key_id"), "{text}");
}

#[test]
fn a_fifo_is_refused_without_being_opened() {
    require_root();
    let daemon = Daemon::start();
    let fifo = daemon.dir().join("fifo");
    assert!(Command::new("mkfifo").arg("-m").arg("600").arg(&fifo).status().unwrap().success());
    // A writer blocks in open() until someone opens the FIFO for reading: it must stay blocked.
    let mut writer = Command::new("python3")
        .args(["-c", "import os, sys; print('ready', flush=True); os.open(sys.argv[1], os.O_WRONLY)"])
        .arg(&fifo)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    wait_for_line(&mut writer, "ready");
    let wchan = format!("/proc/{}/wchan", writer.id());
    let blocked = || std::fs::read_to_string(&wchan).is_ok_and(|w| w.contains("fifo") || w.contains("partner"));
    let deadline = Instant::now() + Duration::from_secs(3);
    while !blocked() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let source = wf_protocol::control::ManifestSource::Path(fifo.display().to_string());
    let refused = daemon.call(Call::Validate(wf_protocol::control::ValidateArgs { manifest: source }));
    assert!(started.elapsed() < Duration::from_secs(5), "the daemon did not block");
    let Err(ClientError::Control(ControlError::InvalidManifest { message, .. })) = refused else {
        panic!("{refused:?}")
    };
    assert!(message.contains("not a regular file"), "{message}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(writer.try_wait().unwrap().is_none(), "the FIFO was opened: its writer was released");
    let _ = writer.kill();
    let _ = writer.wait();
}

#[test]
fn the_cli_sends_no_token_to_a_socket_served_by_another_uid() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    chown(&run, Some(CONTROLLER), Some(CONTROLLER)).unwrap();
    let socket = run.join("control.sock");
    let captured = run.join("captured");
    let fake = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.listen(1)
print("listening", flush=True)
c, _ = s.accept(); c.settimeout(3)
try: data = c.recv(65536)
except Exception: data = b""
open(sys.argv[2], "wb").write(data)
"#;
    let mut server = Command::new("python3")
        .args(["-c", fake])
        .arg(&socket)
        .arg(&captured)
        .uid(CONTROLLER)
        .gid(CONTROLLER)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    wait_for_line(&mut server, "listening");
    let token = "ab".repeat(32);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let output = Command::new(wfsandbox())
        .arg("--socket")
        .arg(&socket)
        .arg("ps")
        .arg("--token-file")
        .arg(&token_file)
        .env_remove("WFSANDBOX_DAEMON_UID")
        .output()
        .expect("run the CLI");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("served by uid"), "{stderr}");
    let _ = server.wait();
    let sent = std::fs::read(&captured).unwrap_or_default();
    assert!(sent.is_empty(), "the client sent something: {}", String::from_utf8_lossy(&sent));
}

fn wait_for_line(child: &mut std::process::Child, expected: &str) {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line).expect("server ready");
    assert_eq!(line.trim(), expected);
}

#[test]
fn the_daemon_refuses_a_socket_below_a_directory_another_user_owns() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let user_owned = dir.path().join("anc");
    std::fs::create_dir(&user_owned).unwrap();
    chown(&user_owned, Some(CONTROLLER), None).unwrap();
    let daemon = Daemon::start();
    let output = Command::new(wfsandbox())
        .arg("serve")
        .arg("--socket")
        .arg(user_owned.join("run/control.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--policy")
        .arg(daemon.policy_path())
        .stdin(Stdio::null())
        .output()
        .expect("wfsandbox serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("not trusted") && stderr.contains("owned by uid"), "{stderr}");
    assert!(!Path::new(&user_owned.join("run/control.sock")).exists());
}

#[test]
fn an_inline_plugin_dir_a_reader_cannot_see_gets_one_answer_whether_it_exists_or_not() {
    require_root();
    let daemon = shared_daemon(json!({ "read_only_uids": [READER] }));
    let secret = daemon.dir().join("secret");
    std::fs::create_dir_all(secret.join("sub")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    let document = json!({ "name": "probe", "version": "1.0.0", "entry_point": "probe" });
    let inline = |dir: &Path| json!({ "manifest": { "inline": { "document": document, "plugin_dir": dir } } });
    let existing = call_as(READER, &daemon, "validate", inline(&secret.join("sub")));
    let missing = call_as(READER, &daemon, "validate", inline(&secret.join("nosuchdir")));
    assert_eq!(existing["error"]["code"], "not_authorised", "{existing}");
    assert_eq!(existing["error"], missing["error"], "one answer whether the directory exists or not");

    // A directory the reader can search and read itself is still its to name.
    let open = daemon.dir().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let allowed = call_as(READER, &daemon, "validate", inline(&open));
    assert_ne!(allowed["error"]["code"], "not_authorised", "{allowed}");
}

/// As `uid`, swap `base/a` (the peer's directory) with `base/b` (its symlink to a root-only
/// directory) as fast as it can while sending `verb` of `base/a/manifest.json` for `secs`; the
/// replies as a tally of `ok`, error codes and `leak` (a reply naming the secret's keys).
fn race(uid: u32, daemon: &Daemon, verb: &str, base: &Path, secs: f64) -> Value {
    let code = r#"
import ctypes, json, socket, struct, sys, threading, time
def send(s, m):
    b = json.dumps(m).encode(); s.sendall(struct.pack(">I", len(b)) + b)
def recv(s):
    h = b""
    while len(h) < 4: h += s.recv(4 - len(h))
    n = struct.unpack(">I", h)[0]; b = b""
    while len(b) < n: b += s.recv(n - len(b))
    return json.loads(b)
sock, verb, base, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": 316, "aarch64": 276}[__import__("os").uname().machine]
a, b = (base + "/a").encode(), (base + "/b").encode()
stop = False
def flip():
    while not stop: libc.syscall(nr, -100, a, -100, b, 2)
threading.Thread(target=flip, daemon=True).start()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sock)
send(s, {"type": "hello", "protocol": 1, "client": "race-test"}); recv(s)
tally = {}; i = 0; end = time.time() + secs
while time.time() < end:
    i += 1
    send(s, {"type": "request", "id": i, "verb": verb, "args": {"manifest": {"path": base + "/a/manifest.json"}}})
    r = recv(s); text = json.dumps(r)
    k = "leak" if ("db_password" in text or "secretplugin" in text) else (r.get("error") or {}).get("code", "ok")
    tally[k] = tally.get(k, 0) + 1
    if k == "rate_limited": time.sleep(0.05)
stop = True
print(json.dumps(tally))
"#;
    let secs = secs.to_string();
    let args = [daemon.socket().into_os_string(), verb.into(), base.as_os_str().to_owned(), secs.into()];
    python_json_as(uid, SOCKET_GROUP, code, &args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>())
}

/// A peer's directory at the checked path, exchanged with its symlink to `secret`.
fn racing_dirs(daemon: &Daemon, owner: u32, secret: &Path) -> std::path::PathBuf {
    let base = daemon.dir().join(format!("race-{owner}"));
    std::fs::create_dir_all(base.join("a")).unwrap();
    std::fs::write(base.join("a/manifest.json"), br#"{"name":"mine","version":"1.0.0","entry_point":"probe"}"#)
        .unwrap();
    std::fs::set_permissions(base.join("a/manifest.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(secret, base.join("b")).unwrap();
    for entry in [base.clone(), base.join("a"), base.join("a/manifest.json"), base.join("b")] {
        std::os::unix::fs::lchown(&entry, Some(owner), Some(owner)).unwrap();
    }
    base
}

#[test]
fn swapping_a_checked_directory_for_a_symlink_never_makes_the_daemon_read_behind_it() {
    require_root();
    let daemon = shared_daemon(json!({ "read_only_uids": [READER], "allowed_uids": [0, CONTROLLER] }));
    let secret = daemon.dir().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    let manifest = secret.join("manifest.json");
    std::fs::write(&manifest, br#"{"name":"secretplugin","version":"1.0.0","entry_point":"probe","db_password":"x"}"#)
        .unwrap();
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(secret.join("probe"), b"").unwrap();

    let tally = race(READER, &daemon, "validate", &racing_dirs(&daemon, READER, &secret), 1.0);
    eprintln!("validate race: {tally}");
    assert!(tally.get("leak").is_none(), "validate read the root-only manifest: {tally}");
    let tally = race(CONTROLLER, &daemon, "load", &racing_dirs(&daemon, CONTROLLER, &secret), 1.0);
    eprintln!("load race: {tally}");
    assert!(tally.get("leak").is_none(), "load registered the root-only manifest: {tally}");
    let Ok(Reply::List(list)) = daemon.call(Call::List(ListArgs {})) else { panic!("list:\n{}", daemon.log()) };
    assert!(list.plugins.iter().all(|p| p.name != "secretplugin"), "{list:?}");
}
