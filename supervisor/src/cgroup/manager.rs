//! Creating plugin cgroups only inside a subtree the supervisor owns, and cleaning up
//! the ones a previous run left behind.
//!
//! Placement per hierarchy: `<own cgroup>/<parent>/<instance>` where `<own cgroup>` is
//! where `/proc/self/cgroup` puts us in that hierarchy, or, when the parent is given as
//! an absolute cgroup path (a parent the policy names), `<mount><parent>/<instance>`;
//! in that case only the parent's last component is ever created, never its ancestors.

use super::control::{create_dir, ensure_dir, remove_tree};
use super::enforcement::SwapEnforcement;
use super::error::CgroupError;
use super::fs::CgroupFs;
use super::layout::{join_cgroup_path, CgroupLayout, CgroupMount};
use super::limits::{page_size, Limits};
use super::plugin::{Backend, Features, PluginCgroup, Shared};
use super::v1::{self, V1Dirs};
use super::v2;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Longest instance or parent name accepted.
pub const MAX_NAME_LEN: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Parent {
    /// `<own>/<name>` in every hierarchy.
    UnderOwn { name: String },
    /// An absolute cgroup path (same in every hierarchy) the policy names.
    Configured { path: PathBuf },
}

#[derive(Debug)]
pub struct CgroupManager {
    layout: CgroupLayout,
    parent: Parent,
    /// On v2, the leaf our process moves into when `<own>` must enable controllers.
    leaf_name: String,
    fs: Arc<dyn CgroupFs>,
    shared: Arc<Shared>,
    page_size: u64,
    created_parents: Mutex<Vec<PathBuf>>,
}

impl CgroupManager {
    /// `parent_name` is either a plain name (e.g. `wfsandbox`, created under our own
    /// cgroup) or an absolute cgroup path such as `/wfsandbox.slice` (a configured parent).
    pub fn new(layout: CgroupLayout, parent_name: &str, fs: Box<dyn CgroupFs>) -> Result<Self, CgroupError> {
        let parent = parse_parent(parent_name)?;
        let leaf_name = format!("{}-supervisor", last_name(&parent));
        Ok(CgroupManager {
            layout: step_out_of_own_leaf(layout, &leaf_name),
            parent,
            leaf_name,
            fs: Arc::from(fs),
            shared: Arc::new(Shared::default()),
            page_size: page_size(),
            created_parents: Mutex::new(Vec::new()),
        })
    }

    pub fn layout(&self) -> &CgroupLayout {
        &self.layout
    }

    /// Creates the instance's cgroup in every hierarchy and applies `limits`, verifying
    /// each value by reading it back. On any failure nothing of the instance is left.
    pub fn create(&self, instance: &str, limits: &Limits) -> Result<PluginCgroup, CgroupError> {
        validate_name(instance)?;
        limits.validate(self.page_size)?;
        // Marked live before its directories exist, so a concurrent orphan sweep skips it.
        if !self.shared.live().insert(instance.to_owned()) {
            return Err(CgroupError::InvalidName {
                name: instance.to_owned(),
                reason: "an instance of that name is live",
            });
        }
        let created = match &self.layout {
            CgroupLayout::V2 { mount, own_path } => {
                let own = CgroupMount { mount: mount.clone(), own_path: own_path.clone() };
                self.create_v2(&own, instance, limits)
            }
            CgroupLayout::Hybrid { v1, unified } => self.create_hybrid(v1, unified.as_ref(), instance, limits),
        };
        if created.is_err() {
            self.shared.live().remove(instance);
        }
        created
    }

    /// Readies the parent directories (and, on v2, moves our process into its leaf and
    /// enables the controllers). `create` does this too; call it early — before forking
    /// the launcher — so that on v2 no second process of ours sits in our own cgroup
    /// (the move takes only our own process, and a launcher left behind would block it).
    pub fn prepare(&self) -> Result<(), CgroupError> {
        match &self.layout {
            CgroupLayout::V2 { mount, own_path } => {
                self.prepare_v2(&CgroupMount { mount: mount.clone(), own_path: own_path.clone() }).map(drop)
            }
            CgroupLayout::Hybrid { .. } => {
                let mut created = Vec::new();
                let ready = self.parent_dirs().into_iter().try_for_each(|dir| {
                    if ensure_dir(self.fs.as_ref(), &dir)? {
                        created.push(dir);
                    }
                    Ok(())
                });
                self.record_parents(created);
                ready
            }
        }
    }

