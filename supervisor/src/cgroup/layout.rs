//! Which cgroup hierarchies this host has, where they are mounted, and where our own
//! process sits in each — parsed from `/proc/self/mountinfo` and `/proc/self/cgroup`.
//!
//! Nothing here assumes `/sys/fs/cgroup`: every mount point comes from mountinfo.
//! A v1 hierarchy can carry several controllers (`cpu,cpuacct`); each of them maps to
//! the same mount. A hierarchy mounted at a sub-directory of the cgroup filesystem
//! (containers without a cgroup namespace) is handled by stripping the mount's root
//! from our cgroup path; a hierarchy whose mounts cannot reach our cgroup is left out.

use serde::Serialize;
use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

pub const PROC_SELF_MOUNTINFO: &str = "/proc/self/mountinfo";
pub const PROC_SELF_CGROUP: &str = "/proc/self/cgroup";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{file} line {line}: {reason}: {text:?}")]
    Malformed { file: &'static str, line: usize, reason: &'static str, text: String },
    #[error("no usable cgroup hierarchy: /proc/self/cgroup names none that mountinfo shows mounted")]
    NoHierarchy,
}

/// One mounted hierarchy as seen by our process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupMount {
    /// Where the hierarchy is mounted (from mountinfo).
    pub mount: PathBuf,
    /// Our cgroup, relative to that mount, always starting with `/` (`/` = the mount's root).
    pub own_path: PathBuf,
}

impl CgroupMount {
    /// The directory of our own cgroup: `mount` joined with `own_path`.
    pub fn own_dir(&self) -> PathBuf {
        join_cgroup_path(&self.mount, &self.own_path)
    }

    /// Whether our cgroup is the root of the mounted hierarchy.
    pub fn own_is_mount_root(&self) -> bool {
        self.own_path.components().all(|c| matches!(c, Component::RootDir))
    }
}

/// The host's cgroup setup, as our process sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CgroupLayout {
    /// Pure cgroup v2: no controller is bound to a v1 hierarchy.
    V2 { mount: PathBuf, own_path: PathBuf },
    /// At least one controller is bound to a v1 hierarchy.
    Hybrid {
        /// Controller name (`memory`, `cpu`, `cpuacct`, `pids`, `freezer`, ...) → its hierarchy.
        /// Co-mounted controllers map to the same mount.
        v1: BTreeMap<String, CgroupMount>,
        /// The cgroup2 hierarchy, if mounted (gives `cgroup.kill`, `cgroup.events`, PSI).
        unified: Option<CgroupMount>,
    },
}

impl CgroupLayout {
    /// Detects the layout of the calling process.
    pub fn detect() -> Result<Self, LayoutError> {
        let mountinfo = read_proc(PROC_SELF_MOUNTINFO)?;
        let cgroup = read_proc(PROC_SELF_CGROUP)?;
        Self::parse(&mountinfo, &cgroup)
    }

    /// Builds the layout from the contents of `/proc/self/mountinfo` and `/proc/self/cgroup`.
    pub fn parse(mountinfo: &str, proc_cgroup: &str) -> Result<Self, LayoutError> {
        let mounts = parse_mountinfo(mountinfo)?;
        let memberships = parse_proc_cgroup(proc_cgroup)?;
        let unified = memberships
            .iter()
            .find(|m| m.hierarchy_id == 0 && m.controllers.is_empty())
            .and_then(|m| reachable_mount(&mounts, MountType::Cgroup2, &[], &m.path));
        let v1_members: Vec<&Membership> =
            memberships.iter().filter(|m| m.hierarchy_id != 0 && !m.controllers.is_empty()).collect();
        if v1_members.is_empty() {
            let unified = unified.ok_or(LayoutError::NoHierarchy)?;
            return Ok(CgroupLayout::V2 { mount: unified.mount, own_path: unified.own_path });
        }
        let mut v1 = BTreeMap::new();
        for member in v1_members {
            if let Some(found) = reachable_mount(&mounts, MountType::Cgroup1, &member.controllers, &member.path) {
                for controller in &member.controllers {
                    v1.insert(controller.clone(), found.clone());
                }
            }
        }
        if v1.is_empty() && unified.is_none() {
            return Err(LayoutError::NoHierarchy);
        }
        Ok(CgroupLayout::Hybrid { v1, unified })
    }

    /// Short name for reports: `v2` or `hybrid`.
    pub fn version_name(&self) -> &'static str {
        match self {
            CgroupLayout::V2 { .. } => "v2",
            CgroupLayout::Hybrid { .. } => "hybrid",
        }
    }
}

fn read_proc(path: &str) -> Result<String, LayoutError> {
    std::fs::read_to_string(path).map_err(|source| LayoutError::Read { path: PathBuf::from(path), source })
}

