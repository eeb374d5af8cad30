//! One plugin's queue of outgoing frames, bounded in events and in bytes.
//!
//! The broker offers frames without waiting: when the plugin is not reading and the queue is
//! full the frame is refused (the caller counts it), so a slow reader never holds a publisher
//! or more than [`INBOX_EVENTS`] frames and [`inbox_byte_cap`] bytes of the daemon's memory.
//! Each queued frame carries the permits for its bytes; they return once the writer has taken
//! the frame into its write batch.

use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use wf_protocol::HEADER_LEN;

/// Frames queued to one plugin at most.
pub const INBOX_EVENTS: usize = 256;
/// Bytes queued to one plugin at most, unless one frame of its cap is larger.
pub const INBOX_BYTES: usize = 1024 * 1024;
/// Replies (`denied`, `subscribed`) queued to one plugin at most, apart from events: a full
/// event inbox never swallows the answer to the plugin's own request.
pub const REPLY_FRAMES: usize = 256;
/// Bytes of replies queued to one plugin at most (a `subscribed` of 256 long patterns fits).
pub const REPLY_BYTES: usize = 64 * 1024;
/// Bytes the writer gathers into one `write`.
pub const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// An encoded frame, shared by every reader it goes to.
pub type Frame = Arc<Vec<u8>>;

struct Queued {
    frame: Frame,
    _permit: OwnedSemaphorePermit,
}

/// What became of one offered frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The plugin is not keeping up: no room now.
    Full,
    /// Larger than the plugin's own `max_event_bytes`.
    TooLarge,
    /// The plugin's channel is gone.
    Closed,
}

/// The bytes one plugin's queue holds at most: [`INBOX_BYTES`], or one frame of its cap.
pub fn inbox_byte_cap(max_frame_bytes: u32) -> usize {
    INBOX_BYTES.max(max_frame_bytes as usize + HEADER_LEN)
}

/// One bounded queue: frames plus the permits for their bytes.
#[derive(Clone)]
struct Lane {
    tx: mpsc::Sender<Queued>,
    budget: Arc<Semaphore>,
    byte_cap: usize,
}

impl Lane {
    fn new(frames: usize, byte_cap: usize) -> (Self, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(frames);
        (Self { tx, budget: Arc::new(Semaphore::new(byte_cap)), byte_cap }, rx)
    }

    fn offer(&self, frame: &Frame) -> Offer {
        let permits = frame.len().clamp(1, self.byte_cap) as u32;
        let permit = match Arc::clone(&self.budget).try_acquire_many_owned(permits) {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => return Offer::Full,
            Err(TryAcquireError::Closed) => return Offer::Closed,
        };
        match self.tx.try_send(Queued { frame: Arc::clone(frame), _permit: permit }) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Offer::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        }
    }
}

#[derive(Clone)]
pub struct InboxSender {
    events: Lane,
    replies: Lane,
    max_frame_bytes: usize,
}

pub struct InboxReceiver {
    events: mpsc::Receiver<Queued>,
    replies: mpsc::Receiver<Queued>,
}

/// A queue for a plugin whose frames are at most `max_frame_bytes` (body, without header).
pub fn inbox(max_frame_bytes: u32) -> (InboxSender, InboxReceiver) {
    let (events, events_rx) = Lane::new(INBOX_EVENTS, inbox_byte_cap(max_frame_bytes));
    let (replies, replies_rx) = Lane::new(REPLY_FRAMES, REPLY_BYTES);
    let sender = InboxSender { events, replies, max_frame_bytes: max_frame_bytes as usize };
    (sender, InboxReceiver { events: events_rx, replies: replies_rx })
}

impl InboxSender {
    /// Queue the event `frame` if the plugin may take it and there is room now.
    pub fn offer(&self, frame: &Frame) -> Offer {
        if frame.len().saturating_sub(HEADER_LEN) > self.max_frame_bytes {
            return Offer::TooLarge;
        }
        self.events.offer(frame)
    }

    /// Whether a reply would be queued now (so that one that would not is not even encoded).
    pub fn has_reply_room(&self) -> bool {
        self.replies.tx.capacity() > 0 && self.replies.budget.available_permits() > 0
    }

