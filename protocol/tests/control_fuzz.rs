//! Random and mutated input never panics the control decoders, never grows the request
//! decoder past its cap, and every refusal can be answered.

mod control_samples;

use control_samples::*;
use serde_json::{json, Map, Value};
use std::io::Cursor;
use wf_protocol::control::{
    encode_client_message, encode_server_message, next_client_message, read_server_message, request_decoder,
    ClientMessage, Reply, Response, ServerMessage, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES,
};
use wf_protocol::decode_body;

/// xorshift64*: deterministic, dependency-free pseudo-randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const ALPHABET: &[u8] = b"{}[]\":,\\ 0123456789.-eEtrufalsn\x00\xff\xc3\xa9typerequesthelloidverbargsnameprotocol";
const KEYS: &[&str] = &[
    "type",
    "id",
    "verb",
    "args",
    "protocol",
    "client",
    "token",
    "name",
    "grace_ms",
    "manifest",
    "path",
    "inline",
    "document",
    "plugin_dir",
    "follow",
    "tail_bytes",
    "topics",
    "backlog",
    "topic",
    "payload",
    "limit",
    "x",
];
const STRINGS: &[&str] = &[
    "hello",
    "request",
    "list",
    "stop",
    "start",
    "logs",
    "publish",
    "subscribe_events",
    "cancel",
    "load",
    "validate",
    "/abs/path",
    "rel",
    "",
    "energy_monitor",
    "\u{0}",
    "é",
];

/// A random JSON value built from the protocol's own vocabulary, so that many inputs get
/// past the parser and exercise interpretation.
fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 6 { 4 } else { 7 }) {
        0 => json!(rng.next() % 1000),
        1 => json!(STRINGS[rng.below(STRINGS.len())]),
        2 => [json!(null), json!(true), json!(-1), json!(1.5), json!(u64::MAX)][rng.below(5)].clone(),
        3 => json!(rng.next()),
        4 => Value::Array((0..rng.below(3)).map(|_| random_value(rng, depth + 1)).collect()),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(5) {
                map.insert(KEYS[rng.below(KEYS.len())].to_owned(), random_value(rng, depth + 1));
            }
            Value::Object(map)
        }
    }
}

fn random_message(rng: &mut Rng) -> Value {
    let mut map = Map::new();
    match rng.below(3) {
        0 => {
            map.insert("type".into(), json!("hello"));
            map.insert("protocol".into(), json!(rng.below(3)));
            map.insert("client".into(), json!("c"));
        }
        1 => {
            map.insert("type".into(), json!("request"));
            map.insert("id".into(), json!(rng.next() % 100));
            map.insert("verb".into(), json!(STRINGS[rng.below(11)]));
            if rng.below(4) != 0 {
                map.insert("args".into(), random_args(rng));
            }
        }
        _ => {
            map.insert("type".into(), random_value(rng, 1));
        }
    }
    for _ in 0..rng.below(3).saturating_sub(1) {
        map.insert(KEYS[rng.below(KEYS.len())].to_owned(), random_value(rng, 1));
    }
    Value::Object(map)
}

/// An args object made of the verbs' own field names, mostly with plausible values.
fn random_args(rng: &mut Rng) -> Value {
    let mut map = Map::new();
    for _ in 0..rng.below(3) {
        let key = KEYS[7 + rng.below(KEYS.len() - 7)];
        let value = match (key, rng.below(3)) {
            (_, 0) => random_value(rng, 2),
            ("name" | "topic", _) => json!("energy_monitor"),
            ("manifest", _) => json!({"path": "/opt/p/manifest.json"}),
            ("topics", _) => json!(["a", "b"]),
            ("follow", _) => json!(rng.below(2) == 0),
            ("payload", _) => random_value(rng, 2),
            ("path" | "plugin_dir", _) => json!("/etc/x"),
            _ => json!(rng.below(2000)),
        };
        map.insert(key.to_owned(), value);
    }
    Value::Object(map)
}

