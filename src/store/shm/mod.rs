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
//!
//! Files: `layout.rs` (offsets, geometry, hash), `mapping.rs` (the memory, its header and
//! counters), `lock.rs` (the lock word), `shard.rs` (a locked shard, its fields, lookup),
//! `alloc.rs` (slots), `evict.rs` (CLOCK); this file has the store's operations.

mod alloc;
mod evict;
mod layout;
mod lock;
mod mapping;
mod shard;
#[cfg(test)]
mod tests;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Key, Lookup, Store, StoreError, StoreHealth, Usage, Value};
use layout::*;
use lock::StuckNote;
use mapping::Mapping;
pub use mapping::{Counters, Raw};
use shard::Found;

/// How long a lookup or store waits for a shard lock before giving up (a counted miss).
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_millis(5);

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

/// Why a locked operation gave up.
enum Fail {
    /// No lock in time (or at all).
    Lock,
    /// The shard was inconsistent and has been reset.
    Repaired,
}

impl ShmStore {
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

    fn health(&self) -> StoreHealth {
        let h = self.health_counters();
        StoreHealth::new(
            "shm",
            &[
                ("lock_timeouts", h.lock_timeouts),
                ("lock_errors", h.lock_errors),
                ("owner_dead", h.owner_dead),
                ("repairs", h.repairs),
                ("corrupt", h.corrupt),
                ("mapped_bytes", self.mapped_bytes() as u64),
            ],
        )
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
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
