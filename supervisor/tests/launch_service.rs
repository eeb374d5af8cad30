//! The daemon's launcher against real sandboxes (root; `cargo build --workspace` first,
//! for the `wf-probe` plugin).
//!
//! `harness = false`: `fork_launcher` refuses multi-threaded processes, and libtest runs
//! tests on threads, so this binary is its own single-threaded `main` running one
//! scenario after another. A scenario that fails panics, which fails the test; a hang is
//! ended by `alarm`.

use serde_json::Value;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wfsandbox::launch_service::transport::{self, InboundReply};
use wfsandbox::launch_service::wire::{FD_CHANNEL, FD_PIDFD, FD_STDOUT, LAUNCHED_FD_COUNT};
use wfsandbox::launch_service::{self, ErrorCode, LauncherHandle, Reply, Request, WaitOutcome};

const WAIT: Duration = Duration::from_secs(20);

type Scenario = (&'static str, fn());

const SCENARIOS: [Scenario; 5] = [
    ("two_plugins_at_once", two_plugins_at_once),
    ("bad_requests_get_errors", bad_requests_get_errors),
    ("closing_the_daemon_end_cleans_up", closing_the_daemon_end_cleans_up),
    ("leftovers_of_a_killed_launcher_are_swept", leftovers_of_a_killed_launcher_are_swept),
    // Last: it leaves this process multi-threaded.
    ("a_multithreaded_process_cannot_fork_the_launcher", a_multithreaded_process_cannot_fork_the_launcher),
];

/// Takes libtest's arguments that matter here: `--list`, `--ignored` (none are), and
/// name filters; the rest (`--test-threads=N`, ...) are accepted and ignored.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in SCENARIOS {
            println!("{name}: test");
        }
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let ignored_only = args.iter().any(|a| a == "--ignored");
    let selected: Vec<Scenario> = SCENARIOS
        .into_iter()
        .filter(|(name, _)| !ignored_only && (filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))))
        .collect();
    if !selected.is_empty() {
        require_root();
        // SAFETY: a whole-run time limit; SIGALRM's default action ends the process.
        unsafe { libc::alarm(240) };
    }
    println!("\nrunning {} tests", selected.len());
    for (name, scenario) in &selected {
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        scenario();
        println!("ok");
    }
    let filtered = SCENARIOS.len() - selected.len();
    println!(
        "\ntest result: ok. {} passed; 0 failed; 0 ignored; 0 measured; {filtered} filtered out\n",
        selected.len()
    );
}

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("launch_service: these tests start real sandboxes and must run as root");
        std::process::exit(1);
    }
}

// ---- scenarios ----

