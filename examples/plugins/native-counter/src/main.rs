//! native_counter: counts `energy.update` events and publishes a `ui.render` summary after
//! each one, plus a final summary when the supervisor closes the channel.

mod tally;

use std::process::ExitCode;
use tally::Tally;
use wf_sdk::{Channel, Incoming, SdkError};

const READ_TOPIC: &str = "energy.update";
const RENDER_TOPIC: &str = "ui.render";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("native_counter: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), SdkError> {
    let mut channel = Channel::from_env()?;
    let mut tally = Tally::default();
    while let Some(message) = channel.next_message()? {
        match message {
            Incoming::Event(event) if event.topic == READ_TOPIC => {
                tally.record(&event.payload);
                channel.publish(RENDER_TOPIC, &tally.summary(false))?;
            }
            Incoming::Event(_) | Incoming::Subscribed(_) => {}
            Incoming::Denied(denied) => {
                eprintln!("native_counter: publish on {} denied: {}", denied.topic, denied.reason);
            }
        }
    }
    channel.publish(RENDER_TOPIC, &tally.summary(true))
}
