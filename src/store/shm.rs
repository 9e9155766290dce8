//! The shared-memory store, for prefork servers: one `MAP_SHARED` mapping used by every
//! worker, either an anonymous mapping made here before the host forks, or memory the host
//! provides (an nginx shared zone), which may already hold a store made by an earlier
//! configuration of the same host. The mapping holds no pointers, only offsets and slot
//! references, and every one of them is bounds-checked when read, because any process with
//! the mapping could have scribbled on it.
//!
//! Layout (all offsets from the start of the mapping, each area 64-byte aligned):
//!
//! ```text
//! header      magic, layout version, sizes, hash seed, epoch, a checksum over all of it
//! globals     per vhost: evictions, expirations; store health counters; the engine's counters
//! shard × N   lock word (lock.rs) and state; per vhost: entries, bytes;
//!             bucket heads (u32 slot references); slots of SLOT bytes
//! ```
//!
//! All zero is the valid empty state of everything after the header (slot references are
//! index + 1, 0 meaning none; slots are handed out from a high-water mark before the free
//! stack is used), so a fresh mapping is never written in full: pages are touched only as
//! entries are written, and an empty store costs the header and one page per shard.
//!
//! An entry is a chain of slots: a head slot (key, expiry, length, checksum, first bytes)
//! followed by continuation slots. Buckets chain head slots; freed slots form a stack; eviction
//! is CLOCK over head slots. A shard's `dirty` flag is set before any write and cleared after,
//! so a worker that dies mid-write leaves a flag the next locker sees: it resets the shard
//! (dropping its entries) instead of serving half-written ones. Any inconsistency found (a
//! reference out of range, a broken chain, a lock word that was garbage) resets the shard too,
//! counted in `repairs`; a scribbled header is rewritten. Each entry carries a keyed checksum
//! over key, expiry and bytes, checked on every hit: a mismatch is dropped and answered
//! `Unavailable` (a counted miss), never returned. Locks are taken with a timeout of a few
//! milliseconds, so a live but stuck holder costs a lookup, not a hung handshake.
//!
//! The header's epoch says which store owns the memory: a store made later over the same
//! memory (a new host configuration with another layout) writes a higher one, and a store that
//! finds a valid header with a higher epoch than its own stops using the memory (every call a
//! counted miss) instead of fighting over it.

mod lock;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Key, Lookup, Store, StoreError, Usage, Value, MAX_ID_LEN};
use lock::{StuckNote, Taken};

/// Bytes per slot. An entry takes `1 + ceil((len - HEAD_PAYLOAD) / CONT_PAYLOAD)` slots: a
/// typical session record (about 210 bytes for OpenSSL's TLS 1.2 and 1.3 sessions without a
/// client certificate, plus the vhost name and SNI) fits in one (240 bytes of payload), a
/// record with a client certificate takes a few.
pub(crate) const SLOT: usize = 320;
const HEAD_HDR: usize = 80;
const CONT_HDR: usize = 8;
const HEAD_PAYLOAD: usize = SLOT - HEAD_HDR;
const CONT_PAYLOAD: usize = SLOT - CONT_HDR;
/// The slot reference meaning "none" (references are index + 1).
const NONE: u32 = 0;
const MAGIC: u64 = u64::from_le_bytes(*b"SNCSHM\r\n");
/// The layout version written in the header; a header of another version is not inherited.
pub(crate) const LAYOUT_VERSION: u32 = 2;
const HEADER_LEN: usize = 128;
const HEADER_WORDS: usize = 9;
const HEADER_CHECK: usize = 8 * HEADER_WORDS;
const HEADER_EPOCH: usize = 8 * 8;
const SHARD_HDR: usize = 128;
const MIN_SHARD_BYTES: u64 = 256 * 1024;
const MAX_SHARDS: u64 = 64;
const MIN_SLOTS: u64 = 16;
/// The smallest size `ShmStore::new` accepts.
pub(crate) const MIN_BYTES: u64 = 64 * 1024;
/// The largest size this layout addresses.
pub(crate) const MAX_BYTES: u64 = 1 << 40;
/// How long a lookup or store waits for a shard lock before giving up (a counted miss).
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_millis(5);

const KIND_FREE: u8 = 0;
const KIND_HEAD: u8 = 1;
const KIND_CONT: u8 = 2;

// Head slot fields (byte offsets within the slot). A continuation slot uses kind and next only.
const S_KIND: usize = 0;
const S_REF: usize = 1;
const S_CHUNKS: usize = 2;
const S_ID_LEN: usize = 3;
const S_NEXT: usize = 4;
const S_CHAIN: usize = 8;
const S_VHOST: usize = 12;
const S_LEN: usize = 16;
const S_EXPIRES: usize = 24;
const S_HASH: usize = 32;
const S_CHECK: usize = 40;
const S_ID: usize = 48;
const _: () = assert!(S_ID + MAX_ID_LEN <= HEAD_HDR);

// Shard header fields. All zero is an empty shard.
const H_LOCK: usize = 0;
const H_DIRTY: usize = 8;
const H_HAND: usize = 12;
/// Top of the stack of freed slots (a reference).
const H_FREE: usize = 16;
/// Slots on that stack.
const H_FREE_COUNT: usize = 20;
/// Slots below this index have been handed out at least once; the rest were never touched.
const H_HWM: usize = 24;

/// Store health counters kept in the mapping, summed over every process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// Lock waits that timed out (a live holder was too slow); each a counted miss or failed put.
    pub lock_timeouts: u64,
    /// Locks found taken over by another process while held (a holder declared stuck).
    pub lock_errors: u64,
    /// Locks taken over from a process that died holding them.
    pub owner_dead: u64,
    /// Shards reset (and headers rewritten) because they were found half-written, garbage or
    /// inconsistent; their sessions are lost.
    pub repairs: u64,
    /// Entries whose checksum did not match: dropped, never returned.
    pub corrupt: u64,
}
const HEALTH_FIELDS: usize = 5;
const LOCK_TIMEOUTS: usize = 0;
const LOCK_ERRORS: usize = 1;
const OWNER_DEAD: usize = 2;
const REPAIRS: usize = 3;
const CORRUPT: usize = 4;

/// Why a mapping could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShmError {
    /// The size cannot hold even one small shard.
    TooSmall { min: u64 },
    /// The size is beyond what this layout addresses.
    TooLarge,
    /// Memory given by the host is not 64-byte aligned.
    Misaligned,
    /// The platform refused the mapping (the OS error text).
    Os(String),
}

impl std::fmt::Display for ShmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShmError::TooSmall { min } => write!(f, "shm size is too small: at least {min} bytes"),
            ShmError::TooLarge => write!(f, "shm size is too large: at most {MAX_BYTES} bytes"),
            ShmError::Misaligned => f.write_str("shm memory must be 64-byte aligned"),
            ShmError::Os(e) => write!(f, "shared mapping refused: {e}"),
        }
    }
}

/// Whether a size can hold a store at all (before vhosts and counters are known).
pub fn check_size(bytes: u64) -> Result<(), ShmError> {
    Geometry::new(bytes, 1, 0).map(|_| ())
}

/// The sizes everything is placed by; computed once from the requested size and kept in each
/// process's own memory, so garbage in the mapping's header cannot move anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    total: usize,
    shards: usize,
    slots: u32,
    buckets: u32,
    vhosts: usize,
    extra: usize,
    globals: usize,
    shards_off: usize,
    stride: usize,
    rows_off: usize,
    buckets_off: usize,
    slots_off: usize,
}

fn align64(n: usize) -> usize {
    (n + 63) & !63
}

