//! The supervisor's cgroup manager: one cgroup per plugin instance with memory (no
//! swap), CPU quota and pids limits, on pure cgroup v2 hosts and on hybrid hosts whose
//! controllers sit on v1 hierarchies (DESIGN.md §4).
//!
//! ```text
//! let layout = CgroupLayout::detect()?;
//! let manager = CgroupManager::new(layout, "wfsandbox", Box::new(RealCgroupFs))?;
//! manager.cleanup_orphans()?;                       // at daemon start
//! let mut cgroup = manager.create("my_plugin-1", &Limits::from_spec(&spec.cgroup))?;
//! cgroup.add_process(child_pid)?;                   // while the child waits on its sync pipe
//! let report = cgroup.enforcement()?;               // what is really enforced
//! ...
//! cgroup.kill()?;  cgroup.remove()?;                // stop
//! ```
//!
//! Cgroups are created only beneath our own cgroup in each hierarchy (or beneath a
//! parent the policy names); the only process ever moved is our own (v2 delegation,
//! into a leaf we create) and the children the caller hands to `add_process`.

mod control;
mod enforcement;
mod error;
mod fs;
mod kill;
mod layout;
mod limits;
mod manager;
mod plugin;
mod procs;
mod stats;
mod v1;
mod v2;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod real_tests;
#[cfg(test)]
mod tests_v1;
#[cfg(test)]
mod tests_v2;

pub use enforcement::{CgroupEnforcement, CgroupVersion, HierarchyDir, HierarchyKind, KillMethod, SwapEnforcement};
pub use error::{CgroupError, Step};
pub use fs::{CgroupFs, RealCgroupFs};
pub use layout::{CgroupLayout, CgroupMount, LayoutError};
pub use limits::Limits;
pub use manager::{validate_name, CgroupManager};
pub use plugin::PluginCgroup;
pub use stats::{CgroupStats, CpuStats, MemoryStats, PidsStats};
