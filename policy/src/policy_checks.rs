//! Semantic checks of a security policy document: everything the schema cannot say.
//! An absent field takes the built-in default's value, so cross-field checks (a
//! default above a lowered ceiling) see what the policy will really contain.

use crate::event_limits::{max_event_bytes_rule, RateField, MAX_EVENT_BYTES_CEILING_POINTER};
use crate::layout::reserved_overlap;
use crate::limits::{check_limit, hard, Ceiling, LimitRule, KIB, MIB};
use crate::name_rules::{check_extension, check_interpreter_name};
use crate::path_rules::{check_absolute, is_within};
use crate::problem::{child, index, Problem, Problems};
use crate::security_policy::{SecurityPolicy, ALL_LAYERS};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::LazyLock;

static DEFAULT_DOCUMENT: LazyLock<Value> =
    LazyLock::new(|| serde_json::to_value(SecurityPolicy::default()).unwrap_or(Value::Null));

/// The policy document with the built-in default behind every absent field.
struct View<'a> {
    doc: &'a Value,
}

impl<'a> View<'a> {
    /// The value at `pointer` and whether it came from the built-in default.
    fn get(&self, pointer: &str) -> Option<(&'a Value, bool)> {
        match self.doc.pointer(pointer) {
            Some(value) => Some((value, false)),
            None => DEFAULT_DOCUMENT.pointer(pointer).map(|value| (value, true)),
        }
    }

    fn str(&self, pointer: &str) -> Option<&'a str> {
        self.get(pointer).and_then(|(v, _)| v.as_str())
    }

    fn array(&self, pointer: &str) -> &'a [Value] {
        self.get(pointer).and_then(|(v, _)| v.as_array()).map_or(&[], Vec::as_slice)
    }
}

/// Every semantic problem in the policy document `doc`.
pub fn check_policy(doc: &Value) -> Problems {
    let view = View { doc };
    let mut out = Problems::new();
    check_defaults_and_ceilings(&view, &mut out);
    check_other_numbers(&view, &mut out);
    check_layers(&view, &mut out);
    check_allowed_host_paths(&view, &mut out);
    check_runtimes(&view, &mut out);
    check_service_paths(&view, &mut out);
    check_authentication(&view, &mut out);
    check_metrics(&view, &mut out);
    out
}

/// Checks the value at `pointer` against `rule`; returns it if sound.
fn limit(view: &View<'_>, pointer: &str, rule: &LimitRule, out: &mut Problems) -> Option<u64> {
    let (value, from_default) = view.get(pointer)?;
    match check_limit(value, rule) {
        Ok(n) => Some(n),
        Err(reason) => {
            let note = if from_default { " (the built-in default; set this field explicitly)" } else { "" };
            out.push(Problem::new(pointer, format!("{reason}{note}")));
            None
        }
    }
}

