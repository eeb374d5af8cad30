//! Observation probes: the process's credentials, limits, session, mounts and open fds.

use super::args::{Args, UsageError};
use super::outcome::Outcome;
use serde_json::{json, Map, Value};

/// /proc/self/status lines reported verbatim.
const STATUS_KEYS: &[&str] = &[
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
    "Seccomp_filters",
    "Uid",
    "Gid",
    "Groups",
    "NSpid",
    "SigBlk",
    "SigIgn",
];

const RLIMITS: &[(&str, libc::__rlimit_resource_t)] = &[
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("fsize", libc::RLIMIT_FSIZE),
    ("core", libc::RLIMIT_CORE),
    ("as", libc::RLIMIT_AS),
    ("cpu", libc::RLIMIT_CPU),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("stack", libc::RLIMIT_STACK),
];

const MOUNT_LIMIT: usize = 200;

pub fn status(_args: &mut Args) -> Result<Outcome, UsageError> {
    let text = std::fs::read_to_string("/proc/self/status");
    let outcome = Outcome::from_io(&text);
    let Ok(text) = text else {
        return Ok(outcome);
    };
    Ok(outcome
        .with("status", status_fields(&text))
        .with("inherited_signals", super::signals::inherited_masks())
        .with("hostname", hostname())
        .with("cwd", std::env::current_dir().ok().map(|p| p.display().to_string()))
        .with("ids", ids())
        .with("controlling_tty", has_controlling_tty())
        .with("dumpable", prctl_get(libc::PR_GET_DUMPABLE))
        .with("rlimits", rlimits())
        .with("cgroup", std::fs::read_to_string("/proc/self/cgroup").ok())
        .with("mounts", mounts()))
}

fn status_fields(text: &str) -> Map<String, Value> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| STATUS_KEYS.contains(key))
        .map(|(key, value)| (key.to_owned(), Value::from(value.trim())))
        .collect()
}

/// The UTS hostname, or None if uname fails.
pub fn hostname() -> Option<String> {
    // SAFETY: utsname is plain data; uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a live utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    let bytes: Vec<u8> = uts.nodename.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn ids() -> Value {
    // SAFETY: these calls take no pointers and cannot fail.
    unsafe {
        json!({
            "uid": libc::getuid(), "euid": libc::geteuid(), "gid": libc::getgid(), "egid": libc::getegid(),
            "pid": libc::getpid(), "ppid": libc::getppid(), "pgid": libc::getpgid(0), "sid": libc::getsid(0),
        })
    }
}

/// Whether /dev/tty opens, i.e. the process has a controlling terminal.
fn has_controlling_tty() -> Value {
    match std::fs::File::open("/dev/tty") {
        Ok(_) => json!(true),
        Err(err) => json!({"open_errno": err.raw_os_error()}),
    }
}

fn prctl_get(option: libc::c_int) -> Option<i32> {
    // SAFETY: a PR_GET_* option without pointer arguments.
    let rc = unsafe { libc::prctl(option, 0, 0, 0, 0) };
    (rc >= 0).then_some(rc)
}

/// [soft, hard] per resource; `null` stands for RLIM_INFINITY.
fn rlimits() -> Map<String, Value> {
    let limit = |value: libc::rlim_t| if value == libc::RLIM_INFINITY { Value::Null } else { Value::from(value) };
    RLIMITS
        .iter()
        .filter_map(|(name, resource)| {
            let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: current is a live rlimit.
            let rc = unsafe { libc::getrlimit(*resource, &mut current) };
            (rc == 0).then(|| ((*name).to_owned(), json!([limit(current.rlim_cur), limit(current.rlim_max)])))
        })
        .collect()
}

/// Mount point, filesystem type and options of each mount, from /proc/self/mountinfo.
fn mounts() -> Option<Vec<Value>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    Some(text.lines().take(MOUNT_LIMIT).filter_map(parse_mountinfo_line).collect())
}

fn parse_mountinfo_line(line: &str) -> Option<Value> {
    let (left, right) = line.split_once(" - ")?;
    let fields: Vec<&str> = left.split(' ').collect();
    let (target, options) = (fields.get(4)?, fields.get(5)?);
    let mut rest = right.split(' ');
    let fstype = rest.next()?;
    let super_options = rest.nth(1).unwrap_or("");
    Some(json!({"target": target, "fstype": fstype, "options": options, "super_options": super_options}))
}

/// Every open fd and what it points to (the fd used to list the directory excluded).
pub fn fds(_args: &mut Args) -> Result<Outcome, UsageError> {
    let listing = std::fs::read_dir("/proc/self/fd").map(|dir| {
        let mut entries: Vec<(i32, String)> = dir
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let fd: i32 = entry.file_name().to_str()?.parse().ok()?;
                let target = std::fs::read_link(entry.path()).ok()?.display().to_string();
                Some((fd, target))
            })
            .collect();
        entries.sort();
        entries
    });
    let outcome = Outcome::from_io(&listing);
    let Ok(entries) = listing else {
        return Ok(outcome);
    };
    // SAFETY: getpid cannot fail.
    let own_listing = format!("/proc/{}/fd", unsafe { libc::getpid() });
    let fds: Vec<Value> = entries
        .into_iter()
        .filter(|(_, target)| *target != own_listing)
        .map(|(fd, target)| json!({"fd": fd, "target": target}))
        .collect();
    Ok(outcome.with("count", fds.len()).with("fds", fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_the_security_lines() {
        let outcome = status(&mut Args::new(&[])).expect("args");
        let fields = &outcome.extra["status"];
        for key in ["CapEff", "CapBnd", "NoNewPrivs", "Seccomp", "Uid"] {
            assert!(fields[key].is_string(), "{key} missing in {fields}");
        }
        assert!(outcome.extra["rlimits"]["nofile"].is_array());
        assert!(outcome.extra["mounts"].as_array().is_some_and(|m| !m.is_empty()));
    }

    #[test]
    fn parses_a_mountinfo_line() {
        let line = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue";
        let parsed = parse_mountinfo_line(line).expect("parsed");
        assert_eq!(parsed["target"], "/mnt2");
        assert_eq!(parsed["fstype"], "ext3");
        assert_eq!(parsed["options"], "rw,noatime");
        assert_eq!(parsed["super_options"], "rw,errors=continue");
    }

    #[test]
    fn fds_lists_stdio_but_not_its_own_listing_fd() {
        let outcome = fds(&mut Args::new(&[])).expect("args");
        let listed = outcome.extra["fds"].as_array().expect("fds");
        assert!(listed.iter().all(|entry| !entry["target"].as_str().unwrap_or("").ends_with("/fd")));
    }
}
