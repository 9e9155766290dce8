//! What lookups, the writer and the subscriber share (`Remote`): Redis key names and the
//! associated data records are sealed under, counting failures and feeding the breaker, rate-limited
//! warnings, making a connection, and one lookup (GET, unseal, count).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use super::breaker::Breaker;
use super::bus;
use super::fetch::Done;
use super::pool::{Pool, Target};
use super::resp::{self, Addr, Conn, Reply, RespError};
use super::url::{scrub, RedisOptions};
use super::{unix_now, Notify, SealKeys};
use crate::crypto::zeroize;
use crate::store::{Key, StoreHealth, Value};

pub(super) const KEY_PREFIX: &str = "snicache:v1:";
const AAD_LABEL: &[u8] = b"snicache redis record v1\0";
/// Repeated warnings of one kind (error replies, oversize records) at most this often.
const WARN_EVERY_MS: u64 = 10_000;

/// Counters of the Redis tier (store-wide).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// Local misses answered from Redis.
    pub hits: u64,
    /// Local misses Redis did not have either.
    pub misses: u64,
    /// Lookups or writes cut off by their timeout.
    pub timeouts: u64,
    /// Lookups or writes that failed otherwise (refused, dropped connection, error reply,
    /// no free connection in the pool).
    pub errors: u64,
    /// Records that did not open (altered, moved to another key or vhost, unknown seal key).
    pub seal_failures: u64,
    /// 0 closed (Redis in use), 1 open (Redis skipped), 2 half-open (next call probes).
    pub breaker_state: u64,
    /// Times the breaker opened.
    pub breaker_trips: u64,
    /// Lookups and writes that skipped Redis because the breaker was open.
    pub breaker_skips: u64,
    /// Records written to Redis.
    pub writes: u64,
    /// Writes dropped: the queue was full, or Redis was unavailable.
    pub write_drops: u64,
    /// Background fetches started for paused handshakes (`get_async`).
    pub fetches: u64,
    /// Lookups answered `Unavailable` at once because too many fetches were under way.
    pub fetch_drops: u64,
}

impl RemoteStats {
    /// The counters as `Store::health` lists them, under `"remote"`.
    pub fn health(&self) -> StoreHealth {
        StoreHealth::new(
            "remote",
            &[
                ("hits", self.hits),
                ("misses", self.misses),
                ("timeouts", self.timeouts),
                ("errors", self.errors),
                ("seal_failures", self.seal_failures),
                ("breaker_state", self.breaker_state),
                ("breaker_trips", self.breaker_trips),
                ("breaker_skips", self.breaker_skips),
                ("writes", self.writes),
                ("write_drops", self.write_drops),
                ("fetches", self.fetches),
                ("fetch_drops", self.fetch_drops),
            ],
        )
    }
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) seal_failures: AtomicU64,
    pub(super) breaker_trips: AtomicU64,
    pub(super) breaker_skips: AtomicU64,
    pub(super) writes: AtomicU64,
    pub(super) write_drops: AtomicU64,
    pub(super) fetches: AtomicU64,
    pub(super) fetch_drops: AtomicU64,
}

/// How a call to Redis failed.
pub(super) enum Failure {
    /// Past its deadline (connection dropped).
    Timeout,
    /// Redis unreachable, or the connection broke (dropped).
    Error(String),
    /// Redis answered, with an error (OOM, NOPERM, WRONGTYPE...) or a value over the size
    /// limit: it is reachable, so the breaker is not fed.
    Reply(String),
}

impl From<RespError> for Failure {
    fn from(e: RespError) -> Failure {
        match e {
            RespError::Timeout => Failure::Timeout,
            RespError::Server(m) => Failure::Reply(m),
            e @ RespError::TooLarge(_) => Failure::Reply(e.to_string()),
            e @ (RespError::Io(_) | RespError::Protocol(_)) => Failure::Error(e.to_string()),
        }
    }
}

