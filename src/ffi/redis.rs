//! The Redis store's C surface: the key that seals records in Redis (on the config, and rotated
//! on a live cache), and building the store for `snicache_cache_new`.

use std::sync::Arc;

use super::cache::snicache_cache;
use super::config::snicache_config;
use super::error::fail;
use super::{arg, arg_mut, guard, snicache_result};
use crate::engine::vhosts::VHosts;
use crate::engine::Level;
use crate::store::memory::MemoryStore;
use crate::store::redis::{Notify, RedisSpec, RedisStore, SealKeys};

fn key_bytes(key: &*const u8, len: usize) -> Result<&[u8], snicache_result> {
    if key.is_null() {
        return Err(fail(snicache_result::NullParameter, "key"));
    }
    if !(32..=64).contains(&len) {
        return Err(fail(
            snicache_result::InvalidParameter,
            format!("seal key of {len} bytes (32 to 64 needed)"),
        ));
    }
    // SAFETY: the caller gives `len` readable bytes at `key`.
    Ok(unsafe { super::ownership::bytes(key, len) })
}

/// Sets the secret (32 to 64 bytes, copied) from which the key sealing session records in a
/// remote store (`redis://`) is derived (HKDF-SHA256). Records are AES-256-GCM sealed and bound
/// to their vhost name and session id: every server sharing the store needs the same secret,
/// and a record copied to another key or vhost, altered, or sealed under an unknown key does not
/// open (a counted miss, never an error). Without it the ticket master secret
/// (`snicache_config_set_ticket_keys`) is used; with neither, `snicache_cache_new` refuses a
/// remote store. Ignored by the other stores.
#[no_mangle]
pub extern "C" fn snicache_config_set_seal_key(
    config: *mut snicache_config,
    key: *const u8,
    len: usize,
) -> snicache_result {
    guard(|| {
        let config = arg_mut(&config, "config")?;
        let bytes = key_bytes(&key, len)?.to_vec();
        if let Some(old) = &mut config.seal_key {
            crate::crypto::zeroize(old);
        }
        config.seal_key = Some(bytes);
        Ok(())
    })
}

/// Installs a new seal secret (32 to 64 bytes, copied) at run time: records are sealed with the
/// key derived from it at once, and records sealed under the previous key still open (the one
/// before that no longer does). Roll a new secret out to every server before removing the old
/// one. `SNICACHE_RESULT_INVALID_PARAMETER` when the cache has no remote store. Thread-safe.
#[no_mangle]
pub extern "C" fn snicache_cache_set_seal_key(
    cache: *const snicache_cache,
    key: *const u8,
    len: usize,
) -> snicache_result {
    guard(|| {
        let c = arg(&cache, "cache")?;
        let bytes = key_bytes(&key, len)?;
        let seal = c.seal().ok_or_else(|| {
            fail(
                snicache_result::InvalidParameter,
                "this cache has no remote store",
            )
        })?;
        seal.rotate(bytes);
        Ok(())
    })
}

impl snicache_cache {
    /// The Redis store's seal keys, for rotation (`redis://` stores only), reached through the
    /// store object.
    pub(crate) fn seal(&self) -> Option<&SealKeys> {
        let any = self.engine.store.as_any()?;
        any.downcast_ref::<RedisStore>().map(RedisStore::seal_keys)
    }
}

/// The Redis store for `snicache_cache_new`, with a memory store of the configured bounds as
/// its local tier.
pub(crate) fn new_store(
    url: &str,
    config: &snicache_config,
    vhosts: &VHosts,
) -> Result<RedisStore, snicache_result> {
    let spec = RedisSpec::parse(url).map_err(|e| fail(snicache_result::InvalidParameter, e))?;
    let seal = match (&config.seal_key, &config.ticket_secret) {
        (Some(key), _) => SealKeys::new(key, false),
        (None, Some(secret)) => SealKeys::new(secret, true),
        (None, None) => {
            return Err(fail(
                snicache_result::InvalidParameter,
                format!(
                    "{}: a remote store needs a seal key (snicache_config_set_seal_key) or a \
                     ticket secret (snicache_config_set_ticket_keys) shared by the fleet",
                    spec.shown()
                ),
            ))
        }
    };
    let notify = config.log.clone().map(|log| {
        Box::new(move |warning: bool, message: &str| {
            let level = if warning { Level::Warn } else { Level::Info };
            if log.enabled(level) {
                log.write(level, message);
            }
        }) as Notify
    });
    let local = MemoryStore::new(config.max_bytes, config.max_entries, vhosts.len());
    let names = vhosts.iter().map(|v| v.name.clone()).collect();
    let mut store = RedisStore::new(&spec, local, names, Arc::new(seal), notify)
        .map_err(|e| fail(snicache_result::InvalidParameter, e))?;
    if config.ready.is_some() {
        store.enable_async();
    }
    Ok(store)
}
