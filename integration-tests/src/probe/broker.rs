//! Probes that exercise the daemon's event broker through the plugin channel, speaking
//! `wf-protocol` directly (not the SDK): scripted subscribe/unsubscribe/publish, a paced
//! producer with CLOCK_MONOTONIC timestamps, a consumer that checks order and measures
//! latency, and a flood. CLOCK_MONOTONIC is shared with the host (no time namespace), so the
//! test can compare the timestamps with its own clock.

use super::args::{Args, UsageError};
use super::outcome::Outcome;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use wf_protocol::{FrameDecoder, PluginMessage, SupervisorMessage, DEFAULT_MAX_FRAME_BYTES};

const READ_CHUNK: usize = 64 * 1024;
/// How long a probe waits for its hello.
const HELLO_WAIT: Duration = Duration::from_secs(30);
/// How long `pace` waits for the event that starts it.
const GO_WAIT: Duration = Duration::from_secs(120);
/// A flood is written in batches of about this many bytes.
const FLOOD_BATCH_BYTES: usize = 64 * 1024;
/// `consume` reports progress every this many events.
const PROGRESS_EVERY: u64 = 32;
/// How long `pace` reads for late refusals after its end marker.
const DENIAL_GRACE: Duration = Duration::from_millis(200);

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

enum Received {
    Message(SupervisorMessage),
    Eof,
    Timeout,
}

/// The plugin channel, decoded with `wf-protocol`'s strict decoder.
struct Channel {
    stream: UnixStream,
    decoder: FrameDecoder,
    pending: Vec<u8>,
    start: usize,
    cap: u32,
}

impl Channel {
    fn open() -> Result<Self, Outcome> {
        let fd = std::env::var(wf_protocol::CHANNEL_FD_ENV)
            .ok()
            .map_or(Some(wf_protocol::DEFAULT_CHANNEL_FD), |v| v.parse::<i32>().ok().filter(|fd| *fd >= 0))
            .ok_or_else(|| Outcome::failure(libc::EBADF).with("step", "channel fd"))?;
        // SAFETY: F_GETFD only checks that the fd is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Outcome::failure(super::outcome::last_errno()).with("step", "channel fd"));
        }
        let cap = std::env::var(wf_protocol::MAX_FRAME_BYTES_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_FRAME_BYTES);
        // SAFETY: the fd is open and is the channel this process was given.
        let stream = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(Self { stream, decoder: FrameDecoder::new(cap), pending: Vec::new(), start: 0, cap })
    }

    /// Opens the channel and reads the hello.
    fn connect() -> Result<(Self, Value), Outcome> {
        let mut channel = Self::open()?;
        match channel.recv(Some(Instant::now() + HELLO_WAIT)) {
            Ok(Received::Message(hello @ SupervisorMessage::Hello { .. })) => {
                let hello = serde_json::to_value(hello).unwrap_or(Value::Null);
                Ok((channel, hello))
            }
            Ok(Received::Message(other)) => {
                Err(Outcome::failure(libc::EPROTO).with("step", "hello").with("got", to_json(&other)))
            }
            Ok(Received::Eof | Received::Timeout) => Err(Outcome::failure(libc::EPIPE).with("step", "hello")),
            Err(err) => Err(io_failure("hello", &err)),
        }
    }

    /// The next message, waiting until `deadline` (forever with `None`).
    fn recv(&mut self, deadline: Option<Instant>) -> io::Result<Received> {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            while self.start < self.pending.len() {
                let taken = self.decoder.push(&self.pending[self.start..]);
                self.start += taken;
                if let Some(message) = self.next_decoded()? {
                    return Ok(Received::Message(message));
                }
                if taken == 0 {
                    break;
                }
            }
            if let Some(message) = self.next_decoded()? {
                return Ok(Received::Message(message));
            }
            self.pending.clear();
            self.start = 0;
            let timeout = match deadline {
                None => None,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Received::Timeout);
                    }
                    Some(left)
                }
            };
            self.stream.set_read_timeout(timeout)?;
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return match self.decoder.finish() {
                        Ok(()) => Ok(Received::Eof),
                        Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
                    }
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Ok(Received::Timeout)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn next_decoded(&mut self) -> io::Result<Option<SupervisorMessage>> {
        self.decoder
            .next_frame::<SupervisorMessage>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    fn send(&mut self, message: &PluginMessage) -> io::Result<()> {
        let frame = wf_protocol::encode_with_limit(message, self.cap)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.stream.write_all(&frame)
    }
}

