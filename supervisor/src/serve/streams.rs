//! The streams of the control protocol (§2.7): `subscribe_events`, and `logs` and
//! `list_violations` with follow.
//!
//! A stream task sends its `response`, then items, then exactly one `stream_end`, all through
//! the connection's outbox, so their order holds. An item that does not fit the outbox (the
//! client is not reading) ends the stream `lagged` instead of buffering more.

use super::daemon::{shutting_down, Daemon};
use super::outbox::Outbox;
use super::plugins::log_chunks;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::sync::oneshot;
use wf_protocol::control::{
    encode_reply, encode_server_message, encode_stream_item, ControlError, EventItem, LogsArgs, Reply, ServerMessage,
    StreamEndReason, StreamItem, SubscribeEventsArgs, SubscribeResult, Violation, ViolationsArgs,
    DEFAULT_LOG_TAIL_BYTES, DEFAULT_VIOLATIONS_LIMIT,
};

/// A `cancel` hands the stream a sender to acknowledge on once its `stream_end` is queued.
pub type CancelRequest = oneshot::Sender<()>;
/// The stream's end of a cancellation: resolves on `cancel`, or fails when the connection goes.
pub type Cancelled = oneshot::Receiver<CancelRequest>;

/// Bytes of log text per stream item.
const LOG_ITEM_BYTES: usize = 16 * 1024;
/// How long a `cancel` waits for the stream to end before answering anyway.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// The request ids of one connection that are unanswered or whose stream is open.
#[derive(Clone, Default)]
pub struct OpenStreams {
    inner: Arc<Mutex<HashMap<u64, Option<oneshot::Sender<CancelRequest>>>>>,
}

impl OpenStreams {
    /// Reserve `id`; `false` if it is in use.
    pub fn claim_id(&self, id: u64) -> bool {
        let mut ids = self.lock();
        if ids.contains_key(&id) {
            return false;
        }
        ids.insert(id, None);
        true
    }

