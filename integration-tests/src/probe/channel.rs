//! Probes that use the plugin channel. Deliberately independent of `wf-protocol` (serde_json
//! and libc only), so the probe can also be pointed at the supervisor as a foreign client.

use super::args::{Args, UsageError};
use super::outcome::Outcome;
use serde_json::{json, Value};
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const DEFAULT_CHANNEL_FD: i32 = 3;
/// Largest frame the probe reads (the protocol's default cap).
const MAX_FRAME_BYTES: u32 = 64 * 1024;
/// How long `publish` waits for a refusal or end of stream.
const DENIAL_WAIT: Duration = Duration::from_secs(1);
/// How long `send-bad-frame` waits for the supervisor to close the channel.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// How long `publish` waits for the hello.
const HELLO_WAIT: Duration = Duration::from_secs(5);

enum Frame {
    Message(Value),
    Eof,
}

/// The channel fd from WFSANDBOX_CHANNEL_FD (default 3), if it is open.
fn open_channel() -> Result<UnixStream, Outcome> {
    let fd = match std::env::var("WFSANDBOX_CHANNEL_FD") {
        Ok(value) => value.parse::<i32>().ok().filter(|fd| *fd >= 0),
        Err(_) => Some(DEFAULT_CHANNEL_FD),
    };
    let Some(fd) = fd else {
        return Err(Outcome::failure(libc::EBADF).with("step", "channel fd"));
    };
    // SAFETY: F_GETFD only checks that the fd is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(Outcome::failure(super::outcome::last_errno()).with("step", "channel fd"));
    }
    // SAFETY: the fd is open and is the channel this process was given.
    Ok(UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn read_frame(stream: &mut UnixStream) -> io::Result<Frame> {
    let mut header = [0u8; 4];
    let mut filled = 0;
    while filled < header.len() {
        match stream.read(&mut header[filled..])? {
            0 if filled == 0 => return Ok(Frame::Eof),
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated header")),
            n => filled += n,
        }
    }
    let len = u32::from_be_bytes(header);
    if len == 0 || len > MAX_FRAME_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame length {len}")));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body)?;
    serde_json::from_slice(&body).map(Frame::Message).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn write_frame(stream: &mut UnixStream, message: &Value) -> io::Result<()> {
    let body = message.to_string().into_bytes();
    let len = u32::try_from(body.len()).map_err(|_| io::Error::from_raw_os_error(libc::EMSGSIZE))?;
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame)
}

fn io_failure(step: &str, err: &io::Error) -> Outcome {
    Outcome::failure(err.raw_os_error().unwrap_or(0)).with("step", step).with("error", err.to_string())
}

/// Publishes JSON on TOPIC, then waits briefly for a `denied` reply or end of stream.
/// `ok` = the frame was sent and not refused.
pub fn publish(args: &mut Args) -> Result<Outcome, UsageError> {
    let topic = args.required("TOPIC")?;
    let raw = args.required("JSON")?;
    let payload: Value =
        serde_json::from_str(raw).map_err(|_| UsageError::Invalid { what: "JSON", value: raw.to_owned() })?;
    Ok(match open_channel() {
        Ok(mut stream) => publish_on(&mut stream, topic, payload),
        Err(outcome) => outcome,
    })
}

/// `publish-many COUNT TOPIC`: publishes COUNT small events as fast as it can (a flood).
pub fn publish_many(args: &mut Args) -> Result<Outcome, UsageError> {
    let count: u64 = args.required_parsed("COUNT")?;
    let topic = args.required("TOPIC")?;
    let mut stream = match open_channel() {
        Ok(stream) => stream,
        Err(outcome) => return Ok(outcome),
    };
    let mut sent = 0u64;
    for i in 0..count {
        let message = json!({"type": "publish", "topic": topic, "payload": {"i": i}});
        if let Err(err) = write_frame(&mut stream, &message) {
            return Ok(io_failure("write", &err).with("sent", sent));
        }
        sent += 1;
    }
    Ok(Outcome::success().with("sent", sent))
}

/// `send-bad-frame oversized|truncated|invalid-utf8|deep|nested-33|unknown-field|null-sender`: breaks the
/// channel's rules once, then reports whether the supervisor closed the channel (EOF or
/// reset). `truncated` announces a 100-byte body, sends 10 bytes of it and half-closes (end of
/// stream inside a frame); `nested-33` nests the payload one level deeper than allowed.
pub fn send_bad_frame(args: &mut Args) -> Result<Outcome, UsageError> {
    let kind = args.required("KIND")?;
    let frame: Vec<u8> = match kind {
        "oversized" => [u32::MAX.to_be_bytes().as_slice(), b"{\"type\":"].concat(),
        "truncated" => [100u32.to_be_bytes().as_slice(), b"{\"type\":\"p"].concat(),
        // The message object is depth 1, so 32 brackets make depth 33.
        "nested-33" => framed(
            format!("{{\"type\":\"publish\",\"topic\":\"a\",\"payload\":{}1{}}}", "[".repeat(32), "]".repeat(32))
                .as_bytes(),
        ),
        "invalid-utf8" => framed(b"{\"type\":\"publish\",\"topic\":\"a\xff\",\"payload\":1}"),
        "deep" => framed(
            format!("{{\"type\":\"publish\",\"topic\":\"a\",\"payload\":{}1{}}}", "[".repeat(100), "]".repeat(100))
                .as_bytes(),
        ),
        "unknown-field" => framed(b"{\"type\":\"publish\",\"topic\":\"a\",\"payload\":1,\"priority\":9}"),
        // `sender` may only be a string (docs/protocol.md §1.3 rule 5, §1.4).
        "null-sender" => framed(b"{\"type\":\"publish\",\"topic\":\"a\",\"payload\":1,\"sender\":null}"),
        other => return Err(UsageError::Invalid { what: "KIND", value: other.to_owned() }),
    };
    let mut stream = match open_channel() {
        Ok(stream) => stream,
        Err(outcome) => return Ok(outcome),
    };
    if let Err(err) = stream.write_all(&frame) {
        return Ok(io_failure("write", &err));
    }
    if kind == "truncated" {
        if let Err(err) = stream.shutdown(std::net::Shutdown::Write) {
            return Ok(io_failure("shutdown", &err));
        }
    }
    let mut closed = false;
    let deadline = Instant::now() + CLOSE_WAIT;
    while Instant::now() < deadline {
        match read_with_deadline(&mut stream, deadline) {
            Ok(Frame::Eof) => {
                closed = true;
                break;
            }
            Ok(Frame::Message(_)) => {}
            Err(err) => {
                closed = err.kind() == io::ErrorKind::ConnectionReset;
                break;
            }
        }
    }
    // Writing after the supervisor closed its side fails: a second sign it gave up on us.
    let write_after = write_frame(&mut stream, &json!({"type": "publish", "topic": "a", "payload": 1})).is_err();
    Ok(Outcome::success().with("kind", kind).with("closed", closed).with("write_after_failed", write_after))
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

fn publish_on(stream: &mut UnixStream, topic: &str, payload: Value) -> Outcome {
    let hello = match read_with_deadline(stream, Instant::now() + HELLO_WAIT) {
        Ok(Frame::Message(hello)) => hello,
        Ok(Frame::Eof) => return Outcome::failure(libc::EPIPE).with("step", "hello"),
        Err(err) => return io_failure("hello", &err),
    };
    let message = json!({"type": "publish", "topic": topic, "payload": payload});
    if let Err(err) = write_frame(stream, &message) {
        return io_failure("write", &err).with("hello", hello);
    }
    await_verdict(stream, topic).with("hello", hello).with("topic", topic)
}

/// Reads until a `denied` for `topic`, end of stream, or [`DENIAL_WAIT`] passes.
fn await_verdict(stream: &mut UnixStream, topic: &str) -> Outcome {
    let deadline = Instant::now() + DENIAL_WAIT;
    let mut skipped = 0;
    loop {
        match read_with_deadline(stream, deadline) {
            Ok(Frame::Message(msg)) if msg["type"] == "denied" && msg["topic"] == topic => {
                return Outcome::new(false, None).with("denied", true).with("reason", msg["reason"].clone());
            }
            Ok(Frame::Message(_)) => skipped += 1,
            Ok(Frame::Eof) => {
                return Outcome::success().with("denied", false).with("eof", true).with("skipped", skipped)
            }
            Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Outcome::success().with("denied", false).with("eof", false).with("skipped", skipped);
            }
            Err(err) => return io_failure("read", &err).with("denied", false),
        }
    }
}

fn read_with_deadline(stream: &mut UnixStream, deadline: Instant) -> io::Result<Frame> {
    let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    stream.set_read_timeout(Some(remaining))?;
    read_frame(stream)
}

/// Prints every message received (as its JSON body, one per line) until end of stream.
pub fn echo_events(_args: &mut Args) -> Result<Outcome, UsageError> {
    Ok(match open_channel() {
        Ok(mut stream) => echo_on(&mut stream, &mut io::stdout().lock()),
        Err(outcome) => outcome,
    })
}

fn echo_on(stream: &mut UnixStream, out: &mut impl Write) -> Outcome {
    let (mut messages, mut events) = (0u64, 0u64);
    loop {
        match read_frame(stream) {
            Ok(Frame::Message(msg)) => {
                messages += 1;
                events += u64::from(msg["type"] == "event");
                // Best effort, like Outcome::print: the final line still reports the count.
                let _ = writeln!(out, "{msg}");
            }
            Ok(Frame::Eof) => return Outcome::success().with("messages", messages).with("events", events),
            Err(err) => return io_failure("read", &err).with("messages", messages).with("events", events),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_eof_is_clean() {
        let (mut a, mut b) = UnixStream::pair().expect("pair");
        write_frame(&mut a, &json!({"type": "event", "topic": "t"})).expect("write");
        drop(a);
        assert!(matches!(read_frame(&mut b), Ok(Frame::Message(msg)) if msg["topic"] == "t"));
        assert!(matches!(read_frame(&mut b), Ok(Frame::Eof)));
    }

    #[test]
    fn oversized_frames_are_not_read() {
        let (mut a, mut b) = UnixStream::pair().expect("pair");
        a.write_all(&u32::MAX.to_be_bytes()).expect("write");
        let err = read_frame(&mut b).err().expect("error");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn verdict_sees_denied_and_eof() {
        let (mut a, mut b) = UnixStream::pair().expect("pair");
        write_frame(&mut a, &json!({"type": "event", "topic": "x"})).expect("write");
        write_frame(&mut a, &json!({"type": "denied", "topic": "t", "reason": "no"})).expect("write");
        let verdict = await_verdict(&mut b, "t");
        assert_eq!(verdict.extra["denied"], true);
        drop(a);
        assert_eq!(await_verdict(&mut b, "t").extra["eof"], true);
    }

    fn hello() -> Value {
        json!({"type": "hello", "protocol": 1, "plugin": "probe", "instance": "i"})
    }

    #[test]
    fn publish_sends_one_frame_after_the_hello_and_reports_a_denial() {
        let (mut supervisor, mut plugin) = UnixStream::pair().expect("pair");
        write_frame(&mut supervisor, &hello()).expect("hello");
        let peer = std::thread::spawn(move || {
            let Ok(Frame::Message(publish)) = read_frame(&mut supervisor) else {
                return Value::Null;
            };
            let denied = json!({"type": "denied", "topic": publish["topic"], "reason": "not writable"});
            write_frame(&mut supervisor, &denied).expect("denied");
            publish
        });
        let outcome = publish_on(&mut plugin, "net.raw", json!({"x": 1}));
        let publish = peer.join().expect("peer");
        assert_eq!(publish, json!({"type": "publish", "topic": "net.raw", "payload": {"x": 1}}));
        assert!(!outcome.ok);
        assert_eq!(outcome.extra["denied"], true);
        assert_eq!(outcome.extra["reason"], "not writable");
        assert_eq!(outcome.extra["hello"]["plugin"], "probe");
    }

    #[test]
    fn publish_without_a_denial_is_ok_at_eof() {
        let (mut supervisor, mut plugin) = UnixStream::pair().expect("pair");
        write_frame(&mut supervisor, &hello()).expect("hello");
        supervisor.shutdown(std::net::Shutdown::Write).expect("half-close");
        let outcome = publish_on(&mut plugin, "ui.render", json!(1));
        assert!(outcome.ok);
        assert_eq!(outcome.extra["eof"], true);
        assert!(matches!(read_frame(&mut supervisor), Ok(Frame::Message(msg)) if msg["topic"] == "ui.render"));
    }

    #[test]
    fn echo_prints_every_message_then_counts() {
        let (mut supervisor, mut plugin) = UnixStream::pair().expect("pair");
        write_frame(&mut supervisor, &hello()).expect("hello");
        let event = json!({"type": "event", "topic": "energy.update", "payload": {"watts": 1}, "sender": "cli"});
        write_frame(&mut supervisor, &event).expect("event");
        drop(supervisor);
        let mut out = Vec::new();
        let outcome = echo_on(&mut plugin, &mut out);
        assert!(outcome.ok);
        assert_eq!((outcome.extra["messages"].clone(), outcome.extra["events"].clone()), (json!(2), json!(1)));
        let lines: Vec<Value> = String::from_utf8_lossy(&out)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or(Value::Null))
            .collect();
        assert_eq!(lines, vec![hello(), event]);
    }
}