fn to_json(message: &SupervisorMessage) -> Value {
    serde_json::to_value(message).unwrap_or(Value::Null)
}

fn io_failure(step: &str, err: &io::Error) -> Outcome {
    Outcome::failure(err.raw_os_error().unwrap_or(libc::EIO)).with("step", step).with("error", err.to_string())
}

fn string_list(value: &Value) -> Vec<String> {
    value.as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// `scripted [SECONDS]`: prints every message it receives as one JSON line (its body) and does
/// what events from a control client (`sender` `control:*`) whose payload has a `cmd` say:
/// `{"cmd":"subscribe"|"unsubscribe","topics":[..]}` sends that request,
/// `{"cmd":"publish","topic":T,"payload":P[,"sender":S]}` publishes (with S as a forged
/// `sender` member; with `"text_bytes": N` instead of a payload, a string of N `x`),
/// `{"cmd":"exit"}` ends it. Also ends at end of stream or after SECONDS
/// (default 120).
pub fn scripted(args: &mut Args) -> Result<Outcome, UsageError> {
    let seconds: f64 = args.optional_parsed("SECONDS")?.unwrap_or(120.0);
    let (mut channel, _hello) = match Channel::connect() {
        Ok(connected) => connected,
        Err(outcome) => return Ok(outcome),
    };
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.clamp(0.0, 86_400.0));
    let mut stdout = io::stdout().lock();
    let (mut messages, mut commands) = (0u64, 0u64);
    let ended_by = loop {
        let message = match channel.recv(Some(deadline)) {
            Ok(Received::Message(message)) => message,
            Ok(Received::Eof) => break "eof",
            Ok(Received::Timeout) => break "time",
            Err(err) => return Ok(io_failure("read", &err).with("messages", messages)),
        };
        messages += 1;
        let _ = writeln!(stdout, "{}", to_json(&message));
        let SupervisorMessage::Event { payload, sender, .. } = message else { continue };
        if !sender.starts_with("control:") {
            continue;
        }
        let request = match payload["cmd"].as_str() {
            Some("subscribe") => PluginMessage::Subscribe { topics: string_list(&payload["topics"]) },
            Some("unsubscribe") => PluginMessage::Unsubscribe { topics: string_list(&payload["topics"]) },
            Some("publish") => PluginMessage::Publish {
                topic: payload["topic"].as_str().unwrap_or_default().to_owned(),
                payload: match payload["text_bytes"].as_u64() {
                    Some(n) => json!("x".repeat(n.min(1 << 24) as usize)),
                    None => payload["payload"].clone(),
                },
                claimed_sender: payload["sender"].as_str().map(str::to_owned),
            },
            Some("exit") => break "exit",
            _ => continue,
        };
        commands += 1;
        if let Err(err) = channel.send(&request) {
            return Ok(io_failure("write", &err).with("messages", messages));
        }
    };
    Ok(Outcome::success().with("messages", messages).with("commands", commands).with("ended_by", ended_by))
}

