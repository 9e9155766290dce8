//! Revoked tickets of one process: the keys (vhost + the ticket's random identity) of tickets
//! that must never resume again (a fatal alert ended a connection that used or issued them),
//! each kept until its ticket would have expired anyway. Kept apart from the sessions so the
//! check a ticket decryption makes costs a few nanoseconds however many sessions the store
//! holds, and takes no lock: checks only read memory, so checks on many threads never write
//! to a shared cache line, and the core overlaps the memory accesses of consecutive checks.
//!
//! - An empty set answers with one atomic load.
//! - A filter (128 KiB, made at the first revocation) answers "not revoked", the common case,
//!   with one memory access; only the keys it cannot rule out (the revoked ones, and a few
//!   percent of the others) go on to the table.
//! - The table: open addressing with linear probing, each entry (key, expiry, hash) in its slot,
//!   one cache line, at most 5/8 of the slots used: a check that finds its key reads one line
//!   of the table, so a revoked ticket costs one cache miss beyond the filter. The hash is
//!   worked out once per check, for the filter and the table both, by one folded multiply of
//!   the key's words (the identity in a revocation key is random already: no keyed hash is
//!   needed to spread it).
//! - Writers (revocations, rare: each is a fatal alert) take a mutex and change the table inside
//!   a sequence count (a seqlock); a check that overlaps a change reads again. A table that
//!   fills up is replaced by one twice its size; the ones it outgrew stay allocated (never
//!   written again) until the set is dropped, as a check may still be reading one, so the
//!   memory is at most twice the largest table's.
//!
//! The memory store keeps one (`MemoryStore::revoke`); the Redis store's memory tier is one, fed
//! by this server's revocations and by other servers' through pub/sub (`redis/bus.rs`).

use std::sync::atomic::{
    fence, AtomicPtr, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed,
    Ordering::Release,
};
use std::sync::OnceLock;

use parking_lot::Mutex;

use super::{Key, MAX_ID_LEN};
use crate::record::TICKET_ID_LEN;

/// Entries kept at least, whatever the store's entry cap.
pub const MIN_CAPACITY: usize = 1024;
/// Starts a revocation key's id, then comes the ticket's random identity (`key`). `rv2`: the
/// id is the identity itself (`rv1` was a SHA-256 digest of it). No session id the engine
/// stores is this long with this tag (OpenSSL and BoringSSL make 32-byte ids; a host's own
/// store gets any id, but a collision needs a 2^-128 chance). A remote store finds the
/// revocations it holds by it (`redis/bus.rs`).
pub(crate) const TAG: [u8; 4] = *b"\xffrv2";
/// Length of a revocation key's id.
pub(crate) const ID_LEN: usize = TAG.len() + TICKET_ID_LEN;

/// The revocation key of a ticket: its vhost and its sealed random identity.
#[inline]
pub fn key(vhost: u32, ticket_id: &[u8; TICKET_ID_LEN]) -> Key {
    // Written as the 8-byte words `Words::of` reads back, so those loads are served from the
    // stores that made them (a load spanning two stores waits for both to reach the cache).
    let part = |r: std::ops::Range<usize>| {
        let mut w = [0u8; 8];
        w[..r.len()].copy_from_slice(&ticket_id[r]);
        u64::from_le_bytes(w)
    };
    let words = [
        u64::from(u32::from_le_bytes(TAG)) | part(0..4) << 32,
        part(4..12),
        part(12..16),
        0,
    ];
    let mut id = [0u8; MAX_ID_LEN];
    for (chunk, w) in id.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    Key {
        vhost,
        len: ID_LEN as u8,
        id,
    }
}

/// A key as five words: vhost and length, then its id (zero-padded to 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Words([u64; 5]);

impl Words {
    #[inline]
    fn of(key: &Key) -> Words {
        let w = |i: usize| u64::from_le_bytes(key.id[8 * i..8 * i + 8].try_into().expect("8"));
        Words([
            u64::from(key.vhost) | u64::from(key.len) << 32,
            w(0),
            w(1),
            w(2),
            w(3),
        ])
    }

    /// A 64-bit hash: one folded multiply (the 128-bit product's halves xored) of two words
    /// that together take in every bit of the key.
    #[inline]
    fn hash(&self) -> u64 {
        let [meta, a, b, c, d] = self.0;
        let x = a ^ c ^ 0x243f_6a88_85a3_08d3;
        let y = b ^ d ^ meta.rotate_left(29) ^ 0x1319_8a2e_0370_7344;
        let p = u128::from(x) * u128::from(y);
        (p as u64) ^ (p >> 64) as u64
    }
}

