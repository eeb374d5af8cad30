//! The daemon's bookkeeping as the control protocol shows it.

use crate::daemon::{LogRead, LogStream, PluginEntry, PluginState, RegistryError};
use wf_protocol::control::{self, ControlError, LogChunk, PluginSummary};

/// The registry's `refused` (set-up failed; it never ran) is shown as `stopped`, with
/// `last_exit.cause = setup_failed` saying why: the protocol's states are those of a process.
pub fn wire_state(state: PluginState) -> control::PluginState {
    match state {
        PluginState::Validated => control::PluginState::Validated,
        PluginState::Starting => control::PluginState::Starting,
        PluginState::Running => control::PluginState::Running,
        PluginState::Stopping => control::PluginState::Stopping,
        PluginState::Stopped | PluginState::Refused => control::PluginState::Stopped,
        PluginState::Exited => control::PluginState::Exited,
        PluginState::Crashed => control::PluginState::Crashed,
        PluginState::Quarantined => control::PluginState::Quarantined,
    }
}

pub fn summary(entry: &PluginEntry) -> PluginSummary {
    PluginSummary {
        name: entry.name().to_owned(),
        version: entry.version().to_owned(),
        state: wire_state(entry.state()),
        pid: entry.pid(),
        instance: entry.instance().map(str::to_owned),
        restarts: entry.restarts(),
        since_ms: entry.since_ms(),
    }
}

pub fn registry_error(error: &RegistryError) -> ControlError {
    match error {
        RegistryError::AlreadyExists { name } => ControlError::already_exists(name),
        RegistryError::NoSuchPlugin { name } => ControlError::no_such_plugin(name),
        RegistryError::Conflict { name, .. }
        | RegistryError::Busy { name, .. }
        | RegistryError::StaleRestart { name, .. } => {
            let state = error.state().map_or(control::PluginState::Stopped, wire_state);
            ControlError::conflict(name, state, error.to_string())
        }
        RegistryError::Full { .. } => {
            ControlError::Refused { message: error.to_string(), layer: None, step: Some("load".into()), errno: None }
        }
    }
}

/// Stored log bytes as protocol chunks (the buffer already escaped what a terminal would act on;
/// invalid UTF-8 left in it is replaced here).
pub fn log_chunks(read: &LogRead) -> Vec<LogChunk> {
    read.pieces
        .iter()
        .map(|piece| LogChunk {
            stream: match piece.stream {
                LogStream::Stdout => control::LogStream::Stdout,
                LogStream::Stderr => control::LogStream::Stderr,
            },
            time_ms: piece.time_ms,
            text: String::from_utf8_lossy(&piece.data).into_owned(),
        })
        .collect()
}
