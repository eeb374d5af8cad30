//! Red-team tests of the daemon's event broker: each test is an attack by a malicious plugin
//! author that currently succeeds, written so that it passes once the gap is closed.
//!
//! The attacking plugins are small Python programs speaking the channel protocol by hand
//! (docs/protocol.md §1.8), so they can send frames no SDK or probe would.

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use wf_integration_tests::daemon::{eventually, publish_on, rss_kib, Daemon};
use wf_integration_tests::{require_root, PluginDir};
use wf_protocol::control::Call;

const WAIT: Duration = Duration::from_secs(60);

/// What every attacking plugin starts with: raw framing over fd 3, `out(...)` prints one JSON
/// line (read back with `logs`), `wait_go()` waits for an event on topic `go`.
const PRELUDE: &str = r#"
import json, os, socket, struct, sys, time
sock = socket.socket(fileno=int(os.environ["WFSANDBOX_CHANNEL_FD"]))
_buf = bytearray()
def out(**kw):
    print(json.dumps(kw), flush=True)
def frame(obj):
    body = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
    return struct.pack(">I", len(body)) + body
def send(obj):
    sock.sendall(frame(obj))
def recv(timeout):
    global _buf
    deadline = time.monotonic() + timeout
    while True:
        if len(_buf) >= 4:
            n = struct.unpack(">I", bytes(_buf[:4]))[0]
            if len(_buf) >= 4 + n:
                body = bytes(_buf[4:4 + n]); del _buf[:4 + n]
                return json.loads(body)
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except (socket.timeout, BlockingIOError):
            return None
        if not chunk:
            return "eof"
        _buf += chunk
def wait_go():
    while True:
        m = recv(120)
        if m is None or m == "eof":
            out(step="no go", got=m); sys.exit(1)
        if m.get("type") == "event" and m.get("topic") == "go":
            return m
hello = recv(30)
out(step="hello", hello=hello)
"#;

/// A Python plugin named `name` running `PRELUDE` + `script`, with manifest fields `extra`.
fn raw_plugin(name: &str, script: &str, extra: Value) -> PluginDir {
    let plugin = PluginDir::empty();
    plugin.write_file("main.py", format!("{PRELUDE}\n{script}\n").as_bytes(), 0o644);
    let mut manifest = json!({ "name": name, "version": "1.0.0", "entry_point": "main.py" });
    wf_integration_tests::merge(&mut manifest, extra);
    plugin.write_manifest(&manifest);
    plugin
}

fn events(read: &[String], write: &[&str]) -> Value {
    json!({ "permissions": { "events": { "read": read, "write": write } } })
}

/// 255 read grants of 128 bytes each, plus `go`: the most a manifest may list.
fn long_read_grants() -> Vec<String> {
    let mut read: Vec<String> = (0..255).map(|i| format!("r{i:03}{}", "a".repeat(124))).collect();
    read.push("go".into());
    read
}

/// A policy whose control request rate the test's own requests stay under.
fn policy() -> Value {
    json!({ "authentication": { "rate_limit": { "requests_per_second": 100_000, "burst": 100_000 } } })
}

/// Milliseconds each of `count` control publishes (on a topic nobody reads) took.
fn publish_latencies(daemon: &Daemon, count: usize, gap: Duration) -> Vec<u64> {
    let mut conn = daemon.connect();
    (0..count)
        .map(|i| {
            let started = Instant::now();
            publish_on(&mut conn, "nobody.listens", json!({ "i": i }));
            let took = started.elapsed().as_millis() as u64;
            std::thread::sleep(gap);
            took
        })
        .collect()
}

