//! Parsing the JSON an operator hands to `publish` the way the daemon parses frames:
//! duplicate keys are an error, not "the last one wins" (which is what `serde_json::Value`
//! does, and which would silently send something other than what was typed).

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// The payload as typed, or serde_json's message (with line and column) for why not.
pub fn parse_payload(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<StrictValue>(text).map(|StrictValue(value)| value)
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Number::from_f64(value).map(Value::Number).ok_or_else(|| E::custom("numbers must be finite"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_json_value_parses_to_what_serde_json_makes_of_it() {
        for text in ["{\"watts\": 42.5, \"tags\": [\"a\", null, true, -3]}", "\"text\"", "7", "[]", "null"] {
            let expected: Value = serde_json::from_str(text).expect("valid JSON");
            assert_eq!(parse_payload(text).expect(text), expected);
        }
    }

    #[test]
    fn duplicate_keys_anywhere_are_refused() {
        let error = parse_payload("{\"a\": {\"b\": 1, \"b\": 2}}").expect_err("duplicate inner key");
        assert!(error.to_string().contains("duplicate key \"b\""), "{error}");
        assert!(parse_payload("[{\"x\": 1, \"x\": 1}]").is_err());
    }

    #[test]
    fn malformed_text_is_refused_not_guessed() {
        for text in ["", "{", "{\"a\": 1} trailing", "NaN", "{'a': 1}"] {
            assert!(parse_payload(text).is_err(), "{text:?}");
        }
    }
}
