//! Routes events between plugins and control-socket subscribers.
//!
//! Grants are checked before anything is routed: a plugin's publish is admitted by
//! [`crate::grants::check_publish`] before it reaches [`Broker::publish`], a plugin's
//! subscription set only ever holds patterns its read grant covers
//! ([`crate::grants::Subscriptions`]), and every delivery is checked against the read grant
//! once more. The sender is always set by the daemon from the connection (`plugin:<name>`,
//! `control:<uid>`), never from a message.
//!
//! Each event is encoded once, as the plugin-channel frame every plugin reader gets, and the
//! frame is shared between them. Everything is bounded: each plugin's inbox
//! ([`inbox`]) in events and bytes, each control subscription in events and bytes, and the
//! backlog kept for new subscriptions. A plugin that does not read loses the events that do not
//! fit (counted per plugin); a subscription that does not keep up is ended (its stream ends
//! `lagged`). Nobody waits for a slow reader: a publish only ever offers.

mod inbox;
mod routes;
#[cfg(test)]
mod tests;

pub use inbox::{inbox, Frame, InboxReceiver, InboxSender, Offer, WRITE_BATCH_BYTES};
pub use routes::PortId;

use crate::grants::{Grants, Refusal, RefusedPattern, Subscriptions};
use crate::topic_set::TopicSet;
use routes::Routes;
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use wf_policy::topic::topic_is_valid;
use wf_protocol::control::EventCounters;
use wf_protocol::ProtocolError;

/// Events kept for `subscribe_events` backlogs.
pub const BACKLOG: usize = wf_protocol::control::MAX_EVENT_BACKLOG as usize;
/// Bytes held by the events kept for backlogs ([`SharedEvent::held_bytes`]).
pub const BACKLOG_BYTES: usize = 4 * 1024 * 1024;
/// Events queued to one control subscription.
pub const SUBSCRIPTION_QUEUE: usize = 1024;
/// Bytes held by the events queued to one control subscription ([`SharedEvent::held_bytes`]).
pub const SUBSCRIPTION_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub topic: String,
    pub payload: serde_json::Value,
    pub sender: Arc<str>,
    pub time_ms: u64,
}

/// An event as the broker holds it: its plugin-channel frame, encoded once, and where the
/// payload is in it. The parsed payload is not kept: its size in memory depends on its shape
/// (`[0,0,…]` is 16 times its JSON), so only the frame is held and counted.
#[derive(Debug)]
pub struct SharedEvent {
    pub topic: String,
    pub sender: Arc<str>,
    pub time_ms: u64,
    pub frame: Frame,
    payload_at: Range<usize>,
}

impl SharedEvent {
    /// What holding the event costs, as the byte bounds of control subscriptions and the
    /// backlog count it.
    pub fn held_bytes(&self) -> usize {
        self.frame.len() + self.topic.len() + std::mem::size_of::<Self>()
    }

    /// The payload's JSON, as encoded in the frame.
    pub fn payload_json(&self) -> &[u8] {
        self.frame.get(self.payload_at.clone()).unwrap_or(b"null")
    }

    /// The payload, parsed again (for control-socket subscribers).
    pub fn payload(&self) -> serde_json::Value {
        serde_json::from_slice(self.payload_json()).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event frame (the publish plus the sender the broker adds) is over the cap.
    #[error("the event frame would be {len} bytes, over the {max}-byte limit")]
    Oversized { len: u64, max: u32, payload_bytes: u64 },
    #[error("encoding the event frame: {0}")]
    Encode(ProtocolError),
    #[error("invalid topic name")]
    InvalidTopic,
}

/// A subscribe request's answer: the patterns refused one by one, or the whole request refused.
pub type SubscribeOutcome = Result<Vec<RefusedPattern>, Refusal>;

/// What the broker counted for one plugin instance.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Publishes routed (counted by the plugin's channel reader).
    pub published: AtomicU64,
    /// Publishes and subscriptions refused (counted by the plugin's channel reader).
    pub refused: AtomicU64,
    /// Events queued to the plugin.
    pub delivered: AtomicU64,
    /// Events it was due that did not fit its inbox (it was not reading fast enough).
    pub dropped_full: AtomicU64,
    /// Events it was due that were over its own `max_event_bytes`.
    pub dropped_too_large: AtomicU64,
}

struct Port {
    instance: String,
    grants: Arc<Grants>,
    subscriptions: Subscriptions,
    inbox: InboxSender,
    counters: Arc<PortCounters>,
}

/// One event queued to a control subscription, holding its share of the byte bound.
pub struct Delivered {
    pub event: Arc<SharedEvent>,
    _permit: OwnedSemaphorePermit,
}

struct Subscriber {
    patterns: Option<TopicSet>,
    tx: mpsc::Sender<Delivered>,
    budget: Arc<Semaphore>,
    lagged: Arc<AtomicBool>,
}

/// A control subscription: the backlog first, then (with follow) new events on `rx`.
pub struct Subscription {
    pub id: u64,
    pub backlog: Vec<Arc<SharedEvent>>,
    pub rx: Option<mpsc::Receiver<Delivered>>,
    /// Set when the broker ended the subscription because its queue was full.
    pub lagged: Arc<AtomicBool>,
}

