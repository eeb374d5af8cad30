//! Turning command-line arguments into protocol calls, with every check the daemon would
//! make done first, so a mistyped command is a usage error (exit 2) whether or not a daemon
//! is running.

use super::payload::parse_payload;
use std::path::{Path, PathBuf};
use thiserror::Error;
use wf_protocol::control::{encode_client_message, Call, ClientMessage, ManifestSource, PublishArgs, MAX_GRACE_MS};

#[derive(Debug, Error)]
pub enum RequestError {
    #[error("{what} {}: not valid UTF-8 (the protocol carries paths as JSON strings)", path.display())]
    PathNotUtf8 { what: &'static str, path: PathBuf },
    #[error("{what} {}: cannot make it absolute: {source}", path.display())]
    Absolute {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the JSON payload: {0}")]
    Payload(#[source] serde_json::Error),
    /// The range and shape checks of the protocol (`Call::check`).
    #[error("{0}")]
    Invalid(String),
    /// Too large or too deeply nested for one request frame.
    #[error("the request cannot be sent: {0}")]
    Unsendable(String),
}

impl RequestError {
    /// Only a failure to read the working directory is not the user's typing.
    pub fn is_usage(&self) -> bool {
        !matches!(self, RequestError::Absolute { .. })
    }
}

/// `path` made absolute against the working directory, without resolving symlinks: the
/// daemon refuses a symlinked manifest, and canonicalising here would hide one from it.
pub fn absolute_path(what: &'static str, path: &Path) -> Result<String, RequestError> {
    let absolute = std::path::absolute(path).map_err(|source| RequestError::Absolute {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    absolute.into_os_string().into_string().map_err(|_| RequestError::PathNotUtf8 { what, path: path.to_path_buf() })
}

pub fn manifest_source(manifest: &Path) -> Result<ManifestSource, RequestError> {
    absolute_path("manifest", manifest).map(ManifestSource::Path)
}

pub fn publish(topic: &str, payload: &str) -> Result<Call, RequestError> {
    let payload = parse_payload(payload).map_err(RequestError::Payload)?;
    Ok(Call::Publish(PublishArgs { topic: topic.to_owned(), payload }))
}

/// `call` after the protocol's own argument checks and a trial encoding under the request
/// cap (64 KiB, nesting depth 32).
pub fn checked(call: Call) -> Result<Call, RequestError> {
    call.check().map_err(|error| RequestError::Invalid(error.message().to_owned()))?;
    // The longest id the client could put in the frame, so the trial is never smaller.
    encode_client_message(&ClientMessage::request(u64::MAX, call.clone()))
        .map_err(|error| RequestError::Unsendable(error.to_string()))?;
    Ok(call)
}

/// clap parser for `stop --grace SECS`: non-negative seconds, fractions allowed, at most
/// the protocol's 600 s. Returns milliseconds.
pub fn parse_grace(text: &str) -> Result<u64, String> {
    let seconds: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    let max_seconds = MAX_GRACE_MS as f64 / 1000.0;
    if !seconds.is_finite() || !(0.0..=max_seconds).contains(&seconds) {
        return Err(format!("must be between 0 and {max_seconds} seconds"));
    }
    // In range, so the rounded product fits a u64 exactly.
    Ok((seconds * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_protocol::control::{NameArgs, StartArgs, MAX_REQUEST_BYTES};

    #[test]
    fn relative_manifests_become_absolute_without_resolving_symlinks() {
        let cwd = std::env::current_dir().expect("cwd");
        let ManifestSource::Path(path) = manifest_source(Path::new("plugins/../m.json")).expect("source") else {
            panic!("a path source")
        };
        assert_eq!(Path::new(&path), cwd.join("plugins/../m.json"));
        assert_eq!(absolute_path("policy", Path::new("/etc/p.json")).expect("absolute"), "/etc/p.json");
    }

    #[test]
    fn grace_is_seconds_with_fractions_capped_at_ten_minutes() {
        assert_eq!(parse_grace("2"), Ok(2000));
        assert_eq!(parse_grace("0.25"), Ok(250));
        assert_eq!(parse_grace("600"), Ok(600_000));
        for bad in ["-1", "600.5", "nan", "inf", "soon", ""] {
            assert!(parse_grace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn protocol_checks_run_before_any_connection() {
        let empty = checked(Call::Status(NameArgs { name: String::new() }));
        assert!(matches!(empty, Err(RequestError::Invalid(ref m)) if m.contains("args.name")), "{empty:?}");
        let control = checked(Call::Start(StartArgs::Name("a\u{1b}[2J".into())));
        assert!(matches!(control, Err(RequestError::Invalid(_))), "{control:?}");
    }

    #[test]
    fn a_payload_too_large_or_deep_for_one_frame_is_refused_locally() {
        let big = format!("\"{}\"", "x".repeat(MAX_REQUEST_BYTES as usize));
        let call = publish("t", &big).expect("valid JSON");
        assert!(matches!(checked(call), Err(RequestError::Unsendable(_))));
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        let call = publish("t", &deep).expect("valid JSON");
        assert!(matches!(checked(call), Err(RequestError::Unsendable(_))));
        assert!(checked(publish("energy.update", "{\"watts\": 42.5}").expect("valid")).is_ok());
    }

    #[test]
    fn duplicate_keys_in_a_payload_are_a_usage_error() {
        let error = publish("t", "{\"a\":1,\"a\":2}").expect_err("duplicate key");
        assert!(error.is_usage() && error.to_string().contains("duplicate key"), "{error}");
    }
}
