//! Turning the spec's mounts into the child's root-building steps.
//!
//! Every host object is opened here as an `O_PATH` fd; host symlinks along runtime
//! paths are recreated inside rather than followed. The fds stay open (in
//! [`RootPlan::fds`]) until the child has mounted them.

use crate::host_path::{self, HostPathError, Kind, MirrorStep};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use wf_policy::spec::MountSpec;
use wf_sandbox_child::plan::RootOp;

/// Device nodes every sandbox gets in its minimal `/dev`.
pub const DEV_NODES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// Where the embedded Python SDK is written inside the sandbox.
pub const PYTHON_SDK_INSIDE: &str = "/opt/wfsandbox/python/wfplugin.py";
pub const PYTHON_SDK_DIR_INSIDE: &str = "/opt/wfsandbox/python";
static PYTHON_SDK: &[u8] = include_bytes!("../../sdk/python/wfplugin.py");

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("mount {inside}: {source}")]
    Resolve { inside: String, source: HostPathError },
    #[error("required path {host} (granted at {inside}) does not exist")]
    MissingRequired { host: PathBuf, inside: String },
    #[error("runtime path {host} ({field} in the policy) does not exist on this host; adjust the policy's runtimes to this host's layout")]
    MissingRuntime { host: PathBuf, field: String },
    #[error("{what}: path contains a NUL byte")]
    Nul { what: String },
    #[error("{host}: not a regular file or directory; only those can be granted")]
    UnsupportedType { host: PathBuf },
    #[error("{host}: {source}")]
    Detach { host: PathBuf, source: wf_sandbox_child::mount_source::MountSourceError },
}

/// A host object bound into the sandbox, as Landlock rules need it.
#[derive(Debug, Clone, Copy)]
pub struct BoundObject {
    pub fd: RawFd,
    pub is_dir: bool,
}

/// What the child needs to build its root, plus what the parent keeps for Landlock.
#[derive(Debug, Default)]
pub struct RootPlan {
    pub ops: Vec<RootOp>,
    /// Owned fds: the `O_PATH` fd of every bound object (Landlock rules attach to these)
    /// and the detached mount tree behind every `RootOp::Bind`/`Dev` (the child attaches
    /// those; an fd from the parent's mount namespace cannot be bound from the child's).
    /// Dropped after the child has exec'd or failed.
    pub fds: Vec<OwnedFd>,
    /// Inside path → bound host object (its `O_PATH` fd).
    pub bound: BTreeMap<String, BoundObject>,
    /// Runtime path as the policy lists it → inside paths of the objects bound for it.
    pub runtime_binds: BTreeMap<String, Vec<String>>,
    /// Inside paths of mounts the child creates itself (tmpfs, proc, dev).
    pub created: BTreeSet<String>,
    /// Host device nodes bound into `/dev`, by inside path.
    pub dev_nodes: BTreeMap<String, RawFd>,
    /// Non-fatal findings (e.g. a missing optional path), for the report.
    pub warnings: Vec<String>,
}

fn cstr(p: &Path) -> Result<CString, RootfsError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| RootfsError::Nul { what: p.display().to_string() })
}

fn cstr_str(s: &str) -> Result<CString, RootfsError> {
    CString::new(s).map_err(|_| RootfsError::Nul { what: s.to_owned() })
}

impl RootPlan {
    /// Build the plan for `mounts`. `with_python_sdk` writes the SDK module into the root;
    /// `plugin_exec` leaves the plugin directory executable (native entry points only).
    pub fn build(mounts: &[MountSpec], with_python_sdk: bool, plugin_exec: bool) -> Result<Self, RootfsError> {
        let mut plan = RootPlan::default();
        let mut dirs_made = BTreeSet::new();
        for mount in ordered(mounts) {
            plan.add_mount(mount, &mut dirs_made, plugin_exec)?;
        }
        if with_python_sdk {
            plan.ensure_dir(Path::new(PYTHON_SDK_DIR_INSIDE), &mut dirs_made)?;
            plan.ops.push(RootOp::WriteFile { at: cstr_str(PYTHON_SDK_INSIDE)?, contents: PYTHON_SDK });
        }
        Ok(plan)
    }

