//! `wfsandbox serve`: the long-running supervisor (DESIGN.md §3, §5).
//!
//! ```text
//! wfsandbox serve (root)
//!  ├─ launcher  forked first, single-threaded: every clone, reap and cgroup operation
//!  │    └─ plugins
//!  └─ tokio runtime: control socket, sessions, broker, lifecycle, timers, audit
//! ```
//!
//! Start-up, in order: policy → pid file (one daemon per state directory) → control socket
//! (one daemon per socket; a stale one is replaced) → audit log → launcher fork (the process
//! is still single-threaded) → runtime. The async side never forks.
//!
//! Shutdown (SIGTERM, SIGINT or the `shutdown` verb): no new work is taken, every plugin is
//! stopped as `stop` does, streams end `shutting_down`, and the launcher, whose socket closes
//! last, kills and removes anything left before it exits. SIGHUP reloads the policy file.
//! If the daemon is killed outright, its launcher sees the socket close and does the same; the
//! plugins die with the launcher (parent-death signal), and the next launcher removes any
//! cgroup a dead one left.

mod audit;
mod audit_tally;
mod broker;
mod connection;
pub mod control_socket;
mod daemon;
mod dispatch;
mod launcher_link;
mod outbox;
mod pid_file;
mod plugins;
mod policy_reload;
mod responses;
mod session_links;
mod streams;
mod violations;

use crate::auth::{AuthLimits, Authenticator, OsRandom};
use crate::clock::SystemClock;
use crate::commands::{self, LoadError};
use crate::launch_service::{self, LauncherConfig};
use audit::AuditTrail;
use control_socket::{ControlSocket, ControlSocketError};
use daemon::{shutting_down, ActivePolicy, Daemon};
use launcher_link::{LauncherLink, LinkError};
use pid_file::{PidFile, PidFileError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;

/// Connections served at once; more are accepted and closed at once. Each non-root uid gets at
/// most 64 of them and the last 64 are root's (`connection::PeerLimits`).
pub const MAX_CONNECTIONS: usize = 1024;
/// How often idle sessions are swept from the session table.
const SESSION_SWEEP: Duration = Duration::from_secs(30);
/// How long connections may take to flush their last frames at shutdown.
const CONNECTION_DRAIN: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("must run as root: it clones namespaces and creates cgroups")]
    NotRoot,
    #[error("loading the policy: {0}")]
    Policy(#[from] LoadError),
    #[error("{0}")]
    PidFile(#[from] PidFileError),
    #[error("{0}")]
    Socket(#[from] ControlSocketError),
    #[error("opening the audit log: {0}")]
    Audit(#[from] crate::audit_log::AuditLogError),
    #[error("forking the launcher: {0}")]
    ForkLauncher(io::Error),
    #[error("starting the async runtime: {step}: {source}")]
    Runtime { step: &'static str, source: io::Error },
    #[error("{0}")]
    Link(#[from] LinkError),
    #[error("the launcher ended unexpectedly ({0}); the plugins it ran are gone")]
    LauncherDied(String),
}

/// Run the daemon; the process exit status.
pub fn serve(socket: Option<&Path>, policy_path: Option<&Path>, state_dir: &Path) -> u8 {
    init_logging();
    let socket = socket.map_or_else(|| PathBuf::from(wf_protocol::control::DEFAULT_SOCKET_PATH), Path::to_owned);
    match run(&socket, policy_path, state_dir) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "wfsandbox serve stopped");
            eprintln!("wfsandbox serve: {e}");
            1
        }
    }
}

/// Logs go to stderr: JSON lines when it is not a terminal (a service manager's journal).
fn init_logging() {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt().with_writer(io::stderr).with_target(false);
    let _ = if io::stderr().is_terminal() { builder.try_init() } else { builder.json().try_init() };
}

fn run(socket_path: &Path, policy_path: Option<&Path>, state_dir: &Path) -> Result<(), ServeError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(ServeError::NotRoot);
    }
    let policy = load_policy(policy_path)?;
    let _pid_file = PidFile::create(state_dir)?;
    let mut socket = ControlSocket::claim(socket_path, &policy.policy.authentication)?;
    let clock = SystemClock::new();
    let audit = Arc::new(AuditTrail::from_policy(&policy.policy, clock)?);
    let config = LauncherConfig { cgroup_parent: policy.policy.sandbox.cgroup_parent.clone() };
    let launcher = launch_service::fork_launcher_with(&config).map_err(ServeError::ForkLauncher)?;
    if let Some(problem) = launcher.cgroup_prepare_error() {
        tracing::warn!(%problem, "preparing the cgroup parent failed; starts that need cgroups will be refused");
    }
    let (launcher_sock, launcher_pid) = launcher.into_parts();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // A busy worker looks for ready sockets every 4 task turns instead of 61: with a
        // plugin flooding at its full rate, every turn is ~100 µs of frames, and 61 of them
        // would leave another plugin's ready channel unread for ~6 ms.
        .event_interval(4)
        .thread_name("wfsandbox-rt")
        .enable_all()
        .build()
        .map_err(|source| ServeError::Runtime { step: "build", source })?;
    let listener = socket.take_listener();
    let permissions = socket.permissions();
    let served = runtime.block_on(async {
        let link = LauncherLink::new(launcher_sock, launcher_pid)?;
        let auth = Authenticator::new(
            &policy.policy.authentication,
            AuthLimits::default(),
            Arc::new(clock),
            Arc::clone(&audit) as Arc<dyn crate::auth::AuditSink>,
            Arc::new(OsRandom),
        );
        audit.record(
            "daemon_start",
            serde_json::json!({ "socket": socket_path, "policy": policy.path, "pid": std::process::id() }),
        );
        let daemon = Arc::new(Daemon::new(policy, auth, link, Arc::clone(&audit), Some(permissions), clock));
        let listener =
            listener.ok_or_else(|| ServeError::Runtime { step: "listener", source: io::ErrorKind::NotFound.into() })?;
        serve_until_shutdown(daemon, listener).await
    });
    // Dropping the runtime drops every task and with them the launcher socket: the launcher
    // kills and removes whatever is left, then exits.
    runtime.shutdown_timeout(CONNECTION_DRAIN);
    reap_launcher(launcher_pid);
    audit.flush_tallies();
    audit.record("daemon_stop", serde_json::json!({ "error": served.as_ref().err().map(ToString::to_string) }));
    served
}

