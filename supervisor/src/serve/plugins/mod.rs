//! The daemon's plugins: the table ([`PluginTable`]), the catalog verbs that only read or
//! register manifests (this file), the lifecycle ([`lifecycle`]), the running instance's I/O
//! ([`instance_io`]) and resource statistics ([`stats`]).
//!
//! The lifecycle state machine and restart rules live in [`crate::daemon`] (runtime-free);
//! this module drives them from launcher replies, timers and requests.

pub mod instance_io;
pub mod lifecycle;
mod quarantine;
pub mod stats;
mod wire_view;

use super::daemon::Daemon;
use crate::clock::SystemClock;
use crate::commands::{self, LoadError};
use crate::daemon::{LogLimits, Registry, RestartRule, MAX_PLUGINS};
use crate::trusted_path::{path_of_fd, walk_as, Expect};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;
use wf_policy::manifest::Manifest;
use wf_policy::spec::SandboxSpec;
use wf_policy::SecurityPolicy;
use wf_protocol::control::{
    ControlError, ListResult, LoadResult, LogsResult, ManifestSource, PluginStatus, PluginSummary, Problem,
    ValidateResult,
};

pub use wire_view::{log_chunks, summary};

/// A manifest as the daemon keeps it: the exact bytes it validated and their plugin directory.
#[derive(Debug, Clone)]
pub struct ManifestInput {
    pub json: Arc<str>,
    pub plugin_dir: PathBuf,
    /// The file it was read from; `None` for an inline manifest.
    pub path: Option<PathBuf>,
}

/// Where a run of a plugin is in its life, for whoever waits on it (a stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    /// The init was reaped; the launcher killed what was left of its cgroup.
    Exited,
    /// The cgroup is removed and the launcher holds nothing of it.
    Forgotten,
}

/// The current run of a plugin.
pub struct LiveInstance {
    pub instance: String,
    pub phase: watch::Sender<Phase>,
    pub cgroup_dirs: Vec<PathBuf>,
    pub wall_clock_expired: bool,
    pub wall_clock_pointer: String,
}

/// What the daemon keeps per plugin beyond the registry's lifecycle bookkeeping.
pub struct PluginRecord {
    pub manifest: ManifestInput,
    /// Serialises start, stop and restart of this plugin.
    pub op_lock: Arc<tokio::sync::Mutex<()>>,
    /// The spec of the launch in flight, for brokering once it runs.
    pub pending_spec: Option<Arc<SandboxSpec>>,
    pub live: Option<LiveInstance>,
    pub last_exit: Option<wf_protocol::control::ExitSummary>,
    pub next_restart_ms: Option<u64>,
    pub enforcement: Option<serde_json::Value>,
    /// Bumped on new output and when a run ends: log followers wait on it.
    pub log_signal: watch::Sender<u64>,
}

pub struct PluginTable {
    pub registry: Registry<SystemClock>,
    pub records: HashMap<String, PluginRecord>,
    /// Instance name → plugin name, from launch request until the launcher forgot it.
    pub instances: HashMap<String, String>,
}

impl PluginTable {
    pub fn new(clock: SystemClock) -> Self {
        Self {
            registry: Registry::with_limits(clock, MAX_PLUGINS, LogLimits::default()),
            records: HashMap::new(),
            instances: HashMap::new(),
        }
    }

    pub fn record(&self, name: &str) -> Result<&PluginRecord, ControlError> {
        self.records.get(name).ok_or_else(|| ControlError::no_such_plugin(name))
    }

    pub fn record_mut(&mut self, name: &str) -> Result<&mut PluginRecord, ControlError> {
        self.records.get_mut(name).ok_or_else(|| ControlError::no_such_plugin(name))
    }

    pub fn summary(&self, name: &str) -> Result<PluginSummary, ControlError> {
        let entry = self.registry.get(name).map_err(|_| ControlError::no_such_plugin(name))?;
        Ok(summary(entry))
    }
}

/// A manifest that passed every check, with the spec it gets under the current policy.
pub struct CheckedManifest {
    pub input: ManifestInput,
    pub manifest: Manifest,
    pub spec: SandboxSpec,
}

