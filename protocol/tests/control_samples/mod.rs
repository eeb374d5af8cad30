//! Sample values of every control message, verb, result and error, shared by the control
//! test binaries.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{Read, Write};
use wf_protocol::control::{
    encode_server_message, next_client_message, request_decoder, Call, CancelArgs, CancelResult, ClientMessage,
    ControlError, CpuStats, EventCounters, EventItem, ExitCause, ExitSummary, ListArgs, ListResult, LoadArgs,
    LoadResult, LogChunk, LogStream, LogsArgs, LogsResult, ManifestSource, MemoryStats, NameArgs, PidsStats,
    PluginState, PluginStats, PluginStatus, PluginSummary, Problem, ProcessStats, PublishArgs, PublishResult,
    ReloadPolicyArgs, ReloadPolicyResult, Reply, Request, Rights, ServerMessage, ShutdownArgs, ShutdownResult,
    StartArgs, StatsArgs, StatsResult, StopArgs, SubscribeEventsArgs, SubscribeResult, ValidateArgs, ValidateResult,
    Verb, Violation, ViolationsArgs, ViolationsResult, Welcome,
};

pub fn frame_of(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

pub fn body_of(frame: &[u8]) -> &[u8] {
    &frame[4..]
}

pub fn inline_manifest() -> ManifestSource {
    ManifestSource::Inline {
        document: json!({"name": "energy_monitor", "version": "1.0.0", "entry_point": "main.py",
                         "permissions": {"events": {"read": ["energy.update"], "write": ["ui.render"]}}}),
        plugin_dir: "/opt/plugins/energy".into(),
    }
}

pub fn path_manifest() -> ManifestSource {
    ManifestSource::Path("/opt/plugins/energy/manifest.json".into())
}

/// At least one call per verb (some verbs several shapes), in `Verb::ALL` order of first use.
pub fn sample_calls() -> Vec<Call> {
    vec![
        Call::Load(LoadArgs { manifest: path_manifest() }),
        Call::Load(LoadArgs { manifest: inline_manifest() }),
        Call::Validate(ValidateArgs { manifest: inline_manifest() }),
        Call::Start(StartArgs::Manifest(path_manifest())),
        Call::Start(StartArgs::Name("energy_monitor".into())),
        Call::Stop(StopArgs { name: "energy_monitor".into(), grace_ms: Some(2500) }),
        Call::Stop(StopArgs { name: "energy_monitor".into(), grace_ms: None }),
        Call::Restart(NameArgs { name: "energy_monitor".into() }),
        Call::List(ListArgs {}),
        Call::Status(NameArgs { name: "energy_monitor".into() }),
        Call::Logs(LogsArgs { name: "energy_monitor".into(), follow: false, tail_bytes: Some(4096) }),
        Call::Logs(LogsArgs { name: "energy_monitor".into(), follow: true, tail_bytes: None }),
        Call::Stats(StatsArgs { name: None }),
        Call::Stats(StatsArgs { name: Some("energy_monitor".into()) }),
        Call::Publish(PublishArgs {
            topic: "energy.update".into(),
            payload: json!({"watts": 42.5, "tags": ["ü", "\"]}"], "n": null, "big": u64::MAX}),
        }),
        Call::SubscribeEvents(SubscribeEventsArgs::default()),
        Call::SubscribeEvents(SubscribeEventsArgs {
            topics: Some(vec!["ui.render".into(), "energy.update".into()]),
            backlog: 10,
            follow: false,
        }),
        Call::ListViolations(ViolationsArgs::default()),
        Call::ListViolations(ViolationsArgs { name: Some("energy_monitor".into()), limit: Some(5), follow: false }),
        Call::ListViolations(ViolationsArgs { name: None, limit: Some(1), follow: true }),
        Call::ReloadPolicy(ReloadPolicyArgs { path: None }),
        Call::ReloadPolicy(ReloadPolicyArgs { path: Some("/etc/wfsandbox/policy.json".into()) }),
        Call::Shutdown(ShutdownArgs {}),
        Call::Cancel(CancelArgs { id: 7 }),
        Call::Release(NameArgs { name: "energy_monitor".into() }),
    ]
}

pub fn summary(state: PluginState) -> PluginSummary {
    PluginSummary {
        name: "energy_monitor".into(),
        version: "1.0.0".into(),
        state,
        pid: if state == PluginState::Running { Some(4242) } else { None },
        instance: Some("energy_monitor-7f3a".into()),
        restarts: 2,
        since_ms: 1_733_000_000_000,
    }
}

pub fn problem() -> Problem {
    Problem { pointer: "/permissions/system/filesystem/read/0".into(), reason: "path does not exist".into() }
}

pub fn violation() -> Violation {
    Violation {
        time_ms: 1_733_000_000_123,
        plugin: "energy_monitor".into(),
        instance: "energy_monitor-7f3a".into(),
        layer: "seccomp".into(),
        kind: "syscall_denied".into(),
        detail: json!({"syscall": "ptrace", "args": [0, 1]}),
        rule: "seccomp allowlist".into(),
        action: "kill".into(),
    }
}

pub fn log_chunk() -> LogChunk {
    LogChunk { stream: LogStream::Stderr, time_ms: 1_733_000_000_500, text: "warning: \u{fffd} odd byte\n".into() }
}

pub fn event_item() -> EventItem {
    EventItem {
        topic: "ui.render".into(),
        payload: json!({"widget": "energy", "text": "42.5 W"}),
        sender: "plugin:energy_monitor".into(),
        time_ms: 1_733_000_000_600,
        payload_dropped: false,
    }
}

pub fn plugin_stats() -> PluginStats {
    PluginStats {
        name: "energy_monitor".into(),
        state: PluginState::Running,
        memory: Some(MemoryStats {
            current: 1 << 20,
            peak: Some(2 << 20),
            limit: Some(64 << 20),
            oom_kills: 0,
            limit_hits: 0,
            swap_max: Some(0),
        }),
        cpu: Some(CpuStats { usage_usec: 12_000, nr_periods: 10, nr_throttled: 1, throttled_usec: 500 }),
        pids: Some(PidsStats { current: 3, max: Some(16), max_events: 0 }),
        processes: vec![ProcessStats { pid: 4242, rss_bytes: 900_000, threads: 1, fds: 5 }],
    }
}

/// One reply per verb, in `Verb::ALL` order.
pub fn sample_replies() -> Vec<Reply> {
    vec![
        Reply::Load(LoadResult { plugin: summary(PluginState::Validated), warnings: vec![problem()] }),
        Reply::Validate(ValidateResult { name: "energy_monitor".into(), version: "1.0.0".into(), warnings: vec![] }),
        Reply::Start(summary(PluginState::Running)),
        Reply::Stop(summary(PluginState::Stopped)),
        Reply::Restart(summary(PluginState::Running)),
        Reply::List(ListResult { plugins: vec![summary(PluginState::Running), summary(PluginState::Crashed)] }),
        Reply::Status(PluginStatus {
            plugin: summary(PluginState::Crashed),
            manifest_path: Some("/opt/plugins/energy/manifest.json".into()),
            plugin_dir: "/opt/plugins/energy".into(),
            last_exit: Some(ExitSummary { cause: ExitCause::Signaled, code: None, signal: Some(9), time_ms: 1 }),
            next_restart_ms: Some(1_733_000_002_000),
            enforcement: Some(json!({"seccomp": {"status": "enforced"}, "no_new_privs": true})),
            events: Some(EventCounters {
                published: 40,
                refused: 1,
                delivered: 12,
                dropped_full: 3,
                dropped_too_large: 0,
                subscriptions: vec!["energy.update".into()],
            }),
        }),
        Reply::Logs(LogsResult { chunks: vec![log_chunk()], dropped_bytes: 17 }),
        Reply::Stats(StatsResult { plugins: vec![plugin_stats()] }),
        Reply::Publish(PublishResult { delivered: 3 }),
        Reply::SubscribeEvents(SubscribeResult { topics: Some(vec!["ui.render".into()]) }),
        Reply::ListViolations(ViolationsResult { violations: vec![violation()], truncated: true }),
        Reply::ReloadPolicy(ReloadPolicyResult { path: "/etc/wfsandbox/policy.json".into(), warnings: vec![] }),
        Reply::Shutdown(ShutdownResult { stopping: 2 }),
        Reply::Cancel(CancelResult { cancelled: true }),
        Reply::Release(summary(PluginState::Stopped)),
    ]
}

/// One error per code, in `ErrorCode::ALL` order.
pub fn sample_errors() -> Vec<ControlError> {
    vec![
        ControlError::bad_request("args.grace_ms: must be at most 600000"),
        ControlError::unknown_verb("frobnicate"),
        ControlError::unsupported_version(2),
        ControlError::too_large(65536),
        ControlError::not_authorised("peer uid 1000 is not allowed"),
        ControlError::AuthBackoff { message: "too many failures".into(), retry_after_ms: 4000 },
        ControlError::RateLimited { message: "slow down".into(), retry_after_ms: 20 },
        ControlError::SessionExpired { message: "idle for 60 minutes".into() },
        ControlError::no_such_plugin("nope"),
        ControlError::already_exists("energy_monitor"),
        ControlError::InvalidManifest { message: "1 problem".into(), problems: vec![problem()] },
        ControlError::InvalidPolicy { message: "1 problem".into(), problems: vec![problem()] },
        ControlError::Refused {
            message: "landlock is required but unavailable".into(),
            layer: Some("landlock".into()),
            step: Some("landlock_restrict_self".into()),
            errno: Some(38),
        },
        ControlError::conflict("energy_monitor", PluginState::Running, "already running"),
        ControlError::internal("cgroup read failed"),
        ControlError::shutting_down(),
    ]
}

pub fn welcome(rights: Rights) -> Welcome {
    Welcome {
        protocol: 1,
        server: "wfsandbox 0.1.0".into(),
        session: "s-0123456789abcdef".into(),
        rights,
        idle_timeout_ms: 3_600_000,
    }
}

/// A scripted server on one end of a stream: answers the hello with `welcome`, then hands
/// every request to `answer` and writes what it returns. Returns the requests it saw.
pub fn serve<S: Read + Write>(
    mut stream: S,
    hello_answer: ServerMessage,
    mut answer: impl FnMut(&Request) -> Vec<ServerMessage>,
) -> Vec<Request> {
    let mut decoder = request_decoder();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    let mut greeted = false;
    loop {
        let taken = decoder.push(&pending);
        pending.drain(..taken);
        match next_client_message(&mut decoder) {
            Ok(Some(ClientMessage::Hello(_))) if !greeted => {
                greeted = true;
                let closes = !matches!(hello_answer, ServerMessage::Welcome(_));
                write(&mut stream, &hello_answer);
                if closes {
                    return seen;
                }
            }
            Ok(Some(ClientMessage::Request(request))) if greeted => {
                for reply in answer(&request) {
                    write(&mut stream, &reply);
                }
                seen.push(request);
            }
            Ok(Some(other)) => panic!("out of order: {other:?}"),
            Err(rejection) => {
                write(&mut stream, &rejection.reply());
                if rejection.close {
                    return seen;
                }
            }
            Ok(None) => {
                if decoder.bytes_wanted() > 0 && pending.is_empty() {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => return seen,
                        Ok(n) => pending.extend_from_slice(&buffer[..n]),
                    }
                }
            }
        }
    }
}

pub fn write(stream: &mut impl Write, msg: &ServerMessage) {
    let frame = encode_server_message(msg).expect("encodable server message");
    stream.write_all(&frame).expect("write to client");
}

pub fn ok(id: u64, reply: &Reply) -> ServerMessage {
    ServerMessage::Response(wf_protocol::control::Response {
        id,
        outcome: Ok(serde_json::to_value(reply).expect("reply to value")),
    })
}

pub fn value_of(msg: &impl serde::Serialize) -> Value {
    serde_json::to_value(msg).expect("to value")
}

pub fn verbs_of(calls: &[Call]) -> Vec<Verb> {
    let mut verbs: Vec<Verb> = Vec::new();
    for call in calls {
        if !verbs.contains(&call.verb()) {
            verbs.push(call.verb());
        }
    }
    verbs
}
