//! Routes events between plugins and control-socket subscribers.
//!
//! Grants are checked before anything is routed: a plugin's publish is admitted by
//! [`crate::grants::check_publish`] before it reaches [`Broker::publish`], and a plugin is only
//! offered topics [`crate::grants::check_delivery`] allows. The sender is always set by the
//! daemon from the connection (`plugin:<name>`, `control:<uid>`), never from a message.
//!
//! Everything is bounded: each plugin's inbox and each subscription has a fixed queue. A plugin
//! that does not read loses the events that do not fit (counted); a subscription that does not
//! keep up is ended (its stream ends `lagged`), so a slow reader never holds memory or delays
//! a publisher.

use crate::grants;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use wf_policy::spec::EventGrants;

/// Events kept for `subscribe_events` backlogs.
pub const BACKLOG: usize = wf_protocol::control::MAX_EVENT_BACKLOG as usize;
/// Queue of one control subscription.
pub const SUBSCRIPTION_QUEUE: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub topic: String,
    pub payload: serde_json::Value,
    pub sender: String,
    pub time_ms: u64,
}

/// What a plugin's channel writer sends.
#[derive(Debug, Clone)]
pub enum ToPlugin {
    Event(Arc<EventRecord>),
    Denied { topic: String, reason: String },
}

/// A plugin's inbox as the broker sees it.
pub struct PluginPort {
    pub grants: Arc<EventGrants>,
    pub tx: mpsc::Sender<ToPlugin>,
    /// Events that did not fit the inbox.
    pub dropped: Arc<AtomicU64>,
}

struct Subscriber {
    topics: Option<HashSet<String>>,
    tx: mpsc::Sender<Arc<EventRecord>>,
    lagged: Arc<AtomicBool>,
}

/// A control subscription: the backlog first, then (with follow) new events on `rx`.
pub struct Subscription {
    pub id: u64,
    pub backlog: Vec<Arc<EventRecord>>,
    pub rx: Option<mpsc::Receiver<Arc<EventRecord>>>,
    /// Set when the broker ended the subscription because its queue was full.
    pub lagged: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    ports: HashMap<String, PluginPort>,
    subscribers: HashMap<u64, Subscriber>,
    next_subscriber: u64,
    backlog: VecDeque<Arc<EventRecord>>,
}

#[derive(Default)]
pub struct Broker {
    state: Mutex<State>,
}

