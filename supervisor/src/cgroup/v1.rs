//! cgroup v1 (hybrid hosts): limits and statistics spread over one directory per
//! hierarchy — memory, cpu, cpuacct, pids (and freezer, used only to kill).

use super::control::write_value;
use super::enforcement::SwapEnforcement;
use super::error::{CgroupError, Step};
use super::fs::CgroupFs;
use super::limits::{memory_matches, Limits};
use super::stats::{
    keyed_value, ns_to_us, parse_max_or_u64, parse_u64, read_file, read_keyed, read_u64, CgroupStats, CpuStats,
    MemoryStats, PidsStats,
};
use super::v2::HeldLimits;
use std::path::{Path, PathBuf};

/// Controllers a v1 instance cannot do without.
pub const REQUIRED: [&str; 4] = ["memory", "cpu", "cpuacct", "pids"];

/// v1 reports "no memory limit" as the largest page-aligned `i64`.
const V1_MEMORY_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;

/// The instance's directory in each v1 hierarchy (co-mounted controllers share one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V1Dirs {
    pub memory: PathBuf,
    pub cpu: PathBuf,
    pub cpuacct: PathBuf,
    pub pids: PathBuf,
    pub freezer: Option<PathBuf>,
}

/// Writes every limit and verifies each; returns how swap ended up limited.
pub(crate) fn apply_limits(
    fs: &dyn CgroupFs,
    dirs: &V1Dirs,
    limits: &Limits,
    page_size: u64,
) -> Result<SwapEnforcement, CgroupError> {
    let swap = apply_memory(fs, &dirs.memory, limits, page_size)?;
    // Period first: the quota is checked against the period in force.
    write_value(fs, &dirs.cpu.join("cpu.cfs_period_us"), &limits.cpu_period_us.to_string())?;
    write_value(fs, &dirs.cpu.join("cpu.cfs_quota_us"), &limits.cpu_quota_us.to_string())?;
    write_value(fs, &dirs.pids.join("pids.max"), &limits.pids_max.to_string())?;
    Ok(swap)
}

/// `memory.limit_in_bytes`, then (with swap accounting) `memory.memsw.limit_in_bytes`.
/// The kernel insists on memsw >= limit at every moment, so when the new limit is
/// above the memsw value in force, memsw is raised first; otherwise the limit goes first.
fn apply_memory(
    fs: &dyn CgroupFs,
    dir: &Path,
    limits: &Limits,
    page_size: u64,
) -> Result<SwapEnforcement, CgroupError> {
    let limit_path = dir.join("memory.limit_in_bytes");
    let memsw_path = dir.join("memory.memsw.limit_in_bytes");
    if !fs.exists(&memsw_path) {
        write_memory(fs, &limit_path, limits.memory_max_bytes, page_size)?;
        return Ok(SwapEnforcement::Unaccounted);
    }
    let memsw_now = read_back_u64(fs, &memsw_path)?;
    let (held_limit, held_memsw) = if limits.memory_max_bytes > memsw_now {
        let memsw = write_memory(fs, &memsw_path, limits.memsw_bytes(), page_size)?;
        (write_memory(fs, &limit_path, limits.memory_max_bytes, page_size)?, memsw)
    } else {
        let limit = write_memory(fs, &limit_path, limits.memory_max_bytes, page_size)?;
        (limit, write_memory(fs, &memsw_path, limits.memsw_bytes(), page_size)?)
    };
    Ok(SwapEnforcement::Limited { max_bytes: held_memsw.saturating_sub(held_limit) })
}

fn read_back_u64(fs: &dyn CgroupFs, path: &Path) -> Result<u64, CgroupError> {
    let text = fs.read(path).map_err(CgroupError::io(Step::ReadBack, path))?;
    parse_u64(path, &text)
}

/// Writes a memory limit and returns the page-rounded value the kernel holds.
fn write_memory(fs: &dyn CgroupFs, path: &Path, bytes: u64, page_size: u64) -> Result<u64, CgroupError> {
    fs.write(path, &bytes.to_string()).map_err(CgroupError::io(Step::WriteLimit, path))?;
    let held = read_back_u64(fs, path)?;
    if memory_matches(bytes, held, page_size) {
        return Ok(held);
    }
    Err(CgroupError::Mismatch {
        step: Step::ReadBack,
        path: path.to_owned(),
        written: bytes.to_string(),
        read: held.to_string(),
    })
}

