//! A fake cgroupfs in a tempdir for unit tests: plain files and directories plus the
//! kernel rules the manager depends on (page rounding, memsw >= limit, the v2
//! no-internal-process rule, controller files appearing per `subtree_control`,
//! `cgroup.kill`, frozen tasks dying only when thawed, rmdir refusing busy cgroups).
//! Every mutating call is logged so tests can assert exact files, values and order.

use super::fs::CgroupFs;
use super::layout::{CgroupLayout, CgroupMount};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) const PAGE: u64 = 4096;
pub(crate) const OWN_PID: u32 = 4242;
const V1_UNLIMITED: &str = "9223372036854771712";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Write(PathBuf, String),
    Mkdir(PathBuf),
    Rmdir(PathBuf),
    Kill(u32),
}

/// What a hierarchy's cgroups hold. A v2 mount with `mount_is_root: false` is seen from
/// inside a cgroup namespace (a container): its root is an ordinary cgroup of the host.
#[derive(Debug, Clone)]
enum Template {
    V1 { controllers: Vec<&'static str>, memsw: bool },
    V2 { swap: bool, kill_file: bool, mount_is_root: bool },
}

#[derive(Debug, Default)]
struct State {
    log: Vec<Op>,
    hierarchies: Vec<(PathBuf, Template)>,
    busy: BTreeMap<PathBuf, u32>,
    failing_writes: BTreeMap<PathBuf, i32>,
    /// Files whose content the "kernel" keeps at a fixed value whatever is written.
    holds: BTreeMap<PathBuf, String>,
    pending_kills: Vec<u32>,
}

#[derive(Debug, Clone)]
pub(crate) struct FakeCgroupFs {
    root: Arc<tempfile::TempDir>,
    state: Arc<Mutex<State>>,
}

/// Options of a fake hybrid host.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HybridOpts {
    pub memsw: bool,
    pub freezer: bool,
    pub unified: bool,
    pub cgroup_kill: bool,
}

