//! What a plugin cgroup really enforces, for the run report: read back from the kernel,
//! never copied from what was requested.

use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupVersion {
    /// Pure cgroup v2.
    V2,
    /// Controllers on v1 hierarchies (plus the v2 hierarchy, if mounted, for kill and events).
    V1Hybrid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HierarchyKind {
    V1,
    V2,
}

/// One directory of a plugin cgroup, in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HierarchyDir {
    pub dir: PathBuf,
    pub kind: HierarchyKind,
    /// Controllers this directory is used for (empty for the hybrid host's v2 directory).
    pub controllers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SwapEnforcement {
    /// Swap is accounted and limited to this many bytes (0 = no swap).
    Limited { max_bytes: u64 },
    /// Swap is accounted but the kernel holds no limit (`max`).
    Unlimited,
    /// The host does not account swap per cgroup (no `memory.swap.max` /
    /// `memory.memsw.*`): the plugin could swap; the caller decides whether that is acceptable.
    Unaccounted,
}

/// How `PluginCgroup::kill` ends every process in the cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KillMethod {
    /// `cgroup.kill` (v2, Linux >= 5.14): the kernel kills the whole subtree at once.
    CgroupKill,
    /// v2 `cgroup.freeze`, SIGKILL every member, thaw; repeated until empty.
    V2FreezeAndSignal,
    /// v1 freezer `FROZEN`, SIGKILL every member, `THAWED`; repeated until empty.
    V1FreezerAndSignal,
}

/// The limits in force, read back from the kernel. `None` means the kernel holds
/// "unlimited" for it — something the caller must treat as not enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupEnforcement {
    pub version: CgroupVersion,
    pub hierarchies: Vec<HierarchyDir>,
    pub memory_max_bytes: Option<u64>,
    pub swap: SwapEnforcement,
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: u64,
    pub pids_max: Option<u64>,
    /// v2 `memory.oom.group`: an OOM kill takes the whole cgroup. v1 has no equivalent.
    pub oom_group: bool,
    pub kill: KillMethod,
}

impl CgroupEnforcement {
    /// Whether memory, swap (when accounted), CPU and pids limits are all in force.
    pub fn all_limits_enforced(&self) -> bool {
        self.memory_max_bytes.is_some()
            && self.cpu_quota_us.is_some()
            && self.pids_max.is_some()
            && !matches!(self.swap, SwapEnforcement::Unlimited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CgroupEnforcement {
        CgroupEnforcement {
            version: CgroupVersion::V1Hybrid,
            hierarchies: vec![HierarchyDir {
                dir: "/cg/memory/x".into(),
                kind: HierarchyKind::V1,
                controllers: vec!["memory".into()],
            }],
            memory_max_bytes: Some(1 << 26),
            swap: SwapEnforcement::Limited { max_bytes: 0 },
            cpu_quota_us: Some(10_000),
            cpu_period_us: 100_000,
            pids_max: Some(64),
            oom_group: false,
            kill: KillMethod::CgroupKill,
        }
    }

    #[test]
    fn any_unlimited_value_means_not_all_enforced() {
        assert!(sample().all_limits_enforced());
        assert!(!CgroupEnforcement { memory_max_bytes: None, ..sample() }.all_limits_enforced());
        assert!(!CgroupEnforcement { cpu_quota_us: None, ..sample() }.all_limits_enforced());
        assert!(!CgroupEnforcement { pids_max: None, ..sample() }.all_limits_enforced());
        assert!(!CgroupEnforcement { swap: SwapEnforcement::Unlimited, ..sample() }.all_limits_enforced());
    }

    #[test]
    fn serialises_for_the_report() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["version"], "v1_hybrid");
        assert_eq!(json["swap"]["kind"], "limited");
        assert_eq!(json["swap"]["max_bytes"], 0);
        assert_eq!(json["kill"], "cgroup_kill");
        assert_eq!(json["hierarchies"][0]["kind"], "v1");
    }
}
