//! Stores hold versioned records (see `record.rs`) under (virtual host, session id). They know
//! nothing of SSL objects; the engine hands them bytes and, for in-process stores, an opaque
//! attachment it can reuse on a hit.

pub mod memory;
pub mod redis;
pub mod revocations;
#[cfg(target_os = "linux")]
pub mod shm;
pub mod spec;

use std::any::Any;
use std::sync::Arc;
use std::task::Waker;

/// Longest session id TLS allows (RFC 5246 §7.4.1.2, RFC 8446 PSK ids we accept as keys).
pub const MAX_ID_LEN: usize = 32;

/// A store key: virtual host index and session id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Key {
    pub vhost: u32,
    len: u8,
    id: [u8; MAX_ID_LEN],
}

impl Key {
    /// `None` for an empty id or one over 32 bytes.
    pub fn new(vhost: u32, id: &[u8]) -> Option<Key> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return None;
        }
        let mut buf = [0u8; MAX_ID_LEN];
        buf[..id.len()].copy_from_slice(id);
        Some(Key {
            vhost,
            len: id.len() as u8,
            id: buf,
        })
    }

    pub fn id(&self) -> &[u8] {
        &self.id[..self.len as usize]
    }
}

/// What a store keeps for a key.
#[derive(Clone)]
pub struct Value {
    /// The encoded record.
    pub bytes: Arc<[u8]>,
    /// An in-process object the engine can reuse on a hit (the host's decoded session);
    /// stores that leave the process drop it.
    pub local: Option<Arc<dyn Any + Send + Sync>>,
    /// Memory the attachment holds, charged against the byte bound.
    pub local_cost: usize,
}

impl Value {
    pub fn new(bytes: Vec<u8>) -> Value {
        Value {
            bytes: bytes.into(),
            local: None,
            local_cost: 0,
        }
    }
}

/// The answer to a lookup.
pub enum Lookup {
    Hit(Value),
    Miss,
    /// The entry was there but its lifetime is over; the store dropped it.
    Expired,
    /// The store is fetching the answer; ask again when the host drives the handshake again.
    Pending,
    /// The store failed (down, timed out, answered garbage); treated as a miss.
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// One record is larger than the store can ever hold.
    TooLarge,
    /// The store could not be reached or answered with an error.
    Unavailable,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreError::TooLarge => "record is larger than the store's bound",
            StoreError::Unavailable => "store is unavailable",
        })
    }
}

/// Counters a store keeps, per virtual host or in total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub entries: u64,
    pub bytes: u64,
    pub evictions: u64,
    pub expirations: u64,
}

/// A store's health and counters, named, for the stats layer to list without knowing the
/// store: `section` names the group (`"remote"` for a store with a Redis tier, `"shm"` for the
/// shared-memory store; empty for a store that keeps none) and `counters` its values in a fixed
/// order (counters and gauges, e.g. the breaker state or the bytes mapped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreHealth {
    pub section: &'static str,
    pub counters: Vec<(&'static str, u64)>,
}

impl StoreHealth {
    pub fn new(section: &'static str, counters: &[(&'static str, u64)]) -> StoreHealth {
        StoreHealth {
            section,
            counters: counters.to_vec(),
        }
    }

    /// The counter `name` of `section`; 0 when the store keeps no such counter (another store,
    /// or none).
    pub fn get(&self, section: &str, name: &str) -> u64 {
        if self.section != section {
            return 0;
        }
        self.counters
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    }
}

/// The one interface every store implements. All methods are safe to call from many threads.
pub trait Store: Send + Sync {
    /// Looks `key` up at time `now` (seconds since the epoch).
    fn get(&self, key: &Key, now: u64) -> Lookup;
    /// Looks `key` up for a host that can pause the handshake: a store that fetches in the
    /// background may answer `Pending` and wake `waker` (from any thread) once the answer is
    /// there; asking again then gets it. The default answers as `get` does.
    fn get_async(&self, key: &Key, now: u64, waker: &Waker) -> Lookup {
        let _ = waker;
        self.get(key, now)
    }
    /// Stores `value` until `expires_at`, replacing any earlier value for `key`.
    fn put(&self, key: Key, value: Value, expires_at: u64) -> Result<(), StoreError>;
    /// Removes `key`; true when something was there.
    fn remove(&self, key: &Key) -> bool;
    /// Removes `key` atomically for a single-use entry: true for exactly one caller across
    /// everything that shares the store (workers of an shm store, servers of a Redis store).
    /// Memory and shm remove under their lock, so `remove` is that; a store with a remote tier
    /// must ask the remote (Redis `DEL` answers 1 once), never trust its local copy alone.
    fn take(&self, key: &Key) -> bool {
        self.remove(key)
    }
    /// Counters for one virtual host, or the whole store with `None`.
    fn usage(&self, vhost: Option<u32>) -> Usage;
    /// Whether a put keeps `Value::local` (an in-process object) for later hits. Stores that
    /// leave the process (shared memory, the host's own) drop it, so callers need not make one.
    fn keeps_local(&self) -> bool {
        true
    }
    /// The store's health and counters (`StoreHealth`), store-wide; none by default.
    fn health(&self) -> StoreHealth {
        StoreHealth::default()
    }
    /// The store itself, for the C functions of one kind of store (`snicache_shm_*`) to reach
    /// it by downcasting; `None` for stores that have no such functions.
    fn as_any(&self) -> Option<&dyn Any> {
        None
    }
    /// Replaces `key`'s record with `tombstone` (a fatal alert retired the session) everywhere
    /// it may be held: stores with a tier per server also tell the other servers' tiers. The
    /// default is `put`.
    fn invalidate(&self, key: Key, tombstone: Value, expires_at: u64) -> Result<(), StoreError> {
        self.put(key, tombstone, expires_at)
    }
    /// Revokes a stateless ticket: `key` is the engine's revocation key (vhost + the ticket's
    /// random identity), `tombstone` a record saying so, `expires_at` the end of the ticket's
    /// lifetime. `revoked` answers true for it until then, in every process (and, for a remote
    /// store, on every server) sharing the store. The default keeps it as an ordinary record.
    fn revoke(&self, key: Key, tombstone: Value, expires_at: u64) -> Result<(), StoreError> {
        self.put(key, tombstone, expires_at)
    }
    /// Whether `key` was revoked (`revoke`). Asked on every ticket decryption, so it never
    /// waits on a network: a remote store answers from what this process holds. The default
    /// looks the key up (`get`).
    fn revoked(&self, key: &Key, now: u64) -> bool {
        matches!(self.get(key, now), Lookup::Hit(_))
    }
}
