//! The shared-memory store's C surface: memory the host provides for it, its health counters,
//! and a debug handle on the raw mapping for tests that play a misbehaving process.

use std::os::raw::c_void;

use super::cache::snicache_cache;
use super::config::snicache_config;
use super::error::fail;
use super::{arg, arg_mut, guard, out, snicache_result};
use crate::engine::stats::{ShmHealth, Stats};
use crate::store::shm::{ShmError, ShmStore};
use crate::store::spec::StoreSpec;

/// Health of a cache's shared-memory store, summed over every process using the mapping: the
/// fields declared in `engine/stats_fields.rs` (C: `SNICACHE_SHM_HEALTH_FIELDS`).
pub type snicache_shm_health = ShmHealth;

/// The store for `shm:SIZE`, in its own mapping or in the host's memory (`memory`), with room
/// for the engine's counters of `vhosts` vhosts and `rules` rules.
pub(crate) fn new_store(
    bytes: u64,
    memory: Option<(usize, usize)>,
    vhosts: usize,
    rules: usize,
) -> Result<ShmStore, snicache_result> {
    let cells = Stats::cells_needed(vhosts, rules);
    let made = match memory {
        None => ShmStore::new(bytes, vhosts, cells),
        // SAFETY: the host vouched for the memory in snicache_config_set_shm_memory.
        Some((base, len)) => unsafe { ShmStore::over(base as *mut u8, len, vhosts, cells) },
    };
    made.map_err(|e| {
        let code = match e {
            ShmError::TooSmall { .. } | ShmError::TooLarge | ShmError::Misaligned => {
                snicache_result::InvalidParameter
            }
            ShmError::Os(_) => snicache_result::StoreFailed,
        };
        fail(code, e.to_string())
    })
}

/// Makes the store of caches made from `config` a shared-memory store in `len` bytes at `base`,
/// memory the host made and shares between its processes (an nginx shared zone), instead of a
/// mapping of snicache's own. Replaces any store chosen with `snicache_config_set_store`.
///
/// `snicache_cache_new` then looks at the memory: when it holds a store of the same layout
/// (same length, the same number of vhosts and rules) made by an earlier cache, possibly in
/// another process that shares the memory, the new cache keeps that store's sessions and
/// counters (`snicache_shm_inherited` says so); otherwise it makes a new store there, writing
/// only a header: memory never used before must be zero-filled (as fresh shared mappings are),
/// and pages are touched only as sessions are written. A cache still using the memory with
/// another layout stops using it (its lookups miss) once a new store is made there.
///
/// Ownership: the host keeps the memory. It must be 64-byte aligned, readable and writable,
/// written by nothing but snicache, and outlive every cache made with it; snicache never
/// unmaps it. `config` keeps only the address. NULL `base` is
/// `SNICACHE_RESULT_NULL_PARAMETER`; a length that cannot hold a store is
/// `SNICACHE_RESULT_INVALID_PARAMETER` (misalignment is reported by `snicache_cache_new`).
/// Linux only.
#[no_mangle]
pub extern "C" fn snicache_config_set_shm_memory(
    config: *mut snicache_config,
    base: *mut c_void,
    len: usize,
) -> snicache_result {
    guard(|| {
        let config = arg_mut(&config, "config")?;
        if base.is_null() {
            return Err(fail(snicache_result::NullParameter, "base"));
        }
        crate::store::shm::check_size(len as u64)
            .map_err(|e| fail(snicache_result::InvalidParameter, e.to_string()))?;
        config.store = StoreSpec::Shm(len as u64);
        config.shm_memory = Some((base as usize, len));
        Ok(())
    })
}

/// Writes into `*out_inherited` whether the cache's shared-memory store was found already made
/// in the memory given with `snicache_config_set_shm_memory` (its sessions kept) rather than
/// made anew. `SNICACHE_RESULT_INVALID_PARAMETER` when the cache's store is not `shm:`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn snicache_shm_inherited(
    cache: *const snicache_cache,
    out_inherited: *mut bool,
) -> snicache_result {
    guard(|| {
        let s = shm(arg(&cache, "cache")?)?;
        out(out_inherited, s.inherited(), "out_inherited")
    })
}

/// The cache's store as the shared-memory store, reached through the store object.
fn shm(c: &snicache_cache) -> Result<&ShmStore, snicache_result> {
    c.engine
        .store
        .as_any()
        .and_then(|s| s.downcast_ref::<ShmStore>())
        .ok_or_else(not_shm)
}

fn not_shm() -> snicache_result {
    fail(
        snicache_result::InvalidParameter,
        "the cache's store is not shm",
    )
}

/// Reads the health counters of the cache's shared-memory store into `*out`.
/// `SNICACHE_RESULT_INVALID_PARAMETER` when the cache's store is not `shm:`. Thread-safe.
#[no_mangle]
pub extern "C" fn snicache_shm_health_get(
    cache: *const snicache_cache,
    out_health: *mut snicache_shm_health,
) -> snicache_result {
    guard(|| {
        let h = arg(&cache, "cache")?.engine.store.health();
        if h.section != "shm" {
            return Err(not_shm());
        }
        out(out_health, ShmHealth::read(&h), "out")
    })
}

/// FOR TESTS ONLY: the address and length of the cache's shared mapping, writable. Writing to it
/// plays a misbehaving worker; the store must answer such damage with counted misses, never with
/// garbage. Valid while the cache lives. Not for production use: nothing else needs the mapping.
/// Only in a library built with the `test-hooks` feature; declared when `SNICACHE_TEST_HOOKS`
/// is defined.
#[cfg(feature = "test-hooks")]
#[no_mangle]
pub extern "C" fn snicache_debug_shm_mapping(
    cache: *const snicache_cache,
    out_base: *mut *mut c_void,
    out_len: *mut usize,
) -> snicache_result {
    guard(|| {
        let s = shm(arg(&cache, "cache")?)?;
        if out_len.is_null() {
            return Err(fail(snicache_result::NullParameter, "out_len"));
        }
        let (base, len) = s.raw().region();
        out(out_base, base.cast::<c_void>(), "out_base")?;
        out(out_len, len, "out_len")
    })
}