/// `pace TOPIC RATE SECONDS`: waits for a first event (any topic: the go signal), then
/// publishes `{"seq": n, "t_ns": CLOCK_MONOTONIC at send}` on TOPIC at RATE a second, to an
/// absolute schedule, for SECONDS or until another event arrives (the stop signal). Then
/// one end marker `{"end": true, "sent": n}` on TOPIC.
pub fn pace(args: &mut Args) -> Result<Outcome, UsageError> {
    let topic = args.required("TOPIC")?.to_owned();
    let rate: f64 = args.required_parsed("RATE")?;
    if !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0) {
        return Err(UsageError::Invalid { what: "RATE", value: rate.to_string() });
    }
    let seconds = args.seconds()?;
    let (mut channel, _hello) = match Channel::connect() {
        Ok(connected) => connected,
        Err(outcome) => return Ok(outcome),
    };
    match channel.recv(Some(Instant::now() + GO_WAIT)) {
        Ok(Received::Message(SupervisorMessage::Event { .. })) => {}
        Ok(other) => {
            let got = match other {
                Received::Message(m) => to_json(&m),
                Received::Eof => json!("eof"),
                Received::Timeout => json!("timeout"),
            };
            return Ok(Outcome::failure(libc::ETIMEDOUT).with("step", "go").with("got", got));
        }
        Err(err) => return Ok(io_failure("go", &err)),
    }
    let started = Instant::now();
    let total = (rate * seconds).round() as u64;
    let (mut sent, mut denied, mut late_max_us) = (0u64, 0u64, 0u64);
    let mut stopped = false;
    while sent < total {
        let due = started + Duration::from_secs_f64(sent as f64 / rate);
        // Wait for the due time on the channel: anything but a denial is the stop signal.
        let mut now = Instant::now();
        while now < due {
            match channel.recv(Some(due)) {
                Ok(Received::Message(SupervisorMessage::Denied { .. })) => denied += 1,
                Ok(Received::Message(SupervisorMessage::Event { .. })) => stopped = true,
                Ok(Received::Message(_) | Received::Timeout) => {}
                Ok(Received::Eof) => return Ok(Outcome::failure(libc::EPIPE).with("step", "pace").with("sent", sent)),
                Err(err) => return Ok(io_failure("read", &err).with("sent", sent)),
            }
            if stopped {
                break;
            }
            now = Instant::now();
        }
        if stopped {
            break;
        }
        late_max_us = late_max_us.max(now.saturating_duration_since(due).as_micros() as u64);
        let message = PluginMessage::publish(topic.clone(), json!({"seq": sent, "t_ns": monotonic_ns()}));
        if let Err(err) = channel.send(&message) {
            return Ok(io_failure("write", &err).with("sent", sent));
        }
        sent += 1;
    }
    if let Err(err) = channel.send(&PluginMessage::publish(topic, json!({"end": true, "sent": sent}))) {
        return Ok(io_failure("write", &err).with("sent", sent));
    }
    let grace = Instant::now() + DENIAL_GRACE;
    while let Ok(Received::Message(message)) = channel.recv(Some(grace)) {
        denied += u64::from(matches!(message, SupervisorMessage::Denied { .. }));
    }
    Ok(Outcome::new(denied == 0, None)
        .with("sent", sent)
        .with("denied", denied)
        .with("stopped", stopped)
        .with("late_max_us", late_max_us))
}

/// What `consume` saw of the `seq` numbers and timestamps.
#[derive(Default)]
struct Tally {
    received: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    out_of_order: u64,
    duplicates: u64,
    gaps: u64,
    seen: HashSet<u64>,
    latencies_ns: Vec<u64>,
    last_t_ns: Option<u64>,
    senders: Vec<String>,
    end_sent: Option<u64>,
    other: u64,
}

impl Tally {
    fn count(&mut self, payload: &Value, sender: &str, arrived_ns: u64) {
        let Some(seq) = payload["seq"].as_u64() else {
            if payload["end"] == true {
                self.end_sent = payload["sent"].as_u64();
            } else {
                self.other += 1;
            }
            return;
        };
        self.received += 1;
        if !self.senders.iter().any(|s| s == sender) && self.senders.len() < 8 {
            self.senders.push(sender.to_owned());
        }
        if !self.seen.insert(seq) {
            self.duplicates += 1;
        }
        match self.last_seq {
            Some(last) if seq <= last => self.out_of_order += 1,
            Some(last) => self.gaps += seq - last - 1,
            None => self.first_seq = Some(seq),
        }
        self.last_seq = Some(self.last_seq.map_or(seq, |last| last.max(seq)));
        if let Some(sent_ns) = payload["t_ns"].as_u64() {
            self.latencies_ns.push(arrived_ns.saturating_sub(sent_ns));
            self.last_t_ns = Some(self.last_t_ns.map_or(sent_ns, |t| t.max(sent_ns)));
        }
    }

