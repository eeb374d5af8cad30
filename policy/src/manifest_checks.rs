//! Semantic checks of a manifest document against a policy: everything the schema
//! cannot say. They run on the raw JSON value, tolerating wrong shapes (the schema
//! reports those), so one pass lists every problem.

use crate::event_limits::{manifest_max_event_bytes_rule, RateField, MAX_EVENT_BYTES_POINTER};
use crate::layout::reserved_overlap;
use crate::limits::{check_limit, Ceiling, LimitRule, MIB};
use crate::name_rules::{check_interpreter_name, check_plugin_name, check_version};
use crate::path_rules::{check_absolute, check_relative, is_within, overlaps};
use crate::problem::{index, Problem, Problems};
use crate::runtime::{self, RuntimeChoice};
use crate::security_policy::{HostPathAccess, SecurityPolicy};
use crate::topic::grant_problem;
use serde_json::Value;
use std::collections::HashSet;

pub const MEMORY_POINTER: &str = "/permissions/resources/memory/max_mb";
pub const CPU_POINTER: &str = "/permissions/resources/cpu/max_percent";
pub const PIDS_POINTER: &str = "/permissions/resources/pids/max";
pub const WALL_CLOCK_POINTER: &str = "/permissions/resources/wall_clock/max_seconds";
pub const TMP_POINTER: &str = "/permissions/resources/tmp/max_mb";
pub const NETWORK_POINTER: &str = "/permissions/system/network/enabled";
pub const FILESYSTEM_POINTER: &str = "/permissions/system/filesystem";
pub const EVENTS_POINTER: &str = "/permissions/events";

/// CPU quota microseconds per percent of one CPU (period 100 000 µs).
pub const CPU_QUOTA_US_PER_PERCENT: u64 = 1000;

/// Every semantic problem in `doc` under `policy`.
pub fn check_manifest(doc: &Value, policy: &SecurityPolicy) -> Problems {
    let mut out = Problems::new();
    check_name_and_version(doc, &mut out);
    let runtime = check_entry_and_runtime(doc, policy, &mut out);
    check_events(doc, &mut out);
    check_event_limits(doc, policy, &mut out);
    check_network(doc, &mut out);
    check_filesystem(doc, policy, runtime.as_ref(), &mut out);
    check_resources(doc, policy, &mut out);
    out
}

fn str_at<'a>(doc: &'a Value, pointer: &str) -> Option<&'a str> {
    doc.pointer(pointer).and_then(Value::as_str)
}

fn bool_at(doc: &Value, pointer: &str, default: bool) -> bool {
    doc.pointer(pointer).and_then(Value::as_bool).unwrap_or(default)
}

fn array_at<'a>(doc: &'a Value, pointer: &str) -> &'a [Value] {
    doc.pointer(pointer).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn report(out: &mut Problems, pointer: &str, result: Result<(), String>) {
    if let Err(reason) = result {
        out.push(Problem::new(pointer, reason));
    }
}

fn check_name_and_version(doc: &Value, out: &mut Problems) {
    if let Some(name) = str_at(doc, "/name") {
        report(out, "/name", check_plugin_name(name));
    }
    if let Some(version) = str_at(doc, "/version") {
        report(out, "/version", check_version(version));
    }
}

/// Checks the entry point and the runtime; returns the runtime when both are sound.
fn check_entry_and_runtime<'p>(
    doc: &Value,
    policy: &'p SecurityPolicy,
    out: &mut Problems,
) -> Option<RuntimeChoice<'p>> {
    let entry = str_at(doc, "/entry_point");
    if let Some(entry) = entry {
        report(out, "/entry_point", check_relative(entry).map_err(|e| format!("entry point {e}")));
    }
    let requested = str_at(doc, "/runtime/interpreter");
    if let Some(name) = requested {
        if let Err(reason) = check_interpreter_name(name) {
            out.push(Problem::new("/runtime/interpreter", reason));
            return None;
        }
    }
    match runtime::select(entry.unwrap_or(""), requested, policy) {
        Ok(choice) => Some(choice),
        Err(reason) => {
            out.push(Problem::new("/runtime/interpreter", reason));
            None
        }
    }
}

