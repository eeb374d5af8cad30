//! The effective sandbox spec: what one plugin gets under one policy on one host.
//!
//! This is the single contract between the pure policy layer and the privileged
//! supervisor. Every value carries an [`Origin`] naming the manifest or policy
//! field that decided it, so `wfsandbox explain` and the run report can justify it.
//! Nothing here touches the host: paths are as written in manifest and policy and
//! are resolved (without following symlinks out of their tree) by the supervisor.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which document a value came from, and where in it (a JSON pointer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub source: OriginSource,
    /// JSON pointer into the source document, e.g. `/permissions/resources/memory/max_mb`.
    pub pointer: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginSource {
    Manifest,
    Policy,
    /// Fixed by the supervisor's design; not configurable (e.g. "all capabilities dropped").
    Builtin,
}

impl Origin {
    pub fn manifest(pointer: &str) -> Self {
        Self { source: OriginSource::Manifest, pointer: pointer.to_owned() }
    }
    pub fn policy(pointer: &str) -> Self {
        Self { source: OriginSource::Policy, pointer: pointer.to_owned() }
    }
    pub fn builtin(what: &str) -> Self {
        Self { source: OriginSource::Builtin, pointer: what.to_owned() }
    }
}

/// A value together with the field that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Sourced<T> {
    pub fn new(value: T, origin: Origin) -> Self {
        Self { value, origin }
    }
}

/// Kernel isolation layers. A layer the host lacks is a refusal unless the policy
/// lists it under `sandbox.degradable_layers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Namespaces,
    Landlock,
    Seccomp,
    Capabilities,
    Cgroups,
    Rlimits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    User,
    Pid,
    Mount,
    Net,
    Ipc,
    Uts,
    Cgroup,
}

/// Host paths of the plugin and how its entry point is started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntrySpec {
    /// Absolute host path of the plugin directory (the manifest's directory).
    pub plugin_dir: PathBuf,
    /// Entry point relative to the plugin directory (already checked: no `..`, not absolute).
    pub entry_point: Sourced<String>,
    /// How the entry point is executed.
    pub runtime: Sourced<Runtime>,
    /// Where the plugin directory appears inside the sandbox.
    pub plugin_dir_inside: String,
    /// Working directory inside the sandbox.
    pub cwd_inside: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Runtime {
    /// The entry point is an executable (ELF) run directly.
    Native,
    /// The entry point is a script run by a host interpreter the policy names.
    Interpreter {
        /// Name used in the manifest / policy (e.g. `python3`).
        name: String,
        /// Absolute host path of the interpreter binary (also its path inside).
        path: PathBuf,
        /// Extra arguments placed between the interpreter and the script (e.g. `-B`, `-I`).
        args: Vec<String>,
    },
}

/// One entry of the sandbox's filesystem, in the order it is built.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MountSpec {
    /// Read-only bind of a host path at the same path inside (runtime: libraries, interpreter).
    /// Symlinks along the host path are recreated inside, not followed out of it.
    RuntimeBind { host: PathBuf, origin: Origin },
    /// The plugin directory, read-only, at `EntrySpec::plugin_dir_inside`.
    PluginDir { host: PathBuf, inside: String, origin: Origin },
    /// A host path granted by the manifest and permitted by the policy.
    HostBind { host: PathBuf, inside: String, writable: bool, optional: bool, origin: Origin },
    /// A private, size-limited tmpfs (e.g. `/tmp`), wiped when the sandbox ends.
    Tmpfs { inside: String, size_bytes: u64, origin: Origin },
    /// A fresh procfs for the new pid namespace.
    Proc { inside: String, origin: Origin },
    /// A minimal `/dev` (null, zero, full, random, urandom, and the `/dev/fd` links).
    Dev { inside: String, origin: Origin },
}

