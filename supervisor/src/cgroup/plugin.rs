//! One plugin instance's cgroup: its directories in every hierarchy, adding the child,
//! killing everything in it, statistics, the enforcement report, and removal.

use super::control::remove_tree;
use super::enforcement::{CgroupEnforcement, CgroupVersion, HierarchyDir, HierarchyKind, KillMethod, SwapEnforcement};
use super::error::{CgroupError, Step};
use super::fs::CgroupFs;
use super::kill;
use super::stats::CgroupStats;
use super::v1::{self, V1Dirs};
use super::v2;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Where an instance lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    V2 { dir: PathBuf },
    Hybrid { v1: V1Dirs, unified: Option<PathBuf> },
}

impl Backend {
    /// Every distinct directory, with the controllers it serves (co-mounted v1
    /// controllers share one directory and appear once).
    pub(crate) fn nodes(&self) -> Vec<HierarchyDir> {
        match self {
            Backend::V2 { dir } => vec![HierarchyDir {
                dir: dir.clone(),
                kind: HierarchyKind::V2,
                controllers: v2::CONTROLLERS.map(str::to_owned).to_vec(),
            }],
            Backend::Hybrid { v1, unified } => {
                let mut nodes: Vec<HierarchyDir> = Vec::new();
                let mut used =
                    vec![("memory", &v1.memory), ("cpu", &v1.cpu), ("cpuacct", &v1.cpuacct), ("pids", &v1.pids)];
                if let Some(freezer) = &v1.freezer {
                    used.push(("freezer", freezer));
                }
                for (controller, dir) in used {
                    match nodes.iter_mut().find(|n| &n.dir == dir) {
                        Some(node) => node.controllers.push(controller.to_owned()),
                        None => nodes.push(HierarchyDir {
                            dir: dir.clone(),
                            kind: HierarchyKind::V1,
                            controllers: vec![controller.to_owned()],
                        }),
                    }
                }
                if let Some(dir) = unified {
                    nodes.push(HierarchyDir { dir: dir.clone(), kind: HierarchyKind::V2, controllers: Vec::new() });
                }
                nodes
            }
        }
    }

    /// The best way to kill this instance on this kernel, and the directory it acts on.
    pub(crate) fn choose_kill(&self, fs: &dyn CgroupFs) -> Result<(KillMethod, PathBuf), CgroupError> {
        let (v2_dir, freezer) = match self {
            Backend::V2 { dir } => (Some(dir), None),
            Backend::Hybrid { v1, unified } => (unified.as_ref(), v1.freezer.as_ref()),
        };
        if let Some(dir) = v2_dir.filter(|d| fs.exists(&d.join("cgroup.kill"))) {
            return Ok((KillMethod::CgroupKill, dir.clone()));
        }
        if let Some(dir) = freezer {
            return Ok((KillMethod::V1FreezerAndSignal, dir.clone()));
        }
        if let Some(dir) = v2_dir.filter(|d| fs.exists(&d.join("cgroup.freeze"))) {
            return Ok((KillMethod::V2FreezeAndSignal, dir.clone()));
        }
        Err(CgroupError::ControllerMissing {
            controller: "freezer".to_owned(),
            detail: "no cgroup.kill, no v1 freezer and no cgroup.freeze: the cgroup cannot be killed reliably"
                .to_owned(),
        })
    }
}

/// State shared between the manager and its instances.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Failures of best-effort cleanups (`Drop`), for the caller to print.
    pub errors: Mutex<Vec<CgroupError>>,
    /// Instances alive in this process (never treated as orphans).
    pub live: Mutex<BTreeSet<String>>,
}

impl Shared {
    pub(crate) fn errors(&self) -> MutexGuard<'_, Vec<CgroupError>> {
        self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn live(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A plugin's cgroup. Call [`PluginCgroup::kill`] and [`PluginCgroup::remove`]
/// explicitly; dropping it unremoved kills and removes it best-effort and stores any
/// failure in the manager (see `CgroupManager::take_errors`).
#[derive(Debug)]
pub struct PluginCgroup {
    name: String,
    backend: Backend,
    nodes: Vec<HierarchyDir>,
    kill_method: KillMethod,
    kill_dir: PathBuf,
    swap_accounted: bool,
    oom_group: bool,
    removed: bool,
    fs: Arc<dyn CgroupFs>,
    shared: Arc<Shared>,
}

/// What creation found out about the kernel's optional features.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Features {
    pub kill_method: KillMethod,
    pub swap_accounted: bool,
    pub oom_group: bool,
}

impl PluginCgroup {
    pub(crate) fn new(
        name: String,
        backend: Backend,
        kill_dir: PathBuf,
        features: Features,
        fs: Arc<dyn CgroupFs>,
        shared: Arc<Shared>,
    ) -> Self {
        let nodes = backend.nodes();
        PluginCgroup {
            name,
            backend,
            nodes,
            kill_method: features.kill_method,
            kill_dir,
            swap_accounted: features.swap_accounted,
            oom_group: features.oom_group,
            removed: false,
            fs,
            shared,
        }
    }

    /// A handle on an instance found on disk (an orphan): only the directories that
    /// exist are part of it.
    pub(crate) fn adopt(
        name: String,
        backend: Backend,
        kill_dir: PathBuf,
        features: Features,
        fs: Arc<dyn CgroupFs>,
        shared: Arc<Shared>,
    ) -> Self {
        let mut cgroup = Self::new(name, backend, kill_dir, features, fs, shared);
        let fs = Arc::clone(&cgroup.fs);
        cgroup.nodes.retain(|n| fs.exists(&n.dir));
        cgroup
    }