impl Broker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects a running plugin instance's inbox.
    pub fn attach_plugin(&self, instance: &str, port: PluginPort) {
        self.lock().ports.insert(instance.to_owned(), port);
    }

    pub fn detach_plugin(&self, instance: &str) {
        self.lock().ports.remove(instance);
    }

    /// Offers `event` to every plugin that may read it (but its sender) and every matching
    /// subscription. Returns how many took it.
    pub fn publish(&self, event: EventRecord, from_instance: Option<&str>) -> u32 {
        let event = Arc::new(event);
        let mut state = self.lock();
        let mut delivered = 0u32;
        for (instance, port) in &state.ports {
            if Some(instance.as_str()) == from_instance || grants::check_delivery(&port.grants, &event.topic).is_err() {
                continue;
            }
            match port.tx.try_send(ToPlugin::Event(Arc::clone(&event))) {
                Ok(()) => delivered += 1,
                Err(_) => {
                    port.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        state.subscribers.retain(|_, sub| {
            if sub.topics.as_ref().is_some_and(|topics| !topics.contains(&event.topic)) {
                return true;
            }
            match sub.tx.try_send(Arc::clone(&event)) {
                Ok(()) => {
                    delivered += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.lagged.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        if state.backlog.len() == BACKLOG {
            state.backlog.pop_front();
        }
        state.backlog.push_back(event);
        delivered
    }

    /// Opens a subscription to `topics` (all when `None`) with up to `backlog` recent matching
    /// events; without `follow` only the backlog is returned.
    pub fn subscribe(&self, topics: Option<Vec<String>>, backlog: usize, follow: bool) -> Subscription {
        let topics: Option<HashSet<String>> = topics.map(|t| t.into_iter().collect());
        let mut state = self.lock();
        let matches = |event: &&Arc<EventRecord>| topics.as_ref().is_none_or(|t| t.contains(&event.topic));
        let mut recent: Vec<Arc<EventRecord>> =
            state.backlog.iter().rev().filter(matches).take(backlog).cloned().collect();
        recent.reverse();
        state.next_subscriber += 1;
        let id = state.next_subscriber;
        let lagged = Arc::new(AtomicBool::new(false));
        let rx = follow.then(|| {
            let (tx, rx) = mpsc::channel(SUBSCRIPTION_QUEUE);
            state.subscribers.insert(id, Subscriber { topics, tx, lagged: Arc::clone(&lagged) });
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

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_policy::spec::{Origin, Sourced};

    fn grants(read: &[&str]) -> Arc<EventGrants> {
        let origin = || Origin::manifest("/permissions/events");
        Arc::new(EventGrants {
            read: Sourced { value: read.iter().map(|t| (*t).to_owned()).collect(), origin: origin() },
            write: Sourced { value: Vec::new(), origin: origin() },
            ui_render: Sourced { value: false, origin: origin() },
            max_event_bytes: Sourced { value: 65536, origin: origin() },
        })
    }

    fn event(topic: &str) -> EventRecord {
        EventRecord { topic: topic.into(), payload: serde_json::json!(1), sender: "control:0".into(), time_ms: 1 }
    }

    fn port(read: &[&str], queue: usize) -> (PluginPort, mpsc::Receiver<ToPlugin>) {
        let (tx, rx) = mpsc::channel(queue);
        (PluginPort { grants: grants(read), tx, dropped: Arc::default() }, rx)
    }

    #[test]
    fn plugins_get_only_what_they_may_read_and_never_their_own_events() {
        let broker = Broker::new();
        let (reader, mut reader_rx) = port(&["energy.update"], 8);
        let (other, mut other_rx) = port(&["ui.render"], 8);
        broker.attach_plugin("reader-1", reader);
        broker.attach_plugin("other-1", other);
        assert_eq!(broker.publish(event("energy.update"), None), 1);
        assert!(matches!(reader_rx.try_recv(), Ok(ToPlugin::Event(e)) if e.topic == "energy.update"));
        assert!(other_rx.try_recv().is_err());
        assert_eq!(broker.publish(event("energy.update"), Some("reader-1")), 0);
        assert!(reader_rx.try_recv().is_err());
    }

    #[test]
    fn a_full_plugin_inbox_drops_and_counts() {
        let broker = Broker::new();
        let (reader, _rx) = port(&["t.a"], 2);
        let dropped = Arc::clone(&reader.dropped);
        broker.attach_plugin("reader-1", reader);
        let delivered: u32 = (0..5).map(|_| broker.publish(event("t.a"), None)).sum();
        assert_eq!((delivered, dropped.load(Ordering::Relaxed)), (2, 3));
    }

    #[test]
    fn subscriptions_filter_replay_a_backlog_and_end_lagged_when_full() {
        let broker = Broker::new();
        for topic in ["t.a", "t.b", "t.a"] {
            broker.publish(event(topic), None);
        }
        let sub = broker.subscribe(Some(vec!["t.a".into()]), 5, true);
        assert_eq!(sub.backlog.len(), 2);
        let mut rx = sub.rx.expect("follow");
        broker.publish(event("t.b"), None);
        broker.publish(event("t.a"), None);
        assert_eq!(rx.try_recv().map(|e| e.topic.clone()).ok(), Some("t.a".to_owned()));
        assert!(rx.try_recv().is_err());
        for _ in 0..=SUBSCRIPTION_QUEUE {
            broker.publish(event("t.a"), None);
        }
        assert!(sub.lagged.load(Ordering::Acquire));
        assert_eq!(broker.lock().subscribers.len(), 0, "a lagging subscriber is dropped, not buffered");
    }

    #[test]
    fn the_backlog_is_bounded() {
        let broker = Broker::new();
        for _ in 0..BACKLOG * 2 {
            broker.publish(event("t.a"), None);
        }
        assert_eq!(broker.lock().backlog.len(), BACKLOG);
        let sub = broker.subscribe(None, BACKLOG * 2, false);
        assert_eq!(sub.backlog.len(), BACKLOG);
        assert!(sub.rx.is_none());
    }
}
