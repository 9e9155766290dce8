//! The fleet store: a Redis server shared by every server of a fleet, behind the in-process
//! memory store as a local tier.
//!
//! - A lookup asks the local tier first; on a local miss it fetches from Redis within a
//!   per-lookup budget (connect and read timeouts cut to what is left of it) and keeps what it
//!   found in the local tier. A timeout, an error or an open circuit breaker is `Unavailable`:
//!   the engine goes on with a full handshake. Nothing here ever blocks longer than the budget.
//! - With background fetching on (`enable_async`), `get_async` never touches Redis on the
//!   calling thread: a local miss queues a fetch for a few fetcher threads and answers
//!   `Pending`; the fetch wakes every waiting handshake when it ends (found, missing, failed or
//!   past `async_ms`), and its answer waits briefly for their retries. A hit goes to the local
//!   tier. Too many fetches at once, or an open breaker, answer `Unavailable` at once.
//! - A put goes to the local tier at once and to Redis from a background writer through a
//!   bounded queue; when the queue is full or Redis is unavailable the write is dropped and
//!   counted (the session still resumes on this server).
//! - Records leave the process sealed (AES-256-GCM, `crypto::seal`), with the vhost name and
//!   session id as associated data: a record copied to another key or vhost, or altered, does
//!   not open and is a counted miss. Rotation keeps the previous key for opening.
//! - Keys are `snicache:v1:<vhost name>:<hex id>` with a TTL of the session's remaining life.
//! - Credentials come in the URL and never appear in a message: `redact` hides them.
//! - Fork-safe: the writer thread and its queue, the fetcher threads and the pooled
//!   connections belong to one process and are made on first use in it. A process forked from
//!   one that used the store (an nginx master that made the cache, a prefork demo server) makes
//!   its own on its first use; the copy inherited from the parent is forgotten, never freed
//!   (its threads do not exist in the child and its locks may have been held at fork time).
//!   The breaker and the counters are copied at fork: per process from then on.
//!
//! Files: `url.rs` (the URL and its options), `seal.rs` (sealing records), `breaker.rs`,
//! `remote.rs` (what lookups and the writer share: key names, failures, one lookup), `pool.rs`
//! (connections and where they go), `tls.rs`, `writer.rs` (the background writer), `fetch.rs`
//! (background fetches), `fork.rs` (per-process state across forks), `bus.rs` (invalidations
//! between servers), `resp/` (the wire protocol: the client in `mod.rs`, its TLS in `tls.rs`,
//! the socket closer in `closer.rs`); this file has the store's operations.

mod breaker;
mod bus;
mod fetch;
mod fork;
mod pool;
mod remote;
pub mod resp;
mod seal;
mod tls;
mod url;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::TrySendError;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::memory::MemoryStore;
use super::{Key, Lookup, Store, StoreError, StoreHealth, Usage, Value};
use ::redis::IntoConnectionInfo as _;
use breaker::Breaker;
use fetch::Done;
use fork::{watch_forks, ProcessState};
use pool::Pool;
use remote::{Counters, Failure, Host, Remote};
use resp::{Addr, Conn, Reply, RespError};
use tls::tls_config;
use url::scrub;
use writer::Op;

pub use remote::RemoteStats;
pub use seal::SealKeys;
pub use url::{redact, RedisOptions, RedisSpec, TlsFiles};

/// Where the store reports breaker changes: `(warning, message)`; messages carry no secrets.
pub type Notify = Box<dyn Fn(bool, &str) + Send + Sync>;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A database index Redis itself refuses (over its `databases` setting) is refused at start,
/// when Redis can be asked within `write_timeout`; when it cannot, the store starts (Redis may
/// come later) and the refusal shows as a failure at first use.
fn check_db(
    host: &Host,
    setup: &resp::Setup,
    tls: Option<&resp::Tls>,
    spec: &RedisSpec,
) -> Result<(), String> {
    if setup.db == 0 {
        return Ok(());
    }
    let deadline = Instant::now() + spec.options.write_timeout;
    let addr = match host {
        Host::Fixed(a) => a.clone(),
        Host::Sentinel(..) => return Ok(()),
        Host::Name(name, port) => {
            match std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), *port))
                .ok()
                .and_then(|mut a| a.next())
            {
                Some(a) => Addr::Tcp(a),
                None => return Ok(()),
            }
        }
    };
    let no_db = resp::Setup {
        db: 0,
        ..setup.clone()
    };
    let Ok(mut c) = Conn::connect(&addr, &no_db, tls, 1024, deadline) else {
        return Ok(());
    };
    let db = setup.db.to_string();
    match c.call(&[b"SELECT", db.as_bytes()], deadline) {
        Err(RespError::Server(m)) => Err(format!(
            "{}: database {db} refused by Redis: {m}",
            spec.shown()
        )),
        _ => Ok(()),
    }
}

