//! Revoked tickets of one process: the keys (vhost + the ticket's random identity) of tickets
//! that must never resume again (a fatal alert ended a connection that used or issued them),
//! each kept until its ticket would have expired anyway. Kept apart from the sessions so the
//! check a ticket decryption makes costs a few nanoseconds however many sessions the store
//! holds: an empty set answers with one atomic load, and otherwise a filter read
//! without a lock (128 KiB, made at the first revocation) answers "not revoked", the common
//! case, with one memory access; only the tickets it cannot rule out (the revoked ones,
//! and a few percent of the others) take the shard's lock and its map.
//!
//! The memory store keeps one (`MemoryStore::revoke`); the Redis store's memory tier is one, fed
//! by this server's revocations and by other servers' through pub/sub (`redis_bus.rs`).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{
    fence, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
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

/// A key as the set holds it, with its hash worked out once: the filter, the shard and the map
/// all use that hash, so a check reads the caller's freshly built key once to hash it and (when
/// the filter lets it through) once to compare it, instead of hashing it again per use.
#[derive(Clone, Copy)]
struct Held {
    hash: u64,
    key: Key,
}

impl Held {
    fn new(key: &Key) -> Held {
        // The key's hash, finished (murmur3's fmix64) so its low bits are as good as its high.
        let mut h = BuildHasherDefault::<FoldHasher>::default().hash_one(key);
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        Held { hash: h, key: *key }
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl Eq for Held {}

impl std::hash::Hash for Held {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Passes `Held`'s hash through.
#[derive(Default)]
struct PassHasher(u64);

impl Hasher for PassHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only Held is hashed, with write_u64")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map = HashMap<Held, u64, BuildHasherDefault<PassHasher>>;

/// The filter's 64-bit words: 2^20 bits, 128 KiB, few enough to stay in a core's cache; about
/// 3% of the keys not held get past it with 100,000 held, and with far more it lets most
/// through to the map, which answers as it would without it.
const FILTER_WORDS: usize = 1 << 14;

/// A filter over the set's keys: two bits per key in one 64-bit word. A key whose two bits are
/// not both set is not in the set. `insert` sets them, under the key's shard lock, before the
/// key enters its map; keys pushed out leave their bits set (stale) until enough of them make
/// `Revocations` rebuild the filter from the maps, with every shard locked, under a sequence
/// count (a seqlock): a reader that overlaps a rebuild asks the map instead, so the filter
/// never rules out a key its map holds.
struct Filter {
    words: Box<[AtomicU64]>,
    /// Odd while a rebuild runs.
    seq: AtomicU64,
    /// Keys pushed out of the maps since the last rebuild (their bits still set).
    stale: AtomicUsize,
}

impl Filter {
    fn new() -> Filter {
        Filter {
            words: (0..FILTER_WORDS).map(|_| AtomicU64::new(0)).collect(),
            seq: AtomicU64::new(0),
            stale: AtomicUsize::new(0),
        }
    }

    /// The key's word and its two bits.
    fn slot(h: u64) -> (usize, u64) {
        let bits = (1u64 << ((h >> 52) & 63)) | (1u64 << (h >> 58));
        (h as usize & (FILTER_WORDS - 1), bits)
    }

    fn may_contain(&self, hash: u64) -> bool {
        let (i, bits) = Filter::slot(hash);
        let seq = self.seq.load(Acquire);
        let word = self.words[i].load(Relaxed);
        fence(Acquire);
        if seq & 1 == 1 || self.seq.load(Relaxed) != seq {
            return true;
        }
        word & bits == bits
    }

    fn add(&self, hash: u64) {
        let (i, bits) = Filter::slot(hash);
        self.words[i].fetch_or(bits, Relaxed);
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

    fn shard(&self, held: &Held) -> &RwLock<Map> {
        // Bits of the hash that neither the filter's word nor the map's bucket is chosen by.
        &self.shards[(held.hash >> 32) as usize % SHARDS]
    }

    /// Revokes `key` until `expires_at`. When the set is full, expired entries go first, then
    /// those expiring soonest: a ticket dropped so would resume again, which is counted by the
    /// caller as nothing worse than before revocation existed; the bound keeps a flood of fatal
    /// alerts from growing memory without limit.
    pub fn insert(&self, key: Key, expires_at: u64, now: u64) {
        let filter = self.filter.get_or_init(Filter::new);
        let mut pushed_out = 0;
        let key = Held::new(&key);
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
            pushed_out = before - map.len();
        }
        if !map.contains_key(&key) {
            filter.add(key.hash);
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
        drop(map);
        if pushed_out > 0 {
            let stale = filter.stale.fetch_add(pushed_out, Relaxed) + pushed_out;
            if stale >= self.rebuild_at() {
                self.rebuild(filter);
            }
        }
    }

    /// Stale keys in the filter that make it worth rebuilding.
    fn rebuild_at(&self) -> usize {
        (self.len() / 4).max(MIN_CAPACITY)
    }

    /// Rebuilds the filter from the maps, every shard locked (no insert runs meanwhile).
    fn rebuild(&self, filter: &Filter) {
        let maps: Vec<_> = self.shards.iter().map(|s| s.write()).collect();
        if filter.stale.load(Relaxed) < self.rebuild_at() {
            return; // Another insert rebuilt it.
        }
        filter.seq.fetch_add(1, Relaxed);
        fence(Release);
        for w in filter.words.iter() {
            w.store(0, Relaxed);
        }
        for held in maps.iter().flat_map(|m| m.keys()) {
            filter.add(held.hash);
        }
        filter.stale.store(0, Relaxed);
        filter.seq.fetch_add(1, Release);
    }

    /// Whether `key` is revoked at `now`.
    #[inline]
    pub fn contains(&self, key: &Key, now: u64) -> bool {
        if self.len.load(Relaxed) == 0 {
            return false;
        }
        let Some(filter) = self.filter.get() else {
            return false;
        };
        let held = Held::new(key);
        if !filter.may_contain(held.hash) {
            return false;
        }
        self.shard(&held)
            .read()
            .get(&held)
            .is_some_and(|e| *e > now)
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
        // The filter never rules out a key the set holds, through all those evictions and the
        // rebuilds they made.
        assert!(r.filter.get().is_some_and(|f| f.seq.load(Relaxed) >= 2));
        for n in 0..(4 * MIN_CAPACITY) as u32 {
            let k = Held::new(&key(n));
            let held = r.shard(&k).read().get(&k).is_some_and(|e| *e > 100);
            assert_eq!(r.contains(&key(n), 100), held, "key {n}");
        }
    }

    #[test]
    fn held_keys_found_while_others_churn_and_the_filter_is_rebuilt() {
        let r = Revocations::new(0);
        for n in 0..100 {
            r.insert(key(n), u64::MAX, 0);
        }
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for n in 1000..50_000 {
                    r.insert(key(n), 1000, 0);
                }
                done.store(true, Relaxed);
            });
            let mut rounds = 0;
            while !done.load(Relaxed) || rounds == 0 {
                for n in 0..100 {
                    assert!(r.contains(&key(n), 10), "key {n} lost");
                }
                rounds += 1;
            }
        });
        assert!(r.filter.get().is_some_and(|f| f.seq.load(Relaxed) >= 20));
    }

    #[test]
    fn unbounded_capacity() {
        let r = Revocations::new(usize::MAX);
        r.insert(key(1), 200, 100);
        assert!(r.contains(&key(1), 150));
        assert_eq!(r.filter.get().map(|f| f.words.len()), Some(FILTER_WORDS));
    }

    #[test]
    fn filter_rules_out_most_of_the_others() {
        let r = Revocations::new(200_000);
        for n in 0..100_000u32 {
            r.insert(key(n), 1000, 0);
        }
        let f = r.filter.get().expect("made at the first revocation");
        let maybe = (100_000..200_000u32)
            .filter(|&n| f.may_contain(Held::new(&key(n)).hash))
            .count();
        assert!(maybe < 10_000, "{maybe} of 100000 not ruled out");
        assert!((0..100_000u32).all(|n| r.contains(&key(n), 999)));
    }
}