    /// v2 delegation plus the parent directory; returns the parent directory.
    fn prepare_v2(&self, own: &CgroupMount) -> Result<PathBuf, CgroupError> {
        let fs = self.fs.as_ref();
        if matches!(self.parent, Parent::UnderOwn { .. }) {
            let own_dir = own.own_dir();
            // The leaf is never recorded for removal: we live in it from now on.
            v2::delegate_own(fs, &own_dir, own.own_is_mount_root(), &own_dir.join(&self.leaf_name), &mut Vec::new())?;
        }
        let parent = self.parent_dir(own);
        let mut created = Vec::new();
        let prepared = v2::prepare_parent_dir(fs, &parent, &mut created);
        self.record_parents(created);
        prepared.map(|()| parent)
    }

    fn create_v2(&self, own: &CgroupMount, instance: &str, limits: &Limits) -> Result<PluginCgroup, CgroupError> {
        let fs = self.fs.as_ref();
        let parent = self.prepare_v2(own)?;
        let dir = parent.join(instance);
        v2::create_instance(fs, &dir)?;
        let backend = Backend::V2 { dir: dir.clone() };
        let configured = backend.choose_kill(fs).and_then(|(kill_method, kill_dir)| {
            let applied = v2::apply_limits(fs, &dir, limits, self.page_size)?;
            let swap_accounted = applied.swap != SwapEnforcement::Unaccounted;
            Ok((kill_dir, Features { kill_method, swap_accounted, oom_group: applied.oom_group }))
        });
        self.finish(instance, backend, configured, &[dir])
    }

    fn create_hybrid(
        &self,
        v1_map: &BTreeMap<String, CgroupMount>,
        unified: Option<&CgroupMount>,
        instance: &str,
        limits: &Limits,
    ) -> Result<PluginCgroup, CgroupError> {
        let fs = self.fs.as_ref();
        let (dirs, unified_dir) = self.plan_hybrid(v1_map, unified, instance)?;
        let backend = Backend::Hybrid { v1: dirs.clone(), unified: unified_dir };
        let nodes = backend.nodes();
        let mut created_parents = Vec::new();
        let parents_ready: Result<(), CgroupError> = nodes.iter().try_for_each(|node| {
            let parent = node.dir.parent().unwrap_or(&node.dir);
            if ensure_dir(fs, parent)? {
                created_parents.push(parent.to_owned());
            }
            Ok(())
        });
        self.record_parents(created_parents);
        parents_ready?;
        let mut created = Vec::new();
        for node in &nodes {
            if let Err(e) = create_dir(fs, &node.dir) {
                self.rollback(&created);
                return Err(e);
            }
            created.push(node.dir.clone());
        }
        let configured = backend.choose_kill(fs).and_then(|(kill_method, kill_dir)| {
            let swap = v1::apply_limits(fs, &dirs, limits, self.page_size)?;
            let swap_accounted = swap != SwapEnforcement::Unaccounted;
            Ok((kill_dir, Features { kill_method, swap_accounted, oom_group: false }))
        });
        self.finish(instance, backend, configured, &created)
    }

    /// The instance's directories on a hybrid host; a required controller without a
    /// reachable v1 hierarchy is an error naming it.
    fn plan_hybrid(
        &self,
        v1_map: &BTreeMap<String, CgroupMount>,
        unified: Option<&CgroupMount>,
        instance: &str,
    ) -> Result<(V1Dirs, Option<PathBuf>), CgroupError> {
        let dir_for = |controller: &str| -> Result<PathBuf, CgroupError> {
            let mount = v1_map.get(controller).ok_or_else(|| CgroupError::ControllerMissing {
                controller: controller.to_owned(),
                detail: format!(
                    "no mounted v1 hierarchy carries it (v1 controllers here: {:?}) and the host is not pure v2",
                    v1_map.keys().collect::<Vec<_>>()
                ),
            })?;
            Ok(self.parent_dir(mount).join(instance))
        };
        let [memory, cpu, cpuacct, pids] = v1::REQUIRED;
        let dirs = V1Dirs {
            memory: dir_for(memory)?,
            cpu: dir_for(cpu)?,
            cpuacct: dir_for(cpuacct)?,
            pids: dir_for(pids)?,
            freezer: v1_map.get("freezer").map(|m| self.parent_dir(m).join(instance)),
        };
        Ok((dirs, unified.map(|m| self.parent_dir(m).join(instance))))
    }

