//! `wf-probe <probe> [args]`: the probe plugin the integration tests run inside sandboxes.
//!
//! Each invocation performs ONE attack or observation and prints exactly one JSON line
//! `{"probe": name, "ok": bool, "errno": i32|null, ...}` on stdout, then exits 0 unless the
//! kernel kills it. `ok` means the operation itself succeeded (for an attack: the sandbox
//! let it through); `errno` is the error of the failing call. Exceptions, by design:
//! `echo-events` first prints one line per received message, `exit CODE` exits with CODE,
//! `kill-self SIGNAL` prints its line and then dies of SIGNAL, and bad usage exits 2.
//! `wf-probe list` prints the probe names.

#[path = "../probe/mod.rs"]
mod probe;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(probe::run(&args));
}