/// A slot of the table, one cache line: the key's words (`meta` 0: empty), its expiry and its
/// hash, read by checks without a lock (`Revocations`).
#[repr(align(64))]
struct Slot([AtomicU64; 8]);

const EXPIRES: usize = 5;
const HASH: usize = 6;

impl Slot {
    #[inline]
    fn words(&self) -> Words {
        Words(std::array::from_fn(|i| self.0[i].load(Relaxed)))
    }

    #[inline]
    fn expires(&self) -> u64 {
        self.0[EXPIRES].load(Relaxed)
    }

    fn hash(&self) -> u64 {
        self.0[HASH].load(Relaxed)
    }

    fn is_empty(&self) -> bool {
        self.0[0].load(Relaxed) == 0
    }

    fn set(&self, key: &Words, expires: u64, hash: u64) {
        for (slot, w) in self.0.iter().zip(key.0) {
            slot.store(w, Relaxed);
        }
        self.0[EXPIRES].store(expires, Relaxed);
        self.0[HASH].store(hash, Relaxed);
    }

    fn clear(&self) {
        self.0[0].store(0, Relaxed);
    }
}

/// One table: open addressing with linear probing, the entries in the slots themselves, so a
/// check that finds its key reads one cache line of the table (and the next ones only when
/// its probe runs on). At most 5/8 of the slots are used.
struct Table {
    slots: Slots,
}

/// A table's slots, zeroed (all empty), in memory mapped for them alone: 2 MiB-aligned and
/// marked for transparent huge pages, so a check's random slot costs no TLB miss on top of
/// its cache miss (a table for 100,000 entries is 16 MiB: 4,096 small pages).
struct Slots {
    map: *mut libc::c_void,
    map_len: usize,
    slots: *const Slot,
    len: usize,
}

// SAFETY: `Slots` owns its mapping; the slots are atomics, shared by reference only.
unsafe impl Send for Slots {}
unsafe impl Sync for Slots {}

const HUGE_PAGE: usize = 2 << 20;

impl Slots {
    fn new(len: usize) -> Slots {
        let bytes = len * std::mem::size_of::<Slot>();
        let map_len = bytes + HUGE_PAGE;
        // SAFETY: a fresh private anonymous mapping, unmapped only by Drop.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(map != libc::MAP_FAILED, "cannot map the revocation table");
        let start = (map as usize).next_multiple_of(HUGE_PAGE);
        // SAFETY: [start, start + bytes) lies inside the mapping; a hint, its failure is harmless.
        #[cfg(target_os = "linux")]
        unsafe {
            libc::madvise(start as *mut libc::c_void, bytes, libc::MADV_HUGEPAGE)
        };
        Slots {
            map,
            map_len,
            // Zero bytes are empty slots (atomics of 0).
            slots: start as *const Slot,
            len,
        }
    }
}