impl Geometry {
    fn new(bytes: u64, vhosts: usize, extra: usize) -> Result<Geometry, ShmError> {
        if bytes > MAX_BYTES || bytes > usize::MAX as u64 {
            return Err(ShmError::TooLarge);
        }
        let vhosts = vhosts.max(1);
        let globals = HEADER_LEN;
        let shards_off = align64(globals + 8 * (2 * vhosts + HEALTH_FIELDS + extra));
        let shards = (bytes / MIN_SHARD_BYTES).clamp(1, MAX_SHARDS);
        let shards = 1usize << shards.ilog2();
        let rows_off = SHARD_HDR;
        let fixed = align64(rows_off + 16 * vhosts);
        let budget = (bytes as usize).saturating_sub(shards_off) / shards;
        // Each slot costs SLOT bytes plus at most 4 bytes of bucket table.
        let slots = budget.saturating_sub(fixed + 64) / (SLOT + 4);
        let min = (shards_off + fixed + 64 + MIN_SLOTS as usize * (SLOT + 4)) as u64;
        if (slots as u64) < MIN_SLOTS || bytes < MIN_BYTES {
            return Err(ShmError::TooSmall {
                min: min.max(MIN_BYTES),
            });
        }
        let slots = slots.min(u32::MAX as usize - 1) as u32;
        let buckets = 1u32 << slots.ilog2();
        let buckets_off = fixed;
        let slots_off = align64(buckets_off + 4 * buckets as usize);
        let stride = align64(slots_off + slots as usize * SLOT);
        let total = shards_off + shards * stride;
        debug_assert!(total as u64 <= bytes);
        Ok(Geometry {
            total,
            shards,
            slots,
            buckets,
            vhosts,
            extra,
            globals,
            shards_off,
            stride,
            rows_off,
            buckets_off,
            slots_off,
        })
    }

    /// Offset of the vhost's evictions counter; expirations follow.
    fn usage_off(&self, vhost: usize) -> usize {
        self.globals + 16 * vhost
    }

    fn health_off(&self) -> usize {
        self.globals + 16 * self.vhosts
    }

    fn extra_off(&self) -> usize {
        self.health_off() + 8 * HEALTH_FIELDS
    }

    /// Words of the header, in order, as written and checked.
    fn header_words(&self, seed: u64, epoch: u64) -> [u64; HEADER_WORDS] {
        [
            MAGIC,
            u64::from(LAYOUT_VERSION) << 32 | HEADER_LEN as u64,
            self.total as u64,
            seed,
            self.shards as u64,
            u64::from(self.slots) << 32 | SLOT as u64,
            self.vhosts as u64,
            self.extra as u64,
            epoch,
        ]
    }
}

fn header_check(words: &[u64; HEADER_WORDS]) -> u64 {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    hash(K2, &[&bytes])
}

/// The memory; unmapped when the last handle in this process goes, if this process mapped it.
struct Mapping {
    base: *mut u8,
    len: usize,
    owned: bool,
}

// SAFETY: the mapping is plain shared memory; every access goes through atomics or happens under
// the shard's lock, and every value read is validated.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: base/len are exactly what mmap returned; nothing refers to it any more.
            unsafe { libc::munmap(self.base.cast(), self.len) };
        }
    }
}

/// Counters in the mapping that the engine uses for its own stats, so every worker's counts land
/// in one place. Once a newer store owns the memory (another layout: its counters elsewhere),
/// counts go to a private array instead, so this store never writes into the newer one.
pub struct Counters {
    map: Arc<Mapping>,
    off: usize,
    len: usize,
    epoch: u64,
    private: Box<[AtomicU64]>,
}

impl AsRef<[AtomicU64]> for Counters {
    fn as_ref(&self) -> &[AtomicU64] {
        // SAFETY: HEADER_EPOCH is an 8-aligned word of the header, inside the mapping.
        let epoch = unsafe { &*self.map.base.add(HEADER_EPOCH).cast::<AtomicU64>() };
        if epoch.load(Relaxed) != self.epoch {
            return &self.private;
        }
        // SAFETY: off..off + 8 * len lies inside the mapping (Geometry::extra_off), is 8-aligned,
        // lives as long as self.map, and is only ever accessed as atomics.
        unsafe { std::slice::from_raw_parts(self.map.base.add(self.off).cast(), self.len) }
    }
}

/// A handle on the raw mapping, for tests that play a misbehaving process.
pub struct Raw {
    map: Arc<Mapping>,
}

impl Raw {
    /// The mapping's address and length. Writing to it is what the store defends against.
    pub fn region(&self) -> (*mut u8, usize) {
        (self.map.base, self.map.len)
    }
}

pub struct ShmStore {
    map: Arc<Mapping>,
    geo: Geometry,
    seed: u64,
    epoch: u64,
    inherited: bool,
    timeout: Duration,
    notes: Box<[StuckNote]>,
    started: Instant,
}

/// A view of one shard's fields.
struct Shard<'a> {
    store: &'a ShmStore,
    base: *mut u8,
}

/// A shard whose lock this process holds (with lock word `word`). Dropping it unlocks.
struct Locked<'a> {
    shard: Shard<'a>,
    word: u64,
}

impl<'a> std::ops::Deref for Locked<'a> {
    type Target = Shard<'a>;
    fn deref(&self) -> &Shard<'a> {
        &self.shard
    }
}

enum Found {
    At(u32),
    Absent,
    Broken,
}

fn mix(a: u64, b: u64) -> u64 {
    let r = u128::from(a).wrapping_mul(u128::from(b));
    (r as u64) ^ ((r >> 64) as u64)
}

const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;
const K2: u64 = 0x8ebc_6af0_9c88_c6e3;

/// A keyed hash, 16 bytes a step (wyhash-like). Not cryptographic: it picks shards and buckets
/// and catches torn or scribbled entries, which is all the store needs.
fn hash(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = seed ^ K0;
    let mut total = 0usize;
    for p in parts {
        total += p.len();
        let mut chunks = p.chunks_exact(16);
        for c in &mut chunks {
            let a = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
            let b = u64::from_le_bytes(c[8..].try_into().expect("8 bytes"));
            h = mix(a ^ K1, b ^ h);
        }
        let rest = chunks.remainder();
        let mut buf = [0u8; 16];
        buf[..rest.len()].copy_from_slice(rest);
        let a = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
        let b = u64::from_le_bytes(buf[8..].try_into().expect("8 bytes"));
        h = mix(a ^ K2 ^ rest.len() as u64, b ^ h);
    }
    mix(h ^ total as u64, K1)
}

fn chunks_for(len: usize) -> usize {
    1 + len.saturating_sub(HEAD_PAYLOAD).div_ceil(CONT_PAYLOAD)
}

fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// What the header of a mapping says.
#[derive(Debug, PartialEq, Eq)]
enum HeaderState {
    /// Ours: our seed and epoch.
    Ours,
    /// A valid header of a store made later over the same memory.
    Newer,
    /// Anything else: garbage, or an older store's.
    Other,
}

