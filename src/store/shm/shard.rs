//! One shard: taking its lock (the lock word is lock.rs's) and resetting it when found dirty,
//! garbage or inconsistent, its fields read and written under that lock, and finding a key in
//! its bucket chains. Slots are alloc.rs's, eviction evict.rs's.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::layout::*;
use super::lock::{self, Taken};
use super::ShmStore;
use crate::store::Key;

/// A view of one shard's fields.
pub(super) struct Shard<'a> {
    pub(super) store: &'a ShmStore,
    pub(super) base: *mut u8,
}

/// A shard whose lock this process holds (with lock word `word`). Dropping it unlocks.
pub(super) struct Locked<'a> {
    shard: Shard<'a>,
    word: u64,
}

impl<'a> std::ops::Deref for Locked<'a> {
    type Target = Shard<'a>;
    fn deref(&self) -> &Shard<'a> {
        &self.shard
    }
}

pub(super) enum Found {
    At(u32),
    Absent,
    Broken,
}

impl ShmStore {
    /// Takes the shard's lock, waiting at most `timeout`. A lock whose holder died is taken over;
    /// a shard left dirty (by a dead holder) or whose lock word was garbage is reset before use.
    pub(super) fn lock(&self, shard: usize) -> Option<Locked<'_>> {
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
    pub(super) fn reset(&self, base: *mut u8) {
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

    pub(super) fn repair(&self, l: &Shard<'_>) {
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
    pub(super) fn geo(&self) -> &Geometry {
        &self.store.geo
    }

    // Field access inside the shard. Offsets come from `geo` and checked slot references.
    pub(super) fn ptr(&self, off: usize) -> *mut u8 {
        assert!(off < self.geo().stride);
        // SAFETY: off < stride, so the address is inside this shard.
        unsafe { self.base.add(off) }
    }

    pub(super) fn u8_at(&self, off: usize) -> u8 {
        // SAFETY: in the shard (see ptr); plain shared memory, accessed under the lock.
        unsafe { self.ptr(off).read_volatile() }
    }

    pub(super) fn set_u8(&self, off: usize, v: u8) {
        // SAFETY: as u8_at.
        unsafe { self.ptr(off).write_volatile(v) }
    }

    pub(super) fn u32_at(&self, off: usize) -> u32 {
        assert!(off + 4 <= self.geo().stride);
        // SAFETY: as u8_at; every u32 field is 4-aligned in the 64-aligned shard.
        unsafe { self.ptr(off).cast::<u32>().read_volatile() }
    }

    pub(super) fn set_u32(&self, off: usize, v: u32) {
        assert!(off + 4 <= self.geo().stride);
        // SAFETY: as u32_at.
        unsafe { self.ptr(off).cast::<u32>().write_volatile(v) }
    }

    pub(super) fn u64_at(&self, off: usize) -> u64 {
        assert!(off + 8 <= self.geo().stride);
        // SAFETY: as u8_at; u64 fields are 8-aligned.
        unsafe { self.ptr(off).cast::<u64>().read_volatile() }
    }

    pub(super) fn set_u64(&self, off: usize, v: u64) {
        assert!(off + 8 <= self.geo().stride);
        // SAFETY: as u64_at.
        unsafe { self.ptr(off).cast::<u64>().write_volatile(v) }
    }

    /// Entries (field 0) or bytes (field 1) of a vhost in this shard.
    pub(super) fn row(&self, vhost: usize, field: usize) -> &AtomicU64 {
        let off = self.geo().rows_off + 16 * vhost + 8 * field;
        assert!(off + 8 <= self.geo().buckets_off);
        // SAFETY: inside the shard's row area, 8-aligned; read by `usage` without the lock.
        unsafe { &*self.ptr(off).cast::<AtomicU64>() }
    }

    /// The offset of the slot a valid reference names.
    pub(super) fn slot(&self, r: u32) -> usize {
        assert!(self.valid(r));
        self.geo().slots_off + (r - 1) as usize * SLOT
    }

    pub(super) fn bucket_off(&self, h: u64) -> usize {
        self.geo().buckets_off + 4 * (h as usize & (self.geo().buckets as usize - 1))
    }

    pub(super) fn valid(&self, r: u32) -> bool {
        r != NONE && r <= self.geo().slots
    }

    /// The shard's own state words are in range (checked on every lock).
    pub(super) fn state_ok(&self) -> bool {
        let g = self.geo();
        let hwm = self.u32_at(H_HWM);
        let free = self.u32_at(H_FREE);
        hwm <= g.slots
            && self.u32_at(H_HAND) <= g.slots
            && self.u32_at(H_FREE_COUNT) <= hwm
            && (free == NONE || free <= hwm)
    }

    /// Slots free now: freed ones plus never-used ones.
    pub(super) fn free_slots(&self) -> u32 {
        self.u32_at(H_FREE_COUNT) + (self.geo().slots - self.u32_at(H_HWM))
    }

    pub(super) fn begin(&self) {
        self.set_u32(H_DIRTY, 1);
    }

    pub(super) fn end(&self) {
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
    pub(super) fn find(&self, h: u64, key: &Key) -> Found {
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
}