fn check_events(doc: &Value, out: &mut Problems) {
    for list in ["read", "write"] {
        let pointer = format!("{EVENTS_POINTER}/{list}");
        let mut seen = HashSet::new();
        for (i, item) in array_at(doc, &pointer).iter().enumerate() {
            let Some(grant) = item.as_str() else { continue };
            let at = index(&pointer, i);
            if let Some(reason) = grant_problem(grant) {
                out.push(Problem::new(at, reason));
            } else if !seen.insert(grant) {
                out.push(Problem::new(at, format!("topic {grant:?} is listed twice")));
            }
        }
    }
}

/// The largest event frame and the publish rate, each within its policy ceiling.
fn check_event_limits(doc: &Value, policy: &SecurityPolicy, out: &mut Problems) {
    if let Some(value) = doc.pointer(MAX_EVENT_BYTES_POINTER) {
        report(out, MAX_EVENT_BYTES_POINTER, check_limit(value, &manifest_max_event_bytes_rule(policy)).map(|_| ()));
    }
    for field in RateField::ALL {
        let pointer = field.manifest_pointer();
        if let Some(value) = doc.pointer(&pointer) {
            report(out, &pointer, check_limit(value, &field.manifest_rule(policy)).map(|_| ()));
        }
    }
    check_read_grant_listing(doc, policy, out);
}

/// The broker answers every subscribe with the whole subscription set in one frame of the
/// plugin's `max_event_bytes`; a read grant too long to list there could never be answered.
fn check_read_grant_listing(doc: &Value, policy: &SecurityPolicy, out: &mut Problems) {
    let max = match doc.pointer(MAX_EVENT_BYTES_POINTER) {
        None => u64::from(policy.sandbox.ceilings.max_event_bytes),
        // A bad value is a problem of its own already.
        Some(value) => match check_limit(value, &manifest_max_event_bytes_rule(policy)) {
            Ok(max) => max,
            Err(_) => return,
        },
    };
    let pointer = format!("{EVENTS_POINTER}/read");
    let listing = crate::topic::listing_bytes(array_at(doc, &pointer).iter().filter_map(Value::as_str));
    if listing as u64 > max {
        out.push(Problem::new(
            pointer,
            format!(
                "the read grant takes {listing} bytes to list in one frame, more than max_event_bytes ({max}); \
                 raise permissions.events.max_event_bytes or grant fewer or shorter topics"
            ),
        ));
    }
}

fn check_network(doc: &Value, out: &mut Problems) {
    if bool_at(doc, NETWORK_POINTER, false) {
        out.push(Problem::new(
            NETWORK_POINTER,
            "network grants are not supported yet; plugins get a network namespace with loopback only",
        ));
    }
}

/// One host path grant, as found in the document.
struct GrantRef<'a> {
    pointer: String,
    path: &'a str,
    inside: Option<&'a str>,
    writable: bool,
}

fn check_filesystem(doc: &Value, policy: &SecurityPolicy, runtime: Option<&RuntimeChoice<'_>>, out: &mut Problems) {
    let enabled = bool_at(doc, &format!("{FILESYSTEM_POINTER}/enabled"), false);
    let temp_only = bool_at(doc, &format!("{FILESYSTEM_POINTER}/temp_only"), true);
    let mut grants = Vec::new();
    for (list, writable) in [("read", false), ("write", true)] {
        let pointer = format!("{FILESYSTEM_POINTER}/{list}");
        let items = array_at(doc, &pointer);
        if !items.is_empty() && !enabled {
            out.push(Problem::new(&pointer, "host path grants need filesystem.enabled: true"));
        }
        if writable && !items.is_empty() && temp_only {
            out.push(Problem::new(&pointer, "write grants need filesystem.temp_only: false"));
        }
        for (i, item) in items.iter().enumerate() {
            let at = index(&pointer, i);
            if let Some(path) = item.get("path").and_then(Value::as_str) {
                let inside = item.get("inside").and_then(Value::as_str);
                grants.push(GrantRef { pointer: at, path, inside, writable });
            }
        }
    }
    let runtime_paths = runtime.map(|r| (r.paths(policy), r.paths_pointer()));
    let mut placed: Vec<(&str, String)> = Vec::new();
    for grant in &grants {
        check_grant_host_path(grant, policy, out);
        let Some(inside) = check_grant_inside(grant, runtime_paths.as_ref(), out) else { continue };
        match placed.iter().find(|(other, _)| overlaps(inside, other)) {
            Some((other, other_pointer)) => out.push(Problem::new(
                inside_pointer(grant),
                format!("{inside} overlaps {other} granted at {other_pointer}"),
            )),
            None => placed.push((inside, grant.pointer.clone())),
        }
    }
}