fn load_policy(path: Option<&Path>) -> Result<ActivePolicy, ServeError> {
    match path {
        None => Ok(ActivePolicy { policy: wf_policy::default_policy(), json: None, path: None }),
        Some(path) => {
            let path = std::path::absolute(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
            let (json, policy) = commands::read_policy_file(&path)?;
            Ok(ActivePolicy { policy, json: Some(json), path: Some(path) })
        }
    }
}

async fn serve_until_shutdown(
    daemon: Arc<Daemon>,
    listener: std::os::unix::net::UnixListener,
) -> Result<(), ServeError> {
    let listener = tokio::net::UnixListener::from_std(listener)
        .map_err(|source| ServeError::Runtime { step: "adopt the control socket", source })?;
    let reader_daemon = Arc::clone(&daemon);
    let mut launcher_reader =
        tokio::spawn(
            async move { reader_daemon.launcher.read_loop(|reply| reader_daemon.on_launcher_reply(reply)).await },
        );
    tokio::spawn(handle_signals(Arc::clone(&daemon)));
    tokio::spawn(sweep_sessions(Arc::clone(&daemon)));
    let accepting = tokio::spawn(accept_connections(Arc::clone(&daemon), listener));
    tracing::info!(launcher = daemon.launcher.pid().as_raw(), "wfsandbox daemon ready");
    let launcher_died = tokio::select! {
        _ = shutting_down(daemon.shutdown_signal()) => None,
        ended = &mut launcher_reader => Some(ended.map_or_else(|e| e.to_string(), |e| e.to_string())),
    };
    daemon.begin_shutdown();
    if let Some(why) = launcher_died {
        return Err(ServeError::LauncherDied(why));
    }
    let stopped = daemon.stop_all().await;
    tracing::info!(stopped, "every plugin is stopped");
    daemon.broker.close_all_subscriptions();
    let _ = accepting.await;
    Ok(())
}

async fn accept_connections(daemon: Arc<Daemon>, listener: tokio::net::UnixListener) {
    let mut connections = JoinSet::new();
    let limits = connection::PeerLimits::new(MAX_CONNECTIONS);
    let shutdown = daemon.shutdown_signal();
    loop {
        tokio::select! {
            _ = shutting_down(shutdown.clone()) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if let Some((peer, slot)) = admit(&limits, &stream) {
                        connections.spawn(connection::serve(Arc::clone(&daemon), stream, peer, slot));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a control connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    // Connections end on the shutdown signal; give them a moment to flush their last frames.
    let _ = tokio::time::timeout(CONNECTION_DRAIN, async { while connections.join_next().await.is_some() {} }).await;
    connections.abort_all();
}

/// Who the peer is and its connection slot; `None` (the stream is closed at once) when its
/// uid has no slot left. Refusals are not logged: a peer could flood the log with them.
fn admit(
    limits: &Arc<connection::PeerLimits>,
    stream: &tokio::net::UnixStream,
) -> Option<(crate::auth::PeerCred, connection::ConnectionSlot)> {
    let peer = match crate::auth::peer_cred(stream) {
        Ok(peer) => peer,
        Err(e) => {
            tracing::warn!(error = %e, "reading a control client's credentials");
            return None;
        }
    };
    limits.admit(peer.uid).ok().map(|slot| (peer, slot))
}

async fn handle_signals(daemon: Arc<Daemon>) {
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::error!("installing signal handlers failed");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match daemon.reload_policy(None) {
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "SIGHUP: the policy was not reloaded"),
            },
        }
    }
    tracing::info!("stop signal received; shutting down");
    daemon.begin_shutdown();
}

async fn sweep_sessions(daemon: Arc<Daemon>) {
    let mut tick = tokio::time::interval(SESSION_SWEEP);
    loop {
        tick.tick().await;
        daemon.audit.flush_tallies();
        for session in daemon.auth.sweep_expired() {
            let why = wf_protocol::control::ControlError::SessionExpired { message: "idle for too long".into() };
            daemon.sessions.revoke(&session.id, why);
        }
    }
}

fn reap_launcher(pid: nix::unistd::Pid) {
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(status) => {
                tracing::info!(?status, "launcher exited");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reaping the launcher");
                return;
            }
        }
    }
}