fn check_defaults_and_ceilings(view: &View<'_>, out: &mut Problems) {
    let pairs: [(&str, &str, u64, &'static str, u64); 5] = [
        ("memory_mb", "max_memory_mb", MIB, "bytes", hard::MEMORY_MB),
        ("cpu_percent", "max_cpu_percent", 1000, "microseconds of quota", hard::CPU_PERCENT),
        ("pids", "max_pids", 1, "processes", hard::PIDS),
        ("wall_clock_seconds", "max_wall_clock_seconds", 1000, "milliseconds", hard::WALL_CLOCK_SECONDS),
        ("tmp_mb", "max_tmp_mb", MIB, "bytes", hard::TMP_MB),
    ];
    for (default_field, ceiling_field, unit, unit_name, hard_max) in pairs {
        let ceiling_pointer = format!("/sandbox/ceilings/{ceiling_field}");
        let ceiling_rule = LimitRule::positive(unit, unit_name, Ceiling::builtin(hard_max));
        let ceiling = limit(view, &ceiling_pointer, &ceiling_rule, out)
            .map_or(Ceiling::builtin(hard_max), |c| Ceiling::policy(c, &ceiling_pointer));
        let default_rule = LimitRule::positive(unit, unit_name, ceiling);
        limit(view, &format!("/sandbox/defaults/{default_field}"), &default_rule, out);
    }
    let event_rule = max_event_bytes_rule(Ceiling::builtin(hard::EVENT_BYTES));
    limit(view, MAX_EVENT_BYTES_CEILING_POINTER, &event_rule, out);
    for field in RateField::ALL {
        let ceiling_pointer = field.ceiling_pointer();
        let ceiling = limit(view, &ceiling_pointer, &field.builtin_rule(), out)
            .map_or(Ceiling::builtin(field.hard_max()), |c| Ceiling::policy(c, &ceiling_pointer));
        limit(view, &field.default_pointer(), &field.rule_under(ceiling), out);
    }
}

fn check_other_numbers(view: &View<'_>, out: &mut Problems) {
    let bounded = |min: u64, unit: u64, unit_name: &'static str, max: u64| LimitRule {
        min,
        unit,
        unit_name,
        ceiling: Some(Ceiling::builtin(max)),
    };
    let rules = [
        ("/sandbox/output_limit_kb", bounded(1, KIB, "bytes", hard::OUTPUT_LIMIT_KB)),
        ("/sandbox/stop_grace_seconds", bounded(0, 1000, "milliseconds", hard::STOP_GRACE_SECONDS)),
        ("/data_protection/state_quota_mb", bounded(1, MIB, "bytes", hard::MEMORY_MB)),
        ("/audit/rotate_size_mb", bounded(1, MIB, "bytes", hard::MEMORY_MB)),
        ("/audit/rotate_keep", bounded(1, 1, "files", 1000)),
        ("/compliance/min_audit_score", bounded(0, 1, "points", 100)),
        ("/authentication/session_timeout_minutes", bounded(1, 60_000, "milliseconds", 10_080)),
        ("/authentication/rate_limit/requests_per_second", bounded(1, 1, "requests", 100_000)),
        ("/authentication/rate_limit/burst", bounded(1, 1, "requests", 100_000)),
        ("/authentication/failed_auth/max_failures", bounded(1, 1, "failures", 1000)),
    ];
    for (pointer, rule) in rules {
        limit(view, pointer, &rule, out);
    }
    for pointer in ["/sandbox/identity/outside_uid", "/sandbox/identity/outside_gid"] {
        if view.get(pointer).is_some_and(|(v, _)| v.as_u64() == Some(0)) {
            out.push(Problem::new(pointer, "must not be 0: root inside the sandbox maps to an unprivileged host id"));
        } else {
            limit(view, pointer, &bounded(1, 1, "ids", u64::from(u32::MAX - 1)), out);
        }
    }
    let initial = limit(view, "/authentication/failed_auth/backoff_initial_ms", &bounded(1, 1, "ms", 3_600_000), out);
    let max = limit(view, "/authentication/failed_auth/backoff_max_ms", &bounded(1, 1, "ms", 86_400_000), out);
    if let (Some(initial), Some(max)) = (initial, max) {
        if max < initial {
            out.push(Problem::new(
                "/authentication/failed_auth/backoff_max_ms",
                format!("{max} is below /authentication/failed_auth/backoff_initial_ms ({initial})"),
            ));
        }
    }
    if view.get("/data_protection/temp/wipe_on_exit").is_some_and(|(v, _)| v == &Value::Bool(false)) {
        out.push(Problem::new(
            "/data_protection/temp/wipe_on_exit",
            "must be true: /tmp is a tmpfs that always disappears with the sandbox",
        ));
    }
}

fn check_layers(view: &View<'_>, out: &mut Problems) {
    let required = view.array("/sandbox/required_layers");
    let degradable = view.array("/sandbox/degradable_layers");
    for layer in ALL_LAYERS {
        let Ok(Value::String(name)) = serde_json::to_value(layer) else { continue };
        let is_required = required.iter().any(|v| v.as_str() == Some(&name));
        let degradable_at = degradable.iter().position(|v| v.as_str() == Some(&name));
        match (is_required, degradable_at) {
            (true, Some(i)) => out.push(Problem::new(
                index("/sandbox/degradable_layers", i),
                format!("{name} is also listed in /sandbox/required_layers; a layer is either required or degradable"),
            )),
            (false, None) => out.push(Problem::new(
                "/sandbox/required_layers",
                format!("{name} is in neither required_layers nor degradable_layers; list it in one"),
            )),
            _ => {}
        }
    }
}

/// Host subtrees that may never be granted to a plugin.
const NEVER_GRANTABLE: [&str; 3] = ["/proc", "/sys", "/dev"];

fn check_allowed_host_paths(view: &View<'_>, out: &mut Problems) {
    for (i, entry) in view.array("/sandbox/allowed_host_paths").iter().enumerate() {
        let Some(path) = entry.get("path").and_then(Value::as_str) else { continue };
        let pointer = format!("{}/path", index("/sandbox/allowed_host_paths", i));
        let verdict = check_absolute(path).and_then(|()| {
            if path == "/" {
                return Err("the whole host file system may not be grantable".to_owned());
            }
            match NEVER_GRANTABLE.iter().find(|n| is_within(path, n)) {
                Some(n) => Err(format!("{n} may never be granted to a plugin")),
                None => Ok(()),
            }
        });
        if let Err(reason) = verdict {
            out.push(Problem::new(pointer, reason));
        }
    }
}

/// A runtime path is bound at the same place inside, so it may not cover a reserved one.
fn check_runtime_path(pointer: &str, path: &str, out: &mut Problems) {
    let verdict = check_absolute(path).and_then(|()| match reserved_overlap(path) {
        Some(reserved) => Err(format!("{path} overlaps {reserved}, which the sandbox reserves")),
        None => Ok(()),
    });
    if let Err(reason) = verdict {
        out.push(Problem::new(pointer, reason));
    }
}