impl Daemon {
    /// `load`: check the manifest and register the plugin as `validated`. A manifest path (or
    /// inline `plugin_dir`) a non-root peer could not read itself is refused ([`read_source_as`]).
    pub fn load_as(&self, peer_uid: u32, source: &ManifestSource) -> Result<LoadResult, ControlError> {
        let checked = check_manifest(read_source_as(peer_uid, source)?, &self.policy().policy)?;
        let plugin = self.register(checked, false)?;
        Ok(LoadResult { plugin, warnings: Vec::new() })
    }

    /// `validate`: check only, under the same rule as [`Daemon::load_as`].
    pub fn validate_as(&self, peer_uid: u32, source: &ManifestSource) -> Result<ValidateResult, ControlError> {
        let checked = check_manifest(read_source_as(peer_uid, source)?, &self.policy().policy)?;
        Ok(ValidateResult { name: checked.spec.name, version: checked.spec.version, warnings: Vec::new() })
    }

    /// `start MANIFEST` for a peer: the manifest is read as [`Daemon::load_as`] reads it (one
    /// walk checks and reads), registered (replacing an idle plugin of that name), then started.
    pub async fn start_manifest_as(
        self: &Arc<Self>,
        peer_uid: u32,
        source: &ManifestSource,
    ) -> Result<PluginSummary, ControlError> {
        let checked = check_manifest(read_source_as(peer_uid, source)?, &self.policy().policy)?;
        let name = checked.spec.name.clone();
        self.register(checked, true)?;
        self.start(&name).await
    }

    /// Register a checked manifest. With `replace`, a loaded plugin of that name without a
    /// process takes the new manifest (what `start MANIFEST` of a loaded name means).
    pub fn register(&self, checked: CheckedManifest, replace: bool) -> Result<PluginSummary, ControlError> {
        let name = checked.spec.name.clone();
        let rule = RestartRule::from_manifest(checked.manifest.restart.as_ref());
        let manifest_path = checked.input.path.clone().unwrap_or_default();
        let mut table = self.table();
        let replacing = replace && table.records.contains_key(&name);
        if replacing {
            let state = table.registry.get(&name).map(|e| e.state()).map_err(|e| wire_view::registry_error(&e))?;
            if state.is_active() {
                return Err(ControlError::conflict(&name, wire_view::wire_state(state), format!("{name} is {state}")));
            }
            table.registry.remove(&name).map_err(|e| wire_view::registry_error(&e))?;
        }
        table
            .registry
            .insert(&name, &checked.spec.version, &manifest_path, rule)
            .map_err(|e| wire_view::registry_error(&e))?;
        let event = serde_json::json!({ "plugin": name, "manifest": manifest_path, "replaced": replacing });
        self.audit.record("plugin_loaded", event);
        if replacing {
            // The op lock and the log followers' signal stay: operations may be waiting on them.
            table.record_mut(&name)?.manifest = checked.input;
            return table.summary(&name);
        }
        let record = PluginRecord {
            manifest: checked.input,
            op_lock: Arc::new(tokio::sync::Mutex::new(())),
            pending_spec: None,
            live: None,
            last_exit: None,
            next_restart_ms: None,
            enforcement: None,
            log_signal: watch::channel(0).0,
        };
        table.records.insert(name.clone(), record);
        table.summary(&name)
    }

    pub fn list(&self) -> ListResult {
        let table = self.table();
        let plugins = table.registry.list().iter().filter_map(|row| table.summary(&row.name).ok()).collect();
        ListResult { plugins }
    }

    pub fn status(&self, name: &str) -> Result<PluginStatus, ControlError> {
        let table = self.table();
        let record = table.record(name)?;
        Ok(PluginStatus {
            plugin: table.summary(name)?,
            manifest_path: record.manifest.path.as_ref().map(|p| p.display().to_string()),
            plugin_dir: record.manifest.plugin_dir.display().to_string(),
            last_exit: record.last_exit.clone(),
            next_restart_ms: record.next_restart_ms,
            enforcement: record.enforcement.clone(),
            events: table.registry.get(name).ok().and_then(|e| e.instance()).and_then(|i| self.broker.counters(i)),
        })
    }

    /// `logs` without follow: about the newest `tail_bytes`, starting at a line.
    pub fn logs_tail(&self, name: &str, tail_bytes: usize) -> Result<(LogsResult, u64), ControlError> {
        let table = self.table();
        let entry = table.registry.get(name).map_err(|_| ControlError::no_such_plugin(name))?;
        let read = entry.logs().tail(tail_bytes);
        let next = read.next_offset;
        Ok((LogsResult { chunks: log_chunks(&read), dropped_bytes: read.dropped_total }, next))
    }
}