/// Where connections go.
pub(super) enum Host {
    /// An IP address or a Unix socket: no resolution.
    Fixed(Addr),
    /// A host name and port, resolved off the handshake path (see `Target`).
    Name(String, u16),
    /// Sentinels (host, port) and the master name: the master's address is asked off the
    /// handshake path (see `Target`).
    Sentinel(Vec<(String, u16)>, String),
}

/// What the lookups and the writer share.
pub(super) struct Remote {
    pub(super) host: Host,
    /// AUTH and SELECT for new connections.
    pub(super) setup: resp::Setup,
    /// `rediss://`: TLS for new connections.
    pub(super) tls: Option<resp::Tls>,
    pub(super) shown: String,
    pub(super) url: String,
    pub(super) options: RedisOptions,
    pub(super) vhosts: Vec<String>,
    pub(super) seal: Arc<SealKeys>,
    pub(super) breaker: Breaker,
    pub(super) counters: Counters,
    pub(super) notify: Option<Notify>,
    /// Invalidation messages received from the fleet (`bus.rs`).
    pub(super) bus: bus::BusCounters,
    /// Breaker-epoch milliseconds before which repeated warnings stay quiet, and how many
    /// were kept quiet since the last one.
    pub(super) quiet_until: AtomicU64,
    pub(super) quieted: AtomicU64,
}

impl Remote {
    pub(super) fn redis_key(&self, key: &Key) -> String {
        let name = self
            .vhosts
            .get(key.vhost as usize)
            .map_or("", String::as_str);
        let mut k = String::with_capacity(KEY_PREFIX.len() + name.len() + 1 + 64);
        k.push_str(KEY_PREFIX);
        k.push_str(name);
        k.push(':');
        for b in key.id() {
            let _ = write!(k, "{b:02x}");
        }
        k
    }

    /// Binds a sealed record to its vhost (by name, the same on every server) and session id.
    pub(super) fn aad(&self, key: &Key) -> Vec<u8> {
        let name = self
            .vhosts
            .get(key.vhost as usize)
            .map_or("", String::as_str);
        let mut aad = Vec::with_capacity(AAD_LABEL.len() + name.len() + 1 + key.id().len());
        aad.extend_from_slice(AAD_LABEL);
        aad.extend_from_slice(name.as_bytes());
        aad.push(0);
        aad.extend_from_slice(key.id());
        aad
    }

    /// Counts a failure and feeds the breaker; drops idle connections when the server went
    /// away (they are all dead then). An error reply counts but does not feed the breaker:
    /// Redis answered, and the connections stay.
    pub(super) fn failed(&self, pool: &Pool, f: Failure) {
        let why = match f {
            Failure::Timeout => {
                self.counters.timeouts.fetch_add(1, Relaxed);
                "timed out".to_owned()
            }
            Failure::Error(why) => {
                self.counters.errors.fetch_add(1, Relaxed);
                pool.discard_idle();
                why
            }
            Failure::Reply(why) => {
                self.counters.errors.fetch_add(1, Relaxed);
                if why.starts_with("READONLY") {
                    // A replica now (a failover): ask where the master is.
                    pool.target.refresh();
                }
                self.succeeded();
                self.warn_now_and_then(&scrub(&why, &self.url));
                return;
            }
        };
        if self.breaker.failure() {
            self.counters.breaker_trips.fetch_add(1, Relaxed);
            if let Some(n) = &self.notify {
                n(
                    true,
                    &format!(
                        "redis store {}: {why}; skipping it for {} ms, then probing",
                        self.shown,
                        self.breaker.backoff.as_millis()
                    ),
                );
            }
        }
    }

    /// A warning repeated at most every `WARN_EVERY_MS`, saying how many were kept quiet.
    pub(super) fn warn_now_and_then(&self, message: &str) {
        let now = self.breaker.now_ms();
        let until = self.quiet_until.load(Relaxed);
        if now < until
            || self
                .quiet_until
                .compare_exchange(until, now + WARN_EVERY_MS, Relaxed, Relaxed)
                .is_err()
        {
            self.quieted.fetch_add(1, Relaxed);
            return;
        }
        match self.quieted.swap(0, Relaxed) {
            0 => self.warn(message),
            n => self.warn(&format!(
                "{message} (and {n} more errors since the last warning)"
            )),
        }
    }