impl ShmStore {
    /// A store in a new anonymous shared mapping of at most `bytes`, with usage counters for
    /// `vhosts` virtual hosts and `extra` more shared counters for the caller (`counters`). Make
    /// it before forking: children inherit the mapping and share every entry and counter.
    pub fn new(bytes: u64, vhosts: usize, extra: usize) -> Result<ShmStore, ShmError> {
        let geo = Geometry::new(bytes, vhosts, extra)?;
        // SAFETY: a fresh anonymous mapping; the result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                geo.total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(ShmError::Os(format!(
                "mmap of {} bytes: {}",
                geo.total,
                std::io::Error::last_os_error()
            )));
        }
        let map = Arc::new(Mapping {
            base: base.cast(),
            len: geo.total,
            owned: true,
        });
        ShmStore::open(map, geo)
    }

    /// A store in memory the host provides: `len` bytes at `base`, shared by every process
    /// that will use the store (an nginx shared zone). When it holds a valid store of the same
    /// layout (same size, vhost count and counter count), that store's sessions and counters
    /// are kept (`inherited`); otherwise it is made anew, and new memory must be zero-filled
    /// (as fresh shared mappings are), so that nothing but the header is written.
    ///
    /// # Safety
    /// `base..base + len` must be valid, writable shared memory that outlives the store and
    /// every handle on it (`counters`, `raw`), and that nothing but snicache stores write.
    pub unsafe fn over(
        base: *mut u8,
        len: usize,
        vhosts: usize,
        extra: usize,
    ) -> Result<ShmStore, ShmError> {
        if base.is_null() || base as usize % 64 != 0 {
            return Err(ShmError::Misaligned);
        }
        let geo = Geometry::new(len as u64, vhosts, extra)?;
        let map = Arc::new(Mapping {
            base,
            len: geo.total,
            owned: false,
        });
        ShmStore::open(map, geo)
    }

    fn open(map: Arc<Mapping>, geo: Geometry) -> Result<ShmStore, ShmError> {
        let mut store = ShmStore {
            map,
            geo,
            seed: 0,
            epoch: 0,
            inherited: false,
            timeout: LOCK_TIMEOUT,
            notes: (0..geo.shards).map(|_| StuckNote::default()).collect(),
            started: Instant::now(),
        };
        let words: Vec<u64> = (0..=HEADER_WORDS).map(|i| store.get_u64(8 * i)).collect();
        let found: [u64; HEADER_WORDS] = words[..HEADER_WORDS].try_into().expect("9 words");
        if header_check(&found) == words[HEADER_WORDS]
            && found == geo.header_words(found[3], found[8])
        {
            store.seed = found[3];
            store.epoch = found[8];
            store.inherited = true;
            return Ok(store);
        }
        let mut seed = [0u8; 8];
        boring::rand::rand_bytes(&mut seed).map_err(|e| ShmError::Os(format!("seed: {e}")))?;
        store.seed = u64::from_le_bytes(seed);
        // Higher than any store's before it over this memory (see HeaderState::Newer).
        store.epoch = realtime_ns().max(found[8].wrapping_add(1)).max(1);
        if words.iter().any(|w| *w != 0) {
            // Not fresh memory: an older layout's, or garbage. Zero the counters and empty
            // every shard (this touches the shard headers and bucket tables, never the slots).
            store.zero_counters();
            for s in 0..geo.shards {
                store.reset(store.shard_base(s));
            }
        }
        store.write_header();
        Ok(store)
    }

    /// Zeroes every counter in the globals area: usage, health and the engine's.
    fn zero_counters(&self) {
        let g = &self.geo;
        for off in (g.globals..g.extra_off() + 8 * g.extra).step_by(8) {
            self.put_u64(off, 0);
        }
    }

    fn write_header(&self) {
        let words = self.geo.header_words(self.seed, self.epoch);
        for (i, w) in words.iter().enumerate() {
            self.put_u64(8 * i, *w);
        }
        self.put_u64(HEADER_CHECK, header_check(&words));
    }

    fn header_state(&self) -> HeaderState {
        let words: Vec<u64> = (0..=HEADER_WORDS).map(|i| self.get_u64(8 * i)).collect();
        let found: [u64; HEADER_WORDS] = words[..HEADER_WORDS].try_into().expect("9 words");
        if header_check(&found) != words[HEADER_WORDS] || found[0] != MAGIC {
            return HeaderState::Other;
        }
        if found == self.geo.header_words(self.seed, self.epoch) {
            HeaderState::Ours
        } else if found[8] > self.epoch {
            HeaderState::Newer
        } else {
            HeaderState::Other
        }
    }

    /// Checks the mapping's header against this store: magic, version, sizes, seed, epoch
    /// and checksum.
    pub fn header_ok(&self) -> bool {
        self.header_state() == HeaderState::Ours
    }

    /// Whether the store was found already made in the memory given to `over` (its sessions
    /// kept) rather than made anew.
    pub fn inherited(&self) -> bool {
        self.inherited
    }

    /// The shared counters reserved with `extra` at creation.
    pub fn counters(&self) -> Counters {
        Counters {
            map: self.map.clone(),
            off: self.geo.extra_off(),
            len: self.geo.extra,
            epoch: self.epoch,
            private: (0..self.geo.extra).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The raw mapping, for tests that scribble on it.
    pub fn raw(&self) -> Raw {
        Raw {
            map: self.map.clone(),
        }
    }

    /// Bytes mapped.
    pub fn mapped_bytes(&self) -> usize {
        self.geo.total
    }

    /// Entries the store can hold at most (one slot each; typical records take two).
    pub fn slots(&self) -> u64 {
        self.geo.shards as u64 * u64::from(self.geo.slots)
    }

    /// Health counters summed over every process using the mapping.
    pub fn health(&self) -> Health {
        let h = |i: usize| self.atomic(self.geo.health_off() + 8 * i).load(Relaxed);
        Health {
            lock_timeouts: h(LOCK_TIMEOUTS),
            lock_errors: h(LOCK_ERRORS),
            owner_dead: h(OWNER_DEAD),
            repairs: h(REPAIRS),
            corrupt: h(CORRUPT),
        }
    }

    fn bump_health(&self, field: usize) {
        self.atomic(self.geo.health_off() + 8 * field)
            .fetch_add(1, Relaxed);
    }

    #[cfg(test)]
    fn with_timeout(mut self, timeout: Duration) -> ShmStore {
        self.timeout = timeout;
        self
    }

    // Raw access. Every offset passed here is computed from `geo` and bounds-checked indices, so
    // it lies inside the mapping; values read are untrusted and checked by the callers.

    fn atomic(&self, off: usize) -> &AtomicU64 {
        assert!(off + 8 <= self.geo.total && off % 8 == 0);
        // SAFETY: in bounds and aligned (asserted); the mapping outlives &self.
        unsafe { &*self.map.base.add(off).cast::<AtomicU64>() }
    }

    fn get_u64(&self, off: usize) -> u64 {
        self.atomic(off).load(Relaxed)
    }

    fn put_u64(&self, off: usize, v: u64) {
        self.atomic(off).store(v, Relaxed)
    }

    fn shard_base(&self, s: usize) -> *mut u8 {
        assert!(s < self.geo.shards);
        // SAFETY: shards_off + s * stride + stride <= total.
        unsafe { self.map.base.add(self.geo.shards_off + s * self.geo.stride) }
    }

    fn key_hash(&self, key: &Key) -> u64 {
        hash(self.seed, &[&key.vhost.to_le_bytes(), key.id()])
    }

    fn shard_of(&self, h: u64) -> usize {
        ((h >> 32) as usize) & (self.geo.shards - 1)
    }

    fn vhost_index(&self, vhost: u32) -> usize {
        (vhost as usize).min(self.geo.vhosts - 1)
    }

    fn checksum(&self, key: &Key, expires_at: u64, bytes: &[u8]) -> u64 {
        hash(
            self.seed ^ K1,
            &[
                &key.vhost.to_le_bytes(),
                key.id(),
                &expires_at.to_le_bytes(),
                &(bytes.len() as u64).to_le_bytes(),
                bytes,
            ],
        )
    }

    /// False once a newer store owns the memory. Rewrites a header found scribbled on (its
    /// epoch is read on every lock; the rest is checked when the epoch differs and when a
    /// shard needs repair, garbage being seldom alone).
    fn still_ours(&self) -> bool {
        if self.get_u64(HEADER_EPOCH) == self.epoch {
            return true;
        }
        self.check_header()
    }

    fn check_header(&self) -> bool {
        match self.header_state() {
            HeaderState::Ours => true,
            HeaderState::Newer => false,
            HeaderState::Other => {
                // The whole mapping was written over: its counters are garbage too.
                self.zero_counters();
                self.bump_health(REPAIRS);
                self.write_header();
                true
            }
        }
    }

    /// Takes the shard's lock, waiting at most `timeout`. A lock whose holder died is taken over;
    /// a shard left dirty (by a dead holder) or whose lock word was garbage is reset before use.
    fn lock(&self, shard: usize) -> Option<Locked<'_>> {
        if !self.still_ours() {
            return None;
        }
        let base = self.shard_base(shard);
        let Some((word, how)) = lock::acquire(
            self.atomic(base as usize - self.map.base as usize + H_LOCK),
            self.timeout,
            &self.notes[shard],
            self.started,
        ) else {
            self.bump_health(LOCK_TIMEOUTS);
            return None;
        };
        let locked = Locked {
            shard: Shard { store: self, base },
            word,
        };
        match how {
            Taken::Free => {}
            Taken::FromDead => self.bump_health(OWNER_DEAD),
            Taken::Broken => {
                self.repair(&locked);
                return Some(locked);
            }
        }
        if locked.u32_at(H_DIRTY) != 0 || !locked.state_ok() {
            self.repair(&locked);
        }
        Some(locked)
    }

    /// Empties a shard: no buckets, no slot handed out, its per-vhost counters zero; the lock
    /// word is left alone. Called under the lock on a shard found dirty or inconsistent, and
    /// on memory that held something else when a store is made over it.
    fn reset(&self, base: *mut u8) {
        let l = Shard { store: self, base };
        let g = &self.geo;
        // SAFETY: the bucket table lies inside the shard (Geometry::new).
        unsafe { std::ptr::write_bytes(l.ptr(g.buckets_off), 0, 4 * g.buckets as usize) };
        for v in 0..g.vhosts {
            l.row(v, 0).store(0, Relaxed);
            l.row(v, 1).store(0, Relaxed);
        }
        for off in [H_HAND, H_FREE, H_FREE_COUNT, H_HWM, H_DIRTY] {
            l.set_u32(off, 0);
        }
    }

    fn repair(&self, l: &Shard<'_>) {
        self.bump_health(REPAIRS);
        self.reset(l.base);
        self.check_header();
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let s = &self.shard;
        let word = s
            .store
            .atomic(s.base as usize - s.store.map.base as usize + H_LOCK);
        if !lock::release(word, self.word) {
            s.store.bump_health(LOCK_ERRORS);
        }
    }
}

