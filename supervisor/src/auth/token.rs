//! Bearer tokens: 256 bits written as 64 hex digits, stored in the policy only as SHA-256.
//!
//! The hash of a token is SHA-256 over its 64 hex digits in lowercase ASCII, i.e. what
//! `printf %s "$TOKEN" | sha256sum` prints. Presented tokens may use either case. A token is
//! high-entropy, so a plain (unsalted, fast) hash is enough to keep the policy file from
//! being a credential. Presented digests are compared with every accepted hash in constant time.

use sha2::{Digest as _, Sha256};
use std::fmt;
use thiserror::Error;

/// Hex digits in a token (256 bits).
pub const TOKEN_HEX_LEN: usize = 64;

type Digest = [u8; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("a token must be {TOKEN_HEX_LEN} hex digits, got {len} bytes")]
    WrongLength { len: usize },
    #[error("a token must be hex digits only; byte {index} is not one")]
    NotHex { index: usize },
}

/// A presented token reduced to its SHA-256; the token text is not kept.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest(Digest);

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

impl TokenDigest {
    /// Checks the token's shape and hashes its lowercase form.
    pub fn of_token(token: &str) -> Result<Self, TokenError> {
        let bytes = token.as_bytes();
        if bytes.len() != TOKEN_HEX_LEN {
            return Err(TokenError::WrongLength { len: bytes.len() });
        }
        let mut lower = [0u8; TOKEN_HEX_LEN];
        for (index, (out, &b)) in lower.iter_mut().zip(bytes).enumerate() {
            if !b.is_ascii_hexdigit() {
                return Err(TokenError::NotHex { index });
            }
            *out = b.to_ascii_lowercase();
        }
        Ok(Self(Sha256::digest(lower).into()))
    }

    /// The lowercase hex form, as it belongs in the policy's `token_sha256`.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The policy's accepted token hashes, decoded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedHashes {
    required: bool,
    hashes: Vec<Digest>,
}

impl AcceptedHashes {
    /// Entries that are not 64 hex digits (the policy check rejects them) can never match,
    /// but still make tokens required: a broken list fails closed.
    pub fn from_policy(token_sha256: &[String]) -> Self {
        Self {
            required: !token_sha256.is_empty(),
            hashes: token_sha256.iter().filter_map(|h| decode_hash(h)).collect(),
        }
    }

    /// Whether peers must present a token at all.
    pub fn required(&self) -> bool {
        self.required
    }

    /// Whether `digest` equals any accepted hash. Every hash is compared, whatever matched.
    pub fn matches(&self, digest: &TokenDigest) -> bool {
        count_matches(&digest.0, &self.hashes, eq_mask) != 0
    }
}