fn inside_pointer(grant: &GrantRef<'_>) -> String {
    let field = if grant.inside.is_some() { "inside" } else { "path" };
    format!("{}/{field}", grant.pointer)
}

fn check_grant_host_path(grant: &GrantRef<'_>, policy: &SecurityPolicy, out: &mut Problems) {
    let pointer = format!("{}/path", grant.pointer);
    if let Err(reason) = check_absolute(grant.path) {
        out.push(Problem::new(pointer, reason));
        return;
    }
    let allowed = &policy.sandbox.allowed_host_paths;
    let containing: Vec<usize> = (0..allowed.len()).filter(|&i| is_within(grant.path, &allowed[i].path)).collect();
    let permitted = containing.iter().any(|&i| !grant.writable || allowed[i].access == HostPathAccess::ReadWrite);
    if permitted {
        return;
    }
    let reason = match containing.first() {
        Some(&i) if grant.writable => {
            format!("{} may only be granted read-only: /sandbox/allowed_host_paths/{i} is read_only", grant.path)
        }
        _ => format!("{} is not beneath any host path the policy allows (/sandbox/allowed_host_paths)", grant.path),
    };
    out.push(Problem::new(pointer, reason));
}

/// Checks where a grant appears inside; returns that path when it is acceptable.
fn check_grant_inside<'a>(
    grant: &GrantRef<'a>,
    runtime_paths: Option<&(&[String], String)>,
    out: &mut Problems,
) -> Option<&'a str> {
    let pointer = inside_pointer(grant);
    let inside = grant.inside.unwrap_or(grant.path);
    if grant.inside.is_some() {
        if let Err(reason) = check_absolute(inside) {
            out.push(Problem::new(pointer, reason));
            return None;
        }
    } else if check_absolute(inside).is_err() {
        return None; // already reported for the host path
    }
    if let Some(reserved) = reserved_overlap(inside) {
        out.push(Problem::new(pointer, format!("{inside} overlaps {reserved}, which the sandbox reserves")));
        return None;
    }
    if let Some((paths, paths_pointer)) = runtime_paths {
        if let Some(i) = paths.iter().position(|p| overlaps(inside, p)) {
            out.push(Problem::new(
                pointer,
                format!("{inside} overlaps the runtime path {} ({})", paths[i], index(paths_pointer, i)),
            ));
            return None;
        }
    }
    Some(inside)
}

/// The manifest's resource limits and their policy ceilings.
pub fn resource_rules(policy: &SecurityPolicy) -> [(&'static str, LimitRule); 5] {
    let c = &policy.sandbox.ceilings;
    [
        (
            MEMORY_POINTER,
            LimitRule::positive(MIB, "bytes", Ceiling::policy(c.max_memory_mb, "/sandbox/ceilings/max_memory_mb")),
        ),
        (
            CPU_POINTER,
            LimitRule::positive(
                CPU_QUOTA_US_PER_PERCENT,
                "microseconds of quota",
                Ceiling::policy(c.max_cpu_percent, "/sandbox/ceilings/max_cpu_percent"),
            ),
        ),
        (PIDS_POINTER, LimitRule::positive(1, "processes", Ceiling::policy(c.max_pids, "/sandbox/ceilings/max_pids"))),
        (
            WALL_CLOCK_POINTER,
            LimitRule::positive(
                1000,
                "milliseconds",
                Ceiling::policy(c.max_wall_clock_seconds, "/sandbox/ceilings/max_wall_clock_seconds"),
            ),
        ),
        (TMP_POINTER, LimitRule::positive(MIB, "bytes", Ceiling::policy(c.max_tmp_mb, "/sandbox/ceilings/max_tmp_mb"))),
    ]
}

fn check_resources(doc: &Value, policy: &SecurityPolicy, out: &mut Problems) {
    for (pointer, rule) in resource_rules(policy) {
        if let Some(value) = doc.pointer(pointer) {
            report(out, pointer, check_limit(value, &rule).map(|_| ()));
        }
    }
}

#[cfg(test)]
#[path = "manifest_checks_tests.rs"]
mod tests;
