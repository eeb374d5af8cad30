//! One sandbox's cgroup for the one-shot `run`: creation under the policy's rules,
//! placement, final accounting and teardown.

use crate::cgroup::{CgroupError, CgroupLayout, CgroupManager, Limits, PluginCgroup, RealCgroupFs, SwapEnforcement};
use crate::report::{LayerStatus, RunReport};
use nix::unistd::Pid;
use wf_policy::spec::{Layer, SandboxSpec};

/// Directory name of the supervisor's subtree under its own cgroup.
pub const PARENT_NAME: &str = "wfsandbox";

pub struct SandboxCgroup {
    manager: CgroupManager,
    cgroup: PluginCgroup,
}

/// What the cgroup counted over the plugin's life.
#[derive(Debug, Clone, Copy)]
pub struct FinalStats {
    pub peak_memory_bytes: Option<u64>,
    pub cpu_usage_usec: u64,
    pub throttled_periods: u64,
    pub oom_kills: u64,
    pub pids_limit_hits: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxCgroupError {
    #[error("cgroup layout: {0}")]
    Layout(String),
    #[error("{0}")]
    Cgroup(#[from] CgroupError),
    #[error("the kernel holds no {what} limit for the plugin's cgroup")]
    NotEnforced { what: &'static str },
    #[error("the host has swap but does not account it per cgroup, so the memory limit can be evaded")]
    SwapUnaccounted,
}

/// Create the plugin's cgroup, or return `None` when the host cannot and the policy
/// lets cgroups degrade. The report records which.
pub fn create(
    spec: &SandboxSpec,
    instance: &str,
    parent: Option<&str>,
    report: &mut RunReport,
) -> Result<Option<SandboxCgroup>, SandboxCgroupError> {
    match try_create(spec, instance, parent) {
        Ok((cg, enforcement)) => {
            report.enforced.cgroups = LayerStatus::enforced(enforcement);
            Ok(Some(cg))
        }
        Err(e) if spec.layers.degradable.value.contains(&Layer::Cgroups) => {
            report.enforced.cgroups = LayerStatus::degraded(&e.to_string());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn try_create(
    spec: &SandboxSpec,
    instance: &str,
    parent: Option<&str>,
) -> Result<(SandboxCgroup, serde_json::Value), SandboxCgroupError> {
    let layout = CgroupLayout::detect().map_err(|e| SandboxCgroupError::Layout(e.to_string()))?;
    let manager = CgroupManager::new(layout, parent.unwrap_or(PARENT_NAME), Box::new(RealCgroupFs))?;
    manager.prepare()?;
    let cgroup = manager.create(instance, &Limits::from_spec(&spec.cgroup))?;
    let sandbox = SandboxCgroup { manager, cgroup };
    let enforcement = sandbox.cgroup.enforcement()?;
    if enforcement.memory_max_bytes.is_none() {
        return Err(SandboxCgroupError::NotEnforced { what: "memory" });
    }
    if enforcement.cpu_quota_us.is_none() {
        return Err(SandboxCgroupError::NotEnforced { what: "CPU" });
    }
    if enforcement.pids_max.is_none() {
        return Err(SandboxCgroupError::NotEnforced { what: "pids" });
    }
    match enforcement.swap {
        SwapEnforcement::Unlimited => return Err(SandboxCgroupError::NotEnforced { what: "swap" }),
        SwapEnforcement::Unaccounted if host_has_swap() => return Err(SandboxCgroupError::SwapUnaccounted),
        _ => {}
    }
    let json = serde_json::to_value(&enforcement).unwrap_or_default();
    Ok((sandbox, json))
}

/// Any configured swap at all, from /proc/meminfo (`SwapTotal`).
/// An unreadable or unparsable meminfo counts as "has swap" (fail closed).
fn host_has_swap() -> bool {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    swap_total_kb(&meminfo).is_none_or(|kb| kb > 0)
}

fn swap_total_kb(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| l.strip_prefix("SwapTotal:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

impl SandboxCgroup {
    pub fn add_process(&self, pid: Pid) -> Result<(), String> {
        let raw = u32::try_from(pid.as_raw()).map_err(|_| format!("invalid pid {pid}"))?;
        self.cgroup.add_process(raw).map_err(|e| e.to_string())
    }

    /// An fd of the v2 directory `clone3(CLONE_INTO_CGROUP)` targets (pure v2, or the
    /// unified mount of a hybrid host).
    pub fn clone_into_fd(&self) -> Option<std::io::Result<std::os::fd::OwnedFd>> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.cgroup.clone_into_dir()?;
        Some(
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(dir)
                .map(std::os::fd::OwnedFd::from),
        )
    }

    /// The v1 `tasks` files, opened for writing (close-on-exec): the child writes `0` to
    /// each to move itself (see `wf_sandbox_child::cgroup_join`).
    pub fn join_fds(&self) -> std::io::Result<Vec<std::os::fd::OwnedFd>> {
        use std::os::unix::fs::OpenOptionsExt;
        self.cgroup
            .v1_tasks_files()
            .iter()
            .map(|path| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                    .open(path)
                    .map(std::os::fd::OwnedFd::from)
            })
            .collect()
    }

    /// Kill every process in the cgroup (the wall-clock limit, teardown).
    pub fn kill(&self) {
        if let Err(e) = self.cgroup.kill() {
            eprintln!("wfsandbox: killing the plugin's cgroup: {e}");
        }
    }

    pub fn final_stats(&self) -> Option<FinalStats> {
        let s = self.cgroup.stats().ok()?;
        Some(FinalStats {
            peak_memory_bytes: s.memory.peak,
            cpu_usage_usec: s.cpu.usage_usec,
            throttled_periods: s.cpu.nr_throttled,
            oom_kills: s.memory.oom_kills,
            pids_limit_hits: s.pids.max_events,
        })
    }

    /// Kill what is left, remove the cgroup and the supervisor's empty parents.
    /// Returns problems for the report; nothing is silently ignored.
    pub fn destroy(mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.cgroup.kill() {
            problems.push(format!("cgroup kill: {e}"));
        }
        if let Err(e) = self.cgroup.remove() {
            problems.push(format!("cgroup remove: {e}"));
        }
        if let Err(e) = self.manager.remove_parents() {
            problems.push(format!("cgroup parent removal: {e}"));
        }
        problems.extend(self.manager.take_errors().into_iter().map(|e| e.to_string()));
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::swap_total_kb;

    #[test]
    fn swap_total_is_parsed_and_garbage_is_none() {
        assert_eq!(swap_total_kb("MemTotal: 10 kB\nSwapTotal:       2048 kB\n"), Some(2048));
        assert_eq!(swap_total_kb("SwapTotal: 0 kB"), Some(0));
        assert_eq!(swap_total_kb("SwapTotal: lots"), None);
        assert_eq!(swap_total_kb(""), None);
    }
}
