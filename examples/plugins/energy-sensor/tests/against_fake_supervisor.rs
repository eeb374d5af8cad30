//! Runs the built energy-sensor binary with a socketpair on fd 3, as the sandbox would.

use serde_json::Value;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use wf_protocol::{read_message, write_message, PluginMessage, SupervisorMessage, DEFAULT_MAX_FRAME_BYTES};

fn spawn_with_channel_on_fd3(plugin_end: &UnixStream, args: &[&str]) -> Child {
    let fd = plugin_end.as_raw_fd();
    let mut command = Command::new(env!("CARGO_BIN_EXE_energy-sensor"));
    command.args(args).env_clear().env("WFSANDBOX_CHANNEL_FD", "3");
    // SAFETY: dup2 and fcntl are async-signal-safe; fd 3 ends up without close-on-exec.
    unsafe {
        command.pre_exec(move || {
            let rc = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
            match rc {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            }
        });
    }
    command.spawn().expect("spawn energy-sensor")
}

#[test]
fn publishes_count_typed_readings_at_the_interval_then_exits() {
    let (mut supervisor, plugin_end) = UnixStream::pair().expect("socketpair");
    let started = Instant::now();
    let mut child = spawn_with_channel_on_fd3(&plugin_end, &["--count", "4", "--interval-ms", "50"]);
    drop(plugin_end);
    let hello = SupervisorMessage::Hello { protocol: 1, plugin: "energy_sensor".into(), instance: "t-1".into() };
    write_message(&mut supervisor, &hello).expect("hello");
    let mut readings: Vec<Value> = Vec::new();
    while let Some(msg) = read_message::<PluginMessage>(&mut supervisor, DEFAULT_MAX_FRAME_BYTES).expect("frame") {
        let PluginMessage::Publish { topic, payload, claimed_sender } = msg else { panic!("not a publish: {msg:?}") };
        assert_eq!((topic.as_str(), claimed_sender), ("energy.update", None));
        readings.push(payload);
    }
    assert!(child.wait().expect("wait").success());
    assert!(started.elapsed() >= Duration::from_millis(150), "three intervals between four readings");
    assert_eq!(readings.len(), 4);
    for (n, reading) in readings.iter().enumerate() {
        let object = reading.as_object().expect("an object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["seq", "source", "watts"], "{reading}");
        assert_eq!(reading["seq"], n as u64 + 1);
        assert_eq!(reading["source"], "synthetic-meter");
        let watts = reading["watts"].as_f64().expect("watts is a number");
        assert!((100.0..3500.0).contains(&watts), "{reading}");
    }
}

#[test]
fn bad_arguments_are_exit_2_and_no_channel_is_exit_1() {
    let bad = Command::new(env!("CARGO_BIN_EXE_energy-sensor")).arg("--interval-ms=0").output().expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("usage: energy-sensor"));
    let outside = Command::new(env!("CARGO_BIN_EXE_energy-sensor")).env_clear().output().expect("run");
    assert_eq!(outside.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&outside.stderr).contains("WFSANDBOX_CHANNEL_FD"));
}
