//! The shared-memory store's C surface: its health counters, and a debug handle on the raw
//! mapping for tests that play a misbehaving process.

use std::os::raw::c_void;

use super::cache::snicache_cache;
use super::error::fail;
use super::{arg, guard, out, snicache_result};
use crate::engine::stats::Stats;
use crate::store::shm::{ShmError, ShmStore};

/// Health of a cache's shared-memory store, summed over every process using the mapping.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct snicache_shm_health {
    /// Lock waits that timed out because a live holder was too slow (each a counted miss, or
    /// a counted store error for a put).
    pub lock_timeouts: u64,
    /// Locks that could not be taken at all (scribbled over, or made unrecoverable).
    pub lock_errors: u64,
    /// Locks taken over from a process that died holding them.
    pub owner_dead: u64,
    /// Shards emptied because they were left half-written or found inconsistent.
    pub repairs: u64,
    /// Entries whose checksum did not match: dropped, never handed out.
    pub corrupt: u64,
    /// Bytes mapped.
    pub mapped_bytes: u64,
}

/// The store for `shm:SIZE`, with room for the engine's counters of `vhosts` vhosts and
/// `rules` rules.
pub(crate) fn new_store(
    bytes: u64,
    vhosts: usize,
    rules: usize,
) -> Result<ShmStore, snicache_result> {
    ShmStore::new(bytes, vhosts, Stats::cells_needed(vhosts, rules)).map_err(|e| {
        let code = match e {
            ShmError::TooSmall { .. } | ShmError::TooLarge => snicache_result::InvalidParameter,
            ShmError::Os(_) => snicache_result::StoreFailed,
        };
        fail(code, e.to_string())
    })
}

fn shm(cache: *const snicache_cache) -> Result<&'static ShmStore, snicache_result> {
    let c: &'static snicache_cache = arg(cache, "cache")?;
    c.shm.as_deref().ok_or_else(|| {
        fail(
            snicache_result::InvalidParameter,
            "the cache's store is not shm",
        )
    })
}

/// Reads the health counters of the cache's shared-memory store into `*out`.
/// `SNICACHE_RESULT_INVALID_PARAMETER` when the cache's store is not `shm:`. Thread-safe.
#[no_mangle]
pub extern "C" fn snicache_shm_health_get(
    cache: *const snicache_cache,
    out_health: *mut snicache_shm_health,
) -> snicache_result {
    guard(|| {
        let s = shm(cache)?;
        let h = s.health();
        out(
            out_health,
            snicache_shm_health {
                lock_timeouts: h.lock_timeouts,
                lock_errors: h.lock_errors,
                owner_dead: h.owner_dead,
                repairs: h.repairs,
                corrupt: h.corrupt,
                mapped_bytes: s.mapped_bytes() as u64,
            },
            "out",
        )
    })
}

/// FOR TESTS ONLY: the address and length of the cache's shared mapping, writable. Writing to it
/// plays a misbehaving worker; the store must answer such damage with counted misses, never with
/// garbage. Valid while the cache lives. Not for production use: nothing else needs the mapping.
#[no_mangle]
pub extern "C" fn snicache_debug_shm_mapping(
    cache: *const snicache_cache,
    out_base: *mut *mut c_void,
    out_len: *mut usize,
) -> snicache_result {
    guard(|| {
        let s = shm(cache)?;
        if out_len.is_null() {
            return Err(fail(snicache_result::NullParameter, "out_len"));
        }
        let (base, len) = s.raw().region();
        out(out_base, base.cast::<c_void>(), "out_base")?;
        out(out_len, len, "out_len")
    })
}