    pub(super) fn warn(&self, message: &str) {
        if let Some(n) = &self.notify {
            n(true, &format!("redis store {}: {message}", self.shown));
        }
    }

    pub(super) fn succeeded(&self) {
        if self.breaker.success() {
            if let Some(n) = &self.notify {
                n(
                    false,
                    &format!("redis store {}: reachable again", self.shown),
                );
            }
        }
    }

    /// GET within `deadline`, on a pooled connection; once more on a new one when a pooled
    /// connection turns out dead (the server restarted).
    pub(super) fn fetch(
        &self,
        pool: &Pool,
        key: &str,
        deadline: Instant,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let pooled = pool.take();
        let reused = pooled.is_some();
        match self.fetch_on(pool, pooled, key, deadline) {
            Err(Failure::Error(_)) if reused => {
                pool.discard_idle();
                self.fetch_on(pool, None, key, deadline)
            }
            r => r,
        }
    }

    /// A new connection within `deadline`, to the address in use; one that cannot be made
    /// moves on to the next resolved address.
    pub(super) fn connect(&self, target: &Target, deadline: Instant) -> Result<Conn, Failure> {
        let addr = match &self.host {
            Host::Fixed(a) => a.clone(),
            Host::Name(name, _) => target
                .current()
                .map_err(|why| Failure::Error(format!("{name} is not resolved: {why}")))?,
            Host::Sentinel(_, master) => target.current().map_err(|why| {
                Failure::Error(format!("no address for master {master:?}: {why}"))
            })?,
        };
        Conn::connect(
            &addr,
            &self.setup,
            self.tls.as_ref(),
            self.options.max_record + 1,
            deadline,
        )
        .inspect(|_| {
            if !matches!(self.host, Host::Fixed(_)) {
                target.connected();
            }
        })
        .map_err(|e| {
            target.connect_failed(&addr);
            match e {
                RespError::Timeout => Failure::Timeout,
                e => Failure::Error(scrub(&e.to_string(), &self.url)),
            }
        })
    }

    pub(super) fn fetch_on(
        &self,
        pool: &Pool,
        pooled: Option<(u64, Conn)>,
        key: &str,
        deadline: Instant,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let (generation, mut conn) = match pooled {
            Some(c) => c,
            None => {
                if pool.open.fetch_add(1, Relaxed) >= self.options.pool {
                    pool.open.fetch_sub(1, Relaxed);
                    return Err(Failure::Error("no free connection in the pool".into()));
                }
                let generation = pool.target.generation();
                match self.connect(&pool.target, deadline) {
                    Ok(c) => (generation, c),
                    Err(e) => {
                        pool.open.fetch_sub(1, Relaxed);
                        return Err(e);
                    }
                }
            }
        };
        // GETRANGE, not GET: Redis sends at most one byte more than the largest record, so a
        // huge value under a key costs neither side more than that. (A 10 MB value answered
        // by GET keeps Redis copying for milliseconds and, on a small machine, delays this
        // thread's wakeup past the budget even though the reply is refused from its header.)
        // A missing key reads as an empty string; no record is empty.
        let last = self.options.max_record.to_string();
        let result = conn.call(
            &[b"GETRANGE", key.as_bytes(), b"0", last.as_bytes()],
            deadline,
        );
        match result {
            Ok(Reply::Bulk(v)) if v.is_empty() => {
                pool.put_back(generation, conn);
                Ok(None)
            }
            Ok(Reply::Bulk(v)) if v.len() > self.options.max_record => {
                pool.put_back(generation, conn);
                Err(RespError::TooLarge(v.len() as u64).into())
            }
            Ok(Reply::Bulk(v)) => {
                pool.put_back(generation, conn);
                Ok(Some(v))
            }
            Ok(Reply::Nil) => {
                pool.put_back(generation, conn);
                Ok(None)
            }
            Ok(other) => {
                pool.put_back(generation, conn);
                Err(Failure::Reply(format!("GETRANGE answered {other:?}")))
            }
            Err(e) => {
                if e.keeps_connection() {
                    pool.put_back(generation, conn);
                } else {
                    // A late reply would be read as the answer to the next command: never reuse.
                    pool.open.fetch_sub(1, Relaxed);
                }
                Err(e.into())
            }
        }
    }