    fn outcome(mut self, ended_by: &str) -> Outcome {
        self.latencies_ns.sort_unstable();
        let percentile = |p: f64| -> Value {
            if self.latencies_ns.is_empty() {
                return Value::Null;
            }
            let rank = ((p * self.latencies_ns.len() as f64).ceil() as usize).clamp(1, self.latencies_ns.len());
            json!(self.latencies_ns[rank - 1] / 1000)
        };
        Outcome::success()
            .with("ended_by", ended_by)
            .with("received", self.received)
            .with("first_seq", json!(self.first_seq))
            .with("last_seq", json!(self.last_seq))
            .with("out_of_order", self.out_of_order)
            .with("duplicates", self.duplicates)
            .with("gaps", self.gaps)
            .with("p50_us", percentile(0.50))
            .with("p99_us", percentile(0.99))
            .with("max_us", percentile(1.0))
            .with("last_t_ns", json!(self.last_t_ns))
            .with("senders", json!(self.senders))
            .with("end_sent", json!(self.end_sent))
            .with("other", self.other)
    }
}

/// `consume end|stop IDLE_SECONDS [DELAY_US [PROGRESS_TOPIC]]`: counts events whose payload
/// has a `seq` (checking order, duplicates and gaps, and the latency from a `t_ns`), sleeping
/// DELAY_US after each event (a slow reader). Ends at an event `{"stop": true}`, with `end` also
/// at an end marker `{"end": true, "sent": n}`, at end of stream, or after IDLE_SECONDS without
/// an event. With PROGRESS_TOPIC it publishes `{"received": n}` there every 32 events.
pub fn consume(args: &mut Args) -> Result<Outcome, UsageError> {
    let until = args.required("UNTIL")?;
    if !matches!(until, "end" | "stop") {
        return Err(UsageError::Invalid { what: "UNTIL", value: until.to_owned() });
    }
    let idle = Duration::from_secs_f64(args.seconds()?);
    let delay = Duration::from_micros(args.optional_parsed("DELAY_US")?.unwrap_or(0));
    let progress = args.optional().map(str::to_owned);
    let (mut channel, _hello) = match Channel::connect() {
        Ok(connected) => connected,
        Err(outcome) => return Ok(outcome),
    };
    let mut tally = Tally::default();
    let ended_by = loop {
        let message = match channel.recv(Some(Instant::now() + idle)) {
            Ok(Received::Message(message)) => message,
            Ok(Received::Eof) => break "eof",
            Ok(Received::Timeout) => break "idle",
            Err(err) => return Ok(io_failure("read", &err).with("received", tally.received)),
        };
        let arrived = monotonic_ns();
        let SupervisorMessage::Event { payload, sender, .. } = message else { continue };
        if payload["stop"] == true {
            break "stop";
        }
        tally.count(&payload, &sender, arrived);
        if until == "end" && tally.end_sent.is_some() {
            break "end";
        }
        if let Some(topic) = &progress {
            if tally.received % PROGRESS_EVERY == 0 && payload.get("seq").is_some() {
                let _ = channel.send(&PluginMessage::publish(topic.clone(), json!({"received": tally.received})));
            }
        }
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    };
    Ok(tally.outcome(ended_by))
}

