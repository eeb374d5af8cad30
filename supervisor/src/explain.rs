//! `wfsandbox explain`: the effective sandbox spec a manifest gets under a policy, as
//! text for people and as JSON for tools. Every value is shown with the manifest or
//! policy field (a JSON pointer) or the built-in rule it came from.

use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write as _;
use wf_policy::spec::{
    ArgFilter, FsAccess, MountSpec, Origin, OriginSource, RlimitResource, RlimitSpec, Runtime, SandboxSpec,
    SeccompAction, Sourced, SyscallRule,
};

/// Version of the JSON shape produced by [`render_json`].
pub const EXPLAIN_FORMAT_VERSION: u32 = 1;

/// Origin shown for environment variables: the spec fixes them, nothing is inherited.
const ENV_ORIGIN: &str = "sandbox environment; nothing is inherited from the host";

/// Width the unfiltered syscall names are wrapped at in text output.
const WRAP_COLUMNS: usize = 96;

// ---------------------------------------------------------------- JSON

/// The spec as JSON: `{"format": 1, "plugin": ..., "namespaces": [...], ...}`. Each
/// decided value is `{"value": ..., "from": {"source": "manifest"|"policy"|"builtin",
/// "pointer": ...}}`; list entries carry their own `"from"`.
pub fn render_json(spec: &SandboxSpec) -> Value {
    json!({
        "format": EXPLAIN_FORMAT_VERSION,
        "plugin": {"name": spec.name, "version": spec.version},
        "entry": {
            "plugin_dir": spec.entry.plugin_dir,
            "plugin_dir_inside": spec.entry.plugin_dir_inside,
            "cwd_inside": spec.entry.cwd_inside,
            "entry_point": sourced(&spec.entry.entry_point),
            "runtime": sourced(&spec.entry.runtime),
        },
        "namespaces": spec.namespaces.iter().map(|ns| json!({"namespace": to_json(&ns.value), "from": ns.origin})).collect::<Vec<_>>(),
        "identity": {
            "outside_uid": sourced(&spec.identity.outside_uid),
            "outside_gid": sourced(&spec.identity.outside_gid),
            "hostname": sourced(&spec.identity.hostname),
        },
        "mounts": spec.mounts.iter().map(mount_json).collect::<Vec<_>>(),
        "landlock": {
            "rules": spec.landlock.rules.iter()
                .map(|r| json!({"path": r.inside, "access": to_json(&r.access), "from": r.origin}))
                .collect::<Vec<_>>(),
            "scope_ipc_and_signals": spec.landlock.scope_ipc_and_signals,
        },
        "seccomp": {
            "default_action": sourced(&spec.seccomp.default_action),
            "allowed": spec.seccomp.allowed.iter().map(syscall_json).collect::<Vec<_>>(),
            "enosys": spec.seccomp.enosys,
        },
        "cgroup": {
            "memory_max_bytes": sourced(&spec.cgroup.memory_max_bytes),
            "swap_max_bytes": sourced(&spec.cgroup.swap_max_bytes),
            "cpu_quota_us": sourced(&spec.cgroup.cpu_quota_us),
            "cpu_period_us": sourced(&spec.cgroup.cpu_period_us),
            "pids_max": sourced(&spec.cgroup.pids_max),
        },
        "rlimits": spec.rlimits.iter().map(rlimit_json).collect::<Vec<_>>(),
        "wall_clock_ms": sourced(&spec.wall_clock_ms),
        "events": {
            "read": sourced(&spec.events.read),
            "write": sourced(&spec.events.write),
            "ui_render": sourced(&spec.events.ui_render),
            "max_event_bytes": sourced(&spec.events.max_event_bytes),
            "rate": {
                "events_per_second": sourced(&spec.events.rate.events_per_second),
                "burst": sourced(&spec.events.rate.burst),
                "bytes_per_second": sourced(&spec.events.rate.bytes_per_second),
            },
        },
        "layers": {
            "required": sourced(&spec.layers.required),
            "degradable": sourced(&spec.layers.degradable),
        },
        "env": spec.env.iter()
            .map(|(name, value)| json!({"name": name, "value": value, "from": Origin::builtin(ENV_ORIGIN)}))
            .collect::<Vec<_>>(),
        "output_limit_bytes": sourced(&spec.output_limit_bytes),
        "stop_grace_ms": sourced(&spec.stop_grace_ms),
    })
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn sourced<T: Serialize>(value: &Sourced<T>) -> Value {
    json!({"value": to_json(&value.value), "from": value.origin})
}

fn mount_json(mount: &MountSpec) -> Value {
    match mount {
        MountSpec::RuntimeBind { host, origin } => {
            json!({"kind": "runtime_bind", "inside": host, "host": host, "writable": false, "from": origin})
        }
        MountSpec::PluginDir { host, inside, origin } => {
            json!({"kind": "plugin_dir", "inside": inside, "host": host, "writable": false, "from": origin})
        }
        MountSpec::HostBind { host, inside, writable, optional, origin } => json!({
            "kind": "host_bind", "inside": inside, "host": host, "writable": writable, "optional": optional, "from": origin
        }),
        MountSpec::Tmpfs { inside, size_bytes, origin } => {
            json!({"kind": "tmpfs", "inside": inside, "size_bytes": size_bytes, "writable": true, "from": origin})
        }
        MountSpec::Proc { inside, origin } => json!({"kind": "proc", "inside": inside, "from": origin}),
        MountSpec::Dev { inside, origin } => json!({"kind": "dev", "inside": inside, "from": origin}),
    }
}

fn syscall_json(rule: &SyscallRule) -> Value {
    json!({
        "name": rule.name,
        "filters": rule.filters.iter().map(|f| json!({"kind": to_json(f)["kind"], "check": filter_text(f), "detail": to_json(f)})).collect::<Vec<_>>(),
        "from": rule.origin,
    })
}

fn rlimit_json(limit: &RlimitSpec) -> Value {
    json!({"resource": to_json(&limit.resource), "soft": limit.soft, "hard": limit.hard, "from": limit.origin})
}

// ---------------------------------------------------------------- text

/// The spec as aligned text, one decided value per line with `[source pointer]`.
pub fn render_text(spec: &SandboxSpec) -> String {
    let mut out = Text::default();
    write_plugin(&mut out, spec);
    write_namespaces(&mut out, spec);
    write_mounts(&mut out, spec);
    write_landlock(&mut out, spec);
    write_seccomp(&mut out, spec);
    write_resources(&mut out, spec);
    write_events(&mut out, spec);
    write_layers_and_env(&mut out, spec);
    out.render()
}

/// Text output collected per section, so each section's columns can be aligned.
#[derive(Default)]
struct Text {
    sections: Vec<(String, Vec<Row>)>,
}

enum Row {
    /// `label  value  [origin]`
    Line {
        label: String,
        value: String,
        origin: String,
    },
    Plain(String),
}

/// Widest label and value columns before a row simply overflows its column.
const MAX_LABEL_COLUMNS: usize = 26;
const MAX_VALUE_COLUMNS: usize = 48;

impl Text {
    fn heading(&mut self, title: &str) {
        self.sections.push((title.to_owned(), Vec::new()));
    }

    fn push(&mut self, row: Row) {
        match self.sections.last_mut() {
            Some((_, rows)) => rows.push(row),
            None => self.sections.push((String::new(), vec![row])),
        }
    }

    fn line(&mut self, label: &str, value: &str, origin: &Origin) {
        self.push(Row::Line { label: label.to_owned(), value: value.to_owned(), origin: origin_text(origin) });
    }

    fn plain(&mut self, text: &str) {
        self.push(Row::Plain(text.to_owned()));
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (i, (title, rows)) in self.sections.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let _ = writeln!(out, "{title}");
            let widest = |pick: fn(&Row) -> usize, cap: usize| rows.iter().map(pick).filter(|w| *w <= cap).max();
            let label_width =
                widest(|r| if let Row::Line { label, .. } = r { label.chars().count() } else { 0 }, MAX_LABEL_COLUMNS)
                    .unwrap_or(0);
            let value_width =
                widest(|r| if let Row::Line { value, .. } = r { value.chars().count() } else { 0 }, MAX_VALUE_COLUMNS)
                    .unwrap_or(0);
            for row in rows {
                match row {
                    Row::Line { label, value, origin } => {
                        let _ = writeln!(out, "  {label:<label_width$}  {value:<value_width$}  {origin}");
                    }
                    Row::Plain(text) => {
                        let _ = writeln!(out, "  {text}");
                    }
                }
            }
        }
        out
    }
}