fn p99(samples: &mut [u64]) -> u64 {
    samples.sort_unstable();
    let rank = ((0.99 * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// CPU time (user + system) of `pid` and all its threads, in milliseconds.
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1000 / hz
}

/// §1.7: a flooding plugin delays a control request "by turns, not by the length of its
/// flood": p99 within max(20 × the unflooded p99, 50 ms).
///
/// Gap: `Broker::change_subscriptions` (supervisor/src/serve/broker/mod.rs) runs
/// `Subscriptions::subscribe` (supervisor/src/grants.rs) with the broker's one mutex held, and
/// that checks every requested pattern against every read grant (`check_subscription` →
/// `topic_matches`, which re-validates the 128-byte grant each time). One 64 KiB `subscribe`
/// of ~16,000 refused one-letter patterns against 256 long read grants is ~4 million grant
/// validations under the lock; no publish of any plugin or control client can be routed
/// meanwhile. Subscriptions are charged only against the byte rate, and the channel's burst
/// (4 MiB) admits 64 such frames at once. Worse, the daemon has two tokio workers
/// (supervisor/src/serve/mod.rs) and the lock is a `std::sync::Mutex`: while the plugin's
/// reader holds it on one worker, any publish (a control client's, run inline in its
/// connection task by `spawn_request`, or another plugin's) blocks the other worker on it,
/// and the whole daemon — `list`, every other channel, timers — stops for seconds.
#[test]
fn a_subscribe_of_many_refused_patterns_does_not_stall_every_publish() {
    require_root();
    let daemon = Daemon::start_with_policy(policy());
    let script = r#"
wait_go()
body = json.dumps({"type": "subscribe", "topics": ["a"] * 16000}, separators=(",", ":")).encode()
assert len(body) <= 65536, len(body)
for _ in range(2):
    sock.sendall(frame(body))
out(step="sent")
while recv(30) not in (None, "eof"):
    pass
"#;
    let plugin = raw_plugin("subbomb", script, events(&long_read_grants(), &[]));
    daemon.start_plugin(&plugin);
    daemon.wait_attached("subbomb", WAIT);

    let mut reference = publish_latencies(&daemon, 30, Duration::from_millis(20));
    let reference_p99 = p99(&mut reference);
    // `list` never touches the broker; it is measured on its own connection meanwhile.
    let mut lister = daemon.connect();
    let lists = std::thread::spawn(move || {
        (0..40)
            .map(|_| {
                let started = Instant::now();
                lister.call(Call::List(Default::default())).expect("list");
                let took = started.elapsed().as_millis() as u64;
                std::thread::sleep(Duration::from_millis(50));
                took
            })
            .collect::<Vec<u64>>()
    });
    assert_eq!(daemon.publish("go", json!({})), 1, "the go signal reached the plugin");
    let mut flooded = publish_latencies(&daemon, 40, Duration::from_millis(50));
    let mut lists = lists.join().expect("the list thread");
    let flooded_p99 = p99(&mut flooded);
    let list_p99 = p99(&mut lists);
    let bound = (20 * reference_p99).max(50);
    assert!(
        flooded_p99 <= bound && list_p99 <= bound,
        "while one plugin sent two subscribe requests, a control publish took up to {flooded_p99} ms \
         and a `list` up to {list_p99} ms (unflooded publish p99 {reference_p99} ms, bound {bound} ms); \
         publish latencies {flooded:?}, list latencies {lists:?}"
    );
}

/// §1.7: "a plugin can only cost the broker what its own rate admits" — for requests that
/// are not publishes, that rate is the channel's byte rate (1 MiB/s by default), so a byte of
/// `unsubscribe` must not cost the daemon many times what a byte of `publish` costs.
///
/// Gap: `subscribe`/`unsubscribe` are not charged to the event rate at all
/// (supervisor/src/serve/plugins/instance_io.rs, `Publisher::handle`: only `publish` goes
/// through `self.budget`), yet each one costs O(subscription set): `Broker::change_subscriptions`
/// (supervisor/src/serve/broker/mod.rs) clones the whole set and `to_vec`s it with the broker
/// lock held, and `Publisher::reply` encodes (and structure-scans) a `subscribed` frame of the
/// whole set — ~33 KiB for 256 long patterns — even when the reply lane is full and the frame
/// is dropped. A 39-byte `{"type":"unsubscribe","topics":[]}` costs ~1000× its size, and 64 of
/// them (one turn, `FRAMES_PER_TURN`) take far longer than the turn §1.7 promises.
#[test]
fn subscription_churn_costs_about_what_a_publish_flood_of_the_same_bytes_costs() {
    require_root();
    let daemon = Daemon::start_with_policy(policy());
    let script = r#"
go = wait_go()
kind = go["payload"]["kind"]
if kind == "unsubscribe":
    one = frame({"type": "unsubscribe", "topics": []})
else:
    one = frame({"type": "publish", "topic": "x", "payload": 1})
batch = one * (65536 // len(one))
sock.setblocking(True)
end = time.monotonic() + go["payload"]["seconds"]
sent = 0
while time.monotonic() < end:
    sock.sendall(batch)
    sent += len(batch)
    try:
        sock.setblocking(False)
        while sock.recv(1 << 20):
            pass
    except (BlockingIOError, socket.timeout):
        pass
    sock.setblocking(True)
out(step="done", kind=kind, sent=sent)
time.sleep(600)
"#;
    let mut costs = Vec::new();
    for kind in ["publish", "unsubscribe"] {
        let name = format!("churn{}", costs.len());
        let mut grants = long_read_grants();
        grants[0] = "x".into();
        let plugin = raw_plugin(&name, script, events(&grants, &["x"]));
        daemon.start_plugin(&plugin);
        daemon.wait_attached(&name, WAIT);
        std::thread::sleep(Duration::from_millis(500));
        let before = cpu_ms(daemon.pid());
        daemon.publish("go", json!({"kind": kind, "seconds": 3}));
        let mut done = None;
        eventually(WAIT, || {
            done = daemon.json_lines_of(&name).into_iter().find(|l| l["step"] == "done");
            done.is_some()
        });
        let sent = done.and_then(|l| l["sent"].as_u64()).unwrap_or_else(|| panic!("{}", daemon.logs_of(&name)));
        // Until the daemon has worked through what is still in the socket buffer.
        let mut last = cpu_ms(daemon.pid());
        for _ in 0..120 {
            std::thread::sleep(Duration::from_millis(500));
            let now = cpu_ms(daemon.pid());
            if now - last < 50 {
                break;
            }
            last = now;
        }
        let spent = cpu_ms(daemon.pid()) - before;
        costs.push((kind, spent, sent));
        let _ = daemon.cli(&["stop", &name]);
    }
    let per_mib = |(_, spent, sent): (&str, u64, u64)| spent as f64 * 1048576.0 / sent.max(1) as f64;
    let (publish, churn) = (per_mib(costs[0]), per_mib(costs[1]));
    assert!(
        churn <= 10.0 * publish,
        "a MiB of unsubscribe requests cost the daemon {churn:.0} ms of CPU, a MiB of publishes \
         {publish:.0} ms ((kind, cpu ms, bytes sent): {costs:?})"
    );
}

/// §1.7 and docs/decisions.md ("One encoding per event"): the backlog kept for new
/// subscriptions holds "at most 256 recent events and 4 MiB, counted the same way" as
/// control subscriptions, "an event counts twice its encoded size: the frame and its parsed
/// payload", and "Memory is charged by encoded size, so the bounds above are bounds on what
/// the daemon holds".
///
/// Gap: `SharedEvent::held_bytes` (supervisor/src/serve/broker/mod.rs) is `2 × frame.len()`,
/// but the parsed payload (`EventRecord::payload`, a `serde_json::Value`) costs 32 bytes per
/// JSON value: a payload `[0,0,0,...]` spends 2 bytes of frame per value, so the record is
/// 16× its frame. With 62 KB events the 4 MiB backlog holds 33 events whose records are ~1 MiB
/// each. The same factor applies to each control subscription's 8 MiB queue.
#[test]
fn the_backlog_holds_what_it_is_charged_for_whatever_the_payload_shape() {
    require_root();
    let daemon = Daemon::start_with_policy(policy());
    let script = r#"
wait_go()
body = json.dumps({"type": "publish", "topic": "bulk.zeros", "payload": [0] * 31000}, separators=(",", ":")).encode()
for i in range(80):
    sock.sendall(frame(body))
out(step="sent", bytes=len(body))
while recv(10) not in (None, "eof"):
    pass
"#;
    let plugin = raw_plugin("zeros", script, events(&["go".into()], &["bulk.zeros"]));
    daemon.start_plugin(&plugin);
    daemon.wait_attached("zeros", WAIT);
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(daemon.pid());
    daemon.publish("go", json!({}));
    let published = eventually(WAIT, || daemon.event_counters("zeros").is_some_and(|c| c.published + c.refused >= 80));
    assert!(published, "{:?}\n{}", daemon.event_counters("zeros"), daemon.logs_of("zeros"));
    std::thread::sleep(Duration::from_millis(500));
    let counters = daemon.event_counters("zeros");
    let grown = rss_kib(daemon.pid()).saturating_sub(before);
    // The documented backlog bound, plus the same 16 MiB of slack daemon_broker_load.rs allows.
    let allowance = 4 * 1024 + 16 * 1024;
    assert!(
        grown <= allowance,
        "the daemon grew by {grown} KiB holding a 4 MiB backlog of zero arrays (allowance \
         {allowance} KiB); counters {counters:?}"
    );
}

/// §1.4: `subscribed` is the "reply to every `subscribe` and `unsubscribe`"; §1.7: "a full
/// event inbox never swallows the answer to the plugin's own request".
///
/// Gap: `Publisher::reply` (supervisor/src/serve/plugins/instance_io.rs) encodes the reply
/// with `encode_with_limit(message, max_event_bytes)` and silently drops it when that fails.
/// A plugin whose whole subscription set does not fit its own `max_event_bytes` (the manifest
/// may set 1024 with 16 read grants of 100 bytes, and validation accepts it) never gets an
/// answer to any subscribe or unsubscribe. Passes if the manifest is refused instead.
#[test]
fn every_subscribe_is_answered_even_when_the_set_is_larger_than_the_plugins_cap() {
    require_root();
    let daemon = Daemon::start_with_policy(policy());
    let mut read: Vec<String> = (0..16).map(|i| format!("t{i:02}{}", "b".repeat(97))).collect();
    read.push("go".into());
    let script = r#"
wait_go()
send({"type": "unsubscribe", "topics": ["go"]})
got = []
while True:
    m = recv(5)
    if m is None or m == "eof":
        break
    got.append(m.get("type"))
out(step="answers", got=got)
"#;
    let mut extra = events(&read, &[]);
    extra["permissions"]["events"]["max_event_bytes"] = json!(1024);
    let plugin = raw_plugin("smallcap", script, extra);
    let manifest = plugin.manifest().display().to_string();
    let started = daemon.cli(&["start", &manifest, "--json"]);
    if !started.status.success() {
        return; // refusing such a manifest closes the gap too
    }
    daemon.wait_attached("smallcap", WAIT);
    daemon.publish("go", json!({}));
    let mut answers = None;
    eventually(WAIT, || {
        answers = daemon.json_lines_of("smallcap").into_iter().find(|l| l["step"] == "answers");
        answers.is_some()
    });
    let answers = answers.unwrap_or_else(|| panic!("no answers line:\n{}", daemon.logs_of("smallcap")));
    assert!(
        answers["got"].as_array().is_some_and(|got| got.iter().any(|t| t == "subscribed")),
        "the unsubscribe was never answered: {answers}"
    );
}

/// §2.5/§2.9: `subscribe_events` needs only read rights, takes ≤ 64 patterns and a backlog
/// ≤ 256, and each session is held to the policy's request rate (50/s by default); §1.7's
/// bound holds for "a control request's" latency too.
///
/// Gap: `Broker::subscribe` (supervisor/src/serve/broker/mod.rs) filters the whole backlog
/// with `pattern_wants` while holding the broker's mutex: up to 256 events × 64 patterns, each
/// `topic_matches` re-validating a 128-byte pattern, i.e. ~2 MB of validation per request
/// when nothing matches (`take(backlog)` never stops the scan early). The request rate is per
/// session and a uid may hold 64 sessions, so a read-only peer can keep the lock busy — and,
/// with the daemon's two workers, block every publish (and the worker it runs on).
#[test]
fn backlog_scans_of_a_read_only_subscriber_do_not_stall_publishing() {
    require_root();
    let daemon = Daemon::start();
    // 256 events in the backlog, from a plugin.
    let filler = raw_plugin(
        "filler",
        r#"
for i in range(256):
    send({"type": "publish", "topic": "energy.update", "payload": {"i": i}})
out(step="filled")
time.sleep(600)
"#,
        events(&[], &["energy.update"]),
    );
    daemon.start_plugin(&filler);
    assert!(eventually(WAIT, || daemon.event_counters("filler").is_some_and(|c| c.published >= 256)));

    let patterns: Vec<String> = (0..64).map(|i| format!("p{i:02}{}.*", "q".repeat(123))).collect();
    let scan = move |conn: &mut wf_protocol::control::Connection<std::os::unix::net::UnixStream>| {
        let args =
            wf_protocol::control::SubscribeEventsArgs { topics: Some(patterns.clone()), backlog: 256, follow: false };
        if let Ok(mut stream) = conn.open_stream(Call::SubscribeEvents(args)) {
            while let Ok(Some(_)) = stream.next_item() {}
        }
    };
    let single = {
        let mut conn = daemon.connect();
        let started = Instant::now();
        scan(&mut conn);
        started.elapsed().as_micros()
    };

    let mut reference = publish_latencies(&daemon, 30, Duration::from_millis(20));
    let reference_p99 = p99(&mut reference);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attackers: Vec<_> = (0..16)
        .map(|_| {
            let mut conn = daemon.connect();
            let (stop, scan) = (std::sync::Arc::clone(&stop), scan.clone());
            std::thread::spawn(move || {
                let mut scans = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    scan(&mut conn);
                    scans += 1;
                    std::thread::sleep(Duration::from_millis(20)); // within 50 requests/s
                }
                scans
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut flooded = publish_latencies(&daemon, 40, Duration::from_millis(50));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let scans: u64 = attackers.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    let flooded_p99 = p99(&mut flooded);
    let bound = (20 * reference_p99).max(50);
    assert!(
        flooded_p99 <= bound,
        "while a subscriber scanned the backlog ({scans} requests, one alone {single} µs), a \
         control publish took up to {flooded_p99} ms (unflooded p99 {reference_p99} ms, bound \
         {bound} ms): {flooded:?}"
    );
}
