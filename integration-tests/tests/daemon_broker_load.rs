//! The event broker of `wfsandbox serve` under load, with real sandboxed plugins: a flood (of
//! granted and of refused publishes) does not starve a well-behaved producer→consumer pair nor
//! the control socket, and a reader that never reads (a plugin or a control stream) costs the
//! daemon a bounded amount of memory while every other reader still gets everything.
//!
//! Latency bounds are ratios to a reference measured in the same test, with an absolute floor,
//! because the same tests run on a shared machine and inside a ~10-30× slower emulated VM.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wf_integration_tests::daemon::{eventually, publish_on, publish_pipelined, rss_kib, Daemon};
use wf_integration_tests::{require_root, PluginDir};
use wf_protocol::control::{Call, PluginState, StreamEndReason, StreamItem, SubscribeEventsArgs};

/// Long enough for a slow VM; only failures wait this long.
const WAIT: Duration = Duration::from_secs(120);
/// A flooded p99 may be this many times the unflooded one...
const LATENCY_RATIO: u64 = 20;
/// ...or this long, whichever is more.
const LATENCY_FLOOR_US: u64 = 50_000;

const FAST_RATE: fn() -> Value =
    || json!({ "events_per_second": 1_000_000, "burst": 1_000_000, "bytes_per_second": 1_073_741_824 });

/// The tests of this file load the machine (two cores): they run one at a time even under
/// `--test-threads=2`, so that one test's load does not land in another's latency measurement.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn events(read: &[&str], write: &[&str]) -> Value {
    json!({ "permissions": { "events": { "read": read, "write": write } } })
}

/// `events` with the manifest rate raised to the ceiling of [`load_policy`].
fn fast_events(read: &[&str], write: &[&str]) -> Value {
    let mut manifest = events(read, write);
    manifest["permissions"]["events"]["rate"] = FAST_RATE();
    manifest
}

/// The default policy with the event-rate ceilings raised (so a flood is CPU bound, not rate
/// limited) and a control request rate the test's own requests stay under.
fn load_policy() -> Value {
    json!({
        "sandbox": { "ceilings": { "max_event_rate": FAST_RATE() } },
        "authentication": { "rate_limit": { "requests_per_second": 100_000, "burst": 100_000 } },
    })
}

fn start_all(daemon: &Daemon, plugins: &[(&str, &PluginDir)]) {
    for (_, plugin) in plugins {
        daemon.start_plugin(plugin);
    }
    for (name, _) in plugins {
        daemon.wait_attached(name, WAIT);
    }
}

