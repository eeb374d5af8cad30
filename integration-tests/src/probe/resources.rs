//! Resource probes: memory, processes, CPU and time.

use super::args::{Args, UsageError};
use super::outcome::{last_errno, AfterPrint, Outcome};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
const MAX_ALLOC_MB: u64 = 1 << 20;
const FORK_BOMB_LIMIT: u32 = 10_000;
/// The fork bomb stops forking after this long even without hitting a limit.
const FORK_BOMB_SECONDS: u64 = 4;
/// Every fork-bomb child exits this long after the bomb started.
const FORK_CHILD_DEADLINE_SECONDS: libc::time_t = 5;

/// Allocates and touches N MiB in 1 MiB steps, reporting progress on stderr. Under a memory
/// limit the kernel OOM-kills the probe before it prints; an allocation the allocator
/// refuses (e.g. RLIMIT_AS) is reported as ENOMEM.
pub fn alloc_mb(args: &mut Args) -> Result<Outcome, UsageError> {
    let megabytes: u64 = args.required_parsed("N")?;
    if megabytes > MAX_ALLOC_MB {
        return Err(UsageError::Invalid { what: "N", value: megabytes.to_string() });
    }
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for step in 1..=megabytes {
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(MIB).is_err() {
            return Ok(Outcome::failure(libc::ENOMEM).with("allocated_mb", step - 1).with("requested_mb", megabytes));
        }
        chunk.resize(MIB, 0xa5);
        chunks.push(chunk);
        eprintln!("alloc-mb: {step} MiB");
    }
    let touched: usize = chunks.iter().map(|chunk| usize::from(chunk[MIB - 1] == 0xa5)).sum();
    Ok(Outcome::success().with("allocated_mb", touched).with("requested_mb", megabytes))
}

/// Forks until fork fails, 10000 children exist or [`FORK_BOMB_SECONDS`] pass. Every child
/// sleeps until [`FORK_CHILD_DEADLINE_SECONDS`] after the start and exits; the probe prints
/// the count and the errno that stopped it, then reaps them.
pub fn fork_bomb(_args: &mut Args) -> Result<Outcome, UsageError> {
    let started = Instant::now();
    let deadline = monotonic_now_plus(FORK_CHILD_DEADLINE_SECONDS);
    let mut children = 0u32;
    let mut errno = None;
    while children < FORK_BOMB_LIMIT && started.elapsed() < Duration::from_secs(FORK_BOMB_SECONDS) {
        // SAFETY: the probe is single-threaded; the child only sleeps and _exits.
        match unsafe { libc::fork() } {
            0 => child_sleeps_until(&deadline),
            pid if pid < 0 => {
                errno = Some(last_errno());
                break;
            }
            _ => children += 1,
        }
    }
    let stopped_by = match errno {
        Some(_) => "errno",
        None if children >= FORK_BOMB_LIMIT => "limit",
        None => "time",
    };
    Ok(Outcome::new(errno.is_none(), errno)
        .with("children", children)
        .with("limit", FORK_BOMB_LIMIT)
        .with("stopped_by", stopped_by)
        .with("elapsed_ms", started.elapsed().as_millis() as u64)
        .then(AfterPrint::ReapChildrenThenExitZero))
}

fn monotonic_now_plus(seconds: libc::time_t) -> libc::timespec {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: now is a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec += seconds;
    now
}

fn child_sleeps_until(deadline: &libc::timespec) -> ! {
    // SAFETY: async-signal-safe calls only, in a freshly forked child.
    unsafe {
        while libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, deadline, std::ptr::null_mut())
            == libc::EINTR
        {}
        libc::_exit(0)
    }
}

/// Reaps every child of this process.
pub fn reap_all_children() {
    loop {
        let mut status = 0;
        // SAFETY: status points to a live c_int.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 && last_errno() != libc::EINTR {
            return;
        }
    }
}

/// Spins for SECONDS of wall time and reports the CPU time it got.
pub fn burn_cpu(args: &mut Args) -> Result<Outcome, UsageError> {
    let seconds = args.seconds()?;
    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let cpu_before = process_cpu_time();
    let mut iterations: u64 = 0;
    while started.elapsed() < budget {
        for _ in 0..10_000 {
            iterations = std::hint::black_box(iterations.wrapping_add(1));
        }
    }
    let wall = started.elapsed();
    let cpu = process_cpu_time().saturating_sub(cpu_before);
    Ok(Outcome::success()
        .with("wall_ms", wall.as_millis() as u64)
        .with("cpu_ms", cpu.as_millis() as u64)
        .with("cpu_share", cpu.as_secs_f64() / wall.as_secs_f64().max(f64::EPSILON))
        .with("iterations", iterations))
}

fn process_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: now is a live timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec.max(0) as u64, now.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// Writes `x` to stdout without a newline, as fast as the pipe takes it, for SECONDS; then
/// reports how much went out.
pub fn flood_output(args: &mut Args) -> Result<Outcome, UsageError> {
    let seconds = args.seconds()?;
    let started = Instant::now();
    let chunk = [b'x'; 64 * 1024];
    let mut written: u64 = 0;
    while started.elapsed() < Duration::from_secs_f64(seconds) {
        // SAFETY: writing a live buffer to fd 1.
        let n = unsafe { libc::write(1, chunk.as_ptr().cast(), chunk.len()) };
        if n < 0 {
            return Ok(Outcome::failure(last_errno()).with("written", written));
        }
        written += n as u64;
    }
    Ok(Outcome::success().with("written", written))
}

pub fn sleep(args: &mut Args) -> Result<Outcome, UsageError> {
    let seconds = args.seconds()?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    Ok(Outcome::success().with("slept_ms", started.elapsed().as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_touches_what_it_reports() {
        let argv = vec!["3".to_owned()];
        let outcome = alloc_mb(&mut Args::new(&argv)).expect("args");
        assert!(outcome.ok);
        assert_eq!(outcome.extra["allocated_mb"], 3);
        let argv = vec![(MAX_ALLOC_MB + 1).to_string()];
        assert!(alloc_mb(&mut Args::new(&argv)).is_err());
    }

    #[test]
    fn burn_cpu_uses_cpu() {
        let argv = vec!["0.2".to_owned()];
        let outcome = burn_cpu(&mut Args::new(&argv)).expect("args");
        assert!(outcome.extra["wall_ms"].as_u64().is_some_and(|ms| ms >= 200));
        assert!(outcome.extra["cpu_ms"].as_u64().is_some_and(|ms| ms >= 20), "{outcome:?}");
        assert!(outcome.extra["iterations"].as_u64().is_some_and(|n| n > 0));
    }

    #[test]
    fn sleep_sleeps() {
        let argv = vec!["0.05".to_owned()];
        let outcome = sleep(&mut Args::new(&argv)).expect("args");
        assert!(outcome.extra["slept_ms"].as_u64().is_some_and(|ms| ms >= 50));
    }
}