/// The memory store in front of Redis.
pub struct RedisStore {
    local: Arc<MemoryStore>,
    remote: Arc<Remote>,
    /// Whether `enable_async` turned background fetching on.
    background: bool,
    /// This process's `ProcessState` (a leaked `Box`), null until the first use. Replaced only
    /// when it was made in an ancestor process; freed only by Drop.
    process: AtomicPtr<ProcessState>,
}

impl RedisStore {
    /// A store over `spec` with `local` as its local tier; `vhosts` are the vhost names by
    /// index (they name the Redis keys, so servers sharing Redis must name vhosts alike).
    /// No connection is made and no thread started here: the first lookup or write in a
    /// process does that, in that process.
    pub fn new(
        spec: &RedisSpec,
        local: MemoryStore,
        vhosts: Vec<String>,
        seal: Arc<SealKeys>,
        notify: Option<Notify>,
    ) -> Result<RedisStore, String> {
        let info = spec
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("{}: {}", spec.shown(), scrub(&e.to_string(), &spec.url)))?;
        let host = match (&spec.sentinel, &info.addr) {
            (Some((sentinels, master)), _) => Host::Sentinel(sentinels.clone(), master.clone()),
            (None, addr) => match addr {
                ::redis::ConnectionAddr::Tcp(h, port) => {
                    let literal = h.trim_start_matches('[').trim_end_matches(']');
                    match literal.parse::<std::net::IpAddr>() {
                        Ok(ip) => Host::Fixed(Addr::Tcp((ip, *port).into())),
                        Err(_) => Host::Name(h.clone(), *port),
                    }
                }
                ::redis::ConnectionAddr::Unix(path) => Host::Fixed(Addr::Unix(path.clone())),
                ::redis::ConnectionAddr::TcpTls { .. } => {
                    return Err(format!(
                        "{}: use rediss://HOST:PORT?ca_file=PATH",
                        spec.shown()
                    ))
                }
            },
        };
        let tls = match &spec.tls {
            None => None,
            Some(files) => {
                Some(tls_config(files, &host).map_err(|e| format!("{}: {e}", spec.shown()))?)
            }
        };
        let setup = resp::Setup {
            username: info.redis.username.clone(),
            password: info.redis.password.clone(),
            db: info.redis.db,
        };
        check_db(&host, &setup, tls.as_ref(), spec)?;
        watch_forks();
        let remote = Arc::new(Remote {
            host,
            setup,
            tls,
            shown: spec.shown(),
            url: spec.url.clone(),
            options: spec.options,
            vhosts,
            seal,
            breaker: Breaker {
                failures: AtomicU32::new(0),
                open_until: AtomicU64::new(0),
                probing: AtomicBool::new(false),
                backoff: spec.options.backoff,
                epoch: Instant::now(),
            },
            counters: Counters::default(),
            notify,
            bus: bus::BusCounters::default(),
            quiet_until: AtomicU64::new(0),
            quieted: AtomicU64::new(0),
        });
        Ok(RedisStore {
            local: Arc::new(local),
            remote,
            background: false,
            process: AtomicPtr::new(std::ptr::null_mut()),
        })
    }

    /// Turns background fetching on for `get_async` (each process starts its fetcher threads
    /// on first use); `get` keeps fetching on the caller's thread within the budget, but
    /// answers from finished background fetches first. Calling it again does nothing.
    pub fn enable_async(&mut self) {
        self.background = true;
    }

    /// The keys that seal records, for rotation.
    pub fn seal_keys(&self) -> &SealKeys {
        &self.remote.seal
    }

    /// Counters of the Redis tier, in this process (see the module comment on fork).
    pub fn remote_stats(&self) -> RemoteStats {
        self.remote.stats()
    }

    /// Waits until this process's background writer has handled every write queued so far,
    /// or `timeout` passed; true when it has. For tests and benchmarks.
    pub fn flush(&self, timeout: Duration) -> bool {
        let p = self.process();
        let target = p.enqueued.load(Relaxed);
        let end = Instant::now() + timeout;
        while p.done.load(Relaxed) < target {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    fn enqueue(&self, op: Op) {
        let p = self.process();
        let sent = p.ops.as_ref().is_some_and(|tx| match tx.try_send(op) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        });
        if sent {
            p.enqueued.fetch_add(1, Relaxed);
        } else {
            self.remote.counters.write_drops.fetch_add(1, Relaxed);
        }
    }

    /// The local-miss path: Redis within the budget, on this thread.
    fn get_remote(&self, pool: &Pool, key: &Key, now: u64) -> Lookup {
        let r = &self.remote;
        if !r.breaker.allow() {
            r.counters.breaker_skips.fetch_add(1, Relaxed);
            return Lookup::Unavailable;
        }
        match r.lookup(pool, key, now, Instant::now() + r.options.budget) {
            Done::Found(value, expires_at) => {
                // Later lookups on this server are local; a record too large for it still resumes.
                let _ = self.local.put(*key, value.clone(), expires_at);
                Lookup::Hit(value)
            }
            Done::Missing => Lookup::Miss,
            Done::Failed => Lookup::Unavailable,
        }
    }
}