    fn add_mount(
        &mut self,
        mount: &MountSpec,
        dirs: &mut BTreeSet<PathBuf>,
        plugin_exec: bool,
    ) -> Result<(), RootfsError> {
        match mount {
            MountSpec::RuntimeBind { host, origin } => self.add_runtime(host, &origin.pointer, dirs),
            MountSpec::PluginDir { host, inside, .. } => {
                self.add_bind(host, inside, true, dirs, plugin_exec).map(|_| ())
            }
            MountSpec::HostBind { host, inside, writable, optional, .. } => {
                match self.add_grant(host, inside, !*writable, dirs) {
                    Err(RootfsError::Resolve { source: HostPathError::Io { source, .. }, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        if *optional {
                            self.warnings.push(format!("optional path {} does not exist; not granted", host.display()));
                            Ok(())
                        } else {
                            Err(RootfsError::MissingRequired { host: host.clone(), inside: inside.clone() })
                        }
                    }
                    other => other.map(|_| ()),
                }
            }
            MountSpec::Tmpfs { inside, size_bytes, .. } => {
                self.parent_dirs(Path::new(inside), dirs)?;
                self.ops.push(RootOp::Tmpfs { at: cstr_str(inside)?, size_bytes: *size_bytes, mode: 0o1777 });
                self.created.insert(inside.clone());
                Ok(())
            }
            MountSpec::Proc { inside, .. } => {
                self.parent_dirs(Path::new(inside), dirs)?;
                self.ops.push(RootOp::Proc { at: cstr_str(inside)? });
                self.created.insert(inside.clone());
                Ok(())
            }
            MountSpec::Dev { inside, .. } => self.add_dev(inside, dirs),
        }
    }

    /// Mirror a runtime path: recreate host symlinks, bind the final object read-only.
    fn add_runtime(&mut self, host: &Path, field: &str, dirs: &mut BTreeSet<PathBuf>) -> Result<(), RootfsError> {
        let missing = || RootfsError::MissingRuntime { host: host.to_owned(), field: field.to_owned() };
        let inside = host.display().to_string();
        let steps = match host_path::mirror_steps(host, &host_path::read_link_host) {
            Ok(steps) => steps,
            Err(HostPathError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(missing());
            }
            Err(source) => return Err(RootfsError::Resolve { inside, source }),
        };
        for step in steps {
            match step {
                MirrorStep::Symlink { at, target } => {
                    if dirs.contains(&at) || self.bound.contains_key(&at.display().to_string()) {
                        continue;
                    }
                    self.parent_dirs(&at, dirs)?;
                    self.ops.push(RootOp::Symlink { at: cstr(&at)?, target: cstr(&target)? });
                    dirs.insert(at);
                }
                MirrorStep::Bind { at } => {
                    let at_str = at.display().to_string();
                    self.runtime_binds.entry(inside.clone()).or_default().push(at_str.clone());
                    if self.bound.contains_key(&at_str) || self.covered_by_bind(&at) {
                        continue;
                    }
                    match self.add_bind(&at, &at_str, true, dirs, true) {
                        Err(RootfsError::Resolve { source: HostPathError::Io { source, .. }, .. })
                            if source.kind() == std::io::ErrorKind::NotFound =>
                        {
                            self.warnings
                                .push(format!("runtime path {} does not exist on this host; skipped", at.display()));
                        }
                        other => {
                            other?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn covered_by_bind(&self, at: &Path) -> bool {
        self.bound.iter().any(|(inside, obj)| obj.is_dir && at.starts_with(inside))
    }

    /// A path from the manifest: no symlink may appear anywhere along it, so the policy's
    /// lexical check of `allowed_host_paths` holds for what is actually bound.
    fn add_grant(
        &mut self,
        host: &Path,
        inside: &str,
        readonly: bool,
        dirs: &mut BTreeSet<PathBuf>,
    ) -> Result<BoundObject, RootfsError> {
        let fd = host_path::open_path_no_symlinks(host)
            .map_err(|source| RootfsError::Resolve { inside: inside.to_owned(), source })?;
        self.bind_opened(fd, host, inside, readonly, dirs, false)
    }

    fn add_bind(
        &mut self,
        host: &Path,
        inside: &str,
        readonly: bool,
        dirs: &mut BTreeSet<PathBuf>,
        allow_exec: bool,
    ) -> Result<BoundObject, RootfsError> {
        let fd = host_path::open_path_nofollow(host)
            .map_err(|source| RootfsError::Resolve { inside: inside.to_owned(), source })?;
        self.bind_opened(fd, host, inside, readonly, dirs, allow_exec)
    }

    fn bind_opened(
        &mut self,
        fd: OwnedFd,
        host: &Path,
        inside: &str,
        readonly: bool,
        dirs: &mut BTreeSet<PathBuf>,
        allow_exec: bool,
    ) -> Result<BoundObject, RootfsError> {
        let resolve_err = |source| RootfsError::Resolve { inside: inside.to_owned(), source };
        let (kind, _) = host_path::stat_fd(&fd, host).map_err(resolve_err)?;
        let is_dir = match kind {
            Kind::Dir => true,
            Kind::File => false,
            Kind::Symlink | Kind::Other => return Err(RootfsError::UnsupportedType { host: host.to_owned() }),
        };
        self.parent_dirs(Path::new(inside), dirs)?;
        let tree = detach(&fd, host)?;
        let object = BoundObject { fd: fd.as_raw_fd(), is_dir };
        self.ops.push(RootOp::Bind { fd: tree.as_raw_fd(), at: cstr_str(inside)?, readonly, is_dir, allow_exec });
        self.bound.insert(inside.to_owned(), object);
        self.fds.push(fd);
        self.fds.push(tree);
        Ok(object)
    }

    fn add_dev(&mut self, inside: &str, dirs: &mut BTreeSet<PathBuf>) -> Result<(), RootfsError> {
        self.parent_dirs(Path::new(inside), dirs)?;
        let mut host_dev_fds = Vec::new();
        for node in DEV_NODES {
            let host = PathBuf::from("/dev").join(node);
            let fd = host_path::open_path_nofollow(&host)
                .map_err(|source| RootfsError::Resolve { inside: format!("{inside}/{node}"), source })?;
            let tree = detach(&fd, &host)?;
            host_dev_fds.push((cstr_str(node)?, tree.as_raw_fd()));
            self.dev_nodes.insert(format!("{inside}/{node}"), fd.as_raw_fd());
            self.fds.push(fd);
            self.fds.push(tree);
        }
        self.ops.push(RootOp::Dev { at: cstr_str(inside)?, host_dev_fds });
        self.created.insert(inside.to_owned());
        Ok(())
    }

    fn ensure_dir(&mut self, dir: &Path, dirs: &mut BTreeSet<PathBuf>) -> Result<(), RootfsError> {
        self.parent_dirs(&dir.join("x"), dirs)
    }

    /// Emit `Dir` ops for every missing ancestor of `at` (the root tmpfs starts empty).
    fn parent_dirs(&mut self, at: &Path, dirs: &mut BTreeSet<PathBuf>) -> Result<(), RootfsError> {
        let mut ancestors: Vec<&Path> = at.ancestors().skip(1).filter(|p| *p != Path::new("/")).collect();
        ancestors.reverse();
        for dir in ancestors {
            if dirs.contains(dir) || self.bound.contains_key(&dir.display().to_string()) {
                continue;
            }
            self.ops.push(RootOp::Dir { at: cstr(dir)? });
            dirs.insert(dir.to_owned());
        }
        Ok(())
    }
}

fn detach(fd: &OwnedFd, host: &Path) -> Result<OwnedFd, RootfsError> {
    use std::os::fd::AsFd;
    wf_sandbox_child::mount_source::detached_tree(fd.as_fd())
        .map_err(|source| RootfsError::Detach { host: host.to_owned(), source })
}

/// Shallow paths first so a deeper bind is never hidden by a later bind of its parent;
/// otherwise the spec's order.
fn ordered(mounts: &[MountSpec]) -> Vec<&MountSpec> {
    let mut sorted: Vec<&MountSpec> = mounts.iter().collect();
    sorted.sort_by_key(|m| depth(inside_of(m)));
    sorted
}

fn inside_of(m: &MountSpec) -> &str {
    match m {
        MountSpec::RuntimeBind { host, .. } => host.to_str().unwrap_or("/"),
        MountSpec::PluginDir { inside, .. }
        | MountSpec::HostBind { inside, .. }
        | MountSpec::Tmpfs { inside, .. }
        | MountSpec::Proc { inside, .. }
        | MountSpec::Dev { inside, .. } => inside,
    }
}

fn depth(path: &str) -> usize {
    path.split('/').filter(|s| !s.is_empty()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_policy::spec::Origin;

    fn op_paths(plan: &RootPlan) -> Vec<String> {
        plan.ops
            .iter()
            .map(|op| match op {
                RootOp::Dir { at } => format!("dir {}", at.to_string_lossy()),
                RootOp::Symlink { at, target } => {
                    format!("link {} -> {}", at.to_string_lossy(), target.to_string_lossy())
                }
                RootOp::Bind { at, readonly, .. } => format!("bind {} ro={readonly}", at.to_string_lossy()),
                RootOp::Tmpfs { at, .. } => format!("tmpfs {}", at.to_string_lossy()),
                RootOp::Proc { at } => format!("proc {}", at.to_string_lossy()),
                RootOp::Dev { at, .. } => format!("dev {}", at.to_string_lossy()),
                RootOp::WriteFile { at, .. } => format!("file {}", at.to_string_lossy()),
            })
            .collect()
    }

    #[test]
    fn runtime_symlink_and_plugin_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink("real", tmp.path().join("alias")).unwrap();
        let plugin = tmp.path().join("plugin");
        std::fs::create_dir(&plugin).unwrap();
        let mounts = vec![
            MountSpec::RuntimeBind { host: tmp.path().join("alias"), origin: Origin::builtin("t") },
            MountSpec::PluginDir { host: plugin.clone(), inside: "/plugin".into(), origin: Origin::builtin("t") },
            MountSpec::Tmpfs { inside: "/tmp".into(), size_bytes: 1 << 20, origin: Origin::builtin("t") },
        ];
        let plan = RootPlan::build(&mounts, false, true).unwrap();
        let ops = op_paths(&plan);
        let alias = tmp.path().join("alias").display().to_string();
        let real_s = real.display().to_string();
        assert!(ops.contains(&format!("link {alias} -> real")), "{ops:?}");
        assert!(ops.contains(&format!("bind {real_s} ro=true")), "{ops:?}");
        assert!(ops.contains(&"bind /plugin ro=true".to_string()));
        assert!(ops.contains(&"tmpfs /tmp".to_string()));
        assert_eq!(plan.fds.len(), 4, "an O_PATH fd and a detached tree per bind");
        assert!(plan.created.contains("/tmp"));
    }

    #[test]
    fn missing_optional_grant_warns_missing_required_refuses() {
        let optional = MountSpec::HostBind {
            host: "/nonexistent/wf-test".into(),
            inside: "/data".into(),
            writable: false,
            optional: true,
            origin: Origin::builtin("t"),
        };
        let plan = RootPlan::build(std::slice::from_ref(&optional), false, false).unwrap();
        assert_eq!(plan.warnings.len(), 1);
        let MountSpec::HostBind { host, inside, writable, origin, .. } = optional else { unreachable!() };
        let required = MountSpec::HostBind { host, inside, writable, optional: false, origin };
        let err = RootPlan::build(&[required], false, false).unwrap_err();
        assert!(matches!(err, RootfsError::MissingRequired { .. }), "{err}");
    }

    #[test]
    fn symlink_as_grant_target_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", tmp.path().join("link")).unwrap();
        let grant = MountSpec::HostBind {
            host: tmp.path().join("link"),
            inside: "/data".into(),
            writable: true,
            optional: false,
            origin: Origin::builtin("t"),
        };
        let err = RootPlan::build(&[grant], false, false).unwrap_err();
        assert!(matches!(err, RootfsError::UnsupportedType { .. }), "{err}");
    }

    #[test]
    fn a_missing_runtime_path_is_refused_naming_the_policy_field() {
        let origin = Origin::policy("/sandbox/runtimes/interpreters/python3/paths/3");
        let mounts = vec![MountSpec::RuntimeBind { host: "/nonexistent-wf/lib/python3.99".into(), origin }];
        let message = RootPlan::build(&mounts, false, false).unwrap_err().to_string();
        assert!(message.contains("/sandbox/runtimes/interpreters/python3/paths/3"), "{message}");
        assert!(message.contains("/nonexistent-wf/lib/python3.99"), "{message}");
    }

    #[test]
    fn deeper_paths_are_mounted_after_shallower_ones() {
        let mounts = vec![
            MountSpec::Tmpfs { inside: "/a/b".into(), size_bytes: 1, origin: Origin::builtin("t") },
            MountSpec::Tmpfs { inside: "/a".into(), size_bytes: 1, origin: Origin::builtin("t") },
        ];
        let plan = RootPlan::build(&mounts, false, true).unwrap();
        let ops = op_paths(&plan);
        let a = ops.iter().position(|o| o == "tmpfs /a").unwrap();
        let ab = ops.iter().position(|o| o == "tmpfs /a/b").unwrap();
        assert!(a < ab);
    }
}
