//! Revoked tickets of one process: the digests of tickets that must never resume again (a fatal
//! alert ended a connection that used or issued them), each kept until its ticket would have
//! expired anyway. Kept apart from the sessions so the check a ticket decryption makes costs a
//! few tens of nanoseconds however many sessions the store holds: revocations are rare, the set
//! is small and stays in cache, and an empty set answers with one atomic load.
//!
//! The memory store keeps one (`MemoryStore::revoke`); the Redis store's memory tier is one, fed
//! by this server's revocations and by other servers' through pub/sub (`redis_bus.rs`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use parking_lot::RwLock;

use super::Key;

const SHARDS: usize = 16;
/// Entries kept at least, whatever the store's entry cap.
pub const MIN_CAPACITY: usize = 1024;

/// Hashes a `Key` whose id is a digest already: folds its words, no per-byte work.
#[derive(Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(n)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(n)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type Map = HashMap<Key, u64, BuildHasherDefault<FoldHasher>>;

/// A bounded set of revoked keys with their expiry times.
pub struct Revocations {
    shards: Box<[RwLock<Map>]>,
    len: AtomicUsize,
    /// Most entries per shard.
    shard_cap: usize,
}

impl Revocations {
    /// A set holding at most about `capacity` live entries (at least `MIN_CAPACITY`).
    pub fn new(capacity: usize) -> Revocations {
        Revocations {
            shards: (0..SHARDS).map(|_| RwLock::new(Map::default())).collect(),
            len: AtomicUsize::new(0),
            shard_cap: capacity.max(MIN_CAPACITY).div_ceil(SHARDS),
        }
    }

    fn shard(&self, key: &Key) -> &RwLock<Map> {
        // Revocation ids are digests: their last byte is as good as any hash.
        let id = key.id();
        &self.shards[usize::from(id[id.len() - 1]) % SHARDS]
    }

    /// Revokes `key` until `expires_at`. When the set is full, expired entries go first, then
    /// those expiring soonest: a ticket dropped so would resume again, which is counted by the
    /// caller as nothing worse than before revocation existed; the bound keeps a flood of fatal
    /// alerts from growing memory without limit.
    pub fn insert(&self, key: Key, expires_at: u64, now: u64) {
        let mut map = self.shard(&key).write();
        if map.len() >= self.shard_cap && !map.contains_key(&key) {
            let before = map.len();
            map.retain(|_, e| *e > now);
            while map.len() >= self.shard_cap {
                let Some(soonest) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) else {
                    break;
                };
                map.remove(&soonest);
            }
            self.len.fetch_sub(before - map.len(), Relaxed);
        }
        let old = map.insert(key, expires_at);
        match old {
            None => {
                self.len.fetch_add(1, Relaxed);
            }
            // Keep the later expiry when revoked twice.
            Some(e) if e > expires_at => {
                map.insert(key, e);
            }
            Some(_) => {}
        }
    }

    /// Whether `key` is revoked at `now`.
    #[inline]
    pub fn contains(&self, key: &Key, now: u64) -> bool {
        if self.len.load(Relaxed) == 0 {
            return false;
        }
        self.shard(key).read().get(key).is_some_and(|e| *e > now)
    }

    /// Entries held (expired ones included until they are pushed out).
    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Key {
        let mut id = [0u8; 24];
        id[..4].copy_from_slice(&n.to_le_bytes());
        id[23] = n as u8;
        Key::new(1, &id).unwrap()
    }

    #[test]
    fn revoked_until_expiry() {
        let r = Revocations::new(0);
        assert!(!r.contains(&key(1), 100));
        r.insert(key(1), 200, 100);
        assert!(r.contains(&key(1), 199));
        assert!(
            !r.contains(&key(1), 200),
            "gone when the ticket would have expired"
        );
        assert!(!r.contains(&key(2), 150));
        r.insert(key(1), 150, 100);
        assert!(
            r.contains(&key(1), 180),
            "a second revocation never shortens the first"
        );
    }

    #[test]
    fn bounded_expired_first() {
        let r = Revocations::new(MIN_CAPACITY);
        for n in 0..(4 * MIN_CAPACITY) as u32 {
            r.insert(key(n), if n < 100 { 50 } else { 1000 + u64::from(n) }, 60);
        }
        assert!(r.len() <= MIN_CAPACITY + SHARDS, "{} entries", r.len());
        let last = (4 * MIN_CAPACITY - 1) as u32;
        assert!(
            r.contains(&key(last), 100),
            "the newest, latest-expiring survive"
        );
    }
}
