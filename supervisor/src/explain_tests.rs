//! Tests of `explain`'s text and JSON renderings.
use super::*;
use std::path::Path;

const MANIFEST: &str = r#"{"name": "my_plugin", "version": "1.0.0", "entry_point": "main.py",
    "permissions": {"events": {"read": ["energy.update"], "write": ["energy.*"]},
                    "system": {"ui": {"render": true}},
                    "resources": {"memory": {"max_mb": 64}, "cpu": {"max_percent": 10}}}}"#;

fn spec() -> SandboxSpec {
    let policy = wf_policy::default_policy();
    let manifest = wf_policy::load_manifest(MANIFEST.as_bytes(), &policy).unwrap();
    wf_policy::derive_spec(&manifest, Path::new("/srv/plugins/my_plugin"), &policy).unwrap()
}

/// The lines from `heading` up to the next blank line.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text.find(&format!("\n{heading}")).unwrap_or_else(|| panic!("no {heading:?} section"));
    let rest = &text[start + 1..];
    rest.find("\n\n").map_or(rest, |end| &rest[..end])
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

/// The line containing `needle` joined with its wrapped continuation lines.
fn entry_with(text: &str, needle: &str) -> String {
    let mut lines = text.lines().skip_while(|l| !l.contains(needle));
    let first = lines.next().unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"));
    let rest: Vec<&str> = lines.take_while(|l| l.starts_with("    ")).map(str::trim).collect();
    std::iter::once(first).chain(rest).collect::<Vec<_>>().join(" ")
}

#[test]
fn text_names_the_field_behind_each_limit() {
    let text = render_text(&spec());
    let memory = line_with(&text, "  memory");
    assert!(memory.contains("64 MiB") && memory.contains("[manifest /permissions/resources/memory/max_mb]"));
    let cpu = line_with(&text, "  cpu ");
    assert!(cpu.contains("10% of one CPU") && cpu.contains("10000 µs per 100000 µs"), "{cpu}");
    let pids = line_with(&text, "  pids");
    assert!(pids.contains("64") && pids.contains("[policy /sandbox/defaults/pids]"), "{pids}");
    assert!(line_with(&text, "  swap").contains("[builtin: no swap"));
}

#[test]
fn text_lists_namespaces_mounts_and_landlock_rules() {
    let text = render_text(&spec());
    for ns in ["user", "pid", "mount", "net", "ipc", "uts", "cgroup"] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(&format!("{ns} "))), "{ns} missing");
    }
    let tmp = line_with(&text, "private tmpfs");
    assert!(tmp.contains("64 MiB") && tmp.contains("[policy /sandbox/defaults/tmp_mb]"), "{tmp}");
    let plugin = line_with(&text, "read-only bind of /srv/plugins/my_plugin");
    assert!(plugin.starts_with("  /plugin "), "{plugin}");
    assert!(line_with(&text, "/usr/lib/python3.11").contains("[policy /sandbox/runtimes/interpreters/python3/paths/3]"));
    let landlock = text.split("Landlock").nth(1).unwrap();
    assert!(line_with(landlock, "/tmp").contains("read + write (no execute)"));
    assert!(line_with(landlock, "/usr/bin/python3").contains("read + execute"));
}

#[test]
fn text_lists_the_syscall_allowlist_by_name_with_filters() {
    let text = render_text(&spec());
    assert!(line_with(&text, "allowed [builtin: seccomp baseline]").starts_with("  allowed"));
    for name in ["execve", "openat", "futex"] {
        assert!(text.split_whitespace().any(|w| w == name), "{name} missing");
    }
    assert!(entry_with(&text, "  socketpair ").contains("arg0 is one of AF_UNIX"));
    assert!(entry_with(&text, "  socketpair ").contains("SOCK_SEQPACKET|SOCK_NONBLOCK|SOCK_CLOEXEC"));
    assert!(!text.lines().any(|l| l.trim_start().starts_with("socket ")), "socket() must not be allowed");
    let ioctl = entry_with(&text, "  ioctl");
    assert!(ioctl.contains("arg1 is one of TCGETS") && ioctl.contains("FIOCLEX"), "{ioctl}");
    assert!(!ioctl.contains("TIOCSTI"), "{ioctl}");
    assert!(entry_with(&text, "  clone ").contains("CLONE_NEWUSER"));
    assert!(line_with(&text, "ENOSYS").contains("clone3"));
    assert!(line_with(&text, "other calls").contains("EPERM (errno 1)"));
    assert!(!text.split_whitespace().any(|w| w == "ptrace"));
    assert!(text.lines().all(|l| l.len() < 200), "a line is not wrapped");
}

#[test]
fn text_shows_topic_grants_and_environment() {
    let text = render_text(&spec());
    let events = section(&text, "Event topics");
    assert!(line_with(events, "  read ").contains("energy.update"));
    assert!(line_with(events, "  write ").contains("energy.*"));
    assert!(line_with(events, "  write ").contains("[manifest /permissions/events/write]"));
    assert!(line_with(events, "ui.render").contains("yes"));
    assert!(line_with(events, "max event").contains("64 KiB"));
    assert!(line_with(events, "max event").contains("[policy /sandbox/ceilings/max_event_bytes]"));
    let rate = line_with(events, "publish rate");
    assert!(rate.contains("1000 events/s") && rate.contains("[policy /sandbox/defaults/event_rate/events_per_second]"));
    assert!(line_with(events, "publish burst").contains("2000 events"));
    let read = line_with(events, "channel read");
    assert!(read.contains("1 MiB/s") && read.contains("[policy /sandbox/defaults/event_rate/bytes_per_second]"));
    assert!(section(&text, "Environment").contains("WFSANDBOX_PLUGIN=my_plugin"));
    let rlimits = section(&text, "Rlimits");
    assert!(line_with(rlimits, "  CORE ").contains("0 / 0"));
    assert!(line_with(rlimits, "  NOFILE ").contains("256 / 256"));
    assert!(line_with(rlimits, "  FSIZE ").contains("64 MiB / 64 MiB"));
    assert!(line_with(&text, "wall clock").contains("300 s"));
}

