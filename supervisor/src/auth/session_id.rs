//! Session ids: 128 random bits from the kernel, written as 32 lowercase hex digits.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;

/// Random bytes in a session id.
pub const SESSION_ID_BYTES: usize = 16;

/// An opaque session handle. It identifies a session inside the daemon; the daemon binds
/// it to its connection and should never accept it from a different connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    pub fn from_bytes(bytes: &[u8; SESSION_ID_BYTES]) -> Self {
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where session ids come from; tests substitute a predictable source.
pub trait IdSource: Send + Sync {
    fn fill(&self, buf: &mut [u8; SESSION_ID_BYTES]) -> io::Result<()>;
}

/// The kernel CSPRNG via `getrandom(2)`; blocks only before the pool is first seeded.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl IdSource for OsRandom {
    fn fill(&self, buf: &mut [u8; SESSION_ID_BYTES]) -> io::Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            let rest = &mut buf[filled..];
            // SAFETY: `rest` is a valid, writable buffer of exactly `rest.len()` bytes.
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            filled += n.unsigned_abs();
        }
        Ok(())
    }
}

/// A fresh id from `source`.
pub fn new_session_id(source: &dyn IdSource) -> io::Result<SessionId> {
    let mut bytes = [0u8; SESSION_ID_BYTES];
    source.fill(&mut bytes)?;
    Ok(SessionId::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_32_lowercase_hex_digits() {
        let id = new_session_id(&OsRandom).expect("getrandom");
        assert_eq!(id.as_str().len(), 32);
        assert!(id.as_str().bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn os_random_ids_do_not_repeat() {
        let ids: HashSet<SessionId> = (0..1_000).map(|_| new_session_id(&OsRandom).expect("getrandom")).collect();
        assert_eq!(ids.len(), 1_000);
    }

    #[test]
    fn hex_encoding_keeps_every_byte() {
        let mut bytes = [0u8; SESSION_ID_BYTES];
        bytes[0] = 0x0f;
        bytes[15] = 0xa0;
        assert_eq!(SessionId::from_bytes(&bytes).as_str(), "0f0000000000000000000000000000a0");
    }

    #[test]
    fn id_serialises_as_a_plain_string() {
        let id = SessionId::from_bytes(&[0xab; SESSION_ID_BYTES]);
        assert_eq!(serde_json::to_string(&id).expect("serialise"), format!("\"{}\"", "ab".repeat(16)));
    }
}
