//! Dispatch from a probe name to the module that performs it.

mod args;
mod broker;
mod channel;
mod faults;
mod fs;
mod kernel;
mod namespaces;
mod net;
mod outcome;
mod procs;
mod resources;
mod signals;
mod status;

use args::Args;
use outcome::AfterPrint;
pub use outcome::Outcome;

/// Usage errors exit with this status (after printing a JSON line saying why).
pub const USAGE_EXIT: i32 = 2;

type ProbeFn = fn(&mut Args) -> Result<Outcome, args::UsageError>;

/// Every probe: name, argument synopsis, implementation.
const PROBES: &[(&str, &str, ProbeFn)] = &[
    ("read-file", "PATH", fs::read_file),
    ("write-file", "PATH", fs::write_file),
    ("list-dir", "PATH", fs::list_dir),
    ("set-id-file", "PATH", fs::set_id_file),
    ("mount-tmpfs", "[TARGET]", fs::mount_tmpfs),
    ("mount-proc", "[TARGET]", fs::mount_proc),
    ("open-tree", "[PATH]", fs::open_tree),
    ("fsopen", "[FSTYPE]", fs::fsopen),
    ("chroot", "[PATH]", fs::chroot),
    ("proc-pids", "", procs::proc_pids),
    ("ptrace-traceme", "", procs::ptrace_traceme),
    ("ptrace-attach", "PID", procs::ptrace_attach),
    ("process-vm-readv", "[PID]", procs::process_vm_readv),
    ("pidfd-getfd", "[PID [FD]]", procs::pidfd_getfd),
    ("kill-pid", "PID [SIGNAL]", procs::kill_pid),
    ("unshare-user", "", namespaces::unshare_user),
    ("unshare-net", "", namespaces::unshare_net),
    ("clone-newuser", "", namespaces::clone_newuser),
    ("clone3", "", namespaces::clone3),
    ("setns", "[NS_PATH]", namespaces::setns),
    ("sethostname", "", namespaces::sethostname),
    ("x32-getpid", "", kernel::x32_getpid),
    ("ioctl-tiocsti", "", kernel::ioctl_tiocsti),
    ("ioctl-tioclinux", "", kernel::ioctl_tioclinux),
    ("ioctl", "FD CMD_HEX", kernel::ioctl),
    ("io-uring-setup", "", kernel::io_uring_setup),
    ("bpf", "", kernel::bpf),
    ("perf-event-open", "", kernel::perf_event_open),
    ("keyctl", "", kernel::keyctl),
    ("socket", "unix|inet|inet6|packet|netlink|vsock|alg", net::socket),
    ("socketpair", "stream|seqpacket|dgram", net::socketpair),
    ("net-devs", "", net::net_devs),
    ("status", "", status::status),
    ("pdeathsig", "", signals::pdeathsig),
    ("set-pdeathsig", "SIGNAL", signals::set_pdeathsig),
    ("fds", "", status::fds),
    ("alloc-mb", "N", resources::alloc_mb),
    ("fork-bomb", "", resources::fork_bomb),
    ("burn-cpu", "SECONDS", resources::burn_cpu),
    ("sleep", "SECONDS", resources::sleep),
    ("flood-output", "SECONDS", resources::flood_output),
    ("publish", "TOPIC JSON", channel::publish),
    ("publish-many", "COUNT TOPIC", channel::publish_many),
    (
        "send-bad-frame",
        "oversized|truncated|invalid-utf8|deep|nested-33|unknown-field|null-sender",
        channel::send_bad_frame,
    ),
    ("echo-events", "", channel::echo_events),
    ("scripted", "[SECONDS]", broker::scripted),
    ("pace", "TOPIC RATE SECONDS", broker::pace),
    ("consume", "end|stop IDLE_SECONDS [DELAY_US [PROGRESS_TOPIC]]", broker::consume),
    ("flood", "TOPIC SECONDS", broker::flood),
    ("burst", "TOPIC COUNT", broker::burst),
    ("stall-subscribe", "GO_FILE READ_FILE PATTERN...", broker::stall_subscribe),
    ("exit", "CODE", faults::exit),
    ("kill-self", "SIGNAL", faults::kill_self),
];

/// Runs the probe named by `argv[0]` and returns the process exit status.
pub fn run(argv: &[String]) -> i32 {
    let Some(name) = argv.first() else {
        return usage(None, "missing probe name");
    };
    if name == "list" {
        let names: Vec<&str> = PROBES.iter().map(|(name, _, _)| *name).collect();
        println!("{}", serde_json::json!({ "probes": names }));
        return 0;
    }
    let Some((name, synopsis, probe)) = PROBES.iter().find(|(probe, _, _)| probe == name) else {
        return usage(Some(name), "unknown probe (try: wf-probe list)");
    };
    let mut args = Args::new(&argv[1..]);
    match probe(&mut args).and_then(|outcome| args.finish().map(|()| outcome)) {
        Ok(outcome) => {
            outcome.print(name);
            finish(outcome.then)
        }
        Err(err) => usage(Some(name), &format!("{err}; usage: wf-probe {name} {synopsis}")),
    }
}

/// Does what the probe asked for after its line was printed; returns the exit status.
fn finish(then: AfterPrint) -> i32 {
    match then {
        AfterPrint::ExitZero => 0,
        AfterPrint::ReapChildrenThenExitZero => {
            resources::reap_all_children();
            0
        }
        AfterPrint::Exit(code) => code,
        AfterPrint::Die(signal) => faults::die_of(signal),
    }
}

fn usage(name: Option<&str>, error: &str) -> i32 {
    let line = serde_json::json!({ "probe": name, "ok": false, "errno": null, "error": error });
    println!("{line}");
    USAGE_EXIT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_names_are_unique() {
        let mut names: Vec<&str> = PROBES.iter().map(|(name, _, _)| *name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(run(&[]), USAGE_EXIT);
        assert_eq!(run(&["no-such-probe".into()]), USAGE_EXIT);
        assert_eq!(run(&["read-file".into()]), USAGE_EXIT);
        assert_eq!(run(&["proc-pids".into(), "extra".into()]), USAGE_EXIT);
        assert_eq!(run(&["list".into()]), 0);
    }
}
