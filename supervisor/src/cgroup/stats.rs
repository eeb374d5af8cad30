//! Usage statistics of one plugin cgroup and the parsers for the cgroupfs file formats
//! they come from (single values, `max`-or-number, flat `key value` files).

use super::error::{CgroupError, Step};
use super::fs::CgroupFs;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    /// Bytes charged now (v2 `memory.current`, v1 `memory.usage_in_bytes`).
    pub current: u64,
    /// Highest charge seen (v2 `memory.peak`, absent before Linux 5.19; v1 `memory.max_usage_in_bytes`).
    pub peak: Option<u64>,
    /// The memory limit; `None` = unlimited.
    pub limit: Option<u64>,
    /// Processes killed by the OOM killer in this cgroup.
    pub oom_kills: u64,
    /// Times the usage hit the limit (v2 `memory.events` `max`; v1 `memory.failcnt` +
    /// `memory.memsw.failcnt`, which Linux 6.18 on the hybrid dev host leaves at 0 even
    /// across an OOM kill: on v1 rely on `oom_kills`).
    pub limit_hits: u64,
    /// Swap allowed; `None` = unlimited or swap not accounted on this host.
    pub swap_max: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    pub usage_usec: u64,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_usec: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    pub current: u64,
    /// `None` = unlimited.
    pub max: Option<u64>,
    /// Forks refused because the limit was reached.
    pub max_events: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CgroupStats {
    pub memory: MemoryStats,
    pub cpu: CpuStats,
    pub pids: PidsStats,
}

/// Reads a control file for statistics.
pub(crate) fn read_file(fs: &dyn CgroupFs, path: &Path) -> Result<String, CgroupError> {
    fs.read(path).map_err(CgroupError::io(Step::ReadStats, path))
}

/// A file holding one unsigned number.
pub(crate) fn read_u64(fs: &dyn CgroupFs, path: &Path) -> Result<u64, CgroupError> {
    parse_u64(path, &read_file(fs, path)?)
}

/// A file holding one unsigned number, or nothing if the file does not exist.
pub(crate) fn read_optional_u64(fs: &dyn CgroupFs, path: &Path) -> Result<Option<u64>, CgroupError> {
    if !fs.exists(path) {
        return Ok(None);
    }
    read_u64(fs, path).map(Some)
}

/// A file holding `max` or a number.
pub(crate) fn read_max_or_u64(fs: &dyn CgroupFs, path: &Path) -> Result<Option<u64>, CgroupError> {
    parse_max_or_u64(path, &read_file(fs, path)?)
}

/// One key of a flat-keyed file (`key value` per line).
pub(crate) fn read_keyed(fs: &dyn CgroupFs, path: &Path, key: &'static str) -> Result<u64, CgroupError> {
    keyed_value(path, &read_file(fs, path)?, key)
}

pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64, CgroupError> {
    text.trim().parse::<u64>().map_err(|_| parse_error(path, "an unsigned number", text))
}

pub(crate) fn parse_max_or_u64(path: &Path, text: &str) -> Result<Option<u64>, CgroupError> {
    match text.trim() {
        "max" => Ok(None),
        other => parse_u64(path, other).map(Some),
    }
}

/// The value of `key` in a flat-keyed file such as `memory.events` or `cpu.stat`.
pub(crate) fn keyed_value(path: &Path, text: &str, key: &'static str) -> Result<u64, CgroupError> {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .ok_or_else(|| parse_error(path, key, text))
}

fn parse_error(path: &Path, what: &'static str, text: &str) -> CgroupError {
    // Control files are small; cap what goes into an error message anyway.
    let content: String = text.chars().take(256).collect();
    CgroupError::Parse { path: path.to_owned(), what, content }
}

/// Nanoseconds (v1 counters) to microseconds (what the report uses on both versions).
pub(crate) fn ns_to_us(ns: u64) -> u64 {
    ns / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/cg/x";

    #[test]
    fn single_values_parse_and_junk_is_an_error() {
        assert_eq!(parse_u64(Path::new(P), "123\n").unwrap(), 123);
        assert!(matches!(parse_u64(Path::new(P), "-1\n"), Err(CgroupError::Parse { .. })));
        assert!(matches!(parse_u64(Path::new(P), ""), Err(CgroupError::Parse { .. })));
        assert!(matches!(parse_u64(Path::new(P), "99999999999999999999999"), Err(CgroupError::Parse { .. })));
    }

    #[test]
    fn max_means_unlimited() {
        assert_eq!(parse_max_or_u64(Path::new(P), "max\n").unwrap(), None);
        assert_eq!(parse_max_or_u64(Path::new(P), "4096\n").unwrap(), Some(4096));
        assert!(parse_max_or_u64(Path::new(P), "maximum").is_err());
    }

    #[test]
    fn keyed_files_v2_and_v1_shapes() {
        let events = "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed_value(Path::new(P), events, "oom_kill").unwrap(), 1);
        assert_eq!(keyed_value(Path::new(P), events, "max").unwrap(), 7);
        let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(Path::new(P), oom_control, "oom_kill").unwrap(), 3);
        let v1_cpu = "nr_periods 10\nnr_throttled 4\nthrottled_time 5000000\nnr_bursts 0\nburst_time 0\n";
        assert_eq!(keyed_value(Path::new(P), v1_cpu, "throttled_time").unwrap(), 5_000_000);
        let err = keyed_value(Path::new(P), v1_cpu, "usage_usec").unwrap_err();
        assert!(matches!(err, CgroupError::Parse { what: "usage_usec", .. }));
    }

    #[test]
    fn a_key_prefix_does_not_match_a_longer_key() {
        assert!(keyed_value(Path::new(P), "max.imposed 3\n", "max").is_err());
        assert_eq!(keyed_value(Path::new(P), "max.imposed 3\nmax 2\n", "max").unwrap(), 2);
    }

    #[test]
    fn huge_junk_is_truncated_in_the_error() {
        let junk = "x".repeat(10_000);
        let CgroupError::Parse { content, .. } = parse_u64(Path::new(P), &junk).unwrap_err() else {
            panic!("not a parse error")
        };
        assert_eq!(content.len(), 256);
    }

    #[test]
    fn nanoseconds_become_microseconds() {
        assert_eq!(ns_to_us(5_000_999), 5_000);
    }
}
