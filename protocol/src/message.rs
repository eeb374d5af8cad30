//! The typed messages of the plugin channel, one enum per direction.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of the plugin channel protocol, sent in [`SupervisorMessage::Hello`].
pub const PROTOCOL_VERSION: u32 = 1;

/// A message type that travels in frames: serde both ways, plus the list of its `type` tags
/// so a decoder can tell an unknown type from a malformed known one.
pub trait WireMessage: Serialize + DeserializeOwned {
    /// Every `type` value this message enum accepts.
    const TYPES: &'static [&'static str];
}

/// Supervisor → plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SupervisorMessage {
    /// First frame on every channel.
    Hello { protocol: u32, plugin: String, instance: String },
    /// An event on a topic the plugin may read. `sender` is set by the supervisor from the
    /// publishing connection's identity, never taken from a message field.
    Event {
        topic: String,
        #[serde(deserialize_with = "crate::strict_value::deserialize")]
        payload: Value,
        sender: String,
    },
    /// Reply to a [`PluginMessage::Publish`] the broker refused.
    Denied { topic: String, reason: String },
}

impl WireMessage for SupervisorMessage {
    const TYPES: &'static [&'static str] = &["hello", "event", "denied"];
}

/// Plugin → supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PluginMessage {
    /// Publish `payload` on `topic`; delivered only if the plugin may write the topic.
    Publish {
        topic: String,
        #[serde(deserialize_with = "crate::strict_value::deserialize")]
        payload: Value,
    },
}

impl WireMessage for PluginMessage {
    const TYPES: &'static [&'static str] = &["publish"];
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tag_of<T: Serialize>(msg: &T) -> String {
        let value = serde_json::to_value(msg).unwrap_or(Value::Null);
        value.get("type").and_then(Value::as_str).unwrap_or_default().to_owned()
    }

    #[test]
    fn types_lists_every_variant_tag() {
        let supervisor = [
            SupervisorMessage::Hello { protocol: 1, plugin: "p".into(), instance: "i".into() },
            SupervisorMessage::Event { topic: "t".into(), payload: json!(1), sender: "s".into() },
            SupervisorMessage::Denied { topic: "t".into(), reason: "r".into() },
        ];
        let tags: Vec<String> = supervisor.iter().map(tag_of).collect();
        assert_eq!(tags, SupervisorMessage::TYPES);
        let publish = PluginMessage::Publish { topic: "t".into(), payload: json!(null) };
        assert_eq!(vec![tag_of(&publish)], PluginMessage::TYPES);
    }

    #[test]
    fn wire_shape_is_flat_with_a_type_tag() {
        let msg = SupervisorMessage::Event {
            topic: "energy.update".into(),
            payload: json!({"watts": 42.5}),
            sender: "host".into(),
        };
        let value = serde_json::to_value(&msg).unwrap_or(Value::Null);
        assert_eq!(
            value,
            json!({"type": "event", "topic": "energy.update", "payload": {"watts": 42.5}, "sender": "host"})
        );
    }
}
