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

mod channel;
mod env;
mod error;
mod fd;

pub use channel::{Channel, Denied, Event, Hello, Incoming};
pub use error::SdkError;
pub use wf_protocol::{ProtocolError, PROTOCOL_VERSION};
