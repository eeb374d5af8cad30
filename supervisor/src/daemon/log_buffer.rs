//! The bounded buffer that keeps a plugin's recent stdout and stderr for `logs`.
//!
//! - **Fixed memory.** Bytes go into a ring of at most `capacity` bytes that keeps the most
//!   recent output; the ring grows on demand up to `capacity` and never beyond, so a quiet
//!   plugin costs little and a flood — with or without newlines — cannot grow memory.
//!   Input is processed in [`CHUNK`]-sized pieces through one reused scratch buffer.
//! - **Rate cap.** A token bucket ([`RateCap`]) admits at most `bytes_per_sec` bytes of raw
//!   output on average (bursts up to `burst`); the excess is dropped and counted.
//! - **Inert text.** Stored bytes have gone through a [`LogSanitizer`] (one per stream), so
//!   control characters appear as `\xNN`.
//! - **Offsets.** Every stored byte has an absolute offset, counting from 0 for the life of
//!   the buffer and never reused. A `logs --follow` reader remembers `next_offset` and asks
//!   again from there; if the ring moved past it meanwhile, the answer says how many bytes it
//!   missed. The running count of rate-dropped bytes comes with every read, so a reader can
//!   also tell that drops happened between two of its reads.
//! - **Streams and times.** Both streams go into one buffer in arrival order (as a terminal
//!   shows `2>&1`); reads come back as [`LogPiece`]s saying which stream each run of bytes
//!   came from and when it was captured: output of one stream continues the current piece
//!   for up to [`PIECE_SPAN_MS`]. At most [`MAX_PIECES`] pieces are indexed; output that
//!   switches streams faster than that evicts its oldest bytes early instead of growing the
//!   index.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::log_sanitizer::{LogSanitizer, MAX_EXPANSION, MAX_HELD_BACK};
use super::rate_cap::RateCap;
use crate::clock::Clock;

pub const DEFAULT_CAPACITY: usize = 256 * 1024;
pub const DEFAULT_BYTES_PER_SEC: u64 = 64 * 1024;
pub const DEFAULT_BURST: u64 = 256 * 1024;
/// Raw bytes sanitised and stored per step of a push.
pub const CHUNK: usize = 16 * 1024;
pub const MAX_PIECES: usize = 1024;
pub const PIECE_SPAN_MS: u64 = 1_000;
/// The scratch buffer a push needs for one chunk (held-back bytes plus the worst expansion).
const SCRATCH_CAPACITY: usize = (CHUNK + MAX_HELD_BACK) * MAX_EXPANSION;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    pub capacity: usize,
    pub bytes_per_sec: u64,
    pub burst: u64,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self { capacity: DEFAULT_CAPACITY, bytes_per_sec: DEFAULT_BYTES_PER_SEC, burst: DEFAULT_BURST }
    }
}

/// When output was captured: monotonic for the rate cap, wall clock for readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTime {
    pub monotonic: Duration,
    pub unix_ms: u64,
}

impl LogTime {
    pub fn now(clock: &impl Clock) -> Self {
        Self { monotonic: clock.monotonic(), unix_ms: clock.unix_ms() }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// Raw bytes admitted by the rate cap (stored, possibly after escaping).
    pub accepted: u64,
    /// Raw bytes over the rate cap, dropped.
    pub dropped: u64,
}

/// A run of stored bytes from one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPiece {
    pub stream: LogStream,
    /// When the piece began, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub offset: u64,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// Oldest first, contiguous: each piece starts where the previous one ended.
    pub pieces: Vec<LogPiece>,
    /// The offset of the first byte returned.
    pub offset: u64,
    /// Where the next read should start to continue without a gap.
    pub next_offset: u64,
    /// Bytes between the requested offset and `offset` that the buffer no longer holds.
    pub missed: u64,
    /// Raw bytes dropped by the rate cap since the buffer was created.
    pub dropped_total: u64,
}

impl LogRead {
    /// All returned bytes, streams merged.
    pub fn bytes(&self) -> Vec<u8> {
        self.pieces.iter().flat_map(|p| p.data.iter().copied()).collect()
    }
}

#[derive(Debug, Clone, Copy)]
struct PieceStart {
    offset: u64,
    stream: LogStream,
    time_ms: u64,
}

#[derive(Debug)]
pub struct LogBuffer {
    capacity: usize,
    /// Offset `o` lives at index `o % capacity`; `ring.len()` only grows, up to `capacity`.
    ring: Vec<u8>,
    start: u64,
    end: u64,
    /// Whether the oldest retained byte begins a line (the byte before it was a newline).
    start_is_line_start: bool,
    /// Sorted by offset; the first one starts at or before `start` while bytes are held.
    pieces: VecDeque<PieceStart>,
    rate: RateCap,
    sanitizers: [LogSanitizer; 2],
    scratch: Vec<u8>,
    accepted_total: u64,
    dropped_total: u64,
}

