//! The mapping's layout: slot and shard field offsets, the header's words, the geometry every
//! offset is computed from (kept in each process's own memory, so garbage in the mapping cannot
//! move anything), and the keyed hash that places keys and checks entries. Pure arithmetic: it
//! touches no memory.

use super::ShmError;
use crate::store::MAX_ID_LEN;

/// Bytes per slot. An entry takes `1 + ceil((len - HEAD_PAYLOAD) / CONT_PAYLOAD)` slots: a
/// typical session record (about 210 bytes for OpenSSL's TLS 1.2 and 1.3 sessions without a
/// client certificate, plus the vhost name and SNI) fits in one (240 bytes of payload), a
/// record with a client certificate takes a few.
pub(crate) const SLOT: usize = 320;
pub(super) const HEAD_HDR: usize = 80;
pub(super) const CONT_HDR: usize = 8;
pub(super) const HEAD_PAYLOAD: usize = SLOT - HEAD_HDR;
pub(super) const CONT_PAYLOAD: usize = SLOT - CONT_HDR;
/// The slot reference meaning "none" (references are index + 1).
pub(super) const NONE: u32 = 0;
pub(super) const MAGIC: u64 = u64::from_le_bytes(*b"SNCSHM\r\n");
/// The layout version written in the header; a header of another version is not inherited.
pub(crate) const LAYOUT_VERSION: u32 = 2;
const HEADER_LEN: usize = 128;
pub(super) const HEADER_WORDS: usize = 9;
pub(super) const HEADER_CHECK: usize = 8 * HEADER_WORDS;
pub(super) const HEADER_EPOCH: usize = 8 * 8;
const SHARD_HDR: usize = 128;
const MIN_SHARD_BYTES: u64 = 256 * 1024;
const MAX_SHARDS: u64 = 64;
const MIN_SLOTS: u64 = 16;
/// The smallest size `ShmStore::new` accepts.
pub(crate) const MIN_BYTES: u64 = 64 * 1024;
/// The largest size this layout addresses.
pub(crate) const MAX_BYTES: u64 = 1 << 40;

pub(super) const KIND_FREE: u8 = 0;
pub(super) const KIND_HEAD: u8 = 1;
pub(super) const KIND_CONT: u8 = 2;

// Head slot fields (byte offsets within the slot). A continuation slot uses kind and next only.
pub(super) const S_KIND: usize = 0;
pub(super) const S_REF: usize = 1;
pub(super) const S_CHUNKS: usize = 2;
pub(super) const S_ID_LEN: usize = 3;
pub(super) const S_NEXT: usize = 4;
pub(super) const S_CHAIN: usize = 8;
pub(super) const S_VHOST: usize = 12;
pub(super) const S_LEN: usize = 16;
pub(super) const S_EXPIRES: usize = 24;
pub(super) const S_HASH: usize = 32;
pub(super) const S_CHECK: usize = 40;
pub(super) const S_ID: usize = 48;
const _: () = assert!(S_ID + MAX_ID_LEN <= HEAD_HDR);

// Shard header fields. All zero is an empty shard.
pub(super) const H_LOCK: usize = 0;
pub(super) const H_DIRTY: usize = 8;
pub(super) const H_HAND: usize = 12;
/// Top of the stack of freed slots (a reference).
pub(super) const H_FREE: usize = 16;
/// Slots on that stack.
pub(super) const H_FREE_COUNT: usize = 20;
/// Slots below this index have been handed out at least once; the rest were never touched.
pub(super) const H_HWM: usize = 24;

/// Health counters in the globals area, by index.
const HEALTH_FIELDS: usize = 5;
pub(super) const LOCK_TIMEOUTS: usize = 0;
pub(super) const LOCK_ERRORS: usize = 1;
pub(super) const OWNER_DEAD: usize = 2;
pub(super) const REPAIRS: usize = 3;
pub(super) const CORRUPT: usize = 4;

/// The sizes everything is placed by; computed once from the requested size and kept in each
/// process's own memory, so garbage in the mapping's header cannot move anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geometry {
    pub(super) total: usize,
    pub(super) shards: usize,
    pub(super) slots: u32,
    pub(super) buckets: u32,
    pub(super) vhosts: usize,
    pub(super) extra: usize,
    pub(super) globals: usize,
    pub(super) shards_off: usize,
    pub(super) stride: usize,
    pub(super) rows_off: usize,
    pub(super) buckets_off: usize,
    pub(super) slots_off: usize,
}

fn align64(n: usize) -> usize {
    (n + 63) & !63
}

impl Geometry {
    pub(super) fn new(bytes: u64, vhosts: usize, extra: usize) -> Result<Geometry, ShmError> {
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
    pub(super) fn usage_off(&self, vhost: usize) -> usize {
        self.globals + 16 * vhost
    }

    pub(super) fn health_off(&self) -> usize {
        self.globals + 16 * self.vhosts
    }

    pub(super) fn extra_off(&self) -> usize {
        self.health_off() + 8 * HEALTH_FIELDS
    }

    /// Words of the header, in order, as written and checked.
    pub(super) fn header_words(&self, seed: u64, epoch: u64) -> [u64; HEADER_WORDS] {
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

pub(super) fn header_check(words: &[u64; HEADER_WORDS]) -> u64 {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    hash(K2, &[&bytes])
}

pub(super) fn mix(a: u64, b: u64) -> u64 {
    let r = u128::from(a).wrapping_mul(u128::from(b));
    (r as u64) ^ ((r >> 64) as u64)
}

pub(super) const K0: u64 = 0xa076_1d64_78bd_642f;
pub(super) const K1: u64 = 0xe703_7ed1_a0b4_28db;
pub(super) const K2: u64 = 0x8ebc_6af0_9c88_c6e3;

/// A keyed hash, 16 bytes a step (wyhash-like). Not cryptographic: it picks shards and buckets
/// and catches torn or scribbled entries, which is all the store needs.
pub(super) fn hash(seed: u64, parts: &[&[u8]]) -> u64 {
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

pub(super) fn chunks_for(len: usize) -> usize {
    1 + len.saturating_sub(HEAD_PAYLOAD).div_ceil(CONT_PAYLOAD)
}
