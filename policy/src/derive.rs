//! manifest × policy → [`SandboxSpec`]: the pure derivation of everything one plugin
//! gets. Both inputs are re-checked first, so a value built in code cannot slip past
//! the rules `load_manifest` and `load_policy` enforce.

use crate::derive_fs;
use crate::event_limits::{RateField, MAX_EVENT_BYTES_CEILING_POINTER, MAX_EVENT_BYTES_POINTER};
use crate::layout::{HOSTNAME, PLUGIN_DIR_INSIDE, PYTHON_SDK_INSIDE, TMP_INSIDE};
use crate::limits::{KIB, MIB};
use crate::manifest::{EventRateRequest, Manifest};
use crate::manifest_checks::{CPU_POINTER, MEMORY_POINTER, PIDS_POINTER, TMP_POINTER, WALL_CLOCK_POINTER};
use crate::path_rules::{check_absolute, overlaps};
use crate::problem::{index, Problem, Problems};
use crate::runtime::{self, RuntimeChoice};
use crate::security_policy::{SeccompDefaultAction, SecurityPolicy};
use crate::spec::*;
use crate::syscall_allowlist::{self, ENOSYS_SYSCALLS};
use crate::validation::{manifest_semantic_problems, policy_semantic_problems, recheck};
use std::path::Path;

/// CFS period of the CPU quota, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The plugin's event channel fd (matches the protocol crate's `DEFAULT_CHANNEL_FD`).
pub const CHANNEL_FD: u32 = 3;
/// EPERM: the errno a denied syscall returns when the policy's action is `errno`.
const EPERM: i32 = 1;

const RLIMIT_NOFILE: u64 = 256;
const RLIMIT_MEMLOCK_BYTES: u64 = 64 * KIB;

/// Builds the effective sandbox spec of `manifest` (whose directory is `plugin_dir`, an
/// absolute host path) under `policy`, or lists every reason it cannot.
pub fn derive_spec(manifest: &Manifest, plugin_dir: &Path, policy: &SecurityPolicy) -> Result<SandboxSpec, Problems> {
    let mut problems = recheck(policy, policy_semantic_problems);
    problems.extend(recheck(manifest, |doc| manifest_semantic_problems(doc, policy)));
    problems.extend(check_plugin_dir(manifest, plugin_dir));
    problems.into_result(())?;
    build(manifest, plugin_dir, policy)
}

fn check_plugin_dir(manifest: &Manifest, plugin_dir: &Path) -> Problems {
    let mut problems = Problems::new();
    let Some(dir) = plugin_dir.to_str() else {
        problems.push(Problem::new("", "plugin directory is not valid UTF-8"));
        return problems;
    };
    if let Err(reason) = check_absolute(dir) {
        problems.push(Problem::new("", format!("plugin directory {reason}")));
        return problems;
    }
    if dir == "/" {
        problems.push(Problem::new("", "plugin directory must not be '/'"));
    }
    let pointer = "/permissions/system/filesystem/write";
    for (i, grant) in manifest.permissions.system.filesystem.write.iter().enumerate() {
        if overlaps(&grant.path, dir) {
            problems.push(Problem::new(
                format!("{}/path", index(pointer, i)),
                format!("{} overlaps the plugin directory {dir}; a plugin may not write its own files", grant.path),
            ));
        }
    }
    problems
}

/// A resource limit in manifest units and the field it came from.
fn pick(requested: Option<u64>, manifest_pointer: &str, default: u64, default_pointer: &str) -> Sourced<u64> {
    match requested {
        Some(value) => Sourced::new(value, Origin::manifest(manifest_pointer)),
        None => Sourced::new(default, Origin::policy(default_pointer)),
    }
}

/// `value × factor`, keeping the origin; overflow is a problem at `pointer`.
fn scaled(limit: &Sourced<u64>, factor: u64, divisor: u64) -> Result<Sourced<u64>, Problem> {
    limit
        .value
        .checked_mul(factor)
        .map(|v| Sourced::new(v / divisor.max(1), limit.origin.clone()))
        .ok_or_else(|| Problem::new(&limit.origin.pointer, "overflows when converted"))
}

struct Limits {
    memory_bytes: Sourced<u64>,
    cpu_quota_us: Sourced<u64>,
    pids: Sourced<u64>,
    wall_clock_ms: Sourced<u64>,
    tmp_bytes: Sourced<u64>,
    output_bytes: Sourced<u64>,
    stop_grace_ms: Sourced<u64>,
}

