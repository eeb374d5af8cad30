//! The event broker of `wfsandbox serve` with real sandboxed plugins: grants on publish and
//! subscribe, the sender the daemon sets, bad frames that close one channel and leave the
//! others running, and per-publisher order with at-most-once drops. The load tests (fairness
//! under a flood, readers that never read) are in daemon_broker_load.rs.
//!
//! Most plugins here run the `scripted` probe: it prints every message it receives as one JSON
//! line (read back with `logs`) and obeys `{"cmd": ...}` events that the test publishes on the
//! plugin's `cmd.<name>` topic.

use serde_json::{json, Value};
use std::time::Duration;
use wf_integration_tests::daemon::{eventually, monotonic_ns, publish_pipelined, Daemon};
use wf_integration_tests::{require_root, PluginDir};
use wf_protocol::control::{Call, PluginState, StreamItem, SubscribeEventsArgs, Violation};

/// Long enough for a slow VM; only failures wait this long.
const WAIT: Duration = Duration::from_secs(60);

fn events(read: &[&str], write: &[&str]) -> Value {
    json!({ "permissions": { "events": { "read": read, "write": write } } })
}

/// A `scripted` plugin named `name` that reads `cmd.<name>` and `read`, and writes `write`.
fn scripted(name: &str, read: &[&str], write: &[&str]) -> PluginDir {
    let command_topic = format!("cmd.{name}");
    let mut all: Vec<&str> = vec![&command_topic];
    all.extend_from_slice(read);
    PluginDir::daemon_probe(name, &["scripted", "300"], events(&all, write))
}

/// Starts the plugins and waits until each is connected to the broker.
fn start_all(daemon: &Daemon, plugins: &[(&str, &PluginDir)]) {
    for (_, plugin) in plugins {
        daemon.start_plugin(plugin);
    }
    for (name, _) in plugins {
        daemon.wait_attached(name, WAIT);
    }
}

/// Sends `command` to the scripted plugin `name`.
fn command(daemon: &Daemon, name: &str, command: Value) {
    assert_eq!(daemon.publish(&format!("cmd.{name}"), command), 1, "the command reached {name}");
}

/// Waits for a message `name` printed that satisfies `matches`, and returns every message it
/// printed up to and including it.
fn wait_message(daemon: &Daemon, name: &str, matches: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    let found = eventually(WAIT, || {
        seen = daemon.json_lines_of(name);
        seen.iter().any(&matches)
    });
    assert!(found, "{name} never printed the expected message:\n{}", daemon.logs_of(name));
    let end = seen.iter().position(&matches).map_or(seen.len(), |i| i + 1);
    seen.truncate(end);
    seen
}

fn is_event(message: &Value, topic: &str) -> bool {
    message["type"] == "event" && message["topic"] == topic
}

/// The events on topics other than the plugin's command topic that `name` printed.
fn data_events(lines: &[Value], name: &str) -> Vec<Value> {
    let command_topic = format!("cmd.{name}");
    lines.iter().filter(|m| m["type"] == "event" && m["topic"] != command_topic.as_str()).cloned().collect()
}

