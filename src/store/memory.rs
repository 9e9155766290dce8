//! The in-process store: sharded hash tables, each shard behind its own `parking_lot` mutex,
//! bounded by bytes and by entries. Entries live in the table's slots (open addressing), so a
//! lookup touches one slot and the record and nothing else. get/put/remove are O(1) (amortized); expiry is
//! lazy (checked on lookup). Eviction is second chance (CLOCK) over a queue of keys in
//! insertion order: a hit only marks its entry; the eviction pass gives a marked entry at the
//! front another turn at the back (clearing the mark) and drops the first unmarked one.
//! Recently used sessions survive as with LRU, without relinking a list on every hit.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

use super::{Key, Lookup, Store, StoreError, Usage, Value, MAX_ID_LEN};

/// Bytes charged per entry on top of its record: the table slot (hash, key, value handles,
/// expiry, cost, mark: 120 bytes, at a load between 3/8 and 3/4), its 16-byte queue slot, the
/// record's allocation header, and the slack of the growing table and queue (at worst about
/// 420 bytes in all). Measured: a flood of a million ~320-byte records into 10 MB
/// (tests/flood.rs) grows resident memory by 8.9 MiB for the 10.0 MiB the store charges.
pub const ENTRY_OVERHEAD: usize = 448;
const MIN_SHARD_BYTES: u64 = 64 * 1024;
const MAX_SHARDS: u64 = 64;

/// A key with its hash, computed once per operation: the shard is picked from bits 32.. and
/// the slot in the shard's table from the low bits.
#[derive(Clone, Copy)]
struct Hashed {
    hash: u64,
    key: Key,
}

struct Entry {
    value: Value,
    expires_at: u64,
    cost: usize,
    /// Which insertion this is: a queue slot naming another is stale.
    seq: u64,
    /// Used since the eviction pass last saw it: it gets a second chance.
    referenced: bool,
}

/// A keyed hash of a session key: folded 64×64→128-bit multiplications (the construction of
/// foldhash and wyhash) over the zero-padded id, with a per-store random seed. A quarter of
/// SipHash's cost for a 32-byte id; the seed keeps the bucket of an id unpredictable, so ids
/// offered by clients cannot be chosen to collide.
struct KeyHasher([u64; 4]);

impl KeyHasher {
    fn new() -> KeyHasher {
        let r = RandomState::new();
        KeyHasher([0u64, 1, 2, 3].map(|n| r.hash_one(n)))
    }

    fn hash(&self, key: &Key) -> u64 {
        fn fold(a: u64, b: u64) -> u64 {
            let p = u128::from(a) * u128::from(b);
            (p as u64) ^ ((p >> 64) as u64)
        }
        let id = key.id();
        let mut buf = [0u8; MAX_ID_LEN];
        buf[..id.len()].copy_from_slice(id);
        let w = |i: usize| u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let s = &self.0;
        let meta = (u64::from(key.vhost) << 8) | id.len() as u64;
        let a = fold(w(0) ^ s[0], w(1) ^ s[1] ^ meta);
        let b = fold(w(2) ^ s[2], w(3) ^ s[3]);
        fold(a ^ s[1], b ^ s[2]).rotate_left(23) ^ a
    }
}

/// Open addressing with linear probing: the entry lives in the probed slot itself, so a lookup
/// costs one memory access where a map with separate control bytes and buckets costs two.
/// Removal shifts the rest of the probe run back (no tombstones). At most 3/4 full: it doubles
/// before it would be fuller, and never shrinks (its peak is bounded by the shard's bounds).
#[derive(Default)]
struct Table {
    slots: Vec<Option<(Hashed, Entry)>>,
    len: usize,
}

impl Table {
    fn len(&self) -> usize {
        self.len
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & (self.slots.len() - 1)
    }

