//! The launcher's loop: one thread, one `poll` over the daemon's socket and a signalfd.
//!
//! It only prepares, clones, releases, reaps and does cgroup file operations; it never
//! reads a plugin's output or waits on a plugin. Replies queue while the daemon is not
//! reading, and requests are not read while the queue is long, so memory stays bounded
//! whatever the daemon does. When the daemon's end closes, every instance is killed and
//! its cgroup removed, then the launcher exits.

use super::instances::{Instances, Outgoing};
use super::launch::LaunchInput;
use super::transport::{self, Received, WireError};
use super::wire::{ErrorCode, Reply, Request};
use super::LauncherConfig;
use crate::stop_signals::STOP_SIGNALS;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// Replies waiting for the daemon beyond which no further request is read.
const QUEUE_HIGH_WATER: usize = 64;
/// Requests handled per wake-up before reaping and flushing again.
const REQUESTS_PER_ROUND: usize = 16;

struct Service {
    sock: OwnedFd,
    signals: SignalFd,
    instances: Instances,
    outgoing: VecDeque<(Vec<u8>, Vec<OwnedFd>, Option<String>)>,
}

/// The daemon closed its end, or the socket failed: time to clean up and exit.
struct DaemonGone;

/// The launcher process's whole life. Never returns.
pub(super) fn launcher_main(sock: OwnedFd, config: LauncherConfig) -> ! {
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(sock, &config)));
    let code = match served {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("wfsandbox launcher: {e}");
            1
        }
        Err(_) => 101,
    };
    // SAFETY: _exit ends this forked process without running the daemon's exit handlers.
    unsafe { libc::_exit(code) }
}

fn serve(sock: OwnedFd, config: &LauncherConfig) -> io::Result<()> {
    name_this_process();
    let signals = listen_for_signals()?;
    set_nonblocking(&sock)?;
    super::sweep_orphans(config.cgroup_parent.as_deref());
    let launcher_pid = std::process::id() as i32;
    let mut service = Service { sock, signals, instances: Instances::new(launcher_pid), outgoing: VecDeque::new() };
    service.run();
    service.outgoing.clear();
    service.instances.shutdown();
    super::remove_parent_dirs(config.cgroup_parent.as_deref());
    Ok(())
}

/// `wfs-launcher` in `ps` and /proc/PID/comm, apart from the daemon it was forked from.
fn name_this_process() {
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"wfs-launcher".as_ptr()) };
}

/// SIGCHLD (to reap) and the terminal's stop signals (ignored: the daemon decides) are
/// blocked and read from a signalfd. Children unblock every signal before plugin code.
fn listen_for_signals() -> io::Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for signal in STOP_SIGNALS {
        mask.add(signal);
    }
    mask.thread_block().map_err(io::Error::from)?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(io::Error::from)
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    Ok(())
}