/// `mount` joined with a cgroup path that starts with `/` (a plain `join` would replace it).
pub(crate) fn join_cgroup_path(mount: &Path, cgroup_path: &Path) -> PathBuf {
    let mut dir = mount.to_path_buf();
    for component in cgroup_path.components() {
        if let Component::Normal(name) = component {
            dir.push(name);
        }
    }
    dir
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MountType {
    Cgroup1,
    Cgroup2,
}

#[derive(Debug)]
struct MountEntry {
    /// Root of the mount within the cgroup filesystem (`/` unless a sub-tree was bind-mounted).
    root: PathBuf,
    mount_point: PathBuf,
    fs_type: MountType,
    super_options: Vec<String>,
}

#[derive(Debug)]
struct Membership {
    hierarchy_id: u32,
    /// Real controllers only; `name=systemd`-style named hierarchies carry none.
    controllers: Vec<String>,
    path: PathBuf,
}

/// Keeps only cgroup and cgroup2 mounts. Format (proc(5)):
/// `id parent major:minor root mount-point options [optional...] - fstype source super-options`.
fn parse_mountinfo(text: &str) -> Result<Vec<MountEntry>, LayoutError> {
    let mut mounts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let malformed =
            |reason| LayoutError::Malformed { file: "mountinfo", line: index + 1, reason, text: line.to_owned() };
        let (before, after) = line.split_once(" - ").ok_or_else(|| malformed("no ' - ' separator"))?;
        let mut fields = before.split(' ');
        let root = fields.nth(3).ok_or_else(|| malformed("missing root field"))?;
        let mount_point = fields.next().ok_or_else(|| malformed("missing mount point field"))?;
        let mut tail = after.split(' ');
        let fs_type = match tail.next() {
            Some("cgroup") => MountType::Cgroup1,
            Some("cgroup2") => MountType::Cgroup2,
            Some(_) => continue,
            None => return Err(malformed("missing filesystem type")),
        };
        let super_options = tail.nth(1).ok_or_else(|| malformed("missing super options"))?;
        mounts.push(MountEntry {
            root: PathBuf::from(unescape_mountinfo(root)),
            mount_point: PathBuf::from(unescape_mountinfo(mount_point)),
            fs_type,
            super_options: super_options.split(',').map(str::to_owned).collect(),
        });
    }
    Ok(mounts)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok()) {
            Some(value) => {
                out.push(value);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lines `hierarchy-id:controller-list:path` (cgroups(7)).
fn parse_proc_cgroup(text: &str) -> Result<Vec<Membership>, LayoutError> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let malformed = |reason| LayoutError::Malformed {
            file: "/proc/self/cgroup",
            line: index + 1,
            reason,
            text: line.to_owned(),
        };
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed("expected id:controllers:path"));
        };
        let hierarchy_id = id.parse::<u32>().map_err(|_| malformed("hierarchy id is not a number"))?;
        if !path.starts_with('/') {
            return Err(malformed("cgroup path is not absolute"));
        }
        let controllers =
            controllers.split(',').filter(|c| !c.is_empty() && !c.starts_with("name=")).map(str::to_owned).collect();
        out.push(Membership { hierarchy_id, controllers, path: PathBuf::from(path) });
    }
    Ok(out)
}

