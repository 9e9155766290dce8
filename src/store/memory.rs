//! The in-process store: sharded hash maps, each shard behind its own `parking_lot` mutex with an
//! intrusive LRU list, bounded by bytes and by entries. get/put/remove are O(1); expiry is lazy
//! (checked on lookup), and eviction drops the least recently used entry of the shard.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

use super::{Key, Lookup, Store, StoreError, Usage, Value};

/// Bytes charged per entry on top of its record: key, map slot, slab entry, list links, the
/// record's allocation header, and the slack of the growing map and slab. Measured: a flood of
/// a million ~250-byte records into 10 MB (tests/flood.rs) grows resident memory by about 690
/// bytes per kept entry.
pub const ENTRY_OVERHEAD: usize = 448;
const NIL: u32 = u32::MAX;
const MIN_SHARD_BYTES: u64 = 64 * 1024;
const MAX_SHARDS: u64 = 64;

/// A key with its SipHash, computed once per operation: the shard is picked from bits 32..,
/// and the shard's map reuses the hash instead of hashing the key a second time.
#[derive(Clone, Copy)]
struct Hashed {
    hash: u64,
    key: Key,
}

impl PartialEq for Hashed {
    fn eq(&self, other: &Hashed) -> bool {
        self.key == other.key
    }
}

impl Eq for Hashed {}

impl Hash for Hashed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Hands the precomputed hash of a `Hashed` to the map unchanged.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Entry {
    key: Hashed,
    value: Value,
    expires_at: u64,
    cost: usize,
    prev: u32,
    next: u32,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Hashed, u32, BuildHasherDefault<PassThrough>>,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    bytes: u64,
}

/// Per-vhost counters, updated under the shard lock that caused them.
#[derive(Default)]
struct Counters {
    entries: AtomicU64,
    bytes: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
}

pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    shard_bytes: u64,
    shard_entries: u64,
    counters: Box<[Counters]>,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            head: NIL,
            tail: NIL,
            ..Default::default()
        }
    }

    fn entry(&self, i: u32) -> &Entry {
        self.slots[i as usize]
            .as_ref()
            .expect("linked slot is occupied")
    }

    fn entry_mut(&mut self, i: u32) -> &mut Entry {
        self.slots[i as usize]
            .as_mut()
            .expect("linked slot is occupied")
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let e = self.entry(i);
            (e.prev, e.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.entry_mut(p).next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.entry_mut(n).prev = prev,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let e = self.entry_mut(i);
            e.prev = NIL;
            e.next = old;
        }
        match old {
            NIL => self.tail = i,
            o => self.entry_mut(o).prev = i,
        }
        self.head = i;
    }

    fn take(&mut self, i: u32) -> Entry {
        self.unlink(i);
        let e = self.slots[i as usize]
            .take()
            .expect("linked slot is occupied");
        self.map.remove(&e.key);
        self.free.push(i);
        self.bytes -= e.cost as u64;
        e
    }

    fn insert(&mut self, e: Entry) -> u32 {
        let key = e.key;
        self.bytes += e.cost as u64;
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(e);
                i
            }
            None => {
                self.slots.push(Some(e));
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(key, i);
        self.push_front(i);
        i
    }
}

impl MemoryStore {
    /// A store holding at most `max_bytes` (records plus `ENTRY_OVERHEAD` each) and
    /// `max_entries` entries, with counters for `vhosts` virtual hosts.
    pub fn new(max_bytes: u64, max_entries: u64, vhosts: usize) -> MemoryStore {
        let shards = (max_bytes / MIN_SHARD_BYTES)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two();
        let shards = if shards > MAX_SHARDS {
            shards / 2
        } else {
            shards
        };
        // Every shard holds at least one entry and the shards together at most `max_entries`.
        let shards = shards.min(1 << max_entries.max(1).ilog2());
        MemoryStore {
            shards: (0..shards).map(|_| Mutex::new(Shard::new())).collect(),
            hasher: RandomState::new(),
            shard_bytes: max_bytes / shards,
            shard_entries: max_entries.max(1) / shards,
            counters: (0..vhosts.max(1)).map(|_| Counters::default()).collect(),
        }
    }

