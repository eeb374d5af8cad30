//! Serde helpers that route free-form JSON through the crate's duplicate-key-refusing
//! deserialiser, for fields that are optional.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One strictly parsed value.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::strict_value::deserialize(deserializer).map(Strict)
    }
}

/// An optional free-form value; JSON `null` and an absent field are both `None`.
pub(crate) fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Option::<Strict>::deserialize(deserializer).map(|value| value.map(|Strict(inner)| inner))
}
