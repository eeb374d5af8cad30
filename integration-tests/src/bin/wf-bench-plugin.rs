//! `wf-bench-plugin <mode> [options]`: the plugin `scripts/bench-events` runs under
//! `wfsandbox serve`, and the same producer and consumer over a raw socketpair as the
//! physical reference.
//!
//! Modes:
//! - `produce --count N --size BYTES [--rate R]`: publishes N events on `bench.ping`, as fast
//!   as the channel takes them or paced at R events/s (sleeping to an absolute schedule and
//!   sending whatever is due in small batches). Each payload is
//!   `{"t": CLOCK_MONOTONIC ns at send, "seq": n, "pad": "xx.."}`, padded so its JSON is BYTES
//!   long. Then one end marker on `bench.ping` (`{"end": true, "sent", "start_ns", "end_ns"}`)
//!   and, a moment later, `bench.result` `{"role": "producer", "sent", "denied", "cpu_us", ...}`;
//!   then it idles until stopped (so its cgroup's stats can still be read).
//! - `consume [--idle-ms MS] [--start-timeout-ms MS]`: publishes `bench.ready`, then counts
//!   `bench.ping` events (latency = CLOCK_MONOTONIC when the read returned − `t`) until the
//!   end marker, or until no event came for `--idle-ms` (the marker may be refused or dropped).
//!   Then one `bench.result`: `{"role": "consumer", "count", "first_ns", "last_ns", "p50_us",
//!   "p99_us", "max_us", "end_seen", "producer": marker or null, "cpu_us", ...}`, and it idles
//!   until stopped. `cpu_us` is the process's CPU time (CLOCK_PROCESS_CPUTIME_ID) so far.
//! - `socketpair --count N --size BYTES [--rate R] [--pingpong]`: the same producer and consumer
//!   on two threads of this process over a socketpair with the same framing; prints one JSON
//!   line. With `--pingpong` one frame at a time goes there and back (decoded at both ends)
//!   and the latency is the round trip / 2.
//!
//! CLOCK_MONOTONIC is the same inside and outside the sandbox (no time namespace), so the
//! producer's timestamps mean the same thing to the consumer and to the script.
//!
//! Frames are written by hand into a batch buffer (checked once against the strict decoder),
//! so that the producer costs little next to what it measures; the consumer decodes every frame
//! with `wf-protocol`'s strict decoder, as an SDK does. Started without arguments (as the daemon
//! starts every entry point), it takes them from `bench-args.json` in its working directory
//! (the plugin directory): a JSON array of strings.

use serde_json::{json, Value};
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wf_protocol::{FrameDecoder, PluginMessage, SupervisorMessage, WireMessage, DEFAULT_MAX_FRAME_BYTES};

const PING: &str = "bench.ping";
const READY: &str = "bench.ready";
const RESULT: &str = "bench.result";
/// A flood is written in chunks of about this many bytes.
const BATCH_BYTES: usize = 64 * 1024;
/// At most this many due events are written at once when pacing.
const PACED_BATCH: u64 = 16;
const READ_CHUNK: usize = 256 * 1024;
/// How long the producer waits for late refusals before reporting.
const DENIAL_GRACE: Duration = Duration::from_millis(200);

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        args = args_from_file();
    }
    let code = match Options::parse(&args).and_then(|opts| run(&opts)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("wf-bench-plugin: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn args_from_file() -> Vec<String> {
    let Ok(text) = std::fs::read_to_string("bench-args.json") else { return Vec::new() };
    serde_json::from_str(&text).unwrap_or_default()
}

type Result<T> = std::result::Result<T, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Produce,
    Consume,
    Socketpair,
}

