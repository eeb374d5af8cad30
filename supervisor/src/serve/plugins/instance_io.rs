//! A running instance's I/O on the daemon side: its stdout and stderr into the plugin's bounded
//! log buffer, and its event channel through the broker.
//!
//! Output past the log buffer's rate cap is dropped (and counted); the reader then pauses so
//! the pipe fills and the plugin blocks, instead of the daemon spending a core to discard a
//! flood. Channel frames are checked before allocation (the frame cap is the spec's
//! `max_event_bytes`); any frame that breaks the rules closes the channel and is a violation.
//! The channel is read at most the spec's `events.rate.bytes_per_second` (with a burst),
//! charged before anything read is parsed: past it the reader waits, so the plugin blocks on
//! its full socket instead of the daemon parsing a flood only to refuse it.
//! Violations a plugin causes are admitted by a [`ViolationBudget`] (records and bytes a
//! second); the rest are counted into the next one recorded. Strings the plugin chose are cut
//! to [`super::super::violations::MAX_RECORDED_TEXT`] bytes in every record.

use super::super::broker::{
    inbox, EventRecord, InboxReceiver, InboxSender, PortCounters, PortId, PublishError, WRITE_BATCH_BYTES,
};
use super::super::daemon::Daemon;
use super::super::violations::{bounded_text, Admission, ViolationBudget};
use crate::daemon::LogStream;
use crate::grants::{self, Grants, Refusal, RefusedPattern};
use crate::launch_service::wire::{FD_CHANNEL, FD_STDERR, FD_STDOUT, LAUNCHED_FD_COUNT};
use crate::publish_budget::{ByteRate, PublishBudget, RequestRate};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use wf_policy::spec::{EventGrants, SandboxSpec};
use wf_protocol::control::Violation;
use wf_protocol::{FrameDecoder, PluginMessage, ProtocolError, SupervisorMessage};

/// Pause of an output reader after the rate cap dropped bytes.
const FLOOD_PAUSE: Duration = Duration::from_millis(100);
const READ_CHUNK: usize = 16 * 1024;
/// Frames one channel handles before it yields: about 100 µs of work for small events.
const FRAMES_PER_TURN: u64 = 64;

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
        sender: Arc::from(format!("plugin:{name}")),
        grants: Arc::new(spec.events.clone()),
        index: Arc::new(Grants::new(&spec.events)),
        max_event_bytes: spec.events.max_event_bytes.value,
    };
    serve_channel(daemon, ctx, channel);
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
    /// `plugin:<name>`, the sender of everything this channel publishes.
    sender: Arc<str>,
    grants: Arc<EventGrants>,
    /// The same grants, indexed for the checks on every frame.
    index: Arc<Grants>,
    max_event_bytes: u32,
}

/// The reading half of a plugin channel: its broker port and where its replies go.
struct Publisher<'a> {
    daemon: &'a Daemon,
    ctx: &'a ChannelContext,
    port: PortId,
    counters: Arc<PortCounters>,
    replies: InboxSender,
    budget: PublishBudget,
    requests: RequestRate,
    reporter: ViolationReporter,
}

/// Connects the channel to the broker before returning, so that the plugin is routed to from
/// the moment `start` answers, then serves it in two tasks: a writer and a reader.
fn serve_channel(daemon: &Arc<Daemon>, ctx: ChannelContext, fd: OwnedFd) {
    let stream = match adopt_stream(fd) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::error!(plugin = %ctx.name, error = %e, "adopting the plugin's channel");
            return;
        }
    };
    let (reader, writer) = stream.into_split();
    let (tx, rx) = inbox(ctx.max_event_bytes);
    let hello = SupervisorMessage::Hello {
        protocol: wf_protocol::PROTOCOL_VERSION,
        plugin: ctx.name.clone(),
        instance: ctx.instance.clone(),
    };
    let hello = wf_protocol::encode_with_limit(&hello, ctx.max_event_bytes).unwrap_or_default();
    let (port, counters) =
        daemon.broker.attach_plugin(&ctx.instance, Arc::clone(&ctx.index), ctx.max_event_bytes, tx.clone());
    tokio::spawn(write_to_plugin(writer, rx, hello));
    tokio::spawn(read_channel(Arc::clone(daemon), ctx, reader, port, counters, tx));
}

async fn read_channel(
    daemon: Arc<Daemon>,
    ctx: ChannelContext,
    mut reader: OwnedReadHalf,
    port: PortId,
    counters: Arc<PortCounters>,
    replies: InboxSender,
) {
    let mut publisher = Publisher {
        daemon: &daemon,
        ctx: &ctx,
        port,
        counters,
        replies,
        budget: PublishBudget::rate_only(&ctx.grants.rate),
        requests: RequestRate::subscriptions(Instant::now()),
        reporter: ViolationReporter::new(&ctx),
    };
    publisher.read_from(&mut reader).await;
    // Closing: the broker lets go of the inbox, and the writer ends with the last sender.
    daemon.broker.detach_plugin(&ctx.instance);
}

