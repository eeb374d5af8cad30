//! One running sandbox in one-shot mode: a single-threaded poll loop over the
//! plugin's pidfd, its stdout/stderr pipes and its event channel.
//!
//! The channel carries typed frames (`wf-protocol`); every publish is checked
//! against the manifest's grants before it leaves the sandbox. After the initial
//! `--event`s are delivered the supervisor half-closes its side, so the plugin sees EOF.

use crate::grants;
use crate::grants::{Grants, Refusal, RefusedPattern, Subscriptions};
use crate::output::{OutputForwarder, Pumped};
use crate::publish_budget::PublishBudget;
use crate::report::{now_ms, EventCounters, Violation};
use crate::stop_signals;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};
use wf_policy::spec::EventGrants;
use wf_protocol::{FrameDecoder, PluginMessage, ProtocolError, SupervisorMessage};

/// At most this many violations are kept in full; later ones are only counted.
pub const MAX_RECORDED_VIOLATIONS: usize = 100;
/// Replies queued to a plugin that does not read are dropped past this many bytes.
const MAX_OUTGOING_BYTES: usize = 256 * 1024;
/// How long to keep draining pipes after the plugin's init has exited.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

pub struct SessionConfig<'a> {
    pub plugin: &'a str,
    pub instance: &'a str,
    pub grants: &'a EventGrants,
    pub max_event_bytes: u32,
    pub wall_clock: Duration,
    pub output_budget: u64,
}

/// The parent's ends of a running sandbox.
pub struct SessionIo {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    pub channel: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Stop signals addressed to the supervisor (see `stop_signals`).
    pub stop_signals: Option<SignalFd>,
}

#[derive(Debug, Default)]
pub struct SessionOutcome {
    pub status: Option<WaitStatus>,
    pub wall_clock_expired: bool,
    /// A stop signal the supervisor received, which ended the plugin.
    pub interrupted_by: Option<i32>,
    pub wall_ms: u64,
    pub events: EventCounters,
    pub output: crate::output::OutputCounters,
    pub violations: Vec<Violation>,
    pub violations_suppressed: u64,
}

struct Channel {
    fd: Option<OwnedFd>,
    decoder: FrameDecoder,
    outgoing: Vec<u8>,
    half_closed: bool,
}

pub struct Session<'a> {
    cfg: SessionConfig<'a>,
    io: SessionIo,
    channel: Channel,
    stdout_open: bool,
    stderr_open: bool,
    forwarder: OutputForwarder,
    budget: PublishBudget,
    subscriptions: Subscriptions,
    /// The grants, indexed.
    grants: Grants,
    outcome: SessionOutcome,
}

impl<'a> Session<'a> {
    pub fn new(cfg: SessionConfig<'a>, io: SessionIo) -> Self {
        for fd in [&io.channel, &io.stdout, &io.stderr] {
            set_nonblocking(fd);
        }
        let decoder = FrameDecoder::new(cfg.max_event_bytes);
        let forwarder = OutputForwarder::new(cfg.output_budget, cfg.plugin);
        let channel = Channel { fd: None, decoder, outgoing: Vec::new(), half_closed: false };
        let grants = Grants::new(cfg.grants);
        let subscriptions = Subscriptions::from_grants(&grants, cfg.max_event_bytes);
        let budget = PublishBudget::new(&cfg.grants.rate, crate::publish_budget::BYTE_BUDGET);
        Self {
            cfg,
            io,
            channel,
            stdout_open: true,
            stderr_open: true,
            forwarder,
            budget,
            subscriptions,
            grants,
            outcome: SessionOutcome::default(),
        }
    }

    /// Queue the hello and the initial events the plugin may read; others are counted.
    pub fn queue_initial(&mut self, events: &[(String, serde_json::Value)], stderr: &mut dyn Write) {
        let hello = SupervisorMessage::Hello {
            protocol: wf_protocol::PROTOCOL_VERSION,
            plugin: self.cfg.plugin.to_owned(),
            instance: self.cfg.instance.to_owned(),
        };
        self.queue(&hello);
        for (topic, payload) in events {
            if let Err(refusal) = grants::check_delivery(&self.grants, topic) {
                self.outcome.events.not_delivered += 1;
                let _ = writeln!(
                    stderr,
                    "wfsandbox: event on {topic} not delivered: {} ({})",
                    refusal.reason, refusal.rule
                );
                continue;
            }
            let event =
                SupervisorMessage::Event { topic: topic.clone(), payload: payload.clone(), sender: "host".into() };
            if self.queue(&event) {
                self.outcome.events.delivered += 1;
            } else {
                self.outcome.events.not_delivered += 1;
                let _ =
                    writeln!(stderr, "wfsandbox: event on {topic} not delivered: larger than the plugin's frame limit");
            }
        }
    }

