//! A real `wfsandbox serve` for tests: its own socket, state directory, policy and audit log in
//! a temporary directory, so tests run side by side. Dropping it stops the daemon (SIGTERM,
//! then SIGKILL) and checks nothing of its plugins is left.

use crate::{merge, wfsandbox};
use serde_json::Value;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wf_protocol::control::{Call, ClientError, Connection, Reply};

pub struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// A daemon with the default policy (audit log moved into the test's directory).
    pub fn start() -> Self {
        Self::start_with_policy(serde_json::json!({}))
    }

    /// A daemon whose policy is the default one with `overrides` merged over it.
    pub fn start_with_policy(overrides: Value) -> Self {
        let dir = tempfile::Builder::new().prefix("wf-daemon-").tempdir().expect("daemon dir");
        let mut policy: Value = serde_json::from_str(
            &std::fs::read_to_string(crate::workspace_root().join("schemas/default-security-policy.json"))
                .expect("default policy"),
        )
        .expect("default policy is JSON");
        let audit = dir.path().join("audit/audit.jsonl");
        merge(&mut policy, serde_json::json!({ "audit": { "path": audit } }));
        merge(&mut policy, overrides);
        std::fs::write(dir.path().join("policy.json"), policy.to_string()).expect("write policy");
        let mut daemon = Self { child: None, dir };
        daemon.spawn();
        daemon
    }

    /// Start the daemon process (again, after [`Self::kill_hard`]).
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("daemon log");
        let child = Command::new(wfsandbox())
            .arg("serve")
            .arg("--socket")
            .arg(self.socket())
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .arg("--policy")
            .arg(self.policy_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn wfsandbox serve");
        self.child = Some(child);
        self.wait_until_accepting();
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/control.sock")
    }

    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.json")
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit/audit.jsonl")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("the daemon runs")
    }

    /// The launcher: the daemon's only child process named `wfs-launcher`.
    pub fn launcher_pid(&self) -> Option<u32> {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pid())).ok()?;
        children.split_whitespace().filter_map(|p| p.parse().ok()).find(|pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "wfs-launcher")
        })
    }

    fn wait_until_accepting(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("wfsandbox serve exited ({status}) before accepting:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("wfsandbox serve did not accept within 20 s:\n{}", self.log());
    }

    /// A control connection as the test's own user (root).
    pub fn connect(&self) -> Connection<UnixStream> {
        Connection::connect(&self.socket(), "integration-test", None)
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", self.log()))
    }

    pub fn try_connect(&self, token: Option<String>) -> Result<Connection<UnixStream>, ClientError> {
        Connection::connect(&self.socket(), "integration-test", token)
    }

    /// One call on a fresh connection.
    pub fn call(&self, call: Call) -> Result<Reply, ClientError> {
        self.connect().call(call)
    }

    /// Run the `wfsandbox` client CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(wfsandbox()).arg("--socket").arg(self.socket()).args(args).output().expect("run the CLI")
    }

    /// SIGKILL the daemon (its launcher and plugins notice on their own) and reap it.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_with_deadline(&mut child, Duration::from_secs(30))
    }

    /// Wait for the daemon to exit by itself (after `shutdown`).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        wait_with_deadline(&mut child, limit)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok();
    None
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.terminate().is_none() && self.child.is_some() {
            self.kill_hard();
        }
    }
}

/// A control-protocol frame: the body behind its 4-byte big-endian length.
pub fn frame(body: &[u8]) -> Vec<u8> {
    [(body.len() as u32).to_be_bytes().as_slice(), body].concat()
}