fn check_runtimes(view: &View<'_>, out: &mut Problems) {
    let native = "/sandbox/runtimes/native/paths";
    for (i, path) in view.array(native).iter().enumerate() {
        if let Some(path) = path.as_str() {
            check_runtime_path(&index(native, i), path, out);
        }
    }
    let Some((Value::Object(interpreters), _)) = view.get("/sandbox/runtimes/interpreters") else { return };
    let mut claimed: Vec<(&str, String)> = Vec::new();
    for (name, interpreter) in interpreters {
        let at = child("/sandbox/runtimes/interpreters", name);
        if let Err(reason) = check_interpreter_name(name) {
            out.push(Problem::new(&at, format!("interpreter name {reason}")));
        }
        let paths: Vec<&str> = array_of_str(interpreter, "paths");
        for (i, path) in paths.iter().enumerate() {
            check_runtime_path(&index(&format!("{at}/paths"), i), path, out);
        }
        if let Some(binary) = interpreter.get("path").and_then(Value::as_str) {
            let verdict = check_absolute(binary).and_then(|()| {
                if paths.iter().any(|p| is_within(binary, p)) {
                    Ok(())
                } else {
                    Err(format!("{binary} is not within any of {at}/paths, so it would not exist inside the sandbox"))
                }
            });
            if let Err(reason) = verdict {
                out.push(Problem::new(format!("{at}/path"), reason));
            }
        }
        for (i, arg) in array_of_str(interpreter, "args").iter().enumerate() {
            if arg.contains('\0') {
                out.push(Problem::new(index(&format!("{at}/args"), i), "must not contain a NUL byte"));
            }
        }
        for (i, ext) in array_of_str(interpreter, "extensions").iter().enumerate() {
            let pointer = index(&format!("{at}/extensions"), i);
            if let Err(reason) = check_extension(ext) {
                out.push(Problem::new(pointer, reason));
            } else if let Some((_, owner)) = claimed.iter().find(|(e, _)| e == ext) {
                out.push(Problem::new(pointer, format!("{ext} is already claimed at {owner}")));
            } else {
                claimed.push((ext, pointer));
            }
        }
    }
}

fn array_of_str<'a>(object: &'a Value, field: &str) -> Vec<&'a str> {
    object.get(field).and_then(Value::as_array).map_or(Vec::new(), |a| a.iter().filter_map(Value::as_str).collect())
}

fn check_service_paths(view: &View<'_>, out: &mut Problems) {
    for pointer in ["/audit/path", "/data_protection/state_dir", "/sandbox/cgroup_parent"] {
        let Some(path) = view.str(pointer) else { continue };
        let verdict = check_absolute(path).and_then(|()| match path {
            "/" => Err("must not be '/'".to_owned()),
            _ => Ok(()),
        });
        if let Err(reason) = verdict {
            out.push(Problem::new(pointer, reason));
        }
    }
}

fn check_authentication(view: &View<'_>, out: &mut Problems) {
    let pointer = "/authentication/token_sha256";
    for (i, hash) in view.array(pointer).iter().enumerate() {
        let Some(hash) = hash.as_str() else { continue };
        let is_hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_hex {
            out.push(Problem::new(index(pointer, i), "must be a SHA-256 hash: 64 lowercase hex digits, never a token"));
        }
    }
    let group = view.doc.pointer("/authentication/socket_group").filter(|v| !v.is_null());
    match (view.str("/authentication/socket_mode"), group) {
        (Some("0660"), None) => out.push(Problem::new(
            "/authentication/socket_group",
            "socket_mode \"0660\" opens the socket to a group: name it (socket_group)",
        )),
        (Some(mode), Some(_)) if mode != "0660" => out.push(Problem::new(
            "/authentication/socket_group",
            "a socket_group is only used with socket_mode \"0660\"",
        )),
        _ => {}
    }
}

fn check_metrics(view: &View<'_>, out: &mut Problems) {
    let Some(listen) = view.str("/metrics/listen") else { return };
    let localhost_only = view.get("/network/localhost_only").is_some_and(|(v, _)| v == &Value::Bool(true));
    let reason = match listen.parse::<SocketAddr>() {
        Err(_) => "must be address:port, e.g. 127.0.0.1:9464 or [::1]:9464".to_owned(),
        Ok(addr) if localhost_only && !addr.ip().is_loopback() => {
            format!("{} is not a loopback address and /network/localhost_only is true", addr.ip())
        }
        Ok(_) => return,
    };
    out.push(Problem::new("/metrics/listen", reason));
}

#[cfg(test)]
#[path = "policy_checks_tests.rs"]
mod tests;