#[test]
fn json_carries_values_with_their_origins() {
    let v = render_json(&spec());
    assert_eq!(v["format"], 1);
    assert_eq!(v["cgroup"]["memory_max_bytes"]["value"], 64 * 1024 * 1024);
    assert_eq!(
        v["cgroup"]["memory_max_bytes"]["from"],
        json!({"source": "manifest", "pointer": "/permissions/resources/memory/max_mb"})
    );
    assert_eq!(v["cgroup"]["cpu_quota_us"]["value"], 10_000);
    assert_eq!(v["namespaces"].as_array().unwrap().len(), 7);
    assert_eq!(v["mounts"][4]["kind"], "plugin_dir");
    assert_eq!(v["events"]["read"]["value"], json!(["energy.update"]));
    assert_eq!(v["entry"]["runtime"]["value"]["name"], "python3");
    let pair = v["seccomp"]["allowed"].as_array().unwrap().iter().find(|s| s["name"] == "socketpair").unwrap();
    assert_eq!(pair["filters"][0]["check"], "arg0 is one of AF_UNIX");
    assert_eq!(pair["from"]["pointer"], "seccomp baseline");
}

/// Every `{"value": ...}` has a `from`, and so does every list entry.
fn assert_everything_has_an_origin(path: &str, v: &Value) {
    match v {
        Value::Object(map) => {
            let needs = map.contains_key("value")
                || map.contains_key("filters")
                || (map.contains_key("kind") && map.contains_key("inside"));
            if needs || map.contains_key("namespace") || map.contains_key("resource") {
                let from = &map["from"];
                assert!(from["source"].is_string() && from["pointer"].is_string(), "{path} lacks an origin");
            }
            for (k, child) in map {
                if k != "value" && k != "detail" {
                    assert_everything_has_an_origin(&format!("{path}/{k}"), child);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                assert_everything_has_an_origin(&format!("{path}/{i}"), item);
            }
        }
        _ => {}
    }
}

#[test]
fn json_gives_every_decision_an_origin() {
    let v = render_json(&spec());
    assert_everything_has_an_origin("", &v);
    for section in ["mounts", "rlimits", "namespaces"] {
        for entry in v[section].as_array().unwrap() {
            assert!(entry["from"]["source"].is_string(), "{section}: {entry}");
        }
    }
    for rule in v["landlock"]["rules"].as_array().unwrap() {
        assert!(rule["from"]["source"].is_string() && rule["path"].is_string());
    }
}

#[test]
fn helpers() {
    assert_eq!(bytes_text(64 * 1024 * 1024), "64 MiB");
    assert_eq!(bytes_text(65_536), "64 KiB");
    assert_eq!(bytes_text(0), "0 bytes");
    assert_eq!(origin_text(&Origin::policy("/a")), "[policy /a]");
    assert_eq!(origin_text(&Origin::builtin("why")), "[builtin: why]");
    assert_eq!(wrap(&["aa", "bb", "cc"], 5), ["aa bb", "cc"]);
    assert_eq!(list_text(&[]), "(none)");
    assert_eq!(duration_text(5000), "5 s");
    assert_eq!(duration_text(1500), "1500 ms");
}

#[test]
fn event_limits_set_by_the_manifest_are_attributed_to_it() {
    let policy = wf_policy::default_policy();
    let manifest = wf_policy::load_manifest(
        br#"{"name": "p", "version": "1.0.0", "entry_point": "main.py",
             "permissions": {"events": {"max_event_bytes": 8192, "rate": {"events_per_second": 25, "bytes_per_second": 65536}}}}"#,
        &policy,
    )
    .unwrap();
    let spec = wf_policy::derive_spec(&manifest, Path::new("/srv/plugins/p"), &policy).unwrap();
    let text = render_text(&spec);
    let events = section(&text, "Event topics");
    let max = line_with(events, "max event");
    assert!(max.contains("8 KiB") && max.contains("[manifest /permissions/events/max_event_bytes]"), "{max}");
    assert!(line_with(events, "publish rate").contains("[manifest /permissions/events/rate/events_per_second]"));
    assert!(line_with(events, "publish burst").contains("[policy /sandbox/defaults/event_rate/burst]"));
    assert!(line_with(events, "channel read").contains("64 KiB/s"));
    let v = render_json(&spec);
    assert_eq!(v["events"]["max_event_bytes"]["value"], 8192);
    assert_eq!(
        v["events"]["rate"]["events_per_second"],
        json!({"value": 25, "from": {"source": "manifest", "pointer": "/permissions/events/rate/events_per_second"}})
    );
    assert_eq!(v["events"]["rate"]["burst"]["from"]["pointer"], "/sandbox/defaults/event_rate/burst");
    assert_eq!(v["events"]["rate"]["bytes_per_second"]["value"], 65536);
}
