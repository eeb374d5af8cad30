//! The host's stdout and stderr, written from threads of their own through bounded
//! byte queues, so a consumer that stops reading can never stall the supervisor: not its
//! wall-clock enforcement, its signal handling, or its cleanup. What does not fit in
//! the queue is dropped and counted.
//!
//! Outlets are created only after the child is cloned: the process is never
//! multi-threaded when it forks.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Bytes queued per outlet before further output is dropped (and counted).
pub const QUEUE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Default)]
struct Queue {
    bytes: VecDeque<u8>,
    closed: bool,
    /// The writer thread has written everything and stopped.
    finished: bool,
    /// Bytes taken by the writer thread and not yet written.
    in_flight: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
    dropped: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub struct Outlet {
    shared: Arc<Shared>,
}

/// A `Write` handle that never blocks.
#[derive(Clone)]
pub struct OutletWriter {
    shared: Arc<Shared>,
}

impl Outlet {
    /// Start a writer thread that copies queued bytes to `target`.
    pub fn spawn(target: Box<dyn Write + Send>) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            dropped: AtomicU64::new(0),
        });
        let worker = Arc::clone(&shared);
        std::thread::Builder::new().name("wfs-outlet".into()).spawn(move || drain(&worker, target))?;
        Ok(Self { shared })
    }

    pub fn writer(&self) -> Option<OutletWriter> {
        (!self.shared.lock().closed).then(|| OutletWriter { shared: Arc::clone(&self.shared) })
    }

    /// Stop accepting, give the thread up to `wait` to write what is queued, and return
    /// how many bytes were dropped. A thread still blocked after `wait` is abandoned
    /// (it ends with the process).
    pub fn finish(self, wait: Duration) -> u64 {
        let deadline = Instant::now() + wait;
        let mut queue = self.shared.lock();
        queue.closed = true;
        self.shared.changed.notify_all();
        while !queue.finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            queue = self.shared.changed.wait_timeout(queue, left).map(|(q, _)| q).unwrap_or_else(|e| e.into_inner().0);
        }
        let unwritten = if queue.finished { 0 } else { (queue.bytes.len() + queue.in_flight) as u64 };
        self.shared.dropped.load(Ordering::Relaxed) + unwritten
    }
}

/// The writer thread: take everything queued, write it outside the lock, repeat.
fn drain(shared: &Shared, mut target: Box<dyn Write + Send>) {
    loop {
        let chunk: Vec<u8> = {
            let mut queue = shared.lock();
            while queue.bytes.is_empty() && !queue.closed {
                queue = shared.changed.wait(queue).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if queue.bytes.is_empty() {
                queue.finished = true;
                shared.changed.notify_all();
                return;
            }
            queue.in_flight = queue.bytes.len();
            queue.bytes.drain(..).collect()
        };
        if target.write_all(&chunk).and_then(|()| target.flush()).is_err() {
            shared.dropped.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        shared.lock().in_flight = 0;
    }
}

impl Write for OutletWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut queue = self.shared.lock();
        if queue.closed {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        if queue.bytes.len() + buf.len() > QUEUE_BYTES {
            self.shared.dropped.fetch_add(buf.len() as u64, Ordering::Relaxed);
        } else {
            queue.bytes.extend(buf);
            self.shared.changed.notify_all();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

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
        let writes = 2 * QUEUE_BYTES as u64 / 1000;
        let total = writes * 1000;
        for _ in 0..writes {
            writer.write_all(&[b'x'; 1000]).unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(5), "writes blocked");
        drop(writer);
        let dropped = outlet.finish(Duration::from_millis(100));
        // Nothing got through the stalled sink: every byte is counted as dropped, and the
        // queue never held more than its bound.
        assert_eq!(dropped, total, "dropped {dropped}");
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
        // A burst far larger than any per-line queue would hold, with a live reader.
        for i in 0..50_000 {
            writeln!(writer, "line {i}").unwrap();
        }
        drop(writer);
        assert_eq!(outlet.finish(Duration::from_secs(5)), 0);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 50_000);
        assert!(text.starts_with("line 0\nline 1\n"));
    }
}