fn memory_limit(value: u64) -> Option<u64> {
    (value < V1_MEMORY_UNLIMITED).then_some(value)
}

/// `cpu.cfs_quota_us` is `-1` when unlimited.
fn read_quota(fs: &dyn CgroupFs, path: &Path) -> Result<Option<u64>, CgroupError> {
    let text = read_file(fs, path)?;
    match text.trim() {
        "-1" => Ok(None),
        other => parse_u64(path, other).map(Some),
    }
}

pub(crate) fn read_limits(fs: &dyn CgroupFs, dirs: &V1Dirs) -> Result<HeldLimits, CgroupError> {
    let memory = memory_limit(read_u64(fs, &dirs.memory.join("memory.limit_in_bytes"))?);
    let memsw_path = dirs.memory.join("memory.memsw.limit_in_bytes");
    let swap = match (memory, fs.exists(&memsw_path)) {
        (Some(limit), true) => memory_limit(read_u64(fs, &memsw_path)?).map(|memsw| memsw.saturating_sub(limit)),
        _ => None,
    };
    let quota = read_quota(fs, &dirs.cpu.join("cpu.cfs_quota_us"))?;
    let period = read_u64(fs, &dirs.cpu.join("cpu.cfs_period_us"))?;
    let pids = parse_max_or_u64(&dirs.pids.join("pids.max"), &read_file(fs, &dirs.pids.join("pids.max"))?)?;
    Ok((memory, swap, quota, period, pids))
}

pub(crate) fn stats(fs: &dyn CgroupFs, dirs: &V1Dirs) -> Result<CgroupStats, CgroupError> {
    let (memory_limit_held, swap_max, ..) = read_limits(fs, dirs)?;
    let memory = MemoryStats {
        current: read_u64(fs, &dirs.memory.join("memory.usage_in_bytes"))?,
        peak: Some(read_u64(fs, &dirs.memory.join("memory.max_usage_in_bytes"))?),
        limit: memory_limit_held,
        oom_kills: read_keyed(fs, &dirs.memory.join("memory.oom_control"), "oom_kill")?,
        limit_hits: limit_hits(fs, &dirs.memory)?,
        swap_max,
    };
    let cpu_path = dirs.cpu.join("cpu.stat");
    let cpu_stat = read_file(fs, &cpu_path)?;
    let cpu = CpuStats {
        usage_usec: ns_to_us(read_u64(fs, &dirs.cpuacct.join("cpuacct.usage"))?),
        nr_periods: keyed_value(&cpu_path, &cpu_stat, "nr_periods")?,
        nr_throttled: keyed_value(&cpu_path, &cpu_stat, "nr_throttled")?,
        throttled_usec: ns_to_us(keyed_value(&cpu_path, &cpu_stat, "throttled_time")?),
    };
    let pids = PidsStats {
        current: read_u64(fs, &dirs.pids.join("pids.current"))?,
        max: parse_max_or_u64(&dirs.pids.join("pids.max"), &read_file(fs, &dirs.pids.join("pids.max"))?)?,
        max_events: read_keyed(fs, &dirs.pids.join("pids.events"), "max")?,
    };
    Ok(CgroupStats { memory, cpu, pids })
}

/// Failed charges: with swap accounting a charge is checked against memsw first, so a
/// hit of the (equal) memsw limit counts in `memory.memsw.failcnt`, not `memory.failcnt`.
fn limit_hits(fs: &dyn CgroupFs, dir: &Path) -> Result<u64, CgroupError> {
    let memory = read_u64(fs, &dir.join("memory.failcnt"))?;
    let memsw_path = dir.join("memory.memsw.failcnt");
    let memsw = if fs.exists(&memsw_path) { read_u64(fs, &memsw_path)? } else { 0 };
    Ok(memory.saturating_add(memsw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v1_unlimited_sentinel_is_not_a_limit() {
        assert_eq!(memory_limit(9_223_372_036_854_771_712), None);
        assert_eq!(memory_limit(64 << 20), Some(64 << 20));
    }
}