    /// The slot, on `hash`'s probe run, of the entry that `is` picks.
    fn probe(&self, hash: u64, is: impl Fn(&Hashed, &Entry) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        loop {
            match &self.slots[i] {
                None => return None,
                Some((k, e)) if k.hash == hash && is(k, e) => return Some(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    fn find(&self, key: &Hashed) -> Option<usize> {
        self.probe(key.hash, |k, _| k.key == key.key)
    }

    #[cfg(test)]
    fn get(&self, key: &Hashed) -> Option<&Entry> {
        let i = self.find(key)?;
        self.slots[i].as_ref().map(|(_, e)| e)
    }

    fn get_mut(&mut self, key: &Hashed) -> Option<&mut Entry> {
        let i = self.find(key)?;
        self.slots[i].as_mut().map(|(_, e)| e)
    }

    /// Places an entry whose key is not in the table.
    fn insert(&mut self, key: Hashed, entry: Entry) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            let cap = (self.slots.len() * 2).max(16);
            let old = mem::replace(&mut self.slots, (0..cap).map(|_| None).collect());
            for (k, e) in old.into_iter().flatten() {
                self.place(k, e);
            }
        }
        self.place(key, entry);
        self.len += 1;
    }

    fn place(&mut self, key: Hashed, entry: Entry) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key.hash);
        while self.slots[i].is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = Some((key, entry));
    }

    /// The slot of the entry made by insertion `seq` (unique in a shard) with this hash.
    fn find_seq(&self, hash: u64, seq: u64) -> Option<usize> {
        self.probe(hash, |_, e| e.seq == seq)
    }

    #[cfg(test)]
    fn remove(&mut self, key: &Hashed) -> Option<(Hashed, Entry)> {
        let i = self.find(key)?;
        Some(self.remove_at(i))
    }

    fn remove_at(&mut self, mut hole: usize) -> (Hashed, Entry) {
        let gone = self.slots[hole].take();
        self.len -= 1;
        let mask = self.slots.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let Some((k, _)) = &self.slots[j] else {
                break;
            };
            // The entry at j moves into the hole when the hole lies on its probe path, that is
            // when it is at least as far from its home slot as the hole is.
            let home = self.home(k.hash);
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
        }
        gone.expect("an occupied slot")
    }
}

#[derive(Default)]
struct Shard {
    map: Table,
    /// Entries in insertion order, as (hash, `seq`): 16 bytes where the key would take 48.
    /// Removed entries leave stale slots behind, skipped when met and swept out when they
    /// reach half the live ones.
    queue: VecDeque<(u64, u64)>,
    next_seq: u64,
    bytes: u64,
}

/// Per-vhost counters, updated under the shard lock that caused them; each vhost's on cache
/// lines of its own, since threads serving different vhosts update them at once.
#[derive(Default)]
#[repr(align(128))]
struct Counters {
    entries: AtomicU64,
    bytes: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
}

/// A shard on cache lines of its own: threads working on neighbouring shards do not take
/// turns invalidating each other's lock word.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

pub struct MemoryStore {
    shards: Box<[Padded]>,
    hasher: KeyHasher,
    shard_bytes: u64,
    shard_entries: u64,
    counters: Box<[Counters]>,
    /// Revoked tickets, apart from the sessions (`revocations.rs`).
    revocations: super::revocations::Revocations,
}

impl Shard {
    /// Removes the entry of `key`, if any.
    fn take(&mut self, key: &Hashed) -> Option<(Hashed, Entry)> {
        let i = self.map.find(key)?;
        Some(self.take_at(i))
    }

    fn take_at(&mut self, i: usize) -> (Hashed, Entry) {
        let (k, e) = self.map.remove_at(i);
        self.bytes -= e.cost as u64;
        // Stale queue slots stay bounded: at most half as many as live ones, plus some slack.
        if self.queue.len() > self.map.len() + self.map.len() / 2 + 64 {
            let mut queue = mem::take(&mut self.queue);
            queue.retain(|&(hash, seq)| self.map.find_seq(hash, seq).is_some());
            queue.shrink_to(2 * queue.len());
            self.queue = queue;
        }
        (k, e)
    }

