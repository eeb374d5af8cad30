//! The plugin's end of the event channel.

use crate::env::{parse_channel_fd, parse_max_frame_bytes};
use crate::error::SdkError;
use crate::fd::adopt_channel_fd;
use serde_json::Value;
use std::os::unix::net::UnixStream;
use wf_protocol::{
    read_message, write_message_with_limit, PluginMessage, SupervisorMessage, CHANNEL_FD_ENV, MAX_FRAME_BYTES_ENV,
    PROTOCOL_VERSION,
};

/// What the supervisor said in its first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub protocol: u32,
    /// The plugin's name from its manifest.
    pub plugin: String,
    /// This run's instance id.
    pub instance: String,
}

/// An event on a topic the plugin may read.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub topic: String,
    pub payload: Value,
    /// Who published it, as the supervisor identified the publisher.
    pub sender: String,
}

/// The supervisor's refusal of one earlier publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub topic: String,
    pub reason: String,
}

/// Anything the supervisor may send after the hello.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Event(Event),
    Denied(Denied),
    /// The subscription set after a subscribe or unsubscribe.
    Subscribed(Vec<String>),
}

#[derive(Debug)]
pub struct Channel {
    stream: UnixStream,
    hello: Hello,
    max_frame_bytes: u32,
}

impl Channel {
    /// Adopts the channel fd named by `WFSANDBOX_CHANNEL_FD` (frame cap from the optional
    /// `WFSANDBOX_MAX_FRAME_BYTES`) and reads the supervisor's hello.
    pub fn from_env() -> Result<Self, SdkError> {
        let fd = parse_channel_fd(std::env::var(CHANNEL_FD_ENV).ok().as_deref())?;
        let max = parse_max_frame_bytes(std::env::var(MAX_FRAME_BYTES_ENV).ok().as_deref())?;
        let stream = UnixStream::from(adopt_channel_fd(fd)?);
        Self::from_stream(stream, max)
    }

    /// Uses an already-connected stream (tests, custom launchers) and reads the hello.
    pub fn from_stream(mut stream: UnixStream, max_frame_bytes: u32) -> Result<Self, SdkError> {
        let hello = match read_message::<SupervisorMessage>(&mut stream, max_frame_bytes)? {
            Some(SupervisorMessage::Hello { protocol, plugin, instance }) => Hello { protocol, plugin, instance },
            Some(_) => return Err(SdkError::Handshake("first message is not a hello")),
            None => return Err(SdkError::Handshake("channel closed before the hello")),
        };
        if hello.protocol != PROTOCOL_VERSION {
            return Err(SdkError::VersionMismatch { found: hello.protocol, expected: PROTOCOL_VERSION });
        }
        Ok(Self { stream, hello, max_frame_bytes })
    }

    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The cap applied to frames in both directions.
    pub fn max_frame_bytes(&self) -> u32 {
        self.max_frame_bytes
    }

    /// The next event or publish refusal; `None` once the supervisor has closed its side
    /// (in one-shot `run` mode, after the initial events).
    pub fn next_message(&mut self) -> Result<Option<Incoming>, SdkError> {
        match read_message::<SupervisorMessage>(&mut self.stream, self.max_frame_bytes)? {
            None => Ok(None),
            Some(SupervisorMessage::Event { topic, payload, sender }) => {
                Ok(Some(Incoming::Event(Event { topic, payload, sender })))
            }
            Some(SupervisorMessage::Denied { topic, reason }) => Ok(Some(Incoming::Denied(Denied { topic, reason }))),
            Some(SupervisorMessage::Subscribed { topics }) => Ok(Some(Incoming::Subscribed(topics))),
            Some(SupervisorMessage::Hello { .. }) => Err(SdkError::UnexpectedMessage("hello")),
        }
    }

    /// The next event; `None` at end of stream. A refused publish surfaces as
    /// [`SdkError::Denied`]; the channel stays usable after it.
    pub fn next_event(&mut self) -> Result<Option<Event>, SdkError> {
        loop {
            match self.next_message()? {
                None => return Ok(None),
                Some(Incoming::Event(event)) => return Ok(Some(event)),
                Some(Incoming::Denied(Denied { topic, reason })) => return Err(SdkError::Denied { topic, reason }),
                Some(Incoming::Subscribed(_)) => {}
            }
        }
    }

    /// Publishes `payload` on `topic`. Delivery is decided by the supervisor; a refusal
    /// arrives later as a [`Denied`] message. Over-cap messages are refused here, unsent.
    pub fn publish(&mut self, topic: &str, payload: &Value) -> Result<(), SdkError> {
        let msg = PluginMessage::Publish { topic: topic.to_owned(), payload: payload.clone(), claimed_sender: None };
        write_message_with_limit(&mut self.stream, &msg, self.max_frame_bytes)?;
        Ok(())
    }
}