impl Shard<'_> {
    fn geo(&self) -> &Geometry {
        &self.store.geo
    }

    // Field access inside the shard. Offsets come from `geo` and checked slot references.
    fn ptr(&self, off: usize) -> *mut u8 {
        assert!(off < self.geo().stride);
        // SAFETY: off < stride, so the address is inside this shard.
        unsafe { self.base.add(off) }
    }

    fn u8_at(&self, off: usize) -> u8 {
        // SAFETY: in the shard (see ptr); plain shared memory, accessed under the lock.
        unsafe { self.ptr(off).read_volatile() }
    }

    fn set_u8(&self, off: usize, v: u8) {
        // SAFETY: as u8_at.
        unsafe { self.ptr(off).write_volatile(v) }
    }

    fn u32_at(&self, off: usize) -> u32 {
        assert!(off + 4 <= self.geo().stride);
        // SAFETY: as u8_at; every u32 field is 4-aligned in the 64-aligned shard.
        unsafe { self.ptr(off).cast::<u32>().read_volatile() }
    }

    fn set_u32(&self, off: usize, v: u32) {
        assert!(off + 4 <= self.geo().stride);
        // SAFETY: as u32_at.
        unsafe { self.ptr(off).cast::<u32>().write_volatile(v) }
    }

    fn u64_at(&self, off: usize) -> u64 {
        assert!(off + 8 <= self.geo().stride);
        // SAFETY: as u8_at; u64 fields are 8-aligned.
        unsafe { self.ptr(off).cast::<u64>().read_volatile() }
    }

    fn set_u64(&self, off: usize, v: u64) {
        assert!(off + 8 <= self.geo().stride);
        // SAFETY: as u64_at.
        unsafe { self.ptr(off).cast::<u64>().write_volatile(v) }
    }

    /// Entries (field 0) or bytes (field 1) of a vhost in this shard.
    fn row(&self, vhost: usize, field: usize) -> &AtomicU64 {
        let off = self.geo().rows_off + 16 * vhost + 8 * field;
        assert!(off + 8 <= self.geo().buckets_off);
        // SAFETY: inside the shard's row area, 8-aligned; read by `usage` without the lock.
        unsafe { &*self.ptr(off).cast::<AtomicU64>() }
    }

    /// The offset of the slot a valid reference names.
    fn slot(&self, r: u32) -> usize {
        assert!(self.valid(r));
        self.geo().slots_off + (r - 1) as usize * SLOT
    }

    fn bucket_off(&self, h: u64) -> usize {
        self.geo().buckets_off + 4 * (h as usize & (self.geo().buckets as usize - 1))
    }

    fn valid(&self, r: u32) -> bool {
        r != NONE && r <= self.geo().slots
    }

    /// The shard's own state words are in range (checked on every lock).
    fn state_ok(&self) -> bool {
        let g = self.geo();
        let hwm = self.u32_at(H_HWM);
        let free = self.u32_at(H_FREE);
        hwm <= g.slots
            && self.u32_at(H_HAND) <= g.slots
            && self.u32_at(H_FREE_COUNT) <= hwm
            && (free == NONE || free <= hwm)
    }

    /// Slots free now: freed ones plus never-used ones.
    fn free_slots(&self) -> u32 {
        self.u32_at(H_FREE_COUNT) + (self.geo().slots - self.u32_at(H_HWM))
    }

    fn begin(&self) {
        self.set_u32(H_DIRTY, 1);
    }

    fn end(&self) {
        self.set_u32(H_DIRTY, 0);
    }

    fn matches(&self, s: usize, h: u64, key: &Key) -> bool {
        if self.u64_at(s + S_HASH) != h || self.u32_at(s + S_VHOST) != key.vhost {
            return false;
        }
        let id = key.id();
        if self.u8_at(s + S_ID_LEN) as usize != id.len() {
            return false;
        }
        // SAFETY: S_ID + 32 <= HEAD_HDR, inside the slot.
        let stored = unsafe { std::slice::from_raw_parts(self.ptr(s + S_ID), id.len()) };
        stored == id
    }

    /// Finds the head slot of `key` in its bucket chain.
    fn find(&self, h: u64, key: &Key) -> Found {
        let mut r = self.u32_at(self.bucket_off(h));
        let mut steps = 0;
        while r != NONE {
            if !self.valid(r) || r > self.u32_at(H_HWM) || steps > self.geo().slots {
                return Found::Broken;
            }
            let s = self.slot(r);
            if self.u8_at(s + S_KIND) != KIND_HEAD {
                return Found::Broken;
            }
            if self.matches(s, h, key) {
                return Found::At(r);
            }
            r = self.u32_at(s + S_CHAIN);
            steps += 1;
        }
        Found::Absent
    }

    /// Unlinks head slot `r` from its bucket and frees its chain, uncounting it. False when the
    /// structure is inconsistent (the caller resets the shard).
    fn drop_entry(&self, r: u32) -> bool {
        let s = self.slot(r);
        let h = self.u64_at(s + S_HASH);
        let b = self.bucket_off(h);
        let next = self.u32_at(s + S_CHAIN);
        let mut at = self.u32_at(b);
        if at == r {
            self.set_u32(b, next);
        } else {
            let mut steps = 0;
            loop {
                if !self.valid(at) || steps > self.geo().slots {
                    return false;
                }
                let sa = self.slot(at);
                let n = self.u32_at(sa + S_CHAIN);
                if n == r {
                    self.set_u32(sa + S_CHAIN, next);
                    break;
                }
                at = n;
                steps += 1;
            }
        }
        let chunks = self.u8_at(s + S_CHUNKS) as u32;
        let vhost = self.store.vhost_index(self.u32_at(s + S_VHOST));
        // Free the chain: head first, then continuations.
        let mut cur = r;
        for n in 0..chunks.max(1) {
            if !self.valid(cur) || cur > self.u32_at(H_HWM) {
                return false;
            }
            let cs = self.slot(cur);
            let want = if n == 0 { KIND_HEAD } else { KIND_CONT };
            if self.u8_at(cs + S_KIND) != want {
                return false;
            }
            let following = self.u32_at(cs + S_NEXT);
            self.push_free(cur);
            cur = following;
        }
        let entries = self.row(vhost, 0);
        entries.store(entries.load(Relaxed).saturating_sub(1), Relaxed);
        let bytes = self.row(vhost, 1);
        let cost = u64::from(chunks.max(1)) * SLOT as u64;
        bytes.store(bytes.load(Relaxed).saturating_sub(cost), Relaxed);
        true
    }

    fn push_free(&self, r: u32) {
        let s = self.slot(r);
        self.set_u8(s + S_KIND, KIND_FREE);
        self.set_u32(s + S_NEXT, self.u32_at(H_FREE));
        self.set_u32(H_FREE, r);
        self.set_u32(H_FREE_COUNT, self.u32_at(H_FREE_COUNT).saturating_add(1));
    }

    /// A free slot: a freed one, else the next never-used one. `None` on an inconsistency.
    fn pop_free(&self) -> Option<u32> {
        let r = self.u32_at(H_FREE);
        if r == NONE {
            let hwm = self.u32_at(H_HWM);
            if hwm >= self.geo().slots || self.u32_at(H_FREE_COUNT) != 0 {
                return None;
            }
            self.set_u32(H_HWM, hwm + 1);
            let r = hwm + 1;
            self.set_u8(self.slot(r) + S_KIND, KIND_CONT);
            return Some(r);
        }
        if !self.valid(r)
            || r > self.u32_at(H_HWM)
            || self.u8_at(self.slot(r) + S_KIND) != KIND_FREE
            || self.u32_at(H_FREE_COUNT) == 0
        {
            return None;
        }
        self.set_u32(H_FREE, self.u32_at(self.slot(r) + S_NEXT));
        // Marked in use at once, so a free stack looped by garbage cannot hand it out twice.
        self.set_u8(self.slot(r) + S_KIND, KIND_CONT);
        self.set_u32(H_FREE_COUNT, self.u32_at(H_FREE_COUNT) - 1);
        Some(r)
    }

    /// CLOCK over the slots handed out so far: evicts unreferenced heads (clearing reference
    /// bits on the way) until `need` slots are free. Returns evictions per vhost via `evicted`,
    /// false on an inconsistency.
    fn make_room(&self, need: u32, evicted: &mut Vec<usize>) -> bool {
        let hwm = self.u32_at(H_HWM);
        let mut hand = self.u32_at(H_HAND);
        let mut budget = 2 * u64::from(hwm) + 2;
        while self.free_slots() < need {
            if budget == 0 || hwm == 0 {
                return false;
            }
            budget -= 1;
            if hand >= hwm {
                hand = 0;
            }
            let r = hand + 1;
            let s = self.slot(r);
            if self.u8_at(s + S_KIND) == KIND_HEAD {
                if self.u8_at(s + S_REF) != 0 {
                    self.set_u8(s + S_REF, 0);
                } else {
                    let vhost = self.store.vhost_index(self.u32_at(s + S_VHOST));
                    if !self.drop_entry(r) {
                        return false;
                    }
                    evicted.push(vhost);
                }
            }
            hand += 1;
        }
        self.set_u32(H_HAND, hand);
        true
    }

    /// Copies the chain of head slot `r` out. `None` when the chain is inconsistent.
    fn read_value(&self, r: u32) -> Option<Vec<u8>> {
        let s = self.slot(r);
        let len = self.u32_at(s + S_LEN) as usize;
        let chunks = self.u8_at(s + S_CHUNKS) as usize;
        if chunks != chunks_for(len) {
            return None;
        }
        let mut out = Vec::with_capacity(len);
        let first = len.min(HEAD_PAYLOAD);
        // SAFETY: HEAD_HDR + first <= SLOT, inside the slot.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(self.ptr(s + HEAD_HDR), first) });
        let mut cur = self.u32_at(s + S_NEXT);
        while out.len() < len {
            if !self.valid(cur) {
                return None;
            }
            let cs = self.slot(cur);
            if self.u8_at(cs + S_KIND) != KIND_CONT {
                return None;
            }
            let n = (len - out.len()).min(CONT_PAYLOAD);
            // SAFETY: CONT_HDR + n <= SLOT, inside the slot.
            out.extend_from_slice(unsafe {
                std::slice::from_raw_parts(self.ptr(cs + CONT_HDR), n)
            });
            cur = self.u32_at(cs + S_NEXT);
        }
        Some(out)
    }
}

