use super::inbox::INBOX_EVENTS;
use super::*;
use wf_policy::spec::{Origin, Sourced};
use wf_protocol::{decode_body, SupervisorMessage, HEADER_LEN};

fn grants(read: &[&str]) -> Arc<Grants> {
    let origin = || Origin::manifest("/permissions/events");
    Arc::new(Grants::new(&wf_policy::spec::EventGrants {
        read: Sourced { value: read.iter().map(|t| (*t).to_owned()).collect(), origin: origin() },
        write: Sourced { value: Vec::new(), origin: origin() },
        ui_render: Sourced { value: false, origin: origin() },
        max_event_bytes: Sourced { value: 65536, origin: origin() },
        rate: wf_policy::spec::EventRate::for_tests(),
    }))
}

fn event(topic: &str) -> EventRecord {
    EventRecord { topic: topic.into(), payload: serde_json::json!(1), sender: Arc::from("control:0"), time_ms: 1 }
}

fn publish(broker: &Broker, topic: &str, from: Option<PortId>) -> u32 {
    broker.publish(event(topic), from, 65536).unwrap_or_else(|e| panic!("{e}"))
}

fn plugin(broker: &Broker, instance: &str, read: &[&str], max: u32) -> (PortId, Arc<PortCounters>, InboxReceiver) {
    let (tx, rx) = inbox(max);
    let (id, counters) = broker.attach_plugin(instance, grants(read), max, tx);
    (id, counters, rx)
}

/// Every frame queued to a plugin, decoded.
async fn drain(rx: &mut InboxReceiver) -> Vec<SupervisorMessage> {
    let mut batch = Vec::new();
    let mut out = Vec::new();
    while tokio::time::timeout(std::time::Duration::from_millis(10), rx.recv_batch(&mut batch, usize::MAX))
        .await
        .unwrap_or(false)
    {}
    let mut rest = &batch[..];
    while rest.len() >= HEADER_LEN {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        out.push(decode_body(&rest[HEADER_LEN..HEADER_LEN + len], 65536).unwrap_or_else(|e| panic!("{e}")));
        rest = &rest[HEADER_LEN + len..];
    }
    out
}

