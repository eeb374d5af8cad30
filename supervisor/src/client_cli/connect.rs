//! Reaching the daemon: which socket, which bearer token, and the handshake.
//!
//! A token is never taken from the command line, where every user can read it in
//! `/proc/PID/cmdline`: it comes from `--token-file` or `$WFSANDBOX_TOKEN` (the environment
//! of a process is readable only by its own uid and root).

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use thiserror::Error;
use wf_protocol::control::client::DEFAULT_SERVER_UID;
use wf_protocol::control::{ClientError, Connection, DEFAULT_SOCKET_PATH};

/// The name the CLI gives itself in the `hello` (it shows in the daemon's audit log).
pub const CLIENT_NAME: &str = "wfsandbox-cli";

/// Environment variable holding the bearer token when no `--token-file` is given.
pub const TOKEN_ENV: &str = "WFSANDBOX_TOKEN";

/// A token file holds one 64-hex-digit token; anything much larger is a wrong file.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

#[derive(Debug, Error)]
pub enum TokenError {
    #[error("--token-file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--token-file {}: larger than {MAX_TOKEN_FILE_BYTES} bytes (it should hold one token)", path.display())]
    TooLarge { path: PathBuf },
    #[error("--token-file {}: holds no token", path.display())]
    Empty { path: PathBuf },
    #[error("{origin}: the token is not valid UTF-8")]
    NotUtf8 { origin: String },
}

/// The socket to connect to: `--socket`/`$WFSANDBOX_SOCKET` (clap reads both), else the default.
pub fn socket_path(socket: Option<&Path>) -> PathBuf {
    socket.map_or_else(|| PathBuf::from(DEFAULT_SOCKET_PATH), Path::to_path_buf)
}

/// The bearer token: from `token_file` when given, else from `$WFSANDBOX_TOKEN` (unset or
/// empty means none). Surrounding whitespace, such as a trailing newline, is dropped.
pub fn bearer_token(token_file: Option<&Path>) -> Result<Option<String>, TokenError> {
    match token_file {
        Some(path) => read_token_file(path).map(Some),
        None => token_from_env(),
    }
}

fn token_from_env() -> Result<Option<String>, TokenError> {
    let Some(raw) = std::env::var_os(TOKEN_ENV) else { return Ok(None) };
    let text = raw.into_string().map_err(|_| TokenError::NotUtf8 { origin: format!("${TOKEN_ENV}") })?;
    let token = text.trim();
    Ok((!token.is_empty()).then(|| token.to_owned()))
}

/// Reads at most [`MAX_TOKEN_FILE_BYTES`] (+1 to notice more). Pipes are fine
/// (`--token-file <(secret-tool ...)`), so the file type is not checked.
fn read_token_file(path: &Path) -> Result<String, TokenError> {
    let read_error = |source| TokenError::Read { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(read_error)?;
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(TokenError::TooLarge { path: path.to_path_buf() });
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| TokenError::NotUtf8 { origin: format!("--token-file {}", path.display()) })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Empty { path: path.to_path_buf() });
    }
    Ok(token.to_owned())
}

/// Environment variable naming the uid the daemon runs as (default 0). A server of any other
/// uid is refused before the hello, so a replaced socket never receives the token.
pub const DAEMON_UID_ENV: &str = "WFSANDBOX_DAEMON_UID";

/// The daemon's expected uid: `$WFSANDBOX_DAEMON_UID` when it is a number, else root.
pub fn daemon_uid() -> u32 {
    std::env::var(DAEMON_UID_ENV).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_SERVER_UID)
}

/// Connects, checks the server is [`daemon_uid`], and performs the handshake as [`CLIENT_NAME`].
pub fn open(socket: &Path, token: Option<String>) -> Result<Connection<UnixStream>, ClientError> {
    Connection::connect_expecting(socket, CLIENT_NAME, token, daemon_uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_file(contents: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), contents).expect("write token file");
        file
    }

    #[test]
    fn a_token_file_loses_its_trailing_newline() {
        let file = token_file(b"3f9a0c27e4b81d65\n");
        assert_eq!(bearer_token(Some(file.path())).expect("token").as_deref(), Some("3f9a0c27e4b81d65"));
    }

    #[test]
    fn empty_oversized_and_missing_token_files_are_errors() {
        let empty = token_file(b" \n");
        assert!(matches!(bearer_token(Some(empty.path())), Err(TokenError::Empty { .. })));
        let huge = token_file(&vec![b'a'; 5000]);
        assert!(matches!(bearer_token(Some(huge.path())), Err(TokenError::TooLarge { .. })));
        let missing = Path::new("/nonexistent/wfsandbox-token");
        assert!(matches!(bearer_token(Some(missing)), Err(TokenError::Read { .. })));
    }

    #[test]
    fn the_default_socket_is_the_daemons() {
        assert_eq!(socket_path(None), PathBuf::from("/run/wfsandbox/control.sock"));
        assert_eq!(socket_path(Some(Path::new("/tmp/s.sock"))), PathBuf::from("/tmp/s.sock"));
    }
}
