//! Violations, live: `list_violations` with `follow` and `wfsandbox violations --follow`
//! against a real `wfsandbox serve` and sandboxed plugins that publish where they may not (a
//! `topic_denied` violation of the broker layer each time, within the per-instance budget of
//! 20 records and 16 KiB of detail a second).

use serde_json::{json, Value};

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use wf_integration_tests::daemon::{eventually, rss_kib, stdout_lines, Daemon};
use wf_integration_tests::{require_root, wfsandbox, PluginDir};
use wf_protocol::control::{
    encode_stream_item, Call, ClientError, ControlError, Reply, StreamEndReason, StreamItem, ViolationsArgs,
};

/// Long enough for a slow VM; only failures wait this long.
const WAIT: Duration = Duration::from_secs(30);

fn follow_call(name: Option<&str>) -> Call {
    Call::ListViolations(ViolationsArgs { name: name.map(str::to_owned), limit: Some(10), follow: true })
}

/// A `scripted` plugin named `name` that reads its `cmd.<name>` topic and may write nothing.
fn scripted(name: &str) -> PluginDir {
    let permissions = json!({ "permissions": { "events": { "read": [format!("cmd.{name}")], "write": [] } } });
    PluginDir::daemon_probe(name, &["scripted", "120"], permissions)
}

/// Makes the scripted plugin `name` publish on `topic`, which it is not granted.
fn misbehave(daemon: &Daemon, name: &str, topic: &str) {
    let command = json!({ "cmd": "publish", "topic": topic, "payload": { "n": 1 } });
    assert_eq!(daemon.publish(&format!("cmd.{name}"), command), 1, "the command reached {name}");
}

/// `wfsandbox violations culprit --follow --json` started before the culprit misbehaves prints
/// its violation within seconds, with every field; a bystander's violations are not printed;
/// Ctrl-C ends the command with status 0.
#[test]
fn the_cli_follows_one_plugins_violations_as_they_happen() {
    require_root();
    let daemon = Daemon::start();
    let (culprit, bystander) = (scripted("culprit"), scripted("bystander"));
    for (name, plugin) in [("culprit", &culprit), ("bystander", &bystander)] {
        daemon.start_plugin(plugin);
        daemon.wait_attached(name, WAIT);
    }
    let mut cli = Command::new(wfsandbox())
        .arg("--socket")
        .arg(daemon.socket())
        .args(["violations", "culprit", "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the CLI");
    let lines = stdout_lines(&mut cli);
    // Give the CLI time to subscribe; if it were late it would still print later violations.
    std::thread::sleep(Duration::from_millis(300));
    assert!(lines.try_recv().is_err(), "nothing was recorded yet, so nothing is printed");

    let started = Instant::now();
    let first = loop {
        misbehave(&daemon, "bystander", "secret.bystander");
        misbehave(&daemon, "culprit", "secret.culprit");
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) {
            break line;
        }
        assert!(started.elapsed() < WAIT, "the CLI printed nothing:\n{}", daemon.log());
    };
    assert!(started.elapsed() < Duration::from_secs(5), "the violation took {:?} to be printed", started.elapsed());
    let violation: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{first}: {e}"));
    let instance = daemon.status_of("culprit").plugin.instance.expect("the culprit's instance");
    assert_eq!(violation["plugin"], "culprit", "{violation}");
    assert_eq!(violation["instance"], instance.as_str(), "{violation}");
    assert_eq!((&violation["layer"], &violation["kind"]), (&json!("broker"), &json!("topic_denied")), "{violation}");
    assert_eq!(violation["detail"]["topic"], "secret.culprit", "{violation}");
    assert_eq!(violation["rule"], "/permissions/events/write", "{violation}");
    assert_eq!(violation["action"], "deny", "{violation}");
    assert!(violation["time_ms"].is_u64() && violation["time"].is_string(), "{violation}");

    // The filter: the bystander misbehaves more, the culprit once more; only the culprit shows.
    for _ in 0..3 {
        misbehave(&daemon, "bystander", "secret.bystander");
    }
    misbehave(&daemon, "culprit", "secret.again");
    let mut printed = vec![violation];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !printed.iter().any(|v| v["detail"]["topic"] == "secret.again") && Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            printed.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}")));
        }
    }
    assert!(printed.iter().any(|v| v["detail"]["topic"] == "secret.again"), "{printed:?}");
    assert!(printed.iter().all(|v| v["plugin"] == "culprit"), "another plugin's violation was printed: {printed:?}");
    let bystanders = daemon.violations_of("bystander");
    assert!(bystanders.len() >= 4, "the bystander's violations were recorded, just not followed: {bystanders:?}");

    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(cli.id() as i32, libc::SIGINT) };
    let status = cli.wait().expect("the CLI ends");
    assert_eq!(status.code(), Some(0), "Ctrl-C ends `violations --follow` with success: {status:?}");
}

/// A topic the broker refuses as invalid whose recorded copy is as large as the budget allows:
/// 256 control characters, each written as a 6-byte JSON escape.
fn heavy_topic() -> String {
    "\u{1}".repeat(300)
}