/// The first mount of the right type (carrying every controller of the hierarchy) whose
/// root contains our cgroup, with our path made relative to that root.
fn reachable_mount(
    mounts: &[MountEntry],
    fs_type: MountType,
    controllers: &[String],
    cgroup_path: &Path,
) -> Option<CgroupMount> {
    mounts
        .iter()
        .filter(|m| m.fs_type == fs_type)
        .filter(|m| controllers.iter().all(|c| m.super_options.iter().any(|o| o == c)))
        .find_map(|m| {
            let relative = cgroup_path.strip_prefix(&m.root).ok()?;
            Some(CgroupMount { mount: m.mount_point.clone(), own_path: Path::new("/").join(relative) })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/276e
2:cpuacct:/
1:cpu:/
0::/
";

    fn mount(mount: &str, own: &str) -> CgroupMount {
        CgroupMount { mount: PathBuf::from(mount), own_path: PathBuf::from(own) }
    }

    #[test]
    fn this_hosts_hybrid_layout_is_recognised() {
        let layout = CgroupLayout::parse(HYBRID_MOUNTINFO, HYBRID_CGROUP).unwrap();
        let CgroupLayout::Hybrid { v1, unified } = layout else { panic!("not hybrid: {layout:?}") };
        assert_eq!(v1.get("memory"), Some(&mount("/sys/fs/cgroup/memory", "/process_api/276e")));
        assert_eq!(v1.get("cpu"), Some(&mount("/sys/fs/cgroup/cpu", "/")));
        assert_eq!(v1.get("cpuacct"), Some(&mount("/sys/fs/cgroup/cpuacct", "/")));
        assert_eq!(v1.get("pids"), Some(&mount("/sys/fs/cgroup/pids", "/")));
        assert_eq!(v1.get("freezer"), Some(&mount("/sys/fs/cgroup/freezer", "/")));
        assert!(!v1.contains_key("name=systemd"), "named hierarchies carry no controller");
        assert_eq!(v1.len(), 5);
        assert_eq!(unified, Some(mount("/sys/fs/cgroup/unified", "/")));
    }

    #[test]
    fn co_mounted_controllers_share_one_hierarchy() {
        let mountinfo = "\
25 24 0:22 / /cg/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /cg/memory rw - cgroup cgroup rw,memory
";
        let cgroup = "3:cpu,cpuacct:/a/b\n2:memory:/a\n";
        let CgroupLayout::Hybrid { v1, unified } = CgroupLayout::parse(mountinfo, cgroup).unwrap() else {
            panic!("not hybrid")
        };
        assert_eq!(v1.get("cpu"), Some(&mount("/cg/cpu,cpuacct", "/a/b")));
        assert_eq!(v1.get("cpuacct"), Some(&mount("/cg/cpu,cpuacct", "/a/b")));
        assert_eq!(v1.get("memory"), Some(&mount("/cg/memory", "/a")));
        assert_eq!(unified, None);
    }

    #[test]
    fn pure_v2_in_root_and_in_a_leaf_outside_sys_fs_cgroup() {
        let mountinfo = "40 30 0:40 / /run/cg2 rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            CgroupLayout::parse(mountinfo, "0::/\n").unwrap(),
            CgroupLayout::V2 { mount: "/run/cg2".into(), own_path: "/".into() }
        );
        assert_eq!(
            CgroupLayout::parse(mountinfo, "0::/sandbox.slice/test.scope\n").unwrap(),
            CgroupLayout::V2 { mount: "/run/cg2".into(), own_path: "/sandbox.slice/test.scope".into() }
        );
    }

    #[test]
    fn a_named_only_v1_hierarchy_does_not_make_a_host_hybrid() {
        let mountinfo = "\
40 30 0:40 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
41 30 0:41 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
";
        let layout = CgroupLayout::parse(mountinfo, "1:name=systemd:/\n0::/x\n").unwrap();
        assert_eq!(layout, CgroupLayout::V2 { mount: "/sys/fs/cgroup".into(), own_path: "/x".into() });
    }

    #[test]
    fn a_mount_of_a_subtree_is_made_relative_and_an_unreachable_one_skipped() {
        let mountinfo = "\
50 40 0:50 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
51 40 0:51 /other /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";
        let cgroup = "4:memory:/docker/abc/inner\n8:pids:/docker/abc\n";
        let CgroupLayout::Hybrid { v1, .. } = CgroupLayout::parse(mountinfo, cgroup).unwrap() else {
            panic!("not hybrid")
        };
        assert_eq!(v1.get("memory"), Some(&mount("/sys/fs/cgroup/memory", "/inner")));
        assert_eq!(v1.get("pids"), None, "our pids cgroup is not beneath the only pids mount");
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        let mountinfo = "40 30 0:40 / /mnt/cg\\040two rw - cgroup2 none rw\n";
        let layout = CgroupLayout::parse(mountinfo, "0::/\n").unwrap();
        assert_eq!(layout, CgroupLayout::V2 { mount: "/mnt/cg two".into(), own_path: "/".into() });
    }

    #[test]
    fn malformed_or_empty_inputs_are_errors_not_panics() {
        assert!(matches!(CgroupLayout::parse("", "0::/\n"), Err(LayoutError::NoHierarchy)));
        assert!(matches!(CgroupLayout::parse("garbage line\n", "0::/\n"), Err(LayoutError::Malformed { .. })));
        assert!(matches!(
            CgroupLayout::parse(HYBRID_MOUNTINFO, "x:memory:/\n"),
            Err(LayoutError::Malformed { reason: "hierarchy id is not a number", .. })
        ));
        assert!(matches!(CgroupLayout::parse(HYBRID_MOUNTINFO, "4:memory\n"), Err(LayoutError::Malformed { .. })));
        assert!(matches!(
            CgroupLayout::parse(HYBRID_MOUNTINFO, "4:memory:relative\n"),
            Err(LayoutError::Malformed { .. })
        ));
        assert!(matches!(CgroupLayout::parse("1 2 3 - cgroup2\n", "0::/\n"), Err(LayoutError::Malformed { .. })));
        for junk in ["\\", "\\0", "\\77", "\\999", "a\\\\b"] {
            let _ = unescape_mountinfo(junk);
        }
    }

    #[test]
    fn own_dir_joins_the_mount_and_our_path() {
        let m = mount("/sys/fs/cgroup/memory", "/process_api/x");
        assert_eq!(m.own_dir(), PathBuf::from("/sys/fs/cgroup/memory/process_api/x"));
        assert!(!m.own_is_mount_root());
        assert!(mount("/sys/fs/cgroup", "/").own_is_mount_root());
    }

    #[test]
    fn detect_reads_this_process() {
        let layout = CgroupLayout::detect().unwrap();
        let own_cgroup = std::fs::read_to_string(PROC_SELF_CGROUP).unwrap();
        match &layout {
            CgroupLayout::V2 { own_path, .. } => {
                assert!(own_cgroup.lines().any(|l| l == format!("0::{}", own_path.display())));
            }
            CgroupLayout::Hybrid { v1, .. } => {
                assert!(!v1.is_empty());
                for (controller, m) in v1 {
                    assert!(m.mount.is_dir(), "{controller}: {} is not a directory", m.mount.display());
                }
            }
        }
    }
}