fn two_plugins_at_once() {
    let plugin = PluginDir::probe();
    let mut daemon = Daemon::start();
    let a = daemon.handle.instance_name("probe", 1);
    let b = daemon.handle.instance_name("probe", 2);
    daemon.send(&launch(1, &a, &plugin, &["echo-events"]));
    daemon.send(&launch(2, &b, &plugin, &["exit", "3"]));
    let launched_a = daemon.expect(|r| matches!(r, Reply::Launched { request_id: 1, .. }));
    let launched_b = daemon.expect(|r| matches!(r, Reply::Launched { request_id: 2, .. }));
    // Named before it served anything.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", daemon.handle.pid())).unwrap_or_default();
    assert_eq!(comm.trim_end(), "wfs-launcher");
    for launched in [&launched_a, &launched_b] {
        assert_eq!(launched.fds.len(), LAUNCHED_FD_COUNT);
        let Reply::Launched { pid, enforcement, plugin, spec_sha256, .. } = &launched.reply else { unreachable!() };
        assert!(*pid > 1, "{pid}");
        assert_eq!(plugin, "probe");
        assert_eq!(spec_sha256.len(), 64);
        for layer in ["namespaces", "landlock", "seccomp", "cgroups", "rlimits"] {
            assert_eq!(enforcement[layer]["status"], "enforced", "{layer}: {enforcement}");
        }
    }
    let dirs_a = cgroup_dirs(&launched_a.reply);
    let dirs_b = cgroup_dirs(&launched_b.reply);
    assert!(!dirs_a.is_empty() && dirs_a.iter().chain(&dirs_b).all(|d| d.is_dir()), "{dirs_a:?} {dirs_b:?}");

    // b's output arrives on its stdout fd, and it exits with its own status.
    let line = read_json_line(&launched_b.fds[FD_STDOUT]);
    assert_eq!((line["probe"].as_str(), line["code"].as_u64()), (Some("exit"), Some(3)), "{line}");
    let exited_b = daemon.expect(|r| matches!(r, Reply::Exited { instance, .. } if *instance == b)).reply;
    assert!(matches!(exited_b, Reply::Exited { status: WaitOutcome::Code(3), oom_killed: false, .. }), "{exited_b:?}");

    // a is alive: a frame written to its channel fd is echoed on its stdout fd.
    let hello = wf_protocol::SupervisorMessage::Hello {
        protocol: wf_protocol::PROTOCOL_VERSION,
        plugin: "probe".into(),
        instance: a.clone(),
    };
    let frame = wf_protocol::encode(&hello).expect("encode hello");
    std::fs::File::from(launched_a.fds[FD_CHANNEL].try_clone().expect("dup")).write_all(&frame).expect("write");
    let echoed = read_json_line(&launched_a.fds[FD_STDOUT]);
    assert_eq!((echoed["type"].as_str(), echoed["instance"].as_str()), (Some("hello"), Some(a.as_str())), "{echoed}");

    // Ctrl-C at the terminal reaches the launcher too; it is the daemon's to act on.
    nix::sys::signal::kill(daemon.handle.pid(), nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    daemon.send(&Request::Stats { request_id: 3, instance: a.clone() });
    let stats = daemon.expect(|r| matches!(r, Reply::StatsReply { request_id: 3, .. })).reply;
    let Reply::StatsReply { running: true, stats: Some(stats), .. } = stats else { panic!("{stats:?}") };
    assert!(stats.pids_current >= 1 && stats.memory_limit_bytes.is_some(), "{stats:?}");

    daemon.send(&Request::Forget { request_id: 4, instance: a.clone() });
    daemon.expect_error(4, ErrorCode::StillRunning);
    daemon.send(&Request::Kill { request_id: 5, instance: a.clone() });
    daemon.expect(|r| matches!(r, Reply::Done { request_id: 5, .. }));
    let exited_a = daemon.expect(|r| matches!(r, Reply::Exited { instance, .. } if *instance == a)).reply;
    assert!(
        matches!(exited_a, Reply::Exited { status: WaitOutcome::Signal(9), oom_killed: false, .. }),
        "{exited_a:?}"
    );
    assert!(pidfd_says_exited(&launched_a.fds[FD_PIDFD]), "the daemon's pidfd copy sees the exit");
    daemon.send(&Request::Stats { request_id: 6, instance: a.clone() });
    daemon.expect(|r| matches!(r, Reply::StatsReply { request_id: 6, running: false, .. }));

    assert!(dirs_a.iter().chain(&dirs_b).all(|d| d.is_dir()), "cgroups stay until Forget");
    daemon.send(&Request::Forget { request_id: 7, instance: a.clone() });
    daemon.send(&Request::Forget { request_id: 8, instance: b.clone() });
    daemon.expect(|r| matches!(r, Reply::Done { request_id: 7, .. }));
    daemon.expect(|r| matches!(r, Reply::Done { request_id: 8, .. }));
    assert!(dirs_a.iter().chain(&dirs_b).all(|d| !d.exists()), "no cgroup is left after Forget");
    daemon.send(&Request::Forget { request_id: 9, instance: a });
    daemon.expect_error(9, ErrorCode::UnknownInstance);
    daemon.finish();
}

fn bad_requests_get_errors() {
    let plugin = PluginDir::probe();
    let mut daemon = Daemon::start();
    let sock = daemon.handle.socket();
    let raw = |bytes: &[u8], fds: &[i32]| transport::send_datagram(sock, bytes, fds).expect("send");
    raw(b"{nope", &[]);
    raw(br#"{"type":"kill","request_id":1,"instance":"x","also":1}"#, &[]);
    raw(b"", &[]);
    raw(&vec![b' '; launch_service::wire::MAX_MESSAGE_BYTES + 1], &[]);
    let (pipe_read, _pipe_write) = nix::unistd::pipe().expect("pipe");
    raw(br#"{"type":"stats","request_id":2,"instance":"x"}"#, &[pipe_read.as_raw_fd()]);
    for code in [ErrorCode::Malformed, ErrorCode::Malformed, ErrorCode::Malformed, ErrorCode::TooLarge] {
        let reply = daemon.next();
        assert!(matches!(&reply.reply, Reply::Error { request_id: None, code: c, .. } if *c == code), "{reply:?}");
    }
    daemon.expect_error(2, ErrorCode::UnexpectedFds);

    daemon.send(&launch(3, "probe-1-00000001", &plugin, &["exit", "0"]));
    daemon.expect_error(3, ErrorCode::InvalidInstance);
    let name = daemon.handle.instance_name("probe", 3);
    let mut missing = launch(4, &name, &plugin, &[]);
    if let Request::Launch { manifest_json, .. } = &mut missing {
        *manifest_json = r#"{"name": "probe"}"#.into();
    }
    daemon.send(&missing);
    let refused = daemon.expect(|r| matches!(r, Reply::Refused { request_id: 4, .. })).reply;
    assert!(matches!(&refused, Reply::Refused { cause, step, .. } if cause == "refused" && step == "load_manifest"));
    let mut bad_policy = launch(5, &name, &plugin, &[]);
    if let Request::Launch { policy_json, .. } = &mut bad_policy {
        *policy_json = Some(r#"{"version": "nonsense"}"#.into());
    }
    daemon.send(&bad_policy);
    let refused = daemon.expect(|r| matches!(r, Reply::Refused { request_id: 5, .. })).reply;
    assert!(matches!(&refused, Reply::Refused { step, .. } if step == "load_policy"), "{refused:?}");

    daemon.send(&launch(6, &name, &plugin, &["sleep", "30"]));
    daemon.expect(|r| matches!(r, Reply::Launched { request_id: 6, .. }));
    daemon.send(&launch(7, &name, &plugin, &["sleep", "30"]));
    daemon.expect_error(7, ErrorCode::DuplicateInstance);
    daemon.send(&Request::Signal { request_id: 8, instance: name.clone(), signal: 0x7fff });
    daemon.expect_error(8, ErrorCode::InvalidRequest);
    daemon.send(&Request::Signal { request_id: 9, instance: "probe-0-00000000".into(), signal: libc::SIGTERM });
    daemon.expect_error(9, ErrorCode::UnknownInstance);
    daemon.send(&Request::Signal { request_id: 10, instance: name.clone(), signal: libc::SIGKILL });
    daemon.expect(|r| matches!(r, Reply::Done { request_id: 10, .. }));
    let exited = daemon.expect(|r| matches!(r, Reply::Exited { .. })).reply;
    assert!(matches!(exited, Reply::Exited { status: WaitOutcome::Signal(9), .. }), "{exited:?}");
    daemon.send(&Request::Signal { request_id: 11, instance: name.clone(), signal: libc::SIGTERM });
    daemon.expect_error(11, ErrorCode::NotRunning);
    daemon.send(&Request::Forget { request_id: 12, instance: name.clone() });
    daemon.expect(|r| matches!(r, Reply::Done { request_id: 12, .. }));

    // Still serving: the same name launches again once forgotten.
    daemon.send(&launch(13, &name, &plugin, &["exit", "0"]));
    daemon.expect(|r| matches!(r, Reply::Launched { request_id: 13, .. }));
    let exited = daemon.expect(|r| matches!(r, Reply::Exited { .. })).reply;
    assert!(matches!(exited, Reply::Exited { status: WaitOutcome::Code(0), .. }), "{exited:?}");
    daemon.finish();
}

fn closing_the_daemon_end_cleans_up() {
    let plugin = PluginDir::probe();
    let mut daemon = Daemon::start();
    let mut held = Vec::new();
    for nonce in 1..=2 {
        let name = daemon.handle.instance_name("probe", nonce);
        daemon.send(&launch(u64::from(nonce), &name, &plugin, &["sleep", "30"]));
        held.push(daemon.expect(|r| matches!(r, Reply::Launched { .. })));
    }
    let dirs: Vec<PathBuf> = held.iter().flat_map(|l| cgroup_dirs(&l.reply)).collect();
    assert!(dirs.iter().all(|d| d.is_dir()));
    let status = daemon.handle.shutdown().expect("reap the launcher");
    assert!(matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)), "{status:?}");
    for launched in &held {
        assert!(pidfd_says_exited(&launched.fds[FD_PIDFD]), "every plugin died with the launcher");
    }
    assert!(dirs.iter().all(|d| !d.exists()), "every cgroup was removed: {dirs:?}");
}

fn leftovers_of_a_killed_launcher_are_swept() {
    let plugin = PluginDir::probe();
    let mut first = Daemon::start();
    let name = first.handle.instance_name("probe", 1);
    first.send(&launch(1, &name, &plugin, &["sleep", "30"]));
    let launched = first.expect(|r| matches!(r, Reply::Launched { .. }));
    let dirs = cgroup_dirs(&launched.reply);
    let (sock, pid) = first.handle.into_parts();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("SIGKILL the launcher");
    nix::sys::wait::waitpid(pid, None).expect("reap the launcher");
    drop(sock);
    assert!(pidfd_says_exited(&launched.fds[FD_PIDFD]), "the plugin died with its launcher (parent-death signal)");
    assert!(dirs.iter().all(|d| d.is_dir()), "nobody removed the cgroup yet");

    let mut second = Daemon::start();
    // Any reply means the start-up sweep is done.
    second.send(&Request::Stats { request_id: 1, instance: name });
    second.expect_error(1, ErrorCode::UnknownInstance);
    assert!(dirs.iter().all(|d| !d.exists()), "the next launcher removed the leftovers: {dirs:?}");
    second.finish();
}

fn a_multithreaded_process_cannot_fork_the_launcher() {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || wait.recv());
    let refused = launch_service::fork_launcher().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("single-threaded"), "{refused}");
    let _ = release.send(());
    let _ = thread.join();
}

