//! The memory and the store's view of it: making a mapping or adopting the host's memory, the
//! header (which store owns the memory; healing a scribbled one), the globals area (usage,
//! health and the engine's counters) and bounds-checked word access for the rest of the store.
//! Owns the `Mapping`; shards are shard.rs's.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use super::layout::*;
use super::lock::StuckNote;
use super::{Health, ShmError, ShmStore, LOCK_TIMEOUT};
use crate::store::Key;

/// The memory; unmapped when the last handle in this process goes, if this process mapped it.
pub(super) struct Mapping {
    pub(super) base: *mut u8,
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

    /// Health counters summed over every process using the mapping (`Store::health` lists them).
    pub fn health_counters(&self) -> Health {
        let h = |i: usize| self.atomic(self.geo.health_off() + 8 * i).load(Relaxed);
        Health {
            lock_timeouts: h(LOCK_TIMEOUTS),
            lock_errors: h(LOCK_ERRORS),
            owner_dead: h(OWNER_DEAD),
            repairs: h(REPAIRS),
            corrupt: h(CORRUPT),
        }
    }

    pub(super) fn bump_health(&self, field: usize) {
        self.atomic(self.geo.health_off() + 8 * field)
            .fetch_add(1, Relaxed);
    }

    // Raw access. Every offset passed here is computed from `geo` and bounds-checked indices, so
    // it lies inside the mapping; values read are untrusted and checked by the callers.

    pub(super) fn atomic(&self, off: usize) -> &AtomicU64 {
        assert!(off + 8 <= self.geo.total && off % 8 == 0);
        // SAFETY: in bounds and aligned (asserted); the mapping outlives &self.
        unsafe { &*self.map.base.add(off).cast::<AtomicU64>() }
    }

    pub(super) fn get_u64(&self, off: usize) -> u64 {
        self.atomic(off).load(Relaxed)
    }

    pub(super) fn put_u64(&self, off: usize, v: u64) {
        self.atomic(off).store(v, Relaxed)
    }

    pub(super) fn shard_base(&self, s: usize) -> *mut u8 {
        assert!(s < self.geo.shards);
        // SAFETY: shards_off + s * stride + stride <= total.
        unsafe { self.map.base.add(self.geo.shards_off + s * self.geo.stride) }
    }

    pub(super) fn key_hash(&self, key: &Key) -> u64 {
        hash(self.seed, &[&key.vhost.to_le_bytes(), key.id()])
    }

    pub(super) fn shard_of(&self, h: u64) -> usize {
        ((h >> 32) as usize) & (self.geo.shards - 1)
    }

    pub(super) fn vhost_index(&self, vhost: u32) -> usize {
        (vhost as usize).min(self.geo.vhosts - 1)
    }

    pub(super) fn checksum(&self, key: &Key, expires_at: u64, bytes: &[u8]) -> u64 {
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
    pub(super) fn still_ours(&self) -> bool {
        if self.get_u64(HEADER_EPOCH) == self.epoch {
            return true;
        }
        self.check_header()
    }

    pub(super) fn check_header(&self) -> bool {
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
}
