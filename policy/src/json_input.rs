//! Bounded JSON input: a size cap and a nesting-depth cap checked before parsing, and a
//! parser that reports duplicate object keys (which `serde_json` would silently resolve
//! by keeping the last one) with their JSON pointers.

use crate::problem::{child, index, Problem, Problems};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

/// Largest manifest or policy accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Deepest nesting of arrays and objects accepted (the top-level value is depth 1).
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    #[error("document is {size} bytes; at most {max} are accepted")]
    TooLarge { size: usize, max: usize },
    #[error("nesting deeper than {max} levels at byte {offset}")]
    TooDeep { max: usize, offset: usize },
    #[error("invalid JSON at line {line} column {column}: {detail}")]
    Syntax { line: usize, column: usize, detail: String },
    #[error("duplicate key {key:?}: each key may appear once")]
    DuplicateKey { pointer: String, key: String },
}

impl InputError {
    fn into_problem(self) -> Problem {
        let pointer = match &self {
            InputError::DuplicateKey { pointer, .. } => pointer.clone(),
            _ => String::new(),
        };
        Problem::new(pointer, self.to_string())
    }
}

/// A parsed document plus the duplicate keys found in it (the first occurrence is kept).
#[derive(Debug)]
pub struct ParsedJson {
    pub value: Value,
    pub duplicate_keys: Problems,
}

/// Parses `bytes` as one JSON value after the size and depth caps. Size, depth and
/// syntax errors are fatal; duplicate keys are returned alongside the value so the
/// caller can report them together with every other problem.
pub fn parse(bytes: &[u8]) -> Result<ParsedJson, Problems> {
    check_size(bytes).map_err(|e| Problems::from(e.into_problem()))?;
    check_depth(bytes).map_err(|e| Problems::from(e.into_problem()))?;
    let duplicates = RefCell::new(Vec::new());
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let seed = ValueSeed { pointer: String::new(), duplicates: &duplicates };
    let value = seed
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|e| Problems::from(syntax_error(&e).into_problem()))?;
    let mut duplicate_keys = Problems::new();
    duplicate_keys.extend(duplicates.into_inner().into_iter().map(InputError::into_problem));
    Ok(ParsedJson { value, duplicate_keys })
}

fn check_size(bytes: &[u8]) -> Result<(), InputError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge { size: bytes.len(), max: MAX_INPUT_BYTES });
    }
    Ok(())
}

/// Counts bracket nesting outside strings, so a deeply nested document is refused
/// before any of it is allocated.
fn check_depth(bytes: &[u8]) -> Result<(), InputError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &byte) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(InputError::TooDeep { max: MAX_DEPTH, offset });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn syntax_error(error: &serde_json::Error) -> InputError {
    let full = error.to_string();
    // serde_json appends " at line L column C"; keep only the description.
    let detail = full.split(" at line ").next().unwrap_or(&full).to_owned();
    InputError::Syntax { line: error.line(), column: error.column(), detail }
}

struct ValueSeed<'a> {
    pointer: String,
    duplicates: &'a RefCell<Vec<InputError>>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = ValueSeed { pointer: index(&self.pointer, items.len()), duplicates: self.duplicates };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let pointer = child(&self.pointer, &key);
            let seed = ValueSeed { pointer: pointer.clone(), duplicates: self.duplicates };
            let value = map.next_value_seed(seed)?;
            if seen.insert(key.clone()) {
                object.insert(key, value);
            } else {
                self.duplicates.borrow_mut().push(InputError::DuplicateKey { pointer, key });
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointers(problems: &Problems) -> Vec<String> {
        problems.iter().map(|p| p.pointer.clone()).collect()
    }

    #[test]
    fn parses_a_plain_document() {
        let parsed = parse(br#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}]}"#).unwrap();
        assert_eq!(parsed.value["a"][6]["b"], serde_json::json!({}));
        assert!(parsed.duplicate_keys.is_empty());
    }

    #[test]
    fn reports_every_duplicate_key_with_its_pointer() {
        let parsed = parse(br#"{"a": 1, "b": {"c/d": 1, "c/d": 2}, "a": 3, "l": [{"x": 1, "x": 1}]}"#).unwrap();
        assert_eq!(pointers(&parsed.duplicate_keys), ["/b/c~1d", "/a", "/l/0/x"]);
        // The first occurrence is kept.
        assert_eq!(parsed.value["a"], 1);
    }

    #[test]
    fn refuses_input_over_the_size_cap() {
        let big = vec![b' '; MAX_INPUT_BYTES + 1];
        let err = parse(&big).unwrap_err();
        assert!(err.to_string().contains("bytes; at most"), "{err}");
    }

    #[test]
    fn refuses_nesting_over_the_depth_cap_but_not_at_it() {
        let at_cap = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(at_cap.as_bytes()).is_ok());
        let over = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let err = parse(over.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("nesting deeper than 64"), "{err}");
    }

    #[test]
    fn brackets_inside_strings_do_not_count_as_nesting() {
        let text = format!(r#"{{"k": "{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
        assert!(parse(text.as_bytes()).is_ok());
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = parse(b"{\n  \"a\": ,\n}").unwrap_err();
        assert!(err.to_string().contains("line 2 column"), "{err}");
        assert!(parse(b"{} trailing").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn huge_numbers_parse_as_floats_and_are_left_to_the_checks() {
        let parsed = parse(b"[18446744073709551616, 1e300]").unwrap();
        assert!(parsed.value[0].is_f64());
        assert!(parse(b"[1e400]").is_err());
    }
}
