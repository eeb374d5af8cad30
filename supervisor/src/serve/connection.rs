//! One control-socket connection (docs/protocol.md §2): the peer is who `SO_PEERCRED` says,
//! the first frame must be a `hello` within [`HELLO_TIMEOUT_MS`], then requests are answered
//! by their own tasks (at most [`MAX_IN_FLIGHT`] at once; beyond that the connection is not
//! read, which is the client's back-pressure).
//!
//! Everything the daemon sends goes through one byte-bounded queue ([`Outbox`]) to a writer
//! task, so a client that does not read stalls only its own requests, and its streams end
//! `lagged`. Requests whose reply may be large are answered one at a time, each only once the
//! previous one is queued, so a client that does not read pins at most [`OUTBOX_BYTES`] plus
//! one reply being built (≤ `MAX_RESPONSE_BYTES` encoded) plus the small replies of the other
//! requests in flight.
//!
//! Connection, session and stream slots are shared out per uid ([`peer_limits`]).

mod peer_limits;

use super::daemon::{shutting_down, Daemon};
use super::dispatch;
#[cfg(doc)]
use super::outbox::OUTBOX_BYTES;
use super::outbox::{outbox, Outbox, OutboxQueue};
use super::streams::{self, OpenStreams};
use crate::auth::{self, AuthError, AuthLimits, PeerCred, Session};
pub use peer_limits::{ConnectionSlot, PeerLimits};
use peer_limits::{LimitError, ROOT_RESERVED_SESSIONS};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use wf_protocol::control::{
    encode_reply, encode_server_message, next_client_message, request_decoder, Call, ClientMessage, ControlError,
    Hello, Rejection, Request, Rights, ServerMessage, Verb, Welcome, CONTROL_PROTOCOL_VERSION, HELLO_TIMEOUT_MS,
};
use wf_protocol::FrameDecoder;

/// Requests of one connection being answered at once.
pub const MAX_IN_FLIGHT: usize = 32;
const READ_CHUNK: usize = 16 * 1024;

/// Serve one accepted connection of `peer`, admitted into `slot`, until it closes.
pub async fn serve(daemon: Arc<Daemon>, stream: UnixStream, peer: PeerCred, slot: ConnectionSlot) {
    let (reader, writer) = stream.into_split();
    let (outbox, queue) = outbox();
    let writer = tokio::spawn(write_frames(writer, queue));
    let mut connection = Connection {
        daemon,
        peer,
        reader,
        decoder: request_decoder(),
        buf: vec![0; READ_CHUNK],
        buffered: 0..0,
        outbox,
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        large_reply: Arc::new(Semaphore::new(1)),
        streams: OpenStreams::default(),
        slot,
    };
    if let Some(session) = connection.handshake().await {
        connection.serve_requests(&session).await;
        connection.streams.cancel_all();
        connection.daemon.sessions.remove(&session.id);
        connection.daemon.auth.close(&session);
    }
    drop(connection);
    let _ = writer.await;
}

