//! One sandbox's cgroup for the one-shot `run`: creation under the policy's rules,
//! placement, final accounting and teardown.

use crate::cgroup::{CgroupError, CgroupLayout, CgroupManager, Limits, PluginCgroup, RealCgroupFs, SwapEnforcement};
use crate::report::LayerStatus;
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
/// lets cgroups degrade; with the layer's status for the report (to be recorded once the
/// plugin runs: a cgroup that never held the plugin enforced nothing).
pub fn create(
    spec: &SandboxSpec,
    instance: &str,
    parent: Option<&str>,
) -> Result<(Option<SandboxCgroup>, LayerStatus), SandboxCgroupError> {
    match try_create(spec, instance, parent) {
        Ok((cg, enforcement)) => Ok((Some(cg), LayerStatus::enforced(enforcement))),
        Err(e) if spec.layers.degradable.value.contains(&Layer::Cgroups) => {
            Ok((None, LayerStatus::degraded(&e.to_string())))
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
    // Leftovers of runs whose supervisor died (SIGKILL, a crash): theirs only, as other
    // live runs share the parent. Failing to sweep must not stop this run.
    let _ = manager.cleanup_orphans_where(|name| supervisor_of(name).is_some_and(|pid| !process_alive(pid)));
    let limits = Limits::from_spec(&spec.cgroup);
    let cgroup = match manager.create(instance, &limits) {
        // A concurrent run removed the shared parent between our mkdirs: once more.
        Err(e) if e.errno() == Some(libc::ENOENT) => manager.create(instance, &limits)?,
        other => other?,
    };
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
/// The name of a one-shot run's instance: `<plugin>-<supervisor pid>-<nonce>`.
pub fn instance_name(plugin: &str, supervisor_pid: u32, nonce: u32) -> String {
    format!("{plugin}-{supervisor_pid}-{nonce:08x}")
}

/// The supervisor pid in an instance name made by [`instance_name`].
pub fn supervisor_of(instance: &str) -> Option<i32> {
    let mut parts = instance.rsplitn(3, '-');
    let nonce = parts.next()?;
    let pid = parts.next()?;
    parts.next()?;
    (nonce.len() == 8 && nonce.chars().all(|c| c.is_ascii_hexdigit())).then_some(())?;
    pid.parse().ok().filter(|p| *p > 0)
}

fn process_alive(pid: i32) -> bool {
    // Signal 0 checks existence; EPERM would still mean it exists (we are root: n/a).
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

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

    /// The cgroup's counters right now.
    pub fn stats(&self) -> Result<crate::cgroup::CgroupStats, CgroupError> {
        self.cgroup.stats()
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
    use super::{instance_name, supervisor_of, swap_total_kb};

    #[test]
    fn the_supervisor_pid_is_read_back_from_instance_names_only() {
        assert_eq!(supervisor_of(&instance_name("my_plugin", 4242, 0xdead)), Some(4242));
        assert_eq!(supervisor_of(&instance_name("a-b-c", 7, 1)), Some(7));
        assert_eq!(supervisor_of("something-else"), None);
        assert_eq!(supervisor_of("p-12-notahexnonce"), None);
        assert_eq!(supervisor_of("p-0-0000abcd"), None);
    }

    #[test]
    fn swap_total_is_parsed_and_garbage_is_none() {
        assert_eq!(swap_total_kb("MemTotal: 10 kB\nSwapTotal:       2048 kB\n"), Some(2048));
        assert_eq!(swap_total_kb("SwapTotal: 0 kB"), Some(0));
        assert_eq!(swap_total_kb("SwapTotal: lots"), None);
        assert_eq!(swap_total_kb(""), None);
    }
}
