//! Redis stores as the tests make them: a store serving the tests' vhosts with a small memory
//! tier in front, and the clock the stores are given.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use snicache::store::memory::MemoryStore;
use snicache::store::redis::{Notify, RedisSpec, RedisStore, SealKeys};

/// A Redis store on `spec` for `vhosts` (in this order), its local tier a 1 MiB, 10,000-entry
/// memory store, sealing with `seal`.
pub fn redis_store(
    spec: &RedisSpec,
    vhosts: &[&str],
    seal: Arc<SealKeys>,
    notify: Option<Notify>,
) -> Result<RedisStore, String> {
    RedisStore::new(
        spec,
        MemoryStore::new(1 << 20, 10_000, vhosts.len()),
        vhosts.iter().map(|s| s.to_string()).collect(),
        seal,
        notify,
    )
}

/// Seal keys from `material` (not derived from a ticket secret).
pub fn seal_keys(material: &[u8]) -> Arc<SealKeys> {
    Arc::new(SealKeys::new(material, false))
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