impl std::ops::Deref for Slots {
    type Target = [Slot];
    fn deref(&self) -> &[Slot] {
        // SAFETY: `len` zero-initialised slots at `slots`, 64-byte aligned, live as `self`.
        unsafe { std::slice::from_raw_parts(self.slots, self.len) }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

/// Slots of the first table; each new one doubles it.
const FIRST_TABLE: usize = 2048;

impl Table {
    fn new(slots: usize) -> Table {
        Table {
            slots: Slots::new(slots),
        }
    }

    /// Entries it takes.
    fn room(&self) -> usize {
        self.slots.len() / 8 * 5
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Where `key` is, read without a lock: a torn answer is possible while a writer works,
    /// which the caller's sequence check throws away. Bounded either way: at most every slot
    /// once.
    #[inline]
    fn position(&self, hash: u64, key: &Words) -> Option<usize> {
        let mut i = hash as usize & self.mask();
        for _ in 0..self.slots.len() {
            let s = &self.slots[i];
            let meta = s.0[0].load(Relaxed);
            if meta == 0 {
                return None;
            }
            if meta == key.0[0] && s.hash() == hash && s.words() == *key {
                return Some(i);
            }
            i = (i + 1) & self.mask();
        }
        None
    }

    #[inline]
    fn find(&self, hash: u64, key: &Words) -> Option<&Slot> {
        self.position(hash, key).map(|i| &self.slots[i])
    }

    /// The first free slot on `hash`'s probe. Writer only (there is always one).
    fn free(&self, hash: u64) -> &Slot {
        let mut i = hash as usize & self.mask();
        while !self.slots[i].is_empty() {
            i = (i + 1) & self.mask();
        }
        &self.slots[i]
    }

    /// Empties the slot holding `key`, then places again the slots after it up to the next
    /// empty one, so no probe stops short of a key it passed before. Writer only.
    fn remove(&self, hash: u64, key: &Words) {
        let Some(mut i) = self.position(hash, key) else {
            return;
        };
        self.slots[i].clear();
        loop {
            i = (i + 1) & self.mask();
            let s = &self.slots[i];
            if s.is_empty() {
                return;
            }
            let moved: [u64; 8] = std::array::from_fn(|k| s.0[k].load(Relaxed));
            s.clear();
            let to = self.free(moved[HASH]);
            for (w, v) in to.0.iter().zip(moved) {
                w.store(v, Relaxed);
            }
        }
    }
}

/// The filter's 64-bit words: 2^20 bits, 128 KiB, few enough to stay in a core's cache; about
/// 3% of the keys not held get past it with 100,000 held, and with far more it lets most
/// through to the table, which answers as it would without it.
const FILTER_WORDS: usize = 1 << 14;

/// A filter over the set's keys: two bits per key in one 64-bit word. A key whose two bits are
/// not both set is not in the set. `insert` sets them before the key enters the table; keys
/// pushed out leave their bits set (stale) until enough of them make `Revocations` rebuild the
/// filter from the table, under a sequence count of its own: a check that overlaps a rebuild
/// asks the table instead, so the filter never rules out a key the table holds.
struct Filter {
    words: Box<[AtomicU64]>,
    /// Odd while a rebuild runs.
    seq: AtomicU64,
}

impl Filter {
    fn new() -> Filter {
        Filter {
            words: (0..FILTER_WORDS).map(|_| AtomicU64::new(0)).collect(),
            seq: AtomicU64::new(0),
        }
    }

    /// The key's word and its two bits.
    #[inline]
    fn slot(h: u64) -> (usize, u64) {
        let bits = (1u64 << ((h >> 52) & 63)) | (1u64 << (h >> 58));
        ((h >> 24) as usize & (FILTER_WORDS - 1), bits)
    }

    #[inline]
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

/// What only writers touch, under `Revocations::writer`.
struct Writer {
    /// Every table made, the current one last: a check may still read an older one.
    /// Boxed: checks hold pointers to them, which the `Vec` growing must not move.
    #[allow(clippy::vec_box)]
    tables: Vec<Box<Table>>,
    /// Keys pushed out since the filter's last rebuild (their bits still set).
    stale: usize,
}

/// A bounded set of revoked keys with their expiry times.
pub struct Revocations {
    /// Odd while a writer changes the table (a seqlock around `table` and its contents).
    seq: AtomicU64,
    /// The current table; null before the first revocation.
    table: AtomicPtr<Table>,
    len: AtomicUsize,
    /// Most entries.
    cap: usize,
    filter: OnceLock<Filter>,
    writer: Mutex<Writer>,
}

/// Reads a check tries without a lock before it waits for the writer instead.
const READ_TRIES: usize = 64;

impl Revocations {
    /// A set holding at most `capacity` live entries (at least `MIN_CAPACITY`).
    pub fn new(capacity: usize) -> Revocations {
        Revocations {
            seq: AtomicU64::new(0),
            table: AtomicPtr::new(std::ptr::null_mut()),
            len: AtomicUsize::new(0),
            cap: capacity.max(MIN_CAPACITY),
            filter: OnceLock::new(),
            writer: Mutex::new(Writer {
                tables: Vec::new(),
                stale: 0,
            }),
        }
    }

    /// Runs `change` as one change a check sees whole or not at all. Writer only.
    fn change<R>(&self, change: impl FnOnce() -> R) -> R {
        let s = self.seq.load(Relaxed);
        self.seq.store(s + 1, Relaxed);
        fence(Release);
        let r = change();
        self.seq.store(s + 2, Release);
        r
    }

    /// Revokes `key` until `expires_at`. When the set is full, expired entries go first, then
    /// those expiring soonest (`evict`): a ticket dropped so would resume again, which is
    /// counted by the caller as nothing worse than before revocation existed; the bound keeps a
    /// flood of fatal alerts from growing memory without limit.
    pub fn insert(&self, key: Key, expires_at: u64, now: u64) {
        let filter = self.filter.get_or_init(Filter::new);
        let words = Words::of(&key);
        let hash = words.hash();
        let mut w = self.writer.lock();
        if let Some(s) = w.tables.last().and_then(|t| t.find(hash, &words)) {
            // Keep the later expiry when revoked twice.
            if s.expires() < expires_at {
                self.change(|| s.0[EXPIRES].store(expires_at, Relaxed));
            }
            return;
        }
        if self.len() >= self.cap {
            let pushed_out = self.evict(&w, now);
            w.stale += pushed_out;
            if w.stale >= (self.len() / 4).max(MIN_CAPACITY) {
                self.rebuild(&mut w, filter);
            }
        }
        let len = self.len();
        filter.add(hash);
        match w.tables.last() {
            Some(t) if len < t.room() => self.change(|| {
                t.free(hash).set(&words, expires_at, hash);
                self.len.store(len + 1, Relaxed);
            }),
            old => {
                // Full: a table twice the size, filled before it is shown to checks.
                let t = Box::new(Table::new(old.map_or(FIRST_TABLE, |t| 2 * t.slots.len())));
                for s in old.iter().flat_map(|o| o.slots.iter()) {
                    if !s.is_empty() {
                        t.free(s.hash()).set(&s.words(), s.expires(), s.hash());
                    }
                }
                t.free(hash).set(&words, expires_at, hash);
                let p = &*t as *const Table as *mut Table;
                w.tables.push(t);
                self.change(|| {
                    self.table.store(p, Release);
                    self.len.store(len + 1, Relaxed);
                });
            }
        }
    }

    /// Makes room: removes the expired entries, and when they are fewer than a 64th of the set,
    /// the ones expiring soonest up to that many (a scan of the whole set, once per that many
    /// revocations at the bound). How many went.
    fn evict(&self, w: &Writer, now: u64) -> usize {
        let Some(t) = w.tables.last() else {
            return 0;
        };
        let want = (self.len() / 64).max(1);
        let (mut gone, mut rest): (Vec<_>, Vec<_>) = t
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .map(|(i, s)| (s.expires(), i))
            .partition(|&(e, _)| e <= now);
        if gone.len() < want && !rest.is_empty() {
            let more = (want - gone.len()).min(rest.len());
            rest.select_nth_unstable(more - 1);
            gone.extend_from_slice(&rest[..more]);
        }
        // By key: a removal moves the slots after it.
        let keys: Vec<(u64, Words)> = gone
            .iter()
            .map(|&(_, i)| (t.slots[i].hash(), t.slots[i].words()))
            .collect();
        for (hash, key) in &keys {
            self.change(|| {
                t.remove(*hash, key);
                self.len.store(self.len() - 1, Relaxed);
            });
        }
        keys.len()
    }

    /// Rebuilds the filter from the table (no insert runs meanwhile: the writer lock is held).
    fn rebuild(&self, w: &mut Writer, filter: &Filter) {
        filter.seq.fetch_add(1, Relaxed);
        fence(Release);
        for word in filter.words.iter() {
            word.store(0, Relaxed);
        }
        for s in w.tables.last().iter().flat_map(|t| t.slots.iter()) {
            if !s.is_empty() {
                filter.add(s.hash());
            }
        }
        w.stale = 0;
        filter.seq.fetch_add(1, Release);
    }

    /// Whether `key` is revoked at `now`. Takes no lock unless writers keep changing the table
    /// through `READ_TRIES` reads.
    #[inline]
    pub fn contains(&self, key: &Key, now: u64) -> bool {
        if self.len.load(Relaxed) == 0 {
            return false;
        }
        let Some(filter) = self.filter.get() else {
            return false;
        };
        let words = Words::of(key);
        let hash = words.hash();
        if !filter.may_contain(hash) {
            return false;
        }
        for _ in 0..READ_TRIES {
            let seq = self.seq.load(Acquire);
            if seq & 1 == 0 {
                // SAFETY: a non-null table is one of `writer.tables`, freed only with `self`.
                let found = unsafe { self.table.load(Acquire).as_ref() }
                    .and_then(|t| t.find(hash, &words))
                    .map(Slot::expires);
                fence(Acquire);
                if self.seq.load(Relaxed) == seq {
                    return found.is_some_and(|e| e > now);
                }
            }
            std::hint::spin_loop();
        }
        let w = self.writer.lock();
        w.tables
            .last()
            .and_then(|t| t.find(hash, &words))
            .is_some_and(|e| e.expires() > now)
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

    /// What the table holds for `key`, asked under the writer lock (no filter).
    fn held(r: &Revocations, key: &Key, now: u64) -> bool {
        let words = Words::of(key);
        let w = r.writer.lock();
        w.tables
            .last()
            .and_then(|t| t.find(words.hash(), &words))
            .is_some_and(|e| e.expires() > now)
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
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_revocation_key_is_the_tag_then_the_identity() {
        let k = super::key(3, &[7; TICKET_ID_LEN]);
        assert_eq!(
            k,
            Key::new(3, &[&TAG[..], &[7; TICKET_ID_LEN]].concat()).unwrap()
        );
        assert_eq!(k.id().len(), ID_LEN);
    }

    #[test]
    fn bounded_expired_first() {
        let r = Revocations::new(MIN_CAPACITY);
        for n in 0..(4 * MIN_CAPACITY) as u32 {
            r.insert(key(n), if n < 100 { 50 } else { 1000 + u64::from(n) }, 60);
        }
        assert!(r.len() <= MIN_CAPACITY, "{} entries", r.len());
        assert!(r.len() > MIN_CAPACITY * 9 / 10, "{} entries", r.len());
        let last = (4 * MIN_CAPACITY - 1) as u32;
        assert!(
            r.contains(&key(last), 100),
            "the newest, latest-expiring survive"
        );
        // Those expiring soonest went: what is left is the latest-expiring keys.
        let kept = (0..(4 * MIN_CAPACITY) as u32).filter(|&n| held(&r, &key(n), 100));
        assert!(
            kept.clone().all(|n| n >= 4 * MIN_CAPACITY as u32 - 1100),
            "{:?}",
            kept.min()
        );
        // The filter never rules out a key the set holds, through all those evictions and the
        // rebuilds they made.
        assert!(r.filter.get().is_some_and(|f| f.seq.load(Relaxed) >= 2));
        for n in 0..(4 * MIN_CAPACITY) as u32 {
            assert_eq!(r.contains(&key(n), 100), held(&r, &key(n), 100), "key {n}");
        }
    }

    /// Checks on one thread while another revokes: the 100 keys revoked first are found on
    /// every check, while the table grows (`capacity` large) or entries are pushed out and the
    /// filter rebuilt (`capacity` small).
    fn held_keys_found_while_others_churn(capacity: usize) -> Revocations {
        let r = Revocations::new(capacity);
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
                assert!(!r.contains(&key(999), 10));
                rounds += 1;
            }
        });
        r
    }

    #[test]
    fn held_keys_found_while_others_churn_and_the_filter_is_rebuilt() {
        let r = held_keys_found_while_others_churn(0);
        assert!(r.filter.get().is_some_and(|f| f.seq.load(Relaxed) >= 20));
    }

    #[test]
    fn held_keys_found_while_the_table_grows() {
        let r = held_keys_found_while_others_churn(1 << 20);
        assert_eq!(r.len(), 100 + 49_000);
        assert_eq!(r.writer.lock().tables.len(), 7, "2048 to 131072 slots");
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
            .filter(|&n| f.may_contain(Words::of(&key(n)).hash()))
            .count();
        assert!(maybe < 10_000, "{maybe} of 100000 not ruled out");
        assert!((0..100_000u32).all(|n| r.contains(&key(n), 999)));
        assert!((100_000..200_000u32).all(|n| !r.contains(&key(n), 0)));
    }

    #[test]
    fn removals_keep_every_other_key_reachable() {
        // A small table, so probe runs are long and removals move entries and slots around.
        let r = Revocations::new(MIN_CAPACITY);
        for n in 0..MIN_CAPACITY as u32 {
            r.insert(key(n), 100 + u64::from(n % 7), 0);
        }
        // Each insert now pushes out the soonest-expiring (n % 7 == 0 first).
        for n in 0..64u32 {
            r.insert(key(100_000 + n), 1_000, 50);
        }
        let words: Vec<Words> = (0..MIN_CAPACITY as u32)
            .chain(100_000..100_064)
            .map(|n| Words::of(&key(n)))
            .collect();
        let w = r.writer.lock();
        let t = w.tables.last().unwrap();
        let found = words
            .iter()
            .filter(|k| t.find(k.hash(), k).is_some())
            .count();
        assert_eq!(found, r.len(), "every entry reachable from its hash");
        let used = t.slots.iter().filter(|s| !s.is_empty()).count();
        assert_eq!(used, r.len(), "one slot per entry");
    }
}