    pub fn release_id(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub fn opened(&self, id: u64, cancel: oneshot::Sender<CancelRequest>) {
        self.lock().insert(id, Some(cancel));
    }

    /// Streams open now.
    pub fn open_count(&self) -> usize {
        self.lock().values().filter(|cancel| cancel.is_some()).count()
    }

    /// Whether no stream is open (the session may then expire when idle).
    pub fn is_empty(&self) -> bool {
        self.lock().values().all(Option::is_none)
    }

    /// Ends stream `id` and waits until its `stream_end` is queued; `false` if no such stream.
    pub async fn cancel(&self, id: u64) -> bool {
        let Some(cancel) = self.lock().get_mut(&id).and_then(Option::take) else { return false };
        let (ack, acked) = oneshot::channel();
        if cancel.send(ack).is_err() {
            return false;
        }
        let _ = tokio::time::timeout(CANCEL_WAIT, acked).await;
        true
    }

    /// The connection is closing: every stream ends without a word.
    pub fn cancel_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Option<oneshot::Sender<CancelRequest>>>> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How a stream's wait ended.
enum Wake<T> {
    Item(T),
    End(StreamEndReason),
    Cancelled(CancelRequest),
    ConnectionGone,
}

/// A subscription names topics or `prefix.*` patterns, with the same rules as a manifest's
/// read grant (a wildcard matches exactly one more segment).
pub fn check_patterns(patterns: Option<&[String]>) -> Result<(), ControlError> {
    match patterns.unwrap_or_default().iter().find(|p| !wf_policy::topic::grant_is_valid(p)) {
        None => Ok(()),
        Some(_) => Err(ControlError::bad_request(
            "args.topics[]: a topic is dot-separated segments, each a lowercase letter then [a-z0-9_], \
             at most 128 bytes, optionally ending in '.*' for exactly one more segment",
        )),
    }
}

pub async fn events(
    daemon: Arc<Daemon>,
    outbox: Outbox,
    streams: OpenStreams,
    id: u64,
    args: SubscribeEventsArgs,
    mut cancelled: Cancelled,
) {
    let subscription = daemon.broker.subscribe(args.topics.clone(), args.backlog as usize, args.follow);
    let reply = Reply::SubscribeEvents(SubscribeResult { topics: args.topics });
    let _ = outbox.send(encode_reply(id, Ok(&reply))).await;
    let mut ended = None;
    for (n, event) in subscription.backlog.iter().enumerate() {
        if !offer(&outbox, id, &event_item(event)) {
            ended = Some(StreamEndReason::Lagged);
            break;
        }
        // A backlog is up to 4 MiB to encode: other tasks (plugins' channels) get turns.
        if n % 16 == 15 {
            tokio::task::yield_now().await;
        }
    }
    let mut rx = subscription.rx;
    let shutdown = daemon.shutdown_signal();
    while ended.is_none() {
        let Some(queue) = rx.as_mut() else {
            ended = Some(StreamEndReason::Complete);
            break;
        };
        let wake = tokio::select! {
            biased;
            _ = shutting_down(shutdown.clone()) => Wake::End(StreamEndReason::ShuttingDown),
            request = &mut cancelled => request.map_or(Wake::ConnectionGone, Wake::Cancelled),
            event = queue.recv() => match event {
                Some(delivered) => Wake::Item(delivered),
                None if subscription.lagged.load(std::sync::atomic::Ordering::Acquire) => Wake::End(StreamEndReason::Lagged),
                None => Wake::End(StreamEndReason::ShuttingDown),
            },
        };
        match wake {
            Wake::Item(delivered) if offer(&outbox, id, &event_item(&delivered.event)) => {}
            Wake::Item(_) => ended = Some(StreamEndReason::Lagged),
            Wake::End(reason) => ended = Some(reason),
            Wake::Cancelled(ack) => {
                finish(&outbox, &streams, id, StreamEndReason::Cancelled).await;
                daemon.broker.unsubscribe(subscription.id);
                let _ = ack.send(());
                return;
            }
            Wake::ConnectionGone => break,
        }
    }
    daemon.broker.unsubscribe(subscription.id);
    match ended {
        Some(reason) => finish(&outbox, &streams, id, reason).await,
        None => streams.release_id(id),
    }
}

pub async fn logs(
    daemon: Arc<Daemon>,
    outbox: Outbox,
    streams: OpenStreams,
    id: u64,
    args: LogsArgs,
    mut cancelled: Cancelled,
) {
    let tail = args.tail_bytes.unwrap_or(DEFAULT_LOG_TAIL_BYTES) as usize;
    let start = daemon.logs_tail(&args.name, tail).and_then(|(result, next)| {
        let signal = daemon.table().record(&args.name)?.log_signal.subscribe();
        Ok((result, next, signal))
    });
    let (result, mut offset, mut signal) = match start {
        Ok(start) => start,
        Err(error) => {
            let _ = outbox.send(encode_reply(id, Err(&error))).await;
            streams.release_id(id);
            return;
        }
    };
    let _ = outbox.send(encode_reply(id, Ok(&Reply::Logs(result)))).await;
    let shutdown = daemon.shutdown_signal();
    let reason = loop {
        signal.borrow_and_update();
        match daemon.log_items_from(&args.name, offset) {
            Ok((items, next, ended)) => {
                offset = next;
                if !items.iter().all(|item| offer(&outbox, id, item)) {
                    break StreamEndReason::Lagged;
                }
                if ended {
                    break StreamEndReason::PluginEnded;
                }
            }
            Err(_) => break StreamEndReason::PluginEnded,
        }
        let wake: Wake<()> = tokio::select! {
            biased;
            _ = shutting_down(shutdown.clone()) => Wake::End(StreamEndReason::ShuttingDown),
            request = &mut cancelled => request.map_or(Wake::ConnectionGone, Wake::Cancelled),
            changed = signal.changed() => if changed.is_ok() { Wake::Item(()) } else { Wake::End(StreamEndReason::PluginEnded) },
        };
        match wake {
            Wake::Item(()) => {}
            Wake::End(reason) => break reason,
            Wake::Cancelled(ack) => {
                finish(&outbox, &streams, id, StreamEndReason::Cancelled).await;
                let _ = ack.send(());
                return;
            }
            Wake::ConnectionGone => {
                streams.release_id(id);
                return;
            }
        }
    };
    finish(&outbox, &streams, id, reason).await;
}

/// `list_violations` with follow: the recorded ones as the response, then every violation
/// recorded afterwards (of `args.name`, when given) until cancel, shutdown or the connection
/// closing. A follower more than the broadcast's capacity behind, or whose outbox is full,
/// ends `lagged`; neither slows recording nor the other followers.
pub async fn violations(
    daemon: Arc<Daemon>,
    outbox: Outbox,
    streams: OpenStreams,
    id: u64,
    args: ViolationsArgs,
    mut cancelled: Cancelled,
) {
    let limit = args.limit.unwrap_or(DEFAULT_VIOLATIONS_LIMIT) as usize;
    let following = daemon.violations.follow(args.name.as_deref(), limit);
    let _ = outbox.send(encode_reply(id, Ok(&Reply::ListViolations(following.recorded)))).await;
    let mut live = following.live;
    let shutdown = daemon.shutdown_signal();
    let reason = loop {
        let wake = tokio::select! {
            biased;
            _ = shutting_down(shutdown.clone()) => Wake::End(StreamEndReason::ShuttingDown),
            request = &mut cancelled => request.map_or(Wake::ConnectionGone, Wake::Cancelled),
            next = live.recv() => match next {
                Ok(violation) => Wake::Item(violation),
                Err(broadcast::error::RecvError::Lagged(_)) => Wake::End(StreamEndReason::Lagged),
                Err(broadcast::error::RecvError::Closed) => Wake::End(StreamEndReason::ShuttingDown),
            },
        };
        match wake {
            Wake::Item(violation) if !is_for(&violation, args.name.as_deref()) => {}
            Wake::Item(violation) => {
                if !offer(&outbox, id, &StreamItem::Violation { violation: Violation::clone(&violation) }) {
                    break StreamEndReason::Lagged;
                }
            }
            Wake::End(reason) => break reason,
            Wake::Cancelled(ack) => {
                drop(live);
                finish(&outbox, &streams, id, StreamEndReason::Cancelled).await;
                let _ = ack.send(());
                return;
            }
            Wake::ConnectionGone => {
                streams.release_id(id);
                return;
            }
        }
    };
    // No longer a receiver: the broadcast need not keep records for this stream.
    drop(live);
    finish(&outbox, &streams, id, reason).await;
}

/// Whether a followed violation passes the stream's plugin filter.
fn is_for(violation: &Violation, name: Option<&str>) -> bool {
    name.is_none_or(|name| violation.plugin == name)
}

impl Daemon {
    /// New log items from `offset`, where to continue, and whether the plugin has ended for
    /// good (not running, no restart pending) with nothing left to send.
    fn log_items_from(&self, name: &str, offset: u64) -> Result<(Vec<StreamItem>, u64, bool), ControlError> {
        let table = self.table();
        let entry = table.registry.get(name).map_err(|_| ControlError::no_such_plugin(name))?;
        let read = entry.logs().read_from(offset, LOG_ITEM_BYTES * 4);
        let items: Vec<StreamItem> = log_chunks(&read).into_iter().map(StreamItem::Log).collect();
        let pending_restart = table.records.get(name).is_some_and(|r| r.next_restart_ms.is_some());
        let ended = items.is_empty() && !entry.state().is_active() && !pending_restart;
        Ok((items, read.next_offset, ended))
    }
}

fn event_item(event: &super::broker::SharedEvent) -> StreamItem {
    StreamItem::Event(EventItem {
        topic: event.topic.clone(),
        payload: event.payload(),
        sender: event.sender.to_string(),
        time_ms: event.time_ms,
        payload_dropped: false,
    })
}

/// Queue an item without waiting; `false` if the client is too far behind.
fn offer(outbox: &Outbox, id: u64, item: &StreamItem) -> bool {
    match encode_stream_item(id, item) {
        Ok(frame) => outbox.try_send(frame).is_ok(),
        Err(_) => true, // not encodable even without its payload: skipped
    }
}

/// The one `stream_end`, then the id is free again.
async fn finish(outbox: &Outbox, streams: &OpenStreams, id: u64, reason: StreamEndReason) {
    if let Ok(frame) = encode_server_message(&ServerMessage::StreamEnd { id, reason }) {
        let _ = outbox.send(frame).await;
    }
    streams.release_id(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_filter_matches_the_plugin_exactly() {
        let violation = Violation {
            time_ms: 1,
            plugin: "alpha".into(),
            instance: "alpha-1".into(),
            layer: "broker".into(),
            kind: "topic_denied".into(),
            detail: serde_json::json!({}),
            rule: "r".into(),
            action: "deny".into(),
        };
        assert!(is_for(&violation, None));
        assert!(is_for(&violation, Some("alpha")));
        assert!(!is_for(&violation, Some("alph")));
        assert!(!is_for(&violation, Some("alpha2")));
    }
}