impl LogBuffer {
    pub fn new(limits: LogLimits, now: Duration) -> Self {
        Self {
            capacity: limits.capacity,
            ring: Vec::new(),
            start: 0,
            end: 0,
            start_is_line_start: true,
            pieces: VecDeque::new(),
            rate: RateCap::new(limits.bytes_per_sec, limits.burst, now),
            sanitizers: [LogSanitizer::new(), LogSanitizer::new()],
            scratch: Vec::new(),
            accepted_total: 0,
            dropped_total: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes currently held.
    pub fn len(&self) -> usize {
        // Never more than `capacity`, which is a usize.
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The offset of the oldest byte held; also the number of stored bytes evicted so far.
    pub fn start_offset(&self) -> u64 {
        self.start
    }

    pub fn end_offset(&self) -> u64 {
        self.end
    }

    pub fn accepted_total(&self) -> u64 {
        self.accepted_total
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Heap bytes this buffer holds: ring, scratch buffer and piece index.
    pub fn memory_bytes(&self) -> usize {
        self.ring.capacity() + self.scratch.capacity() + self.pieces.capacity() * size_of::<PieceStart>()
    }

    /// The most heap a buffer of this capacity can ever hold.
    pub fn memory_bound(capacity: usize) -> usize {
        capacity + SCRATCH_CAPACITY + MAX_PIECES * size_of::<PieceStart>()
    }

    /// Records output read from the plugin's `stream`.
    pub fn push(&mut self, stream: LogStream, bytes: &[u8], at: LogTime) -> PushOutcome {
        let wanted = bytes.len() as u64;
        let granted = self.rate.take(wanted, at.monotonic);
        // `granted <= bytes.len()`, so it fits a usize.
        let (kept, _) = bytes.split_at(granted as usize);
        let mut scratch = std::mem::take(&mut self.scratch);
        if scratch.capacity() < SCRATCH_CAPACITY && !kept.is_empty() {
            scratch.reserve_exact(SCRATCH_CAPACITY);
        }
        for chunk in kept.chunks(CHUNK) {
            scratch.clear();
            self.sanitizers[stream as usize].feed(chunk, &mut scratch);
            self.store(stream, at.unix_ms, &scratch);
        }
        self.scratch = scratch;
        let outcome = PushOutcome { accepted: granted, dropped: wanted - granted };
        self.accepted_total = self.accepted_total.saturating_add(outcome.accepted);
        self.dropped_total = self.dropped_total.saturating_add(outcome.dropped);
        outcome
    }

    /// Up to `max_bytes` from `offset` on, exactly as stored (no line alignment), for followers.
    pub fn read_from(&self, offset: u64, max_bytes: usize) -> LogRead {
        let from = offset.clamp(self.start, self.end);
        let missed = self.start.saturating_sub(offset);
        let to = self.end.min(from.saturating_add(max_bytes as u64));
        self.read_range(from, to, missed)
    }

    /// About the last `n_bytes`, starting at a line boundary: a line cut by the window (or by
    /// the buffer having dropped its beginning) is left out, unless no full line would remain —
    /// then the cut window is returned as is, so a flood without newlines still shows.
    pub fn tail(&self, n_bytes: usize) -> LogRead {
        let from = self.end - (n_bytes.min(self.len()) as u64);
        let cut_mid_line =
            if from == self.start { !self.start_is_line_start } else { self.byte_at(from - 1) != Some(b'\n') };
        let aligned = if cut_mid_line {
            match self.first_newline_in(from, self.end) {
                Some(newline) if newline + 1 < self.end => newline + 1,
                _ => from,
            }
        } else {
            from
        };
        self.read_range(aligned, self.end, 0)
    }

    fn store(&mut self, stream: LogStream, time_ms: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.capacity == 0 {
            self.end = self.end.saturating_add(data.len() as u64);
            self.start = self.end;
            self.start_is_line_start = data.last() == Some(&b'\n');
            return;
        }
        self.note_piece(stream, time_ms);
        let cap = self.capacity as u64;
        let new_end = self.end + data.len() as u64;
        let new_start = self.start.max(new_end.saturating_sub(cap));
        if new_start > self.start {
            self.start_is_line_start = self.byte_before(new_start, data) == Some(b'\n');
        }
        let kept = &data[data.len() - (new_end - new_start).min(data.len() as u64) as usize..];
        if new_end <= cap {
            self.grow_ring_for(kept.len());
            self.ring.extend_from_slice(kept);
        } else {
            self.fill_ring();
            self.overwrite(new_end - kept.len() as u64, kept);
        }
        self.start = new_start;
        self.end = new_end;
        self.forget_evicted_pieces();
    }

    /// Starts a new piece at `end` unless the current one continues.
    fn note_piece(&mut self, stream: LogStream, time_ms: u64) {
        let continues = self
            .pieces
            .back()
            .is_some_and(|last| last.stream == stream && time_ms.saturating_sub(last.time_ms) < PIECE_SPAN_MS);
        if continues {
            return;
        }
        if self.pieces.len() >= MAX_PIECES {
            self.evict_oldest_piece();
        }
        self.pieces.push_back(PieceStart { offset: self.end, stream, time_ms });
    }

    fn evict_oldest_piece(&mut self) {
        self.pieces.pop_front();
        let next_start = self.pieces.front().map_or(self.end, |p| p.offset);
        if next_start > self.start {
            self.start_is_line_start = self.byte_at(next_start - 1) == Some(b'\n');
            self.start = next_start;
        }
    }

    fn forget_evicted_pieces(&mut self) {
        while self.pieces.get(1).is_some_and(|second| second.offset <= self.start) {
            self.pieces.pop_front();
        }
    }

    /// The byte at `offset - 1` while `data` is about to be appended at `self.end`.
    fn byte_before(&self, offset: u64, data: &[u8]) -> Option<u8> {
        let before = offset.checked_sub(1)?;
        if before >= self.end {
            data.get((before - self.end) as usize).copied()
        } else {
            self.byte_at(before)
        }
    }

    /// Grows the ring's allocation geometrically, but never past `capacity`.
    fn grow_ring_for(&mut self, extra: usize) {
        let needed = self.ring.len() + extra;
        if needed > self.ring.capacity() {
            let target = needed.max(self.ring.capacity().saturating_mul(2)).min(self.capacity);
            self.ring.reserve_exact(target - self.ring.len());
        }
    }

    fn fill_ring(&mut self) {
        if self.ring.len() < self.capacity {
            self.ring.reserve_exact(self.capacity - self.ring.len());
            self.ring.resize(self.capacity, 0);
        }
    }

    fn overwrite(&mut self, mut offset: u64, mut data: &[u8]) {
        while !data.is_empty() {
            let index = self.index_of(offset);
            let n = data.len().min(self.capacity - index);
            self.ring[index..index + n].copy_from_slice(&data[..n]);
            data = &data[n..];
            offset += n as u64;
        }
    }

    fn index_of(&self, offset: u64) -> usize {
        // Less than `capacity`, which is a usize. A zero-capacity ring holds no offsets, so
        // nothing asks; 0 keeps that case panic-free all the same.
        offset.checked_rem(self.capacity as u64).map_or(0, |i| i as usize)
    }

    fn byte_at(&self, offset: u64) -> Option<u8> {
        if offset < self.start || offset >= self.end {
            return None;
        }
        self.ring.get(self.index_of(offset)).copied()
    }

    fn segments(&self, mut from: u64, to: u64) -> impl Iterator<Item = &[u8]> + '_ {
        std::iter::from_fn(move || {
            if from >= to {
                return None;
            }
            let index = self.index_of(from);
            let n = ((to - from) as usize).min(self.capacity - index);
            from += n as u64;
            self.ring.get(index..index + n)
        })
    }

    fn first_newline_in(&self, from: u64, to: u64) -> Option<u64> {
        let mut offset = from;
        for segment in self.segments(from, to) {
            if let Some(i) = segment.iter().position(|&b| b == b'\n') {
                return Some(offset + i as u64);
            }
            offset += segment.len() as u64;
        }
        None
    }

    fn read_range(&self, from: u64, to: u64, missed: u64) -> LogRead {
        let mut pieces = Vec::new();
        for (i, piece) in self.pieces.iter().enumerate() {
            let piece_end = self.pieces.get(i + 1).map_or(self.end, |next| next.offset);
            let (lo, hi) = (piece.offset.max(from), piece_end.min(to));
            if lo >= hi {
                continue;
            }
            let mut data = Vec::with_capacity((hi - lo) as usize);
            for segment in self.segments(lo, hi) {
                data.extend_from_slice(segment);
            }
            pieces.push(LogPiece { stream: piece.stream, time_ms: piece.time_ms, offset: lo, data });
        }
        LogRead { pieces, offset: from, next_offset: to, missed, dropped_total: self.dropped_total }
    }
}

#[cfg(test)]
#[path = "log_buffer_tests.rs"]
mod tests;
