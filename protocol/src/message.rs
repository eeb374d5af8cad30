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
    /// Reply to a [`PluginMessage::Publish`], [`PluginMessage::Subscribe`] or
    /// [`PluginMessage::Unsubscribe`] the broker refused (for subscriptions, one per refused
    /// topic).
    Denied { topic: String, reason: String },
    /// Reply to every [`PluginMessage::Subscribe`] and [`PluginMessage::Unsubscribe`]: the
    /// plugin's whole subscription set once the request has been applied, sorted.
    Subscribed { topics: Vec<String> },
}

impl WireMessage for SupervisorMessage {
    const TYPES: &'static [&'static str] = &["hello", "event", "denied", "subscribed"];
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
        /// A `sender` the plugin put in its publish. The broker never uses it (the sender of
        /// a delivered event is the publishing connection's identity); it drops it and records
        /// the attempt. Kept here only so that it can be reported.
        #[serde(
            rename = "sender",
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present_string"
        )]
        claimed_sender: Option<String>,
    },
    /// Add topics (or `prefix.*` patterns) to the plugin's subscription set. Each must be
    /// covered by the plugin's read grant; the rest are refused one by one.
    Subscribe { topics: Vec<String> },
    /// Remove topics (or patterns, compared literally) from the subscription set.
    Unsubscribe { topics: Vec<String> },
}

/// A member that may be absent but, when present, must be a string (`null` included is not):
/// serde's `Option` would read `null` as absent.
fn present_string<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    String::deserialize(deserializer).map(Some)
}

impl PluginMessage {
    /// A publish as an honest plugin sends it.
    pub fn publish(topic: impl Into<String>, payload: Value) -> Self {
        PluginMessage::Publish { topic: topic.into(), payload, claimed_sender: None }
    }
}

impl WireMessage for PluginMessage {
    const TYPES: &'static [&'static str] = &["publish", "subscribe", "unsubscribe"];
}

/// The body of an `event` frame, borrowed, so that the broker encodes one frame per event
/// and shares it between readers instead of cloning the payload for each.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventRef<'a> {
    Event { topic: &'a str, payload: &'a Value, sender: &'a str },
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
            SupervisorMessage::Subscribed { topics: vec!["t".into()] },
        ];
        let tags: Vec<String> = supervisor.iter().map(tag_of).collect();
        assert_eq!(tags, SupervisorMessage::TYPES);
        let plugin = [
            PluginMessage::publish("t", json!(null)),
            PluginMessage::Subscribe { topics: vec![] },
            PluginMessage::Unsubscribe { topics: vec![] },
        ];
        let tags: Vec<String> = plugin.iter().map(tag_of).collect();
        assert_eq!(tags, PluginMessage::TYPES);
    }

    #[test]
    fn a_borrowed_event_encodes_exactly_as_the_owned_one() {
        let payload = json!({"watts": 1.5, "tags": ["a"]});
        let owned =
            SupervisorMessage::Event { topic: "t.a".into(), payload: payload.clone(), sender: "plugin:p".into() };
        let borrowed = EventRef::Event { topic: "t.a", payload: &payload, sender: "plugin:p" };
        assert_eq!(serde_json::to_vec(&borrowed).ok(), serde_json::to_vec(&owned).ok());
    }

    #[test]
    fn the_located_payload_is_exactly_the_payloads_json() {
        for payload in [json!(1), json!({"b": [1, "x\"y"], "a": null}), json!("é\u{1}"), json!([])] {
            let (frame, at) = crate::encode_event_locating_payload("t.a", &payload, "plugin:p\"q", 1 << 20)
                .unwrap_or_else(|e| panic!("{e}"));
            let back: Value = serde_json::from_slice(&frame[at]).unwrap_or(Value::Null);
            assert_eq!(back, payload);
        }
    }

    #[test]
    fn a_claimed_sender_is_parsed_so_it_can_be_reported_and_is_never_sent_by_honest_code() {
        let forged: PluginMessage =
            serde_json::from_str(r#"{"type":"publish","topic":"t","payload":1,"sender":"host"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            forged,
            PluginMessage::Publish { topic: "t".into(), payload: json!(1), claimed_sender: Some("host".into()) }
        );
        for not_a_string in ["null", "5", "{}"] {
            let body = format!(r#"{{"type":"publish","topic":"t","payload":1,"sender":{not_a_string}}}"#);
            assert!(serde_json::from_str::<PluginMessage>(&body).is_err(), "sender {not_a_string} was accepted");
        }
        let honest = serde_json::to_value(PluginMessage::publish("t", json!(1))).unwrap_or(Value::Null);
        assert_eq!(honest, json!({"type": "publish", "topic": "t", "payload": 1}));
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
