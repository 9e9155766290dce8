//! Revoked tickets of one process: the keys (vhost + the ticket's random identity) of tickets
//! that must never resume again (a fatal alert ended a connection that used or issued them),
//! each kept until its ticket would have expired anyway. Kept apart from the sessions so the
//! check a ticket decryption makes costs a few nanoseconds however many sessions the store
//! holds: an empty set answers with one atomic load, and otherwise a counting filter read
//! without a lock (at most 1 MiB, made at the first revocation) answers "not revoked", the
//! common case, with one memory access; only the tickets it cannot rule out (the revoked ones,
//! and a few percent of the others) take the shard's lock and its map.
//!
//! The memory store keeps one (`MemoryStore::revoke`); the Redis store's memory tier is one, fed
//! by this server's revocations and by other servers' through pub/sub (`redis_bus.rs`).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;

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

/// Counters of the filter: 8 per entry the set may hold, within these bounds.
const FILTER_MIN: usize = 1 << 12;
const FILTER_MAX: usize = 1 << 20;

/// A counting filter over the set's keys: two one-byte counters per key, in the same 64-byte
/// line, each counting the keys held that map to it. A key whose counters are not both nonzero
/// is not in the set. Counters that reach 255 stay there (a few more keys then go on to the
/// map). Updated by `insert` under the key's shard lock, before a key enters its map and after
/// it leaves it, so the filter never rules out a key its map holds.
struct Filter {
    counters: Box<[AtomicU8]>,
    mask: usize,
}

impl Filter {
    fn new(capacity: usize) -> Filter {
        let n = capacity
            .saturating_mul(8)
            .min(FILTER_MAX)
            .next_power_of_two()
            .max(FILTER_MIN);
        Filter {
            counters: (0..n).map(|_| AtomicU8::new(0)).collect(),
            mask: n - 1,
        }
    }

    fn slots(&self, key: &Key) -> [usize; 2] {
        // The map's hash, finished (murmur3's fmix64) so that its low bits are as good as its high.
        let mut h = BuildHasherDefault::<FoldHasher>::default().hash_one(key);
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        let first = h as usize & self.mask;
        let second = (first & !63) | ((h >> 58) as usize);
        [first, second & self.mask]
    }

    fn may_contain(&self, key: &Key) -> bool {
        self.slots(key)
            .iter()
            .all(|&i| self.counters[i].load(Relaxed) != 0)
    }

    fn add(&self, key: &Key) {
        for i in self.slots(key) {
            let _ = self.counters[i].fetch_update(Relaxed, Relaxed, |c| c.checked_add(1));
        }
    }

    fn remove(&self, key: &Key) {
        for i in self.slots(key) {
            let _ = self.counters[i].fetch_update(Relaxed, Relaxed, |c| {
                (c != u8::MAX).then(|| c.wrapping_sub(1))
            });
        }
    }
}

/// A bounded set of revoked keys with their expiry times.
pub struct Revocations {
    shards: Box<[RwLock<Map>]>,
    len: AtomicUsize,
    /// Most entries per shard.
    shard_cap: usize,
    filter: OnceLock<Filter>,
}

impl Revocations {
    /// A set holding at most about `capacity` live entries (at least `MIN_CAPACITY`).
    pub fn new(capacity: usize) -> Revocations {
        Revocations {
            shards: (0..SHARDS).map(|_| RwLock::new(Map::default())).collect(),
            len: AtomicUsize::new(0),
            shard_cap: capacity.max(MIN_CAPACITY).div_ceil(SHARDS),
            filter: OnceLock::new(),
        }
    }

    fn shard(&self, key: &Key) -> &RwLock<Map> {
        // Revocation ids end with a random identity: their last byte is as good as any hash.
        let id = key.id();
        &self.shards[usize::from(id[id.len() - 1]) % SHARDS]
    }

    /// Revokes `key` until `expires_at`. When the set is full, expired entries go first, then
    /// those expiring soonest: a ticket dropped so would resume again, which is counted by the
    /// caller as nothing worse than before revocation existed; the bound keeps a flood of fatal
    /// alerts from growing memory without limit.
    pub fn insert(&self, key: Key, expires_at: u64, now: u64) {
        let filter = self
            .filter
            .get_or_init(|| Filter::new(self.shard_cap.saturating_mul(SHARDS)));
        let mut map = self.shard(&key).write();
        if map.len() >= self.shard_cap && !map.contains_key(&key) {
            let before = map.len();
            map.retain(|k, e| {
                let keep = *e > now;
                if !keep {
                    filter.remove(k);
                }
                keep
            });
            while map.len() >= self.shard_cap {
                let Some(soonest) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) else {
                    break;
                };
                map.remove(&soonest);
                filter.remove(&soonest);
            }
            self.len.fetch_sub(before - map.len(), Relaxed);
        }
        if !map.contains_key(&key) {
            filter.add(&key);
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
        if !self.filter.get().is_some_and(|f| f.may_contain(key)) {
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
        // The filter never rules out a key the set holds, through all those evictions.
        for n in 0..(4 * MIN_CAPACITY) as u32 {
            let held = r
                .shard(&key(n))
                .read()
                .get(&key(n))
                .is_some_and(|e| *e > 100);
            assert_eq!(r.contains(&key(n), 100), held, "key {n}");
        }
    }

    #[test]
    fn unbounded_capacity() {
        let r = Revocations::new(usize::MAX);
        r.insert(key(1), 200, 100);
        assert!(r.contains(&key(1), 150));
        assert_eq!(r.filter.get().map(|f| f.counters.len()), Some(FILTER_MAX));
    }

    #[test]
    fn filter_rules_out_most_of_the_others() {
        let r = Revocations::new(100_000);
        for n in 0..100_000u32 {
            r.insert(key(n), 1000, 0);
        }
        let f = r.filter.get().expect("made at the first revocation");
        let maybe = (100_000..200_000u32)
            .filter(|&n| f.may_contain(&key(n)))
            .count();
        assert!(maybe < 10_000, "{maybe} of 100000 not ruled out");
        assert!((0..100_000u32).all(|n| r.contains(&key(n), 999)));
    }
}