/// The `p`-th quantile of `samples` (nearest rank).
fn quantile(samples: &mut [u64], p: f64) -> u64 {
    samples.sort_unstable();
    let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// Round trips of `list` on one connection, in microseconds, one every 10 ms.
fn list_latencies(daemon: &Daemon, count: usize) -> Vec<u64> {
    let mut conn = daemon.connect();
    (0..count)
        .map(|_| {
            let started = Instant::now();
            conn.call(Call::List(Default::default())).expect("list");
            let took = started.elapsed().as_micros() as u64;
            std::thread::sleep(Duration::from_millis(10));
            took
        })
        .collect()
}

/// Runs a `pace` producer at `rate`/s for `seconds` and a `consume end` consumer, both named
/// after `prefix`, and returns the consumer's result once the producer's end marker arrived.
/// `during` runs while the pair runs.
fn run_pair(daemon: &Daemon, prefix: &str, rate: u32, seconds: u32, during: impl FnOnce()) -> (Value, Value) {
    let (data, go) = (format!("{prefix}.data"), format!("{prefix}.go"));
    let (consumer_name, producer_name) = (format!("{prefix}_consumer"), format!("{prefix}_producer"));
    let consumer = PluginDir::daemon_probe(&consumer_name, &["consume", "end", "120"], events(&[&data], &[]));
    let args = ["pace", &data, &rate.to_string(), &seconds.to_string()];
    let producer = PluginDir::daemon_probe(&producer_name, &args, events(&[&go], &[&data]));
    start_all(daemon, &[(&consumer_name, &consumer), (&producer_name, &producer)]);
    assert_eq!(daemon.publish(&go, json!({"go": true})), 1, "the go signal reached the producer");
    during();
    let result = daemon.probe_result(&consumer_name, WAIT);
    let produced = daemon.probe_result(&producer_name, WAIT);
    assert_eq!(result["ended_by"], "end", "{result}");
    assert_eq!(produced["sent"].as_u64(), Some(u64::from(rate * seconds)), "{produced}");
    assert_eq!(result["received"], produced["sent"], "none of the pair's events is lost: {result}");
    let clean = |k: &str| result[k].as_u64() == Some(0);
    assert!(clean("gaps") && clean("duplicates") && clean("out_of_order"), "{result}");
    (result, produced)
}

#[test]
fn a_flood_does_not_starve_a_paced_pair_nor_the_control_socket() {
    require_root();
    let _serial = one_at_a_time();
    let daemon = Daemon::start_with_policy(load_policy());
    let (rate, seconds) = (200, 5);

    let mut list_reference = Vec::new();
    let (reference, _) = run_pair(&daemon, "ref", rate, seconds, || list_reference = list_latencies(&daemon, 100));

    // A granted flood with a reader, and a flood of refused publishes, both as fast as the
    // plugins' CPU limits let them write.
    let flooder =
        PluginDir::daemon_probe("flooder", &["flood", "flood.data", "280"], fast_events(&[], &["flood.data"]));
    let refused = PluginDir::daemon_probe("refused", &["flood", "secret.data", "280"], fast_events(&[], &[]));
    let sink = PluginDir::daemon_probe("sink", &["consume", "stop", "280"], events(&["flood.data"], &[]));
    start_all(&daemon, &[("sink", &sink), ("flooder", &flooder), ("refused", &refused)]);
    let flowing = |name: &str, refusals: bool| {
        eventually(WAIT, || {
            daemon.event_counters(name).is_some_and(|c| if refusals { c.refused } else { c.published } > 10_000)
        })
    };
    assert!(flowing("flooder", false) && flowing("refused", true), "the floods are flowing");
    let before = (daemon.event_counters("flooder"), daemon.event_counters("refused"));

    let mut list_flooded = Vec::new();
    let (flooded, produced) = run_pair(&daemon, "fl", rate, seconds, || list_flooded = list_latencies(&daemon, 100));
    let after = (daemon.event_counters("flooder"), daemon.event_counters("refused"));
    for name in ["flooder", "refused", "sink"] {
        assert_eq!(daemon.status_of(name).plugin.state, PluginState::Running, "{name} flooded throughout");
    }
    let (published, refusals) = match (before, after) {
        ((Some(b0), Some(b1)), (Some(a0), Some(a1))) => (a0.published - b0.published, a1.refused - b1.refused),
        other => panic!("counters: {other:?}"),
    };
    let window = seconds as u64;
    eprintln!(
        "flood during the pair: {published} published ({}/s), {refusals} refused ({}/s); sink {:?}",
        published / window,
        refusals / window,
        daemon.event_counters("sink")
    );
    assert!(published > 2 * u64::from(rate) * window, "the flood outpaced the pair: {published} events");

    let us = |v: &Value, k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    let (ref_p99, fl_p99) = (us(&reference, "p99_us"), us(&flooded, "p99_us"));
    eprintln!(
        "pair latency µs: reference p50 {} p99 {} max {}; flooded p50 {} p99 {} max {}; producer late max {} µs",
        us(&reference, "p50_us"),
        ref_p99,
        us(&reference, "max_us"),
        us(&flooded, "p50_us"),
        fl_p99,
        us(&flooded, "max_us"),
        us(&produced, "late_max_us"),
    );
    let bound = (LATENCY_RATIO * ref_p99).max(LATENCY_FLOOR_US);
    assert!(fl_p99 <= bound, "flooded p99 {fl_p99} µs > {bound} µs (reference p99 {ref_p99} µs)");

    let (list_ref_p50, list_ref_p99) = (quantile(&mut list_reference, 0.5), quantile(&mut list_reference, 0.99));
    let (list_fl_p50, list_fl_p99) = (quantile(&mut list_flooded, 0.5), quantile(&mut list_flooded, 0.99));
    eprintln!("list µs: reference p50 {list_ref_p50} p99 {list_ref_p99}; flooded p50 {list_fl_p50} p99 {list_fl_p99}");
    let bound = (LATENCY_RATIO * list_ref_p99).max(LATENCY_FLOOR_US);
    assert!(list_fl_p99 <= bound, "flooded list p99 {list_fl_p99} µs > {bound} µs (reference {list_ref_p99} µs)");
}

/// Samples the RSS of `pid` every 20 ms on a thread and keeps the highest.
struct RssPeak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssPeak {
    fn watch(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&peak), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self { peak, stop, thread: Some(thread) }
    }

    fn finish(mut self, pid: u32) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peak.load(Ordering::Relaxed).max(rss_kib(pid))
    }
}

const BULK: u64 = 20_000;
const PAD: usize = 4096;
const KIB: u64 = 1024;