/// `flood TOPIC SECONDS`: publishes small events `{"seq": n}` on TOPIC as fast as the channel
/// takes them, in batches of about 64 KiB, for SECONDS, never reading; then an end marker.
pub fn flood(args: &mut Args) -> Result<Outcome, UsageError> {
    let topic = args.required("TOPIC")?.to_owned();
    let seconds = args.seconds()?;
    let (mut channel, _hello) = match Channel::connect() {
        Ok(connected) => connected,
        Err(outcome) => return Ok(outcome),
    };
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    let mut batch = Vec::with_capacity(FLOOD_BATCH_BYTES * 2);
    while Instant::now() < end {
        batch.clear();
        while batch.len() < FLOOD_BATCH_BYTES {
            let message = PluginMessage::publish(topic.clone(), json!({"seq": sent}));
            match wf_protocol::encode_with_limit(&message, channel.cap) {
                Ok(frame) => batch.extend_from_slice(&frame),
                Err(e) => {
                    return Ok(Outcome::failure(libc::EINVAL).with("step", "encode").with("error", e.to_string()))
                }
            }
            sent += 1;
        }
        if let Err(err) = channel.stream.write_all(&batch) {
            return Ok(io_failure("write", &err).with("sent", sent));
        }
    }
    let _ = channel.send(&PluginMessage::publish(topic, json!({"end": true, "sent": sent})));
    Ok(Outcome::success().with("sent", sent))
}

/// `burst TOPIC COUNT`: publishes `{"seq": 0..COUNT}` on TOPIC as fast as the channel takes
/// them, then an end marker `{"end": true, "sent": COUNT}`; then waits a moment and reports the
/// refusals it read back.
pub fn burst(args: &mut Args) -> Result<Outcome, UsageError> {
    let topic = args.required("TOPIC")?.to_owned();
    let count: u64 = args.required_parsed("COUNT")?;
    let (mut channel, _hello) = match Channel::connect() {
        Ok(connected) => connected,
        Err(outcome) => return Ok(outcome),
    };
    let mut batch = Vec::with_capacity(FLOOD_BATCH_BYTES * 2);
    let mut seq = 0u64;
    while seq < count {
        batch.clear();
        while batch.len() < FLOOD_BATCH_BYTES && seq < count {
            let message = PluginMessage::publish(topic.clone(), json!({"seq": seq}));
            match wf_protocol::encode_with_limit(&message, channel.cap) {
                Ok(frame) => batch.extend_from_slice(&frame),
                Err(e) => {
                    return Ok(Outcome::failure(libc::EINVAL).with("step", "encode").with("error", e.to_string()))
                }
            }
            seq += 1;
        }
        if let Err(err) = channel.stream.write_all(&batch) {
            return Ok(io_failure("write", &err).with("sent", seq));
        }
    }
    if let Err(err) = channel.send(&PluginMessage::publish(topic, json!({"end": true, "sent": count}))) {
        return Ok(io_failure("write", &err).with("sent", seq));
    }
    let mut denied = 0u64;
    let grace = Instant::now() + DENIAL_GRACE * 5;
    while let Ok(Received::Message(message)) = channel.recv(Some(grace)) {
        denied += u64::from(matches!(message, SupervisorMessage::Denied { .. }));
    }
    Ok(Outcome::new(denied == 0, None).with("sent", count).with("denied", denied))
}

