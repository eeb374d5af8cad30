//! One record: its canonical encoding, its hash, the line written, and parsing a line back.
//!
//! The exact format is described in the module documentation (`audit_log/mod.rs`).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// `prev` of the first record of a new chain.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Events may nest at most this deep, so every line stays within serde_json's parse limit.
pub const MAX_EVENT_DEPTH: usize = 64;

/// No line (record plus newline) is ever longer; the verifier rejects longer lines unread.
pub const MAX_RECORD_BYTES: usize = 8 * 1024 * 1024;

/// Top-level members of a record, in canonical (sorted) order, then `hash`.
pub const FIELDS: [&str; 6] = ["event", "kind", "prev", "seq", "time_ms", "hash"];

const HASH_HEX_LEN: usize = 64;
const HASH_PREFIX: &[u8] = b",\"hash\":\"";
/// `,"hash":"` + 64 hex digits + `"}`.
const HASH_SUFFIX_LEN: usize = HASH_PREFIX.len() + HASH_HEX_LEN + 2;

#[derive(Debug)]
pub struct TooDeep;

/// Appends the canonical encoding of `value` to `out`.
pub fn encode_value(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), TooDeep> {
    if depth > MAX_EVENT_DEPTH {
        return Err(TooDeep);
    }
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => encode_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                encode_value(out, item, depth + 1)?;
            }
            out.push(b']');
        }
        Value::Object(map) => encode_object(out, map, depth)?,
    }
    Ok(())
}

fn encode_object(out: &mut Vec<u8>, map: &Map<String, Value>, depth: usize) -> Result<(), TooDeep> {
    // Sorted here rather than trusting the map: serde_json keeps insertion order when any crate
    // in the build enables its `preserve_order` feature.
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        encode_str(out, key);
        out.push(b':');
        encode_value(out, item, depth + 1)?;
    }
    out.push(b'}');
    Ok(())
}

pub fn encode_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(HASH_HEX_LEN);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The fields of a record other than its hash; `event` is already canonically encoded.
pub struct Unsealed<'a> {
    pub seq: u64,
    pub time_ms: u64,
    pub kind: &'a str,
    pub event: &'a [u8],
    pub prev: &'a str,
}

/// A record ready to be written: the whole line (with its newline) and its hash.
pub struct Sealed {
    pub line: Vec<u8>,
    pub hash: String,
}

impl Unsealed<'_> {
    /// The canonical encoding of the record without `hash`: the bytes that are hashed.
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.event.len() + self.kind.len() + 128);
        out.extend_from_slice(b"{\"event\":");
        out.extend_from_slice(self.event);
        out.extend_from_slice(b",\"kind\":");
        encode_str(&mut out, self.kind);
        out.extend_from_slice(b",\"prev\":");
        encode_str(&mut out, self.prev);
        let _ = write!(Bytes(&mut out), ",\"seq\":{},\"time_ms\":{}}}", self.seq, self.time_ms);
        out
    }

    pub fn seal(&self) -> Sealed {
        let mut line = self.body();
        let hash = sha256_hex(&line);
        line.pop(); // the closing brace; `hash` goes last
        line.extend_from_slice(HASH_PREFIX);
        line.extend_from_slice(hash.as_bytes());
        line.extend_from_slice(b"\"}\n");
        Sealed { line, hash }
    }
}

struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A line that parsed as a record. Whether its hash verifies is `hash == computed_hash`.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub seq: u64,
    pub kind: String,
    pub event: Map<String, Value>,
    pub prev: String,
    pub hash: String,
    pub computed_hash: String,
}

impl Parsed {
    pub fn hash_ok(&self) -> bool {
        self.hash == self.computed_hash
    }
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    BadJson(String),
    NotAnObject,
    MissingField(&'static str),
    BadField { field: &'static str, expected: &'static str },
    UnexpectedField(String),
    HashNotLast,
}

/// Parses one line (without its newline). Never panics, whatever the bytes.
pub fn parse_line(line: &[u8]) -> Result<Parsed, LineError> {
    let value: Value = serde_json::from_slice(line).map_err(|e| LineError::BadJson(e.to_string()))?;
    let Value::Object(mut map) = value else { return Err(LineError::NotAnObject) };
    if let Some(extra) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(LineError::UnexpectedField(extra.clone()));
    }
    let seq = take_u64(&mut map, "seq")?;
    take_u64(&mut map, "time_ms")?;
    let kind = take_string(&mut map, "kind")?;
    let prev = take_hash(&mut map, "prev")?;
    let hash = take_hash(&mut map, "hash")?;
    let event = match map.remove("event") {
        None => return Err(LineError::MissingField("event")),
        Some(Value::Object(event)) => event,
        Some(_) => return Err(LineError::BadField { field: "event", expected: "a JSON object" }),
    };
    let body = body_without_hash(line, &hash).ok_or(LineError::HashNotLast)?;
    Ok(Parsed { seq, kind, event, prev, hash, computed_hash: sha256_hex(&body) })
}

/// The line with its trailing `,"hash":"…"}` replaced by `}`: the bytes the hash covers.
fn body_without_hash(line: &[u8], hash: &str) -> Option<Vec<u8>> {
    let split = line.len().checked_sub(HASH_SUFFIX_LEN)?;
    let (body, suffix) = line.split_at(split);
    let expected: Vec<u8> = [HASH_PREFIX, hash.as_bytes(), b"\"}"].concat();
    if suffix != expected.as_slice() {
        return None;
    }
    let mut out = body.to_vec();
    out.push(b'}');
    Some(out)
}

fn take(map: &mut Map<String, Value>, field: &'static str) -> Result<Value, LineError> {
    map.remove(field).ok_or(LineError::MissingField(field))
}

fn take_u64(map: &mut Map<String, Value>, field: &'static str) -> Result<u64, LineError> {
    take(map, field)?.as_u64().ok_or(LineError::BadField { field, expected: "an unsigned 64-bit integer" })
}

fn take_string(map: &mut Map<String, Value>, field: &'static str) -> Result<String, LineError> {
    match take(map, field)? {
        Value::String(s) => Ok(s),
        _ => Err(LineError::BadField { field, expected: "a string" }),
    }
}

fn take_hash(map: &mut Map<String, Value>, field: &'static str) -> Result<String, LineError> {
    let s = take_string(map, field)?;
    if is_hash_hex(&s) {
        Ok(s)
    } else {
        Err(LineError::BadField { field, expected: "64 lowercase hex digits" })
    }
}

pub fn is_hash_hex(s: &str) -> bool {
    s.len() == HASH_HEX_LEN && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::BadJson(e) => write!(f, "not valid JSON ({e})"),
            LineError::NotAnObject => f.write_str("not a JSON object"),
            LineError::MissingField(field) => write!(f, "missing field `{field}`"),
            LineError::BadField { field, expected } => write!(f, "field `{field}` is not {expected}"),
            LineError::UnexpectedField(field) => write!(f, "unexpected field `{field}`"),
            LineError::HashNotLast => f.write_str("`hash` is not the last member of the line"),
        }
    }
}