/// A connection to `daemon` that has said hello by hand (for frames the client would not send).
pub fn raw_session(daemon: &Daemon) -> UnixStream {
    use std::io::Write;
    let mut stream = UnixStream::connect(daemon.socket()).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(&frame(br#"{"type":"hello","protocol":1,"client":"raw"}"#)).expect("hello");
    let welcome = wf_protocol::control::read_server_message(&mut stream);
    assert!(matches!(welcome, Ok(Some(wf_protocol::control::ServerMessage::Welcome(_)))), "{welcome:?}");
    stream
}

/// Runs `python3 -c code ARGS...` as `uid`:`gid` and parses the one JSON document it prints.
pub fn python_json_as(uid: u32, gid: u32, code: &str, args: &[&std::ffi::OsStr]) -> Value {
    use std::os::unix::process::CommandExt;
    let output = Command::new("python3").arg("-c").arg(code).args(args).uid(uid).gid(gid).output().expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("python as uid {uid}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr)))
}

/// Resident memory of `pid`, in KiB (0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of `pid` (0 if it is gone).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Poll `check` every 20 ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Shortcuts for tests that drive plugins through the daemon (each call on a fresh connection).
impl Daemon {
    /// `start` of the plugin in `plugin` (by its manifest path); panics with the log if refused.
    pub fn start_plugin(&self, plugin: &crate::PluginDir) -> wf_protocol::control::PluginSummary {
        use wf_protocol::control::{ManifestSource, StartArgs};
        let call = Call::Start(StartArgs::Manifest(ManifestSource::Path(plugin.manifest().display().to_string())));
        match self.call(call) {
            Ok(Reply::Start(summary)) => summary,
            other => panic!("start {}: {other:?}\n{}", plugin.path().display(), self.log()),
        }
    }

    pub fn status_of(&self, name: &str) -> wf_protocol::control::PluginStatus {
        match self.call(Call::Status(wf_protocol::control::NameArgs { name: name.into() })) {
            Ok(Reply::Status(status)) => status,
            other => panic!("status {name}: {other:?}"),
        }
    }

    /// The broker's counters of `name`'s running instance (`None` while it is not connected).
    pub fn event_counters(&self, name: &str) -> Option<wf_protocol::control::EventCounters> {
        self.status_of(name).events
    }

    /// Waits until `name`'s channel is connected to the broker (its counters exist).
    pub fn wait_attached(&self, name: &str, limit: Duration) {
        assert!(eventually(limit, || self.event_counters(name).is_some()), "{name} never connected:\n{}", self.log());
    }

    /// The newest 128 KiB of `name`'s output, stdout and stderr interleaved.
    pub fn logs_of(&self, name: &str) -> String {
        let args = wf_protocol::control::LogsArgs { name: name.into(), follow: false, tail_bytes: Some(131_072) };
        match self.call(Call::Logs(args)) {
            Ok(Reply::Logs(logs)) => logs.chunks.iter().map(|c| c.text.as_str()).collect(),
            other => panic!("logs {name}: {other:?}"),
        }
    }

    /// Every JSON object line of `name`'s output.
    pub fn json_lines_of(&self, name: &str) -> Vec<Value> {
        json_lines(&self.logs_of(name))
    }

    /// Waits for the probe's result line (the one with a `probe` key) in `name`'s output.
    pub fn probe_result(&self, name: &str, limit: Duration) -> Value {
        let mut found = None;
        eventually(limit, || {
            found = self.json_lines_of(name).into_iter().find(|l| l.get("probe").is_some());
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no result line from {name} in {limit:?}:\n{}", self.logs_of(name)))
    }

    /// The recorded violations of plugin `name`, newest first.
    pub fn violations_of(&self, name: &str) -> Vec<wf_protocol::control::Violation> {
        let args = wf_protocol::control::ViolationsArgs { name: Some(name.into()), limit: Some(1000), follow: false };
        match self.call(Call::ListViolations(args)) {
            Ok(Reply::ListViolations(v)) => v.violations,
            other => panic!("list_violations {name}: {other:?}"),
        }
    }

    /// Publishes as a control client; returns how many readers took the event.
    pub fn publish(&self, topic: &str, payload: Value) -> u32 {
        publish_on(&mut self.connect(), topic, payload)
    }
}

/// `publish` on an open control connection; returns how many readers took the event.
pub fn publish_on(conn: &mut Connection<UnixStream>, topic: &str, payload: Value) -> u32 {
    let args = wf_protocol::control::PublishArgs { topic: topic.into(), payload };
    match conn.call(Call::Publish(args)) {
        Ok(Reply::Publish(result)) => result.delivered,
        other => panic!("publish {topic}: {other:?}"),
    }
}

/// Every line of `text` that is a JSON object.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines().filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok()).filter(Value::is_object).collect()
}

/// CLOCK_MONOTONIC in nanoseconds: the clock the probes stamp events with (there is no time
/// namespace, so it is the same inside the sandbox).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Publishes `payload(seq)` for `seq` in `0..count` as a control client on one connection,
/// without waiting for each answer (the daemon serves at most 32 requests of a connection at
/// once and reads no further: that is the back-pressure). `pace(seq)` runs before each publish
/// and may wait. Returns the sum of the answers' `delivered`.
pub fn publish_pipelined(
    daemon: &Daemon,
    topic: &str,
    count: u64,
    payload: impl Fn(u64) -> Value,
    mut pace: impl FnMut(u64),
) -> u64 {
    use std::io::Write;
    use wf_protocol::control::{encode_client_message, read_server_message, ClientMessage, Response, ServerMessage};
    let mut writer = raw_session(daemon);
    let mut reader = writer.try_clone().expect("clone the session");
    reader.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
    let answers = std::thread::spawn(move || {
        let mut delivered = 0;
        for _ in 0..count {
            match read_server_message(&mut reader) {
                Ok(Some(ServerMessage::Response(Response { outcome: Ok(result), .. }))) => {
                    delivered += result["delivered"].as_u64().unwrap_or(0);
                }
                other => panic!("a publish answer: {other:?}"),
            }
        }
        delivered
    });
    for seq in 0..count {
        pace(seq);
        let args = wf_protocol::control::PublishArgs { topic: topic.to_owned(), payload: payload(seq) };
        let frame = encode_client_message(&ClientMessage::request(seq + 1, Call::Publish(args))).expect("encode");
        writer.write_all(&frame).expect("send a publish");
    }
    answers.join().expect("the answers")
}

/// The lines of a spawned CLI's piped stdout, read on a thread as they come (so a test can wait
/// for one with a timeout while the command keeps running).
pub fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    lines
}
