//! The daemon's table of loaded plugins, keyed by their unique name.
//!
//! Every lifecycle change goes through one method per event, which applies the state machine
//! ([`super::state`]) and keeps the entry's bookkeeping consistent with it: `since` moves when
//! the state changes, the pid exists exactly while a main process may, an explicit start
//! forgets the crash loop, and an unrequested end is handed to the restart rule.
//!
//! Automatic restarts are scheduled by the caller with the [`RestartTicket`] an end returns;
//! any later change of the plugin's state voids the ticket, so a timer that fires after an
//! operator intervened (or after a newer crash with a longer back-off) is refused rather than
//! restarting the plugin early.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::exit::Exit;
use super::log_buffer::{LogBuffer, LogLimits, LogStream, LogTime, PushOutcome};
use super::restart::{NextAction, RestartHistory, RestartRule};
use super::state::{Event, InvalidTransition, PluginState};
use crate::clock::Clock;

/// The security policy has no plugin-count setting; this is the daemon's own bound.
pub const MAX_PLUGINS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("a plugin named {name:?} is already loaded")]
    AlreadyExists { name: String },
    #[error("no plugin named {name:?} is loaded")]
    NoSuchPlugin { name: String },
    #[error("plugin {name:?}: {source}")]
    Conflict {
        name: String,
        #[source]
        source: InvalidTransition,
    },
    #[error("plugin {name:?} cannot be unloaded while {state}")]
    Busy { name: String, state: PluginState },
    #[error("plugin {name:?} ({state}) has no pending restart with that ticket")]
    StaleRestart { name: String, state: PluginState },
    #[error("{max} plugins are loaded, the most this daemon holds")]
    Full { max: usize },
}

impl RegistryError {
    /// The stable control-protocol error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyExists { .. } => "already_exists",
            Self::NoSuchPlugin { .. } => "no_such_plugin",
            Self::Conflict { .. } | Self::Busy { .. } | Self::StaleRestart { .. } => "conflict",
            Self::Full { .. } => "refused",
        }
    }

    /// The plugin's state, for errors about a state.
    pub fn state(&self) -> Option<PluginState> {
        match self {
            Self::Conflict { source, .. } => Some(source.from),
            Self::Busy { state, .. } | Self::StaleRestart { state, .. } => Some(*state),
            _ => None,
        }
    }
}

/// Identifies one scheduled automatic restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RestartTicket(u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitOutcome {
    pub state: PluginState,
    pub next: NextAction,
    /// Present exactly when `next` is a restart: pass it to [`Registry::restart_due`].
    pub ticket: Option<RestartTicket>,
}

#[derive(Debug)]
pub struct PluginEntry {
    name: String,
    version: String,
    manifest_path: PathBuf,
    state: PluginState,
    since_ms: u64,
    pid: Option<u32>,
    instance: Option<String>,
    last_exit: Option<Exit>,
    rule: RestartRule,
    history: RestartHistory,
    pending_restart: Option<RestartTicket>,
    logs: LogBuffer,
}

impl PluginEntry {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }

    pub fn state(&self) -> PluginState {
        self.state
    }

    /// When the plugin entered its state, in milliseconds since the Unix epoch.
    pub fn since_ms(&self) -> u64 {
        self.since_ms
    }

    /// Host pid of the sandbox's init process, while one may exist.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Id of the current or last run (names its cgroup).
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    pub fn last_exit(&self) -> Option<Exit> {
        self.last_exit
    }

    pub fn restart_rule(&self) -> &RestartRule {
        &self.rule
    }

    /// Automatic restarts since the last explicit start.
    pub fn restarts(&self) -> u32 {
        self.history.since_start()
    }

    pub fn restart_history(&self) -> &RestartHistory {
        &self.history
    }

    pub fn logs(&self) -> &LogBuffer {
        &self.logs
    }

    pub fn row(&self) -> PluginRow {
        PluginRow {
            name: self.name.clone(),
            version: self.version.clone(),
            state: self.state,
            pid: self.pid,
            instance: self.instance.clone(),
            restarts: self.restarts(),
            since: self.since_ms,
        }
    }
}

/// One line of `ps`; the keys are stable (`since` is milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRow {
    pub name: String,
    pub version: String,
    pub state: PluginState,
    pub pid: Option<u32>,
    pub instance: Option<String>,
    pub restarts: u32,
    pub since: u64,
}

#[derive(Debug)]
pub struct Registry<C: Clock> {
    clock: C,
    max_plugins: usize,
    log_limits: LogLimits,
    plugins: BTreeMap<String, PluginEntry>,
    next_ticket: u64,
}

impl<C: Clock> Registry<C> {
    pub fn new(clock: C) -> Self {
        Self::with_limits(clock, MAX_PLUGINS, LogLimits::default())
    }

    pub fn with_limits(clock: C, max_plugins: usize, log_limits: LogLimits) -> Self {
        Self { clock, max_plugins, log_limits, plugins: BTreeMap::new(), next_ticket: 0 }
    }

    pub fn clock(&self) -> &C {
        &self.clock
    }