async fn write_frames(mut writer: OwnedWriteHalf, mut queue: OutboxQueue) {
    while let Some((frame, _room)) = queue.recv().await {
        if writer.write_all(&frame).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// What the reader produced.
enum Inbound {
    Message(ClientMessage),
    Rejected(Rejection),
    Closed,
}

struct Connection {
    daemon: Arc<Daemon>,
    peer: PeerCred,
    reader: OwnedReadHalf,
    decoder: FrameDecoder,
    buf: Vec<u8>,
    buffered: std::ops::Range<usize>,
    outbox: Outbox,
    in_flight: Arc<Semaphore>,
    /// Held from building a possibly large reply until it is queued.
    large_reply: Arc<Semaphore>,
    streams: OpenStreams,
    slot: ConnectionSlot,
}

impl Connection {
    /// Read until one message is complete. Cancel-safe: bytes read stay buffered.
    async fn next_message(&mut self) -> Inbound {
        loop {
            if !self.buffered.is_empty() {
                let taken = self.decoder.push(&self.buf[self.buffered.clone()]);
                self.buffered.start += taken;
            }
            match next_client_message(&mut self.decoder) {
                Ok(Some(message)) => return Inbound::Message(message),
                Ok(None) if !self.buffered.is_empty() => continue,
                Ok(None) => {}
                Err(rejection) => return Inbound::Rejected(rejection),
            }
            match self.reader.read(&mut self.buf).await {
                Ok(0) => {
                    return match self.decoder.finish() {
                        Ok(()) => Inbound::Closed,
                        Err(e) => Inbound::Rejected(Rejection::from_protocol(&e, self.decoder.max_bytes())),
                    }
                }
                Ok(n) => self.buffered = 0..n,
                Err(_) => return Inbound::Closed,
            }
        }
    }

    async fn send(&self, message: &ServerMessage) {
        if let Ok(frame) = encode_server_message(message) {
            let _ = self.outbox.send(frame).await;
        }
    }

    async fn send_error(&self, error: ControlError) {
        self.send(&ServerMessage::Error { error }).await;
    }

    /// The `hello`: a session, or `None` after the refusal was sent.
    async fn handshake(&mut self) -> Option<Session> {
        let first = tokio::time::timeout(Duration::from_millis(HELLO_TIMEOUT_MS), self.next_message()).await;
        let hello = match first {
            Err(_) | Ok(Inbound::Closed) => return None,
            Ok(Inbound::Rejected(rejection)) => {
                self.send(&rejection.reply()).await;
                return None;
            }
            Ok(Inbound::Message(ClientMessage::Request(_))) => {
                self.send_error(ControlError::bad_request("the first frame must be a hello")).await;
                return None;
            }
            Ok(Inbound::Message(ClientMessage::Hello(hello))) => hello,
        };
        if self.daemon.is_shutting_down() {
            self.send_error(ControlError::shutting_down()).await;
            return None;
        }
        if self.sessions_full_for_peer() {
            self.send_error(auth_error(&AuthError::TooManySessions)).await;
            return None;
        }
        match self.daemon.auth.hello(self.peer, hello.token.as_deref()) {
            Ok(session) => {
                self.welcome(&session, &hello).await;
                Some(session)
            }
            Err(e) => {
                // Debug only: refusals are audited (aggregated during back-off); one log line per
                // attempt would let a spammer grow the daemon's log without bound.
                let client = crate::terminal_text::escape(&hello.client);
                tracing::debug!(uid = self.peer.uid, pid = self.peer.pid, %client, reason = ?e, "control client refused");
                self.send_error(auth_error(&e)).await;
                None
            }
        }
    }

    /// The session table's last slots are root's, so that root can always get in.
    fn sessions_full_for_peer(&self) -> bool {
        let open_to_others = AuthLimits::default().max_sessions.saturating_sub(ROOT_RESERVED_SESSIONS);
        self.peer.uid != 0 && self.daemon.auth.session_count() >= open_to_others
    }

    async fn welcome(&self, session: &Session, hello: &Hello) {
        let welcome = Welcome {
            protocol: CONTROL_PROTOCOL_VERSION.min(hello.protocol),
            server: format!("wfsandbox {}", env!("CARGO_PKG_VERSION")),
            session: session.id.as_str().to_owned(),
            rights: match session.rights {
                auth::Rights::Read => Rights::Read,
                auth::Rights::Control => Rights::Control,
            },
            idle_timeout_ms: self.idle_timeout().as_millis() as u64,
        };
        self.send(&ServerMessage::Welcome(welcome)).await;
    }

    fn idle_timeout(&self) -> Duration {
        let minutes = self.daemon.policy().policy.authentication.session_timeout_minutes;
        auth::sessions::timeout_from_minutes(minutes)
    }

    async fn serve_requests(&mut self, session: &Session) {
        let mut revoked = self.daemon.sessions.register(&session.id);
        let shutdown = self.daemon.shutdown_signal();
        let mut last_frame = Instant::now();
        loop {
            let deadline = last_frame + self.idle_timeout();
            let event = tokio::select! {
                inbound = self.next_message() => Some(inbound),
                _ = tokio::time::sleep_until(deadline) => None,
                _ = shutting_down(shutdown.clone()) => return,
                why = &mut revoked => {
                    if let Ok(why) = why {
                        self.send_error(why).await;
                    }
                    return;
                }
            };
            let Some(inbound) = event else {
                if self.streams.is_empty() {
                    self.send_error(ControlError::SessionExpired { message: "idle for too long".into() }).await;
                    return;
                }
                self.daemon.auth.keep_alive(session);
                last_frame = Instant::now();
                continue;
            };
            last_frame = Instant::now();
            match inbound {
                Inbound::Closed => return,
                Inbound::Rejected(rejection) => {
                    self.send(&rejection.reply()).await;
                    if rejection.close {
                        return;
                    }
                }
                Inbound::Message(ClientMessage::Hello(_)) => {
                    self.send_error(ControlError::bad_request("hello was already accepted")).await;
                }
                Inbound::Message(ClientMessage::Request(request)) => {
                    if !self.on_request(session, request).await {
                        return;
                    }
                }
            }
        }
    }

    /// Answer one request (in its own task); `false` when the connection must close.
    async fn on_request(&mut self, session: &Session, Request { id, call }: Request) -> bool {
        if !self.streams.claim_id(id) {
            self.send_error(ControlError::bad_request(format!("request id {id} is still in use"))).await;
            return true;
        }
        let verb = call.verb();
        if let Err(e) = self.daemon.auth.authorise_request(session, verb.as_str(), required_rights(verb)) {
            let expired = matches!(e, AuthError::SessionExpired);
            self.streams.release_id(id);
            let _ = self.outbox.send(encode_reply(id, Err(&auth_error(&e)))).await;
            return !expired;
        }
        if self.daemon.is_shutting_down() && verb != Verb::Cancel {
            self.streams.release_id(id);
            let _ = self.outbox.send(encode_reply(id, Err(&ControlError::shutting_down()))).await;
            return true;
        }
        let Ok(permit) = Arc::clone(&self.in_flight).acquire_owned().await else { return false };
        self.spawn_request(session, id, call, permit);
        true
    }

    fn spawn_request(&mut self, session: &Session, id: u64, call: Call, permit: OwnedSemaphorePermit) {
        let daemon = Arc::clone(&self.daemon);
        let outbox = self.outbox.clone();
        let streams = self.streams.clone();
        let peer = session.peer;
        match call {
            Call::Cancel(args) => {
                tokio::spawn(async move {
                    let cancelled = streams.cancel(args.id).await;
                    let reply = wf_protocol::control::Reply::Cancel(wf_protocol::control::CancelResult { cancelled });
                    let _ = outbox.send(encode_reply(id, Ok(&reply))).await;
                    streams.release_id(id);
                    drop(permit);
                });
            }
            Call::SubscribeEvents(args) => {
                if let Err(e) = streams::check_patterns(args.topics.as_deref()) {
                    return answer_error(outbox, streams, id, e, permit);
                }
                let (slot, cancelled) = match self.open_stream(id) {
                    Ok(opened) => opened,
                    Err(e) => return refuse_stream(outbox, streams, id, e, permit),
                };
                tokio::spawn(async move {
                    streams::events(daemon, outbox, streams, id, args, cancelled).await;
                    drop(slot);
                });
                drop(permit);
            }
            Call::Logs(args) if args.follow => {
                let (slot, cancelled) = match self.open_stream(id) {
                    Ok(opened) => opened,
                    Err(e) => return refuse_stream(outbox, streams, id, e, permit),
                };
                tokio::spawn(async move {
                    streams::logs(daemon, outbox, streams, id, args, cancelled).await;
                    drop(slot);
                });
                drop(permit);
            }
            Call::ListViolations(args) if args.follow => {
                let (slot, cancelled) = match self.open_stream(id) {
                    Ok(opened) => opened,
                    Err(e) => return refuse_stream(outbox, streams, id, e, permit),
                };
                tokio::spawn(async move {
                    streams::violations(daemon, outbox, streams, id, args, cancelled).await;
                    drop(slot);
                });
                drop(permit);
            }
            Call::Publish(args) => {
                // Routed here, before the next request is read, so that one client's events keep
                // their order even when it does not wait for each answer (docs/protocol.md §1.7).
                let outcome = dispatch::publish(&daemon, peer, args.topic, args.payload);
                tokio::spawn(async move {
                    let _ = outbox.send(encode_reply(id, outcome.as_ref())).await;
                    streams.release_id(id);
                    drop(permit);
                });
            }
            call => {
                let large_reply = may_reply_large(call.verb()).then(|| Arc::clone(&self.large_reply));
                tokio::spawn(async move {
                    let _building = match large_reply {
                        Some(turn) => Some(turn.acquire_owned().await),
                        None => None,
                    };
                    let outcome = dispatch::call(&daemon, peer, call).await;
                    let _ = outbox.send(encode_reply(id, outcome.as_ref())).await;
                    streams.release_id(id);
                    drop(permit);
                    if let Ok(wf_protocol::control::Reply::Shutdown(_)) = outcome {
                        daemon.begin_shutdown();
                    }
                });
            }
        }
    }
}

impl Connection {
    /// Register stream `id` if the per-connection and per-uid caps allow.
    fn open_stream(&self, id: u64) -> Result<(peer_limits::StreamSlot, streams::Cancelled), LimitError> {
        let slot = self.slot.open_stream(self.streams.open_count())?;
        let (cancel, cancelled) = oneshot::channel();
        self.streams.opened(id, cancel);
        Ok((slot, cancelled))
    }
}

/// Answer `rate_limited` for a stream over the caps. The task keeps the in-flight permit, so
/// refusals waiting on a full outbox count against [`MAX_IN_FLIGHT`] like any request.
fn refuse_stream(outbox: Outbox, streams: OpenStreams, id: u64, error: LimitError, permit: OwnedSemaphorePermit) {
    answer_error(outbox, streams, id, too_many_streams(error), permit);
}

fn answer_error(outbox: Outbox, streams: OpenStreams, id: u64, error: ControlError, permit: OwnedSemaphorePermit) {
    tokio::spawn(async move {
        let _ = outbox.send(encode_reply(id, Err(&error))).await;
        streams.release_id(id);
        drop(permit);
    });
}

/// Verbs whose reply grows with the daemon's state (plugins, logs, violations).
fn may_reply_large(verb: Verb) -> bool {
    matches!(verb, Verb::List | Verb::Status | Verb::Logs | Verb::Stats | Verb::ListViolations | Verb::Validate)
}

fn too_many_streams(error: LimitError) -> ControlError {
    ControlError::RateLimited { message: error.to_string(), retry_after_ms: 1000 }
}

fn required_rights(verb: Verb) -> auth::Rights {
    match verb.required_rights() {
        Rights::Read => auth::Rights::Read,
        Rights::Control => auth::Rights::Control,
    }
}

/// What the peer is told; the reason of a refusal stays in the audit log.
fn auth_error(error: &AuthError) -> ControlError {
    match error {
        AuthError::NotAuthorised { .. } => ControlError::not_authorised("not authorised"),
        AuthError::Backoff { retry_after_ms } => {
            ControlError::AuthBackoff { message: "too many failed attempts".into(), retry_after_ms: *retry_after_ms }
        }
        AuthError::SessionExpired => ControlError::SessionExpired { message: "session expired; connect again".into() },
        AuthError::RateLimited { retry_after_ms } => {
            ControlError::RateLimited { message: "too many requests".into(), retry_after_ms: *retry_after_ms }
        }
        AuthError::TooManySessions => {
            ControlError::RateLimited { message: "too many open sessions".into(), retry_after_ms: 1000 }
        }
        AuthError::Entropy { .. } => ControlError::internal("no session id could be made"),
    }
}
