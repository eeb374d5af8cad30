//! The sandbox's file system: mounts in build order and the Landlock rules over them.

use crate::layout::{DEV_INSIDE, PLUGIN_DIR_INSIDE, PROC_INSIDE, TMP_INSIDE};
use crate::manifest::{Manifest, PathGrant};
use crate::problem::index;
use crate::runtime::RuntimeChoice;
use crate::security_policy::SecurityPolicy;
use crate::spec::{FsAccess, LandlockRule, MountSpec, Origin, Sourced};
use std::path::{Path, PathBuf};

pub struct FsLayout {
    pub mounts: Vec<MountSpec>,
    pub rules: Vec<LandlockRule>,
}

/// Mounts in the order [runtime binds, plugin dir, host grants, /tmp, /proc, /dev], and a
/// Landlock rule for each. Files the supervisor writes into the new root itself (the
/// Python SDK under `/opt/wfsandbox`) get their rule from the supervisor.
pub fn build(
    manifest: &Manifest,
    plugin_dir: &Path,
    policy: &SecurityPolicy,
    runtime: &RuntimeChoice<'_>,
    tmp_bytes: &Sourced<u64>,
) -> FsLayout {
    let mut layout = FsLayout { mounts: Vec::new(), rules: Vec::new() };
    layout.add_runtime(policy, runtime);
    layout.add_plugin_dir(plugin_dir, runtime);
    let filesystem = &manifest.permissions.system.filesystem;
    layout.add_grants(&filesystem.read, false, "/permissions/system/filesystem/read");
    layout.add_grants(&filesystem.write, true, "/permissions/system/filesystem/write");
    layout.add_tmpfs(tmp_bytes);
    let proc_origin = Origin::builtin("fresh procfs of the plugin's pid namespace");
    layout.mounts.push(MountSpec::Proc { inside: PROC_INSIDE.to_owned(), origin: proc_origin.clone() });
    layout.rule(PROC_INSIDE, FsAccess::Read, proc_origin);
    let dev_origin = Origin::builtin("minimal /dev: null, zero, full, random, urandom");
    layout.mounts.push(MountSpec::Dev { inside: DEV_INSIDE.to_owned(), origin: dev_origin.clone() });
    // Read-write so /dev/null can be written; the supervisor narrows it to the device files.
    layout.rule(DEV_INSIDE, FsAccess::ReadWrite, dev_origin);
    layout
}

impl FsLayout {
    fn rule(&mut self, inside: &str, access: FsAccess, origin: Origin) {
        self.rules.push(LandlockRule { inside: inside.to_owned(), access, origin });
    }

    fn add_runtime(&mut self, policy: &SecurityPolicy, runtime: &RuntimeChoice<'_>) {
        let pointer = runtime.paths_pointer();
        for (i, path) in runtime.paths(policy).iter().enumerate() {
            let origin = Origin::policy(&index(&pointer, i));
            self.mounts.push(MountSpec::RuntimeBind { host: PathBuf::from(path), origin: origin.clone() });
            self.rule(path, FsAccess::ReadExec, origin);
        }
    }

    fn add_plugin_dir(&mut self, plugin_dir: &Path, runtime: &RuntimeChoice<'_>) {
        let origin = Origin::builtin("plugin directory, read-only");
        self.mounts.push(MountSpec::PluginDir {
            host: plugin_dir.to_path_buf(),
            inside: PLUGIN_DIR_INSIDE.to_owned(),
            origin: origin.clone(),
        });
        match runtime {
            RuntimeChoice::Native => self.rule(
                PLUGIN_DIR_INSIDE,
                FsAccess::ReadExec,
                Origin::builtin("plugin directory, executable: the entry point is native"),
            ),
            RuntimeChoice::Interpreter { .. } => self.rule(PLUGIN_DIR_INSIDE, FsAccess::Read, origin),
        }
    }

    fn add_grants(&mut self, grants: &[PathGrant], writable: bool, pointer: &str) {
        for (i, grant) in grants.iter().enumerate() {
            let origin = Origin::manifest(&index(pointer, i));
            self.mounts.push(MountSpec::HostBind {
                host: PathBuf::from(&grant.path),
                inside: grant.inside_path().to_owned(),
                writable,
                optional: grant.optional,
                origin: origin.clone(),
            });
            let access = if writable { FsAccess::ReadWrite } else { FsAccess::Read };
            self.rule(grant.inside_path(), access, origin);
        }
    }

    fn add_tmpfs(&mut self, tmp_bytes: &Sourced<u64>) {
        self.mounts.push(MountSpec::Tmpfs {
            inside: TMP_INSIDE.to_owned(),
            size_bytes: tmp_bytes.value,
            origin: tmp_bytes.origin.clone(),
        });
        self.rule(TMP_INSIDE, FsAccess::ReadWrite, tmp_bytes.origin.clone());
    }
}
