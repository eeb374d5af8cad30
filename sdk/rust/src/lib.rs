//! Plugin-side SDK for the WIRTHFORGE event channel.
//!
//! ```no_run
//! use wf_sdk::Channel;
//! # fn main() -> Result<(), wf_sdk::SdkError> {
//! let mut channel = Channel::from_env()?;
//! while let Some(event) = channel.next_event()? {
//!     let text = format!("{} from {}", event.payload, event.sender);
//!     channel.publish("ui.render", &serde_json::json!({ "widget": "demo", "text": text }))?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Typed payloads, subscriptions and buffered publishing:
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use wf_sdk::{Channel, Incoming};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Reading {
//!     watts: f64,
//! }
//!
//! # fn main() -> Result<(), wf_sdk::SdkError> {
//! let mut channel = Channel::from_env()?;
//! channel.publish_as("energy.update", &Reading { watts: 42.5 })?;
//! // Many small events, few syscalls: frames are written when 64 KiB have piled up, before
//! // every read, and on flush().
//! for watts in 0..1000 {
//!     channel.queue_as("energy.update", &Reading { watts: f64::from(watts) })?;
//! }
//! channel.flush()?;
//! // Narrow the subscription set (it starts as the whole read grant); the answer arrives as
//! // a message.
//! channel.subscribe(&["energy.*"])?;
//! while let Some(message) = channel.next_message()? {
//!     match message {
//!         Incoming::Subscribed(topics) => eprintln!("subscribed to {topics:?}"),
//!         Incoming::Denied(denied) => eprintln!("{} refused: {}", denied.topic, denied.reason),
//!         Incoming::Event(event) => {
//!             let reading: Reading = event.payload_as()?;
//!             eprintln!("{} W from {}", reading.watts, event.sender);
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod channel;
mod env;
mod error;
mod fd;
mod topic;

pub use channel::{Channel, Denied, Event, Hello, Incoming, QUEUE_FLUSH_BYTES};
pub use error::SdkError;
pub use wf_protocol::{ProtocolError, PROTOCOL_VERSION};
