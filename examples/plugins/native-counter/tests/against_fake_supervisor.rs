//! Runs the built native-counter binary with a socketpair on fd 3, as the sandbox would.

use serde_json::json;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use wf_protocol::{read_message, write_message, PluginMessage, SupervisorMessage, DEFAULT_MAX_FRAME_BYTES};

fn spawn_with_channel_on_fd3(plugin_end: &UnixStream) -> std::process::Child {
    let fd = plugin_end.as_raw_fd();
    let mut command = Command::new(env!("CARGO_BIN_EXE_native-counter"));
    command.env_clear().env("WFSANDBOX_CHANNEL_FD", "3");
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
    command.spawn().expect("spawn native-counter")
}

#[test]
fn counts_events_and_renders_summaries() {
    let (mut supervisor, plugin_end) = UnixStream::pair().expect("socketpair");
    let mut child = spawn_with_channel_on_fd3(&plugin_end);
    drop(plugin_end);
    let hello = SupervisorMessage::Hello { protocol: 1, plugin: "native_counter".into(), instance: "t".into() };
    write_message(&mut supervisor, &hello).expect("hello");
    for watts in [40.0, 50.5] {
        let event = SupervisorMessage::Event {
            topic: "energy.update".into(),
            payload: json!({"watts": watts}),
            sender: "cli".into(),
        };
        write_message(&mut supervisor, &event).expect("event");
    }
    supervisor.shutdown(Shutdown::Write).expect("half-close");
    let mut summaries = Vec::new();
    while let Some(PluginMessage::Publish { topic, payload, .. }) =
        read_message::<PluginMessage>(&mut supervisor, DEFAULT_MAX_FRAME_BYTES).expect("frame")
    {
        assert_eq!(topic, "ui.render");
        summaries.push(payload);
    }
    assert!(child.wait().expect("wait").success());
    assert_eq!(summaries.len(), 3);
    assert_eq!(summaries[0]["readings"], 1);
    assert_eq!(summaries[2]["final"], true);
    assert_eq!(summaries[2]["text"], "2 readings, average 45.2 W, peak 50.5 W");
}

#[test]
fn refuses_to_start_outside_a_sandbox() {
    let output = Command::new(env!("CARGO_BIN_EXE_native-counter")).env_clear().output().expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("WFSANDBOX_CHANNEL_FD"));
}
