//! Why a client command failed, its exit status, and the one line it prints on stderr.

use super::connect::TokenError;
use super::request::RequestError;
use crate::terminal_text;
use std::fmt::Write as _;
use thiserror::Error;
use wf_protocol::control::{ClientError, ControlError, Problem, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

/// At most this many problems of an invalid manifest or policy are spelled out on the
/// error line; the rest are counted.
const MAX_PROBLEMS_SHOWN: usize = 10;

#[derive(Debug, Error)]
pub enum CommandError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{}", describe_client_error(.0))]
    Daemon(#[from] ClientError),
    /// The daemon ended a followed stream because this client read too slowly.
    #[error(
        "the daemon ended the stream because this client read too slowly (lagged); run the command again to resume"
    )]
    Lagged,
    #[error("writing the output: {0}")]
    Output(#[source] std::io::Error),
    /// Whoever read stdout stopped (`| head`): not a failure of the command.
    #[error("the reader of the output went away")]
    ReaderGone,
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Request(error) if error.is_usage() => EXIT_USAGE,
            CommandError::Token(_) => EXIT_USAGE,
            CommandError::Daemon(error) => error.exit_code(),
            CommandError::Request(_) | CommandError::Lagged | CommandError::Output(_) => EXIT_FAILURE,
            CommandError::ReaderGone => EXIT_OK,
        }
    }

    /// Output errors: a closed pipe ends the command quietly, anything else is a failure.
    pub fn from_output(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            CommandError::ReaderGone
        } else {
            CommandError::Output(error)
        }
    }
}

/// `wfsandbox: <context>: <error>` on one line. The daemon's messages quote plugin names,
/// manifest problems and paths, so the whole line is escaped for the terminal (which also
/// turns any newline into a visible escape).
pub fn error_line(context: &str, error: &CommandError) -> String {
    terminal_text::escape(&format!("wfsandbox: {context}: {error}"))
}

fn describe_client_error(error: &ClientError) -> String {
    match error {
        ClientError::Control(control) => describe_control_error(control),
        other => other.to_string(),
    }
}

/// The daemon's `code: message`, plus the details a person needs to act on it.
fn describe_control_error(error: &ControlError) -> String {
    let mut line = error.to_string();
    match error {
        ControlError::InvalidManifest { problems, .. } | ControlError::InvalidPolicy { problems, .. } => {
            append_problems(&mut line, problems);
        }
        ControlError::Refused { layer, step, errno, .. } => append_refusal(&mut line, layer, step, *errno),
        ControlError::AuthBackoff { retry_after_ms, .. } | ControlError::RateLimited { retry_after_ms, .. } => {
            let _ = write!(line, " (retry after {retry_after_ms} ms)");
        }
        ControlError::UnsupportedVersion { supported, .. } => {
            let _ = write!(line, " (the daemon speaks {supported:?})");
        }
        _ => {}
    }
    line
}

fn append_problems(line: &mut String, problems: &[Problem]) {
    for (index, problem) in problems.iter().take(MAX_PROBLEMS_SHOWN).enumerate() {
        let separator = if index == 0 { ": " } else { "; " };
        let pointer = if problem.pointer.is_empty() { "(document)" } else { problem.pointer.as_str() };
        let _ = write!(line, "{separator}{pointer}: {}", problem.reason);
    }
    if problems.len() > MAX_PROBLEMS_SHOWN {
        let _ = write!(line, "; and {} more", problems.len() - MAX_PROBLEMS_SHOWN);
    }
}

fn append_refusal(line: &mut String, layer: &Option<String>, step: &Option<String>, errno: Option<i32>) {
    let mut parts = Vec::new();
    if let Some(layer) = layer {
        parts.push(format!("layer {layer}"));
    }
    if let Some(step) = step {
        parts.push(format!("step {step}"));
    }
    if let Some(errno) = errno {
        parts.push(describe_errno(errno));
    }
    if !parts.is_empty() {
        let _ = write!(line, " ({})", parts.join(", "));
    }
}

fn describe_errno(errno: i32) -> String {
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::UnknownErrno => format!("errno {errno}"),
        known => format!("errno {errno} {known:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use wf_protocol::control::{EXIT_CONFLICT, EXIT_DAEMON_NOT_RUNNING, EXIT_NO_SUCH_PLUGIN, EXIT_REFUSED};

    #[test]
    fn daemon_errors_keep_their_protocol_exit_codes() {
        let ghost = CommandError::Daemon(ControlError::no_such_plugin("ghost").into());
        assert_eq!(ghost.exit_code(), EXIT_NO_SUCH_PLUGIN);
        assert_eq!(
            error_line("status ghost", &ghost),
            "wfsandbox: status ghost: no_such_plugin: no plugin named \"ghost\""
        );
        let absent = CommandError::Daemon(ClientError::DaemonNotRunning {
            path: PathBuf::from("/run/x.sock"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert_eq!(absent.exit_code(), EXIT_DAEMON_NOT_RUNNING);
        let busy = ControlError::conflict("a", wf_protocol::control::PluginState::Running, "already running");
        assert_eq!(CommandError::Daemon(busy.into()).exit_code(), EXIT_CONFLICT);
    }

    #[test]
    fn a_refusal_names_its_layer_step_and_errno() {
        let refused = ControlError::Refused {
            message: "landlock is required".into(),
            layer: Some("landlock".into()),
            step: Some("landlock_create_ruleset".into()),
            errno: Some(38),
        };
        let error = CommandError::Daemon(refused.into());
        assert_eq!(error.exit_code(), EXIT_REFUSED);
        assert_eq!(
            error_line("start m", &error),
            "wfsandbox: start m: refused: landlock is required (layer landlock, step landlock_create_ruleset, errno 38 ENOSYS)"
        );
    }

    #[test]
    fn every_problem_of_an_invalid_manifest_is_on_the_one_line() {
        let problems = vec![
            Problem { pointer: "/name".into(), reason: "must match ^[a-z]".into() },
            Problem { pointer: String::new(), reason: "bad\nline".into() },
        ];
        let error =
            CommandError::Daemon(ControlError::InvalidManifest { message: "2 problems".into(), problems }.into());
        let line = error_line("load /m.json", &error);
        assert_eq!(line, "wfsandbox: load /m.json: invalid_manifest: 2 problems: /name: must match ^[a-z]; (document): bad\\u{a}line");
        assert_eq!(error.exit_code(), 6);
    }

    #[test]
    fn hostile_text_in_a_daemon_message_cannot_drive_the_terminal() {
        let hostile = ControlError::no_such_plugin("x\u{1b}]52;c;cm0gLXJm\u{7}\u{9b}2J\u{202e}");
        let line = error_line("status x", &CommandError::Daemon(hostile.into()));
        assert!(!line.chars().any(|c| c.is_control() || terminal_text::is_terminal_control(c)), "{line}");
        assert!(line.contains("\\u{1b}]52") && line.contains("\\u{9b}") && line.contains("\\u{202e}"), "{line}");
    }

    #[test]
    fn a_closed_pipe_is_quiet_success_and_other_output_errors_fail() {
        let gone = CommandError::from_output(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(matches!(gone, CommandError::ReaderGone) && gone.exit_code() == 0);
        let full = CommandError::from_output(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(full.exit_code(), EXIT_FAILURE);
    }
}
