//! cgroup v2: delegation of our own cgroup, limits of an instance, its statistics.
//!
//! The no-internal-process rule: a non-root cgroup with controllers enabled in its
//! `cgroup.subtree_control` may hold no processes. When our own cgroup is not the root
//! and the controllers are not enabled yet, we do what a systemd `Delegate=yes` unit
//! does: move our own process (never any other) into a leaf we create,
//! `<own>/<parent>-supervisor`, then enable `+cpu +memory +pids` in `<own>` and in
//! `<own>/<parent>`, under which every instance lives. If `<own>` also holds processes
//! that are not ours we stop with [`CgroupError::OwnCgroupShared`]: moving them is not ours to do.

use super::control::{create_dir, ensure_dir, write_value};
use super::enforcement::SwapEnforcement;
use super::error::{CgroupError, Step};
use super::fs::CgroupFs;
use super::limits::{memory_matches, Limits};
use super::procs::list_pids;
use super::stats::{
    keyed_value, parse_max_or_u64, read_file, read_keyed, read_max_or_u64, read_optional_u64, read_u64, CgroupStats,
    CpuStats, MemoryStats, PidsStats,
};
use std::path::{Path, PathBuf};

/// Controllers every v2 instance needs.
pub const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// What applying limits found out about optional kernel features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct V2Applied {
    pub swap: SwapEnforcement,
    pub oom_group: bool,
}

/// Makes `own` able to have children with the instance controllers enabled: if they
/// are not enabled in its `cgroup.subtree_control` yet and `own` is not the real root
/// cgroup, our own process first moves into `leaf` (created if missing; appended to
/// `created`). `own_is_mount_root` says whether `own` is the root of the mount; whether
/// that is the real root is checked here (see [`is_real_root`]).
pub(crate) fn delegate_own(
    fs: &dyn CgroupFs,
    own: &Path,
    own_is_mount_root: bool,
    leaf: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<(), CgroupError> {
    if missing_in_subtree(fs, own)?.is_empty() {
        return Ok(());
    }
    check_available(fs, own)?;
    if !(own_is_mount_root && is_real_root(fs, own)) {
        move_self_to_leaf(fs, own, leaf, created)?;
    }
    enable_controllers(fs, own)
}

/// Whether `dir` is the real root cgroup, the only one that may hold processes and
/// enable controllers at once. The root of the mount is not always it: inside a
/// container's cgroup namespace (Docker's default on v2 hosts), or when a subtree is
/// bind-mounted, `/proc/self/cgroup` says `/` for an ordinary cgroup of the host.
/// Every non-root cgroup has `cgroup.type` (Linux 4.14+); the real root has none. On
/// older kernels no cgroup has it, and the mount's root is taken as the root.
pub(crate) fn is_real_root(fs: &dyn CgroupFs, dir: &Path) -> bool {
    !fs.exists(&dir.join("cgroup.type"))
}

/// Creates `parent` (appended to `created` if we made it) and enables the instance
/// controllers in its `cgroup.subtree_control`; `parent` must hold no process.
pub(crate) fn prepare_parent_dir(
    fs: &dyn CgroupFs,
    parent: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<(), CgroupError> {
    if ensure_dir(fs, parent)? {
        created.push(parent.to_owned());
    }
    if missing_in_subtree(fs, parent)?.is_empty() {
        return Ok(());
    }
    check_available(fs, parent)?;
    refuse_foreign_processes(fs, parent)?;
    enable_controllers(fs, parent)
}

fn read_words(fs: &dyn CgroupFs, path: &Path) -> Result<Vec<String>, CgroupError> {
    let text = fs.read(path).map_err(CgroupError::io(Step::ReadControllers, path))?;
    Ok(text.split_whitespace().map(str::to_owned).collect())
}

fn missing_in_subtree(fs: &dyn CgroupFs, dir: &Path) -> Result<Vec<&'static str>, CgroupError> {
    let enabled = read_words(fs, &dir.join("cgroup.subtree_control"))?;
    Ok(CONTROLLERS.into_iter().filter(|c| !enabled.iter().any(|e| e == c)).collect())
}

fn check_available(fs: &dyn CgroupFs, dir: &Path) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.controllers");
    let available = read_words(fs, &path)?;
    match CONTROLLERS.into_iter().find(|c| !available.iter().any(|a| a == c)) {
        None => Ok(()),
        Some(controller) => Err(CgroupError::ControllerMissing {
            controller: controller.to_owned(),
            detail: format!("{} offers only {:?} (not delegated to us)", path.display(), available),
        }),
    }
}