fn resolve_limits(manifest: &Manifest, policy: &SecurityPolicy) -> Result<Limits, Problem> {
    let r = &manifest.permissions.resources;
    let d = &policy.sandbox.defaults;
    let memory = pick(r.memory.map(|m| m.max_mb), MEMORY_POINTER, d.memory_mb, "/sandbox/defaults/memory_mb");
    let cpu = pick(r.cpu.map(|c| c.max_percent), CPU_POINTER, d.cpu_percent, "/sandbox/defaults/cpu_percent");
    let pids = pick(r.pids.map(|p| p.max), PIDS_POINTER, d.pids, "/sandbox/defaults/pids");
    let wall = pick(
        r.wall_clock.map(|w| w.max_seconds),
        WALL_CLOCK_POINTER,
        d.wall_clock_seconds,
        "/sandbox/defaults/wall_clock_seconds",
    );
    let tmp = pick(r.tmp.map(|t| t.max_mb), TMP_POINTER, d.tmp_mb, "/sandbox/defaults/tmp_mb");
    let sandbox = &policy.sandbox;
    let output = Sourced::new(sandbox.output_limit_kb, Origin::policy("/sandbox/output_limit_kb"));
    let grace = Sourced::new(sandbox.stop_grace_seconds, Origin::policy("/sandbox/stop_grace_seconds"));
    Ok(Limits {
        memory_bytes: scaled(&memory, MIB, 1)?,
        cpu_quota_us: scaled(&cpu, CPU_PERIOD_US, 100)?,
        pids,
        wall_clock_ms: scaled(&wall, 1000, 1)?,
        tmp_bytes: scaled(&tmp, MIB, 1)?,
        output_bytes: scaled(&output, KIB, 1)?,
        stop_grace_ms: scaled(&grace, 1000, 1)?,
    })
}

fn build(manifest: &Manifest, plugin_dir: &Path, policy: &SecurityPolicy) -> Result<SandboxSpec, Problems> {
    let requested = manifest.runtime.as_ref().and_then(|r| r.interpreter.as_deref());
    let runtime = runtime::select(&manifest.entry_point, requested, policy)
        .map_err(|reason| Problems::single("/runtime/interpreter", reason))?;
    let limits = resolve_limits(manifest, policy).map_err(Problems::from)?;
    let fs = derive_fs::build(manifest, plugin_dir, policy, &runtime, &limits.tmp_bytes);
    let sandbox = &policy.sandbox;
    let events = event_grants(manifest, policy);
    Ok(SandboxSpec {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        entry: entry_spec(manifest, plugin_dir, &runtime),
        namespaces: namespaces(),
        identity: IdentitySpec {
            outside_uid: Sourced::new(sandbox.identity.outside_uid, Origin::policy("/sandbox/identity/outside_uid")),
            outside_gid: Sourced::new(sandbox.identity.outside_gid, Origin::policy("/sandbox/identity/outside_gid")),
            hostname: Sourced::new(HOSTNAME.to_owned(), Origin::builtin("fixed hostname")),
        },
        mounts: fs.mounts,
        landlock: LandlockSpec { rules: fs.rules, scope_ipc_and_signals: true },
        seccomp: seccomp(policy),
        cgroup: CgroupLimits {
            memory_max_bytes: limits.memory_bytes,
            swap_max_bytes: Sourced::new(0, Origin::builtin("no swap: the memory limit is a real limit")),
            cpu_quota_us: limits.cpu_quota_us,
            cpu_period_us: Sourced::new(CPU_PERIOD_US, Origin::builtin("CFS period")),
            pids_max: limits.pids,
        },
        rlimits: rlimits(&limits.tmp_bytes),
        wall_clock_ms: limits.wall_clock_ms,
        env: environment(manifest, &runtime),
        events,
        layers: LayerRequirements {
            required: Sourced::new(sandbox.required_layers.clone(), Origin::policy("/sandbox/required_layers")),
            degradable: Sourced::new(sandbox.degradable_layers.clone(), Origin::policy("/sandbox/degradable_layers")),
        },
        output_limit_bytes: limits.output_bytes,
        stop_grace_ms: limits.stop_grace_ms,
    })
}

fn entry_spec(manifest: &Manifest, plugin_dir: &Path, runtime: &RuntimeChoice<'_>) -> EntrySpec {
    let kind = match runtime {
        RuntimeChoice::Native => Runtime::Native,
        RuntimeChoice::Interpreter { name, interpreter, .. } => Runtime::Interpreter {
            name: (*name).to_owned(),
            path: interpreter.path.clone().into(),
            args: interpreter.args.clone(),
        },
    };
    EntrySpec {
        plugin_dir: plugin_dir.to_path_buf(),
        entry_point: Sourced::new(manifest.entry_point.clone(), Origin::manifest("/entry_point")),
        runtime: Sourced::new(kind, runtime.origin()),
        plugin_dir_inside: PLUGIN_DIR_INSIDE.to_owned(),
        cwd_inside: PLUGIN_DIR_INSIDE.to_owned(),
    }
}