    fn finish(
        &self,
        instance: &str,
        backend: Backend,
        configured: Result<(PathBuf, Features), CgroupError>,
        created: &[PathBuf],
    ) -> Result<PluginCgroup, CgroupError> {
        match configured {
            Ok((kill_dir, features)) => Ok(PluginCgroup::new(
                instance.to_owned(),
                backend,
                kill_dir,
                features,
                Arc::clone(&self.fs),
                Arc::clone(&self.shared),
            )),
            Err(e) => {
                self.rollback(created);
                Err(e)
            }
        }
    }

    /// Removes instance directories of a failed creation; failures go to `take_errors`.
    fn rollback(&self, created: &[PathBuf]) {
        let errors = created.iter().rev().filter_map(|dir| remove_tree(self.fs.as_ref(), dir).err());
        self.shared.errors().extend(errors);
    }

    fn record_parents(&self, created: Vec<PathBuf>) {
        self.created_parents.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(created);
    }

    fn parent_dir(&self, mount: &CgroupMount) -> PathBuf {
        match &self.parent {
            Parent::UnderOwn { name } => mount.own_dir().join(name),
            Parent::Configured { path } => join_cgroup_path(&mount.mount, path),
        }
    }

    /// The parent directory in every hierarchy an instance uses (each once; v1
    /// hierarchies of controllers we do not use, such as cpuset, are never touched).
    fn parent_dirs(&self) -> Vec<PathBuf> {
        let mounts: Vec<&CgroupMount> = match &self.layout {
            CgroupLayout::V2 { mount, own_path } => {
                let own = CgroupMount { mount: mount.clone(), own_path: own_path.clone() };
                return vec![self.parent_dir(&own)];
            }
            CgroupLayout::Hybrid { v1, unified } => {
                let used = v1::REQUIRED.iter().chain(&["freezer"]).filter_map(|c| v1.get(*c));
                used.chain(unified.iter()).collect()
            }
        };
        let dirs: BTreeSet<PathBuf> = mounts.into_iter().map(|m| self.parent_dir(m)).collect();
        dirs.into_iter().collect()
    }

    /// Kills and removes every instance under our parent directories that this manager
    /// did not create (leftovers of a crashed run). Returns the names removed.
    pub fn cleanup_orphans(&self) -> Result<Vec<String>, CgroupError> {
        self.cleanup_orphans_where(|_| true)
    }

    /// Like [`Self::cleanup_orphans`], but only for instances `is_orphan` confirms —
    /// where other supervisors share the parent (concurrent one-shot runs), only the
    /// instances of dead ones may go.
    pub fn cleanup_orphans_where(&self, is_orphan: impl Fn(&str) -> bool) -> Result<Vec<String>, CgroupError> {
        let fs = self.fs.as_ref();
        let mut names = BTreeSet::new();
        for parent in self.parent_dirs().into_iter().filter(|p| fs.exists(p)) {
            for dir in fs.list_dirs(&parent).map_err(CgroupError::io(super::error::Step::ListDirs, &parent))? {
                if let Some(name) = dir.file_name().and_then(|n| n.to_str()).filter(|n| validate_name(n).is_ok()) {
                    names.insert(name.to_owned());
                }
            }
        }
        let live = self.shared.live().clone();
        let mut removed = Vec::new();
        let mut errors = Vec::new();
        for name in names.difference(&live).filter(|n| is_orphan(n)) {
            match self.remove_orphan(name) {
                Ok(()) => removed.push(name.clone()),
                Err(e) => errors.push(e),
            }
        }
        CgroupError::from_list(errors).map_or(Ok(removed), Err)
    }