    /// Stops `Drop` from retrying a cleanup whose outcome the caller already reported.
    pub(crate) fn disarm(&mut self) {
        self.removed = true;
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instance's directory in every hierarchy it lives in.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.nodes.iter().map(|n| n.dir.clone()).collect()
    }

    /// The v2 directory a `clone3(CLONE_INTO_CGROUP)` can target: the instance on pure
    /// v2, or its directory on a hybrid host's controller-less unified mount.
    pub fn clone_into_dir(&self) -> Option<&Path> {
        match &self.backend {
            Backend::V2 { dir } => Some(dir),
            Backend::Hybrid { unified, .. } => unified.as_deref(),
        }
    }

    /// The `tasks` file of every distinct v1 directory (hybrid hosts), which a child
    /// writes `0` to in order to move itself without the global threadgroup lock.
    pub fn v1_tasks_files(&self) -> Vec<PathBuf> {
        self.nodes.iter().filter(|n| n.kind == HierarchyKind::V1).map(|n| n.dir.join("tasks")).collect()
    }

    /// Moves `pid` (a child we started, waiting on its sync pipe) into every hierarchy.
    pub fn add_process(&self, pid: u32) -> Result<(), CgroupError> {
        if pid == 0 || i32::try_from(pid).is_err() {
            return Err(CgroupError::UnsafePid { pid, path: self.kill_dir.clone(), reason: "not a process id" });
        }
        if pid == self.fs.own_pid() {
            return Err(CgroupError::UnsafePid {
                pid,
                path: self.kill_dir.clone(),
                reason: "it is the supervisor itself",
            });
        }
        for node in &self.nodes {
            let procs = node.dir.join("cgroup.procs");
            self.fs.write(&procs, &pid.to_string()).map_err(CgroupError::io(Step::AddProcess, procs))?;
        }
        Ok(())
    }

    /// Kills every process in the cgroup and waits (bounded) until it is empty.
    pub fn kill(&self) -> Result<(), CgroupError> {
        kill::kill_all(self.fs.as_ref(), self.kill_method, &self.kill_dir, &self.nodes)
    }

    /// No process left in any of the instance's directories.
    pub fn is_empty(&self) -> Result<bool, CgroupError> {
        kill::is_empty(self.fs.as_ref(), &self.nodes)
    }

    /// Removes every directory of the instance, deepest first. Refuses while processes
    /// remain (call [`PluginCgroup::kill`] first). Calling it again after success is a no-op.
    pub fn remove(&mut self) -> Result<(), CgroupError> {
        if self.removed {
            return Ok(());
        }
        if !self.is_empty()? {
            return Err(CgroupError::StillPopulated { path: self.kill_dir.clone(), pids: remaining_pids(self) });
        }
        let errors: Vec<CgroupError> =
            self.nodes.iter().filter_map(|n| remove_tree(self.fs.as_ref(), &n.dir).err()).collect();
        match CgroupError::from_list(errors) {
            Some(err) => Err(err),
            None => {
                self.removed = true;
                self.shared.live().remove(&self.name);
                Ok(())
            }
        }
    }

    pub fn stats(&self) -> Result<CgroupStats, CgroupError> {
        match &self.backend {
            Backend::V2 { dir } => v2::stats(self.fs.as_ref(), dir),
            Backend::Hybrid { v1, .. } => v1::stats(self.fs.as_ref(), v1),
        }
    }

    /// What is enforced right now, read back from the kernel.
    pub fn enforcement(&self) -> Result<CgroupEnforcement, CgroupError> {
        let fs = self.fs.as_ref();
        let (version, held) = match &self.backend {
            Backend::V2 { dir } => (CgroupVersion::V2, v2::read_limits(fs, dir)?),
            Backend::Hybrid { v1, .. } => (CgroupVersion::V1Hybrid, v1::read_limits(fs, v1)?),
        };
        let (memory, swap, quota, period, pids) = held;
        let swap = match (self.swap_accounted, swap) {
            (false, _) => SwapEnforcement::Unaccounted,
            (true, Some(max_bytes)) => SwapEnforcement::Limited { max_bytes },
            (true, None) => SwapEnforcement::Unlimited,
        };
        Ok(CgroupEnforcement {
            version,
            hierarchies: self.nodes.clone(),
            memory_max_bytes: memory,
            swap,
            cpu_quota_us: quota,
            cpu_period_us: period,
            pids_max: pids,
            oom_group: self.oom_group,
            kill: self.kill_method,
        })
    }
}

/// Best-effort list of remaining pids for an error message.
fn remaining_pids(cgroup: &PluginCgroup) -> Vec<u32> {
    let mut pids: Vec<u32> = cgroup
        .nodes
        .iter()
        .filter_map(|n| super::procs::list_pids_in_tree(cgroup.fs.as_ref(), &n.dir).ok())
        .flatten()
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

impl Drop for PluginCgroup {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let mut errors = Vec::new();
        if let Err(e) = self.kill() {
            errors.push(e);
        }
        if let Err(e) = self.remove() {
            errors.push(e);
        }
        self.shared.errors().extend(errors);
    }
}
