//! The queue of frames to one control client, bounded in bytes: a client that stops reading
//! holds at most [`OUTBOX_BYTES`] of the daemon's memory, whatever frame sizes it asks for.
//! Each queued frame carries the permits for its bytes; the writer returns them once the
//! frame is written.

use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Bytes queued to one client at most. Holds the largest frame the protocol allows.
pub const OUTBOX_BYTES: usize = 4 * 1024 * 1024;

pub type Queued = (Vec<u8>, OwnedSemaphorePermit);

#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Queued>,
    budget: Arc<Semaphore>,
}

/// The writer's end.
pub type OutboxQueue = mpsc::UnboundedReceiver<Queued>;

pub fn outbox() -> (Outbox, OutboxQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Outbox { tx, budget: Arc::new(Semaphore::new(OUTBOX_BYTES)) }, rx)
}

fn permits_for(frame: &[u8]) -> u32 {
    frame.len().clamp(1, OUTBOX_BYTES) as u32
}

impl Outbox {
    /// Queue `frame`, waiting for room. `false` if the connection is gone.
    pub async fn send(&self, frame: Vec<u8>) -> bool {
        let Ok(permit) = Arc::clone(&self.budget).acquire_many_owned(permits_for(&frame)).await else { return false };
        self.tx.send((frame, permit)).is_ok()
    }

    /// Queue `frame` only if there is room now. `Err(())` when the client is too far behind;
    /// a closed connection counts as delivered (nobody is left to tell).
    pub fn try_send(&self, frame: Vec<u8>) -> Result<(), ()> {
        match Arc::clone(&self.budget).try_acquire_many_owned(permits_for(&frame)) {
            Ok(permit) => {
                let _ = self.tx.send((frame, permit));
                Ok(())
            }
            Err(tokio::sync::TryAcquireError::Closed) => Ok(()),
            Err(tokio::sync::TryAcquireError::NoPermits) => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes_and_frees_as_frames_are_written() {
        let (outbox, mut queue) = outbox();
        let big = vec![0u8; OUTBOX_BYTES / 2];
        assert!(outbox.try_send(big.clone()).is_ok());
        assert!(outbox.try_send(big.clone()).is_ok());
        assert!(outbox.try_send(vec![1]).is_err(), "full: nothing more, not even one byte");
        let written = queue.recv().await.expect("a frame");
        drop(written);
        assert!(outbox.try_send(big).is_ok(), "room again once a frame is written");
    }
}
