//! A blocking client over any byte stream: the CLI's transport, and the reference for
//! how a conversation goes (hello, one request at a time, streams ended by `cancel`).

use super::codec::{encode_client_message, read_server_message};
use super::errors::{ControlError, EXIT_DAEMON_NOT_RUNNING, EXIT_FAILURE, EXIT_NOT_AUTHORISED, EXIT_PROTOCOL};
use super::message::{ClientMessage, Response, ServerMessage, StreamEndReason, Welcome};
use super::results::{CancelResult, Reply, StreamItem};
use super::verbs::{Call, CancelArgs};
use crate::error::ProtocolError;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    /// Nothing listens on the socket: it does not exist or refuses connections.
    #[error("the wfsandbox daemon is not running (connecting to {path}: {source})")]
    DaemonNotRunning {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The socket (or its directory) exists but this user may not open it.
    #[error("not allowed to connect to {path}: {source}")]
    PermissionDenied {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The socket is served by a process of another uid than the daemon's: whoever could
    /// replace the socket would otherwise collect the hello and its token. Nothing was sent.
    /// Exit status "not authorised" (the server is not authorised to be the daemon).
    #[error(
        "refusing {path}: it is served by uid {uid}, not the daemon's uid {expected}; nothing was sent \
         (the socket or one of its directories may have been replaced)"
    )]
    UntrustedServer { path: PathBuf, uid: u32, expected: u32 },
    #[error("connecting to {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A frame could not be written or read, or the daemon's frame was invalid.
    #[error("control connection: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("the daemon closed the connection")]
    Closed,
    #[error("unexpected message from the daemon: {0}")]
    Unexpected(String),
    /// The daemon (or the client's own check before sending) refused the request.
    #[error("{0}")]
    Control(#[from] ControlError),
}

impl ClientError {
    /// The CLI exit status for this failure (see [`super::errors`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::DaemonNotRunning { .. } => EXIT_DAEMON_NOT_RUNNING,
            ClientError::PermissionDenied { .. } | ClientError::UntrustedServer { .. } => EXIT_NOT_AUTHORISED,
            ClientError::Connect { .. } => EXIT_FAILURE,
            ClientError::Protocol(_) | ClientError::Closed | ClientError::Unexpected(_) => EXIT_PROTOCOL,
            ClientError::Control(error) => error.exit_code(),
        }
    }

    fn from_connect(path: &Path, source: io::Error) -> Self {
        let path = path.to_path_buf();
        match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                ClientError::DaemonNotRunning { path, source }
            }
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { path, source },
            _ => ClientError::Connect { path, source },
        }
    }
}

/// One authenticated session. Not for concurrent use: one request at a time.
#[derive(Debug)]
pub struct Connection<S: Read + Write> {
    stream: S,
    welcome: Welcome,
    next_id: u64,
}

/// The uid the daemon runs as, unless the caller says otherwise.
pub const DEFAULT_SERVER_UID: u32 = 0;

impl Connection<UnixStream> {
    /// Connects to the daemon's socket, checks it is served by root, and performs the handshake.
    pub fn connect(path: &Path, client: &str, token: Option<String>) -> Result<Self, ClientError> {
        Self::connect_expecting(path, client, token, DEFAULT_SERVER_UID)
    }

    /// [`Connection::connect`] to a daemon that runs as `server_uid` (tests, non-root setups).
    pub fn connect_expecting(
        path: &Path,
        client: &str,
        token: Option<String>,
        server_uid: u32,
    ) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::from_connect(path, source))?;
        let uid = peer_uid(&stream).map_err(|source| ClientError::Connect { path: path.to_owned(), source })?;
        if uid != server_uid {
            return Err(ClientError::UntrustedServer { path: path.to_owned(), uid, expected: server_uid });
        }
        Self::handshake(stream, client, token)
    }
}

/// `SO_PEERCRED`: the uid of the process that created the listening socket, set by the kernel.
fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a valid socket fd, and `cred`/`len` describe a correctly sized ucred buffer.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

impl<S: Read + Write> Connection<S> {
    /// Sends `hello` and waits for `welcome`.
    pub fn handshake(mut stream: S, client: &str, token: Option<String>) -> Result<Self, ClientError> {
        write_frame(&mut stream, &ClientMessage::hello(client, token))?;
        match read_server_message(&mut stream).map_err(hang_up_is_closed)?.ok_or(ClientError::Closed)? {
            ServerMessage::Welcome(welcome) => Ok(Self { stream, welcome, next_id: 1 }),
            ServerMessage::Error { error } => Err(ClientError::Control(error)),
            other => Err(unexpected(&other)),
        }
    }

    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Sends one request that does not open a stream and returns its typed result.
    pub fn call(&mut self, call: Call) -> Result<Reply, ClientError> {
        if call.opens_stream() {
            return Err(ControlError::bad_request(format!("{} opens a stream: use open_stream", call.verb())).into());
        }
        let verb = call.verb();
        let id = self.send(call)?;
        let result = self.await_response(id)?;
        Reply::parse(verb, result).map_err(|err| ClientError::Unexpected(format!("{verb} result: {err}")))
    }