fn namespaces() -> Vec<Sourced<Namespace>> {
    [
        Namespace::User,
        Namespace::Pid,
        Namespace::Mount,
        Namespace::Net,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Cgroup,
    ]
    .into_iter()
    .map(|ns| Sourced::new(ns, Origin::builtin("every plugin gets all seven namespaces")))
    .collect()
}

fn seccomp(policy: &SecurityPolicy) -> SeccompSpec {
    let action = match policy.sandbox.seccomp_default_action {
        SeccompDefaultAction::Errno => SeccompAction::Errno { errno: EPERM },
        SeccompDefaultAction::Kill => SeccompAction::KillProcess,
    };
    SeccompSpec {
        default_action: Sourced::new(action, Origin::policy("/sandbox/seccomp_default_action")),
        allowed: syscall_allowlist::baseline(),
        enosys: ENOSYS_SYSCALLS.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn rlimits(tmp_bytes: &Sourced<u64>) -> Vec<RlimitSpec> {
    let fixed =
        |resource, value, why: &str| RlimitSpec { resource, soft: value, hard: value, origin: Origin::builtin(why) };
    vec![
        fixed(RlimitResource::Nofile, RLIMIT_NOFILE, "open files"),
        RlimitSpec {
            resource: RlimitResource::Fsize,
            soft: tmp_bytes.value,
            hard: tmp_bytes.value,
            origin: tmp_bytes.origin.clone(),
        },
        fixed(RlimitResource::Core, 0, "no core dumps"),
        fixed(RlimitResource::Memlock, RLIMIT_MEMLOCK_BYTES, "locked memory"),
        fixed(RlimitResource::Msgqueue, 0, "no POSIX message queues"),
    ]
}

fn event_grants(manifest: &Manifest, policy: &SecurityPolicy) -> EventGrants {
    let (read, write) = match &manifest.permissions.events {
        Some(events) => (
            Sourced::new(events.read.clone(), Origin::manifest("/permissions/events/read")),
            Sourced::new(events.write.clone(), Origin::manifest("/permissions/events/write")),
        ),
        None => {
            let none = Origin::builtin("no event grants requested");
            (Sourced::new(Vec::new(), none.clone()), Sourced::new(Vec::new(), none))
        }
    };
    let ui_render = match &manifest.permissions.system.ui {
        Some(ui) => Sourced::new(ui.render, Origin::manifest("/permissions/system/ui/render")),
        None => Sourced::new(false, Origin::builtin("ui.render not requested")),
    };
    let requested = manifest.permissions.events.as_ref();
    let max_event_bytes = match requested.and_then(|e| e.max_event_bytes) {
        Some(bytes) => Sourced::new(bytes, Origin::manifest(MAX_EVENT_BYTES_POINTER)),
        None => Sourced::new(policy.sandbox.ceilings.max_event_bytes, Origin::policy(MAX_EVENT_BYTES_CEILING_POINTER)),
    };
    EventGrants { read, write, ui_render, max_event_bytes, rate: event_rate(requested.and_then(|e| e.rate), policy) }
}

/// Each rate field from the manifest when it sets it, else the policy's default.
fn event_rate(requested: Option<EventRateRequest>, policy: &SecurityPolicy) -> EventRate {
    let r = requested.unwrap_or_default();
    let d = &policy.sandbox.defaults.event_rate;
    EventRate {
        events_per_second: rate_field(r.events_per_second, d.events_per_second, RateField::EventsPerSecond),
        burst: rate_field(r.burst, d.burst, RateField::Burst),
        bytes_per_second: rate_field(r.bytes_per_second, d.bytes_per_second, RateField::BytesPerSecond),
    }
}

fn rate_field<T>(requested: Option<T>, default: T, field: RateField) -> Sourced<T> {
    match requested {
        Some(value) => Sourced::new(value, Origin::manifest(&field.manifest_pointer())),
        None => Sourced::new(default, Origin::policy(&field.default_pointer())),
    }
}

fn environment(manifest: &Manifest, runtime: &RuntimeChoice<'_>) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH", "/usr/bin:/bin".to_owned()),
        ("HOME", TMP_INSIDE.to_owned()),
        ("LANG", "C.UTF-8".to_owned()),
        ("TMPDIR", TMP_INSIDE.to_owned()),
        ("WFSANDBOX_CHANNEL_FD", CHANNEL_FD.to_string()),
        ("WFSANDBOX_PLUGIN", manifest.name.clone()),
    ];
    if runtime.is_python() {
        env.push(("PYTHONPATH", PYTHON_SDK_INSIDE.to_owned()));
        env.push(("PYTHONDONTWRITEBYTECODE", "1".to_owned()));
        env.push(("PYTHONUNBUFFERED", "1".to_owned()));
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
#[path = "derive_tests.rs"]
mod tests;
