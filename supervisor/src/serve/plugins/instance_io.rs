//! A running instance's I/O on the daemon side: its stdout and stderr into the plugin's bounded
//! log buffer, and its event channel through the broker.
//!
//! Output past the log buffer's rate cap is dropped (and counted); the reader then pauses so
//! the pipe fills and the plugin blocks, instead of the daemon spending a core to discard a
//! flood. Channel frames are checked before allocation (the frame cap is the spec's
//! `max_event_bytes`); any frame that breaks the rules closes the channel and is a violation.
//! The channel is read at most [`crate::publish_budget::CHANNEL_BYTES_PER_SEC`] (with a burst),
//! charged before anything read is parsed: past it the reader waits, so the plugin blocks on
//! its full socket instead of the daemon parsing a flood only to refuse it.
//! Violations a plugin causes are admitted by a [`ViolationBudget`] (records and bytes a
//! second); the rest are counted into the next one recorded. Strings the plugin chose are cut
//! to [`super::super::violations::MAX_RECORDED_TEXT`] bytes in every record.

use super::super::broker::{EventRecord, PluginPort, ToPlugin};
use super::super::daemon::Daemon;
use super::super::violations::{bounded_text, Admission, ViolationBudget};
use crate::daemon::LogStream;
use crate::grants;
use crate::launch_service::wire::{FD_CHANNEL, FD_STDERR, FD_STDOUT, LAUNCHED_FD_COUNT};
use crate::publish_budget::{ByteRate, PublishBudget};
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use wf_policy::spec::{EventGrants, SandboxSpec};
use wf_protocol::control::Violation;
use wf_protocol::{FrameDecoder, PluginMessage, ProtocolError, SupervisorMessage};

/// Events queued for a plugin that is not reading; later ones are dropped.
pub const INBOX: usize = 256;
/// Pause of an output reader after the rate cap dropped bytes.
const FLOOD_PAUSE: Duration = Duration::from_millis(100);
const READ_CHUNK: usize = 16 * 1024;

/// Start the tasks that serve a launched instance's fds `[pidfd, channel, stdout, stderr]`.
pub fn connect(daemon: &Arc<Daemon>, name: &str, instance: &str, spec: &SandboxSpec, mut fds: Vec<OwnedFd>) {
    if fds.len() != LAUNCHED_FD_COUNT {
        tracing::error!(%instance, fds = fds.len(), "a launch reply without its fds");
        return;
    }
    let stderr = fds.remove(FD_STDERR);
    let stdout = fds.remove(FD_STDOUT);
    let channel = fds.remove(FD_CHANNEL);
    drop(fds); // the pidfd: the launcher signals and reaps the init
    for (stream, fd) in [(LogStream::Stdout, stdout), (LogStream::Stderr, stderr)] {
        tokio::spawn(capture_output(Arc::clone(daemon), name.to_owned(), stream, fd));
    }
    let ctx = ChannelContext {
        name: name.to_owned(),
        instance: instance.to_owned(),
        grants: Arc::new(spec.events.clone()),
        max_event_bytes: spec.events.max_event_bytes.value,
    };
    tokio::spawn(serve_channel(Arc::clone(daemon), ctx, channel));
}

async fn capture_output(daemon: Arc<Daemon>, name: String, stream: LogStream, fd: OwnedFd) {
    let mut pipe = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(pipe) => pipe,
        Err(e) => {
            tracing::error!(plugin = %name, error = %e, "capturing plugin output");
            return;
        }
    };
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let dropped = {
            let mut table = daemon.table();
            let outcome = table.registry.push_log(&name, stream, &buf[..n]).map(|o| o.dropped).unwrap_or(0);
            if let Ok(record) = table.record_mut(&name) {
                record.log_signal.send_modify(|n| *n += 1);
            }
            outcome
        };
        if dropped > 0 {
            tokio::time::sleep(FLOOD_PAUSE).await;
        }
    }
}

struct ChannelContext {
    name: String,
    instance: String,
    grants: Arc<EventGrants>,
    max_event_bytes: u32,
}

async fn serve_channel(daemon: Arc<Daemon>, ctx: ChannelContext, fd: OwnedFd) {
    let stream = match adopt_stream(fd) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::error!(plugin = %ctx.name, error = %e, "adopting the plugin's channel");
            return;
        }
    };
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel(INBOX);
    let hello = SupervisorMessage::Hello {
        protocol: wf_protocol::PROTOCOL_VERSION,
        plugin: ctx.name.clone(),
        instance: ctx.instance.clone(),
    };
    tokio::spawn(write_to_plugin(writer, rx, hello, ctx.max_event_bytes));
    let port = PluginPort { grants: Arc::clone(&ctx.grants), tx: tx.clone(), dropped: Arc::new(AtomicU64::new(0)) };
    daemon.broker.attach_plugin(&ctx.instance, port);
    let mut reporter = ViolationReporter::new(&ctx);
    read_from_plugin(&daemon, &ctx, &mut reader, &tx, &mut reporter).await;
    // Closing: the broker lets go of the inbox, and the writer ends with the last sender.
    daemon.broker.detach_plugin(&ctx.instance);
}

fn adopt_stream(fd: OwnedFd) -> std::io::Result<tokio::net::UnixStream> {
    let stream = std::os::unix::net::UnixStream::from(fd);
    stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(stream)
}

