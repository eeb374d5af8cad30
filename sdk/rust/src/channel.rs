//! The plugin's end of the event channel.

use crate::env::{parse_channel_fd, parse_max_frame_bytes};
use crate::error::SdkError;
use crate::fd::adopt_channel_fd;
use crate::topic::{check_pattern, check_topic};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::io::{self, BufReader, Write};
use std::os::unix::net::UnixStream;
use wf_protocol::{
    encode_with_limit, read_message, PluginMessage, ProtocolError, SupervisorMessage, CHANNEL_FD_ENV,
    MAX_FRAME_BYTES_ENV, PROTOCOL_VERSION,
};

/// Queued frames are written out once the queue holds at least this many bytes (and before
/// every blocking read, and on [`Channel::flush`]).
pub const QUEUE_FLUSH_BYTES: usize = 64 * 1024;

/// Bytes read from the channel at once.
const READ_BUFFER_BYTES: usize = 64 * 1024;

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
    /// Who published it, as the supervisor identified the publisher: `plugin:<manifest name>`
    /// or `control:<uid>` under the daemon.
    pub sender: String,
}

impl Event {
    /// The payload as a typed value, e.g. a `#[derive(Deserialize)]` struct. A payload of
    /// another shape is [`SdkError::DecodePayload`] naming the topic.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, SdkError> {
        T::deserialize(&self.payload).map_err(|source| SdkError::DecodePayload { topic: self.topic.clone(), source })
    }
}

/// The supervisor's refusal of one earlier publish, or of one topic of a subscribe or
/// unsubscribe.
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
    /// The whole subscription set (sorted) after a subscribe or unsubscribe was applied.
    Subscribed(Vec<String>),
}

/// The plugin's end of the event channel.
///
/// Writes are unbuffered for [`publish`](Self::publish), [`subscribe`](Self::subscribe) and
/// [`unsubscribe`](Self::unsubscribe) (each returns once its frame is written, after any
/// queued frames), and buffered for [`queue`](Self::queue): see [`QUEUE_FLUSH_BYTES`]. Frames
/// keep the order of the calls that made them. Dropping the channel flushes the queue and
/// ignores errors; call [`flush`](Self::flush) to see them.
#[derive(Debug)]
pub struct Channel {
    /// Reads go through a buffer (one `read` takes many small frames); writes go to the stream
    /// underneath, unbuffered or from `queued`.
    stream: BufReader<UnixStream>,
    hello: Hello,
    max_frame_bytes: u32,
    /// Encoded frames not yet written.
    queued: Vec<u8>,
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
    pub fn from_stream(stream: UnixStream, max_frame_bytes: u32) -> Result<Self, SdkError> {
        // The hello is read without the buffer, so nothing after it is read ahead and lost.
        let hello = match read_message::<SupervisorMessage>(&mut &stream, max_frame_bytes)? {
            Some(SupervisorMessage::Hello { protocol, plugin, instance }) => Hello { protocol, plugin, instance },
            Some(_) => return Err(SdkError::Handshake("first message is not a hello")),
            None => return Err(SdkError::Handshake("channel closed before the hello")),
        };
        if hello.protocol != PROTOCOL_VERSION {
            return Err(SdkError::VersionMismatch { found: hello.protocol, expected: PROTOCOL_VERSION });
        }
        Ok(Self {
            stream: BufReader::with_capacity(READ_BUFFER_BYTES, stream),
            hello,
            max_frame_bytes,
            queued: Vec::new(),
        })
    }

    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The cap applied to frames in both directions.
    pub fn max_frame_bytes(&self) -> u32 {
        self.max_frame_bytes
    }

