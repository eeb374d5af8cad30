//! The lifecycle state machine of one plugin in the daemon.
//!
//! | from | event | to |
//! |---|---|---|
//! | validated, stopped, exited, crashed, refused | `StartRequested` | starting |
//! | exited, crashed | `RestartDue` | starting |
//! | starting | `Launched` | running |
//! | starting | `LaunchFailed` | refused |
//! | starting, running | `ExitedClean` | exited |
//! | starting, running | `ExitedWithError`, `KilledBySignal` | crashed |
//! | starting, running, stopping | `StopRequested` | stopping |
//! | exited, crashed | `StopRequested` | stopped (a pending restart is cancelled) |
//! | stopping | `Launched`, `LaunchFailed`, any exit | stopping |
//! | stopping | `StopCompleted` | stopped |
//! | validated, stopped, exited, crashed, refused | `Quarantine` | quarantined |
//! | quarantined | `Release` | stopped |
//!
//! Every other pair is an [`InvalidTransition`].
//!
//! How an end is classified — decided by the daemon's order of observation, nothing else:
//!
//! - **stopped**: a stop was requested (`StopRequested` was applied) before the exit of the main
//!   process was observed. How the process then ended — status 0, non-zero, SIGTERM, SIGKILL —
//!   does not matter: exits seen in `Stopping` are absorbed, and the plugin becomes `Stopped`
//!   only on `StopCompleted`, i.e. once the daemon has killed and emptied the whole cgroup. So
//!   `Stopped` promises that nothing of the plugin survives.
//! - **exited**: no stop was requested and the main process exited with status 0.
//! - **crashed**: no stop was requested and the main process exited with a non-zero status or
//!   was killed by any signal (a seccomp SIGSYS, an OOM or a limit SIGKILL, or a SIGTERM the
//!   daemon did not send as part of a stop).
//! - **refused**: the launcher reported a typed set-up failure (`LaunchFailed`) before the plugin
//!   ran; a process that dies during set-up without such a report is **crashed**.
//!
//! Further rules: a running plugin cannot be started again, and a plugin with a process cannot
//! be quarantined (stop it first, so `Quarantined` never has a process); a quarantined plugin
//! cannot be started or restarted until `Release` (which leaves it `Stopped`); automatic
//! restarts (`RestartDue`) only follow an unrequested end (`Exited`, `Crashed`), never a stop
//! and never a set-up refusal (which would only fail again the same way). A second stop request
//! while stopping is accepted and changes nothing.

use std::fmt;
use std::num::NonZeroI32;

use serde::{Deserialize, Serialize};

use super::exit::Exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginState {
    /// Manifest loaded and checked against the policy; never started since.
    Validated,
    /// Launch requested; the sandbox is being set up.
    Starting,
    Running,
    /// A stop was requested; waiting for the process to end and the cgroup to be emptied.
    Stopping,
    Stopped,
    Exited,
    Crashed,
    /// Set-up failed before the plugin ran.
    Refused,
    Quarantined,
}

impl PluginState {
    pub const ALL: [PluginState; 9] = [
        Self::Validated,
        Self::Starting,
        Self::Running,
        Self::Stopping,
        Self::Stopped,
        Self::Exited,
        Self::Crashed,
        Self::Refused,
        Self::Quarantined,
    ];

    /// The stable lowercase name used on the wire and in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validated => "validated",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Exited => "exited",
            Self::Crashed => "crashed",
            Self::Refused => "refused",
            Self::Quarantined => "quarantined",
        }
    }

    /// Whether a main process of this plugin may exist in this state. (After an unrequested
    /// end the daemon still removes the run's cgroup, but nothing may run in it: the pid
    /// namespace died with its init.)
    pub fn is_active(self) -> bool {
        matches!(self, Self::Starting | Self::Running | Self::Stopping)
    }

    pub fn transition(self, event: Event) -> Result<PluginState, InvalidTransition> {
        use Event as E;
        use PluginState as S;
        let next = match (self, event) {
            (S::Validated | S::Stopped | S::Exited | S::Crashed | S::Refused, E::StartRequested) => S::Starting,
            (S::Exited | S::Crashed, E::RestartDue) => S::Starting,

            (S::Starting, E::Launched) => S::Running,
            (S::Starting, E::LaunchFailed) => S::Refused,
            (S::Starting | S::Running, E::ExitedClean) => S::Exited,
            (S::Starting | S::Running, E::ExitedWithError(_) | E::KilledBySignal(_)) => S::Crashed,

            (S::Starting | S::Running | S::Stopping, E::StopRequested) => S::Stopping,
            // Nothing runs after an unrequested end; a stop only cancels a pending restart.
            (S::Exited | S::Crashed, E::StopRequested) => S::Stopped,
            // Once a stop is requested, whatever the launcher reports next is part of stopping.
            (
                S::Stopping,
                E::Launched | E::LaunchFailed | E::ExitedClean | E::ExitedWithError(_) | E::KilledBySignal(_),
            ) => S::Stopping,
            (S::Stopping, E::StopCompleted) => S::Stopped,

            (S::Validated | S::Stopped | S::Exited | S::Crashed | S::Refused, E::Quarantine) => S::Quarantined,
            (S::Quarantined, E::Release) => S::Stopped,

            (from, event) => return Err(InvalidTransition { from, event: event.name() }),
        };
        Ok(next)
    }
}