    fn queue(&mut self, msg: &SupervisorMessage) -> bool {
        match wf_protocol::encode_with_limit(msg, self.cfg.max_event_bytes) {
            Ok(frame) if self.channel.outgoing.len() + frame.len() <= MAX_OUTGOING_BYTES => {
                self.channel.outgoing.extend_from_slice(&frame);
                true
            }
            _ => false,
        }
    }

    /// Run until the plugin's init exits (or is killed at the wall-clock limit).
    /// `kill_all` must kill every process of the sandbox (its cgroup).
    pub fn run(
        mut self,
        published: &mut dyn Write,
        stderr: &mut dyn Write,
        kill_all: &dyn Fn(),
    ) -> io::Result<SessionOutcome> {
        let start = Instant::now();
        let deadline = start + self.cfg.wall_clock;
        self.channel.fd = Some(self.io.channel.try_clone()?);
        loop {
            if let Some(status) = self.try_reap()? {
                self.outcome.status = Some(status);
                break;
            }
            let now = Instant::now();
            if now >= deadline && !self.outcome.wall_clock_expired {
                self.outcome.wall_clock_expired = true;
                kill_all();
                // Also end init itself: its death takes the whole pid namespace with it,
                // which matters when cgroups were allowed to degrade.
                signal_init(&self.io.pidfd, libc::SIGKILL);
            }
            let ending = self.outcome.wall_clock_expired || self.outcome.interrupted_by.is_some();
            let wait = if ending { Duration::from_millis(50) } else { deadline - now };
            self.poll_once(wait, published, stderr)?;
            if self.outcome.interrupted_by.is_none() {
                if let Some(signal) = self.io.stop_signals.as_ref().and_then(stop_signals::take_pending) {
                    self.forwarder.end_line(stderr);
                    let _ = writeln!(stderr, "wfsandbox: received signal {signal}; killing the sandbox");
                    self.outcome.interrupted_by = Some(signal);
                    kill_all();
                    signal_init(&self.io.pidfd, libc::SIGKILL);
                }
            }
        }
        self.drain(published, stderr)?;
        self.forwarder.end_line(stderr);
        self.outcome.wall_ms = start.elapsed().as_millis() as u64;
        self.outcome.output = self.forwarder.counters();
        Ok(self.outcome)
    }

    fn try_reap(&self) -> io::Result<Option<WaitStatus>> {
        match waitpid(self.io.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => Ok(None),
            Ok(status) => Ok(Some(status)),
            Err(nix::errno::Errno::EINTR) => Ok(None),
            Err(e) => Err(io::Error::from(e)),
        }
    }