    /// Sends a request that opens a stream (`logs` with `follow`, `subscribe_events`).
    pub fn open_stream(&mut self, call: Call) -> Result<Stream<'_, S>, ClientError> {
        if !call.opens_stream() {
            return Err(ControlError::bad_request(format!("{} does not open a stream: use call", call.verb())).into());
        }
        let verb = call.verb();
        let id = self.send(call)?;
        let result = self.await_response(id)?;
        let reply = Reply::parse(verb, result).map_err(|err| ClientError::Unexpected(format!("{verb}: {err}")))?;
        Ok(Stream { connection: self, id, reply, ended: None })
    }

    fn send(&mut self, call: Call) -> Result<u64, ClientError> {
        call.check()?;
        let id = self.next_id;
        self.next_id += 1;
        write_frame(&mut self.stream, &ClientMessage::request(id, call))?;
        Ok(id)
    }

    fn read(&mut self) -> Result<ServerMessage, ClientError> {
        read_server_message(&mut self.stream).map_err(hang_up_is_closed)?.ok_or(ClientError::Closed)
    }

    /// Reads until the response to `id`. Stream frames of other ids belong to streams this
    /// client abandoned without cancelling and are skipped.
    fn await_response(&mut self, id: u64) -> Result<serde_json::Value, ClientError> {
        loop {
            match self.read()? {
                ServerMessage::Response(Response { id: got, outcome }) if got == id => return Ok(outcome?),
                ServerMessage::Stream { id: other, .. } | ServerMessage::StreamEnd { id: other, .. } if other != id => {
                }
                ServerMessage::Error { error } => return Err(ClientError::Control(error)),
                other => return Err(unexpected(&other)),
            }
        }
    }
}

/// An open stream. Drop it only after it ended or was cancelled, or the connection keeps
/// receiving its items (later calls skip them).
#[derive(Debug)]
pub struct Stream<'c, S: Read + Write> {
    connection: &'c mut Connection<S>,
    id: u64,
    reply: Reply,
    ended: Option<StreamEndReason>,
}

impl<S: Read + Write> Stream<'_, S> {
    /// The request id the stream belongs to.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The response that opened the stream (for `logs`, the tail so far).
    pub fn reply(&self) -> &Reply {
        &self.reply
    }

    /// Why the stream ended, once it has.
    pub fn end_reason(&self) -> Option<StreamEndReason> {
        self.ended
    }

    /// The next item; `None` once the stream has ended.
    pub fn next_item(&mut self) -> Result<Option<StreamItem>, ClientError> {
        if self.ended.is_some() {
            return Ok(None);
        }
        match self.connection.read()? {
            ServerMessage::Stream { id, item } if id == self.id => Ok(Some(item)),
            ServerMessage::StreamEnd { id, reason } if id == self.id => {
                self.ended = Some(reason);
                Ok(None)
            }
            ServerMessage::Error { error } => Err(ClientError::Control(error)),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the daemon to end the stream and reads up to its end, discarding items still
    /// in flight. Returns why it ended (`cancelled`, or an earlier reason).
    pub fn cancel(mut self) -> Result<StreamEndReason, ClientError> {
        if let Some(reason) = self.ended {
            return Ok(reason);
        }
        let cancel_id = self.connection.send(Call::Cancel(CancelArgs { id: self.id }))?;
        let mut answered = false;
        while !answered || self.ended.is_none() {
            match self.connection.read()? {
                ServerMessage::Stream { id, .. } if id == self.id => {}
                ServerMessage::StreamEnd { id, reason } if id == self.id => self.ended = Some(reason),
                ServerMessage::Response(Response { id, outcome }) if id == cancel_id => {
                    let CancelResult { cancelled } = serde_json::from_value(outcome?)
                        .map_err(|err| ClientError::Unexpected(format!("cancel result: {err}")))?;
                    if !cancelled && self.ended.is_none() {
                        return Err(ClientError::Unexpected("cancel found no open stream".to_owned()));
                    }
                    answered = true;
                }
                ServerMessage::Error { error } => return Err(ClientError::Control(error)),
                other => return Err(unexpected(&other)),
            }
        }
        Ok(self.ended.unwrap_or(StreamEndReason::Cancelled))
    }
}

fn write_frame(stream: &mut impl Write, msg: &ClientMessage) -> Result<(), ClientError> {
    let frame = encode_client_message(msg)?;
    stream.write_all(&frame).map_err(|source| hang_up_is_closed(ProtocolError::Io { op: "write", source }))?;
    stream.flush().map_err(|source| hang_up_is_closed(ProtocolError::Io { op: "flush", source }))
}

/// A daemon that went away mid-conversation is [`ClientError::Closed`], whichever
/// direction noticed first.
fn hang_up_is_closed(err: ProtocolError) -> ClientError {
    match &err {
        ProtocolError::Io { source, .. }
            if matches!(source.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset) =>
        {
            ClientError::Closed
        }
        _ => ClientError::Protocol(err),
    }
}

fn unexpected(msg: &ServerMessage) -> ClientError {
    let what = match msg {
        ServerMessage::Welcome(_) => "welcome".to_owned(),
        ServerMessage::Response(response) => format!("response to unknown request {}", response.id),
        ServerMessage::Stream { id, .. } => format!("stream item for unknown request {id}"),
        ServerMessage::StreamEnd { id, .. } => format!("stream_end for unknown request {id}"),
        ServerMessage::Error { error } => format!("error {error}"),
    };
    ClientError::Unexpected(what)
}