    /// Queue a reply to the plugin's own request, apart from events.
    pub fn reply(&self, frame: &Frame) -> Offer {
        if frame.len().saturating_sub(HEADER_LEN) > self.max_frame_bytes {
            return Offer::TooLarge;
        }
        self.replies.offer(frame)
    }
}

impl InboxReceiver {
    /// Waits for a frame, then appends it and whatever else is queued (replies first) to
    /// `batch` until the batch passes `max_bytes`. `false` once every sender is gone and both
    /// queues are empty.
    pub async fn recv_batch(&mut self, batch: &mut Vec<u8>, max_bytes: usize) -> bool {
        let first = tokio::select! {
            biased;
            Some(reply) = self.replies.recv() => reply,
            Some(event) = self.events.recv() => event,
            else => return false,
        };
        batch.extend_from_slice(&first.frame);
        for queue in [&mut self.replies, &mut self.events] {
            while batch.len() < max_bytes {
                match queue.try_recv() {
                    Ok(next) => batch.extend_from_slice(&next.frame),
                    Err(_) => break,
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: usize) -> Frame {
        Arc::new(vec![0u8; HEADER_LEN + body])
    }

    #[tokio::test]
    async fn the_inbox_is_bounded_in_events_and_bytes_and_frees_as_the_writer_takes() {
        let (tx, mut rx) = inbox(64 * 1024);
        let small = frame(10);
        let queued = (0..INBOX_EVENTS * 2).filter(|_| tx.offer(&small) == Offer::Queued).count();
        assert_eq!(queued, INBOX_EVENTS);
        let mut batch = Vec::new();
        assert!(rx.recv_batch(&mut batch, usize::MAX).await);
        assert_eq!(batch.len(), INBOX_EVENTS * small.len(), "one batch takes everything queued");

        let big = frame(60 * 1024);
        let fit = (0..100).filter(|_| tx.offer(&big) == Offer::Queued).count();
        assert_eq!(fit, INBOX_BYTES / big.len(), "bytes bound the queue before the event count");
    }

    #[tokio::test]
    async fn a_frame_over_the_readers_cap_is_refused_and_a_closed_reader_says_so() {
        let (tx, rx) = inbox(100);
        assert_eq!(tx.offer(&frame(101)), Offer::TooLarge);
        assert_eq!(tx.offer(&frame(100)), Offer::Queued);
        drop(rx);
        assert_eq!(tx.offer(&frame(1)), Offer::Closed);
    }

    #[tokio::test]
    async fn replies_have_their_own_room_when_events_fill_the_inbox() {
        let (tx, mut rx) = inbox(64 * 1024);
        while tx.offer(&frame(10)) == Offer::Queued {}
        let reply = Arc::new(vec![7u8; HEADER_LEN + 20]);
        assert_eq!(tx.reply(&reply), Offer::Queued);
        let mut batch = Vec::new();
        assert!(rx.recv_batch(&mut batch, 1).await);
        assert_eq!(batch, *reply, "the reply is written first");
        let replies = (0..REPLY_FRAMES * 2).filter(|_| tx.reply(&reply) == Offer::Queued).count();
        assert_eq!(replies, REPLY_FRAMES, "replies are bounded too");
    }

    #[tokio::test]
    async fn a_batch_stops_after_the_frame_that_passes_its_size() {
        let (tx, mut rx) = inbox(64 * 1024);
        for _ in 0..10 {
            assert_eq!(tx.offer(&frame(1000)), Offer::Queued);
        }
        let mut batch = Vec::new();
        assert!(rx.recv_batch(&mut batch, 2500).await);
        assert_eq!(batch.len(), 3 * (1000 + HEADER_LEN));
        drop(tx);
        batch.clear();
        assert!(rx.recv_batch(&mut batch, usize::MAX).await, "what was queued is still written");
        assert_eq!(batch.len(), 7 * (1000 + HEADER_LEN));
        assert!(!rx.recv_batch(&mut batch, usize::MAX).await);
    }
}