fn adopt_stream(fd: OwnedFd) -> std::io::Result<tokio::net::UnixStream> {
    let stream = std::os::unix::net::UnixStream::from(fd);
    stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(stream)
}

/// Writes the hello, then everything queued to the plugin, as many frames per `write` as are
/// waiting (up to [`WRITE_BATCH_BYTES`]).
async fn write_to_plugin(mut writer: OwnedWriteHalf, mut queue: InboxReceiver, hello: Vec<u8>) {
    if writer.write_all(&hello).await.is_err() {
        return;
    }
    let mut batch = Vec::with_capacity(WRITE_BATCH_BYTES);
    while queue.recv_batch(&mut batch, WRITE_BATCH_BYTES).await {
        if writer.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
    }
}

impl Publisher<'_> {
    async fn read_from(&mut self, reader: &mut OwnedReadHalf) {
        let mut decoder = FrameDecoder::new(self.ctx.max_event_bytes);
        let mut bytes_read = ByteRate::channel(&self.ctx.grants.rate, self.ctx.max_event_bytes, Instant::now());
        let mut buf = vec![0u8; READ_CHUNK];
        let mut handled = 0u64;
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) => {
                    if let Err(e) = decoder.finish() {
                        self.reporter.frame_error(self.daemon, &e);
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
                        Ok(Some(message)) => {
                            self.handle(message);
                            handled += 1;
                            if handled % FRAMES_PER_TURN == 0 {
                                tokio::task::yield_now().await;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            self.reporter.frame_error(self.daemon, &e);
                            return;
                        }
                    }
                }
            }
            // One read (at most READ_CHUNK bytes, FRAMES_PER_TURN frames) is all a busy
            // publisher gets before every other task on this worker has had its turn.
            tokio::task::yield_now().await;
        }
    }

    fn handle(&mut self, message: PluginMessage) {
        match message {
            PluginMessage::Publish { topic, payload, claimed_sender } => {
                if let Some(claimed) = claimed_sender {
                    self.report_claimed_sender(&topic, &claimed);
                }
                self.publish(topic, payload);
            }
            PluginMessage::Subscribe { topics } => {
                if !self.admit_request("subscribe") {
                    return;
                }
                let Some((outcome, set)) = self.daemon.broker.subscribe_plugin(self.port, &topics) else { return };
                match outcome {
                    Ok(refused) => {
                        for RefusedPattern { pattern, refusal } in refused {
                            self.refuse_subscription(pattern, refusal);
                        }
                    }
                    Err(refusal) => self.refuse_subscription(String::new(), refusal),
                }
                self.reply(&SupervisorMessage::Subscribed { topics: set });
            }
            PluginMessage::Unsubscribe { topics } => {
                if !self.admit_request("unsubscribe") {
                    return;
                }
                let Some((outcome, set)) = self.daemon.broker.unsubscribe_plugin(self.port, &topics) else { return };
                if let Err(refusal) = outcome {
                    self.refuse_subscription(String::new(), refusal);
                }
                self.reply(&SupervisorMessage::Subscribed { topics: set });
            }
        }
    }

    /// Subscribe and unsubscribe requests have a rate of their own
    /// ([`crate::publish_budget::SUBSCRIPTION_REQUESTS_PER_SEC`]): each is answered with the
    /// whole set, so churning subscriptions must not cost the daemon what its answers would.
    fn admit_request(&mut self, what: &str) -> bool {
        if self.requests.try_take(Instant::now()) {
            return true;
        }
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        let detail = serde_json::json!({ "topic": "", "direction": what, "reason": "rate limited" });
        self.reporter.report(self.daemon, "rate_limited", detail, RequestRate::rule());
        self.reply(&SupervisorMessage::Denied { topic: String::new(), reason: "rate limited".to_owned() });
        false
    }

    /// One refused topic of a subscribe (an empty `pattern`: the whole request).
    fn refuse_subscription(&mut self, pattern: String, refusal: Refusal) {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        let detail = serde_json::json!({
            "topic": bounded_text(&pattern), "direction": "subscribe", "reason": refusal.reason,
        });
        self.reporter.report(self.daemon, "topic_denied", detail, refusal.rule);
        self.reply(&SupervisorMessage::Denied { topic: pattern, reason: refusal.reason.to_owned() });
    }

    fn publish(&mut self, topic: String, payload: serde_json::Value) {
        let refusal = match grants::check_publish(&self.ctx.index, &topic) {
            Err(refusal) => Some(("topic_denied", refusal.reason.to_owned(), refusal.rule)),
            Ok(()) => {
                self.budget.admit(0, Instant::now()).err().map(|r| (r.kind(), r.kind().replace('_', " "), r.rule()))
            }
        };
        if let Some(refusal) = refusal {
            return self.refuse(topic, &payload, refusal);
        }
        let kept = topic.clone();
        let record =
            EventRecord { topic, payload, sender: Arc::clone(&self.ctx.sender), time_ms: self.daemon.now_ms() };
        match self.daemon.broker.publish(record, Some(self.port), self.ctx.max_event_bytes) {
            Ok(_) => {
                self.counters.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                let rule = self.ctx.grants.max_event_bytes.origin.pointer.clone();
                let bytes = match e {
                    PublishError::Oversized { payload_bytes, .. } => payload_bytes,
                    PublishError::Encode(_) | PublishError::InvalidTopic => 0,
                };
                let detail = serde_json::json!({
                    "topic": bounded_text(&kept), "direction": "publish", "bytes": bytes, "reason": e.to_string(),
                });
                self.reporter.report(self.daemon, "oversized_event", detail, rule);
                self.reply(&SupervisorMessage::Denied { topic: kept, reason: e.to_string() });
            }
        }
    }

    fn refuse(&mut self, topic: String, payload: &serde_json::Value, (kind, reason, rule): (&str, String, String)) {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        let bytes = serde_json::to_vec(payload).map_or(0, |b| b.len());
        let detail = serde_json::json!({
            "topic": bounded_text(&topic), "direction": "publish", "bytes": bytes, "reason": reason,
        });
        self.reporter.report(self.daemon, kind, detail, rule);
        self.reply(&SupervisorMessage::Denied { topic, reason });
    }

    fn report_claimed_sender(&mut self, topic: &str, claimed: &str) {
        let detail = serde_json::json!({
            "topic": bounded_text(topic), "claimed_sender": bounded_text(claimed), "sender": &*self.ctx.sender,
        });
        let rule = "the sender of an event is the publishing connection (docs/protocol.md §1.4)".to_owned();
        self.reporter.report_with_action(self.daemon, "forged_sender", detail, rule, "ignore");
    }

    /// A reply to the plugin, in its own lane of the inbox; dropped only when
    /// `REPLY_FRAMES` replies are already waiting (the plugin is not reading).
    fn reply(&self, message: &SupervisorMessage) {
        if !self.replies.has_reply_room() {
            return; // not worth encoding: it would be dropped
        }
        if let Ok(frame) = wf_protocol::encode_with_limit(message, self.ctx.max_event_bytes) {
            let _ = self.replies.reply(&Arc::new(frame));
        }
    }
}

