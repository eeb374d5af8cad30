//! Mapping the spec's Landlock rules (inside paths) onto what the sandbox really holds.
//!
//! Rules on host-backed mounts are attached in the parent to the bound objects' fds
//! (Landlock rules follow inodes, and a bind mount shares them). Rules on mounts the
//! child creates (tmpfs, proc) are added by the child once those exist. `/dev` is
//! narrowed to its device files.

use crate::rootfs::{RootPlan, PYTHON_SDK_DIR_INSIDE};
use std::ffi::CString;
use std::os::fd::RawFd;
use wf_policy::spec::{FsAccess, LandlockSpec};
use wf_sandbox_child::plan::policy_access::Access;

#[derive(Debug, Default)]
pub struct MappedRules {
    /// (fd of the bound host object, access, is_dir).
    pub host: Vec<(RawFd, FsAccess, bool)>,
    /// (inside path, access) for mounts the child creates.
    pub inside: Vec<(CString, Access)>,
    /// Rules that matched nothing (reported, never silently dropped).
    pub unmatched: Vec<String>,
}

pub fn child_access(access: FsAccess) -> Access {
    match access {
        FsAccess::Read => Access::Read,
        FsAccess::ReadExec => Access::ReadExec,
        FsAccess::ReadWrite => Access::ReadWrite,
    }
}

pub fn map_rules(spec: &LandlockSpec, root: &RootPlan, with_python_sdk: bool) -> MappedRules {
    let mut mapped = MappedRules::default();
    for rule in &spec.rules {
        let inside = rule.inside.as_str();
        if let Some(targets) = root.runtime_binds.get(inside) {
            for target in targets {
                if let Some(obj) = root.bound.get(target) {
                    mapped.host.push((obj.fd, rule.access, obj.is_dir));
                }
            }
        } else if let Some(obj) = root.bound.get(inside) {
            mapped.host.push((obj.fd, rule.access, obj.is_dir));
        } else if is_dev_mount(root, inside) {
            let prefix = format!("{inside}/");
            for (_, fd) in root.dev_nodes.iter().filter(|(path, _)| path.starts_with(&prefix)) {
                mapped.host.push((*fd, FsAccess::ReadWrite, false));
            }
        } else if root.created.contains(inside) {
            match CString::new(inside) {
                Ok(c) => mapped.inside.push((c, child_access(rule.access))),
                Err(_) => mapped.unmatched.push(inside.to_owned()),
            }
        } else {
            mapped.unmatched.push(inside.to_owned());
        }
    }
    if with_python_sdk {
        if let Ok(c) = CString::new(PYTHON_SDK_DIR_INSIDE) {
            mapped.inside.push((c, Access::Read));
        }
    }
    mapped
}

fn is_dev_mount(root: &RootPlan, inside: &str) -> bool {
    let prefix = format!("{inside}/");
    root.created.contains(inside) && root.dev_nodes.keys().any(|k| k.starts_with(&prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_policy::spec::{LandlockRule, MountSpec, Origin};

    #[test]
    fn dev_is_narrowed_to_device_files_and_tmp_is_added_inside() {
        let mounts = vec![
            MountSpec::Tmpfs { inside: "/tmp".into(), size_bytes: 1 << 20, origin: Origin::builtin("t") },
            MountSpec::Dev { inside: "/dev".into(), origin: Origin::builtin("t") },
        ];
        let root = RootPlan::build(&mounts, false, false).unwrap();
        let rules = LandlockSpec {
            rules: vec![
                LandlockRule { inside: "/tmp".into(), access: FsAccess::ReadWrite, origin: Origin::builtin("t") },
                LandlockRule { inside: "/dev".into(), access: FsAccess::ReadWrite, origin: Origin::builtin("t") },
                LandlockRule { inside: "/nowhere".into(), access: FsAccess::Read, origin: Origin::builtin("t") },
            ],
            scope_ipc_and_signals: true,
        };
        let mapped = map_rules(&rules, &root, false);
        assert_eq!(mapped.host.len(), crate::rootfs::DEV_NODES.len());
        assert!(mapped.host.iter().all(|(_, access, is_dir)| *access == FsAccess::ReadWrite && !is_dir));
        assert_eq!(mapped.inside, vec![(CString::new("/tmp").unwrap(), Access::ReadWrite)]);
        assert_eq!(mapped.unmatched, vec!["/nowhere".to_string()]);
    }
}
