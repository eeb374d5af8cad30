//! Ending every process of a plugin cgroup, and telling whether it is empty.
//!
//! `cgroup.kill` does it atomically. Without it, members are frozen first so none can
//! fork while we signal, then SIGKILLed, then thawed (a frozen task only dies once
//! thawed); this repeats until the cgroup is empty, for a bounded number of rounds.
//! These calls block for at most a few seconds; async callers use `spawn_blocking`.

use super::enforcement::{HierarchyDir, HierarchyKind, KillMethod};
use super::error::{CgroupError, Step};
use super::fs::CgroupFs;
use super::procs::list_pids_in_tree;
use super::v2;
use std::path::Path;
use std::time::{Duration, Instant};

const KILL_ROUNDS: u32 = 20;
/// How long one round waits for the members to disappear.
const ROUND_SETTLE: Duration = Duration::from_millis(250);
/// How long a freeze may take before we signal anyway (signals still land; thaw follows).
const FREEZE_SETTLE: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(2);

/// Kills everything in the cgroup (`kill_dir` is where `method` acts; `nodes` are all
/// the directories of the plugin cgroup, checked for emptiness).
pub(crate) fn kill_all(
    fs: &dyn CgroupFs,
    method: KillMethod,
    kill_dir: &Path,
    nodes: &[HierarchyDir],
) -> Result<(), CgroupError> {
    for _ in 0..KILL_ROUNDS {
        if is_empty(fs, nodes)? {
            return Ok(());
        }
        match method {
            KillMethod::CgroupKill => {
                let path = kill_dir.join("cgroup.kill");
                fs.write(&path, "1").map_err(CgroupError::io(Step::KillCgroup, path))?;
            }
            KillMethod::V1FreezerAndSignal => freeze_signal_thaw(fs, kill_dir, &V1_FREEZER)?,
            KillMethod::V2FreezeAndSignal => freeze_signal_thaw(fs, kill_dir, &V2_FREEZE)?,
        }
        if wait_until_empty(fs, nodes, ROUND_SETTLE)? {
            return Ok(());
        }
    }
    let pids = remaining(fs, nodes)?;
    if pids.is_empty() {
        return Ok(());
    }
    Err(CgroupError::KillIncomplete { path: kill_dir.to_owned(), pids, rounds: KILL_ROUNDS })
}

/// No process left in any directory of the plugin cgroup (or below it).
pub(crate) fn is_empty(fs: &dyn CgroupFs, nodes: &[HierarchyDir]) -> Result<bool, CgroupError> {
    for node in nodes {
        let empty = match node.kind {
            HierarchyKind::V2 => !v2::is_populated(fs, &node.dir)?,
            HierarchyKind::V1 => list_pids_in_tree(fs, &node.dir)?.is_empty(),
        };
        if !empty {
            return Ok(false);
        }
    }
    Ok(true)
}

fn remaining(fs: &dyn CgroupFs, nodes: &[HierarchyDir]) -> Result<Vec<u32>, CgroupError> {
    let mut pids = Vec::new();
    for node in nodes {
        pids.extend(list_pids_in_tree(fs, &node.dir)?);
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn wait_until_empty(fs: &dyn CgroupFs, nodes: &[HierarchyDir], limit: Duration) -> Result<bool, CgroupError> {
    let start = Instant::now();
    loop {
        if is_empty(fs, nodes)? {
            return Ok(true);
        }
        if start.elapsed() >= limit {
            return Ok(false);
        }
        std::thread::sleep(POLL);
    }
}

/// The two freezer interfaces: (file, freeze value, thaw value, "is frozen" check).
struct Freezer {
    file: &'static str,
    freeze: &'static str,
    thaw: &'static str,
    is_frozen: fn(&dyn CgroupFs, &Path) -> Result<bool, CgroupError>,
}

const V1_FREEZER: Freezer =
    Freezer { file: "freezer.state", freeze: "FROZEN", thaw: "THAWED", is_frozen: v1_is_frozen };
const V2_FREEZE: Freezer = Freezer { file: "cgroup.freeze", freeze: "1", thaw: "0", is_frozen: v2::is_frozen };

fn v1_is_frozen(fs: &dyn CgroupFs, dir: &Path) -> Result<bool, CgroupError> {
    let path = dir.join("freezer.state");
    let state = fs.read(&path).map_err(CgroupError::io(Step::Freeze, path))?;
    Ok(state.trim() == "FROZEN")
}

fn freeze_signal_thaw(fs: &dyn CgroupFs, dir: &Path, freezer: &Freezer) -> Result<(), CgroupError> {
    let path = dir.join(freezer.file);
    fs.write(&path, freezer.freeze).map_err(CgroupError::io(Step::Freeze, &path))?;
    let frozen = wait_frozen(fs, dir, freezer);
    let signalled = frozen.and_then(|()| signal_members(fs, dir));
    // Thaw whatever happened above, or SIGKILLed members stay frozen and never die.
    let thawed = fs.write(&path, freezer.thaw).map_err(CgroupError::io(Step::Thaw, &path));
    signalled.and(thawed)
}

fn wait_frozen(fs: &dyn CgroupFs, dir: &Path, freezer: &Freezer) -> Result<(), CgroupError> {
    let start = Instant::now();
    while !(freezer.is_frozen)(fs, dir)? && start.elapsed() < FREEZE_SETTLE {
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// SIGKILLs every member of `dir` and below. Our own pid is never signalled; a member
/// that is already gone (ESRCH) is fine.
fn signal_members(fs: &dyn CgroupFs, dir: &Path) -> Result<(), CgroupError> {
    let me = fs.own_pid();
    let mut errors = Vec::new();
    for pid in list_pids_in_tree(fs, dir)? {
        if pid == me {
            errors.push(CgroupError::UnsafePid { pid, path: dir.to_owned(), reason: "it is the supervisor itself" });
            continue;
        }
        match fs.sigkill(pid) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => errors.push(CgroupError::io(Step::Signal, dir.join(format!("cgroup.procs:{pid}")))(e)),
        }
    }
    CgroupError::from_list(errors).map_or(Ok(()), Err)
}