#[derive(Debug, Clone)]
struct Options {
    mode: Mode,
    count: u64,
    size: usize,
    rate: Option<u64>,
    idle_ms: u64,
    start_timeout_ms: u64,
    pingpong: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mode = match args.first().map(String::as_str) {
            Some("produce") => Mode::Produce,
            Some("consume") => Mode::Consume,
            Some("socketpair") => Mode::Socketpair,
            other => {
                return Err(format!("usage: wf-bench-plugin produce|consume|socketpair [options] (got {other:?})"))
            }
        };
        let mut opts = Options {
            mode,
            count: 1000,
            size: 64,
            rate: None,
            idle_ms: 2000,
            start_timeout_ms: 30_000,
            pingpong: false,
        };
        let mut rest = args[1..].iter();
        while let Some(flag) = rest.next() {
            if flag == "--pingpong" {
                opts.pingpong = true;
                continue;
            }
            let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number: u64 = value.parse().map_err(|_| format!("{flag}: {value:?} is not a whole number"))?;
            match flag.as_str() {
                "--count" => opts.count = number,
                "--size" => opts.size = usize::try_from(number).map_err(|_| "--size out of range".to_owned())?,
                "--rate" if number > 0 => opts.rate = Some(number),
                "--idle-ms" => opts.idle_ms = number.max(1),
                "--start-timeout-ms" => opts.start_timeout_ms = number.max(1),
                _ => return Err(format!("unknown or bad option {flag} {value}")),
            }
        }
        Ok(opts)
    }
}

fn run(opts: &Options) -> Result<()> {
    match opts.mode {
        Mode::Produce => produce_mode(opts),
        Mode::Consume => consume_mode(opts),
        Mode::Socketpair if opts.pingpong => pingpong_mode(opts),
        Mode::Socketpair => socketpair_mode(opts),
    }
}

// ---------------------------------------------------------------------------- clock

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time this process has used (every thread, user and system), in µs.
fn cpu_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: as in now_ns.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

fn sleep_until(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: an absolute sleep on CLOCK_MONOTONIC; ts is valid, no remainder is needed.
    while unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut()) }
        == libc::EINTR
    {}
}

/// A paced sender wakes within a few µs of its schedule instead of the default 50 µs slack.
fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer; failure only leaves the default slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

// ---------------------------------------------------------------------------- frames

fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Writes `publish` frames on `bench.ping` whose payload JSON is `size` bytes long (or as
/// short as the timestamp allows, if `size` is smaller).
struct PingFrames {
    size: usize,
    pad: String,
}

/// `{"t":` + `,"seq":` + `,"pad":"` + `"}`
const PAYLOAD_OVERHEAD: usize = 5 + 7 + 8 + 2;
const FRAME_PREFIX: &str = r#"{"type":"publish","topic":"bench.ping","payload":"#;

impl PingFrames {
    fn new(size: usize, max_frame: u32) -> Result<Self> {
        let frames = PingFrames { size, pad: "x".repeat(size) };
        // The hand-written frame must be exactly what the strict decoder accepts.
        let mut frame = Vec::new();
        let t = now_ns();
        frames.append(&mut frame, 7, t);
        let body = &frame[4..];
        if frame[..4] != (body.len() as u32).to_be_bytes() {
            return Err("hand-written frame has a wrong length prefix".to_owned());
        }
        if body.len() > max_frame as usize {
            return Err(format!("a {size}-byte payload makes a {}-byte frame, over the cap {max_frame}", body.len()));
        }
        match wf_protocol::decode_body::<PluginMessage>(body, max_frame) {
            Ok(PluginMessage::Publish { topic, payload, .. })
                if topic == PING
                    && payload["seq"] == 7
                    && payload["t"] == t
                    && payload.to_string().len() == size.max(PAYLOAD_OVERHEAD + digits(t) + 1) =>
            {
                Ok(frames)
            }
            other => Err(format!("hand-written frame does not decode as intended: {other:?}")),
        }
    }

    fn append(&self, out: &mut Vec<u8>, seq: u64, t: u64) {
        let pad = self.size.saturating_sub(PAYLOAD_OVERHEAD + digits(t) + digits(seq));
        let body_len = FRAME_PREFIX.len() + PAYLOAD_OVERHEAD + digits(t) + digits(seq) + pad + 1;
        out.extend_from_slice(&(body_len as u32).to_be_bytes());
        out.extend_from_slice(FRAME_PREFIX.as_bytes());
        let _ = write!(out, r#"{{"t":{t},"seq":{seq},"pad":""#);
        out.extend_from_slice(&self.pad.as_bytes()[..pad]);
        out.extend_from_slice(br#""}}"#);
    }
}

fn frame(msg: &PluginMessage, max: u32) -> Result<Vec<u8>> {
    wf_protocol::encode_with_limit(msg, max).map_err(|e| format!("encoding: {e}"))
}

fn publish(w: &mut impl Write, topic: &str, payload: Value, max: u32) -> Result<()> {
    w.write_all(&frame(&PluginMessage::publish(topic, payload), max)?).map_err(|e| format!("publishing: {e}"))
}

fn max_frame_bytes() -> u32 {
    std::env::var("WFSANDBOX_MAX_FRAME_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_MAX_FRAME_BYTES)
}

// ---------------------------------------------------------------------------- producer

#[derive(Debug, Clone, Copy)]
struct Produced {
    sent: u64,
    start_ns: u64,
    end_ns: u64,
}

fn produce(w: &mut impl Write, frames: &PingFrames, count: u64, rate: Option<u64>) -> Result<Produced> {
    let write_err = |e: io::Error| format!("writing events: {e}");
    let mut buf = Vec::with_capacity(BATCH_BYTES + frames.size + 256);
    let start_ns = now_ns();
    match rate {
        None => {
            for seq in 0..count {
                frames.append(&mut buf, seq, now_ns());
                if buf.len() >= BATCH_BYTES {
                    w.write_all(&buf).map_err(write_err)?;
                    buf.clear();
                }
            }
        }
        Some(rate) => {
            tighten_timer_slack();
            let due = |seq: u64| start_ns + (u128::from(seq) * 1_000_000_000 / u128::from(rate)) as u64;
            let mut seq = 0;
            while seq < count {
                if now_ns() < due(seq) {
                    sleep_until(due(seq));
                }
                let now = now_ns();
                let mut batch = 0;
                while seq < count && batch < PACED_BATCH && due(seq) <= now {
                    frames.append(&mut buf, seq, now_ns());
                    seq += 1;
                    batch += 1;
                }
                w.write_all(&buf).map_err(write_err)?;
                buf.clear();
            }
        }
    }
    w.write_all(&buf).map_err(write_err)?;
    Ok(Produced { sent: count, start_ns, end_ns: now_ns() })
}

fn end_marker(p: &Produced) -> Value {
    json!({ "end": true, "sent": p.sent, "start_ns": p.start_ns, "end_ns": p.end_ns })
}

/// Adopts the channel fd and reads the hello.
fn channel() -> Result<(UnixStream, Vec<u8>, u32)> {
    let fd: i32 = std::env::var("WFSANDBOX_CHANNEL_FD").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    // SAFETY: F_GETFD only checks that the fd is open.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(format!("no channel on fd {fd}"));
    }
    // SAFETY: the fd is open and is the channel this process was given; nothing else owns it.
    let mut stream = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let max = max_frame_bytes();
    let mut reader = Frames::<SupervisorMessage>::new(max);
    match reader.next(&mut stream)? {
        Some(SupervisorMessage::Hello { protocol: 1, .. }) => Ok((stream, reader.leftover(), max)),
        other => Err(format!("expected a version 1 hello, got {other:?}")),
    }
}

fn produce_mode(opts: &Options) -> Result<()> {
    let (mut stream, leftover, max) = channel()?;
    let frames = PingFrames::new(opts.size, max)?;
    // Refusals (a rate limit, say) come back as `denied` frames: count them, and keep the
    // daemon's side of the socket drained.
    let denied = Arc::new(AtomicU64::new(0));
    let mut reader = stream.try_clone().map_err(|e| format!("cloning the channel: {e}"))?;
    let counter = Arc::clone(&denied);
    let drain = std::thread::spawn(move || {
        let mut frames = Frames::<SupervisorMessage>::with_leftover(max, &leftover);
        while let Ok(Some(msg)) = frames.next(&mut reader) {
            if let SupervisorMessage::Denied { .. } = msg {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let produced = produce(&mut stream, &frames, opts.count, opts.rate)?;
    publish(&mut stream, PING, end_marker(&produced), max)?;
    std::thread::sleep(DENIAL_GRACE);
    let result = json!({
        "role": "producer", "sent": produced.sent, "denied": denied.load(Ordering::Relaxed),
        "start_ns": produced.start_ns, "end_ns": produced.end_ns, "size": opts.size, "rate": opts.rate,
        "cpu_us": cpu_us(),
    });
    publish(&mut stream, RESULT, result, max)?;
    // Stay (idle) until stopped, so that the script can still read this cgroup's stats.
    let _ = drain.join();
    Ok(())
}

// ---------------------------------------------------------------------------- consumer

/// Reads whole frames of `M` from a stream through a large buffer.
struct Frames<M> {
    decoder: FrameDecoder,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    _message: std::marker::PhantomData<M>,
}

impl<M: WireMessage> Frames<M> {
    fn new(max: u32) -> Self {
        Self::with_leftover(max, &[])
    }

    /// A reader that first frames `leftover` (bytes an earlier reader took but did not use).
    fn with_leftover(max: u32, leftover: &[u8]) -> Self {
        let mut buf = vec![0; READ_CHUNK.max(leftover.len())];
        buf[..leftover.len()].copy_from_slice(leftover);
        let decoder = FrameDecoder::new(max);
        Self { decoder, buf, start: 0, end: leftover.len(), _message: std::marker::PhantomData }
    }

    /// The next message from what is buffered, without reading.
    fn buffered(&mut self) -> Result<Option<M>> {
        loop {
            if let Some(msg) = self.decoder.next_frame::<M>().map_err(|e| format!("bad frame: {e}"))? {
                return Ok(Some(msg));
            }
            if self.start == self.end {
                return Ok(None);
            }
            self.start += self.decoder.push(&self.buf[self.start..self.end]);
        }
    }

    /// Reads once into the buffer (everything buffered must have been taken). `Ok(false)` at
    /// end of stream.
    fn fill(&mut self, r: &mut impl Read) -> io::Result<bool> {
        let n = r.read(&mut self.buf)?;
        self.start = 0;
        self.end = n;
        if n == 0 {
            self.decoder.finish().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        }
        Ok(n > 0)
    }

    /// The next message, reading as needed; `None` at end of stream.
    fn next(&mut self, r: &mut impl Read) -> Result<Option<M>> {
        loop {
            if let Some(msg) = self.buffered()? {
                return Ok(Some(msg));
            }
            if !self.fill(r).map_err(|e| format!("reading: {e}"))? {
                return Ok(None);
            }
        }
    }

    /// Bytes read but not yet framed (the tail after the hello).
    fn leftover(&self) -> Vec<u8> {
        self.buf[self.start..self.end].to_vec()
    }
}

/// A message that may carry a `bench.ping` payload: an event from the broker, or (over the
/// raw socketpair) the producer's publish itself.
trait Inbound: WireMessage {
    fn ping(self) -> Option<Value>;
}

impl Inbound for SupervisorMessage {
    fn ping(self) -> Option<Value> {
        match self {
            SupervisorMessage::Event { topic, payload, .. } if topic == PING => Some(payload),
            _ => None,
        }
    }
}

impl Inbound for PluginMessage {
    fn ping(self) -> Option<Value> {
        match self {
            PluginMessage::Publish { topic, payload, .. } if topic == PING => Some(payload),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct Consumed {
    count: u64,
    first_ns: Option<u64>,
    last_ns: Option<u64>,
    latencies_ns: Vec<u64>,
    out_of_order: u64,
    marker: Option<Value>,
    ended_by: &'static str,
    /// Events later than [`SLOW_NS`].
    slow: u64,
    /// When stalls began: (ms after the first receive, latency µs) of the first slow event after
    /// at least [`EPISODE_GAP_NS`] without one, at most [`MAX_EPISODES`].
    slow_episodes: Vec<(u64, u64)>,
    last_slow_ns: u64,
}

const SLOW_NS: u64 = 1_000_000;
const EPISODE_GAP_NS: u64 = 5_000_000;
const MAX_EPISODES: usize = 100;

impl Consumed {
    fn record(&mut self, payload: &Value, now: u64, next_seq: &mut u64) {
        let t = payload["t"].as_u64().unwrap_or(now);
        let seq = payload["seq"].as_u64().unwrap_or(0);
        if seq < *next_seq {
            self.out_of_order += 1;
        }
        *next_seq = seq + 1;
        self.count += 1;
        self.first_ns.get_or_insert(now);
        self.last_ns = Some(now);
        let latency = now.saturating_sub(t);
        self.latencies_ns.push(latency);
        if latency >= SLOW_NS {
            self.slow += 1;
            let first = self.first_ns.unwrap_or(now);
            if self.slow_episodes.len() < MAX_EPISODES && (self.slow == 1 || now - self.last_slow_ns >= EPISODE_GAP_NS)
            {
                self.slow_episodes.push(((now - first) / 1_000_000, latency / 1000));
            }
            self.last_slow_ns = now;
        }
    }

    fn summary(mut self) -> Value {
        self.latencies_ns.sort_unstable();
        let pick = |q: f64| {
            let n = self.latencies_ns.len();
            (n > 0).then(|| self.latencies_ns[((q * (n - 1) as f64).round() as usize).min(n - 1)] as f64 / 1000.0)
        };
        json!({
            "role": "consumer", "count": self.count, "first_ns": self.first_ns, "last_ns": self.last_ns,
            "p50_us": pick(0.5), "p99_us": pick(0.99), "max_us": pick(1.0), "out_of_order": self.out_of_order,
            "end_seen": self.marker.is_some(), "ended_by": self.ended_by, "producer": self.marker,
            "over_1ms": self.slow, "slow_episodes": self.slow_episodes,
        })
    }
}

/// Counts pings until the end marker, end of stream, or `idle` without one (`start` before
/// the first).
fn consume<M: Inbound>(stream: &mut UnixStream, mut frames: Frames<M>, idle: Duration, start: Duration) -> Consumed {
    let mut out = Consumed::default();
    let mut next_seq = 0;
    let mut waiting_for_first = true;
    let _ = stream.set_read_timeout(Some(start));
    loop {
        let now = now_ns();
        loop {
            match frames.buffered() {
                Ok(Some(msg)) => match msg.ping() {
                    Some(payload) if payload.get("end").is_some() => {
                        out.marker = Some(payload);
                        out.ended_by = "end_marker";
                        return out;
                    }
                    Some(payload) => out.record(&payload, now, &mut next_seq),
                    None => {}
                },
                Ok(None) => break,
                Err(_) => {
                    out.ended_by = "bad_frame";
                    return out;
                }
            }
        }
        if waiting_for_first && out.count > 0 {
            waiting_for_first = false;
            let _ = stream.set_read_timeout(Some(idle));
        }
        match frames.fill(stream) {
            Ok(true) => {}
            Ok(false) => {
                out.ended_by = "end_of_stream";
                return out;
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                out.ended_by = if out.count == 0 { "start_timeout" } else { "idle_timeout" };
                return out;
            }
            Err(_) => {
                out.ended_by = "read_error";
                return out;
            }
        }
    }
}

fn consume_mode(opts: &Options) -> Result<()> {
    let (mut stream, leftover, max) = channel()?;
    let frames = Frames::<SupervisorMessage>::with_leftover(max, &leftover);
    // The daemon reads this only after it has attached this instance to the broker: once the
    // script sees `bench.ready`, every later `bench.ping` is offered to this consumer.
    publish(&mut stream, READY, json!({ "pid": std::process::id() }), max)?;
    let idle = Duration::from_millis(opts.idle_ms);
    let consumed = consume(&mut stream, frames, idle, Duration::from_millis(opts.start_timeout_ms));
    let mut summary = consumed.summary();
    summary["cpu_us"] = json!(cpu_us());
    publish(&mut stream, RESULT, summary, max)?;
    // Stay (idle) until stopped, so that the script can still read this cgroup's stats.
    let _ = stream.set_read_timeout(None);
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}

// ---------------------------------------------------------------------------- socketpair

fn socketpair_mode(opts: &Options) -> Result<()> {
    let max = max_frame_bytes();
    let frames = PingFrames::new(opts.size, max)?;
    let (mut producer, mut consumer) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let idle = Duration::from_millis(opts.idle_ms);
    let start = Duration::from_millis(opts.start_timeout_ms);
    let reader = std::thread::spawn(move || consume(&mut consumer, Frames::<PluginMessage>::new(max), idle, start));
    let produced = produce(&mut producer, &frames, opts.count, opts.rate)?;
    publish(&mut producer, PING, end_marker(&produced), max)?;
    let consumed = reader.join().map_err(|_| "the consumer thread panicked".to_owned())?;
    let producer = json!({
        "role": "producer", "sent": produced.sent, "denied": 0, "start_ns": produced.start_ns,
        "end_ns": produced.end_ns, "size": opts.size, "rate": opts.rate,
    });
    // Both threads: the producer's and the consumer's CPU time together.
    let cpu = cpu_us();
    println!(
        "{}",
        json!({ "mode": "socketpair", "producer": producer, "consumer": consumed.summary(), "cpu_us": cpu })
    );
    Ok(())
}

fn pingpong_mode(opts: &Options) -> Result<()> {
    let max = max_frame_bytes();
    let frames = PingFrames::new(opts.size, max)?;
    let (mut near, mut far) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    // The far end decodes each frame, as a consumer does, and sends it back.
    let echo = std::thread::spawn(move || -> Result<()> {
        let mut frames = Frames::<PluginMessage>::new(max);
        while let Some(msg) = frames.next(&mut far)? {
            // Re-encoded from what was decoded, as the broker does before passing an event on.
            let payload = msg.ping().ok_or("not a ping")?;
            far.write_all(&frame(&PluginMessage::publish(PING, payload), max)?).map_err(|e| format!("echo: {e}"))?;
        }
        Ok(())
    });
    let mut replies = Frames::<PluginMessage>::new(max);
    let mut buf = Vec::new();
    let mut half_rtt = Vec::with_capacity(opts.count as usize);
    for seq in 0..opts.count {
        buf.clear();
        let t = now_ns();
        frames.append(&mut buf, seq, t);
        near.write_all(&buf).map_err(|e| format!("ping: {e}"))?;
        let reply = replies.next(&mut near)?.and_then(Inbound::ping).ok_or("no pong")?;
        if reply["seq"] != seq {
            return Err(format!("pong {} for ping {seq}", reply["seq"]));
        }
        half_rtt.push((now_ns() - t) / 2);
    }
    drop(near);
    echo.join().map_err(|_| "the echo thread panicked".to_owned())??;
    half_rtt.sort_unstable();
    let n = half_rtt.len();
    let pick = |q: f64| (n > 0).then(|| half_rtt[((q * (n - 1) as f64).round() as usize).min(n - 1)] as f64 / 1000.0);
    println!(
        "{}",
        json!({ "mode": "pingpong", "count": n, "size": opts.size,
                "p50_us": pick(0.5), "p99_us": pick(0.99), "max_us": pick(1.0) })
    );
    Ok(())
}