/// Why a locked operation gave up.
enum Fail {
    /// No lock in time (or at all).
    Lock,
    /// The shard was inconsistent and has been reset.
    Repaired,
}

impl ShmStore {
    fn count_evictions(&self, evicted: &[usize]) {
        for &v in evicted {
            self.atomic(self.geo.usage_off(v)).fetch_add(1, Relaxed);
        }
    }

    fn locked_get(&self, key: &Key, h: u64, now: u64) -> Result<Option<(Vec<u8>, u64, u64)>, Fail> {
        let l = self.lock(self.shard_of(h)).ok_or(Fail::Lock)?;
        let i = match l.find(h, key) {
            Found::At(i) => i,
            Found::Absent => return Ok(None),
            Found::Broken => {
                self.repair(&l);
                return Err(Fail::Repaired);
            }
        };
        let s = l.slot(i);
        let expires_at = l.u64_at(s + S_EXPIRES);
        if expires_at <= now {
            l.begin();
            let ok = l.drop_entry(i);
            if !ok {
                self.repair(&l);
                return Err(Fail::Repaired);
            }
            l.end();
            let v = self.vhost_index(key.vhost);
            self.atomic(self.geo.usage_off(v) + 8).fetch_add(1, Relaxed);
            return Ok(Some((Vec::new(), expires_at, 0)));
        }
        let Some(bytes) = l.read_value(i) else {
            self.repair(&l);
            return Err(Fail::Repaired);
        };
        l.set_u8(s + S_REF, 1);
        Ok(Some((bytes, expires_at, l.u64_at(s + S_CHECK))))
    }