async fn write_to_plugin(
    mut writer: OwnedWriteHalf,
    mut rx: mpsc::Receiver<ToPlugin>,
    hello: SupervisorMessage,
    max: u32,
) {
    let mut next = Some(hello);
    while let Some(message) = next.take() {
        if let Ok(frame) = wf_protocol::encode_with_limit(&message, max) {
            if writer.write_all(&frame).await.is_err() {
                return;
            }
        }
        next = rx.recv().await.map(|item| match item {
            ToPlugin::Event(event) => SupervisorMessage::Event {
                topic: event.topic.clone(),
                payload: event.payload.clone(),
                sender: event.sender.clone(),
            },
            ToPlugin::Denied { topic, reason } => SupervisorMessage::Denied { topic, reason },
        });
    }
}

async fn read_from_plugin(
    daemon: &Daemon,
    ctx: &ChannelContext,
    reader: &mut OwnedReadHalf,
    tx: &mpsc::Sender<ToPlugin>,
    reporter: &mut ViolationReporter,
) {
    let mut decoder = FrameDecoder::new(ctx.max_event_bytes);
    let mut budget = PublishBudget::rate_only();
    let mut bytes_read = ByteRate::channel(Instant::now());
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => {
                if let Err(e) = decoder.finish() {
                    reporter.frame_error(daemon, &e);
                }
                return;
            }
            Ok(n) => n,
            Err(_) => return,
        };
        let wait = bytes_read.charge(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let mut input = &buf[..n];
        while !input.is_empty() {
            let taken = decoder.push(input);
            input = &input[taken..];
            loop {
                match decoder.next_frame::<PluginMessage>() {
                    Ok(Some(PluginMessage::Publish { topic, payload, .. })) => {
                        publish(daemon, ctx, &mut budget, tx, reporter, topic, payload);
                    }
                    Ok(Some(PluginMessage::Subscribe { .. } | PluginMessage::Unsubscribe { .. })) => {}
                    Ok(None) => break,
                    Err(e) => {
                        reporter.frame_error(daemon, &e);
                        return;
                    }
                }
            }
        }
    }
}

fn publish(
    daemon: &Daemon,
    ctx: &ChannelContext,
    budget: &mut PublishBudget,
    tx: &mpsc::Sender<ToPlugin>,
    reporter: &mut ViolationReporter,
    topic: String,
    payload: serde_json::Value,
) {
    let bytes = payload.to_string().len() as u64;
    let refusal = match grants::check_publish(&ctx.grants, &topic) {
        Err(refusal) => Some(("topic_denied", refusal.reason.to_owned(), refusal.rule)),
        Ok(()) => budget.admit(bytes, Instant::now()).err().map(|r| (r.kind(), r.kind().replace('_', " "), r.rule())),
    };
    if let Some((kind, reason, rule)) = refusal {
        let detail = serde_json::json!({ "topic": bounded_text(&topic), "bytes": bytes, "reason": reason });
        reporter.report(daemon, kind, detail, rule);
        let _ = tx.try_send(ToPlugin::Denied { topic, reason });
        return;
    }
    let event = EventRecord { topic, payload, sender: format!("plugin:{}", ctx.name), time_ms: daemon.now_ms() };
    daemon.broker.publish(event, Some(&ctx.instance));
}

/// Records a plugin's broker violations within its [`ViolationBudget`].
struct ViolationReporter {
    plugin: String,
    instance: String,
    budget: ViolationBudget,
}

impl ViolationReporter {
    fn new(ctx: &ChannelContext) -> Self {
        Self { plugin: ctx.name.clone(), instance: ctx.instance.clone(), budget: ViolationBudget::new(Instant::now()) }
    }

    fn frame_error(&mut self, daemon: &Daemon, error: &ProtocolError) {
        let (kind, rule) = match error {
            ProtocolError::Oversized { .. } => ("oversized_frame", "/sandbox/ceilings/max_event_bytes"),
            _ => ("malformed_frame", "plugin channel frame rules (docs/protocol.md)"),
        };
        // Decoder errors may quote what the plugin sent.
        let detail = serde_json::json!({ "error": bounded_text(&error.to_string()), "channel": "closed" });
        // The last word on a channel is always recorded.
        let admission = self.budget.force(detail_len(&detail));
        self.record(daemon, admission, kind, detail, rule.to_owned());
    }

    fn report(&mut self, daemon: &Daemon, kind: &str, detail: serde_json::Value, rule: String) {
        let admission = self.budget.admit(detail_len(&detail), Instant::now());
        self.record(daemon, admission, kind, detail, rule);
    }

    fn record(&self, daemon: &Daemon, admission: Admission, kind: &str, mut detail: serde_json::Value, rule: String) {
        let Admission::Record { suppressed_before } = admission else { return };
        if suppressed_before > 0 {
            detail["suppressed_before"] = serde_json::json!(suppressed_before);
        }
        daemon.violation(Violation {
            time_ms: daemon.now_ms(),
            plugin: self.plugin.clone(),
            instance: self.instance.clone(),
            layer: "broker".into(),
            kind: kind.into(),
            detail,
            rule,
            action: "deny".into(),
        });
    }
}

fn detail_len(detail: &serde_json::Value) -> usize {
    serde_json::to_vec(detail).map_or(0, |bytes| bytes.len())
}