/// `[manifest /pointer]`, `[policy /pointer]` or `[builtin: why]`.
pub fn origin_text(origin: &Origin) -> String {
    match origin.source {
        OriginSource::Manifest => format!("[manifest {}]", origin.pointer),
        OriginSource::Policy => format!("[policy {}]", origin.pointer),
        OriginSource::Builtin => format!("[builtin: {}]", origin.pointer),
    }
}

fn bytes_text(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    match bytes {
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= 1024 && b % 1024 == 0 => format!("{} KiB", b / 1024),
        b => format!("{b} bytes"),
    }
}

fn duration_text(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

fn list_text(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

fn write_plugin(out: &mut Text, spec: &SandboxSpec) {
    out.heading(&format!("Plugin {} {}", spec.name, spec.version));
    let entry = &spec.entry;
    let dir = format!("{} at {} (read-only)", entry.plugin_dir.display(), entry.plugin_dir_inside);
    out.line("directory", &dir, &Origin::builtin("the manifest's directory"));
    out.line("entry point", &entry.entry_point.value, &entry.entry_point.origin);
    let runtime = match &entry.runtime.value {
        Runtime::Native => "native executable".to_owned(),
        Runtime::Interpreter { name, path, args } => {
            format!("{name}: {} {}", path.display(), args.join(" ")).trim_end().to_owned()
        }
    };
    out.line("runtime", &runtime, &entry.runtime.origin);
    out.line("working dir", &entry.cwd_inside, &Origin::builtin("the plugin directory"));
}

fn write_namespaces(out: &mut Text, spec: &SandboxSpec) {
    out.heading("Namespaces");
    for ns in &spec.namespaces {
        let name = to_json(&ns.value).as_str().unwrap_or("?").to_owned();
        out.line(&name, "new", &ns.origin);
    }
    let id = &spec.identity;
    out.line("outside uid", &format!("root inside = uid {}", id.outside_uid.value), &id.outside_uid.origin);
    out.line("outside gid", &format!("root inside = gid {}", id.outside_gid.value), &id.outside_gid.origin);
    out.line("hostname", &id.hostname.value, &id.hostname.origin);
}

fn write_mounts(out: &mut Text, spec: &SandboxSpec) {
    out.heading("Mounts (in order, on an empty read-only root)");
    for mount in &spec.mounts {
        let (inside, what, origin) = match mount {
            MountSpec::RuntimeBind { host, origin } => {
                (host.display().to_string(), format!("read-only bind of {}", host.display()), origin)
            }
            MountSpec::PluginDir { host, inside, origin } => {
                (inside.clone(), format!("read-only bind of {}", host.display()), origin)
            }
            MountSpec::HostBind { host, inside, writable, optional, origin } => {
                let mode = if *writable { "read-write" } else { "read-only" };
                let opt = if *optional { ", optional" } else { "" };
                (inside.clone(), format!("{mode} bind of {}{opt}", host.display()), origin)
            }
            MountSpec::Tmpfs { inside, size_bytes, origin } => {
                (inside.clone(), format!("private tmpfs, {}", bytes_text(*size_bytes)), origin)
            }
            MountSpec::Proc { inside, origin } => (inside.clone(), "procfs of the pid namespace".to_owned(), origin),
            MountSpec::Dev { inside, origin } => (inside.clone(), "minimal device files".to_owned(), origin),
        };
        out.line(&inside, &what, origin);
    }
}

fn access_text(access: FsAccess) -> &'static str {
    match access {
        FsAccess::Read => "read",
        FsAccess::ReadExec => "read + execute",
        FsAccess::ReadWrite => "read + write (no execute)",
    }
}

fn write_landlock(out: &mut Text, spec: &SandboxSpec) {
    out.heading("Landlock (everything not listed is denied)");
    for rule in &spec.landlock.rules {
        out.line(&rule.inside, access_text(rule.access), &rule.origin);
    }
    let scoped = if spec.landlock.scope_ipc_and_signals { "yes" } else { "no" };
    out.plain(&format!("abstract Unix sockets and signals scoped to the sandbox: {scoped}"));
}

fn filter_text(filter: &ArgFilter) -> String {
    match filter {
        ArgFilter::OneOf { index, names, .. } => format!("arg{index} is one of {}", names.join(", ")),
        ArgFilter::NoneOf { index, names, .. } => format!("arg{index} is none of {}", names.join(", ")),
        ArgFilter::MaskClear { index, mask, names } => {
            format!("arg{index} has none of {} (mask {mask:#x})", names.join(" | "))
        }
    }
}

fn write_seccomp(out: &mut Text, spec: &SandboxSpec) {
    let seccomp = &spec.seccomp;
    out.heading(&format!("Seccomp allowlist ({} syscalls; architecture checked, x32 rejected)", seccomp.allowed.len()));
    let action = match seccomp.default_action.value {
        SeccompAction::Errno { errno: 1 } => "fail with EPERM (errno 1)".to_owned(),
        SeccompAction::Errno { errno } => format!("fail with errno {errno}"),
        SeccompAction::KillProcess => "kill the process".to_owned(),
    };
    out.line("other calls", &action, &seccomp.default_action.origin);
    let mut groups: Vec<(&Origin, Vec<&str>)> = Vec::new();
    for rule in seccomp.allowed.iter().filter(|r| r.filters.is_empty()) {
        match groups.iter_mut().find(|(origin, _)| *origin == &rule.origin) {
            Some((_, names)) => names.push(&rule.name),
            None => groups.push((&rule.origin, vec![&rule.name])),
        }
    }
    for (origin, names) in groups {
        out.plain(&format!("allowed {}:", origin_text(origin)));
        for line in wrap(&names, WRAP_COLUMNS) {
            out.plain(&format!("  {line}"));
        }
    }
    for rule in seccomp.allowed.iter().filter(|r| !r.filters.is_empty()) {
        let checks: Vec<String> = rule.filters.iter().map(filter_text).collect();
        let condition = format!("only if {}", checks.join(" and "));
        let words: Vec<&str> = condition.split(' ').collect();
        let mut lines = wrap(&words, WRAP_COLUMNS).into_iter();
        out.line(&rule.name, &lines.next().unwrap_or_default(), &rule.origin);
        for line in lines {
            out.plain(&format!("    {line}"));
        }
    }
    if !seccomp.enosys.is_empty() {
        let why = Origin::builtin("libc falls back to calls the allowlist filters");
        out.line("ENOSYS", &seccomp.enosys.join(", "), &why);
    }
}

fn wrap(words: &[&str], width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in words {
        let current = lines.last_mut().map_or(0, |l| l.len());
        if current > 0 && current + 1 + word.len() > width {
            lines.push(String::new());
        }
        if let Some(line) = lines.last_mut() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

fn write_resources(out: &mut Text, spec: &SandboxSpec) {
    let c = &spec.cgroup;
    out.heading("Cgroup limits");
    out.line("memory", &bytes_text(c.memory_max_bytes.value), &c.memory_max_bytes.origin);
    out.line("swap", &bytes_text(c.swap_max_bytes.value), &c.swap_max_bytes.origin);
    let percent = c.cpu_quota_us.value.saturating_mul(100) / c.cpu_period_us.value.max(1);
    let cpu = format!("{percent}% of one CPU ({} µs per {} µs)", c.cpu_quota_us.value, c.cpu_period_us.value);
    out.line("cpu", &cpu, &c.cpu_quota_us.origin);
    out.line("pids", &c.pids_max.value.to_string(), &c.pids_max.origin);
    out.heading("Rlimits (soft / hard)");
    for limit in &spec.rlimits {
        let name = to_json(&limit.resource).as_str().unwrap_or("?").to_owned();
        let amount = |n: u64| match limit.resource {
            RlimitResource::Fsize
            | RlimitResource::Memlock
            | RlimitResource::Msgqueue
            | RlimitResource::Stack
            | RlimitResource::As => bytes_text(n),
            _ => n.to_string(),
        };
        out.line(&name, &format!("{} / {}", amount(limit.soft), amount(limit.hard)), &limit.origin);
    }
    out.heading("Time and output");
    out.line("wall clock", &duration_text(spec.wall_clock_ms.value), &spec.wall_clock_ms.origin);
    out.line("stop grace", &duration_text(spec.stop_grace_ms.value), &spec.stop_grace_ms.origin);
    out.line("output", &bytes_text(spec.output_limit_bytes.value), &spec.output_limit_bytes.origin);
}

fn write_events(out: &mut Text, spec: &SandboxSpec) {
    let e = &spec.events;
    out.heading("Event topics");
    out.line("read", &list_text(&e.read.value), &e.read.origin);
    out.line("write", &list_text(&e.write.value), &e.write.origin);
    out.line("ui.render", if e.ui_render.value { "yes" } else { "no" }, &e.ui_render.origin);
    out.line("max event", &bytes_text(u64::from(e.max_event_bytes.value)), &e.max_event_bytes.origin);
    let rate = &e.rate;
    out.line("publish rate", &format!("{} events/s", rate.events_per_second.value), &rate.events_per_second.origin);
    out.line("publish burst", &format!("{} events", rate.burst.value), &rate.burst.origin);
    out.line("channel read", &format!("{}/s", bytes_text(rate.bytes_per_second.value)), &rate.bytes_per_second.origin);
}

fn write_layers_and_env(out: &mut Text, spec: &SandboxSpec) {
    let layer_names = |layers: &[wf_policy::spec::Layer]| -> Vec<String> {
        layers.iter().map(|l| to_json(l).as_str().unwrap_or("?").to_owned()).collect()
    };
    out.heading("Layers");
    out.line("required", &list_text(&layer_names(&spec.layers.required.value)), &spec.layers.required.origin);
    out.line("degradable", &list_text(&layer_names(&spec.layers.degradable.value)), &spec.layers.degradable.origin);
    out.heading("Environment (nothing inherited from the host)");
    for (name, value) in &spec.env {
        out.plain(&format!("{name}={value}"));
    }
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;
