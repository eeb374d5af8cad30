//! Every verb of the control protocol: its name, the rights it needs and its typed arguments.
//!
//! A request's `args` object is parsed into the verb's argument type (unknown fields are
//! refused) and then range-checked, so a [`Call`] that exists is one the daemon can act on
//! without further shape checks.

use super::errors::ControlError;
use super::{
    MAX_EVENT_BACKLOG, MAX_GRACE_MS, MAX_LOG_TAIL_BYTES, MAX_NAME_CHARS, MAX_PATH_BYTES, MAX_SUBSCRIBE_TOPICS,
    MAX_VIOLATIONS_LIMIT,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// What a session may do. `Control` includes everything `Read` may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rights {
    Read,
    Control,
}

impl Rights {
    /// Whether a session holding `self` may use a verb that needs `needed`.
    pub fn covers(self, needed: Rights) -> bool {
        self >= needed
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rights::Read => "read",
            Rights::Control => "control",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    Load,
    Validate,
    Start,
    Stop,
    Restart,
    /// Lift a quarantine: the plugin becomes `stopped` and may be started again.
    Release,
    List,
    Status,
    Logs,
    Stats,
    Publish,
    SubscribeEvents,
    ListViolations,
    ReloadPolicy,
    Shutdown,
    Cancel,
}

impl Verb {
    pub const ALL: [Verb; 16] = [
        Verb::Load,
        Verb::Validate,
        Verb::Start,
        Verb::Stop,
        Verb::Restart,
        Verb::List,
        Verb::Status,
        Verb::Logs,
        Verb::Stats,
        Verb::Publish,
        Verb::SubscribeEvents,
        Verb::ListViolations,
        Verb::ReloadPolicy,
        Verb::Shutdown,
        Verb::Cancel,
        Verb::Release,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Load => "load",
            Verb::Validate => "validate",
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
            Verb::Release => "release",
            Verb::List => "list",
            Verb::Status => "status",
            Verb::Logs => "logs",
            Verb::Stats => "stats",
            Verb::Publish => "publish",
            Verb::SubscribeEvents => "subscribe_events",
            Verb::ListViolations => "list_violations",
            Verb::ReloadPolicy => "reload_policy",
            Verb::Shutdown => "shutdown",
            Verb::Cancel => "cancel",
        }
    }

