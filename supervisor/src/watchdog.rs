//! A backstop for the wall-clock limit that does not depend on the run loop.
//!
//! The loop checks the deadline itself, but it can block writing published events or
//! forwarded output to a consumer that does not read. The watchdog thread kills the
//! sandbox at the deadline regardless. It is started only after the child was cloned,
//! so the process is never multi-threaded when it forks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Run `body` while a watchdog calls `kill` once `limit` has passed. Returns the body's
/// result and whether the watchdog fired.
pub fn run_with_watchdog<R>(limit: Duration, kill: &(dyn Fn() + Sync), body: impl FnOnce() -> R) -> (R, bool) {
    let fired = AtomicBool::new(false);
    let (done, wait_for_done) = mpsc::channel::<()>();
    let result = std::thread::scope(|scope| {
        let fired = &fired;
        scope.spawn(move || {
            if wait_for_done.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
                fired.store(true, Ordering::SeqCst);
                kill();
            }
        });
        let result = body();
        drop(done);
        result
    });
    (result, fired.load(Ordering::SeqCst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn fires_when_the_body_outlives_the_limit() {
        let kills = AtomicUsize::new(0);
        let kill = || {
            kills.fetch_add(1, Ordering::SeqCst);
        };
        let ((), fired) =
            run_with_watchdog(Duration::from_millis(20), &kill, || std::thread::sleep(Duration::from_millis(200)));
        assert!(fired);
        assert_eq!(kills.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn stays_quiet_when_the_body_finishes_in_time() {
        let kills = AtomicUsize::new(0);
        let kill = || {
            kills.fetch_add(1, Ordering::SeqCst);
        };
        let (v, fired) = run_with_watchdog(Duration::from_secs(5), &kill, || 7);
        assert_eq!((v, fired), (7, false));
        assert_eq!(kills.load(Ordering::SeqCst), 0);
    }
}