fn decode_hash(hex: &str) -> Option<Digest> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *slot = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Some(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// ORs `eq` over every accepted hash: no early exit, so timing does not depend on which
/// entry (if any) matched.
fn count_matches(digest: &Digest, hashes: &[Digest], mut eq: impl FnMut(&Digest, &Digest) -> u8) -> u8 {
    let mut hit = 0u8;
    for hash in hashes {
        hit |= eq(digest, hash);
    }
    std::hint::black_box(hit)
}

/// 1 when `a == b`, else 0; touches every byte and never branches on the data.
fn eq_mask(a: &Digest, b: &Digest) -> u8 {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    let diff = u16::from(std::hint::black_box(diff));
    // diff == 0 → 0xFFFF >> 8 has bit 0 set; diff in 1..=255 → (diff - 1) >> 8 == 0.
    ((diff.wrapping_sub(1) >> 8) & 1) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    // printf %s 00112233…eeff | sha256sum
    const TOKEN_SHA256: &str = "2a8abfa8cb9906290437854193ca6bca41d4d4e26d1d454bd66a35158095e737";

    #[test]
    fn digest_is_sha256_of_the_lowercase_hex_text() {
        let expected = Sha256::digest(TOKEN.as_bytes());
        let digest = TokenDigest::of_token(TOKEN).expect("valid token");
        assert_eq!(digest.0.as_slice(), expected.as_slice());
        assert_eq!(digest.to_hex().len(), 64);
    }

    #[test]
    fn digest_matches_a_known_sha256sum_output() {
        assert_eq!(TokenDigest::of_token(TOKEN).expect("valid token").to_hex(), TOKEN_SHA256);
    }

    #[test]
    fn uppercase_token_hashes_like_lowercase() {
        let upper = TOKEN.to_ascii_uppercase();
        assert_eq!(TokenDigest::of_token(&upper), TokenDigest::of_token(TOKEN));
    }

    #[test]
    fn wrong_length_tokens_are_rejected() {
        assert_eq!(TokenDigest::of_token(""), Err(TokenError::WrongLength { len: 0 }));
        assert_eq!(TokenDigest::of_token(&TOKEN[..63]), Err(TokenError::WrongLength { len: 63 }));
        let long = format!("{TOKEN}0");
        assert_eq!(TokenDigest::of_token(&long), Err(TokenError::WrongLength { len: 65 }));
        // 64 characters but 128 bytes: length is counted in bytes.
        let multibyte = "é".repeat(64);
        assert_eq!(TokenDigest::of_token(&multibyte), Err(TokenError::WrongLength { len: 128 }));
    }

    #[test]
    fn non_hex_tokens_are_rejected() {
        let mut bad = TOKEN.to_string();
        bad.replace_range(10..11, "g");
        assert_eq!(TokenDigest::of_token(&bad), Err(TokenError::NotHex { index: 10 }));
        let spaced = format!(" {}", &TOKEN[1..]);
        assert_eq!(TokenDigest::of_token(&spaced), Err(TokenError::NotHex { index: 0 }));
        let multibyte = format!("{}é", &TOKEN[..62]);
        assert_eq!(TokenDigest::of_token(&multibyte), Err(TokenError::NotHex { index: 62 }));
    }

    #[test]
    fn eq_mask_is_one_only_for_equal_digests() {
        let a = [0x5au8; 32];
        assert_eq!(eq_mask(&a, &a), 1);
        for position in 0..32 {
            for flip in 1..=255u8 {
                let mut b = a;
                b[position] ^= flip;
                assert_eq!(eq_mask(&a, &b), 0, "byte {position} differing by {flip:#x}");
            }
        }
    }

    #[test]
    fn every_accepted_hash_is_compared_even_after_a_match() {
        let wanted = [7u8; 32];
        let hashes = [wanted, [1u8; 32], [2u8; 32], [3u8; 32]];
        let mut calls = 0;
        let hit = count_matches(&wanted, &hashes, |a, b| {
            calls += 1;
            eq_mask(a, b)
        });
        assert_eq!(hit, 1);
        assert_eq!(calls, hashes.len());
    }

    #[test]
    fn a_match_in_any_position_counts() {
        let digest = TokenDigest::of_token(TOKEN).expect("valid token");
        let other = "f".repeat(64);
        for list in [vec![TOKEN_SHA256.to_string(), other.clone()], vec![other.clone(), TOKEN_SHA256.to_string()]] {
            assert!(AcceptedHashes::from_policy(&list).matches(&digest));
        }
        assert!(!AcceptedHashes::from_policy(&[other]).matches(&digest));
    }

    #[test]
    fn uppercase_policy_hash_still_matches() {
        let digest = TokenDigest::of_token(TOKEN).expect("valid token");
        assert!(AcceptedHashes::from_policy(&[TOKEN_SHA256.to_ascii_uppercase()]).matches(&digest));
    }

    #[test]
    fn malformed_policy_entries_require_tokens_but_never_match() {
        let accepted = AcceptedHashes::from_policy(&["not-a-hash".to_string(), TOKEN.to_string() + "x"]);
        assert!(accepted.required());
        assert!(!accepted.matches(&TokenDigest::of_token(TOKEN).expect("valid token")));
    }

    #[test]
    fn the_token_itself_is_not_its_hash() {
        // Storing the token instead of its hash in the policy must not work.
        let digest = TokenDigest::of_token(TOKEN).expect("valid token");
        assert!(!AcceptedHashes::from_policy(&[TOKEN.to_string()]).matches(&digest));
    }

    #[test]
    fn empty_policy_list_requires_no_token() {
        assert!(!AcceptedHashes::from_policy(&[]).required());
    }

    #[test]
    fn debug_does_not_print_the_digest() {
        let digest = TokenDigest::of_token(TOKEN).expect("valid token");
        assert_eq!(format!("{digest:?}"), "TokenDigest(..)");
    }
}