fn topics(messages: &[SupervisorMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| match m {
            SupervisorMessage::Event { topic, .. } => topic.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn plugins_get_only_what_they_subscribe_within_their_grant_and_never_their_own_events() {
    let broker = Broker::new();
    let (reader, _, mut reader_rx) = plugin(&broker, "reader-1", &["energy.update"], 65536);
    let (_, _, mut other_rx) = plugin(&broker, "other-1", &["ui.render"], 65536);
    assert_eq!(publish(&broker, "energy.update", None), 1);
    assert_eq!(publish(&broker, "energy.update", Some(reader)), 0);
    assert_eq!(topics(&drain(&mut reader_rx).await), ["energy.update"]);
    assert!(drain(&mut other_rx).await.is_empty());
}

#[tokio::test]
async fn the_sender_and_payload_reach_the_reader_as_published() {
    let broker = Broker::new();
    let (_, _, mut rx) = plugin(&broker, "reader-1", &["t.a"], 65536);
    let record = EventRecord {
        topic: "t.a".into(),
        payload: serde_json::json!({"w": 2}),
        sender: Arc::from("plugin:p"),
        time_ms: 1,
    };
    broker.publish(record, None, 65536).unwrap_or_else(|e| panic!("{e}"));
    let got = drain(&mut rx).await;
    assert_eq!(
        got,
        [SupervisorMessage::Event {
            topic: "t.a".into(),
            payload: serde_json::json!({"w": 2}),
            sender: "plugin:p".into()
        }]
    );
}

#[tokio::test]
async fn subscriptions_narrow_and_widen_delivery_within_the_grant_only() {
    let broker = Broker::new();
    let (id, _, mut rx) = plugin(&broker, "reader-1", &["sensor.*", "energy.update"], 65536);
    let (outcome, set) = broker.unsubscribe_plugin(id, &["sensor.*".into()]).expect("attached");
    assert_eq!((outcome, set), (Ok(()), vec!["energy.update".to_owned()]));
    publish(&broker, "sensor.temp", None);
    let (refused, set) = broker.subscribe_plugin(id, &["sensor.temp".into(), "secret.keys".into()]).expect("attached");
    let refused = refused.expect("within the request cap");
    assert_eq!(refused.iter().map(|r| r.pattern.as_str()).collect::<Vec<_>>(), ["secret.keys"]);
    assert_eq!(set, ["energy.update", "sensor.temp"]);
    for topic in ["sensor.temp", "sensor.humidity", "secret.keys", "energy.update"] {
        publish(&broker, topic, None);
    }
    assert_eq!(topics(&drain(&mut rx).await), ["sensor.temp", "energy.update"]);
}

#[tokio::test]
async fn a_plugin_that_does_not_read_loses_what_does_not_fit_and_it_is_counted() {
    let broker = Broker::new();
    let (_, counters, _rx) = plugin(&broker, "reader-1", &["t.a"], 65536);
    let delivered: u32 = (0..INBOX_EVENTS + 10).map(|_| publish(&broker, "t.a", None)).sum();
    assert_eq!(delivered as usize, INBOX_EVENTS);
    assert_eq!(counters.dropped_full.load(Ordering::Relaxed), 10);
    assert_eq!(counters.delivered.load(Ordering::Relaxed), INBOX_EVENTS as u64);
}

#[tokio::test]
async fn an_event_over_a_readers_own_cap_is_dropped_for_that_reader_only() {
    let broker = Broker::new();
    let (_, small_counters, mut small) = plugin(&broker, "small-1", &["t.a"], 64);
    let (_, _, mut big) = plugin(&broker, "big-1", &["t.a"], 65536);
    let record = EventRecord {
        topic: "t.a".into(),
        payload: serde_json::json!("x".repeat(100)),
        sender: Arc::from("s"),
        time_ms: 1,
    };
    assert_eq!(broker.publish(record, None, 65536).ok(), Some(1));
    assert!(drain(&mut small).await.is_empty());
    assert_eq!(small_counters.dropped_too_large.load(Ordering::Relaxed), 1);
    assert_eq!(drain(&mut big).await.len(), 1);
}

#[test]
fn an_event_whose_frame_would_pass_the_publishers_cap_is_refused() {
    let broker = Broker::new();
    let record = EventRecord {
        topic: "t.a".into(),
        payload: serde_json::json!("x".repeat(100)),
        sender: Arc::from("s"),
        time_ms: 1,
    };
    assert!(matches!(broker.publish(record, None, 100), Err(PublishError::Oversized { max: 100, .. })));
}

#[test]
fn an_invalid_topic_is_not_routed_even_if_a_caller_forgot_to_check_it() {
    let broker = Broker::new();
    let (_, _, _rx) = plugin(&broker, "reader-1", &["t.*"], 65536);
    assert!(matches!(broker.publish(event("t.A"), None, 65536), Err(PublishError::InvalidTopic)));
    assert!(broker.lock().backlog.events.is_empty());
}

#[test]
fn a_detached_plugin_is_no_longer_routed_to() {
    let broker = Broker::new();
    let (_, _, _rx) = plugin(&broker, "reader-1", &["t.a"], 65536);
    broker.detach_plugin("reader-1");
    assert_eq!(publish(&broker, "t.a", None), 0);
    assert!(broker.lock().routes_are_empty());
}

#[test]
fn subscriptions_filter_by_pattern_replay_a_backlog_and_end_lagged_when_full() {
    let broker = Broker::new();
    for topic in ["t.a", "t.b", "t.a", "u.a"] {
        publish(&broker, topic, None);
    }
    let sub = broker.subscribe(Some(vec!["t.a".into()]), 5, true);
    assert_eq!(sub.backlog.len(), 2);
    assert_eq!(broker.subscribe(Some(vec!["t.*".into()]), 5, false).backlog.len(), 3);
    let mut rx = sub.rx.expect("follow");
    publish(&broker, "t.b", None);
    publish(&broker, "t.a", None);
    assert_eq!(rx.try_recv().map(|d| d.event.topic.clone()).ok(), Some("t.a".to_owned()));
    assert!(rx.try_recv().is_err());
    for _ in 0..=SUBSCRIPTION_QUEUE {
        publish(&broker, "t.a", None);
    }
    assert!(sub.lagged.load(Ordering::Acquire));
    assert_eq!(broker.lock().subscribers.len(), 0, "a lagging subscriber is dropped, not buffered");
}

#[test]
fn a_subscription_is_bounded_in_bytes_too() {
    let broker = Broker::new();
    let sub = broker.subscribe(None, 0, true);
    let big = serde_json::json!("x".repeat(60_000));
    let mut sent = 0usize;
    while !sub.lagged.load(Ordering::Acquire) {
        let record = EventRecord { topic: "t.a".into(), payload: big.clone(), sender: Arc::from("s"), time_ms: 1 };
        broker.publish(record, None, 65536).unwrap_or_else(|e| panic!("{e}"));
        sent += 1;
        assert!(sent < SUBSCRIPTION_QUEUE, "ended by bytes long before the event count");
    }
    assert!(sent * 60_000 <= SUBSCRIPTION_BYTES + 60_200, "{sent} events of 60 kB held");
}

#[test]
fn the_backlog_is_bounded_in_events_and_bytes() {
    let broker = Broker::new();
    for _ in 0..BACKLOG * 2 {
        publish(&broker, "t.a", None);
    }
    assert_eq!(broker.lock().backlog.events.len(), BACKLOG);
    let sub = broker.subscribe(None, BACKLOG * 2, false);
    assert_eq!(sub.backlog.len(), BACKLOG);
    assert!(sub.rx.is_none());
    let big = serde_json::json!("x".repeat(60_000));
    for _ in 0..BACKLOG {
        let record = EventRecord { topic: "t.a".into(), payload: big.clone(), sender: Arc::from("s"), time_ms: 1 };
        broker.publish(record, None, 65536).unwrap_or_else(|e| panic!("{e}"));
    }
    let state = broker.lock();
    assert!(state.backlog.bytes <= BACKLOG_BYTES);
    assert_eq!(state.backlog.bytes, state.backlog.events.iter().map(|e| e.held_bytes()).sum::<usize>());
}

#[test]
fn a_held_event_costs_its_frame_whatever_its_payload_shape_and_reads_back_the_same() {
    let broker = Broker::new();
    let zeros = serde_json::Value::Array(vec![serde_json::json!(0); 30_000]);
    let record = EventRecord { topic: "t.a".into(), payload: zeros.clone(), sender: Arc::from("s"), time_ms: 1 };
    broker.publish(record, None, 65536).unwrap_or_else(|e| panic!("{e}"));
    let state = broker.lock();
    let held = state.backlog.events.back().expect("kept");
    assert!(held.held_bytes() < held.frame.len() + 1024, "{} for a {}-byte frame", held.held_bytes(), held.frame.len());
    assert_eq!(held.payload(), zeros);
}

impl State {
    fn routes_are_empty(&self) -> bool {
        let mut out = Vec::new();
        self.routes.recipients("t.a", &mut out);
        out.is_empty() && self.ports.is_empty() && self.by_instance.is_empty()
    }
}