impl Default for HybridOpts {
    fn default() -> Self {
        HybridOpts { memsw: true, freezer: true, unified: true, cgroup_kill: true }
    }
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl FakeCgroupFs {
    fn empty() -> Self {
        FakeCgroupFs { root: Arc::new(tempfile::tempdir().expect("tempdir")), state: Arc::default() }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn add_hierarchy(&self, rel: &str, template: Template) -> PathBuf {
        let mount = self.path(rel);
        std::fs::create_dir_all(&mount).expect("mount dir");
        self.state().hierarchies.push((mount.clone(), template));
        self.populate(&mount);
        mount
    }

    /// Creates a pre-existing cgroup (one we did not create) with its files.
    pub(crate) fn precreate(&self, rel: &str) {
        let dir = self.path(rel);
        std::fs::create_dir_all(&dir).expect("precreate");
        self.populate(&dir);
    }

    /// A hybrid host: `cpu,cpuacct` co-mounted, memory (our cgroup at `/user/me`),
    /// pids, optionally freezer and the unified v2 mount with no controllers.
    pub(crate) fn hybrid(opts: HybridOpts) -> (Self, CgroupLayout) {
        let fake = Self::empty();
        let mut v1 = BTreeMap::new();
        let mut add_v1 = |rel: &str, controllers: Vec<&'static str>, own: &str| {
            let mount = fake.add_hierarchy(rel, Template::V1 { controllers: controllers.clone(), memsw: opts.memsw });
            for c in controllers {
                v1.insert(c.to_owned(), CgroupMount { mount: mount.clone(), own_path: own.into() });
            }
        };
        add_v1("cpu,cpuacct", vec!["cpu", "cpuacct"], "/");
        add_v1("memory", vec!["memory"], "/user/me");
        add_v1("pids", vec!["pids"], "/");
        if opts.freezer {
            add_v1("freezer", vec!["freezer"], "/");
        }
        fake.precreate("memory/user");
        fake.precreate("memory/user/me");
        fake.set_procs("memory/user/me", &[OWN_PID, 77]);
        let unified = opts.unified.then(|| {
            let mount = fake.add_hierarchy(
                "unified",
                Template::V2 { swap: false, kill_file: opts.cgroup_kill, mount_is_root: true },
            );
            CgroupMount { mount, own_path: "/".into() }
        });
        (fake, CgroupLayout::Hybrid { v1, unified })
    }

    /// A pure v2 host whose root offers `root_controllers` and has them enabled; our
    /// cgroup is `own` (created, holding `own_procs`, nothing enabled in it).
    pub(crate) fn v2(own: &str, own_procs: &[u32], swap: bool) -> (Self, CgroupLayout) {
        Self::v2_with(own, own_procs, swap, true)
    }

    /// As [`FakeCgroupFs::v2`]; `kill_file: false` is a kernel before 5.14 (no `cgroup.kill`).
    pub(crate) fn v2_with(own: &str, own_procs: &[u32], swap: bool, kill_file: bool) -> (Self, CgroupLayout) {
        let fake = Self::empty();
        let mount = fake.add_hierarchy("cg2", Template::V2 { swap, kill_file, mount_is_root: true });
        std::fs::write(mount.join("cgroup.controllers"), "cpuset cpu io memory pids\n").expect("controllers");
        std::fs::write(mount.join("cgroup.subtree_control"), "cpu memory pids\n").expect("subtree");
        let mut rel = String::from("cg2");
        let parts: Vec<&str> = own.split('/').filter(|p| !p.is_empty()).collect();
        for (index, part) in parts.iter().enumerate() {
            rel = format!("{rel}/{part}");
            fake.precreate(&rel);
            if index + 1 < parts.len() {
                // Delegated along the path, like systemd does for a Delegate=yes unit.
                std::fs::write(fake.path(&rel).join("cgroup.subtree_control"), "cpu memory pids\n").expect("subtree");
            }
        }
        fake.set_procs(&rel, own_procs);
        (fake, CgroupLayout::V2 { mount, own_path: own.into() })
    }

    /// A pure v2 host seen from inside a container with a private cgroup namespace: the
    /// cgroup2 mount's root, which `/proc/self/cgroup` calls `/`, is a non-root cgroup
    /// of the host offering `cpu memory pids`, holding `own_procs`.
    pub(crate) fn v2_in_cgroup_namespace(own_procs: &[u32]) -> (Self, CgroupLayout) {
        let fake = Self::empty();
        let template = Template::V2 { swap: true, kill_file: true, mount_is_root: false };
        let mount = fake.add_hierarchy("cg2", template);
        std::fs::write(mount.join("cgroup.controllers"), "cpu memory pids\n").expect("controllers");
        fake.set_procs("cg2", own_procs);
        (fake, CgroupLayout::V2 { mount, own_path: "/".into() })
    }

    pub(crate) fn set_procs(&self, rel: &str, pids: &[u32]) {
        let text: String = pids.iter().map(|p| format!("{p}\n")).collect();
        std::fs::write(self.path(rel).join("cgroup.procs"), text).expect("procs");
    }

    pub(crate) fn read_rel(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")).trim().to_owned()
    }

    pub(crate) fn ops(&self) -> Vec<Op> {
        self.state().log.clone()
    }

    pub(crate) fn clear_ops(&self) {
        self.state().log.clear();
    }

    /// Paths (relative to the fake root) of every write, in order.
    pub(crate) fn writes(&self) -> Vec<(String, String)> {
        self.ops()
            .into_iter()
            .filter_map(|op| match op {
                Op::Write(p, v) => Some((self.rel(&p), v)),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn rel(&self, path: &Path) -> String {
        path.strip_prefix(self.root.path()).unwrap_or(path).display().to_string()
    }

    pub(crate) fn busy_rmdir(&self, rel: &str, times: u32) {
        self.state().busy.insert(self.path(rel), times);
    }

    pub(crate) fn hold(&self, rel: &str, value: &str) {
        self.state().holds.insert(self.path(rel), value.to_owned());
    }

    pub(crate) fn fail_write(&self, rel: &str, code: i32) {
        self.state().failing_writes.insert(self.path(rel), code);
    }

    fn hierarchy_of(&self, path: &Path) -> Option<(PathBuf, Template)> {
        self.state().hierarchies.iter().find(|(m, _)| path.starts_with(m)).cloned()
    }

    /// Whether `dir` is the real root cgroup of its hierarchy (exempt from the v2
    /// no-internal-process rule, and without `cgroup.type` and the other non-root files).
    fn is_real_root(&self, dir: &Path) -> bool {
        match self.hierarchy_of(dir) {
            Some((mount, Template::V2 { mount_is_root, .. })) => dir == mount && mount_is_root,
            Some((mount, Template::V1 { .. })) => dir == mount,
            None => false,
        }
    }

    fn populate(&self, dir: &Path) {
        let Some((mount, template)) = self.hierarchy_of(dir) else { return };
        let is_root = self.is_real_root(dir);
        let mut files: Vec<(&str, String)> = vec![("cgroup.procs", String::new())];
        match template {
            Template::V1 { controllers, memsw } => {
                for c in controllers {
                    files.extend(v1_files(c, memsw, is_root));
                }
            }
            Template::V2 { swap, kill_file, .. } => {
                let enabled = if dir == mount {
                    String::new()
                } else {
                    std::fs::read_to_string(dir.parent().unwrap_or(dir).join("cgroup.subtree_control"))
                        .unwrap_or_default()
                };
                files.push(("cgroup.controllers", enabled.clone()));
                files.push(("cgroup.subtree_control", String::new()));
                files.push(("cgroup.events", String::new()));
                if !is_root {
                    files.push(("cgroup.type", "domain".into()));
                    files.push(("cgroup.freeze", "0".into()));
                    if kill_file {
                        files.push(("cgroup.kill", String::new()));
                    }
                }
                for c in enabled.split_whitespace() {
                    files.extend(v2_files(c, swap));
                }
            }
        }
        for (name, content) in files {
            std::fs::write(dir.join(name), content).expect("populate");
        }
    }

    /// Every directory of the fake, deepest first.
    fn all_dirs(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.path().is_dir() {
                    walk(&entry.path(), out);
                }
            }
            out.push(dir.to_owned());
        }
        let mut out = Vec::new();
        walk(self.root.path(), &mut out);
        out
    }

    fn procs_of(dir: &Path) -> Vec<u32> {
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn write_procs(dir: &Path, pids: &[u32]) {
        let text: String = pids.iter().map(|p| format!("{p}\n")).collect();
        let _ = std::fs::write(dir.join("cgroup.procs"), text);
    }

    /// The process leaves every cgroup (it died).
    fn reap(&self, pid: u32) {
        for dir in self.all_dirs() {
            let procs = Self::procs_of(&dir);
            if procs.contains(&pid) {
                Self::write_procs(&dir, &procs.into_iter().filter(|p| *p != pid).collect::<Vec<_>>());
            }
        }
    }

    fn tree_pids(&self, dir: &Path) -> Vec<u32> {
        self.all_dirs().iter().filter(|d| d.starts_with(dir)).flat_map(|d| Self::procs_of(d)).collect()
    }

    fn is_frozen_member(&self, pid: u32) -> bool {
        self.all_dirs().iter().any(|d| {
            let state = std::fs::read_to_string(d.join("freezer.state")).unwrap_or_default();
            let freeze = std::fs::read_to_string(d.join("cgroup.freeze")).unwrap_or_default();
            (state.trim() == "FROZEN" || freeze.trim() == "1") && self.tree_pids(d).contains(&pid)
        })
    }

    fn special_write(&self, path: &Path, value: &str) -> io::Result<Option<String>> {
        let dir = path.parent().unwrap_or(path);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let (mount, template) = self.hierarchy_of(path).ok_or_else(|| errno(libc::ENOENT))?;
        let is_v2 = matches!(template, Template::V2 { .. });
        let number = || value.trim().parse::<u64>().map_err(|_| errno(libc::EINVAL));
        let read_num = |file: &str| -> u64 {
            std::fs::read_to_string(dir.join(file)).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(u64::MAX)
        };
        match name {
            "cgroup.procs" => {
                let pid: u32 = value.trim().parse().map_err(|_| errno(libc::EINVAL))?;
                let subtree = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
                if is_v2 && !self.is_real_root(dir) && !subtree.trim().is_empty() {
                    return Err(errno(libc::EBUSY));
                }
                for other in self.all_dirs().into_iter().filter(|d| d.starts_with(&mount)) {
                    let procs = Self::procs_of(&other);
                    Self::write_procs(&other, &procs.into_iter().filter(|p| *p != pid).collect::<Vec<_>>());
                }
                let mut procs = Self::procs_of(dir);
                procs.push(pid);
                Self::write_procs(dir, &procs);
                Ok(None)
            }
            "cgroup.subtree_control" => {
                let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
                let mut enabled: Vec<String> =
                    std::fs::read_to_string(path)?.split_whitespace().map(str::to_owned).collect();
                for token in value.split_whitespace() {
                    let controller = token.get(1..).unwrap_or_default();
                    if !available.split_whitespace().any(|a| a == controller) {
                        return Err(errno(libc::ENOENT));
                    }
                    if token.starts_with('+') {
                        if !self.is_real_root(dir) && !Self::procs_of(dir).is_empty() {
                            return Err(errno(libc::EBUSY));
                        }
                        if !enabled.iter().any(|e| e == controller) {
                            enabled.push(controller.to_owned());
                        }
                    } else {
                        enabled.retain(|e| e != controller);
                    }
                }
                Ok(Some(enabled.join(" ")))
            }
            "cgroup.kill" => {
                for pid in self.tree_pids(dir) {
                    self.reap(pid);
                }
                Ok(Some(String::new()))
            }
            "freezer.state" | "cgroup.freeze" => {
                if matches!(value.trim(), "THAWED" | "0") {
                    std::fs::write(path, value.trim())?;
                    let pending = std::mem::take(&mut self.state().pending_kills);
                    for pid in pending {
                        self.reap(pid);
                    }
                }
                Ok(Some(value.trim().to_owned()))
            }
            "memory.limit_in_bytes" => {
                let value = number()? / PAGE * PAGE;
                if dir.join("memory.memsw.limit_in_bytes").exists() && value > read_num("memory.memsw.limit_in_bytes") {
                    return Err(errno(libc::EINVAL));
                }
                Ok(Some(value.to_string()))
            }
            "memory.memsw.limit_in_bytes" => {
                let value = number()? / PAGE * PAGE;
                if value < read_num("memory.limit_in_bytes") {
                    return Err(errno(libc::EINVAL));
                }
                Ok(Some(value.to_string()))
            }
            "memory.max" | "memory.swap.max" => Ok(Some((number()? / PAGE * PAGE).to_string())),
            _ => Ok(Some(value.trim().to_owned())),
        }
    }
}

fn v1_files(controller: &str, memsw: bool, is_root: bool) -> Vec<(&'static str, String)> {
    let mut files: Vec<(&'static str, String)> = match controller {
        "memory" => vec![
            ("memory.limit_in_bytes", V1_UNLIMITED.into()),
            ("memory.usage_in_bytes", "0".into()),
            ("memory.max_usage_in_bytes", "0".into()),
            ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n".into()),
            ("memory.failcnt", "0".into()),
        ],
        "cpu" => vec![
            ("cpu.cfs_period_us", "100000".into()),
            ("cpu.cfs_quota_us", "-1".into()),
            ("cpu.stat", "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n".into()),
        ],
        "cpuacct" => vec![("cpuacct.usage", "0".into())],
        "pids" if !is_root => {
            vec![("pids.max", "max".into()), ("pids.current", "0".into()), ("pids.events", "max 0\n".into())]
        }
        "freezer" if !is_root => vec![("freezer.state", "THAWED".into())],
        _ => Vec::new(),
    };
    if controller == "memory" && memsw {
        files.push(("memory.memsw.limit_in_bytes", V1_UNLIMITED.into()));
        files.push(("memory.memsw.failcnt", "0".into()));
    }
    files
}

fn v2_files(controller: &str, swap: bool) -> Vec<(&'static str, String)> {
    match controller {
        "memory" => {
            let mut files: Vec<(&'static str, String)> = vec![
                ("memory.max", "max".into()),
                ("memory.oom.group", "0".into()),
                ("memory.current", "0".into()),
                ("memory.peak", "0".into()),
                ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n".into()),
            ];
            if swap {
                files.push(("memory.swap.max", "max".into()));
            }
            files
        }
        "cpu" => vec![
            ("cpu.max", "max 100000".into()),
            (
                "cpu.stat",
                "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n".into(),
            ),
        ],
        "pids" => vec![("pids.max", "max".into()), ("pids.current", "0".into()), ("pids.events", "max 0\n".into())],
        _ => Vec::new(),
    }
}

impl CgroupFs for FakeCgroupFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        if path.file_name().is_some_and(|n| n == "cgroup.events") && path.exists() {
            let dir = path.parent().unwrap_or(path);
            let populated = u8::from(!self.tree_pids(dir).is_empty());
            let frozen = std::fs::read_to_string(dir.join("cgroup.freeze")).unwrap_or_default().trim() == "1";
            return Ok(format!("populated {populated}\nfrozen {}\n", u8::from(frozen)));
        }
        std::fs::read_to_string(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.state().log.push(Op::Write(path.to_owned(), value.to_owned()));
        if !path.is_file() {
            return Err(errno(libc::ENOENT));
        }
        if let Some(code) = self.state().failing_writes.get(path) {
            return Err(errno(*code));
        }
        let held = self.state().holds.get(path).cloned();
        match self.special_write(path, value)? {
            Some(content) => std::fs::write(path, held.unwrap_or(content)),
            None => Ok(()),
        }
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        self.state().log.push(Op::Mkdir(path.to_owned()));
        std::fs::create_dir(path)?;
        self.populate(path);
        Ok(())
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        self.state().log.push(Op::Rmdir(path.to_owned()));
        if let Some(left) = self.state().busy.get_mut(path).filter(|n| **n > 0) {
            *left -= 1;
            return Err(errno(libc::EBUSY));
        }
        if !path.is_dir() {
            return Err(errno(libc::ENOENT));
        }
        let has_children = std::fs::read_dir(path)?.flatten().any(|e| e.path().is_dir());
        if has_children || !Self::procs_of(path).is_empty() {
            return Err(errno(libc::EBUSY));
        }
        std::fs::remove_dir_all(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn list_dirs(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut dirs: Vec<PathBuf> =
            std::fs::read_dir(path)?.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        Ok(dirs)
    }

    fn sigkill(&self, pid: u32) -> io::Result<()> {
        self.state().log.push(Op::Kill(pid));
        if self.is_frozen_member(pid) {
            self.state().pending_kills.push(pid);
        } else {
            self.reap(pid);
        }
        Ok(())
    }

    fn own_pid(&self) -> u32 {
        OWN_PID
    }
}