    fn insert(&mut self, key: Hashed, value: Value, expires_at: u64, cost: usize) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += cost as u64;
        self.map.insert(
            key,
            Entry {
                value,
                expires_at,
                cost,
                seq,
                referenced: false,
            },
        );
        self.queue.push_back((key.hash, seq));
    }

    /// Evicts in queue order until `extra` more bytes (and, with `slot`, one more entry) fit
    /// the bounds. A marked entry at the front gets its second chance instead: it goes to the
    /// back with its mark cleared. Every entry is passed over at most once, so this ends.
    fn make_room(
        &mut self,
        extra: u64,
        slot: bool,
        max_bytes: u64,
        max_entries: u64,
        evicted: &mut Vec<(Hashed, Entry)>,
    ) {
        while self.bytes + extra > max_bytes || (slot && self.map.len() as u64 >= max_entries) {
            let Some(front) = self.queue.pop_front() else {
                break;
            };
            // A stale slot (its entry is gone) is dropped.
            if let Some(i) = self.map.find_seq(front.0, front.1) {
                let (_, e) = self.map.slots[i].as_mut().expect("found");
                if mem::take(&mut e.referenced) {
                    self.queue.push_back(front);
                } else {
                    evicted.push(self.take_at(i));
                }
            }
        }
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
            shards: (0..shards)
                .map(|_| Padded(Mutex::new(Shard::default())))
                .collect(),
            hasher: KeyHasher::new(),
            shard_bytes: max_bytes / shards,
            shard_entries: max_entries.max(1) / shards,
            counters: (0..vhosts.max(1)).map(|_| Counters::default()).collect(),
            // As many as sessions fit: an entry of the set (a 64-byte slot, at most 5/8 used,
            // tables it outgrew kept) costs less than a session's `ENTRY_OVERHEAD`.
            revocations: super::revocations::Revocations::new(
                usize::try_from(max_entries.min(max_bytes / ENTRY_OVERHEAD as u64))
                    .unwrap_or(usize::MAX),
            ),
        }
    }

    fn shard(&self, key: &Key) -> (&Mutex<Shard>, Hashed) {
        let hash = self.hasher.hash(key);
        // The shard's table takes its slot from the low bits: pick the shard from bits 32.. so
        // the two stay independent.
        let shard = &self.shards[((hash >> 32) as usize) & (self.shards.len() - 1)].0;
        (shard, Hashed { hash, key: *key })
    }

    fn counters(&self, vhost: u32) -> &Counters {
        &self.counters[(vhost as usize).min(self.counters.len() - 1)]
    }

    /// Drops every session (revocations stay), e.g. when this tier may have missed
    /// invalidations: later lookups ask the tier behind it again.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let old = mem::take(&mut *shard.0.lock());
            // Values are dropped outside the lock (an attachment's drop calls the host).
            for gone in old.map.slots.into_iter().flatten() {
                self.dropped(&gone);
            }
        }
    }

    fn dropped(&self, (k, e): &(Hashed, Entry)) {
        let c = self.counters(k.key.vhost);
        c.entries.fetch_sub(1, Relaxed);
        c.bytes.fetch_sub(e.cost as u64, Relaxed);
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &Key, now: u64) -> Lookup {
        let (shard, hashed) = self.shard(key);
        let mut shard = shard.lock();
        let Some(e) = shard.map.get_mut(&hashed) else {
            return Lookup::Miss;
        };
        if e.expires_at > now {
            e.referenced = true;
            return Lookup::Hit(e.value.clone());
        }
        let gone = shard.take(&hashed);
        drop(shard);
        if let Some(gone) = gone {
            self.dropped(&gone);
        }
        self.counters(key.vhost).expirations.fetch_add(1, Relaxed);
        Lookup::Expired
    }

    fn put(&self, key: Key, value: Value, expires_at: u64) -> Result<(), StoreError> {
        let cost = value.bytes.len() + value.local_cost + ENTRY_OVERHEAD;
        if cost as u64 > self.shard_bytes {
            return Err(StoreError::TooLarge);
        }
        let (shard, hashed) = self.shard(&key);
        let mut evicted = Vec::new();
        let mut guard = shard.lock();
        let shard = &mut *guard;
        let c = self.counters(key.vhost);
        let replaced = match shard.map.get_mut(&hashed) {
            // A new value for a stored key takes its place, keeps its turn and is marked used.
            Some(e) => {
                let old_cost = mem::replace(&mut e.cost, cost);
                e.expires_at = expires_at;
                e.referenced = true;
                let old = mem::replace(&mut e.value, value);
                shard.bytes = shard.bytes + cost as u64 - old_cost as u64;
                shard.make_room(0, false, self.shard_bytes, self.shard_entries, &mut evicted);
                c.bytes.fetch_add(cost as u64, Relaxed);
                c.bytes.fetch_sub(old_cost as u64, Relaxed);
                Some(old)
            }
            None => {
                shard.make_room(
                    cost as u64,
                    true,
                    self.shard_bytes,
                    self.shard_entries,
                    &mut evicted,
                );
                shard.insert(hashed, value, expires_at, cost);
                c.entries.fetch_add(1, Relaxed);
                c.bytes.fetch_add(cost as u64, Relaxed);
                None
            }
        };
        drop(guard);
        // Values are dropped outside the lock: an attachment's drop calls into the host library.
        drop(replaced);
        for gone in evicted {
            self.dropped(&gone);
            self.counters(gone.0.key.vhost)
                .evictions
                .fetch_add(1, Relaxed);
        }
        Ok(())
    }

    fn remove(&self, key: &Key) -> bool {
        let (shard, hashed) = self.shard(key);
        let gone = shard.lock().take(&hashed);
        match gone {
            Some(gone) => {
                self.dropped(&gone);
                true
            }
            None => false,
        }
    }

    fn revoke(&self, key: Key, _tombstone: Value, expires_at: u64) -> Result<(), StoreError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.revocations.insert(key, expires_at, now);
        Ok(())
    }

    fn revoked(&self, key: &Key, now: u64) -> bool {
        self.revocations.contains(key, now)
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

    /// The table against std's map, with hashes crowded into few home slots so that probe
    /// runs wrap around and removals shift entries back.
    /// `native` rounds, or `miri` under Miri (scripts/miri.sh), which interprets each one some
    /// thousand times slower.
    fn rounds(native: u32, miri: u32) -> u32 {
        if cfg!(miri) {
            miri
        } else {
            native
        }
    }

    /// Half the keys crowd 40 home slots 3 apart, their run wrapping past the end of the
    /// table; the other half spread out.
    fn crowded(n: u32) -> u64 {
        if n % 2 == 0 {
            (u64::MAX - 60).wrapping_add(u64::from(n % 40) * 3)
        } else {
            u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        }
    }

    #[test]
    fn table_agrees_with_a_map() {
        let mut table = Table::default();
        let mut model = std::collections::HashMap::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for step in 0..u64::from(rounds(20_000, 400)) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let n = ((rng >> 32) % 300) as u32;
            let k = Hashed {
                hash: crowded(n),
                key: key(0, n),
            };
            if rng % 3 == 0 {
                let gone = table.remove(&k).map(|(_, e)| e.seq);
                assert_eq!(gone, model.remove(&n), "remove {n} at step {step}");
            } else if table.get(&k).is_none() {
                let e = Entry {
                    value: value(1),
                    expires_at: 0,
                    cost: 0,
                    seq: step,
                    referenced: false,
                };
                table.insert(k, e);
                model.insert(n, step);
            }
            assert_eq!(table.len(), model.len());
            if step % u64::from(rounds(1000, 20)) == 0 {
                for (&n, &seq) in &model {
                    let k = Hashed {
                        hash: crowded(n),
                        key: key(0, n),
                    };
                    assert_eq!(table.get(&k).map(|e| e.seq), Some(seq), "find {n}");
                }
            }
        }
    }

    #[test]
    fn removed_entries_leave_the_queue_bounded() {
        let s = MemoryStore::new(1 << 20, u64::MAX, 1);
        for n in 0..rounds(100_000, 500) {
            s.put(key(0, n % 50), value(10), u64::MAX).unwrap();
            s.remove(&key(0, (n + 25) % 50));
        }
        for shard in s.shards.iter() {
            let shard = shard.0.lock();
            assert!(shard.queue.len() <= shard.map.len() * 3 / 2 + 65);
            assert!(shard.queue.capacity() <= 4 * (shard.map.len() * 3 / 2 + 65));
        }
        assert!(s.usage(None).entries <= 50);
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
        let puts = rounds(1000, 100);
        for n in 0..puts {
            s.put(key(0, n), value(1000), u64::MAX).unwrap();
            assert!(s.usage(None).bytes <= cap);
        }
        let u = s.usage(None);
        assert!(
            u.evictions > u64::from(puts - 100),
            "evictions {}",
            u.evictions
        );
        assert!(
            matches!(s.get(&key(0, puts - 1), 0), Lookup::Hit(_)),
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
            for n in 0..rounds(1000, 20).max(3 * cap as u32) {
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
                    for n in 0..rounds(5000, 100) {
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