    pub fn from_name(name: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|verb| verb.as_str() == name)
    }

    /// The rights a session needs for this verb: reading state (and cancelling one's own
    /// streams) needs `read`; anything that changes plugins, events or the daemon needs
    /// `control`.
    pub fn required_rights(self) -> Rights {
        match self {
            Verb::List
            | Verb::Status
            | Verb::Logs
            | Verb::Stats
            | Verb::ListViolations
            | Verb::SubscribeEvents
            | Verb::Validate
            | Verb::Cancel => Rights::Read,
            Verb::Load
            | Verb::Start
            | Verb::Stop
            | Verb::Restart
            | Verb::Release
            | Verb::Publish
            | Verb::ReloadPolicy
            | Verb::Shutdown => Rights::Control,
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a manifest comes from. Paths are absolute paths on the daemon's host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ManifestSource {
    /// `{"path": "/opt/plugins/energy/manifest.json"}`: the plugin directory is the
    /// manifest's directory.
    Path(String),
    /// `{"inline": {"document": {...}, "plugin_dir": "/opt/plugins/energy"}}`.
    Inline {
        #[serde(deserialize_with = "crate::strict_value::deserialize")]
        document: Value,
        plugin_dir: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadArgs {
    pub manifest: ManifestSource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateArgs {
    pub manifest: ManifestSource,
}

/// Exactly one of `{"manifest": <source>}` (load, then start) or `{"name": "..."}` (start a
/// loaded plugin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StartArgs {
    Manifest(ManifestSource),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopArgs {
    pub name: String,
    /// Time between SIGTERM and killing the cgroup; absent = the policy's
    /// `stop_grace_seconds`.
    #[serde(default)]
    pub grace_ms: Option<u64>,
}

/// Arguments of `restart`, `release` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameArgs {
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsArgs {
    pub name: String,
    /// Keep the request open and stream new output.
    #[serde(default)]
    pub follow: bool,
    /// At most this many bytes of the newest output; absent = [`super::DEFAULT_LOG_TAIL_BYTES`].
    #[serde(default)]
    pub tail_bytes: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsArgs {
    /// One plugin; absent = every plugin.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishArgs {
    pub topic: String,
    #[serde(deserialize_with = "crate::strict_value::deserialize")]
    pub payload: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeEventsArgs {
    /// Exact topic names; absent = every topic.
    #[serde(default)]
    pub topics: Option<Vec<String>>,
    /// Replay up to this many recent matching events first.
    #[serde(default)]
    pub backlog: u32,
    /// After the backlog, keep streaming new events (default) or end the stream.
    #[serde(default = "follow_by_default")]
    pub follow: bool,
}

impl Default for SubscribeEventsArgs {
    fn default() -> Self {
        Self { topics: None, backlog: 0, follow: true }
    }
}

fn follow_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViolationsArgs {
    #[serde(default)]
    pub name: Option<String>,
    /// At most this many records, newest first; absent = [`super::DEFAULT_VIOLATIONS_LIMIT`].
    #[serde(default)]
    pub limit: Option<u32>,
    /// Keep the request open and stream every violation recorded afterwards (of `name`, when
    /// given) as `violation` items.
    #[serde(default)]
    pub follow: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadPolicyArgs {
    /// A new policy file; absent = re-read the one the daemon runs with.
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownArgs {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelArgs {
    /// The id of this session's open stream to end.
    pub id: u64,
}

/// A verb with its parsed and range-checked arguments. Serialises as the `args` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Call {
    Load(LoadArgs),
    Validate(ValidateArgs),
    Start(StartArgs),
    Stop(StopArgs),
    Restart(NameArgs),
    Release(NameArgs),
    List(ListArgs),
    Status(NameArgs),
    Logs(LogsArgs),
    Stats(StatsArgs),
    Publish(PublishArgs),
    SubscribeEvents(SubscribeEventsArgs),
    ListViolations(ViolationsArgs),
    ReloadPolicy(ReloadPolicyArgs),
    Shutdown(ShutdownArgs),
    Cancel(CancelArgs),
}

impl Call {
    pub fn verb(&self) -> Verb {
        match self {
            Call::Load(_) => Verb::Load,
            Call::Validate(_) => Verb::Validate,
            Call::Start(_) => Verb::Start,
            Call::Stop(_) => Verb::Stop,
            Call::Restart(_) => Verb::Restart,
            Call::Release(_) => Verb::Release,
            Call::List(_) => Verb::List,
            Call::Status(_) => Verb::Status,
            Call::Logs(_) => Verb::Logs,
            Call::Stats(_) => Verb::Stats,
            Call::Publish(_) => Verb::Publish,
            Call::SubscribeEvents(_) => Verb::SubscribeEvents,
            Call::ListViolations(_) => Verb::ListViolations,
            Call::ReloadPolicy(_) => Verb::ReloadPolicy,
            Call::Shutdown(_) => Verb::Shutdown,
            Call::Cancel(_) => Verb::Cancel,
        }
    }

    /// Whether a successful response to this call is followed by `stream` items and a
    /// `stream_end`.
    pub fn opens_stream(&self) -> bool {
        matches!(
            self,
            Call::Logs(LogsArgs { follow: true, .. })
                | Call::ListViolations(ViolationsArgs { follow: true, .. })
                | Call::SubscribeEvents(_)
        )
    }

    /// Parses `args` (absent = `{}`) for the verb named `verb` and range-checks them.
    pub fn parse(verb: &str, args: Option<Value>) -> Result<Call, ControlError> {
        let verb = Verb::from_name(verb).ok_or_else(|| ControlError::unknown_verb(verb))?;
        let args = match args {
            None => Value::Object(Map::new()),
            Some(args @ Value::Object(_)) => args,
            Some(_) => return Err(ControlError::bad_request("args must be a JSON object")),
        };
        let call = match verb {
            Verb::Load => Call::Load(args_of(verb, args)?),
            Verb::Validate => Call::Validate(args_of(verb, args)?),
            Verb::Start => Call::Start(args_of(verb, args)?),
            Verb::Stop => Call::Stop(args_of(verb, args)?),
            Verb::Restart => Call::Restart(args_of(verb, args)?),
            Verb::Release => Call::Release(args_of(verb, args)?),
            Verb::List => Call::List(args_of(verb, args)?),
            Verb::Status => Call::Status(args_of(verb, args)?),
            Verb::Logs => Call::Logs(args_of(verb, args)?),
            Verb::Stats => Call::Stats(args_of(verb, args)?),
            Verb::Publish => Call::Publish(args_of(verb, args)?),
            Verb::SubscribeEvents => Call::SubscribeEvents(args_of(verb, args)?),
            Verb::ListViolations => Call::ListViolations(args_of(verb, args)?),
            Verb::ReloadPolicy => Call::ReloadPolicy(args_of(verb, args)?),
            Verb::Shutdown => Call::Shutdown(args_of(verb, args)?),
            Verb::Cancel => Call::Cancel(args_of(verb, args)?),
        };
        call.check()?;
        Ok(call)
    }

    /// The range checks [`Call::parse`] applies; clients run them before sending.
    pub fn check(&self) -> Result<(), ControlError> {
        match self {
            Call::Load(LoadArgs { manifest }) | Call::Validate(ValidateArgs { manifest }) => check_source(manifest),
            Call::Start(StartArgs::Manifest(manifest)) => check_source(manifest),
            Call::Start(StartArgs::Name(name)) => check_name("name", name),
            Call::Stop(StopArgs { name, grace_ms }) => {
                check_name("name", name)?;
                check_at_most("grace_ms", grace_ms.unwrap_or(0), MAX_GRACE_MS)
            }
            Call::Restart(NameArgs { name }) | Call::Release(NameArgs { name }) | Call::Status(NameArgs { name }) => {
                check_name("name", name)
            }
            Call::Logs(LogsArgs { name, tail_bytes, .. }) => {
                check_name("name", name)?;
                check_at_most("tail_bytes", u64::from(tail_bytes.unwrap_or(0)), u64::from(MAX_LOG_TAIL_BYTES))
            }
            Call::Stats(StatsArgs { name }) => name.as_deref().map_or(Ok(()), |name| check_name("name", name)),
            Call::Publish(PublishArgs { topic, .. }) => check_name("topic", topic),
            Call::SubscribeEvents(args) => check_subscription(args),
            Call::ListViolations(ViolationsArgs { name, limit, .. }) => {
                if let Some(name) = name {
                    check_name("name", name)?;
                }
                match limit {
                    Some(0) => Err(ControlError::bad_request("args.limit: must be at least 1")),
                    Some(limit) => check_at_most("limit", u64::from(*limit), u64::from(MAX_VIOLATIONS_LIMIT)),
                    None => Ok(()),
                }
            }
            Call::ReloadPolicy(ReloadPolicyArgs { path }) => {
                path.as_deref().map_or(Ok(()), |path| check_path("path", path))
            }
            Call::List(_) | Call::Shutdown(_) | Call::Cancel(_) => Ok(()),
        }
    }
}

fn args_of<T: DeserializeOwned>(verb: Verb, args: Value) -> Result<T, ControlError> {
    serde_json::from_value(args).map_err(|err| ControlError::bad_request(format!("args of {verb}: {err}")))
}

fn check_source(source: &ManifestSource) -> Result<(), ControlError> {
    match source {
        ManifestSource::Path(path) => check_path("manifest.path", path),
        ManifestSource::Inline { document, plugin_dir } => {
            if !document.is_object() {
                return Err(ControlError::bad_request("args.manifest.inline.document: must be a JSON object"));
            }
            check_path("manifest.inline.plugin_dir", plugin_dir)
        }
    }
}

/// Paths name files on the daemon's host, whose working directory means nothing to the
/// client: they must be absolute.
fn check_path(field: &str, path: &str) -> Result<(), ControlError> {
    let problem = if !path.starts_with('/') {
        "must be an absolute path"
    } else if path.contains('\0') {
        "must not contain NUL"
    } else if path.len() > MAX_PATH_BYTES {
        "is longer than 4096 bytes"
    } else {
        return Ok(());
    };
    Err(ControlError::bad_request(format!("args.{field}: {problem}")))
}

/// Plugin names and topics: non-empty, bounded, no control characters. Whether a name
/// exists is the daemon's answer (`no_such_plugin`), not a shape error.
fn check_name(field: &str, name: &str) -> Result<(), ControlError> {
    let problem = if name.is_empty() {
        "must not be empty"
    } else if name.chars().count() > MAX_NAME_CHARS {
        "is longer than 256 characters"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(ControlError::bad_request(format!("args.{field}: {problem}")))
}

fn check_at_most(field: &str, value: u64, max: u64) -> Result<(), ControlError> {
    if value > max {
        return Err(ControlError::bad_request(format!("args.{field}: must be at most {max}")));
    }
    Ok(())
}

fn check_subscription(args: &SubscribeEventsArgs) -> Result<(), ControlError> {
    check_at_most("backlog", u64::from(args.backlog), u64::from(MAX_EVENT_BACKLOG))?;
    let Some(topics) = &args.topics else {
        return Ok(());
    };
    if topics.is_empty() {
        return Err(ControlError::bad_request("args.topics: must not be empty (omit it for every topic)"));
    }
    check_at_most("topics", topics.len() as u64, MAX_SUBSCRIBE_TOPICS as u64)?;
    topics.iter().try_for_each(|topic| check_name("topics[]", topic))
}