impl fmt::Display for PluginState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An operator or the orchestrator asked for a start.
    StartRequested,
    /// The launcher reports the plugin's entry point was executed.
    Launched,
    /// The launcher reports a typed set-up failure; the plugin never ran.
    LaunchFailed,
    StopRequested,
    /// The main process exited with status 0.
    ExitedClean,
    /// The main process exited with this non-zero status.
    ExitedWithError(NonZeroI32),
    /// The main process was killed by this signal.
    KilledBySignal(i32),
    /// The whole cgroup was killed, found empty and removed.
    StopCompleted,
    /// The back-off delay of an automatic restart has passed.
    RestartDue,
    Quarantine,
    Release,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Self::StartRequested => "start_requested",
            Self::Launched => "launched",
            Self::LaunchFailed => "launch_failed",
            Self::StopRequested => "stop_requested",
            Self::ExitedClean => "exited_clean",
            Self::ExitedWithError(_) => "exited_with_error",
            Self::KilledBySignal(_) => "killed_by_signal",
            Self::StopCompleted => "stop_completed",
            Self::RestartDue => "restart_due",
            Self::Quarantine => "quarantine",
            Self::Release => "release",
        }
    }
}

impl From<Exit> for Event {
    fn from(exit: Exit) -> Self {
        match exit {
            Exit::Code(code) => NonZeroI32::new(code).map_or(Self::ExitedClean, Self::ExitedWithError),
            Exit::Signal(signal) => Self::KilledBySignal(signal),
        }
    }
}

/// An event that does not apply in the current state; the control socket reports it as
/// `conflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a plugin that is {from}", requested_action(event))]
pub struct InvalidTransition {
    pub from: PluginState,
    pub event: &'static str,
}

/// What a client asked for, in the words of its verb; internal events keep their name.
fn requested_action(event: &str) -> &str {
    match event {
        "start_requested" => "start",
        "stop_requested" => "stop",
        other => other,
    }
}

impl InvalidTransition {
    pub fn code(&self) -> &'static str {
        "conflict"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event as E;
    use PluginState as S;

    fn error(code: i32) -> Event {
        Event::from(Exit::Code(code))
    }

    fn run(from: PluginState, events: &[Event]) -> Result<PluginState, InvalidTransition> {
        events.iter().try_fold(from, |state, &event| state.transition(event))
    }

    #[test]
    fn a_plugin_starts_runs_and_is_stopped() {
        let end = run(S::Validated, &[E::StartRequested, E::Launched, E::StopRequested, E::StopCompleted]);
        assert_eq!(end, Ok(S::Stopped));
    }

    #[test]
    fn an_unrequested_exit_with_status_zero_is_exited() {
        assert_eq!(run(S::Running, &[Event::from(Exit::Code(0))]), Ok(S::Exited));
    }

    #[test]
    fn an_unrequested_non_zero_exit_or_any_signal_is_a_crash() {
        assert_eq!(S::Running.transition(error(1)), Ok(S::Crashed));
        assert_eq!(S::Running.transition(error(-1)), Ok(S::Crashed));
        assert_eq!(S::Running.transition(Event::from(Exit::Signal(libc::SIGSYS))), Ok(S::Crashed));
        assert_eq!(S::Running.transition(Event::from(Exit::Signal(libc::SIGTERM))), Ok(S::Crashed));
        assert_eq!(S::Running.transition(Event::from(Exit::Signal(libc::SIGKILL))), Ok(S::Crashed));
    }

    #[test]
    fn after_a_stop_request_any_exit_ends_as_stopped_only_once_the_cgroup_is_gone() {
        for exit in [E::ExitedClean, error(1), Event::from(Exit::Signal(libc::SIGTERM)), E::KilledBySignal(9)] {
            let after_exit = run(S::Running, &[E::StopRequested, exit]);
            assert_eq!(after_exit, Ok(S::Stopping), "{exit:?}");
            assert_eq!(run(S::Running, &[E::StopRequested, exit, E::StopCompleted]), Ok(S::Stopped));
        }
    }