// ---- helpers ----

/// The daemon's side of one launcher, keeping replies that arrive before they are wanted.
struct Daemon {
    handle: LauncherHandle,
    pending: VecDeque<InboundReply>,
}

impl Daemon {
    fn start() -> Self {
        Self { handle: launch_service::fork_launcher().expect("fork the launcher"), pending: VecDeque::new() }
    }

    fn send(&self, request: &Request) {
        self.handle.send(request).expect("send a request");
    }

    /// The next reply, in order.
    fn next(&mut self) -> InboundReply {
        self.pending.pop_front().unwrap_or_else(|| self.receive())
    }

    fn receive(&self) -> InboundReply {
        assert!(readable(self.handle.socket(), WAIT), "no reply from the launcher within {WAIT:?}");
        self.handle.recv().expect("a well-formed reply").expect("the launcher is still there")
    }

    /// The first reply (kept or new) that `wanted` accepts; others stay pending.
    fn expect(&mut self, wanted: impl Fn(&Reply) -> bool) -> InboundReply {
        if let Some(i) = self.pending.iter().position(|r| wanted(&r.reply)) {
            return self.pending.remove(i).expect("index just found");
        }
        loop {
            let reply = self.receive();
            if wanted(&reply.reply) {
                return reply;
            }
            self.pending.push_back(reply);
        }
    }