    fn poll_once(&mut self, wait: Duration, published: &mut dyn Write, stderr: &mut dyn Write) -> io::Result<()> {
        let ms = wait.as_millis().min(60_000) as u16;
        let chan_flags = self.channel_poll_flags();
        let (out_ready, err_ready, chan_ready) = {
            // Once reaped, the pidfd stays readable; leave it out or poll would spin.
            let pid_flags = if self.outcome.status.is_some() { PollFlags::empty() } else { PollFlags::POLLIN };
            let mut fds = vec![PollFd::new(self.io.pidfd.as_fd(), pid_flags)];
            let out_idx = self.stdout_open.then(|| push(&mut fds, self.io.stdout.as_fd(), PollFlags::POLLIN));
            let err_idx = self.stderr_open.then(|| push(&mut fds, self.io.stderr.as_fd(), PollFlags::POLLIN));
            let chan_idx = chan_flags.map(|flags| push(&mut fds, self.io.channel.as_fd(), flags));
            if let Some(signals) = self.io.stop_signals.as_ref() {
                push(&mut fds, signals.as_fd(), PollFlags::POLLIN);
            }
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(io::Error::from(e)),
            }
            let ready = |i: Option<usize>| i.and_then(|i| fds[i].revents()).filter(|r| !r.is_empty());
            (ready(out_idx).is_some(), ready(err_idx).is_some(), ready(chan_idx))
        };
        if out_ready {
            self.stdout_open = self.pump_output(true, stderr)?;
        }
        if err_ready {
            self.stderr_open = self.pump_output(false, stderr)?;
        }
        if let Some(revents) = chan_ready {
            self.service_channel(revents, published, stderr)?;
        }
        Ok(())
    }

    fn channel_poll_flags(&self) -> Option<PollFlags> {
        self.channel.fd.as_ref()?;
        let mut flags = PollFlags::POLLIN;
        if !self.channel.outgoing.is_empty() {
            flags |= PollFlags::POLLOUT;
        }
        Some(flags)
    }

    /// Returns whether the stream is still open.
    fn pump_output(&mut self, stdout: bool, stderr: &mut dyn Write) -> io::Result<bool> {
        let fd = if stdout { &self.io.stdout } else { &self.io.stderr };
        let mut file = std::fs::File::from(fd.try_clone()?);
        for _ in 0..64 {
            match self.forwarder.pump(&mut file, stderr)? {
                Pumped::Eof => return Ok(false),
                Pumped::WouldBlock => return Ok(true),
                Pumped::Data(_) => {}
            }
        }
        Ok(true)
    }

    fn service_channel(
        &mut self,
        revents: PollFlags,
        published: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> io::Result<()> {
        if revents.contains(PollFlags::POLLOUT) {
            self.flush_outgoing()?;
        }
        if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            self.read_channel(published, stderr)?;
        }
        Ok(())
    }

    fn flush_outgoing(&mut self) -> io::Result<()> {
        let Some(fd) = self.channel.fd.as_ref() else { return Ok(()) };
        let mut sock = std::fs::File::from(fd.try_clone()?);
        while !self.channel.outgoing.is_empty() {
            match sock.write(&self.channel.outgoing) {
                Ok(n) => {
                    self.channel.outgoing.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    self.channel.outgoing.clear();
                }
                Err(e) => return Err(e),
            }
        }
        if !self.channel.half_closed {
            self.channel.half_closed = true;
            let _ = nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Write);
        }
        Ok(())
    }

    fn read_channel(&mut self, published: &mut dyn Write, stderr: &mut dyn Write) -> io::Result<()> {
        let Some(fd) = self.channel.fd.as_ref() else { return Ok(()) };
        let mut sock = std::fs::File::from(fd.try_clone()?);
        let mut buf = [0u8; 16 * 1024];
        for _ in 0..64 {
            let n = match sock.read(&mut buf) {
                Ok(0) => {
                    if let Err(e) = self.channel.decoder.finish() {
                        self.protocol_violation(&e, stderr);
                    }
                    self.close_channel();
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    // The plugin exited with our replies unread; a partial frame still counts.
                    if let Err(e) = self.channel.decoder.finish() {
                        self.protocol_violation(&e, stderr);
                    }
                    self.close_channel();
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            if !self.decode_frames(&buf[..n], published, stderr) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Feed bytes to the decoder and handle every complete frame. Returns false when
    /// the channel was closed because the plugin broke the protocol.
    fn decode_frames(&mut self, bytes: &[u8], published: &mut dyn Write, stderr: &mut dyn Write) -> bool {
        let mut rest = bytes;
        loop {
            let took = self.channel.decoder.push(rest);
            rest = &rest[took..];
            match self.channel.decoder.next_frame::<PluginMessage>() {
                Ok(Some(PluginMessage::Publish { topic, payload, claimed_sender })) => {
                    if let Some(claimed) = claimed_sender {
                        self.report_claimed_sender(&topic, &claimed);
                    }
                    self.handle_publish(topic, payload, published);
                }
                Ok(Some(PluginMessage::Subscribe { topics })) => self.handle_subscribe(&topics),
                Ok(Some(PluginMessage::Unsubscribe { topics })) => {
                    if let Err(refusal) = self.subscriptions.unsubscribe(&topics) {
                        self.refuse_subscription(String::new(), refusal);
                    }
                    self.queue(&SupervisorMessage::Subscribed { topics: self.subscriptions.to_vec() });
                }
                Ok(None) if rest.is_empty() || took == 0 => return true,
                Ok(None) => {}
                Err(e) => {
                    self.protocol_violation(&e, stderr);
                    return false;
                }
            }
        }
    }

    fn handle_publish(&mut self, topic: String, payload: serde_json::Value, published: &mut dyn Write) {
        let size = serde_json::to_vec(&payload).map(|v| v.len()).unwrap_or(0);
        match grants::check_publish(&self.grants, &topic) {
            Ok(()) => {
                // Charged by what the host receives: the whole line, topic and envelope included.
                let line = serde_json::json!({ "topic": topic, "payload": payload });
                let line = crate::terminal_text::json_line(&line);
                if let Err(refusal) = self.budget.admit(line.len() as u64 + 1, Instant::now()) {
                    self.outcome.events.denied += 1;
                    let detail = serde_json::json!({ "topic": topic, "payload_bytes": size });
                    self.record(self.broker_violation(refusal.kind(), detail, refusal.rule()));
                    return;
                }
                if writeln!(published, "{line}").is_ok() {
                    self.outcome.events.published += 1;
                } else {
                    self.outcome.events.not_written += 1;
                }
            }
            Err(refusal) => {
                self.outcome.events.denied += 1;
                let detail = serde_json::json!({ "topic": topic, "direction": "publish", "payload_bytes": size, "reason": refusal.reason });
                self.record(self.broker_violation("topic_denied", detail, refusal.rule));
                let denied = SupervisorMessage::Denied { topic, reason: refusal.reason.to_owned() };
                self.queue(&denied);
            }
        }
    }

    /// A publish that named its own sender: the field is dropped (published events carry no
    /// sender in a one-shot run) and the attempt recorded.
    fn report_claimed_sender(&mut self, topic: &str, claimed: &str) {
        let cut = |text: &str| text.chars().take(256).collect::<String>();
        let detail = serde_json::json!({ "topic": cut(topic), "claimed_sender": cut(claimed) });
        let mut violation = self.broker_violation(
            "forged_sender",
            detail,
            "the sender of an event is the publishing connection (docs/protocol.md §1.4)".into(),
        );
        violation.action = "ignore".into();
        self.record(violation);
    }

    /// In a one-shot run every event was queued before the plugin ran, so a subscription
    /// changes no delivery; it is still checked against the read grant and answered.
    fn handle_subscribe(&mut self, topics: &[String]) {
        match self.subscriptions.subscribe(&self.grants, topics) {
            Ok(refused) => {
                for RefusedPattern { pattern, refusal } in refused {
                    self.refuse_subscription(pattern, refusal);
                }
            }
            Err(refusal) => self.refuse_subscription(String::new(), refusal),
        }
        self.queue(&SupervisorMessage::Subscribed { topics: self.subscriptions.to_vec() });
    }

    /// One refused topic of a subscribe (an empty `pattern`: the whole request).
    fn refuse_subscription(&mut self, pattern: String, refusal: Refusal) {
        let cut: String = pattern.chars().take(256).collect();
        let detail = serde_json::json!({ "topic": cut, "direction": "subscribe", "reason": refusal.reason });
        self.record(self.broker_violation("topic_denied", detail, refusal.rule));
        self.queue(&SupervisorMessage::Denied { topic: pattern, reason: refusal.reason.to_owned() });
    }

    fn protocol_violation(&mut self, error: &ProtocolError, stderr: &mut dyn Write) {
        self.forwarder.end_line(stderr);
        let quoted = crate::terminal_text::escape(&error.to_string());
        let _ = writeln!(stderr, "wfsandbox: closing the plugin's event channel: {quoted}");
        let (kind, rule) = match error {
            ProtocolError::Oversized { .. } => {
                ("oversized_frame", self.cfg.grants.max_event_bytes.origin.pointer.as_str())
            }
            _ => ("malformed_frame", "plugin channel frame rules (docs/protocol.md)"),
        };
        let detail = serde_json::json!({ "error": error.to_string() });
        self.record(self.broker_violation(kind, detail, rule.into()));
        self.close_channel();
    }

    fn close_channel(&mut self) {
        if let Some(fd) = self.channel.fd.take() {
            let _ = nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        }
        self.channel.outgoing.clear();
    }

    /// A broker refusal by this plugin, decided by `rule`.
    fn broker_violation(&self, kind: &str, detail: serde_json::Value, rule: String) -> Violation {
        Violation {
            time_ms: now_ms(),
            plugin: self.cfg.plugin.to_owned(),
            instance: self.cfg.instance.to_owned(),
            layer: "broker".into(),
            kind: kind.into(),
            detail,
            rule,
            action: "deny".into(),
        }
    }

    fn record(&mut self, v: Violation) {
        if self.outcome.violations.len() < MAX_RECORDED_VIOLATIONS {
            self.outcome.violations.push(v);
        } else {
            self.outcome.violations_suppressed += 1;
        }
    }

    /// After init exited the kernel has killed the rest of its pid namespace; read what
    /// is left in the pipes and the channel, for a bounded time.
    fn drain(&mut self, published: &mut dyn Write, stderr: &mut dyn Write) -> io::Result<()> {
        let until = Instant::now() + DRAIN_AFTER_EXIT;
        while (self.stdout_open || self.stderr_open || self.channel.fd.is_some()) && Instant::now() < until {
            self.poll_once(Duration::from_millis(50), published, stderr)?;
            self.channel.outgoing.clear();
        }
        Ok(())
    }
}

fn push<'f>(fds: &mut Vec<PollFd<'f>>, fd: std::os::fd::BorrowedFd<'f>, flags: PollFlags) -> usize {
    fds.push(PollFd::new(fd, flags));
    fds.len() - 1
}

fn signal_init(pidfd: &OwnedFd, signal: i32) {
    // SAFETY: pidfd_send_signal on the pidfd of our own child.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        );
    }
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}
