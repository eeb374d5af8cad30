//! The verbs that answer with one response (the streaming ones are in [`super::streams`]).

use super::broker::EventRecord;
use super::daemon::Daemon;
use crate::auth::PeerCred;
use std::sync::Arc;
use std::time::Duration;
use wf_policy::topic::topic_is_valid;
use wf_protocol::control::{
    Call, ControlError, PublishResult, Reply, ShutdownResult, StartArgs, DEFAULT_LOG_TAIL_BYTES,
    DEFAULT_VIOLATIONS_LIMIT,
};

pub async fn call(daemon: &Arc<Daemon>, peer: PeerCred, call: Call) -> Result<Reply, ControlError> {
    match call {
        Call::Load(args) => daemon.load_as(peer.uid, &args.manifest).map(Reply::Load),
        Call::Validate(args) => daemon.validate_as(peer.uid, &args.manifest).map(Reply::Validate),
        Call::Start(StartArgs::Name(name)) => daemon.start(&name).await.map(Reply::Start),
        Call::Start(StartArgs::Manifest(source)) => daemon.start_manifest_as(peer.uid, &source).await.map(Reply::Start),
        Call::Stop(args) => daemon.stop(&args.name, args.grace_ms.map(Duration::from_millis)).await.map(Reply::Stop),
        Call::Restart(args) => daemon.restart(&args.name).await.map(Reply::Restart),
        Call::Release(args) => daemon.release(&args.name).await.map(Reply::Release),
        Call::List(_) => Ok(Reply::List(daemon.list())),
        Call::Status(args) => daemon.status(&args.name).map(Reply::Status),
        Call::Logs(args) => {
            let tail = args.tail_bytes.unwrap_or(DEFAULT_LOG_TAIL_BYTES) as usize;
            daemon.logs_tail(&args.name, tail).map(|(result, _)| Reply::Logs(result))
        }
        Call::Stats(args) => daemon.stats(args.name.as_deref()).await.map(Reply::Stats),
        Call::ListViolations(args) => {
            // With `follow` the connection serves it (streams::violations); this is the plain list.
            let limit = args.limit.unwrap_or(DEFAULT_VIOLATIONS_LIMIT) as usize;
            Ok(Reply::ListViolations(daemon.violations.result(args.name.as_deref(), limit)))
        }
        Call::ReloadPolicy(args) => daemon.reload_policy_as(peer.uid, args.path.as_deref()).map(Reply::ReloadPolicy),
        Call::Shutdown(_) => {
            let stopping = daemon.active_count();
            Ok(Reply::Shutdown(ShutdownResult { stopping }))
        }
        Call::Publish(_) | Call::SubscribeEvents(_) | Call::Cancel(_) => {
            Err(ControlError::internal("publish and the streaming verbs are served by the connection"))
        }
    }
}

/// An event from the orchestrator: the sender is who the socket says the peer is.
pub fn publish(
    daemon: &Daemon,
    peer: PeerCred,
    topic: String,
    payload: serde_json::Value,
) -> Result<Reply, ControlError> {
    if !topic_is_valid(&topic) {
        return Err(ControlError::bad_request(
            "topic: dot-separated segments, each a lowercase letter then [a-z0-9_], at most 128 bytes",
        ));
    }
    let sender = Arc::from(format!("control:{}", peer.uid));
    let event = EventRecord { topic, payload, sender, time_ms: daemon.now_ms() };
    // The request cap (64 KiB) bounds the payload well below the frame ceiling; plugins with a
    // smaller `max_event_bytes` do not get an event over it (counted as dropped for them).
    let delivered = daemon
        .broker
        .publish(event, None, wf_protocol::MAX_FRAME_BYTES_CEILING)
        .map_err(|e| ControlError::bad_request(format!("payload: {e}")))?;
    Ok(Reply::Publish(PublishResult { delivered }))
}

impl Daemon {
    /// Plugins that still have a process.
    pub fn active_count(&self) -> u32 {
        let table = self.table();
        let active = table.registry.list().iter().filter(|row| row.state.is_active()).count();
        u32::try_from(active).unwrap_or(u32::MAX)
    }
}
