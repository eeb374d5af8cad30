//! The `stats` verb: cgroup counters (read by the launcher, which holds the cgroup) and, per
//! process of the sandbox, what procfs says.

use super::super::daemon::Daemon;
use super::wire_view::wire_state;
use crate::launch_service::transport::InboundReply;
use crate::launch_service::wire::{Reply, Request, UsageStats};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wf_protocol::control::{ControlError, CpuStats, MemoryStats, PidsStats, PluginStats, ProcessStats, StatsResult};

/// Processes listed per plugin at most (a fork bomb is capped by its pids limit anyway).
pub const MAX_PROCESSES: usize = 512;

struct Target {
    name: String,
    state: wf_protocol::control::PluginState,
    instance: Option<String>,
    cgroup_dirs: Vec<PathBuf>,
}

impl Daemon {
    pub async fn stats(self: &Arc<Self>, name: Option<&str>) -> Result<StatsResult, ControlError> {
        let targets = self.stats_targets(name)?;
        let mut plugins = Vec::with_capacity(targets.len());
        for target in targets {
            let usage = match &target.instance {
                Some(instance) => self.usage(instance).await,
                None => None,
            };
            let processes = if target.instance.is_some() { processes(&target.cgroup_dirs) } else { Vec::new() };
            plugins.push(plugin_stats(target, usage, processes));
        }
        Ok(StatsResult { plugins })
    }

    fn stats_targets(&self, name: Option<&str>) -> Result<Vec<Target>, ControlError> {
        let table = self.table();
        let names: Vec<String> = match name {
            Some(name) => {
                vec![table.registry.get(name).map_err(|_| ControlError::no_such_plugin(name))?.name().to_owned()]
            }
            None => table.registry.list().into_iter().map(|row| row.name).collect(),
        };
        Ok(names
            .into_iter()
            .filter_map(|name| {
                let entry = table.registry.get(&name).ok()?;
                let live = table.records.get(&name).and_then(|r| r.live.as_ref());
                Some(Target {
                    state: wire_state(entry.state()),
                    instance: live.map(|l| l.instance.clone()),
                    cgroup_dirs: live.map(|l| l.cgroup_dirs.clone()).unwrap_or_default(),
                    name,
                })
            })
            .collect())
    }

    async fn usage(&self, instance: &str) -> Option<UsageStats> {
        let request = |request_id| Request::Stats { request_id, instance: instance.to_owned() };
        match self.launcher.call(request).await {
            Ok(InboundReply { reply: Reply::StatsReply { stats, .. }, .. }) => stats,
            _ => None,
        }
    }
}

fn plugin_stats(target: Target, usage: Option<UsageStats>, processes: Vec<ProcessStats>) -> PluginStats {
    PluginStats {
        name: target.name,
        state: target.state,
        memory: usage.map(|u| MemoryStats {
            current: u.memory_current_bytes,
            peak: u.memory_peak_bytes,
            limit: u.memory_limit_bytes,
            oom_kills: u.oom_kills,
            limit_hits: u.memory_limit_hits,
            // The cgroup layer sets swap to 0 with every memory limit, or refuses the plugin.
            swap_max: u.memory_limit_bytes.map(|_| 0),
        }),
        cpu: usage.map(|u| CpuStats {
            usage_usec: u.cpu_usage_usec,
            nr_periods: u.cpu_periods,
            nr_throttled: u.cpu_throttled_periods,
            throttled_usec: u.cpu_throttled_usec,
        }),
        pids: usage.map(|u| PidsStats { current: u.pids_current, max: u.pids_limit, max_events: u.pids_limit_hits }),
        processes,
    }
}

/// The sandbox's processes, from the first of its cgroup directories that lists them.
fn processes(cgroup_dirs: &[PathBuf]) -> Vec<ProcessStats> {
    let pids = cgroup_dirs.iter().find_map(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).ok());
    let Some(pids) = pids else { return Vec::new() };
    pids.lines().filter_map(|line| line.trim().parse::<u32>().ok()).take(MAX_PROCESSES).filter_map(process).collect()
}

fn process(pid: u32) -> Option<ProcessStats> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let status = std::fs::read_to_string(proc_dir.join("status")).ok()?;
    let field = |key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    Some(ProcessStats {
        pid,
        rss_bytes: field("VmRSS:").unwrap_or(0).saturating_mul(1024),
        threads: field("Threads:").unwrap_or(0).try_into().unwrap_or(u32::MAX),
        fds: count_entries(&proc_dir.join("fd")),
    })
}

fn count_entries(dir: &Path) -> u32 {
    std::fs::read_dir(dir).map(|entries| entries.count().try_into().unwrap_or(u32::MAX)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_reads_back_sensibly() {
        let me = process(std::process::id()).expect("our own /proc entry");
        assert!(me.rss_bytes > 0 && me.threads >= 1 && me.fds >= 3, "{me:?}");
    }

    #[test]
    fn processes_come_from_the_first_readable_cgroup_procs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), format!("{}\nnot-a-pid\n", std::process::id())).unwrap();
        let listed = processes(&[PathBuf::from("/nonexistent"), dir.path().to_owned()]);
        assert_eq!(listed.iter().map(|p| p.pid).collect::<Vec<_>>(), [std::process::id()]);
    }
}
