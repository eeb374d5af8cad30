//! Everything built in the parent before a sandbox is cloned: the host's layer
//! decisions, the root plan, the Landlock ruleset, the seccomp program and the cgroup.
//!
//! Shared by the one-shot `run` and the daemon's launcher. What it learns about
//! degraded layers and non-fatal findings is written into the caller's [`Enforcement`]
//! and warnings as it goes, so a refusal half-way still reports what was decided.

use crate::enforcement::{self, Decision};
use crate::host_probe;
use crate::report::{Enforcement, LayerStatus};
use crate::rootfs::RootPlan;
use crate::sandbox_cgroup::{self, SandboxCgroup};
use wf_policy::spec::{Layer, Runtime, SandboxSpec};
use wf_sandbox_child::plan::LandlockPlan;

/// `Stop::cause` of a plugin the policy or the host does not allow.
pub const CAUSE_REFUSED: &str = "refused";
/// `Stop::cause` of a set-up step that failed.
pub const CAUSE_SETUP_FAILED: &str = "setup_failed";

/// A failure before the plugin ran: refused by policy/host, or set-up failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{cause} at step {step}: {message}")]
pub struct Stop {
    /// [`CAUSE_REFUSED`] or [`CAUSE_SETUP_FAILED`].
    pub cause: &'static str,
    pub step: String,
    pub errno: Option<i32>,
    pub message: String,
}

impl Stop {
    pub fn refused(step: &str, message: impl ToString) -> Self {
        Self { cause: CAUSE_REFUSED, step: step.to_owned(), errno: None, message: message.to_string() }
    }
    pub fn setup(step: &str, errno: Option<i32>, message: impl ToString) -> Self {
        Self { cause: CAUSE_SETUP_FAILED, step: step.to_owned(), errno, message: message.to_string() }
    }
}

/// Layers built in the parent, each with what it enforces; recorded as enforced only
/// once the plugin runs under them (see `spawn::spawn_prepared`).
pub struct PreparedLayers {
    pub root: RootPlan,
    pub landlock: Option<(LandlockPlan, serde_json::Value)>,
    pub seccomp: Option<(Vec<libc::sock_filter>, serde_json::Value)>,
    pub cgroup_status: LayerStatus,
}

/// Where the plugin's cgroup goes and what is recorded along the way.
pub struct PrepareTarget<'a> {
    /// The instance name, used as the cgroup's name.
    pub instance: &'a str,
    /// The policy's `sandbox.cgroup_parent`, if any.
    pub cgroup_parent: Option<&'a str>,
    /// Degraded layers are recorded here as they are decided.
    pub enforced: &'a mut Enforcement,
    /// Non-fatal findings (a missing optional path) are appended here.
    pub warnings: &'a mut Vec<String>,
}

/// Decide, build and create everything the clone needs. The cgroup (if any) is returned
/// separately: the caller owns it for the sandbox's whole life and must destroy it.
pub fn prepare(spec: &SandboxSpec, target: PrepareTarget<'_>) -> Result<(PreparedLayers, Option<SandboxCgroup>), Stop> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Stop::refused("privileges", "the supervisor must run as root"));
    }
    let host = host_probe::probe();
    let decisions = enforcement::decide_all(&host, &spec.layers).map_err(|r| Stop::refused("host_layers", r))?;
    crate::entry_point::check(&spec.entry).map_err(|e| Stop::refused("entry_point", e))?;

    let python =
        matches!(spec.entry.runtime.value, Runtime::Interpreter { ref name, .. } if name.starts_with("python"));
    let native = matches!(spec.entry.runtime.value, Runtime::Native);
    let root = RootPlan::build(&spec.mounts, python, native).map_err(|e| Stop::setup("rootfs_plan", None, e))?;
    target.warnings.extend(root.warnings.iter().cloned());

    let landlock = if is_applied(&decisions, Layer::Landlock) {
        let prepared = crate::landlock_setup::prepare(spec, &root, python, &host)
            .map_err(|e| Stop::setup("landlock_ruleset", None, e))?;
        Some(prepared)
    } else {
        target.enforced.landlock = degraded_status(&decisions, Layer::Landlock);
        None
    };
    let seccomp = if is_applied(&decisions, Layer::Seccomp) {
        Some(crate::seccomp_setup::prepare(spec).map_err(|e| Stop::setup("seccomp_compile", None, e))?)
    } else {
        target.enforced.seccomp = degraded_status(&decisions, Layer::Seccomp);
        None
    };

    let (cgroup, cgroup_status) =
        sandbox_cgroup::create(spec, target.instance, target.cgroup_parent).map_err(|e| Stop::refused("cgroups", e))?;
    if cgroup.is_none() {
        target.enforced.cgroups = cgroup_status.clone();
    }
    Ok((PreparedLayers { root, landlock, seccomp, cgroup_status }, cgroup))
}

fn is_applied(decisions: &[(Layer, Decision)], layer: Layer) -> bool {
    decisions.iter().any(|(l, d)| *l == layer && *d == Decision::Apply)
}

fn degraded_status(decisions: &[(Layer, Decision)], layer: Layer) -> LayerStatus {
    match decisions.iter().find(|(l, _)| *l == layer) {
        Some((_, Decision::Degrade { reason })) => LayerStatus::degraded(reason),
        _ => LayerStatus::default(),
    }
}