fn move_self_to_leaf(
    fs: &dyn CgroupFs,
    own: &Path,
    leaf: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<(), CgroupError> {
    let pids = list_pids(fs, own)?;
    if pids.is_empty() {
        return Ok(());
    }
    let me = fs.own_pid();
    let others: Vec<u32> = pids.into_iter().filter(|p| *p != me).collect();
    if !others.is_empty() {
        return Err(CgroupError::OwnCgroupShared { path: own.to_owned(), pids: others });
    }
    if ensure_dir(fs, leaf)? {
        created.push(leaf.to_owned());
    }
    let procs = leaf.join("cgroup.procs");
    fs.write(&procs, &me.to_string()).map_err(CgroupError::io(Step::MoveSelf, procs))
}

fn refuse_foreign_processes(fs: &dyn CgroupFs, dir: &Path) -> Result<(), CgroupError> {
    let pids = list_pids(fs, dir)?;
    if pids.is_empty() {
        Ok(())
    } else {
        Err(CgroupError::OwnCgroupShared { path: dir.to_owned(), pids })
    }
}

fn enable_controllers(fs: &dyn CgroupFs, dir: &Path) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.subtree_control");
    for controller in missing_in_subtree(fs, dir)? {
        fs.write(&path, &format!("+{controller}")).map_err(CgroupError::io(Step::EnableControllers, &path))?;
    }
    let still_missing = missing_in_subtree(fs, dir)?;
    if still_missing.is_empty() {
        return Ok(());
    }
    Err(CgroupError::Mismatch {
        step: Step::EnableControllers,
        path,
        written: CONTROLLERS.map(|c| format!("+{c}")).join(" "),
        read: format!("missing {still_missing:?}"),
    })
}

/// Creates the instance directory (which must not exist yet).
pub(crate) fn create_instance(fs: &dyn CgroupFs, dir: &Path) -> Result<(), CgroupError> {
    create_dir(fs, dir)
}

/// Writes every limit of `limits` into the instance at `dir` and verifies each one.
pub(crate) fn apply_limits(
    fs: &dyn CgroupFs,
    dir: &Path,
    limits: &Limits,
    page_size: u64,
) -> Result<V2Applied, CgroupError> {
    write_memory(fs, &dir.join("memory.max"), limits.memory_max_bytes, page_size)?;
    let swap_path = dir.join("memory.swap.max");
    let swap = if fs.exists(&swap_path) {
        SwapEnforcement::Limited { max_bytes: write_memory(fs, &swap_path, limits.swap_max_bytes, page_size)? }
    } else {
        SwapEnforcement::Unaccounted
    };
    let cpu_max = format!("{} {}", limits.cpu_quota_us, limits.cpu_period_us);
    write_value(fs, &dir.join("cpu.max"), &cpu_max)?;
    write_value(fs, &dir.join("pids.max"), &limits.pids_max.to_string())?;
    let oom_group_path = dir.join("memory.oom.group");
    let oom_group = fs.exists(&oom_group_path);
    if oom_group {
        write_value(fs, &oom_group_path, "1")?;
    }
    Ok(V2Applied { swap, oom_group })
}

/// Writes a memory-like limit and returns the (page-rounded) value the kernel holds.
fn write_memory(fs: &dyn CgroupFs, path: &Path, bytes: u64, page_size: u64) -> Result<u64, CgroupError> {
    fs.write(path, &bytes.to_string()).map_err(CgroupError::io(Step::WriteLimit, path))?;
    let text = fs.read(path).map_err(CgroupError::io(Step::ReadBack, path))?;
    match parse_max_or_u64(path, &text)? {
        Some(held) if memory_matches(bytes, held, page_size) => Ok(held),
        _ => Err(CgroupError::Mismatch {
            step: Step::ReadBack,
            path: path.to_owned(),
            written: bytes.to_string(),
            read: text.trim().to_owned(),
        }),
    }
}