    /// Drops `key` if its entry still carries checksum `check` (the one found corrupt).
    fn drop_corrupt(&self, key: &Key, h: u64, check: u64) {
        let Some(l) = self.lock(self.shard_of(h)) else {
            return;
        };
        match l.find(h, key) {
            Found::At(i) if l.u64_at(l.slot(i) + S_CHECK) == check => {
                l.begin();
                if l.drop_entry(i) {
                    l.end();
                } else {
                    self.repair(&l);
                }
            }
            Found::Broken => self.repair(&l),
            _ => {}
        }
    }
}

impl Store for ShmStore {
    fn keeps_local(&self) -> bool {
        false
    }

    fn get(&self, key: &Key, now: u64) -> Lookup {
        let h = self.key_hash(key);
        match self.locked_get(key, h, now) {
            Err(_) => Lookup::Unavailable,
            Ok(None) => Lookup::Miss,
            Ok(Some((_, expires_at, _))) if expires_at <= now => Lookup::Expired,
            Ok(Some((bytes, expires_at, check))) => {
                // Checked outside the lock: the copy is ours.
                if self.checksum(key, expires_at, &bytes) != check {
                    self.bump_health(CORRUPT);
                    self.drop_corrupt(key, h, check);
                    return Lookup::Unavailable;
                }
                Lookup::Hit(Value::new(bytes))
            }
        }
    }

    fn put(&self, key: Key, value: Value, expires_at: u64) -> Result<(), StoreError> {
        let bytes = &value.bytes[..];
        let chunks = chunks_for(bytes.len());
        if chunks > 255
            || chunks as u64 > u64::from(self.geo.slots) / 2
            || bytes.len() > u32::MAX as usize
        {
            return Err(StoreError::TooLarge);
        }
        let h = self.key_hash(&key);
        let check = self.checksum(&key, expires_at, bytes);
        let mut evicted = Vec::new();
        let result = (|| {
            let l = self.lock(self.shard_of(h)).ok_or(Fail::Lock)?;
            l.begin();
            let ok = match l.find(h, &key) {
                Found::At(i) => l.drop_entry(i),
                Found::Absent => true,
                Found::Broken => false,
            };
            if !ok || !l.make_room(chunks as u32, &mut evicted) {
                self.repair(&l);
                return Err(Fail::Repaired);
            }
            // Allocate the chain, continuations first so the head can point at them.
            let mut slots = [NONE; 256];
            for slot in slots.iter_mut().take(chunks) {
                match l.pop_free() {
                    Some(i) => *slot = i,
                    None => {
                        self.repair(&l);
                        return Err(Fail::Repaired);
                    }
                }
            }
            let head = slots[0];
            let s = l.slot(head);
            let first = bytes.len().min(HEAD_PAYLOAD);
            // SAFETY: the head's payload area holds HEAD_PAYLOAD >= first bytes.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), l.ptr(s + HEAD_HDR), first) };
            let mut done = first;
            for n in 1..chunks {
                let cs = l.slot(slots[n]);
                let len = (bytes.len() - done).min(CONT_PAYLOAD);
                // SAFETY: a continuation's payload area holds CONT_PAYLOAD >= len bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr().add(done),
                        l.ptr(cs + CONT_HDR),
                        len,
                    )
                };
                done += len;
                l.set_u32(
                    cs + S_NEXT,
                    if n + 1 < chunks { slots[n + 1] } else { NONE },
                );
                l.set_u8(cs + S_KIND, KIND_CONT);
            }
            let id = key.id();
            // SAFETY: S_ID + 32 <= HEAD_HDR; id is at most 32 bytes.
            unsafe { std::ptr::copy_nonoverlapping(id.as_ptr(), l.ptr(s + S_ID), id.len()) };
            l.set_u8(s + S_ID_LEN, id.len() as u8);
            l.set_u8(s + S_CHUNKS, chunks as u8);
            // Once eviction has begun (the hand has moved), a head the hand has yet to pass
            // in this sweep is marked, so it lasts a full sweep like one placed behind the
            // hand: freed slots come back in any order. (Marking the first fill would make the
            // first eviction sweep every slot twice.)
            let hand = l.u32_at(H_HAND);
            l.set_u8(s + S_REF, u8::from(hand != 0 && head > hand));
            l.set_u32(s + S_NEXT, if chunks > 1 { slots[1] } else { NONE });
            l.set_u32(s + S_VHOST, key.vhost);
            l.set_u32(s + S_LEN, bytes.len() as u32);
            l.set_u64(s + S_EXPIRES, expires_at);
            l.set_u64(s + S_HASH, h);
            l.set_u64(s + S_CHECK, check);
            l.set_u8(s + S_KIND, KIND_HEAD);
            let b = l.bucket_off(h);
            l.set_u32(s + S_CHAIN, l.u32_at(b));
            l.set_u32(b, head);
            let v = self.vhost_index(key.vhost);
            let entries = l.row(v, 0);
            entries.store(entries.load(Relaxed).wrapping_add(1), Relaxed);
            let used = l.row(v, 1);
            used.store(
                used.load(Relaxed).wrapping_add((chunks * SLOT) as u64),
                Relaxed,
            );
            l.end();
            Ok(())
        })();
        self.count_evictions(&evicted);
        result.map_err(|_| StoreError::Unavailable)
    }

    fn remove(&self, key: &Key) -> bool {
        let h = self.key_hash(key);
        let Some(l) = self.lock(self.shard_of(h)) else {
            return false;
        };
        match l.find(h, key) {
            Found::At(i) => {
                l.begin();
                if l.drop_entry(i) {
                    l.end();
                    true
                } else {
                    self.repair(&l);
                    false
                }
            }
            Found::Absent => false,
            Found::Broken => {
                self.repair(&l);
                false
            }
        }
    }

    fn usage(&self, vhost: Option<u32>) -> Usage {
        let one = |v: usize| {
            let mut u = Usage {
                evictions: self.get_u64(self.geo.usage_off(v)),
                expirations: self.get_u64(self.geo.usage_off(v) + 8),
                ..Usage::default()
            };
            for s in 0..self.geo.shards {
                let row = self.geo.shards_off + s * self.geo.stride + self.geo.rows_off + 16 * v;
                u.entries = u.entries.wrapping_add(self.get_u64(row));
                u.bytes = u.bytes.wrapping_add(self.get_u64(row + 8));
            }
            u
        };
        match vhost {
            Some(v) => one(self.vhost_index(v)),
            None => (0..self.geo.vhosts)
                .map(one)
                .fold(Usage::default(), |a, b| Usage {
                    entries: a.entries.wrapping_add(b.entries),
                    bytes: a.bytes.wrapping_add(b.bytes),
                    evictions: a.evictions.wrapping_add(b.evictions),
                    expirations: a.expirations.wrapping_add(b.expirations),
                }),
        }
    }
}

/// The cache keeps a handle on its store for health and test access; the engine holds another.
impl Store for Arc<ShmStore> {
    fn keeps_local(&self) -> bool {
        false
    }

