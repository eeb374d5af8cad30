//! The streams: `logs --follow`, `events` and `violations --follow`.
//!
//! Human output writes each item as it arrives; `--json` writes one object per line, ending
//! with a `{"kind": "stream_end", "reason": ...}` line, except `events --json` without
//! `--follow`, which is one document (the replayed backlog is bounded). A followed stream
//! runs until the daemon ends it or the user presses Ctrl-C, which ends the command with
//! status 0 (everything received was already written: output is flushed per item).

use super::failure::CommandError;
use super::json_out::{event_line, events_document, log_line, stream_end_line, violation_line};
use super::output::{Console, Format};
use super::render::{self, dropped_note};
use std::io::{Read, Write};
use wf_protocol::control::{
    Call, Connection, EventItem, LogChunk, Reply, Stream, StreamEndReason, StreamItem, Violation,
};

/// `logs --follow`: the tail the response carried, then every new chunk until the stream
/// ends.
pub fn follow_logs<S: Read + Write, W: Write>(
    connection: &mut Connection<S>,
    call: Call,
    console: &mut Console<W>,
) -> Result<(), CommandError> {
    let mut stream = connection.open_stream(call)?;
    if let Reply::Logs(tail) = stream.reply() {
        if tail.dropped_bytes > 0 && console.format() == Format::Human {
            console.note(&dropped_note(tail.dropped_bytes));
        }
        for chunk in &tail.chunks {
            write_chunk(console, chunk)?;
        }
    }
    while let Some(item) = stream.next_item()? {
        // A log stream carries only log items; anything else is not ours to show.
        if let StreamItem::Log(chunk) = item {
            write_chunk(console, &chunk)?;
        }
    }
    finish(console, ended(&stream))
}

/// `events`: the replayed backlog, then (with `--follow`) new events until the stream ends.
pub fn events<S: Read + Write, W: Write>(
    connection: &mut Connection<S>,
    call: Call,
    console: &mut Console<W>,
) -> Result<(), CommandError> {
    let follow = matches!(&call, Call::SubscribeEvents(args) if args.follow);
    let mut stream = connection.open_stream(call)?;
    if console.format() == Format::Json && !follow {
        return backlog_document(&mut stream, console);
    }
    while let Some(item) = stream.next_item()? {
        if let StreamItem::Event(event) = item {
            write_event(console, &event)?;
        }
    }
    finish(console, ended(&stream))
}

/// `violations --follow`: the recorded ones the response carried, oldest first, then each
/// violation as the daemon records it.
pub fn follow_violations<S: Read + Write, W: Write>(
    connection: &mut Connection<S>,
    call: Call,
    console: &mut Console<W>,
) -> Result<(), CommandError> {
    let mut stream = connection.open_stream(call)?;
    if let Reply::ListViolations(recorded) = stream.reply() {
        if recorded.truncated && console.format() == Format::Human {
            console.note("older violations matched than are shown (--limit, up to 1000)");
        }
        for violation in recorded.violations.iter().rev() {
            write_violation(console, violation)?;
        }
    }
    while let Some(item) = stream.next_item()? {
        if let StreamItem::Violation { violation } = item {
            write_violation(console, &violation)?;
        }
    }
    finish(console, ended(&stream))
}

/// From now on Ctrl-C ends the process at once with status 0: a followed stream has no end
/// of its own, so interrupting it is how it is meant to finish. Output is written and flushed
/// item by item, so nothing received is lost. Installed by the command (not by the stream
/// functions, which unit tests call).
pub fn interrupt_ends_with_success() {
    extern "C" fn exit_ok(_: libc::c_int) {
        // SAFETY: _exit is async-signal-safe; nothing is left to flush.
        unsafe { libc::_exit(i32::from(wf_protocol::control::EXIT_OK)) }
    }
    // SAFETY: installs a handler that only calls an async-signal-safe function.
    unsafe { libc::signal(libc::SIGINT, exit_ok as extern "C" fn(libc::c_int) as libc::sighandler_t) };
}

fn backlog_document<S: Read + Write, W: Write>(
    stream: &mut Stream<'_, S>,
    console: &mut Console<W>,
) -> Result<(), CommandError> {
    let topics = match stream.reply() {
        Reply::SubscribeEvents(result) => result.topics.clone(),
        _ => None,
    };
    let mut backlog = Vec::new();
    while let Some(item) = stream.next_item()? {
        if let StreamItem::Event(event) = item {
            backlog.push(event);
        }
    }
    let reason = ended(stream);
    console.json(&events_document(&topics, &backlog, reason))?;
    check_end(console, reason)
}

fn write_chunk<W: Write>(console: &mut Console<W>, chunk: &LogChunk) -> Result<(), CommandError> {
    match console.format() {
        Format::Json => console.json(&log_line(chunk)),
        Format::Human => console.text(&render::log_text(chunk)),
    }
}

fn write_violation<W: Write>(console: &mut Console<W>, violation: &Violation) -> Result<(), CommandError> {
    match console.format() {
        Format::Json => console.json(&violation_line(violation)),
        Format::Human => console.text(&render::violation_line(violation)),
    }
}

fn write_event<W: Write>(console: &mut Console<W>, event: &EventItem) -> Result<(), CommandError> {
    match console.format() {
        Format::Json => console.json(&event_line(event)),
        Format::Human => console.text(&render::event_line(event)),
    }
}

/// `next_item` returned `None`, so the stream has ended; `complete` only stands in should
/// the client ever not record why.
fn ended<S: Read + Write>(stream: &Stream<'_, S>) -> StreamEndReason {
    stream.end_reason().unwrap_or(StreamEndReason::Complete)
}

fn finish<W: Write>(console: &mut Console<W>, reason: StreamEndReason) -> Result<(), CommandError> {
    if console.format() == Format::Json {
        console.json(&stream_end_line(reason))?;
    }
    check_end(console, reason)
}

/// A stream the daemon dropped for lagging is a failure (output is missing); one it ended
/// because it is shutting down is worth a remark.
fn check_end<W: Write>(console: &mut Console<W>, reason: StreamEndReason) -> Result<(), CommandError> {
    match reason {
        StreamEndReason::Lagged => Err(CommandError::Lagged),
        StreamEndReason::ShuttingDown if console.format() == Format::Human => {
            console.note("the daemon is shutting down");
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "follow_tests.rs"]
mod tests;