    pub fn len(&self) -> usize {
        self.plugins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Adds a validated plugin.
    pub fn insert(
        &mut self,
        name: &str,
        version: &str,
        manifest_path: &Path,
        rule: RestartRule,
    ) -> Result<&PluginEntry, RegistryError> {
        if self.plugins.contains_key(name) {
            return Err(RegistryError::AlreadyExists { name: name.to_owned() });
        }
        if self.plugins.len() >= self.max_plugins {
            return Err(RegistryError::Full { max: self.max_plugins });
        }
        let entry = PluginEntry {
            name: name.to_owned(),
            version: version.to_owned(),
            manifest_path: manifest_path.to_owned(),
            state: PluginState::Validated,
            since_ms: self.clock.unix_ms(),
            pid: None,
            instance: None,
            last_exit: None,
            rule,
            history: RestartHistory::new(),
            pending_restart: None,
            logs: LogBuffer::new(self.log_limits, self.clock.monotonic()),
        };
        Ok(self.plugins.entry(name.to_owned()).or_insert(entry))
    }

    /// Unloads a plugin that has no process.
    pub fn remove(&mut self, name: &str) -> Result<PluginEntry, RegistryError> {
        let state = self.get(name)?.state;
        if state.is_active() {
            return Err(RegistryError::Busy { name: name.to_owned(), state });
        }
        self.plugins.remove(name).ok_or_else(|| RegistryError::NoSuchPlugin { name: name.to_owned() })
    }

    pub fn get(&self, name: &str) -> Result<&PluginEntry, RegistryError> {
        self.plugins.get(name).ok_or_else(|| RegistryError::NoSuchPlugin { name: name.to_owned() })
    }

    /// Every plugin, sorted by name.
    pub fn list(&self) -> Vec<PluginRow> {
        self.plugins.values().map(PluginEntry::row).collect()
    }

    /// Plugins that may still have processes: what a daemon shutdown has to stop.
    pub fn active_names(&self) -> Vec<String> {
        self.plugins.values().filter(|e| e.state.is_active()).map(|e| e.name.clone()).collect()
    }

    /// An explicit start; `instance` names the run about to be set up.
    pub fn start(&mut self, name: &str, instance: &str) -> Result<PluginState, RegistryError> {
        let state = self.transition(name, Event::StartRequested)?;
        let entry = self.entry_mut(name)?;
        entry.history.reset();
        entry.instance = Some(instance.to_owned());
        Ok(state)
    }

    /// A scheduled automatic restart is due; only the latest ticket of this plugin is honoured.
    pub fn restart_due(
        &mut self,
        name: &str,
        ticket: RestartTicket,
        instance: &str,
    ) -> Result<PluginState, RegistryError> {
        let entry = self.get(name)?;
        if entry.pending_restart != Some(ticket) {
            return Err(RegistryError::StaleRestart { name: name.to_owned(), state: entry.state });
        }
        let state = self.transition(name, Event::RestartDue)?;
        self.entry_mut(name)?.instance = Some(instance.to_owned());
        Ok(state)
    }

    pub fn launched(&mut self, name: &str, pid: u32) -> Result<PluginState, RegistryError> {
        let state = self.transition(name, Event::Launched)?;
        let now = self.clock.monotonic();
        let entry = self.entry_mut(name)?;
        entry.pid = Some(pid);
        entry.history.note_launched(now);
        Ok(state)
    }

    pub fn launch_failed(&mut self, name: &str) -> Result<PluginState, RegistryError> {
        self.transition(name, Event::LaunchFailed)
    }

    pub fn stop(&mut self, name: &str) -> Result<PluginState, RegistryError> {
        self.transition(name, Event::StopRequested)
    }

    pub fn stop_completed(&mut self, name: &str) -> Result<PluginState, RegistryError> {
        self.transition(name, Event::StopCompleted)
    }

    pub fn quarantine(&mut self, name: &str) -> Result<PluginState, RegistryError> {
        self.transition(name, Event::Quarantine)
    }

    pub fn release(&mut self, name: &str) -> Result<PluginState, RegistryError> {
        self.transition(name, Event::Release)
    }

    /// The main process ended; decides on a restart when no stop was requested.
    pub fn exited(&mut self, name: &str, exit: Exit) -> Result<ExitOutcome, RegistryError> {
        let state = self.transition(name, Event::from(exit))?;
        let now = self.clock.monotonic();
        let ticket = RestartTicket(self.next_ticket);
        let entry = self.entry_mut(name)?;
        entry.pid = None;
        entry.last_exit = Some(exit);
        let next = match state {
            PluginState::Exited | PluginState::Crashed => entry.history.on_exit(&entry.rule, exit, now),
            _ => NextAction::None,
        };
        let ticket = matches!(next, NextAction::Restart { .. }).then_some(ticket);
        entry.pending_restart = ticket;
        if ticket.is_some() {
            self.next_ticket = self.next_ticket.wrapping_add(1);
        }
        Ok(ExitOutcome { state, next, ticket })
    }

    /// Captured output of the plugin.
    pub fn push_log(&mut self, name: &str, stream: LogStream, bytes: &[u8]) -> Result<PushOutcome, RegistryError> {
        let at = LogTime::now(&self.clock);
        Ok(self.entry_mut(name)?.logs.push(stream, bytes, at))
    }

    fn entry_mut(&mut self, name: &str) -> Result<&mut PluginEntry, RegistryError> {
        self.plugins.get_mut(name).ok_or_else(|| RegistryError::NoSuchPlugin { name: name.to_owned() })
    }

    /// Applies `event`; on a change of state, moves `since` and voids any pending restart.
    fn transition(&mut self, name: &str, event: Event) -> Result<PluginState, RegistryError> {
        let now_ms = self.clock.unix_ms();
        let entry = self.entry_mut(name)?;
        let next = entry
            .state
            .transition(event)
            .map_err(|source| RegistryError::Conflict { name: name.to_owned(), source })?;
        if next != entry.state {
            entry.state = next;
            entry.since_ms = now_ms;
            entry.pending_restart = None;
        }
        if !next.is_active() {
            entry.pid = None;
        }
        Ok(next)
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
