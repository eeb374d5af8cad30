//! Per-uid shares of the daemon's connection and stream slots, so that one uid (allowed or
//! not) cannot take them all: each uid holds at most [`MAX_CONNECTIONS_PER_UID`] connections
//! and [`MAX_STREAMS_PER_UID`] open streams, and the last [`ROOT_RESERVED_CONNECTIONS`]
//! connections (and [`ROOT_RESERVED_SESSIONS`] sessions) are kept for uid 0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Connections one non-root uid may hold at once.
pub const MAX_CONNECTIONS_PER_UID: usize = 64;
/// Connection slots that only root may take.
pub const ROOT_RESERVED_CONNECTIONS: usize = 64;
/// Sessions of the session table that only root may take.
pub const ROOT_RESERVED_SESSIONS: usize = 64;
/// Streams (`subscribe_events`, `logs` with follow) open at once on one connection.
pub const MAX_STREAMS_PER_CONNECTION: usize = 8;
/// Streams open at once over all connections of one non-root uid.
pub const MAX_STREAMS_PER_UID: usize = 64;

const ROOT: u32 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("every connection slot open to uid {uid} is in use")]
    NoConnectionSlot { uid: u32 },
    #[error("uid {uid} already holds {MAX_CONNECTIONS_PER_UID} connections")]
    UidConnections { uid: u32 },
    #[error("too many open streams: at most {MAX_STREAMS_PER_CONNECTION} per connection")]
    ConnectionStreams,
    #[error("too many open streams: at most {MAX_STREAMS_PER_UID} per uid")]
    UidStreams,
}

#[derive(Default)]
struct Counts {
    connections: usize,
    per_uid_connections: HashMap<u32, usize>,
    per_uid_streams: HashMap<u32, usize>,
}

/// Shared by every connection of one daemon.
pub struct PeerLimits {
    max_connections: usize,
    counts: Mutex<Counts>,
}

impl PeerLimits {
    pub fn new(max_connections: usize) -> Arc<Self> {
        Arc::new(Self { max_connections, counts: Mutex::new(Counts::default()) })
    }

    /// A connection slot for `uid`, held until the slot is dropped.
    pub fn admit(self: &Arc<Self>, uid: u32) -> Result<ConnectionSlot, LimitError> {
        let mut counts = self.lock();
        let open_to_uid = if uid == ROOT {
            self.max_connections
        } else {
            self.max_connections.saturating_sub(ROOT_RESERVED_CONNECTIONS)
        };
        if counts.connections >= open_to_uid {
            return Err(LimitError::NoConnectionSlot { uid });
        }
        let held = counts.per_uid_connections.entry(uid).or_default();
        if uid != ROOT && *held >= MAX_CONNECTIONS_PER_UID {
            return Err(LimitError::UidConnections { uid });
        }
        *held += 1;
        counts.connections += 1;
        Ok(ConnectionSlot { limits: Arc::clone(self), uid })
    }

    fn open_stream(self: &Arc<Self>, uid: u32) -> Result<StreamSlot, LimitError> {
        let mut counts = self.lock();
        let open = counts.per_uid_streams.entry(uid).or_default();
        if uid != ROOT && *open >= MAX_STREAMS_PER_UID {
            return Err(LimitError::UidStreams);
        }
        *open += 1;
        Ok(StreamSlot { limits: Arc::clone(self), uid })
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Decrement `uid`'s entry, dropping it at zero so that the maps hold only live uids.
fn release(map: &mut HashMap<u32, usize>, uid: u32) {
    if let Some(held) = map.get_mut(&uid) {
        *held = held.saturating_sub(1);
        if *held == 0 {
            map.remove(&uid);
        }
    }
}

/// One admitted connection.
pub struct ConnectionSlot {
    limits: Arc<PeerLimits>,
    uid: u32,
}

impl ConnectionSlot {
    /// A stream slot for this connection's uid, given `open_here` streams open on it.
    pub fn open_stream(&self, open_here: usize) -> Result<StreamSlot, LimitError> {
        if open_here >= MAX_STREAMS_PER_CONNECTION {
            return Err(LimitError::ConnectionStreams);
        }
        self.limits.open_stream(self.uid)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.limits.lock();
        counts.connections = counts.connections.saturating_sub(1);
        release(&mut counts.per_uid_connections, self.uid);
    }
}

/// One open stream; its task holds it until the stream ends.
pub struct StreamSlot {
    limits: Arc<PeerLimits>,
    uid: u32,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        release(&mut self.limits.lock().per_uid_streams, self.uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_gets_its_share_and_root_keeps_its_reserve() {
        let limits = PeerLimits::new(MAX_CONNECTIONS_PER_UID + ROOT_RESERVED_CONNECTIONS + 1);
        let mine: Vec<_> = (0..MAX_CONNECTIONS_PER_UID).map(|_| limits.admit(1000).expect("in share")).collect();
        assert_eq!(limits.admit(1000).err(), Some(LimitError::UidConnections { uid: 1000 }));
        let other = limits.admit(1001).expect("the last non-reserved slot");
        assert_eq!(limits.admit(1002).err(), Some(LimitError::NoConnectionSlot { uid: 1002 }));
        let root: Vec<_> = (0..ROOT_RESERVED_CONNECTIONS).map(|_| limits.admit(0).expect("reserved")).collect();
        assert_eq!(limits.admit(0).err(), Some(LimitError::NoConnectionSlot { uid: 0 }));
        drop((mine, other, root));
        assert!(limits.admit(1000).is_ok(), "slots come back when connections close");
    }

    #[test]
    fn streams_are_capped_per_connection_and_per_uid() {
        let limits = PeerLimits::new(1024);
        let connection = limits.admit(1000).expect("admitted");
        assert_eq!(connection.open_stream(MAX_STREAMS_PER_CONNECTION).err(), Some(LimitError::ConnectionStreams));
        let open: Vec<_> = (0..MAX_STREAMS_PER_UID).map(|_| connection.open_stream(0).expect("in share")).collect();
        let second = limits.admit(1000).expect("admitted");
        assert_eq!(second.open_stream(0).err(), Some(LimitError::UidStreams));
        drop(open);
        assert!(second.open_stream(0).is_ok());
    }
}