fn feed(rng: &mut Rng, stream: &[u8]) {
    let mut decoder = request_decoder();
    let mut input = stream;
    loop {
        let chunk = if input.is_empty() { 0 } else { 1 + rng.below(input.len().min(500)) };
        let taken = decoder.push(&input[..chunk]);
        input = &input[taken..];
        assert!(decoder.buffered_capacity() <= MAX_REQUEST_BYTES as usize);
        match next_client_message(&mut decoder) {
            Ok(Some(_)) => {}
            Ok(None) if input.is_empty() => break,
            Ok(None) => {}
            Err(rejection) => {
                let answer = encode_server_message(&rejection.reply()).expect("every refusal is answerable");
                assert!(answer.len() < 1024);
                if rejection.close {
                    break;
                }
            }
        }
    }
}

#[test]
fn structured_random_messages_never_panic_and_round_trip_when_accepted() {
    let mut rng = Rng(0x00c0_ffee_1234_5678);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let body = random_message(&mut rng).to_string();
        let mut decoder = request_decoder();
        decoder.push(&frame_of(body.as_bytes()));
        match next_client_message(&mut decoder) {
            Ok(Some(msg)) => {
                accepted += 1;
                let again = encode_client_message(&msg).expect("re-encodable");
                let back: ClientMessage = decode_body(body_of(&again), MAX_REQUEST_BYTES).expect("re-decodable");
                assert_eq!(back, msg);
            }
            Ok(None) => panic!("a whole frame was pushed"),
            Err(rejection) => assert!(encode_server_message(&rejection.reply()).is_ok()),
        }
    }
    assert!(accepted > 100, "the generator should produce some valid messages, got {accepted}");
}

#[test]
fn random_byte_streams_never_panic_or_overgrow() {
    let mut rng = Rng(0x5eed_0bad_f00d_0001);
    for _ in 0..3000 {
        let mut stream = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let body: Vec<u8> = (0..rng.below(300))
                .map(|_| if rng.below(4) == 0 { rng.next() as u8 } else { ALPHABET[rng.below(ALPHABET.len())] })
                .collect();
            let len = if rng.below(5) == 0 { rng.next() as u32 } else { body.len() as u32 };
            stream.extend(len.to_be_bytes());
            stream.extend(&body);
        }
        feed(&mut rng, &stream);
        let _ = read_server_message(&mut Cursor::new(&stream));
    }
}

#[test]
fn mutated_valid_frames_never_panic() {
    let mut rng = Rng(0x0dd_ba11_5eed);
    let client_frames: Vec<Vec<u8>> = sample_calls()
        .into_iter()
        .enumerate()
        .map(|(id, call)| encode_client_message(&ClientMessage::request(id as u64, call)).expect("encode"))
        .collect();
    let mut server_frames: Vec<Vec<u8>> = sample_replies()
        .iter()
        .enumerate()
        .map(|(id, reply)| encode_server_message(&ok(id as u64, reply)).expect("encode"))
        .collect();
    for error in sample_errors() {
        let msg = ServerMessage::Response(Response { id: 1, outcome: Err(error) });
        server_frames.push(encode_server_message(&msg).expect("encode"));
    }
    for round in 0..20_000 {
        let source = if round % 2 == 0 { &client_frames } else { &server_frames };
        let mut mutated = source[rng.below(source.len())].clone();
        for _ in 0..1 + rng.below(3) {
            let at = 4 + rng.below(mutated.len() - 4);
            match rng.below(3) {
                0 => mutated[at] = rng.next() as u8,
                1 => mutated[at] = ALPHABET[rng.below(ALPHABET.len())],
                _ => {
                    mutated.remove(at);
                }
            }
        }
        let body_len = (mutated.len() - 4) as u32;
        mutated[..4].copy_from_slice(&body_len.to_be_bytes());
        feed(&mut rng, &mutated);
        if let Ok(Some(ServerMessage::Response(Response { outcome: Ok(result), .. }))) =
            read_server_message(&mut Cursor::new(&mutated))
        {
            for verb in wf_protocol::control::Verb::ALL {
                let _ = Reply::parse(verb, result.clone());
            }
        }
        let _ = decode_body::<ServerMessage>(body_of(&mutated), MAX_RESPONSE_BYTES);
    }
}