fn wait_violation(daemon: &Daemon, name: &str, matches: impl Fn(&Violation) -> bool) -> Violation {
    let mut found = None;
    eventually(WAIT, || {
        found = daemon.violations_of(name).into_iter().find(&matches);
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no such violation of {name}: {:?}", daemon.violations_of(name)))
}

fn subscribe_call(topics: &[&str]) -> Call {
    let topics = Some(topics.iter().map(|t| (*t).to_owned()).collect());
    Call::SubscribeEvents(SubscribeEventsArgs { topics, backlog: 0, follow: true })
}

#[test]
fn an_ungranted_publish_is_refused_reported_and_reaches_no_reader() {
    require_root();
    let daemon = Daemon::start();
    let sneaky = scripted("sneaky", &[], &["chat.ok"]);
    let vault = scripted("vault", &["secret.keys"], &[]);
    let mut watcher = daemon.connect();
    let mut stream = watcher.open_stream(subscribe_call(&["secret.keys"])).expect("subscribe_events");
    start_all(&daemon, &[("vault", &vault), ("sneaky", &sneaky)]);

    let payload = json!({"key": "k".repeat(100)});
    let bytes = serde_json::to_vec(&payload).expect("payload").len();
    command(&daemon, "sneaky", json!({"cmd": "publish", "topic": "secret.keys", "payload": payload}));
    let lines = wait_message(&daemon, "sneaky", |m| m["type"] == "denied");
    let denied = lines.last().expect("the denial");
    assert_eq!(denied["topic"], "secret.keys", "{denied}");

    let violation = wait_violation(&daemon, "sneaky", |v| v.kind == "topic_denied");
    assert_eq!((violation.layer.as_str(), violation.plugin.as_str()), ("broker", "sneaky"), "{violation:?}");
    assert_eq!(violation.detail["topic"], "secret.keys", "{violation:?}");
    assert_eq!(violation.detail["bytes"], json!(bytes), "{violation:?}");
    assert_eq!(violation.detail["direction"], "publish", "{violation:?}");
    let counters = daemon.event_counters("sneaky").expect("sneaky is connected");
    assert!(counters.refused >= 1 && counters.published == 0, "{counters:?}");

    // Nothing reached a reader: the first event either sees on the topic is the marker
    // published after the refusal (one publisher's events arrive in order).
    assert_eq!(daemon.publish("secret.keys", json!({"marker": 1})), 2, "the vault plugin and the watcher");
    let Some(StreamItem::Event(first)) = stream.next_item().expect("stream item") else { panic!("no event") };
    assert_eq!((first.payload.clone(), first.sender.as_str()), (json!({"marker": 1}), "control:0"), "{first:?}");
    let seen = wait_message(&daemon, "vault", |m| is_event(m, "secret.keys"));
    let leaked = data_events(&seen, "vault");
    assert_eq!(leaked.len(), 1, "only the marker: {leaked:?}");
    assert_eq!(leaked[0]["payload"], json!({"marker": 1}), "{leaked:?}");
    assert_eq!(daemon.event_counters("vault").map(|c| c.delivered), Some(1));
}

#[test]
fn subscriptions_are_checked_against_the_read_grant_and_wildcards_match_one_segment() {
    require_root();
    let daemon = Daemon::start();
    let sub = scripted("sub", &["sensor.*", "alerts.fire"], &[]);
    start_all(&daemon, &[("sub", &sub)]);
    let initial = daemon.event_counters("sub").expect("connected").subscriptions;
    assert_eq!(initial, ["alerts.fire", "cmd.sub", "sensor.*"], "a plugin starts subscribed to its read grant");

    // Down to the command topic: nothing else is delivered.
    command(&daemon, "sub", json!({"cmd": "unsubscribe", "topics": ["sensor.*", "alerts.fire"]}));
    let lines = wait_message(&daemon, "sub", |m| m["type"] == "subscribed");
    assert_eq!(lines.last().map(|m| m["topics"].clone()), Some(json!(["cmd.sub"])));
    assert_eq!(daemon.publish("sensor.temp", json!({"n": 1})), 0, "unsubscribed: not delivered");

    // Back to sensor.*; a topic outside the grant and a wildcard the grant does not name are
    // refused one by one.
    command(&daemon, "sub", json!({"cmd": "subscribe", "topics": ["secret.keys", "sensor.*", "alerts.*"]}));
    let lines = wait_message(&daemon, "sub", |m| m["type"] == "subscribed" && m["topics"] != json!(["cmd.sub"]));
    let after_unsubscribe = lines.iter().rposition(|m| m["type"] == "subscribed" && m["topics"] == json!(["cmd.sub"]));
    let replies: Vec<&Value> =
        lines[after_unsubscribe.map_or(0, |i| i + 1)..].iter().filter(|m| m["type"] != "event").collect();
    let denied: Vec<&Value> = replies.iter().filter(|m| m["type"] == "denied").map(|m| &m["topic"]).collect();
    assert_eq!(denied, [&json!("secret.keys"), &json!("alerts.*")], "{replies:?}");
    assert_eq!(replies.last().map(|m| m["topics"].clone()), Some(json!(["cmd.sub", "sensor.*"])), "{replies:?}");
    for topic in ["secret.keys", "alerts.*"] {
        let v = wait_violation(&daemon, "sub", |v| v.kind == "topic_denied" && v.detail["topic"] == topic);
        assert_eq!((v.layer.as_str(), &v.detail["direction"]), ("broker", &json!("subscribe")), "{v:?}");
    }
    let counters = daemon.event_counters("sub").expect("connected");
    assert_eq!(counters.subscriptions, ["cmd.sub", "sensor.*"]);
    assert!(counters.refused >= 2, "{counters:?}");

    // sensor.* matches exactly one more segment.
    assert_eq!(daemon.publish("sensor.temp", json!({"n": 2})), 1);
    assert_eq!(daemon.publish("sensor.temp.raw", json!({"n": 3})), 0, "two more segments");
    assert_eq!(daemon.publish("sensor", json!({"n": 4})), 0, "no more segment");
    assert_eq!(daemon.publish("alerts.fire", json!({"n": 5})), 0, "still unsubscribed");

    command(&daemon, "sub", json!({"cmd": "unsubscribe", "topics": ["sensor.*"]}));
    assert!(
        eventually(WAIT, || daemon.event_counters("sub").is_some_and(|c| c.subscriptions == ["cmd.sub"])),
        "the unsubscribe is applied"
    );
    assert_eq!(daemon.publish("sensor.temp", json!({"n": 6})), 0, "unsubscribed again");
    assert_eq!(daemon.publish("cmd.sub", json!({"marker": true})), 1);
    let lines = wait_message(&daemon, "sub", |m| is_event(m, "cmd.sub") && m["payload"]["marker"] == true);
    let got: Vec<Value> = data_events(&lines, "sub").iter().map(|m| m["payload"]["n"].clone()).collect();
    assert_eq!(got, [json!(2)], "the plugin saw only the one event it was subscribed to");
}

#[test]
fn a_forged_sender_is_ignored_and_recorded() {
    require_root();
    let daemon = Daemon::start();
    let forger = scripted("forger", &[], &["chat.msg"]);
    let listener = scripted("listener", &["chat.msg"], &[]);
    let mut watcher = daemon.connect();
    let mut stream = watcher.open_stream(subscribe_call(&["chat.msg"])).expect("subscribe_events");
    start_all(&daemon, &[("listener", &listener), ("forger", &forger)]);

    for (n, claimed) in ["control:0", "host"].iter().enumerate() {
        let publish = json!({"cmd": "publish", "topic": "chat.msg", "payload": {"n": n}, "sender": claimed});
        command(&daemon, "forger", publish);
        let Some(StreamItem::Event(event)) = stream.next_item().expect("stream item") else { panic!("no event") };
        assert_eq!((event.payload.clone(), event.sender.as_str()), (json!({"n": n}), "plugin:forger"), "{event:?}");
    }
    let lines = wait_message(&daemon, "listener", |m| is_event(m, "chat.msg") && m["payload"]["n"] == 1);
    let senders: Vec<Value> = data_events(&lines, "listener").iter().map(|m| m["sender"].clone()).collect();
    assert_eq!(senders, [json!("plugin:forger"), json!("plugin:forger")]);

    let forged =
        wait_violation(&daemon, "forger", |v| v.kind == "forged_sender" && v.detail["claimed_sender"] == "host");
    assert_eq!((forged.layer.as_str(), forged.action.as_str()), ("broker", "ignore"), "{forged:?}");
    assert_eq!(forged.detail["sender"], "plugin:forger", "{forged:?}");
    assert_eq!(forged.detail["topic"], "chat.msg", "{forged:?}");
    let all = daemon.violations_of("forger");
    assert_eq!(all.iter().filter(|v| v.kind == "forged_sender").count(), 2, "{all:?}");
    assert!(all.iter().all(|v| v.kind == "forged_sender"), "nothing else was refused: {all:?}");
    assert!(!daemon.json_lines_of("forger").iter().any(|m| m["type"] == "denied"), "the publish itself is not refused");
    let counters = daemon.event_counters("forger").expect("connected");
    assert_eq!((counters.published, counters.refused), (2, 0), "{counters:?}");
}

/// A consumer `consume end` of `topic` and a `pace` producer that starts on `<prefix>.go`.
fn pair(prefix: &str, rate: u32, seconds: u32) -> (PluginDir, PluginDir) {
    let data = format!("{prefix}.data");
    let go = format!("{prefix}.go");
    let consumer =
        PluginDir::daemon_probe(&format!("{prefix}_consumer"), &["consume", "end", "120"], events(&[&data], &[]));
    let producer = PluginDir::daemon_probe(
        &format!("{prefix}_producer"),
        &["pace", &data, &rate.to_string(), &seconds.to_string()],
        events(&[&go], &[&data]),
    );
    (consumer, producer)
}

#[test]
fn bad_frames_close_only_their_own_channel_and_a_running_pair_keeps_delivering() {
    require_root();
    let daemon = Daemon::start();
    let (consumer, producer) = pair("bf", 100, 240);
    start_all(&daemon, &[("bf_consumer", &consumer), ("bf_producer", &producer)]);
    assert_eq!(daemon.publish("bf.go", json!({"go": true})), 1);

    let attacks = [
        ("oversized", "oversized_frame"),
        ("truncated", "malformed_frame"),
        ("deep", "malformed_frame"),
        ("nested-33", "malformed_frame"),
        ("invalid-utf8", "malformed_frame"),
        ("unknown-field", "malformed_frame"),
    ];
    let attackers: Vec<(String, PluginDir)> = attacks
        .iter()
        .map(|(kind, _)| {
            let name = format!("bad-{kind}");
            let plugin = PluginDir::daemon_probe(&name, &["send-bad-frame", kind], json!({}));
            (name, plugin)
        })
        .collect();
    for (_, plugin) in &attackers {
        daemon.start_plugin(plugin);
    }
    for ((name, _), (kind, violation_kind)) in attackers.iter().zip(attacks) {
        let violation = wait_violation(&daemon, name, |v| v.layer == "broker" && v.kind.ends_with("_frame"));
        assert_eq!(violation.kind, violation_kind, "{kind}: {violation:?}");
        assert_eq!(violation.detail["channel"], "closed", "{kind}: {violation:?}");
        let result = daemon.probe_result(name, WAIT);
        assert_eq!(result["closed"], true, "{kind}: the daemon closed the channel: {result}");
    }
    let attacks_done = monotonic_ns();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.status_of("bf_producer").plugin.state, PluginState::Running);
    assert_eq!(daemon.publish("bf.go", json!({"stop": true})), 1, "stop the producer");

    let result = daemon.probe_result("bf_consumer", WAIT);
    let produced = daemon.probe_result("bf_producer", WAIT);
    assert_eq!(result["ended_by"], "end", "{result}");
    assert_eq!(result["received"], produced["sent"], "{result}\n{produced}");
    assert_eq!(result["end_sent"], produced["sent"], "{result}\n{produced}");
    assert_eq!((result["gaps"].as_u64(), result["duplicates"].as_u64()), (Some(0), Some(0)), "{result}");
    assert_eq!(result["out_of_order"], 0, "{result}");
    assert_eq!(result["senders"], json!(["plugin:bf_producer"]), "{result}");
    let last = result["last_t_ns"].as_u64().unwrap_or(0);
    assert!(last > attacks_done, "events published after the attacks arrived: {result}");
}

#[test]
fn one_publishers_events_arrive_in_order_and_a_slow_readers_drops_are_at_most_once() {
    require_root();
    let fast_rate = json!({ "events_per_second": 1_000_000, "burst": 1_000_000, "bytes_per_second": 1_073_741_824 });
    let daemon = Daemon::start_with_policy(json!({ "sandbox": { "ceilings": { "max_event_rate": fast_rate } } }));
    let fast = PluginDir::daemon_probe("ord_fast", &["consume", "stop", "120"], events(&["ord.seq"], &[]));
    let slow = PluginDir::daemon_probe("ord_slow", &["consume", "stop", "120", "2000"], events(&["ord.seq"], &[]));
    start_all(&daemon, &[("ord_fast", &fast), ("ord_slow", &slow)]);
    const COUNT: u64 = 20_000;
    let mut grants = events(&[], &["ord.seq"]);
    grants["permissions"]["events"]["rate"] = fast_rate;
    let publisher = PluginDir::daemon_probe("ord_pub", &["burst", "ord.seq", &COUNT.to_string()], grants);
    daemon.start_plugin(&publisher);
    let published = daemon.probe_result("ord_pub", WAIT);
    assert_eq!((published["sent"].as_u64(), published["denied"].as_u64()), (Some(COUNT), Some(0)), "{published}");

    // Every event (and the end marker) was either queued to each reader or dropped, once.
    let mut counters = Vec::new();
    for name in ["ord_fast", "ord_slow"] {
        let mut last = None;
        let settled = eventually(WAIT, || {
            last = daemon.event_counters(name);
            last.as_ref().is_some_and(|c| c.delivered + c.dropped_full == COUNT + 1)
        });
        assert!(settled, "{name}: {last:?}");
        counters.push(last.expect("counters"));
    }
    assert!(counters[1].dropped_full > 0, "the slow reader fell behind: {:?}", counters[1]);
    // Stop them (a stop may be dropped while an inbox is full: send until each has ended).
    let ended = eventually(WAIT, || {
        daemon.publish("ord.seq", json!({"stop": true}));
        ["ord_fast", "ord_slow"].iter().all(|n| daemon.json_lines_of(n).iter().any(|l| l.get("probe").is_some()))
    });
    assert!(ended, "the readers did not stop");
    for (name, counters) in ["ord_fast", "ord_slow"].iter().zip(&counters) {
        let result = daemon.probe_result(name, WAIT);
        eprintln!("{name}: {counters:?} -> {result}");
        assert_eq!(result["ended_by"], "stop", "{name}: {result}");
        assert_eq!((result["duplicates"].as_u64(), result["out_of_order"].as_u64()), (Some(0), Some(0)), "{result}");
        let received = result["received"].as_u64().unwrap_or(0);
        let marker = u64::from(result["end_sent"] == json!(COUNT));
        assert_eq!(received + marker, counters.delivered, "{name} read what was queued: {result}");
        let first = result["first_seq"].as_u64().unwrap_or(0);
        let last = result["last_seq"].as_u64().unwrap_or(0);
        let missing = first + result["gaps"].as_u64().unwrap_or(0) + (COUNT - 1 - last);
        assert_eq!(missing + (1 - marker), counters.dropped_full, "{name}: every drop is one missing event: {result}");
    }
}

/// `"sender": null` is not a string: by docs/protocol.md §1.3 rule 5 (a field of the wrong JSON
/// type is malformed) and §1.4 (a `sender` *string* is accepted and ignored; any other extra
/// member is malformed) the frame is malformed and closes the channel. It is accepted instead,
/// as if there were no `sender` (and no `forged_sender` is recorded either).
#[test]
fn a_publish_whose_sender_is_not_a_string_is_malformed() {
    require_root();
    let daemon = Daemon::start();
    let plugin = PluginDir::daemon_probe("null-sender", &["send-bad-frame", "null-sender"], json!({}));
    daemon.start_plugin(&plugin);
    let result = daemon.probe_result("null-sender", WAIT);
    let violations = daemon.violations_of("null-sender");
    assert!(
        violations.iter().any(|v| v.kind == "malformed_frame" && v.detail["channel"] == "closed"),
        "no malformed_frame for a null sender: {violations:?}\n{result}"
    );
    assert_eq!(result["closed"], true, "{result}");
}

/// docs/protocol.md §1.4: `subscribed` is the reply to *every* `subscribe`, and each refused
/// pattern gets a `denied`. A plugin whose inbox is full when it subscribes (it had not read for
/// a while) gets neither, although the request was applied and the refusal recorded: the
/// replies go through the same bounded inbox as events and are dropped when it is full. (The
/// plugin reads only once the daemon has handled its subscribe: if it read first, it would make
/// room for the replies itself.)
#[test]
fn the_replies_to_a_subscribe_are_not_lost_when_the_plugins_inbox_is_full() {
    require_root();
    let daemon = Daemon::start_with_policy(json!({
        "authentication": { "rate_limit": { "requests_per_second": 100_000, "burst": 100_000 } },
    }));
    let args = ["stall-subscribe", "go", "read", "quiet.t", "secret.x"];
    let plugin = PluginDir::daemon_probe("staller", &args, events(&["busy.t", "quiet.t"], &[]));
    start_all(&daemon, &[("staller", &plugin)]);
    // Fill the socket and then the inbox (256 small events): full once a round of publishes
    // queues nothing.
    let mut conn = daemon.connect();
    let delivered = || daemon.event_counters("staller").map_or(0, |c| c.delivered);
    let full = eventually(WAIT, || {
        let before = delivered();
        for n in 0..300 {
            wf_integration_tests::daemon::publish_on(&mut conn, "busy.t", json!({"n": n}));
        }
        delivered() == before
    });
    assert!(full, "the inbox filled: {:?}", daemon.event_counters("staller"));
    plugin.write_file("go", b"", 0o644);

    let v = wait_violation(&daemon, "staller", |v| v.kind == "topic_denied" && v.detail["topic"] == "secret.x");
    assert_eq!(v.detail["direction"], "subscribe", "the subscribe was processed: {v:?}");
    // The replies are offered right after the refusal is recorded; only then may the plugin
    // read (and so make room in its inbox).
    std::thread::sleep(Duration::from_millis(500));
    plugin.write_file("read", b"", 0o644);
    let result = daemon.probe_result("staller", WAIT);
    eprintln!("staller: {result} {:?}", daemon.event_counters("staller"));
    assert!(result["events"].as_u64().unwrap_or(0) > 0, "{result}");
    assert_eq!(result["denied"], json!(["secret.x"]), "the refusal reached the plugin: {result}");
    assert_eq!(result["subscribed"], json!([["busy.t", "quiet.t"]]), "the reply reached the plugin: {result}");
}

#[test]
fn the_publish_rate_and_each_readers_frame_cap_are_enforced_per_plugin() {
    require_root();
    let daemon = Daemon::start();
    let mut small = events(&["big.t", "rl.t"], &[]);
    small["permissions"]["events"]["max_event_bytes"] = json!(1024);
    let small = PluginDir::daemon_probe("small_reader", &["consume", "stop", "120"], small);
    let large = PluginDir::daemon_probe("large_reader", &["consume", "stop", "120"], events(&["big.t"], &[]));
    start_all(&daemon, &[("small_reader", &small), ("large_reader", &large)]);

    // An event over a reader's own max_event_bytes is not queued to it (and counted).
    assert_eq!(daemon.publish("big.t", json!({"n": 0, "pad": "x".repeat(2000)})), 1, "the large reader only");
    assert_eq!(daemon.publish("big.t", json!({"n": 1})), 2);
    let small_counters = daemon.event_counters("small_reader").expect("connected");
    assert_eq!((small_counters.delivered, small_counters.dropped_too_large), (1, 1), "{small_counters:?}");

    // 10 events a second with a burst of 10: a burst of 200 is mostly refused, and the reader
    // gets exactly the admitted ones.
    let mut limited = events(&[], &["rl.t"]);
    limited["permissions"]["events"]["rate"] = json!({ "events_per_second": 10, "burst": 10 });
    let publisher = PluginDir::daemon_probe("limited", &["burst", "rl.t", "200"], limited);
    daemon.start_plugin(&publisher);
    let published = daemon.probe_result("limited", WAIT);
    let denied = published["denied"].as_u64().unwrap_or(0);
    assert!((100..=191).contains(&denied), "most of the 201 are refused: {published}");
    let violation = wait_violation(&daemon, "limited", |v| v.kind == "rate_limited");
    assert_eq!((violation.layer.as_str(), &violation.detail["topic"]), ("broker", &json!("rl.t")), "{violation:?}");
    assert!(violation.rule.contains("/permissions/events/rate/events_per_second"), "{violation:?}");

    let ended = eventually(WAIT, || {
        daemon.publish("rl.t", json!({"stop": true}));
        daemon.json_lines_of("small_reader").iter().any(|l| l.get("probe").is_some())
    });
    assert!(ended, "the reader did not stop");
    let result = daemon.probe_result("small_reader", WAIT);
    let received = result["received"].as_u64().unwrap_or(0);
    assert_eq!(result["senders"], json!(["plugin:limited"]), "{result}");
    let marker = u64::from(result["end_sent"] == 200);
    assert_eq!(received + marker + denied, 201, "admitted = delivered: {result}\n{published}");
    assert_eq!((result["duplicates"].as_u64(), result["out_of_order"].as_u64()), (Some(0), Some(0)), "{result}");
}

/// docs/protocol.md §1.6: a publish whose event frame would exceed the publisher's own
/// `max_event_bytes` is refused (`oversized_event`, a `denied`), and every refused publish's
/// violation carries `detail.bytes`, the payload size. The `oversized_event` record has no
/// `bytes`.
#[test]
fn a_publish_whose_event_would_exceed_the_cap_is_refused_and_recorded_with_its_size() {
    require_root();
    let daemon = Daemon::start();
    let mut grants = events(&["cmd.tight"], &["t.a"]);
    grants["permissions"]["events"]["max_event_bytes"] = json!(1024);
    let tight = PluginDir::daemon_probe("tight", &["scripted", "300"], grants);
    let reader = scripted("reader", &["t.a"], &[]);
    start_all(&daemon, &[("reader", &reader), ("tight", &tight)]);
    // The publish frame is 1020 bytes (within the cap); the event adds `"sender":"plugin:tight"`.
    let text = "x".repeat(1020 - r#"{"type":"publish","topic":"t.a","payload":""}"#.len());
    let publish = wf_protocol::PluginMessage::publish("t.a", json!(text));
    assert_eq!(wf_protocol::encode_with_limit(&publish, 1024).map(|f| f.len()).ok(), Some(1024));
    command(&daemon, "tight", json!({"cmd": "publish", "topic": "t.a", "text_bytes": text.len()}));
    let lines = wait_message(&daemon, "tight", |m| m["type"] == "denied");
    assert_eq!(lines.last().map(|m| m["topic"].clone()), Some(json!("t.a")));
    let violation = wait_violation(&daemon, "tight", |v| v.kind == "oversized_event");
    assert_eq!(violation.rule, "/permissions/events/max_event_bytes", "{violation:?}");
    assert_eq!(violation.detail["topic"], "t.a", "{violation:?}");
    assert_eq!(daemon.event_counters("reader").map(|c| c.delivered), Some(0), "nothing was delivered");
    assert_eq!(violation.detail["bytes"], json!(text.len() + 2), "the payload's size: {violation:?}");
}

/// docs/protocol.md §1.7: "Events from one publisher reach each reader in the order they were
/// published." The control protocol lets a client send requests without waiting for each
/// answer (§2.4, request ids); a client that publishes that way is one publisher
/// (`control:0`), yet the daemon serves each request in its own task (connection.rs,
/// `spawn_request`), so the events reach readers in whatever order those tasks ran.
#[test]
fn a_control_clients_pipelined_publishes_reach_readers_in_publish_order() {
    require_root();
    let daemon = Daemon::start_with_policy(json!({
        "authentication": { "rate_limit": { "requests_per_second": 100_000, "burst": 100_000 } },
    }));
    let reader = PluginDir::daemon_probe("ctl_reader", &["consume", "stop", "120"], events(&["ord.ctl"], &[]));
    start_all(&daemon, &[("ctl_reader", &reader)]);
    let mut watcher = daemon.connect();
    let mut stream = watcher.open_stream(subscribe_call(&["ord.ctl"])).expect("subscribe_events");
    const COUNT: u64 = 2000;
    let delivered = publish_pipelined(&daemon, "ord.ctl", COUNT, |seq| json!({"seq": seq}), |_| {});
    assert!(delivered >= COUNT, "the watcher took every event: {delivered}");
    let mut order = Vec::new();
    while order.len() < COUNT as usize {
        let Some(StreamItem::Event(event)) = stream.next_item().expect("stream item") else { panic!("no event") };
        order.push(event.payload["seq"].as_u64().unwrap_or(u64::MAX));
    }
    let ended = eventually(WAIT, || {
        daemon.publish("ord.ctl", json!({"stop": true}));
        daemon.json_lines_of("ctl_reader").iter().any(|l| l.get("probe").is_some())
    });
    assert!(ended, "the reader did not stop");
    let result = daemon.probe_result("ctl_reader", WAIT);
    let reordered = order.windows(2).filter(|w| w[1] < w[0]).count();
    eprintln!("control watcher: {reordered} of {COUNT} out of order; plugin reader: {result}");
    assert_eq!(result["duplicates"], 0, "{result}");
    assert_eq!(reordered, 0, "the watcher saw control:0's events out of order");
    assert_eq!(result["out_of_order"], 0, "the plugin saw control:0's events out of order: {result}");
}
