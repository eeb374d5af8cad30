//! Typed security policy. Every field has a default equal to the built-in default
//! policy (`schemas/default-security-policy.json`; a test keeps the two identical), so a
//! policy file only needs the fields it changes.

use crate::event_limits::RateField;
use crate::spec::Layer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityPolicy {
    pub schema_version: u32,
    pub network: NetworkPolicy,
    pub authentication: AuthenticationPolicy,
    pub sandbox: SandboxPolicy,
    pub data_protection: DataProtection,
    pub audit: AuditPolicy,
    pub compliance: Compliance,
    pub violations: ViolationsPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        Self {
            schema_version: 1,
            network: NetworkPolicy::default(),
            authentication: AuthenticationPolicy::default(),
            sandbox: SandboxPolicy::default(),
            data_protection: DataProtection::default(),
            audit: AuditPolicy::default(),
            compliance: Compliance::default(),
            violations: ViolationsPolicy::default(),
            metrics: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkPolicy {
    /// TCP listeners of the supervisor (metrics) bind loopback only.
    pub localhost_only: bool,
    /// Whether any manifest may ever get network access (refused in this release anyway).
    pub allow_network_grants: bool,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        Self { localhost_only: true, allow_network_grants: false }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthenticationPolicy {
    /// Permission bits of the control socket ("0600" or "0660").
    pub socket_mode: String,
    /// Group owning the socket when `socket_mode` is "0660".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_group: Option<u32>,
    pub allowed_uids: Vec<u32>,
    pub allowed_gids: Vec<u32>,
    pub read_only_uids: Vec<u32>,
    pub read_only_gids: Vec<u32>,
    /// Lowercase hex SHA-256 of accepted bearer tokens; empty = no token required.
    pub token_sha256: Vec<String>,
    pub session_timeout_minutes: u32,
    pub rate_limit: RateLimit,
    pub failed_auth: FailedAuthBackoff,
}

impl Default for AuthenticationPolicy {
    fn default() -> Self {
        Self {
            socket_mode: "0600".to_owned(),
            socket_group: None,
            allowed_uids: vec![0],
            allowed_gids: Vec::new(),
            read_only_uids: Vec::new(),
            read_only_gids: Vec::new(),
            token_sha256: Vec::new(),
            session_timeout_minutes: 60,
            rate_limit: RateLimit::default(),
            failed_auth: FailedAuthBackoff::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    pub requests_per_second: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { requests_per_second: 50, burst: 100 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailedAuthBackoff {
    pub max_failures: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for FailedAuthBackoff {
    fn default() -> Self {
        Self { max_failures: 5, backoff_initial_ms: 1000, backoff_max_ms: 60_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxPolicy {
    pub defaults: ResourceDefaults,
    pub ceilings: Ceilings,
    pub allowed_host_paths: Vec<AllowedHostPath>,
    pub required_layers: Vec<Layer>,
    pub degradable_layers: Vec<Layer>,
    pub seccomp_default_action: SeccompDefaultAction,
    pub identity: Identity,
    pub runtimes: Runtimes,
    pub stop_grace_seconds: u64,
    pub output_limit_kb: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        Self {
            defaults: ResourceDefaults::default(),
            ceilings: Ceilings::default(),
            allowed_host_paths: Vec::new(),
            required_layers: ALL_LAYERS.to_vec(),
            degradable_layers: Vec::new(),
            seccomp_default_action: SeccompDefaultAction::Errno,
            identity: Identity::default(),
            runtimes: Runtimes::default(),
            stop_grace_seconds: 5,
            output_limit_kb: 1024,
            cgroup_parent: None,
        }
    }
}

/// Every isolation layer, in the order they are listed in documents.
pub const ALL_LAYERS: [Layer; 6] =
    [Layer::Namespaces, Layer::Landlock, Layer::Seccomp, Layer::Capabilities, Layer::Cgroups, Layer::Rlimits];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceDefaults {
    pub memory_mb: u64,
    pub cpu_percent: u64,
    pub pids: u64,
    pub wall_clock_seconds: u64,
    pub tmp_mb: u64,
    /// Publish rate of a plugin whose manifest sets none (field by field).
    pub event_rate: EventRateDefaults,
}

impl Default for ResourceDefaults {
    fn default() -> Self {
        Self {
            memory_mb: 128,
            cpu_percent: 50,
            pids: 64,
            wall_clock_seconds: 300,
            tmp_mb: 64,
            event_rate: EventRateDefaults::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ceilings {
    pub max_memory_mb: u64,
    /// Percent of ONE cpu (100 = a full core).
    pub max_cpu_percent: u64,
    pub max_pids: u64,
    pub max_wall_clock_seconds: u64,
    pub max_tmp_mb: u64,
    /// Largest event frame; also the frame limit of a manifest that sets none.
    pub max_event_bytes: u32,
    pub max_event_rate: EventRateCeilings,
}

impl Default for Ceilings {
    fn default() -> Self {
        Self {
            max_memory_mb: 1024,
            max_cpu_percent: 100,
            max_pids: 512,
            max_wall_clock_seconds: 3600,
            max_tmp_mb: 256,
            max_event_bytes: 65_536,
            max_event_rate: EventRateCeilings::default(),
        }
    }
}

/// `sandbox.defaults.event_rate`: the publish rate of a manifest that sets none. The two
/// rate types differ only in the value an absent field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventRateDefaults {
    pub events_per_second: u32,
    pub burst: u32,
    pub bytes_per_second: u64,
}

impl Default for EventRateDefaults {
    fn default() -> Self {
        Self { events_per_second: 1000, burst: 2000, bytes_per_second: 1024 * 1024 }
    }
}

/// `sandbox.ceilings.max_event_rate`: the most publish rate any manifest may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventRateCeilings {
    pub events_per_second: u32,
    pub burst: u32,
    pub bytes_per_second: u64,
}

impl Default for EventRateCeilings {
    fn default() -> Self {
        Self { events_per_second: 10_000, burst: 20_000, bytes_per_second: 16 * 1024 * 1024 }
    }
}

impl EventRateDefaults {
    pub fn get(&self, field: RateField) -> u64 {
        rate_field(field, self.events_per_second, self.burst, self.bytes_per_second)
    }
}

impl EventRateCeilings {
    pub fn get(&self, field: RateField) -> u64 {
        rate_field(field, self.events_per_second, self.burst, self.bytes_per_second)
    }
}

fn rate_field(field: RateField, events_per_second: u32, burst: u32, bytes_per_second: u64) -> u64 {
    match field {
        RateField::EventsPerSecond => u64::from(events_per_second),
        RateField::Burst => u64::from(burst),
        RateField::BytesPerSecond => bytes_per_second,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedHostPath {
    pub path: String,
    pub access: HostPathAccess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostPathAccess {
    ReadOnly,
    ReadWrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeccompDefaultAction {
    /// Fail the call with EPERM.
    Errno,
    /// Kill the whole process.
    Kill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Identity {
    pub outside_uid: u32,
    pub outside_gid: u32,
}

impl Default for Identity {
    fn default() -> Self {
        Self { outside_uid: 200_000, outside_gid: 200_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Runtimes {
    pub native: NativeRuntime,
    pub interpreters: BTreeMap<String, InterpreterPolicy>,
}

/// The dynamic loader by its ELF interpreter path (the supervisor recreates the host's
/// symlinks along it) and the multiarch library directory.
const DEFAULT_NATIVE_PATHS: [&str; 2] = ["/lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu"];

impl Default for Runtimes {
    fn default() -> Self {
        let python3 = InterpreterPolicy {
            path: "/usr/bin/python3".to_owned(),
            args: vec!["-B".to_owned(), "-s".to_owned()],
            extensions: vec![".py".to_owned()],
            paths: DEFAULT_NATIVE_PATHS
                .iter()
                .chain(["/usr/bin/python3", "/usr/lib/python3.11"].iter())
                .map(|p| (*p).to_owned())
                .collect(),
        };
        Self { native: NativeRuntime::default(), interpreters: BTreeMap::from([("python3".to_owned(), python3)]) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeRuntime {
    pub paths: Vec<String>,
}

impl Default for NativeRuntime {
    fn default() -> Self {
        Self { paths: DEFAULT_NATIVE_PATHS.iter().map(|p| (*p).to_owned()).collect() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterpreterPolicy {
    /// Absolute host path of the interpreter (same path inside).
    pub path: String,
    pub args: Vec<String>,
    /// Extensions (with the dot) that select this interpreter by default.
    pub extensions: Vec<String>,
    /// Host paths bound read-only for this interpreter.
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataProtection {
    pub temp: TempProtection,
    pub state_dir: String,
    pub state_quota_mb: u64,
}

impl Default for DataProtection {
    fn default() -> Self {
        Self { temp: TempProtection::default(), state_dir: "/var/lib/wfsandbox/state".to_owned(), state_quota_mb: 16 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TempProtection {
    /// Always true: `/tmp` is a tmpfs that dies with the sandbox.
    pub wipe_on_exit: bool,
}

impl Default for TempProtection {
    fn default() -> Self {
        Self { wipe_on_exit: true }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditPolicy {
    pub enabled: bool,
    pub path: String,
    pub rotate_size_mb: u64,
    pub rotate_keep: u32,
}

impl Default for AuditPolicy {
    fn default() -> Self {
        Self { enabled: true, path: "/var/log/wfsandbox/audit.jsonl".to_owned(), rotate_size_mb: 100, rotate_keep: 5 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Compliance {
    pub min_audit_score: u8,
}

impl Default for Compliance {
    fn default() -> Self {
        Self { min_audit_score: 85 }
    }
}

/// `violations`: what the daemon does about a plugin's violations beyond the layer's own action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ViolationsPolicy {
    /// Checked in order; the first rule whose `kind` and `layer` match a violation decides.
    /// No matching rule: the layer's own action (`deny`, `ignore`, `kill`), i.e. log only.
    pub responses: Vec<ResponseRule>,
}

/// Every violation kind the daemon records (`"*"` in a rule matches any).
pub const VIOLATION_KINDS: [&str; 12] = [
    "topic_denied",
    "rate_limited",
    "publish_budget_exhausted",
    "oversized_event",
    "oversized_frame",
    "malformed_frame",
    "forged_sender",
    "wall_clock_limit",
    "oom_kill",
    "setup_failed",
    "refused",
    "syscall_denied",
];

/// Every layer a violation is recorded under.
pub const VIOLATION_LAYERS: [&str; 10] = [
    "broker",
    "resources",
    "setup",
    "namespaces",
    "landlock",
    "seccomp",
    "capabilities",
    "cgroups",
    "rlimits",
    "filesystem",
];

/// One rule of `violations.responses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseRule {
    /// A violation kind ([`VIOLATION_KINDS`]) or `"*"` for every kind.
    pub kind: String,
    /// Only violations of this layer ([`VIOLATION_LAYERS`]); absent = any layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    pub action: ResponseAction,
    /// Fire only once the plugin has had `count` matching violations within `seconds`;
    /// absent = on every matching violation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<ResponseThreshold>,
}

impl ResponseRule {
    pub fn matches(&self, kind: &str, layer: &str) -> bool {
        (self.kind == "*" || self.kind == kind) && self.layer.as_deref().is_none_or(|l| l == layer)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseAction {
    /// Record only (the layer's own action stays on the record); stops later rules matching.
    Log,
    /// Kill the plugin's instance (its whole cgroup); its restart policy then applies.
    Kill,
    /// Kill it and keep it `quarantined` (never restarted) until an admin releases it.
    Quarantine,
}

impl ResponseAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Kill => "kill",
            Self::Quarantine => "quarantine",
        }
    }
}

/// Bounds of a [`ResponseThreshold`].
pub const MAX_THRESHOLD_COUNT: u32 = 100_000;
pub const MAX_THRESHOLD_SECONDS: u32 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseThreshold {
    /// 1 to [`MAX_THRESHOLD_COUNT`].
    pub count: u32,
    /// 1 to [`MAX_THRESHOLD_SECONDS`].
    pub seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// `address:port` of the metrics listener.
    pub listen: String,
}

impl SecurityPolicy {
    /// The interpreter that claims `extension` (with the dot), if any.
    pub fn interpreter_for_extension(&self, extension: &str) -> Option<(&str, &InterpreterPolicy)> {
        self.sandbox
            .runtimes
            .interpreters
            .iter()
            .find(|(_, interp)| interp.extensions.iter().any(|e| e == extension))
            .map(|(name, interp)| (name.as_str(), interp))
    }
}

#[cfg(test)]
#[path = "security_policy_violations_tests.rs"]
mod violations_tests;
