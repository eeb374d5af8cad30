//! The two streams: `logs --follow` and `events`.
//!
//! Human output writes each item as it arrives; `--json` writes one object per line, ending
//! with a `{"kind": "stream_end", "reason": ...}` line, except `events --json` without
//! `--follow`, which is one document (the replayed backlog is bounded).

use super::failure::CommandError;
use super::json_out::{event_line, events_document, log_line, stream_end_line};
use super::output::{Console, Format};
use super::render::{self, dropped_note};
use std::io::{Read, Write};
use wf_protocol::control::{Call, Connection, EventItem, LogChunk, Reply, Stream, StreamEndReason, StreamItem};

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
