//! The typed result of every verb and the items of the streams.
//!
//! Times are milliseconds since the Unix epoch (`time_ms`, `since_ms`, `next_restart_ms`).
//! Optional values are always sent, as `null` when unknown, so keys are stable; a decoder
//! treats a missing optional value as `null`.

use super::errors::Problem;
use super::verbs::Verb;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Lifecycle state of a loaded plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginState {
    /// Loaded and valid; never started (or reloaded since).
    Validated,
    /// Being set up; not yet running plugin code.
    Starting,
    Running,
    /// SIGTERM sent; waiting out the grace period before killing the cgroup.
    Stopping,
    /// Stopped by a `stop`, a `shutdown` or the daemon.
    Stopped,
    /// Exited by itself with status 0 and will not be restarted.
    Exited,
    /// Ended abnormally; `next_restart_ms` in its status says whether a restart is pending.
    Crashed,
    /// Stopped by a violation response; not restarted, and `start` is refused (`conflict`)
    /// until `release`.
    Quarantined,
}

impl PluginState {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Validated => "validated",
            PluginState::Starting => "starting",
            PluginState::Running => "running",
            PluginState::Stopping => "stopping",
            PluginState::Stopped => "stopped",
            PluginState::Exited => "exited",
            PluginState::Crashed => "crashed",
            PluginState::Quarantined => "quarantined",
        }
    }
}

impl fmt::Display for PluginState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One plugin in `list`, and the answer to `start`, `stop`, `restart` and `release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSummary {
    pub name: String,
    pub version: String,
    pub state: PluginState,
    /// Host pid of the sandbox's init process while one exists.
    pub pid: Option<u32>,
    /// Id of the current or last run.
    pub instance: Option<String>,
    /// Automatic restarts since the last `start`.
    pub restarts: u32,
    /// When the plugin entered `state`.
    pub since_ms: u64,
}

/// How the last run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitCause {
    /// The plugin exited by itself (`code` is set).
    Exited,
    /// A signal ended it (`signal` is set).
    Signaled,
    OomKill,
    WallClockLimit,
    /// Set-up failed or was refused before plugin code ran.
    SetupFailed,
    /// A `stop`, `restart` or `shutdown` ended it.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitSummary {
    pub cause: ExitCause,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub time_ms: u64,
}

/// `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginStatus {
    pub plugin: PluginSummary,
    /// The manifest file, or `null` for an inline manifest.
    pub manifest_path: Option<String>,
    pub plugin_dir: String,
    pub last_exit: Option<ExitSummary>,
    /// When an automatic restart is due, if one is pending.
    pub next_restart_ms: Option<u64>,
    /// What the current or last run enforced, layer by layer (the run report's
    /// `enforcement` object); `null` before the first start.
    #[serde(default, deserialize_with = "super::strict::option")]
    pub enforcement: Option<Value>,
    /// The running instance's traffic through the broker; `null` when no instance is connected.
    #[serde(default)]
    pub events: Option<EventCounters>,
}

/// One running instance's counters in the broker, since it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventCounters {
    /// Publishes the broker routed.
    pub published: u64,
    /// Publishes and subscriptions it refused (each is also a violation).
    pub refused: u64,
    /// Events queued to the plugin.
    pub delivered: u64,
    /// Events due to the plugin that did not fit its inbox: it was not reading fast enough.
    pub dropped_full: u64,
    /// Events due to the plugin over its own `max_event_bytes`.
    pub dropped_too_large: u64,
    /// The plugin's subscription set, sorted.
    pub subscriptions: Vec<String>,
}

/// `load`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadResult {
    pub plugin: PluginSummary,
    pub warnings: Vec<Problem>,
}

/// `validate` (an invalid manifest is the error `invalid_manifest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateResult {
    pub name: String,
    pub version: String,
    pub warnings: Vec<Problem>,
}

/// `list`, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListResult {
    pub plugins: Vec<PluginSummary>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// A piece of captured output. Output that is not valid UTF-8 has each invalid sequence
/// replaced by U+FFFD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogChunk {
    pub stream: LogStream,
    /// When the daemon captured it.
    pub time_ms: u64,
    pub text: String,
}

/// `logs`: the newest output, oldest chunk first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsResult {
    pub chunks: Vec<LogChunk>,
    /// Bytes the daemon discarded for this plugin (buffer size or rate cap) since it was loaded.
    pub dropped_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryStats {
    pub current: u64,
    pub peak: Option<u64>,
    /// `null` = unlimited.
    pub limit: Option<u64>,
    pub oom_kills: u64,
    pub limit_hits: u64,
    pub swap_max: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuStats {
    pub usage_usec: u64,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_usec: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PidsStats {
    pub current: u64,
    /// `null` = unlimited.
    pub max: Option<u64>,
    pub max_events: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessStats {
    pub pid: u32,
    pub rss_bytes: u64,
    pub threads: u32,
    pub fds: u32,
}

/// One plugin's usage; the cgroup parts are `null` while it has no cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginStats {
    pub name: String,
    pub state: PluginState,
    pub memory: Option<MemoryStats>,
    pub cpu: Option<CpuStats>,
    pub pids: Option<PidsStats>,
    pub processes: Vec<ProcessStats>,
}

/// `stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsResult {
    pub plugins: Vec<PluginStats>,
}

/// `publish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishResult {
    /// Plugins (and subscribed sessions) the event was delivered to.
    pub delivered: u32,
}