/// Records a plugin's broker violations within its [`ViolationBudget`].
struct ViolationReporter {
    plugin: String,
    instance: String,
    budget: ViolationBudget,
    /// The field that set the channel's frame cap.
    frame_rule: String,
}

impl ViolationReporter {
    fn new(ctx: &ChannelContext) -> Self {
        Self {
            plugin: ctx.name.clone(),
            instance: ctx.instance.clone(),
            budget: ViolationBudget::new(Instant::now()),
            frame_rule: ctx.grants.max_event_bytes.origin.pointer.clone(),
        }
    }

    fn frame_error(&mut self, daemon: &Daemon, error: &ProtocolError) {
        let (kind, rule) = match error {
            ProtocolError::Oversized { .. } => ("oversized_frame", self.frame_rule.as_str()),
            _ => ("malformed_frame", "plugin channel frame rules (docs/protocol.md)"),
        };
        // Decoder errors may quote what the plugin sent.
        let detail = serde_json::json!({ "error": bounded_text(&error.to_string()), "channel": "closed" });
        // The last word on a channel is always recorded.
        let admission = self.budget.force(detail_len(&detail));
        self.record(daemon, admission, kind, detail, rule.to_owned(), "deny");
    }

    fn report(&mut self, daemon: &Daemon, kind: &str, detail: serde_json::Value, rule: String) {
        self.report_with_action(daemon, kind, detail, rule, "deny");
    }

    fn report_with_action(
        &mut self,
        daemon: &Daemon,
        kind: &str,
        detail: serde_json::Value,
        rule: String,
        action: &str,
    ) {
        let admission = self.budget.admit(detail_len(&detail), Instant::now());
        self.record(daemon, admission, kind, detail, rule, action);
    }

    fn record(
        &self,
        daemon: &Daemon,
        admission: Admission,
        kind: &str,
        mut detail: serde_json::Value,
        rule: String,
        action: &str,
    ) {
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
            action: action.into(),
        });
    }
}

fn detail_len(detail: &serde_json::Value) -> usize {
    serde_json::to_vec(detail).map_or(0, |bytes| bytes.len())
}