impl Store for RedisStore {
    fn get(&self, key: &Key, now: u64) -> Lookup {
        match self.local.get(key, now) {
            Lookup::Miss => {}
            found => return found,
        }
        let p = self.process();
        if let Some(f) = &p.fetches {
            if let Some(answer) = self.finished(&mut f.state.lock(), key, now) {
                return answer;
            }
        }
        self.get_remote(&p.pool, key, now)
    }

    fn get_async(&self, key: &Key, now: u64, waker: &Waker) -> Lookup {
        match self.local.get(key, now) {
            Lookup::Miss => {}
            found => return found,
        }
        let p = self.process();
        match &p.fetches {
            Some(f) => self.get_background(f, key, now, waker),
            None => self.get_remote(&p.pool, key, now),
        }
    }

    fn put(&self, key: Key, value: Value, expires_at: u64) -> Result<(), StoreError> {
        let record = value.bytes.clone();
        let local = self.local.put(key, value, expires_at);
        self.enqueue(Op::Put {
            key,
            record,
            expires_at,
        });
        local
    }

    fn remove(&self, key: &Key) -> bool {
        // Locally first: this process's own subscriber applies the published removal too.
        let removed = self.local.remove(key);
        self.enqueue(Op::Invalidate {
            kind: bus::Kind::Remove,
            key: *key,
            record: None,
            expires_at: 0,
        });
        removed
    }

    fn invalidate(&self, key: Key, tombstone: Value, expires_at: u64) -> Result<(), StoreError> {
        let record = tombstone.bytes.clone();
        let local = self.local.put(key, tombstone, expires_at);
        self.enqueue(Op::Invalidate {
            kind: bus::Kind::Tombstone,
            key,
            record: Some(record),
            expires_at,
        });
        local
    }

    fn revoke(&self, key: Key, tombstone: Value, expires_at: u64) -> Result<(), StoreError> {
        let record = tombstone.bytes.clone();
        let local = self.local.revoke(key, tombstone, expires_at);
        self.enqueue(Op::Invalidate {
            kind: bus::Kind::Revocation,
            key,
            record: Some(record),
            expires_at,
        });
        local
    }

    fn revoked(&self, key: &Key, now: u64) -> bool {
        // Local only, never a round trip; the first check in a process starts its subscriber
        // (with the writer), so revocations from the fleet reach the local set from then on,
        // and waits (at most the budget) for it to load those made before (`bus.rs`).
        if let Some(s) = &self.process().subscriber {
            s.wait_loaded(self.remote.options.budget);
        }
        self.local.revoked(key, now)
    }

    /// `DEL` on Redis within the lookup budget, on this thread: true only when Redis removed
    /// the key (answers 1 to one caller across every server sharing it). Down, slow or open
    /// breaker: false (the caller then refuses what the entry guarded, e.g. early data).
    fn take(&self, key: &Key) -> bool {
        self.local.remove(key);
        let r = &self.remote;
        if !r.breaker.allow() {
            r.counters.breaker_skips.fetch_add(1, Relaxed);
            return false;
        }
        let pool = &self.process().pool;
        let deadline = Instant::now() + r.options.budget;
        // Pooled like lookups: `open` counts every connection made, dropped ones uncounted.
        let (generation, mut conn) = match pool.take() {
            Some(c) => c,
            None => {
                if pool.open.fetch_add(1, Relaxed) >= r.options.pool {
                    pool.open.fetch_sub(1, Relaxed);
                    r.failed(
                        pool,
                        Failure::Error("no free connection in the pool".into()),
                    );
                    return false;
                }
                let generation = pool.target.generation();
                match r.connect(&pool.target, deadline) {
                    Ok(c) => (generation, c),
                    Err(f) => {
                        pool.open.fetch_sub(1, Relaxed);
                        r.failed(pool, f);
                        return false;
                    }
                }
            }
        };
        let redis_key = r.redis_key(key);
        match conn.call(&[b"DEL", redis_key.as_bytes()], deadline) {
            Ok(reply) => {
                pool.put_back(generation, conn);
                r.succeeded();
                reply == Reply::Int(1)
            }
            Err(e) => {
                if e.keeps_connection() {
                    pool.put_back(generation, conn);
                } else {
                    // A late reply would be read as the answer to the next command: never reuse.
                    pool.open.fetch_sub(1, Relaxed);
                }
                r.failed(pool, e.into());
                false
            }
        }
    }

    fn usage(&self, vhost: Option<u32>) -> Usage {
        self.local.usage(vhost)
    }

    fn health(&self) -> StoreHealth {
        self.remote.stats().health()
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