fn bulk_payload(seq: u64) -> Value {
    json!({"seq": seq, "pad": "x".repeat(PAD)})
}

/// Bytes of one bulk event frame as the broker queues it to a plugin.
fn bulk_frame_len() -> u64 {
    let frame = wf_protocol::encode_event("bulk.data", &bulk_payload(BULK), "control:0", 1 << 20).expect("frame");
    frame.len() as u64
}

fn sysctl_bytes(path: &str) -> u64 {
    std::fs::read_to_string(path).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(4 << 20)
}

/// What the daemon may keep in any case: the backlog of recent events for new subscriptions
/// (256 events, each held as its frame and its parsed record), plus allocator slack.
fn fixed_allowance_kib(frame: u64) -> u64 {
    (256 * frame * 2) / KIB + 16 * 1024
}

/// Polls `check` every 100 µs until it holds or `limit` passes.
fn spin_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !check() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    true
}

/// Counts the events of a control stream on a thread until it ends or a `{"stop": true}`: those
/// with a `seq` (and how many of them were duplicates or out of range), or the last `received`
/// a progress event reported.
fn count_stream(
    daemon: &Daemon,
    topics: &[&str],
) -> (Arc<AtomicU64>, std::thread::JoinHandle<(u64, Option<StreamEndReason>)>) {
    let count = Arc::new(AtomicU64::new(0));
    let mut conn = daemon.connect();
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let counted = Arc::clone(&count);
    let thread = std::thread::spawn(move || {
        let args = SubscribeEventsArgs { topics: Some(topics), backlog: 0, follow: true };
        let mut stream = conn.open_stream(Call::SubscribeEvents(args)).expect("subscribe_events");
        let _ = ready_tx.send(());
        let mut seen = std::collections::HashSet::new();
        let mut duplicates = 0;
        while let Ok(Some(item)) = stream.next_item() {
            let StreamItem::Event(event) = item else { continue };
            if let Some(seq) = event.payload["seq"].as_u64() {
                duplicates += u64::from(!seen.insert(seq) || seq >= BULK);
                counted.fetch_add(1, Ordering::Relaxed);
            } else if let Some(received) = event.payload["received"].as_u64() {
                counted.store(received, Ordering::Relaxed);
            } else if event.payload["stop"] == true {
                break;
            }
        }
        (duplicates, stream.end_reason())
    });
    ready_rx.recv_timeout(WAIT).expect("the stream opened");
    (count, thread)
}

#[test]
fn a_plugin_that_never_reads_costs_a_bounded_inbox_and_other_readers_get_everything() {
    require_root();
    let _serial = one_at_a_time();
    let daemon = Daemon::start_with_policy(load_policy());
    // `sleep` never touches its channel; the reader reports its progress on progress.reader.
    let stuck = PluginDir::daemon_probe("stuck", &["sleep", "280"], events(&["bulk.data"], &[]));
    let reader = PluginDir::daemon_probe(
        "reader",
        &["consume", "stop", "120", "0", "progress.reader"],
        events(&["bulk.data"], &["progress.reader"]),
    );
    start_all(&daemon, &[("stuck", &stuck), ("reader", &reader)]);
    let (progress, progress_thread) = count_stream(&daemon, &["progress.reader"]);
    let (watched, watcher_thread) = count_stream(&daemon, &["bulk.data"]);

    let pid = daemon.pid();
    std::thread::sleep(Duration::from_millis(200));
    let baseline = rss_kib(pid);
    let peak = RssPeak::watch(pid);
    let started = Instant::now();
    // Stay within what the readers' inboxes hold (the reader plugin reports every 32 events;
    // up to 32 requests are in the daemon and some in its socket), so that what they get
    // measures isolation, not their own speed. The publishes of one pipelining connection may
    // be reordered (see daemon_broker.rs), so only completeness is checked here.
    let pace = |seq: u64| {
        let behind = |count: &AtomicU64| seq.saturating_sub(count.load(Ordering::Relaxed));
        let paced = spin_until(WAIT, || behind(&progress) <= 64 && behind(&watched) <= 64);
        let (p, w) = (progress.load(Ordering::Relaxed), watched.load(Ordering::Relaxed));
        assert!(paced, "the readers stopped at {p} / {w} of {seq}");
    };
    let delivered = publish_pipelined(&daemon, "bulk.data", BULK, bulk_payload, pace);
    let took = started.elapsed();
    assert!(eventually(WAIT, || watched.load(Ordering::Relaxed) == BULK), "the control reader got everything");
    let peak = peak.finish(pid);

    let stuck_counters = daemon.event_counters("stuck").expect("stuck is connected");
    let reader_counters = daemon.event_counters("reader").expect("reader is connected");
    let frame = bulk_frame_len();
    let sndbuf = sysctl_bytes("/proc/sys/net/core/wmem_max");
    // The inbox (1 MiB or 256 events), what the socket holds, and the writer's 64 KiB batch.
    let queued_max = (1 << 20).min(256 * frame) + sndbuf + 2 * 64 * KIB;
    eprintln!(
        "never-reading plugin: {BULK} × {frame} B in {took:?}; RSS {baseline} KiB -> peak {peak} KiB (+{} KiB); stuck {stuck_counters:?}; reader {reader_counters:?}",
        peak.saturating_sub(baseline)
    );
    assert!(stuck_counters.dropped_full > 0, "{stuck_counters:?}");
    assert_eq!(stuck_counters.delivered + stuck_counters.dropped_full, BULK, "{stuck_counters:?}");
    assert!(stuck_counters.delivered * frame <= queued_max, "at most the inbox and socket: {stuck_counters:?}");
    assert_eq!((reader_counters.delivered, reader_counters.dropped_full), (BULK, 0), "{reader_counters:?}");
    let bound = (queued_max + sndbuf) / KIB + fixed_allowance_kib(frame);
    assert!(peak.saturating_sub(baseline) <= bound, "RSS grew {} KiB > {bound} KiB", peak - baseline);

    // Both readers got everything, in order.
    let mut stopper = daemon.connect();
    publish_on(&mut stopper, "bulk.data", json!({"stop": true}));
    let result = daemon.probe_result("reader", WAIT);
    assert_eq!(result["received"], BULK, "{result}");
    assert_eq!((result["duplicates"].as_u64(), result["last_seq"].as_u64()), (Some(0), Some(BULK - 1)), "{result}");
    let (duplicates, end) = watcher_thread.join().expect("watcher");
    assert_eq!((duplicates, end), (0, None), "the control reader's stream is still open");
    assert_eq!(delivered, 3 * BULK - stuck_counters.dropped_full, "what each publish answered");
    drop(progress_thread);
}