    /// The next event, refusal or subscription set; `None` once the supervisor has closed its
    /// side (in one-shot `run` mode, after the initial events). Queued frames are flushed
    /// first, so a plugin never waits for an answer to a frame still in its own buffer.
    pub fn next_message(&mut self) -> Result<Option<Incoming>, SdkError> {
        self.flush()?;
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

    /// The next event; `None` at end of stream. A refused publish or subscription surfaces as
    /// [`SdkError::Denied`]; the channel stays usable after it. Subscription sets are skipped.
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

    /// Publishes `payload` on `topic` and returns once the frame is written (after any queued
    /// frames). Delivery is decided by the supervisor; a refusal arrives later as a [`Denied`]
    /// message. An invalid topic or an over-cap or too deeply nested message is refused here,
    /// unsent.
    pub fn publish(&mut self, topic: &str, payload: &Value) -> Result<(), SdkError> {
        self.publish_value(topic, payload.clone())
    }

    /// [`publish`](Self::publish) for any serializable value, e.g. a `#[derive(Serialize)]`
    /// struct. A value serde_json cannot serialize is [`SdkError::EncodePayload`].
    pub fn publish_as<T: Serialize + ?Sized>(&mut self, topic: &str, payload: &T) -> Result<(), SdkError> {
        let payload = to_payload(topic, payload)?;
        self.publish_value(topic, payload)
    }

    /// Appends a publish frame to the queue without writing it (unless the queue has reached
    /// [`QUEUE_FLUSH_BYTES`]): for producers of many small events. The frame gets every check
    /// [`publish`](Self::publish) applies, here, at the call; a refused one is not queued.
    /// The queue is written by [`flush`](Self::flush), by any unbuffered send, and before
    /// every read.
    pub fn queue(&mut self, topic: &str, payload: &Value) -> Result<(), SdkError> {
        self.queue_value(topic, payload.clone())
    }

    /// [`queue`](Self::queue) for any serializable value.
    pub fn queue_as<T: Serialize + ?Sized>(&mut self, topic: &str, payload: &T) -> Result<(), SdkError> {
        let payload = to_payload(topic, payload)?;
        self.queue_value(topic, payload)
    }

    /// Adds topics or `prefix.*` patterns to the subscription set and returns once the request
    /// is written. The supervisor answers with one [`Incoming::Denied`] per topic the read
    /// grant does not cover, then [`Incoming::Subscribed`] with the whole set. A plugin starts
    /// subscribed to its whole read grant. Invalid names are refused here and nothing is sent.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<(), SdkError> {
        self.send_subscription(topics, |topics| PluginMessage::Subscribe { topics })
    }

    /// Removes topics or patterns (compared literally) from the subscription set; answered
    /// like [`subscribe`](Self::subscribe).
    pub fn unsubscribe(&mut self, topics: &[&str]) -> Result<(), SdkError> {
        self.send_subscription(topics, |topics| PluginMessage::Unsubscribe { topics })
    }

    /// Writes every queued frame. On an error the unwritten bytes stay queued (the framing is
    /// kept: a later flush continues where this one stopped).
    pub fn flush(&mut self) -> Result<(), SdkError> {
        let mut written = 0;
        let result = loop {
            if written == self.queued.len() {
                break Ok(());
            }
            match self.stream.get_ref().write(&self.queued[written..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.queued.drain(..written);
        if self.queued.is_empty() && self.queued.capacity() > 4 * QUEUE_FLUSH_BYTES {
            self.queued.shrink_to(2 * QUEUE_FLUSH_BYTES);
        }
        result.map_err(|source| SdkError::Protocol(ProtocolError::Io { op: "write", source }))
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.len()
    }

    fn publish_value(&mut self, topic: &str, payload: Value) -> Result<(), SdkError> {
        check_topic(topic)?;
        self.send(&PluginMessage::publish(topic, payload))
    }

    fn queue_value(&mut self, topic: &str, payload: Value) -> Result<(), SdkError> {
        check_topic(topic)?;
        self.enqueue(&PluginMessage::publish(topic, payload))?;
        if self.queued.len() >= QUEUE_FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn send_subscription(
        &mut self,
        topics: &[&str],
        message: impl FnOnce(Vec<String>) -> PluginMessage,
    ) -> Result<(), SdkError> {
        for topic in topics {
            check_pattern(topic)?;
        }
        self.send(&message(topics.iter().map(|t| (*t).to_owned()).collect()))
    }

    /// Queues `msg` behind what is already queued, then writes everything.
    fn send(&mut self, msg: &PluginMessage) -> Result<(), SdkError> {
        self.enqueue(msg)?;
        self.flush()
    }

    /// Encodes `msg` under the cap (size and depth, exactly as the supervisor's decoder checks
    /// them) and appends it to the queue; nothing is queued if it is refused.
    fn enqueue(&mut self, msg: &PluginMessage) -> Result<(), SdkError> {
        let frame = encode_with_limit(msg, self.max_frame_bytes)?;
        self.queued.extend_from_slice(&frame);
        Ok(())
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

fn to_payload<T: Serialize + ?Sized>(topic: &str, payload: &T) -> Result<Value, SdkError> {
    serde_json::to_value(payload).map_err(|source| SdkError::EncodePayload { topic: topic.to_owned(), source })
}