#[derive(Default)]
struct Backlog {
    events: VecDeque<Arc<SharedEvent>>,
    bytes: usize,
}

impl Backlog {
    fn push(&mut self, event: Arc<SharedEvent>) {
        let len = event.held_bytes();
        if len > BACKLOG_BYTES {
            return;
        }
        while self.events.len() >= BACKLOG || self.bytes + len > BACKLOG_BYTES {
            let Some(oldest) = self.events.pop_front() else { break };
            self.bytes -= oldest.held_bytes();
        }
        self.bytes += len;
        self.events.push_back(event);
    }
}

#[derive(Default)]
struct State {
    ports: HashMap<PortId, Port>,
    by_instance: HashMap<String, PortId>,
    routes: Routes,
    next_port: PortId,
    subscribers: HashMap<u64, Subscriber>,
    next_subscriber: u64,
    backlog: Backlog,
    /// Reused by every publish for the recipient list.
    recipients: Vec<PortId>,
}

#[derive(Default)]
pub struct Broker {
    state: Mutex<State>,
}

impl Broker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects a running plugin instance's inbox, subscribed to its whole read grant.
    pub fn attach_plugin(
        &self,
        instance: &str,
        grants: Arc<Grants>,
        max_frame_bytes: u32,
        inbox: InboxSender,
    ) -> (PortId, Arc<PortCounters>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.next_port += 1;
        let id = state.next_port;
        let subscriptions = Subscriptions::from_grants(&grants, max_frame_bytes);
        for pattern in subscriptions.patterns() {
            state.routes.add(pattern, id);
        }
        let counters = Arc::new(PortCounters::default());
        let port =
            Port { instance: instance.to_owned(), grants, subscriptions, inbox, counters: Arc::clone(&counters) };
        if let Some(old) = state.by_instance.insert(instance.to_owned(), id) {
            remove_port(state, old);
        }
        state.ports.insert(id, port);
        (id, counters)
    }

    pub fn detach_plugin(&self, instance: &str) {
        let mut guard = self.lock();
        let state = &mut *guard;
        if let Some(id) = state.by_instance.remove(instance) {
            remove_port(state, id);
        }
    }

    /// Adds `patterns` to the port's subscriptions within its read grant. Returns the refused
    /// patterns (or the refusal of the whole request) and the whole set afterwards; `None` if
    /// the port is gone.
    pub fn subscribe_plugin(&self, port: PortId, patterns: &[String]) -> Option<(SubscribeOutcome, Vec<String>)> {
        self.change_subscriptions(port, patterns, |p| p.subscriptions.subscribe(&p.grants, patterns))
    }

    /// Removes `patterns` from the port's subscriptions; the whole set afterwards.
    pub fn unsubscribe_plugin(&self, port: PortId, patterns: &[String]) -> Option<(Result<(), Refusal>, Vec<String>)> {
        self.change_subscriptions(port, patterns, |p| p.subscriptions.unsubscribe(patterns))
    }

    /// Applies `change` to the port's set and brings the routes of `patterns` (the only ones it
    /// can touch) in line: the cost is the request's, not the set's.
    fn change_subscriptions<T>(
        &self,
        id: PortId,
        patterns: &[String],
        change: impl FnOnce(&mut Port) -> T,
    ) -> Option<(T, Vec<String>)> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let port = state.ports.get_mut(&id)?;
        let before: Vec<bool> = patterns.iter().map(|p| port.subscriptions.contains(p)).collect();
        let outcome = change(port);
        for (pattern, was) in patterns.iter().zip(before) {
            match (was, port.subscriptions.contains(pattern)) {
                (true, false) => state.routes.remove(pattern, id),
                (false, true) => state.routes.add(pattern, id),
                _ => {}
            }
        }
        Some((outcome, port.subscriptions.to_vec()))
    }

    /// Encodes `event` once (its frame at most `max_frame_bytes`) and offers it to every
    /// plugin subscribed to its topic but its publisher, and to every matching control
    /// subscription. Returns how many took it.
    pub fn publish(&self, event: EventRecord, from: Option<PortId>, max_frame_bytes: u32) -> Result<u32, PublishError> {
        // Callers have checked it already (publish grants, the control verb); the broker does
        // not route what it cannot match.
        if !topic_is_valid(&event.topic) {
            return Err(PublishError::InvalidTopic);
        }
        let encoded =
            wf_protocol::encode_event_locating_payload(&event.topic, &event.payload, &event.sender, max_frame_bytes);
        let (frame, payload_at) = encoded.map_err(|e| match e {
            ProtocolError::Oversized { len, max } => {
                let payload_bytes = serde_json::to_vec(&event.payload).map_or(0, |b| b.len() as u64);
                PublishError::Oversized { len, max, payload_bytes }
            }
            other => PublishError::Encode(other),
        })?;
        let EventRecord { topic, sender, time_ms, .. } = event;
        let event = Arc::new(SharedEvent { topic, sender, time_ms, frame: Arc::new(frame), payload_at });
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut delivered = offer_to_plugins(state, &event, from);
        state.subscribers.retain(|_, sub| match offer_to_subscriber(sub, &event) {
            SubscriberOffer::Skipped => true,
            SubscriberOffer::Queued => {
                delivered += 1;
                true
            }
            SubscriberOffer::Ended => false,
        });
        state.backlog.push(event);
        Ok(delivered)
    }

    /// Opens a subscription to `patterns` (topics or `prefix.*`; every topic when `None`) with
    /// up to `backlog` recent matching events; without `follow` only the backlog is returned.
    pub fn subscribe(&self, patterns: Option<Vec<String>>, backlog: usize, follow: bool) -> Subscription {
        let patterns = patterns.map(|p| TopicSet::from_patterns(p.iter().map(String::as_str)));
        let mut state = self.lock();
        let wanted = |event: &&Arc<SharedEvent>| pattern_wants(patterns.as_ref(), &event.topic);
        let mut recent: Vec<Arc<SharedEvent>> =
            state.backlog.events.iter().rev().filter(wanted).take(backlog).cloned().collect();
        recent.reverse();
        state.next_subscriber += 1;
        let id = state.next_subscriber;
        let lagged = Arc::new(AtomicBool::new(false));
        let rx = follow.then(|| {
            let (tx, rx) = mpsc::channel(SUBSCRIPTION_QUEUE);
            let budget = Arc::new(Semaphore::new(SUBSCRIPTION_BYTES));
            state.subscribers.insert(id, Subscriber { patterns, tx, budget, lagged: Arc::clone(&lagged) });
            rx
        });
        Subscription { id, backlog: recent, rx, lagged }
    }

    pub fn unsubscribe(&self, id: u64) {
        self.lock().subscribers.remove(&id);
    }

    /// Ends every subscription (their streams see the channel close).
    pub fn close_all_subscriptions(&self) {
        self.lock().subscribers.clear();
    }

    /// The counters and subscription set of a connected instance.
    pub fn counters(&self, instance: &str) -> Option<EventCounters> {
        let state = self.lock();
        let port = state.ports.get(state.by_instance.get(instance)?)?;
        let c = &port.counters;
        Some(EventCounters {
            published: c.published.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped_full: c.dropped_full.load(Ordering::Relaxed),
            dropped_too_large: c.dropped_too_large.load(Ordering::Relaxed),
            subscriptions: port.subscriptions.to_vec(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn remove_port(state: &mut State, id: PortId) {
    if let Some(port) = state.ports.remove(&id) {
        for pattern in port.subscriptions.patterns() {
            state.routes.remove(pattern, id);
        }
        if state.by_instance.get(&port.instance) == Some(&id) {
            state.by_instance.remove(&port.instance);
        }
    }
}

fn offer_to_plugins(state: &mut State, event: &Arc<SharedEvent>, from: Option<PortId>) -> u32 {
    let topic = event.topic.as_str();
    state.routes.recipients(topic, &mut state.recipients);
    let mut delivered = 0;
    for id in &state.recipients {
        let Some(port) = state.ports.get(id).filter(|_| Some(*id) != from) else { continue };
        // The subscription set is within the grant by construction; checked again all the same.
        if !port.grants.reads(topic) {
            continue;
        }
        let counter = match port.inbox.offer(&event.frame) {
            Offer::Queued => {
                delivered += 1;
                &port.counters.delivered
            }
            Offer::Full => &port.counters.dropped_full,
            Offer::TooLarge => &port.counters.dropped_too_large,
            Offer::Closed => continue,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    delivered
}

enum SubscriberOffer {
    Skipped,
    Queued,
    /// Lagging or closed: the subscription is dropped, not buffered.
    Ended,
}

fn offer_to_subscriber(sub: &Subscriber, event: &Arc<SharedEvent>) -> SubscriberOffer {
    if !pattern_wants(sub.patterns.as_ref(), &event.topic) {
        return SubscriberOffer::Skipped;
    }
    let permits = event.held_bytes().clamp(1, SUBSCRIPTION_BYTES) as u32;
    let permit = match Arc::clone(&sub.budget).try_acquire_many_owned(permits) {
        Ok(permit) => permit,
        Err(TryAcquireError::NoPermits) => {
            sub.lagged.store(true, Ordering::Release);
            return SubscriberOffer::Ended;
        }
        Err(TryAcquireError::Closed) => return SubscriberOffer::Ended,
    };
    match sub.tx.try_send(Delivered { event: Arc::clone(event), _permit: permit }) {
        Ok(()) => SubscriberOffer::Queued,
        Err(mpsc::error::TrySendError::Full(_)) => {
            sub.lagged.store(true, Ordering::Release);
            SubscriberOffer::Ended
        }
        Err(mpsc::error::TrySendError::Closed(_)) => SubscriberOffer::Ended,
    }
}

fn pattern_wants(patterns: Option<&TopicSet>, topic: &str) -> bool {
    patterns.is_none_or(|patterns| patterns.matches(topic))
}