#[test]
fn a_control_stream_that_is_never_read_ends_lagged_and_costs_bounded_memory() {
    require_root();
    let _serial = one_at_a_time();
    let daemon = Daemon::start_with_policy(load_policy());
    let mut idle = daemon.connect();
    let args = SubscribeEventsArgs { topics: Some(vec!["bulk.data".into()]), backlog: 0, follow: true };
    let mut stream = idle.open_stream(Call::SubscribeEvents(args)).expect("subscribe_events");

    let pid = daemon.pid();
    let baseline = rss_kib(pid);
    let peak = RssPeak::watch(pid);
    let started = Instant::now();
    let delivered = publish_pipelined(&daemon, "bulk.data", BULK, bulk_payload, |_| {});
    let took = started.elapsed();
    assert!(delivered < BULK, "the idle stream stopped taking events: {delivered}");
    std::thread::sleep(Duration::from_millis(500));
    let peak = peak.finish(pid);
    let frame = bulk_frame_len();
    // The connection's outbox (4 MiB), the subscription's queue (8 MiB of frames, each also
    // held as a parsed record), the socket, and the fixed allowance.
    let sndbuf = sysctl_bytes("/proc/sys/net/core/wmem_max");
    let bound = (4 << 20) / KIB + 2 * (8 << 20) / KIB + sndbuf / KIB + fixed_allowance_kib(frame);
    eprintln!(
        "never-read control stream: {BULK} × {frame} B in {took:?}; RSS {baseline} KiB -> peak {peak} KiB (+{} KiB, bound {bound})",
        peak.saturating_sub(baseline)
    );
    assert!(peak.saturating_sub(baseline) <= bound, "RSS grew {} KiB > {bound} KiB", peak - baseline);

    let mut items = 0u64;
    let mut seen = std::collections::HashSet::new();
    while let Some(item) = stream.next_item().expect("stream item") {
        if let StreamItem::Event(event) = item {
            let seq = event.payload["seq"].as_u64();
            assert!(seq.is_some_and(|seq| seen.insert(seq)), "no duplicates: {seq:?}");
            items += 1;
        }
    }
    eprintln!("the idle stream had {items} items queued before it lagged ({delivered} publishes took it)");
    assert_eq!(stream.end_reason(), Some(StreamEndReason::Lagged));
    assert!(items < BULK, "it ended early rather than buffer everything: {items}");
    assert!(items <= delivered, "no more than the broker queued to it: {items} > {delivered}");
}