impl Service {
    fn run(&mut self) {
        loop {
            let (sock_events, signals_ready) = match self.wait() {
                Ok(ready) => ready,
                Err(e) => {
                    eprintln!("wfsandbox launcher: poll: {e}");
                    return;
                }
            };
            if signals_ready {
                self.drain_signals();
            }
            self.queue_exits();
            if sock_events.contains(PollFlags::POLLOUT) && self.flush().is_err() {
                return;
            }
            let readable = sock_events.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR);
            if readable && self.read_requests().is_err() {
                return;
            }
            if self.flush().is_err() {
                return;
            }
        }
    }

    fn wait(&self) -> io::Result<(PollFlags, bool)> {
        let mut sock_flags = PollFlags::empty();
        if self.outgoing.len() < QUEUE_HIGH_WATER {
            sock_flags |= PollFlags::POLLIN;
        }
        if !self.outgoing.is_empty() {
            sock_flags |= PollFlags::POLLOUT;
        }
        let mut fds =
            [PollFd::new(self.sock.as_fd(), sock_flags), PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok((PollFlags::empty(), false)),
            Err(e) => return Err(io::Error::from(e)),
        }
        let sock_events = fds[0].revents().unwrap_or(PollFlags::empty());
        let signals_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        Ok((sock_events, signals_ready))
    }

    /// SIGCHLD is acted on by reaping (every round); stop signals are left to the daemon.
    fn drain_signals(&mut self) {
        while let Ok(Some(_)) = self.signals.read_signal() {}
    }

    fn queue_exits(&mut self) {
        for exited in self.instances.reap() {
            self.queue((exited, Vec::new()), None);
        }
    }

    fn read_requests(&mut self) -> Result<(), DaemonGone> {
        for _ in 0..REQUESTS_PER_ROUND {
            if self.outgoing.len() >= QUEUE_HIGH_WATER {
                return Ok(());
            }
            let (bytes, fds) = match transport::recv_datagram(self.sock.as_fd()) {
                Ok(Received::Closed) => return Err(DaemonGone),
                Ok(Received::Datagram { bytes, fds }) => (bytes, fds),
                Err(e) if e.is_would_block() => return Ok(()),
                Err(WireError::TooLarge { bytes }) => {
                    let message = format!("datagram of {bytes} bytes over the limit");
                    self.queue((unparsed_error(ErrorCode::TooLarge, message), Vec::new()), None);
                    continue;
                }
                Err(e) => {
                    eprintln!("wfsandbox launcher: reading a request: {e}");
                    return Err(DaemonGone);
                }
            };
            let reply = self.handle_datagram(&bytes, fds);
            let launched = match &reply.0 {
                Reply::Launched { instance, .. } => Some(instance.clone()),
                _ => None,
            };
            self.queue(reply, launched);
            // A launch can take a while; children that ended meanwhile are reported promptly.
            self.queue_exits();
        }
        Ok(())
    }

    fn handle_datagram(&mut self, bytes: &[u8], fds: Vec<OwnedFd>) -> Outgoing {
        let request: Request = match transport::decode(bytes) {
            Ok(request) => request,
            Err(e) => return (unparsed_error(ErrorCode::Malformed, e), Vec::new()),
        };
        if !fds.is_empty() {
            drop(fds);
            let reply = Reply::Error {
                request_id: Some(request.request_id()),
                instance: Some(request.instance().to_owned()),
                code: ErrorCode::UnexpectedFds,
                message: "requests carry no fds; they were closed".to_owned(),
            };
            return (reply, Vec::new());
        }
        self.handle(request)
    }

    fn handle(&mut self, request: Request) -> Outgoing {
        let none = Vec::new();
        match request {
            Request::Launch { request_id, instance, manifest_json, plugin_dir, policy_json, args } => {
                let input = LaunchInput {
                    instance: &instance,
                    manifest_json: &manifest_json,
                    plugin_dir: &plugin_dir,
                    policy_json: policy_json.as_deref(),
                    args: &args,
                };
                self.instances.launch(request_id, &input)
            }
            Request::Signal { request_id, instance, signal } => {
                (self.instances.signal(request_id, &instance, signal), none)
            }
            Request::Kill { request_id, instance } => (self.instances.kill(request_id, &instance), none),
            Request::Stats { request_id, instance } => (self.instances.stats(request_id, &instance), none),
            Request::Forget { request_id, instance } => (self.instances.forget(request_id, &instance), none),
        }
    }

    /// Encode and queue a reply. A `Launched` that cannot be encoded undoes its launch
    /// (the daemon would never learn of the plugin) and becomes a `Refused`.
    fn queue(&mut self, (reply, fds): Outgoing, launched: Option<String>) {
        match transport::encode(&reply) {
            Ok(bytes) => self.outgoing.push_back((bytes, fds, launched)),
            Err(e) => {
                drop(fds);
                let fallback = match (&reply, launched) {
                    (Reply::Launched { request_id, instance, .. }, Some(name)) => {
                        self.instances.abandon(&name);
                        Reply::Refused {
                            request_id: *request_id,
                            instance: instance.clone(),
                            cause: crate::prepare::CAUSE_SETUP_FAILED.to_owned(),
                            step: "reply".to_owned(),
                            errno: None,
                            message: format!("the launch reply could not be encoded: {e}"),
                        }
                    }
                    _ => unparsed_error(ErrorCode::TooLarge, format!("a reply could not be encoded: {e}")),
                };
                if let Ok(bytes) = transport::encode(&fallback) {
                    self.outgoing.push_back((bytes, Vec::new(), None));
                }
            }
        }
    }

    /// Send queued replies until the socket is full. `Err` when the daemon is gone.
    fn flush(&mut self) -> Result<(), DaemonGone> {
        while let Some((bytes, fds, launched)) = self.outgoing.front() {
            let raw: Vec<i32> = fds.iter().map(AsRawFd::as_raw_fd).collect();
            match transport::send_datagram(self.sock.as_fd(), bytes, &raw) {
                Ok(()) => {
                    // Our copies of the plugin's channel and stdio close here.
                    self.outgoing.pop_front();
                }
                Err(e) if e.is_would_block() => return Ok(()),
                Err(e) => {
                    eprintln!("wfsandbox launcher: sending a reply: {e}");
                    if let Some(name) = launched.clone() {
                        self.instances.abandon(&name);
                    }
                    return Err(DaemonGone);
                }
            }
        }
        Ok(())
    }
}

fn unparsed_error(code: ErrorCode, message: impl ToString) -> Reply {
    Reply::Error { request_id: None, instance: None, code, message: message.to_string() }
}