    fn get(&self, key: &Key, now: u64) -> Lookup {
        (**self).get(key, now)
    }
    fn put(&self, key: Key, value: Value, expires_at: u64) -> Result<(), StoreError> {
        (**self).put(key, value, expires_at)
    }
    fn remove(&self, key: &Key) -> bool {
        (**self).remove(key)
    }
    fn usage(&self, vhost: Option<u32>) -> Usage {
        (**self).usage(vhost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: u32, n: u32) -> Key {
        let mut id = [7u8; 32];
        id[..4].copy_from_slice(&n.to_be_bytes());
        Key::new(v, &id).unwrap()
    }

    fn value(len: usize, fill: u8) -> Value {
        Value::new((0..len).map(|i| fill ^ i as u8).collect())
    }

    fn hit(s: &ShmStore, k: &Key, now: u64) -> Option<Vec<u8>> {
        match s.get(k, now) {
            Lookup::Hit(v) => Some(v.bytes.to_vec()),
            _ => None,
        }
    }

    #[test]
    fn put_get_remove_and_sizes() {
        let s = ShmStore::new(1 << 20, 2, 0).unwrap();
        assert!(s.header_ok());
        for len in [1, HEAD_PAYLOAD, HEAD_PAYLOAD + 1, 300, 1000, 5000] {
            let v = value(len, len as u8);
            s.put(key(0, len as u32), v.clone(), 100).unwrap();
            assert_eq!(
                hit(&s, &key(0, len as u32), 50).as_deref(),
                Some(&v.bytes[..])
            );
        }
        assert!(
            hit(&s, &key(1, 300), 50).is_none(),
            "another vhost's key misses"
        );
        assert_eq!(s.usage(Some(0)).entries, 6);
        assert!(s.remove(&key(0, 300)));
        assert!(!s.remove(&key(0, 300)));
        assert!(matches!(s.get(&key(0, 300), 50), Lookup::Miss));
        for len in [1, HEAD_PAYLOAD, HEAD_PAYLOAD + 1, 1000, 5000] {
            assert!(s.remove(&key(0, len as u32)));
        }
        let u = s.usage(None);
        assert_eq!((u.entries, u.bytes), (0, 0));
        assert_eq!(s.health(), Health::default());
    }

    #[test]
    fn too_small_and_too_large() {
        assert!(matches!(
            ShmStore::new(4096, 1, 0),
            Err(ShmError::TooSmall { .. })
        ));
        assert!(matches!(
            ShmStore::new(1 << 50, 1, 0),
            Err(ShmError::TooLarge)
        ));
        let s = ShmStore::new(MIN_BYTES, 1, 0).unwrap();
        assert!(s.mapped_bytes() as u64 <= MIN_BYTES);
        assert_eq!(
            s.put(key(0, 1), value(64 * 1024, 1), 9).err(),
            Some(StoreError::TooLarge)
        );
    }

    #[test]
    fn expiry_is_lazy_and_counted() {
        let s = ShmStore::new(1 << 20, 1, 0).unwrap();
        s.put(key(0, 1), value(10, 1), 100).unwrap();
        assert!(matches!(s.get(&key(0, 1), 100), Lookup::Expired));
        assert!(matches!(s.get(&key(0, 1), 50), Lookup::Miss));
        let u = s.usage(Some(0));
        assert_eq!((u.entries, u.expirations, u.bytes), (0, 1, 0));
    }

    #[test]
    fn replacing_keeps_one_entry() {
        let s = ShmStore::new(1 << 20, 1, 0).unwrap();
        s.put(key(0, 1), value(10, 1), 9).unwrap();
        s.put(key(0, 1), value(400, 2), 9).unwrap();
        let u = s.usage(None);
        assert_eq!((u.entries, u.bytes, u.evictions), (1, 2 * SLOT as u64, 0));
        assert_eq!(hit(&s, &key(0, 1), 0).unwrap().len(), 400);
    }

    #[test]
    fn bounded_with_clock_eviction() {
        let s = ShmStore::new(MIN_BYTES, 1, 0).unwrap();
        let cap = s.slots();
        for n in 0..2000 {
            s.put(key(0, n), value(300, n as u8), u64::MAX).unwrap();
            // Keep entry 0 referenced: CLOCK gives it a second chance every sweep.
            assert!(hit(&s, &key(0, 0), 0).is_some(), "n={n}");
            let u = s.usage(None);
            assert!(u.bytes <= cap * SLOT as u64 && u.entries * 2 <= cap);
        }
        let u = s.usage(None);
        assert!(u.evictions > 1800, "{u:?}");
        assert_eq!(u.entries + u.evictions, 2000);
        assert!(hit(&s, &key(0, 1999), 0).is_some(), "newest survives");
        assert_eq!(s.health(), Health::default());
    }

    #[test]
    fn dirty_shard_is_reset_not_served() {
        let s = ShmStore::new(MIN_BYTES, 1, 0).unwrap();
        for n in 0..10 {
            s.put(key(0, n), value(300, 3), u64::MAX).unwrap();
        }
        // A writer died between begin() and end().
        Shard {
            store: &s,
            base: s.shard_base(0),
        }
        .begin();
        assert!(matches!(s.get(&key(0, 3), 0), Lookup::Miss));
        assert_eq!(s.health().repairs, 1);
        assert_eq!(s.usage(None).entries, 0);
        s.put(key(0, 3), value(300, 3), u64::MAX).unwrap();
        assert!(hit(&s, &key(0, 3), 0).is_some());
    }

    #[test]
    fn flipped_byte_is_a_counted_miss() {
        let s = ShmStore::new(MIN_BYTES, 1, 0).unwrap();
        s.put(key(0, 1), value(300, 3), u64::MAX).unwrap();
        let l = s.lock(0).unwrap();
        let Found::At(i) = l.find(s.key_hash(&key(0, 1)), &key(0, 1)) else {
            panic!("stored")
        };
        let off = l.slot(i) + HEAD_HDR + 5;
        l.set_u8(off, l.u8_at(off) ^ 1);
        drop(l);
        assert!(matches!(s.get(&key(0, 1), 0), Lookup::Unavailable));
        assert!(matches!(s.get(&key(0, 1), 0), Lookup::Miss), "dropped");
        assert_eq!(s.health().corrupt, 1);
        assert_eq!(s.usage(None).entries, 0);
    }

    /// Garbage over everything, header and lock words included: no panic, no crash, nothing
    /// returned that was not stored, and the store keeps working afterwards.
    #[test]
    fn garbage_everywhere_never_serves_garbage() {
        let s = ShmStore::new(MIN_BYTES * 4, 2, 0).unwrap();
        let (base, len) = s.raw().region();
        let mut rng = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..200u32 {
            for n in 0..40 {
                let k = key(n % 2, n);
                let v = value(100 + (n as usize * 37) % 900, n as u8);
                let _ = s.put(k, v.clone(), u64::MAX);
                if let Some(got) = hit(&s, &k, 0) {
                    assert_eq!(got, v.bytes.to_vec(), "round {round}");
                }
            }
            for _ in 0..64 {
                let off = (next() as usize) % len;
                // SAFETY: off < len; a misbehaving process's write (header and locks included).
                unsafe { *base.add(off) = next() as u8 };
            }
        }
        let h = s.health();
        assert!(h.repairs + h.corrupt > 0, "{h:?}");
        s.put(key(0, 1), value(300, 9), u64::MAX).unwrap();
        assert!(hit(&s, &key(0, 1), 0).is_some());
    }

    #[test]
    fn stuck_lock_holder_times_out() {
        let s = ShmStore::new(MIN_BYTES, 1, 0)
            .unwrap()
            .with_timeout(Duration::from_millis(20));
        s.put(key(0, 1), value(10, 1), u64::MAX).unwrap();
        let s = Arc::new(s);
        let held = s.lock(0).unwrap();
        let t = {
            let s = s.clone();
            std::thread::spawn(move || {
                let t0 = std::time::Instant::now();
                let r = matches!(s.get(&key(0, 1), 0), Lookup::Unavailable);
                (r, t0.elapsed())
            })
        };
        let (unavailable, waited) = t.join().unwrap();
        drop(held);
        assert!(unavailable && waited < Duration::from_secs(1));
        assert_eq!(s.health().lock_timeouts, 1);
        assert!(hit(&s, &key(0, 1), 0).is_some());
    }

    fn fork(child: impl FnOnce() -> i32) -> libc::pid_t {
        // SAFETY: the child only runs `child` (store operations) and exits with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(99);
            // SAFETY: leaving the forked child without running the test harness's atexit state.
            unsafe { libc::_exit(code) };
        }
        pid
    }