/// Filesystem access a Landlock rule grants beneath a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsAccess {
    /// Read files and list directories.
    Read,
    /// Read and execute (runtime, native entry points).
    ReadExec,
    /// Read, write, create and remove (tmpfs, writable grants). Never execute.
    ReadWrite,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LandlockRule {
    /// Path as seen inside the sandbox.
    pub inside: String,
    pub access: FsAccess,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LandlockSpec {
    pub rules: Vec<LandlockRule>,
    /// Also restrict abstract Unix sockets and signals to the sandbox (Landlock ABI >= 6).
    pub scope_ipc_and_signals: bool,
}

/// What an argument filter on an allowed syscall checks. Interpreted by the
/// seccomp compiler in `sandbox-child`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ArgFilter {
    /// Allowed only if the (32-bit) argument `index` is one of `values`.
    OneOf { index: u8, values: Vec<u32>, names: Vec<String> },
    /// Allowed only if the (32-bit) argument `index` is none of `values`.
    NoneOf { index: u8, values: Vec<u32>, names: Vec<String> },
    /// Allowed only if `(arg & mask) == 0` (64-bit compare).
    MaskClear { index: u8, mask: u64, names: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyscallRule {
    pub name: String,
    /// All filters must pass; empty means allowed unconditionally.
    pub filters: Vec<ArgFilter>,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SeccompAction {
    /// Fail the call with this errno.
    Errno { errno: i32 },
    /// Kill the whole process (never just the thread).
    KillProcess,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeccompSpec {
    /// Action for any syscall not on the allowlist (and for x32 numbers).
    pub default_action: Sourced<SeccompAction>,
    pub allowed: Vec<SyscallRule>,
    /// Syscalls answered with ENOSYS so libc falls back (e.g. `clone3` → `clone`).
    pub enosys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupLimits {
    pub memory_max_bytes: Sourced<u64>,
    /// Always 0: no swap, so the memory limit is a real limit.
    pub swap_max_bytes: Sourced<u64>,
    pub cpu_quota_us: Sourced<u64>,
    pub cpu_period_us: Sourced<u64>,
    pub pids_max: Sourced<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RlimitResource {
    Nofile,
    Fsize,
    Core,
    Memlock,
    Msgqueue,
    Nproc,
    Stack,
    Cpu,
    As,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RlimitSpec {
    pub resource: RlimitResource,
    pub soft: u64,
    pub hard: u64,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventGrants {
    /// Topics the plugin may receive (exact names; wildcard patterns only if granted literally).
    pub read: Sourced<Vec<String>>,
    /// Topics the plugin may publish.
    pub write: Sourced<Vec<String>>,
    /// May publish `ui.*` rendering topics.
    pub ui_render: Sourced<bool>,
    /// Largest frame accepted from or sent to the plugin, in bytes.
    pub max_event_bytes: Sourced<u32>,
    /// How fast the plugin may publish.
    pub rate: EventRate,
}

/// The broker's bounds on one plugin's publishes: a token bucket of events
/// (`events_per_second`, `burst`) and the bytes a second it reads from the plugin's channel
/// (with a burst of `4 × max(max_event_bytes, 1 MiB)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRate {
    pub events_per_second: Sourced<u32>,
    pub burst: Sourced<u32>,
    pub bytes_per_second: Sourced<u64>,
}

impl EventRate {
    /// What the built-in default policy gives a manifest that sets no rate, with its policy
    /// origins: for tests and tools that build an [`EventGrants`] by hand. A real plugin's
    /// rate comes from `derive_spec`.
    pub fn for_tests() -> Self {
        let d = crate::security_policy::EventRateDefaults::default();
        let origin = |field: &str| Origin::policy(&format!("/sandbox/defaults/event_rate/{field}"));
        Self {
            events_per_second: Sourced::new(d.events_per_second, origin("events_per_second")),
            burst: Sourced::new(d.burst, origin("burst")),
            bytes_per_second: Sourced::new(d.bytes_per_second, origin("bytes_per_second")),
        }
    }
}

/// Outside identity of the sandbox's root user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentitySpec {
    /// Unprivileged host uid that uid 0 inside maps to.
    pub outside_uid: Sourced<u32>,
    pub outside_gid: Sourced<u32>,
    pub hostname: Sourced<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerRequirements {
    /// Layers that must be fully enforced or the plugin is refused.
    pub required: Sourced<Vec<Layer>>,
    /// Layers the policy explicitly lets degrade on hosts that lack them.
    pub degradable: Sourced<Vec<Layer>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SandboxSpec {
    pub name: String,
    pub version: String,
    pub entry: EntrySpec,
    pub namespaces: Vec<Sourced<Namespace>>,
    pub identity: IdentitySpec,
    pub mounts: Vec<MountSpec>,
    pub landlock: LandlockSpec,
    pub seccomp: SeccompSpec,
    pub cgroup: CgroupLimits,
    pub rlimits: Vec<RlimitSpec>,
    /// Wall-clock limit in milliseconds; the plugin's cgroup is killed when it expires.
    pub wall_clock_ms: Sourced<u64>,
    pub events: EventGrants,
    pub layers: LayerRequirements,
    /// Environment of the entry point (the host environment is never inherited).
    pub env: Vec<(String, String)>,
    /// Bytes of plugin stdout+stderr forwarded before the rest is dropped (and counted).
    pub output_limit_bytes: Sourced<u64>,
    /// Grace period between SIGTERM and killing the cgroup on stop.
    pub stop_grace_ms: Sourced<u64>,
}