    fn remove_orphan(&self, name: &str) -> Result<(), CgroupError> {
        let backend = match &self.layout {
            CgroupLayout::V2 { mount, own_path } => {
                let own = CgroupMount { mount: mount.clone(), own_path: own_path.clone() };
                Backend::V2 { dir: self.parent_dir(&own).join(name) }
            }
            CgroupLayout::Hybrid { v1, unified } => {
                let (dirs, unified_dir) = self.plan_hybrid(v1, unified.as_ref(), name)?;
                Backend::Hybrid { v1: dirs, unified: unified_dir }
            }
        };
        let (kill_method, kill_dir) = backend.choose_kill(self.fs.as_ref())?;
        let features = Features { kill_method, swap_accounted: false, oom_group: false };
        let mut orphan = PluginCgroup::adopt(
            name.to_owned(),
            backend,
            kill_dir,
            features,
            Arc::clone(&self.fs),
            Arc::clone(&self.shared),
        );
        let result = orphan.kill().and_then(|()| orphan.remove());
        orphan.disarm();
        result
    }

    /// Removes the parent directories this manager created, if no instance is left in
    /// them; returns the ones kept because they are still in use.
    ///
    /// Under our own cgroup the parent is ours by convention, whoever created it: another
    /// run that ended while ours was using it could not remove it, so we try too.
    pub fn remove_parents(&self) -> Result<Vec<PathBuf>, CgroupError> {
        let mut created = self.created_parents.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut candidates: Vec<PathBuf> = created.drain(..).collect();
        if matches!(self.parent, Parent::UnderOwn { .. }) {
            for dir in self.parent_dirs() {
                if !candidates.contains(&dir) && self.fs.exists(&dir) {
                    candidates.push(dir);
                }
            }
        }
        let mut kept = Vec::new();
        let mut errors = Vec::new();
        for dir in candidates.into_iter().rev() {
            match self.fs.rmdir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => kept.push(dir),
                Err(e) => errors.push(CgroupError::io(super::error::Step::Rmdir, dir)(e)),
            }
        }
        created.extend(kept.iter().rev().cloned());
        CgroupError::from_list(errors).map_or(Ok(kept), Err)
    }

    /// Failures of best-effort cleanups since the last call (dropped instances,
    /// rollbacks of failed creations), for the caller to log.
    pub fn take_errors(&self) -> Vec<CgroupError> {
        std::mem::take(&mut *self.shared.errors())
    }
}

fn parse_parent(parent_name: &str) -> Result<Parent, CgroupError> {
    if !parent_name.starts_with('/') {
        validate_name(parent_name)?;
        return Ok(Parent::UnderOwn { name: parent_name.to_owned() });
    }
    let path = Path::new(parent_name);
    let mut depth = 0;
    for component in path.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(name) => {
                validate_name(&name.to_string_lossy())?;
                depth += 1;
            }
            _ => {
                return Err(CgroupError::InvalidName {
                    name: parent_name.to_owned(),
                    reason: "`.` or `..` in the path",
                })
            }
        }
    }
    if depth == 0 {
        return Err(CgroupError::InvalidName {
            name: parent_name.to_owned(),
            reason: "the root cgroup cannot be the parent",
        });
    }
    Ok(Parent::Configured { path: path.to_owned() })
}

fn last_name(parent: &Parent) -> String {
    match parent {
        Parent::UnderOwn { name } => name.clone(),
        Parent::Configured { path } => path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    }
}

/// On v2 our process may already sit in the leaf an earlier manager moved it to;
/// our own cgroup is then the leaf's parent.
fn step_out_of_own_leaf(layout: CgroupLayout, leaf_name: &str) -> CgroupLayout {
    match layout {
        CgroupLayout::V2 { mount, own_path } if own_path.file_name().is_some_and(|n| n == leaf_name) => {
            let own_path = own_path.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
            CgroupLayout::V2 { mount, own_path }
        }
        other => other,
    }
}

/// One path component: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most [`MAX_NAME_LEN`] bytes.
pub fn validate_name(name: &str) -> Result<(), CgroupError> {
    let invalid = |reason| Err(CgroupError::InvalidName { name: name.chars().take(MAX_NAME_LEN).collect(), reason });
    let Some(first) = name.chars().next() else {
        return invalid("empty");
    };
    if name.len() > MAX_NAME_LEN {
        return invalid("longer than 100 bytes");
    }
    if !first.is_ascii_alphanumeric() {
        return invalid("must start with a letter or digit");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return invalid("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}