    fn wait(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: pid is our child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        status
    }

    #[test]
    fn children_share_entries_and_counters() {
        // A holder preempted on a loaded machine must not fail a put here.
        let s = ShmStore::new(1 << 20, 2, 4)
            .unwrap()
            .with_timeout(Duration::from_secs(1));
        let c = s.counters();
        let kids: Vec<_> = (0..4u32)
            .map(|w| {
                let s = &s;
                let c = &c;
                fork(move || {
                    for n in 0..200 {
                        s.put(key(w % 2, w * 1000 + n), value(300, w as u8), u64::MAX)
                            .unwrap();
                        c.as_ref()[w as usize].fetch_add(1, Relaxed);
                    }
                    0
                })
            })
            .collect();
        for pid in kids {
            assert_eq!(wait(pid), 0, "{:?}", s.health());
        }
        for w in 0..4u32 {
            assert_eq!(c.as_ref()[w as usize].load(Relaxed), 200);
            for n in 0..200 {
                assert_eq!(hit(&s, &key(w % 2, w * 1000 + n), 0).unwrap().len(), 300);
            }
        }
        assert_eq!(s.usage(None).entries, 800);
        assert_eq!(s.usage(Some(1)).entries, 400);
    }

    #[test]
    fn killed_writers_never_leave_garbage_or_a_dead_lock() {
        let s = ShmStore::new(MIN_BYTES, 1, 0).unwrap();
        let mut rounds = 0;
        for round in 0..30u32 {
            let pid = fork(|| loop {
                for n in 0..50u32 {
                    let _ = s.put(key(0, n), value(300 + n as usize, n as u8), u64::MAX);
                }
            });
            std::thread::sleep(Duration::from_micros(200 + 97 * u64::from(round % 10)));
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            wait(pid);
            let t0 = std::time::Instant::now();
            for n in 0..50u32 {
                if let Some(got) = hit(&s, &key(0, n), 0) {
                    assert_eq!(got, value(300 + n as usize, n as u8).bytes.to_vec());
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(1));
            s.put(key(0, 1000), value(10, 1), u64::MAX).unwrap();
            assert!(hit(&s, &key(0, 1000), 0).is_some());
            rounds += 1;
        }
        assert_eq!(rounds, 30);
        assert_eq!(s.health().lock_timeouts, 0);
    }

    fn resident_pages(base: *mut u8, len: usize) -> usize {
        let pages = len.div_ceil(4096);
        let mut v = vec![0u8; pages];
        // SAFETY: base..base + len is our mapping; v has one byte per page.
        assert_eq!(
            unsafe { libc::mincore(base.cast(), len, v.as_mut_ptr()) },
            0
        );
        v.iter().filter(|b| **b & 1 != 0).count()
    }

    /// Bytes over the whole mapping, then every byte one value, then all zero: each time the
    /// store heals (lock words taken back, shards reset, header rewritten) and the next
    /// sessions stored resume.
    #[test]
    fn wiped_mapping_heals() {
        let s = ShmStore::new(1 << 20, 2, 3).unwrap();
        let (base, len) = s.raw().region();
        for fill in [0xa5u8, 0xff, 0x00, 0x01] {
            for n in 0..50 {
                s.put(key(n % 2, n), value(300, n as u8), u64::MAX).unwrap();
            }
            // SAFETY: our mapping; a misbehaving process's write over all of it.
            unsafe { std::ptr::write_bytes(base, fill, len) };
            let t0 = std::time::Instant::now();
            for n in 100..150 {
                s.put(key(n % 2, n), value(300, n as u8), u64::MAX).unwrap();
            }
            for n in 100..150 {
                assert_eq!(
                    hit(&s, &key(n % 2, n), 0),
                    Some(value(300, n as u8).bytes.to_vec()),
                    "fill {fill:#x}"
                );
            }
            assert!(t0.elapsed() < Duration::from_secs(1), "fill {fill:#x}");
            assert!(s.header_ok(), "fill {fill:#x}");
        }
        assert!(s.health().repairs > 0);
    }

    /// A fresh store touches its header and nothing else; entries touch pages as they land.
    #[test]
    fn fresh_store_touches_only_what_it_writes() {
        let s = ShmStore::new(256 << 20, 4, 100).unwrap();
        let (base, len) = s.raw().region();
        let fresh = resident_pages(base, len);
        assert!(fresh <= 2, "{fresh} pages resident");
        for n in 0..1000 {
            s.put(key(0, n), value(300, 1), u64::MAX).unwrap();
        }
        let _ = s.usage(None);
        let used = resident_pages(base, len);
        // 1000 entries of 2 slots and their buckets, and the first page of each shard.
        assert!(used < 1000 + 64 + 2, "{used} pages resident");
    }

    /// A store over host memory: a second store over the same memory and layout inherits the
    /// sessions (a reload); one with another layout starts anew, and the first stops using the
    /// memory instead of fighting over it.
    #[test]
    fn host_memory_is_inherited_or_taken_over() {
        let len = 1 << 20;
        let owner = ShmStore::new(len, 1, 0).unwrap();
        let (base, len) = owner.raw().region();
        // SAFETY: owner's mapping outlives both stores (dropped last).
        let a = unsafe { ShmStore::over(base, len, 2, 5) }.unwrap();
        assert!(!a.inherited());
        a.put(key(1, 1), value(300, 1), u64::MAX).unwrap();
        // SAFETY: as above.
        let b = unsafe { ShmStore::over(base, len, 2, 5) }.unwrap();
        assert!(b.inherited());
        assert_eq!(hit(&b, &key(1, 1), 0), Some(value(300, 1).bytes.to_vec()));
        assert_eq!(b.counters().as_ref().len(), 5);
        // SAFETY: as above.
        let c = unsafe { ShmStore::over(base, len, 3, 5) }.unwrap();
        assert!(!c.inherited());
        assert!(hit(&c, &key(1, 1), 0).is_none());
        c.put(key(1, 2), value(300, 2), u64::MAX).unwrap();
        // The superseded store's counters no longer land in the memory.
        let (ac, cc) = (a.counters(), c.counters());
        ac.as_ref()[0].fetch_add(7, Relaxed);
        assert_eq!(cc.as_ref()[0].load(Relaxed), 0);
        assert_eq!(ac.as_ref()[0].load(Relaxed), 7);
        assert_eq!(
            c.health(),
            Health::default(),
            "nothing written over c's counters"
        );
        assert!(matches!(a.get(&key(1, 2), 0), Lookup::Unavailable));
        assert!(a.put(key(1, 3), value(10, 1), u64::MAX).is_err());
        assert_eq!(hit(&c, &key(1, 2), 0), Some(value(300, 2).bytes.to_vec()));
        assert!(c.header_ok() && !a.header_ok());
        // SAFETY: misaligned on purpose.
        let bad = unsafe { ShmStore::over(base.add(8), len - 64, 1, 0) };
        assert_eq!(bad.err(), Some(ShmError::Misaligned));
        drop((a, b, c));
        drop(owner);
    }
}