/// One follower never reads while plugins cause violations: it ends `lagged` once its
/// connection's queue (4 MiB) is full, the daemon's memory stays bounded, and a follower that
/// reads goes on receiving every violation.
#[test]
fn a_follower_that_never_reads_ends_lagged_and_slows_nobody() {
    require_root();
    const PLUGINS: usize = 20;
    /// More than the slow follower's queue (4 MiB) and its socket's buffer can hold.
    const ENOUGH_BYTES: u64 = 6 << 20;
    let daemon = Daemon::start();
    let rss_before = rss_kib(daemon.pid());

    // The slow follower opens its stream, then reads nothing until told to.
    let (opened_tx, opened) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let (drained_tx, drained) = mpsc::channel();
    let mut slow_connection = daemon.connect();
    std::thread::spawn(move || {
        let mut slow = slow_connection.open_stream(follow_call(None)).expect("the slow follower");
        let _ = opened_tx.send(());
        let _ = go_rx.recv();
        let mut count = 0u64;
        while let Ok(Some(_)) = slow.next_item() {
            count += 1;
        }
        let _ = drained_tx.send((count, slow.end_reason()));
    });
    opened.recv_timeout(WAIT).expect("the slow follower's stream opened");

    let (stop, received_bytes, received_items) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut fast_connection = daemon.connect();
    let fast = {
        let (stop, bytes, items) = (Arc::clone(&stop), Arc::clone(&received_bytes), Arc::clone(&received_items));
        std::thread::spawn(move || {
            let mut stream = fast_connection.open_stream(follow_call(None)).expect("the reading follower");
            while !stop.load(Ordering::Acquire) {
                match stream.next_item().expect("an item") {
                    Some(item @ StreamItem::Violation { .. }) => {
                        let frame = encode_stream_item(stream.id(), &item).expect("encodable");
                        bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
                        items.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(other) => panic!("not a violation: {other:?}"),
                    None => return stream.end_reason(),
                }
            }
            Some(stream.cancel().expect("cancel the reading follower"))
        })
    };

    let topic = heavy_topic();
    let rate = json!({ "permissions": { "events": { "rate": { "bytes_per_second": 65_536 } } } });
    let plugins: Vec<PluginDir> = (0..PLUGINS)
        .map(|n| PluginDir::daemon_probe(&format!("flooder{n}"), &["publish-many", "100000000", &topic], rate.clone()))
        .collect();
    let started = Instant::now();
    for plugin in &plugins {
        daemon.start_plugin(plugin);
    }
    let flowed = eventually(Duration::from_secs(40), || received_bytes.load(Ordering::Relaxed) >= ENOUGH_BYTES);
    let (bytes, items) = (received_bytes.load(Ordering::Relaxed), received_items.load(Ordering::Relaxed));
    assert!(flowed, "only {bytes} bytes ({items} violations) in {:?}:\n{}", started.elapsed(), daemon.log());
    let rss_during = rss_kib(daemon.pid());

    // The reading follower is not held back by the one that lagged.
    let later = eventually(Duration::from_secs(5), || received_items.load(Ordering::Relaxed) > items + 50);
    assert!(later, "the reading follower stopped receiving after {items} violations");
    stop.store(true, Ordering::Release);

    // Now read the slow one: what was queued, then its end.
    go.send(()).expect("the slow follower waits");
    let (slow_items, slow_end) = drained.recv_timeout(WAIT).expect("the slow follower's stream ends");
    assert_eq!(slow_end, Some(StreamEndReason::Lagged), "after {slow_items} violations");
    let fast_items = received_items.load(Ordering::Relaxed);
    assert!(slow_items < fast_items, "the slow follower got {slow_items} of {fast_items}");
    // Nothing waits for a slow follower: at most its queue and socket buffer were filled.
    assert!(slow_items > 1000, "the slow follower was dropped before its queue filled: {slow_items}");

    let growth_kib = rss_during.saturating_sub(rss_before);
    assert!(growth_kib < 64 * 1024, "the daemon grew {growth_kib} KiB ({rss_before} → {rss_during} KiB)");
    let reading_end = fast.join().expect("the reading follower");
    assert!(
        matches!(reading_end, Some(StreamEndReason::Cancelled)),
        "the reading follower ended {reading_end:?}, not by its cancel"
    );
    println!(
        "{PLUGINS} plugins: {bytes} bytes, {fast_items} violations to the reader in {:?}; the slow follower got \
         {slow_items} before lagging; daemon RSS {rss_before} → {rss_during} KiB",
        started.elapsed()
    );
}

/// `cancel` ends a followed stream (`cancelled`), the connection goes on, and a connection may
/// not open more streams than its cap.
#[test]
fn cancel_ends_a_followed_stream_and_the_stream_cap_applies() {
    require_root();
    let daemon = Daemon::start();
    let mut connection = daemon.connect();
    let stream = connection.open_stream(follow_call(Some("nobody"))).expect("follow");
    match stream.reply() {
        Reply::ListViolations(recorded) => assert!(recorded.violations.is_empty() && !recorded.truncated),
        other => panic!("not a list_violations result: {other:?}"),
    }
    assert_eq!(stream.cancel().expect("cancel"), StreamEndReason::Cancelled);
    assert!(matches!(connection.call(Call::List(Default::default())), Ok(Reply::List(_))), "the session goes on");

    // Streams left open (never cancelled) count against the connection's cap of 8.
    let mut capped = daemon.connect();
    let mut refused = None;
    for n in 0..9 {
        match capped.open_stream(follow_call(None)) {
            Ok(_) => {}
            Err(error) => {
                refused = Some((n, error));
                break;
            }
        }
    }
    let Some((opened, ClientError::Control(ControlError::RateLimited { .. }))) = refused else {
        panic!("a ninth stream was not refused: {refused:?}");
    };
    assert_eq!(opened, 8);
}