/// The limits the kernel holds now: (memory, swap, cpu quota, cpu period, pids); `None` = `max`.
pub(crate) type HeldLimits = (Option<u64>, Option<u64>, Option<u64>, u64, Option<u64>);

pub(crate) fn read_limits(fs: &dyn CgroupFs, dir: &Path) -> Result<HeldLimits, CgroupError> {
    let memory = read_max_or_u64(fs, &dir.join("memory.max"))?;
    let swap_path = dir.join("memory.swap.max");
    let swap = if fs.exists(&swap_path) { read_max_or_u64(fs, &swap_path)? } else { None };
    let (quota, period) = read_cpu_max(fs, &dir.join("cpu.max"))?;
    let pids = read_max_or_u64(fs, &dir.join("pids.max"))?;
    Ok((memory, swap, quota, period, pids))
}

/// `cpu.max` is `"<quota|max> <period>"`.
fn read_cpu_max(fs: &dyn CgroupFs, path: &Path) -> Result<(Option<u64>, u64), CgroupError> {
    let text = read_file(fs, path)?;
    let mut words = text.split_whitespace();
    let (Some(quota), Some(period), None) = (words.next(), words.next(), words.next()) else {
        return Err(CgroupError::Parse { path: path.to_owned(), what: "\"<quota> <period>\"", content: text });
    };
    Ok((parse_max_or_u64(path, quota)?, super::stats::parse_u64(path, period)?))
}

pub(crate) fn stats(fs: &dyn CgroupFs, dir: &Path) -> Result<CgroupStats, CgroupError> {
    let events_path = dir.join("memory.events");
    let events = read_file(fs, &events_path)?;
    let swap_path = dir.join("memory.swap.max");
    let memory = MemoryStats {
        current: read_u64(fs, &dir.join("memory.current"))?,
        peak: read_optional_u64(fs, &dir.join("memory.peak"))?,
        limit: read_max_or_u64(fs, &dir.join("memory.max"))?,
        oom_kills: keyed_value(&events_path, &events, "oom_kill")?,
        limit_hits: keyed_value(&events_path, &events, "max")?,
        swap_max: if fs.exists(&swap_path) { read_max_or_u64(fs, &swap_path)? } else { None },
    };
    let cpu_path = dir.join("cpu.stat");
    let cpu_stat = read_file(fs, &cpu_path)?;
    let cpu = CpuStats {
        usage_usec: keyed_value(&cpu_path, &cpu_stat, "usage_usec")?,
        nr_periods: keyed_value(&cpu_path, &cpu_stat, "nr_periods")?,
        nr_throttled: keyed_value(&cpu_path, &cpu_stat, "nr_throttled")?,
        throttled_usec: keyed_value(&cpu_path, &cpu_stat, "throttled_usec")?,
    };
    let pids = PidsStats {
        current: read_u64(fs, &dir.join("pids.current"))?,
        max: read_max_or_u64(fs, &dir.join("pids.max"))?,
        max_events: read_keyed(fs, &dir.join("pids.events"), "max")?,
    };
    Ok(CgroupStats { memory, cpu, pids })
}

/// `cgroup.events` `populated` of a v2 cgroup (covers its whole subtree).
pub(crate) fn is_populated(fs: &dyn CgroupFs, dir: &Path) -> Result<bool, CgroupError> {
    let path = dir.join("cgroup.events");
    let text = fs.read(&path).map_err(CgroupError::io(Step::ListProcesses, &path))?;
    Ok(keyed_value(&path, &text, "populated")? != 0)
}

/// Whether `cgroup.events` reports the cgroup frozen.
pub(crate) fn is_frozen(fs: &dyn CgroupFs, dir: &Path) -> Result<bool, CgroupError> {
    let path = dir.join("cgroup.events");
    let text = fs.read(&path).map_err(CgroupError::io(Step::Freeze, &path))?;
    Ok(keyed_value(&path, &text, "frozen")? != 0)
}