    fn expect_error(&mut self, id: u64, code: ErrorCode) {
        let reply = self.expect(|r| matches!(r, Reply::Error { request_id: Some(i), .. } if *i == id));
        assert!(matches!(&reply.reply, Reply::Error { code: c, .. } if *c == code), "{reply:?}");
    }

    /// Close the daemon's end and check the launcher exits cleanly.
    fn finish(self) {
        let status = self.handle.shutdown().expect("reap the launcher");
        assert!(matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)), "{status:?}");
    }
}

fn launch(request_id: u64, instance: &str, plugin: &PluginDir, args: &[&str]) -> Request {
    Request::Launch {
        request_id,
        instance: instance.to_owned(),
        manifest_json: std::fs::read_to_string(plugin.dir.path().join("manifest.json")).expect("read the manifest"),
        plugin_dir: std::fs::canonicalize(plugin.dir.path()).expect("canonical plugin dir"),
        policy_json: None,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    }
}

fn cgroup_dirs(launched: &Reply) -> Vec<PathBuf> {
    let Reply::Launched { enforcement, .. } = launched else { panic!("not launched: {launched:?}") };
    let hierarchies = enforcement["cgroups"]["detail"]["hierarchies"].as_array().cloned().unwrap_or_default();
    hierarchies.iter().filter_map(|h| h["dir"].as_str().map(PathBuf::from)).collect()
}

fn readable(fd: std::os::fd::BorrowedFd<'_>, limit: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(left.as_millis().min(10_000) as u32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(n) if n > 0 => return true,
            Ok(_) if left.is_zero() => return false,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => panic!("poll: {e}"),
        }
    }
}

fn pidfd_says_exited(pidfd: &OwnedFd) -> bool {
    readable(pidfd.as_fd(), Duration::from_secs(10))
}

/// One line from a plugin's stdout pipe, as JSON.
fn read_json_line(fd: &OwnedFd) -> Value {
    let mut file = std::fs::File::from(fd.try_clone().expect("dup"));
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.last() != Some(&b'\n') {
        assert!(readable(fd.as_fd(), WAIT), "no output within {WAIT:?}: {:?}", String::from_utf8_lossy(&line));
        match file.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => panic!("reading plugin output: {e}"),
        }
    }
    serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&line)))
}

/// A plugin directory whose native entry point is the probe (removed on drop).
struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    fn probe() -> Self {
        let dir = tempfile::Builder::new().prefix("wf-launcher-test-").tempdir().expect("plugin dir");
        set_mode(dir.path(), 0o755);
        let probe = dir.path().join("probe");
        std::fs::copy(probe_binary(), &probe).expect("copy wf-probe");
        set_mode(&probe, 0o755);
        let manifest = serde_json::json!({ "name": "probe", "version": "1.0.0", "entry_point": "probe" });
        let path = dir.path().join("manifest.json");
        std::fs::write(&path, manifest.to_string()).expect("write manifest");
        set_mode(&path, 0o644);
        Self { dir }
    }
}

fn probe_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let path = target.join(profile).join("wf-probe");
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