    #[test]
    fn set_up_failure_is_refused_and_a_death_during_set_up_is_a_crash() {
        assert_eq!(S::Starting.transition(E::LaunchFailed), Ok(S::Refused));
        assert_eq!(S::Starting.transition(E::KilledBySignal(libc::SIGSYS)), Ok(S::Crashed));
        assert_eq!(S::Starting.transition(error(127)), Ok(S::Crashed));
    }

    #[test]
    fn a_stop_during_set_up_absorbs_whatever_the_launcher_reports_next() {
        assert_eq!(run(S::Starting, &[E::StopRequested, E::Launched]), Ok(S::Stopping));
        assert_eq!(run(S::Starting, &[E::StopRequested, E::LaunchFailed, E::StopCompleted]), Ok(S::Stopped));
    }

    #[test]
    fn a_second_stop_request_while_stopping_changes_nothing() {
        assert_eq!(S::Stopping.transition(E::StopRequested), Ok(S::Stopping));
    }

    #[test]
    fn a_running_or_starting_plugin_cannot_be_started_again() {
        for from in [S::Starting, S::Running, S::Stopping] {
            assert_eq!(from.transition(E::StartRequested), Err(InvalidTransition { from, event: "start_requested" }));
        }
    }

    #[test]
    fn automatic_restarts_follow_only_unrequested_ends() {
        assert_eq!(S::Exited.transition(E::RestartDue), Ok(S::Starting));
        assert_eq!(S::Crashed.transition(E::RestartDue), Ok(S::Starting));
        for from in [S::Stopped, S::Refused, S::Quarantined, S::Validated, S::Running] {
            assert!(from.transition(E::RestartDue).is_err(), "{from} restarted");
        }
    }

    #[test]
    fn a_plugin_with_a_process_cannot_be_quarantined() {
        for from in [S::Starting, S::Running, S::Stopping] {
            assert!(from.transition(E::Quarantine).is_err(), "{from} quarantined");
        }
        assert_eq!(run(S::Running, &[E::StopRequested, E::StopCompleted, E::Quarantine]), Ok(S::Quarantined));
    }

    #[test]
    fn a_quarantined_plugin_starts_only_after_release() {
        assert!(S::Quarantined.transition(E::StartRequested).is_err());
        assert_eq!(run(S::Quarantined, &[E::Release, E::StartRequested]), Ok(S::Starting));
    }

    #[test]
    fn exits_and_stop_completion_are_refused_where_no_process_is_tracked() {
        for from in [S::Validated, S::Stopped, S::Exited, S::Crashed, S::Refused, S::Quarantined] {
            assert!(from.transition(E::ExitedClean).is_err(), "{from}");
            assert!(from.transition(E::StopCompleted).is_err(), "{from}");
            assert!(from.transition(E::Launched).is_err(), "{from}");
        }
        for from in [S::Validated, S::Stopped, S::Refused, S::Quarantined] {
            assert!(from.transition(E::StopRequested).is_err(), "{from}");
        }
        assert!(S::Running.transition(E::StopCompleted).is_err());
        assert!(S::Running.transition(E::Launched).is_err());
    }

    #[test]
    fn a_stop_after_an_unrequested_end_cancels_the_restart_and_settles_as_stopped() {
        assert_eq!(S::Crashed.transition(E::StopRequested), Ok(S::Stopped));
        assert_eq!(S::Exited.transition(E::StopRequested), Ok(S::Stopped));
        assert!(run(S::Crashed, &[E::StopRequested, E::RestartDue]).is_err());
    }

    #[test]
    fn the_states_that_may_own_processes_are_exactly_starting_running_stopping() {
        let active: Vec<_> = S::ALL.into_iter().filter(|s| s.is_active()).collect();
        assert_eq!(active, [S::Starting, S::Running, S::Stopping]);
    }

    #[test]
    fn states_have_stable_wire_names() {
        for state in S::ALL {
            assert_eq!(serde_json::to_value(state).ok(), Some(serde_json::Value::from(state.as_str())));
        }
        assert_eq!(S::Quarantined.to_string(), "quarantined");
    }

    #[test]
    fn an_invalid_transition_names_the_state_and_event_and_is_a_conflict() {
        let err = S::Stopped.transition(E::StopRequested).err();
        assert_eq!(
            err.map(|e| (e.code(), e.to_string())),
            Some(("conflict", "cannot stop a plugin that is stopped".to_owned()))
        );
    }
}
