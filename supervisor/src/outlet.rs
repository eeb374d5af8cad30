//! The host's stdout and stderr, written from threads of their own through bounded
//! queues, so a consumer that stops reading can never stall the supervisor: not its
//! wall-clock enforcement, its signal handling, or its cleanup. What does not fit in
//! the queue is dropped and counted.
//!
//! Outlets are created only after the child is cloned: the process is never
//! multi-threaded when it forks.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// Chunks queued per outlet (each at most a few tens of KiB: one forwarded read).
pub const QUEUE_CHUNKS: usize = 32;

pub struct Outlet {
    tx: Option<SyncSender<Vec<u8>>>,
    dropped: Arc<AtomicU64>,
    done: Receiver<()>,
}

/// A `Write` handle that never blocks.
#[derive(Clone)]
pub struct OutletWriter {
    tx: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl Outlet {
    /// Start a writer thread that copies queued chunks to `target`.
    pub fn spawn(mut target: Box<dyn Write + Send>) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE_CHUNKS);
        let (done_tx, done) = mpsc::channel();
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = Arc::clone(&dropped);
        std::thread::Builder::new().name("wfs-outlet".into()).spawn(move || {
            for chunk in rx {
                if target.write_all(&chunk).and_then(|()| target.flush()).is_err() {
                    lost.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            }
            let _ = done_tx.send(());
        })?;
        Ok(Self { tx: Some(tx), dropped, done })
    }

    pub fn writer(&self) -> Option<OutletWriter> {
        self.tx.as_ref().map(|tx| OutletWriter { tx: tx.clone(), dropped: Arc::clone(&self.dropped) })
    }

    /// Stop accepting, give the thread up to `wait` to write what is queued, and return
    /// how many bytes were dropped. A thread still blocked after `wait` is abandoned
    /// (it ends with the process).
    pub fn finish(mut self, wait: Duration) -> u64 {
        self.tx = None;
        let _ = self.done.recv_timeout(wait);
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Write for OutletWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.tx.try_send(buf.to_vec()) {
            Ok(()) => Ok(buf.len()),
            Err(TrySendError::Full(chunk)) => {
                self.dropped.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Ok(buf.len())
            }
            Err(TrySendError::Disconnected(_)) => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;

    /// A sink that blocks forever on its first write, like a consumer that never reads.
    struct Stalled(Arc<Mutex<()>>);

    impl Write for Stalled {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            let _held = self.0.lock();
            std::thread::sleep(Duration::from_secs(3600));
            Ok(0)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_consumer_never_blocks_the_writer_and_loss_is_counted() {
        let outlet = Outlet::spawn(Box::new(Stalled(Arc::new(Mutex::new(()))))).unwrap();
        let mut writer = outlet.writer().unwrap();
        let start = Instant::now();
        for _ in 0..10_000 {
            writer.write_all(&[b'x'; 100]).unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(5), "writes blocked");
        drop(writer);
        let dropped = outlet.finish(Duration::from_millis(100));
        // All but the queue's worth (and the one chunk the thread is stuck on) were dropped.
        assert!(dropped >= (10_000 - QUEUE_CHUNKS as u64 - 1) * 100, "dropped {dropped}");
    }

    #[test]
    fn a_reading_consumer_gets_everything_in_order() {
        #[derive(Clone, Default)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = Shared::default();
        let outlet = Outlet::spawn(Box::new(sink.clone())).unwrap();
        let mut writer = outlet.writer().unwrap();
        for i in 0..20 {
            writeln!(writer, "line {i}").unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(writer);
        assert_eq!(outlet.finish(Duration::from_secs(5)), 0);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 20);
        assert!(text.starts_with("line 0\nline 1\n"));
    }
}
