//! No input makes loading or deriving panic: random bytes, truncations and mutations
//! of valid documents. A small deterministic generator keeps runs reproducible.

use std::path::Path;
use wf_policy::{default_policy, derive_spec, load_manifest, load_policy};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const MANIFEST: &str = include_str!("../../schemas/examples/manifest-native-full.json");
const GRANTS_MANIFEST: &str = include_str!("../../schemas/examples/manifest-grants.json");
const POLICY: &str = include_str!("../../schemas/examples/policy-with-grants.json");

/// Interesting replacements: structure, limits, escapes, huge and odd numbers.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u0000",
    "..",
    "/",
    "0",
    "-1",
    "1e400",
    "1e30",
    "1.5",
    "18446744073709551616",
    "-0",
    "null",
    "true",
    "\"a\":1",
    "\u{0}",
    "\u{7f}",
    "é",
    "*",
    ".*",
];

fn exercise(bytes: &[u8]) {
    let policy = load_policy(bytes).unwrap_or_else(|_| default_policy());
    if let Ok(manifest) = load_manifest(bytes, &policy) {
        let _ = derive_spec(&manifest, Path::new("/srv/plugins/x"), &policy);
    }
    if let Ok(manifest) = load_manifest(bytes, &default_policy()) {
        let _ = derive_spec(&manifest, Path::new("/srv/plugins/x"), &default_policy());
    }
}

#[test]
fn random_bytes() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2000 {
        let len = rng.below(256);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        exercise(&bytes);
    }
}

#[test]
fn every_truncation_of_valid_documents() {
    for doc in [MANIFEST, GRANTS_MANIFEST, POLICY] {
        for end in 0..=doc.len() {
            exercise(&doc.as_bytes()[..end]);
        }
    }
}

#[test]
fn mutations_of_valid_documents() {
    let mut rng = XorShift(42);
    for round in 0..3000 {
        let base = [MANIFEST, GRANTS_MANIFEST, POLICY][round % 3];
        let mut text = base.as_bytes().to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(text.len());
            let cut = rng.below(4).min(text.len() - at);
            let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
            text.splice(at..at + cut, token.iter().copied());
        }
        exercise(&text);
    }
}

#[test]
fn deep_and_large_inputs() {
    exercise(&b"[".repeat(100_000));
    exercise(&b"{\"a\":".repeat(10_000));
    exercise(&vec![b'1'; 2 * 1024 * 1024]);
    let long_name = format!(r#"{{"name": "{}", "version": "1.0.0", "entry_point": "x"}}"#, "a".repeat(900_000));
    assert!(load_manifest(long_name.as_bytes(), &default_policy()).is_err());
}