/// `subscribe_events`: the topics subscribed to (`null` = every topic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeResult {
    pub topics: Option<Vec<String>>,
}

/// One violation record (docs/DESIGN §6 shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Violation {
    pub time_ms: u64,
    pub plugin: String,
    pub instance: String,
    pub layer: String,
    pub kind: String,
    #[serde(deserialize_with = "crate::strict_value::deserialize")]
    pub detail: Value,
    pub rule: String,
    pub action: String,
}

/// `list_violations`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViolationsResult {
    pub violations: Vec<Violation>,
    /// More records matched than were returned (the limit or the response cap).
    pub truncated: bool,
}

/// `reload_policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadPolicyResult {
    pub path: String,
    pub warnings: Vec<Problem>,
}

/// `shutdown`: the daemon answers, then stops every plugin and exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownResult {
    /// Plugins it is stopping.
    pub stopping: u32,
}

/// `cancel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelResult {
    /// False when no open stream of this session had that id.
    pub cancelled: bool,
}

/// An event delivered to a `subscribe_events` stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventItem {
    pub topic: String,
    /// `null` when `payload_dropped`.
    #[serde(deserialize_with = "crate::strict_value::deserialize")]
    pub payload: Value,
    /// Set by the daemon from the publisher's identity.
    pub sender: String,
    pub time_ms: u64,
    /// The payload could not be forwarded within the control protocol's limits (over the
    /// response cap or nested too deep); the event itself still happened.
    pub payload_dropped: bool,
}

/// The `item` of a `stream` message, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StreamItem {
    Event(EventItem),
    Log(LogChunk),
    /// A violation recorded while `list_violations` follows:
    /// `{"kind": "violation", "violation": {...}}`. The record is nested, not flattened: it
    /// has a `kind` of its own.
    Violation {
        violation: Violation,
    },
}

/// A verb's typed result. Serialises as the `result` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Load(LoadResult),
    Validate(ValidateResult),
    Start(PluginSummary),
    Stop(PluginSummary),
    Restart(PluginSummary),
    Release(PluginSummary),
    List(ListResult),
    Status(PluginStatus),
    Logs(LogsResult),
    Stats(StatsResult),
    Publish(PublishResult),
    SubscribeEvents(SubscribeResult),
    ListViolations(ViolationsResult),
    ReloadPolicy(ReloadPolicyResult),
    Shutdown(ShutdownResult),
    Cancel(CancelResult),
}

impl Reply {
    pub fn verb(&self) -> Verb {
        match self {
            Reply::Load(_) => Verb::Load,
            Reply::Validate(_) => Verb::Validate,
            Reply::Start(_) => Verb::Start,
            Reply::Stop(_) => Verb::Stop,
            Reply::Restart(_) => Verb::Restart,
            Reply::Release(_) => Verb::Release,
            Reply::List(_) => Verb::List,
            Reply::Status(_) => Verb::Status,
            Reply::Logs(_) => Verb::Logs,
            Reply::Stats(_) => Verb::Stats,
            Reply::Publish(_) => Verb::Publish,
            Reply::SubscribeEvents(_) => Verb::SubscribeEvents,
            Reply::ListViolations(_) => Verb::ListViolations,
            Reply::ReloadPolicy(_) => Verb::ReloadPolicy,
            Reply::Shutdown(_) => Verb::Shutdown,
            Reply::Cancel(_) => Verb::Cancel,
        }
    }

    /// Reads the `result` of a successful response to a request with `verb`.
    pub fn parse(verb: Verb, result: Value) -> Result<Reply, serde_json::Error> {
        Ok(match verb {
            Verb::Load => Reply::Load(from(result)?),
            Verb::Validate => Reply::Validate(from(result)?),
            Verb::Start => Reply::Start(from(result)?),
            Verb::Stop => Reply::Stop(from(result)?),
            Verb::Restart => Reply::Restart(from(result)?),
            Verb::Release => Reply::Release(from(result)?),
            Verb::List => Reply::List(from(result)?),
            Verb::Status => Reply::Status(from(result)?),
            Verb::Logs => Reply::Logs(from(result)?),
            Verb::Stats => Reply::Stats(from(result)?),
            Verb::Publish => Reply::Publish(from(result)?),
            Verb::SubscribeEvents => Reply::SubscribeEvents(from(result)?),
            Verb::ListViolations => Reply::ListViolations(from(result)?),
            Verb::ReloadPolicy => Reply::ReloadPolicy(from(result)?),
            Verb::Shutdown => Reply::Shutdown(from(result)?),
            Verb::Cancel => Reply::Cancel(from(result)?),
        })
    }
}

fn from<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(value)
}