/// Read a manifest source for a peer. A manifest path is read in one walk that never follows a
/// symlink ([`commands::read_manifest_as`]): the walk that decides whether the peer could read
/// the file is the one whose fds the bytes and the plugin directory come from, so nothing
/// swapped in after the check is read. For a non-root peer (the daemon reads as root) the path
/// must be one the peer could read itself, and an inline manifest's `plugin_dir` a directory
/// it could search and read itself; otherwise one `not_authorised` answer whether the path is
/// missing, closed, a symlink or of the wrong type, so the answer is no oracle for what the peer
/// cannot see. Root is allowed anything root can reach, without symlinks on the way.
pub fn read_source_as(peer_uid: u32, source: &ManifestSource) -> Result<ManifestInput, ControlError> {
    let peer = (peer_uid != 0).then_some(peer_uid);
    match source {
        ManifestSource::Path(path) => {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(ControlError::bad_request("manifest path must be absolute"));
            }
            let (bytes, plugin_dir) = commands::read_manifest_as(&path, peer).map_err(|e| match peer {
                Some(_) => unreadable_path(),
                None => load_error(&e),
            })?;
            let json = String::from_utf8(bytes).map_err(|_| invalid("", "the manifest is not valid UTF-8"))?;
            Ok(ManifestInput { json: json.into(), plugin_dir, path: Some(path) })
        }
        ManifestSource::Inline { document, plugin_dir } => {
            let dir = Path::new(plugin_dir);
            if !dir.is_absolute() {
                return Err(ControlError::bad_request("plugin_dir must be absolute"));
            }
            let plugin_dir = match peer {
                Some(uid) => walk_plugin_dir(dir, uid).ok_or_else(unreadable_plugin_dir)?,
                None => {
                    std::fs::canonicalize(dir).map_err(|e| invalid("/plugin_dir", &format!("{plugin_dir}: {e}")))?
                }
            };
            let json = serde_json::to_string(document).map_err(|e| invalid("", &e.to_string()))?;
            Ok(ManifestInput { json: json.into(), plugin_dir, path: None })
        }
    }
}

/// An inline `plugin_dir` of a non-root peer: walked without symlinks, searchable and readable
/// by the peer; the path of the directory checked.
fn walk_plugin_dir(dir: &Path, uid: u32) -> Option<PathBuf> {
    let walked = walk_as(dir, Some(uid), Expect::Directory).ok()?;
    path_of_fd(&walked.target).ok()
}

fn unreadable_path() -> ControlError {
    ControlError::not_authorised(
        "the manifest path is not one this peer could read itself (its own, or readable by group and \
         others alike, without an ACL, in directories it can search, no symlinks); send the \
         manifest inline instead",
    )
}

fn unreadable_plugin_dir() -> ControlError {
    ControlError::not_authorised(
        "plugin_dir is not a directory this peer could search and read itself (its own, or open to \
         group and others alike, without an ACL, in directories it can search, no symlinks)",
    )
}

/// Schema, semantic checks and ceilings of `policy`, then the spec derivation.
pub fn check_manifest(input: ManifestInput, policy: &SecurityPolicy) -> Result<CheckedManifest, ControlError> {
    let manifest = wf_policy::load_manifest(input.json.as_bytes(), policy).map_err(|p| problems_error(&p))?;
    let spec = wf_policy::derive_spec(&manifest, &input.plugin_dir, policy).map_err(|p| problems_error(&p))?;
    Ok(CheckedManifest { input, manifest, spec })
}

fn invalid(pointer: &str, reason: &str) -> ControlError {
    ControlError::InvalidManifest {
        message: format!("invalid manifest: {reason}"),
        problems: vec![Problem { pointer: pointer.to_owned(), reason: reason.to_owned() }],
    }
}

pub fn problems_error(problems: &wf_policy::Problems) -> ControlError {
    let problems: Vec<Problem> =
        problems.iter().map(|p| Problem { pointer: p.pointer.clone(), reason: p.reason.clone() }).collect();
    let message = match problems.len() {
        1 => "1 problem".to_owned(),
        n => format!("{n} problems"),
    };
    ControlError::InvalidManifest { message, problems }
}

fn load_error(error: &LoadError) -> ControlError {
    match error {
        LoadError::Manifest { problems, .. } => problems_error(problems),
        other => invalid("", &other.to_string()),
    }
}