    fn shard(&self, key: &Key) -> (&Mutex<Shard>, Hashed) {
        let hash = self.hasher.hash_one(key);
        // The map's buckets use the low bits and its tags the top 7: keep the shard apart.
        let shard = &self.shards[((hash >> 32) as usize) & (self.shards.len() - 1)];
        (shard, Hashed { hash, key: *key })
    }

    fn counters(&self, vhost: u32) -> &Counters {
        &self.counters[(vhost as usize).min(self.counters.len() - 1)]
    }

    fn dropped(&self, e: &Entry) {
        let c = self.counters(e.key.key.vhost);
        c.entries.fetch_sub(1, Relaxed);
        c.bytes.fetch_sub(e.cost as u64, Relaxed);
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &Key, now: u64) -> Lookup {
        let (shard, hashed) = self.shard(key);
        let mut shard = shard.lock();
        let Some(&i) = shard.map.get(&hashed) else {
            return Lookup::Miss;
        };
        if shard.entry(i).expires_at <= now {
            let e = shard.take(i);
            drop(shard);
            self.dropped(&e);
            self.counters(key.vhost).expirations.fetch_add(1, Relaxed);
            return Lookup::Expired;
        }
        shard.unlink(i);
        shard.push_front(i);
        Lookup::Hit(shard.entry(i).value.clone())
    }

    fn put(&self, key: Key, value: Value, expires_at: u64) -> Result<(), StoreError> {
        let cost = value.bytes.len() + value.local_cost + ENTRY_OVERHEAD;
        if cost as u64 > self.shard_bytes {
            return Err(StoreError::TooLarge);
        }
        let mut evicted = Vec::new();
        let (shard, hashed) = self.shard(&key);
        let mut shard = shard.lock();
        if let Some(&i) = shard.map.get(&hashed) {
            evicted.push((shard.take(i), false));
        }
        while shard.tail != NIL
            && (shard.bytes + cost as u64 > self.shard_bytes
                || shard.map.len() as u64 >= self.shard_entries)
        {
            let tail = shard.tail;
            evicted.push((shard.take(tail), true));
        }
        shard.insert(Entry {
            key: hashed,
            value,
            expires_at,
            cost,
            prev: NIL,
            next: NIL,
        });
        drop(shard);
        let c = self.counters(key.vhost);
        c.entries.fetch_add(1, Relaxed);
        c.bytes.fetch_add(cost as u64, Relaxed);
        // Values are dropped outside the lock: an attachment's drop calls into the host library.
        for (e, is_eviction) in evicted {
            self.dropped(&e);
            if is_eviction {
                self.counters(e.key.key.vhost)
                    .evictions
                    .fetch_add(1, Relaxed);
            }
        }
        Ok(())
    }

    fn remove(&self, key: &Key) -> bool {
        let (shard, hashed) = self.shard(key);
        let mut shard = shard.lock();
        let Some(&i) = shard.map.get(&hashed) else {
            return false;
        };
        let e = shard.take(i);
        drop(shard);
        self.dropped(&e);
        true
    }