    /// Asks Redis for `key` within `deadline` (the caller checked the breaker) and counts the
    /// outcome: an altered, foreign or expired record is `Missing`.
    pub(super) fn lookup(&self, pool: &Pool, key: &Key, now: u64, deadline: Instant) -> Done {
        let sealed = match self.fetch(pool, &self.redis_key(key), deadline) {
            Ok(v) => {
                self.succeeded();
                v
            }
            Err(f) => {
                self.failed(pool, f);
                return Done::Failed;
            }
        };
        let Some(sealed) = sealed else {
            self.counters.misses.fetch_add(1, Relaxed);
            return Done::Missing;
        };
        let Some((expires_at, record)) = self.unseal(key, &sealed) else {
            self.counters.seal_failures.fetch_add(1, Relaxed);
            return Done::Missing;
        };
        if expires_at <= now {
            return Done::Missing;
        }
        self.counters.hits.fetch_add(1, Relaxed);
        Done::Found(Value::new(record), expires_at)
    }

    /// Seals `record`, kept until `expires_at`: `(sealed, ttl in seconds)`, or `None` when it
    /// has expired already (nothing to write). What the writer and the bus store; `unseal`
    /// opens it.
    pub(super) fn seal_record(
        &self,
        key: &Key,
        record: &[u8],
        expires_at: u64,
    ) -> Option<(Vec<u8>, u64)> {
        let ttl = expires_at.saturating_sub(unix_now());
        if ttl == 0 {
            return None;
        }
        let mut plain = Vec::with_capacity(8 + record.len());
        plain.extend_from_slice(&expires_at.to_be_bytes());
        plain.extend_from_slice(record);
        let sealed = self.seal.seal(&self.aad(key), &plain);
        zeroize(&mut plain);
        Some((sealed, ttl))
    }

    /// Opens a sealed value: `(expires_at, record)`.
    pub(super) fn unseal(&self, key: &Key, sealed: &[u8]) -> Option<(u64, Vec<u8>)> {
        let plain = self.seal.open(&self.aad(key), sealed)?;
        if plain.len() < 8 {
            return None;
        }
        let expires = u64::from_be_bytes(plain[..8].try_into().ok()?);
        Some((expires, plain[8..].to_vec()))
    }

    pub(super) fn stats(&self) -> RemoteStats {
        let c = &self.counters;
        RemoteStats {
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            timeouts: c.timeouts.load(Relaxed),
            errors: c.errors.load(Relaxed),
            seal_failures: c.seal_failures.load(Relaxed),
            breaker_state: self.breaker.state(),
            breaker_trips: c.breaker_trips.load(Relaxed),
            breaker_skips: c.breaker_skips.load(Relaxed),
            writes: c.writes.load(Relaxed),
            write_drops: c.write_drops.load(Relaxed),
            fetches: c.fetches.load(Relaxed),
            fetch_drops: c.fetch_drops.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_lists_every_counter_once_in_order() {
        let s = RemoteStats {
            hits: 1,
            misses: 2,
            timeouts: 3,
            errors: 4,
            seal_failures: 5,
            breaker_state: 6,
            breaker_trips: 7,
            breaker_skips: 8,
            writes: 9,
            write_drops: 10,
            fetches: 11,
            fetch_drops: 12,
        };
        let h = s.health();
        let values: Vec<u64> = h.counters.iter().map(|(_, v)| *v).collect();
        assert_eq!(values, (1..=12).collect::<Vec<u64>>());
        assert_eq!(h.get("remote", "breaker_state"), 6);
        assert_eq!(h.get("shm", "hits"), 0, "another section");
    }
}