/// `stall-subscribe GO_FILE READ_FILE PATTERN...`: reads the hello, then nothing until GO_FILE
/// exists (in its working directory, the plugin directory: the test creates it), so its inbox
/// can fill; then sends `subscribe` PATTERN..., waits for READ_FILE (so the daemon has answered
/// before it reads anything), and reads everything until 2 s pass without a message. Reports
/// the `subscribed` sets and `denied` topics it got and how many events it read.
pub fn stall_subscribe(args: &mut Args) -> Result<Outcome, UsageError> {
    let go = std::path::PathBuf::from(args.required("GO_FILE")?);
    let read = std::path::PathBuf::from(args.required("READ_FILE")?);
    let mut patterns = Vec::new();
    while let Some(pattern) = args.optional() {
        patterns.push(pattern.to_owned());
    }
    if patterns.is_empty() {
        return Err(UsageError::Missing("PATTERN"));
    }
    let (mut channel, _hello) = match Channel::connect() {
        Ok(connected) => connected,
        Err(outcome) => return Ok(outcome),
    };
    if !wait_for_file(&go) {
        return Ok(Outcome::failure(libc::ETIMEDOUT).with("step", "go file"));
    }
    if let Err(err) = channel.send(&PluginMessage::Subscribe { topics: patterns }) {
        return Ok(io_failure("write", &err));
    }
    if !wait_for_file(&read) {
        return Ok(Outcome::failure(libc::ETIMEDOUT).with("step", "read file"));
    }
    let (mut events, mut subscribed, mut denied) = (0u64, Vec::new(), Vec::new());
    loop {
        match channel.recv(Some(Instant::now() + Duration::from_secs(2))) {
            Ok(Received::Message(SupervisorMessage::Event { .. })) => events += 1,
            Ok(Received::Message(SupervisorMessage::Subscribed { topics })) => subscribed.push(json!(topics)),
            Ok(Received::Message(SupervisorMessage::Denied { topic, .. })) => denied.push(json!(topic)),
            Ok(Received::Message(_)) => {}
            Ok(Received::Eof | Received::Timeout) => break,
            Err(err) => return Ok(io_failure("read", &err).with("events", events)),
        }
    }
    Ok(Outcome::new(!subscribed.is_empty(), None)
        .with("events", events)
        .with("subscribed", Value::Array(subscribed))
        .with("denied", Value::Array(denied)))
}

/// Polls every 20 ms for `path` to exist, for at most [`GO_WAIT`].
fn wait_for_file(path: &std::path::Path) -> bool {
    let waited = Instant::now();
    while !path.exists() {
        if waited.elapsed() > GO_WAIT {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_sees_gaps_duplicates_and_reordering() {
        let mut tally = Tally::default();
        for seq in [0u64, 1, 3, 3, 2, 4] {
            tally.count(&json!({"seq": seq, "t_ns": 10}), "plugin:p", 1010);
        }
        tally.count(&json!({"end": true, "sent": 5}), "plugin:p", 0);
        let out = tally.outcome("end").extra;
        assert_eq!(out["received"], 6);
        assert_eq!(out["gaps"], 1);
        assert_eq!(out["duplicates"], 1);
        assert_eq!(out["out_of_order"], 2);
        assert_eq!(out["end_sent"], 5);
        assert_eq!(out["p99_us"], 1);
        assert_eq!(out["senders"], json!(["plugin:p"]));
    }

    #[test]
    fn the_channel_decodes_frames_split_anywhere_and_times_out() {
        let (a, mut b) = UnixStream::pair().expect("pair");
        let mut channel =
            Channel { stream: a, decoder: FrameDecoder::new(65536), pending: Vec::new(), start: 0, cap: 65536 };
        let hello = SupervisorMessage::Hello { protocol: 1, plugin: "p".into(), instance: "i".into() };
        let event = SupervisorMessage::Event { topic: "t.a".into(), payload: json!({"seq": 1}), sender: "host".into() };
        let mut bytes = wf_protocol::encode(&hello).expect("hello");
        bytes.extend(wf_protocol::encode(&event).expect("event"));
        let (first, rest) = bytes.split_at(7);
        b.write_all(first).expect("write");
        let soon = || Some(Instant::now() + Duration::from_millis(50));
        assert!(matches!(channel.recv(soon()), Ok(Received::Timeout)));
        b.write_all(rest).expect("write");
        assert!(matches!(channel.recv(soon()), Ok(Received::Message(SupervisorMessage::Hello { .. }))));
        assert!(matches!(channel.recv(soon()), Ok(Received::Message(m)) if m == event));
        drop(b);
        assert!(matches!(channel.recv(soon()), Ok(Received::Eof)));
    }
}