    fn usage(&self, vhost: Option<u32>) -> Usage {
        let read = |c: &Counters| Usage {
            entries: c.entries.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            evictions: c.evictions.load(Relaxed),
            expirations: c.expirations.load(Relaxed),
        };
        match vhost {
            Some(v) => read(self.counters(v)),
            None => self
                .counters
                .iter()
                .map(read)
                .fold(Usage::default(), |a, b| Usage {
                    entries: a.entries + b.entries,
                    bytes: a.bytes + b.bytes,
                    evictions: a.evictions + b.evictions,
                    expirations: a.expirations + b.expirations,
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(v: u32, n: u32) -> Key {
        let mut id = [7u8; 32];
        id[..4].copy_from_slice(&n.to_be_bytes());
        Key::new(v, &id).unwrap()
    }

    fn value(len: usize) -> Value {
        Value::new(vec![1; len])
    }

    #[test]
    fn put_get_remove() {
        let s = MemoryStore::new(1 << 20, 1000, 2);
        s.put(key(0, 1), value(10), 100).unwrap();
        assert!(matches!(s.get(&key(0, 1), 50), Lookup::Hit(v) if v.bytes.len() == 10));
        assert!(
            matches!(s.get(&key(1, 1), 50), Lookup::Miss),
            "another vhost's key misses"
        );
        assert!(s.remove(&key(0, 1)));
        assert!(!s.remove(&key(0, 1)));
        assert!(matches!(s.get(&key(0, 1), 50), Lookup::Miss));
        assert_eq!(s.usage(None), Usage::default());
    }

    #[test]
    fn expired_entries_are_dropped_and_counted() {
        let s = MemoryStore::new(1 << 20, 1000, 1);
        s.put(key(0, 1), value(10), 100).unwrap();
        assert!(matches!(s.get(&key(0, 1), 100), Lookup::Expired));
        assert!(matches!(s.get(&key(0, 1), 50), Lookup::Miss));
        let u = s.usage(Some(0));
        assert_eq!((u.entries, u.expirations), (0, 1));
    }

    #[test]
    fn byte_bound_holds_and_evicts_least_recent() {
        let cap = 64 * 1024;
        let s = MemoryStore::new(cap, u64::MAX, 1);
        for n in 0..1000 {
            s.put(key(0, n), value(1000), u64::MAX).unwrap();
            assert!(s.usage(None).bytes <= cap);
        }
        let u = s.usage(None);
        assert!(u.evictions > 900, "evictions {}", u.evictions);
        assert!(
            matches!(s.get(&key(0, 999), 0), Lookup::Hit(_)),
            "newest survives"
        );
        assert!(
            matches!(s.get(&key(0, 0), 0), Lookup::Miss),
            "oldest went first"
        );
    }

    #[test]
    fn recently_used_entries_survive_eviction() {
        let s = MemoryStore::new(64 * 1024, 4, 1);
        for n in 0..4 {
            s.put(key(0, n), value(10), u64::MAX).unwrap();
        }
        assert!(matches!(s.get(&key(0, 0), 0), Lookup::Hit(_)));
        s.put(key(0, 4), value(10), u64::MAX).unwrap();
        assert!(matches!(s.get(&key(0, 0), 0), Lookup::Hit(_)));
        assert!(matches!(s.get(&key(0, 1), 0), Lookup::Miss));
        assert_eq!(s.usage(None).entries, 4);
    }

    #[test]
    fn entry_cap_holds_across_shards() {
        for cap in [1, 3, 10, 100] {
            let s = MemoryStore::new(4 << 20, cap, 1);
            for n in 0..1000 {
                s.put(key(0, n), value(10), u64::MAX).unwrap();
                assert!(s.usage(None).entries <= cap, "cap {cap}");
            }
            assert!(s.usage(None).entries > 0);
        }
    }

    #[test]
    fn oversized_record_is_refused() {
        let s = MemoryStore::new(64 * 1024, 10, 1);
        assert_eq!(
            s.put(key(0, 1), value(70 * 1024), 1).err(),
            Some(StoreError::TooLarge)
        );
    }

    #[test]
    fn replacing_a_key_keeps_one_entry() {
        let s = MemoryStore::new(1 << 20, 10, 1);
        s.put(key(0, 1), value(10), 9).unwrap();
        s.put(key(0, 1), value(20), 9).unwrap();
        let u = s.usage(None);
        assert_eq!(u.entries, 1);
        assert_eq!(u.bytes, (20 + ENTRY_OVERHEAD) as u64);
        assert_eq!(u.evictions, 0);
    }

    #[test]
    fn many_threads_keep_counts_consistent() {
        let s = Arc::new(MemoryStore::new(256 * 1024, u64::MAX, 4));
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for n in 0..5000 {
                        s.put(key(t, n), value(100), u64::MAX).unwrap();
                        let _ = s.get(&key(t, n / 2), 0);
                        if n % 3 == 0 {
                            s.remove(&key(t, n));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let total = s.usage(None);
        assert!(total.bytes <= 256 * 1024);
        assert_eq!(total.bytes, total.entries * (100 + ENTRY_OVERHEAD) as u64);
        let per: u64 = (0..4).map(|v| s.usage(Some(v)).entries).sum();
        assert_eq!(per, total.entries);
    }
}
