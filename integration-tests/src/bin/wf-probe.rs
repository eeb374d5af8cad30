//! `wf-probe <probe> [args]`: the probe plugin the integration tests run inside sandboxes.
//!
//! Each invocation performs ONE attack or observation and prints exactly one JSON line
//! `{"probe": name, "ok": bool, "errno": i32|null, ...}` on stdout, then exits 0 unless the
//! kernel kills it. `ok` means the operation itself succeeded (for an attack: the sandbox
//! let it through); `errno` is the error of the failing call. Exceptions, by design:
//! `echo-events` first prints one line per received message, `exit CODE` exits with CODE,
//! `kill-self SIGNAL` prints its line and then dies of SIGNAL, and bad usage exits 2.
//! `wf-probe list` prints the probe names.
//!
//! Started without arguments (as the daemon starts every entry point), it takes them from
//! `probe-args.json` in its working directory (the plugin directory): a JSON array of strings.

#[path = "../probe/mod.rs"]
mod probe;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        args = args_from_file();
    }
    std::process::exit(probe::run(&args));
}

fn args_from_file() -> Vec<String> {
    let Ok(text) = std::fs::read_to_string("probe-args.json") else { return Vec::new() };
    serde_json::from_str(&text).unwrap_or_default()
}
