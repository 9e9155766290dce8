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

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed},
};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Once};
use std::task::Waker;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, RwLock};

#[path = "redis_bus.rs"]
mod bus;

use super::memory::MemoryStore;
use super::resp::{self, Addr, Conn, Reply, RespError};
use super::{Key, Lookup, Store, StoreError, Usage, Value};
use crate::crypto::{hkdf_sha256, open, seal, zeroize};
use ::redis::IntoConnectionInfo as _;

/// Sealed-record format version, the first byte of every value snicache writes to Redis.
const FORMAT: u8 = 1;
const KEY_PREFIX: &str = "snicache:v1:";
const AAD_LABEL: &[u8] = b"snicache redis record v1\0";
const SEAL_SALT: &[u8] = b"snicache redis seal key v1";
/// Consecutive failures that open the circuit breaker.
const BREAKER_THRESHOLD: u32 = 3;
/// Threads running background fetches.
const FETCHERS: usize = 2;
/// Background fetches queued or running at once; more answer `Unavailable`.
const MAX_FETCHES: usize = 1024;
/// Finished fetches kept for the retries that ask for them, and for how long.
const MAX_DONE: usize = 4096;
const DONE_TTL: Duration = Duration::from_secs(2);
/// Highest database index accepted in a URL (Redis's `databases` setting is an int; servers
/// are rarely configured with more than a few thousand).
const MAX_DB: i64 = 1 << 20;
/// How often a host name is resolved again (sooner after a connection to it failed).
const RESOLVE_EVERY: Duration = Duration::from_secs(30);
const RESOLVE_RETRY: Duration = Duration::from_secs(1);
/// With Sentinel: how often the sentinels are asked for the master (sooner after a connection
/// failed or a READONLY reply, at most every `SENTINEL_RETRY`), and how long one may take.
const SENTINEL_EVERY: Duration = Duration::from_millis(1000);
const SENTINEL_RETRY: Duration = Duration::from_millis(200);
const SENTINEL_TIMEOUT: Duration = Duration::from_millis(300);
/// Repeated warnings of one kind (error replies, oversize records) at most this often.
const WARN_EVERY_MS: u64 = 10_000;

/// Tunables, given as query parameters of the store URL (all optional):
/// `redis://[user:password@]HOST:PORT[/DB]?budget_ms=5&pool=8&backoff_ms=1000&queue=4096&write_timeout_ms=100&async_ms=200&max_record=64k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisOptions {
    /// Longest a lookup may spend on Redis (connecting included): 1 to 1000 ms, default 5.
    pub budget: Duration,
    /// Most connections open for lookups at once: 1 to 256, default 8.
    pub pool: usize,
    /// How long an open circuit breaker keeps Redis out before it lets one probe through:
    /// 10 ms to 60 s, default 1 s.
    pub backoff: Duration,
    /// Writes waiting for the background writer: 1 to 1 000 000, default 4096.
    pub queue: usize,
    /// Connect and I/O timeout of the background writer: 1 to 10 000 ms, default 100.
    pub write_timeout: Duration,
    /// Longest a background fetch may take, from the lookup that queued it, before it counts
    /// as a timeout (the waiting handshake then goes on in full): 1 to 10 000 ms, default 200.
    pub async_budget: Duration,
    /// Longest value read from Redis (checked from the reply's length header, before the
    /// value is read) or written to it: 1k to 16m, default 64k.
    pub max_record: usize,
}

impl Default for RedisOptions {
    fn default() -> RedisOptions {
        RedisOptions {
            budget: Duration::from_millis(5),
            pool: 8,
            backoff: Duration::from_secs(1),
            queue: 4096,
            write_timeout: Duration::from_millis(100),
            async_budget: Duration::from_millis(200),
            max_record: 64 << 10,
        }
    }
}

/// A parsed `redis://` specification: the URL for the client (without snicache's parameters)
/// and the options.
#[derive(Clone)]
pub struct RedisSpec {
    /// The URL as the `redis` crate parses it (`rediss://` given as `redis://`, see `tls`).
    url: String,
    /// The URL as given, for messages (credentials hidden by `shown`).
    given: String,
    pub options: RedisOptions,
    /// `rediss://`: TLS with these files.
    pub tls: Option<TlsFiles>,
    /// `redis+sentinel://`: the sentinels (host, port) and the master name.
    pub sentinel: Option<(Vec<(String, u16)>, String)>,
}

/// `rediss://` parameters: the CA certificates (PEM) the server's certificate must chain to,
/// and optionally a client certificate chain and its key (PEM) for servers that ask for one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: std::path::PathBuf,
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl std::fmt::Debug for RedisSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisSpec({}, {:?})", redact(&self.given), self.options)
    }
}

impl RedisSpec {
    /// Parses and checks a specification; no connection is made. Errors never quote the
    /// credentials.
    pub fn parse(spec: &str) -> Result<RedisSpec, String> {
        let shown = redact(spec);
        let (base, query) = match spec.split_once('?') {
            Some((b, q)) => (b, q),
            None => (spec, ""),
        };
        let mut o = RedisOptions::default();
        let tls = base.starts_with("rediss://");
        let (mut ca_file, mut cert_file, mut key_file) = (None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let n = |min: u64, max: u64| {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|v| (min..=max).contains(v))
                    .ok_or_else(|| format!("{shown}: {name}={value:?} is not in {min}..={max}"))
            };
            match name {
                "budget_ms" => o.budget = Duration::from_millis(n(1, 1000)?),
                "pool" => o.pool = n(1, 256)? as usize,
                "backoff_ms" => o.backoff = Duration::from_millis(n(10, 60_000)?),
                "queue" => o.queue = n(1, 1_000_000)? as usize,
                "write_timeout_ms" => o.write_timeout = Duration::from_millis(n(1, 10_000)?),
                "async_ms" => o.async_budget = Duration::from_millis(n(1, 10_000)?),
                "max_record" => {
                    o.max_record = crate::size::parse(value)
                        .filter(|v| (1 << 10..=16 << 20).contains(v))
                        .ok_or_else(|| {
                            format!("{shown}: max_record={value:?} is not a size in 1k..=16m")
                        })? as usize
                }
                "ca_file" | "cert_file" | "key_file" if !tls => {
                    return Err(format!("{shown}: {name} is for rediss:// (TLS) URLs"))
                }
                "ca_file" | "cert_file" | "key_file" if value.is_empty() => {
                    return Err(format!("{shown}: {name} needs a path"))
                }
                "ca_file" => ca_file = Some(std::path::PathBuf::from(value)),
                "cert_file" => cert_file = Some(std::path::PathBuf::from(value)),
                "key_file" => key_file = Some(std::path::PathBuf::from(value)),
                _ => {
                    return Err(format!(
                        "{shown}: unknown parameter {name:?} (budget_ms, pool, backoff_ms, queue, write_timeout_ms, async_ms, max_record; ca_file, cert_file, key_file with rediss://)"
                    ))
                }
            }
        }
        let tls = match (tls, ca_file, cert_file, key_file) {
            (false, ..) => None,
            (true, None, ..) => {
                return Err(format!(
                    "{shown}: rediss:// needs ca_file=PATH (the CA certificates, PEM, that the server's certificate must chain to)"
                ))
            }
            (true, Some(ca_file), Some(c), Some(k)) => Some(TlsFiles {
                ca_file,
                client: Some((c, k)),
            }),
            (true, Some(ca_file), None, None) => Some(TlsFiles {
                ca_file,
                client: None,
            }),
            (true, Some(_), ..) => {
                return Err(format!(
                    "{shown}: cert_file and key_file go together (a client certificate and its key)"
                ))
            }
        };
        let given = base;
        let plain;
        let mut sentinel = None;
        let base = if let Some(rest) = base.strip_prefix("rediss://") {
            plain = format!("redis://{rest}");
            plain.as_str()
        } else if let Some(rest) = base.strip_prefix("redis+sentinel://") {
            // [user:password@]HOST:PORT,HOST:PORT.../MASTER[/DB]: the credentials and DB are
            // the master's.
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (userinfo, hosts) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, authority),
            };
            let mut sentinels = Vec::new();
            for h in hosts.split(',') {
                let (host, port) = match h.rsplit_once(':') {
                    Some((host, port)) => (host, port.parse::<u16>().ok().filter(|p| *p != 0)),
                    None => (h, Some(26379)),
                };
                match port {
                    Some(port) if !host.is_empty() => {
                        let host = host.trim_start_matches('[').trim_end_matches(']');
                        sentinels.push((host.to_owned(), port))
                    }
                    _ => return Err(format!("{shown}: {h:?} is not a sentinel HOST:PORT")),
                }
            }
            let (master, db) = path.split_once('/').unwrap_or((path, ""));
            if master.is_empty() {
                return Err(format!(
                    "{shown}: redis+sentinel://HOST:PORT,HOST:PORT.../MASTER[/DB] needs the master name"
                ));
            }
            sentinel = Some((sentinels, master.to_owned()));
            plain = match userinfo {
                Some(u) => format!("redis://{u}@sentinel-master/{db}"),
                None => format!("redis://sentinel-master/{db}"),
            };
            plain.as_str()
        } else {
            base
        };
        let info = base.into_connection_info().map_err(|e| {
            format!(
                "{shown}: not a redis://[user:password@]HOST:PORT[/DB] URL ({})",
                scrub(&e.to_string(), base)
            )
        })?;
        if !(0..=MAX_DB).contains(&info.redis.db) {
            return Err(format!(
                "{shown}: database index {} is out of range (0..={MAX_DB}; a Redis server has 16 unless configured otherwise)",
                info.redis.db
            ));
        }
        if tls.is_some() && !matches!(info.addr, ::redis::ConnectionAddr::Tcp(..)) {
            return Err(format!("{shown}: rediss:// needs a HOST:PORT"));
        }
        Ok(RedisSpec {
            url: base.to_owned(),
            given: given.to_owned(),
            options: o,
            tls,
            sentinel,
        })
    }

    /// The URL with its credentials hidden, for messages.
    pub fn shown(&self) -> String {
        redact(&self.given)
    }
}

/// `url` with any `user:password@` replaced by `***@`.
pub fn redact(url: &str) -> String {
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else {
        return url.to_owned();
    };
    let scheme_len = url.len() - rest.len();
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_len], &rest[at..]),
        None => url.to_owned(),
    }
}

/// `message` with the user name and password of `url` (if any) replaced by `***`, for error
/// texts that come from the client library.
fn scrub(message: &str, url: &str) -> String {
    let mut out = message.to_owned();
    if let Some(rest) = url.split_once("://").map(|(_, r)| r) {
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            let mut secrets: Vec<&str> = userinfo.split(':').filter(|s| s.len() > 1).collect();
            secrets.push(userinfo);
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
            for s in secrets {
                out = out.replace(s, "***");
            }
        }
    }
    out
}

/// The record sealing keys: the current one seals and opens, the previous one only opens.
pub struct SealKeys {
    keys: RwLock<([u8; 32], Option<[u8; 32]>)>,
    /// True when the keys follow the ticket master secret (no key of the host's own).
    pub from_ticket_secret: bool,
}

impl Drop for SealKeys {
    fn drop(&mut self) {
        let mut k = self.keys.write();
        zeroize(&mut k.0);
        if let Some(p) = &mut k.1 {
            zeroize(p);
        }
    }
}

impl SealKeys {
    /// Keys derived (HKDF-SHA256) from `material`: the host's seal key, or the ticket master
    /// secret, so servers given the same material open each other's records.
    pub fn new(material: &[u8], from_ticket_secret: bool) -> SealKeys {
        SealKeys {
            keys: RwLock::new((derive(material), None)),
            from_ticket_secret,
        }
    }

    /// Seals with a key derived from `material` from now on; the current key keeps opening.
    pub fn rotate(&self, material: &[u8]) {
        let mut k = self.keys.write();
        let old = std::mem::replace(&mut k.0, derive(material));
        if let Some(mut p) = k.1.replace(old) {
            zeroize(&mut p);
        }
    }

    fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut out = vec![FORMAT];
        out.extend_from_slice(&seal(&self.keys.read().0, aad, plain));
        out
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (&format, body) = sealed.split_first()?;
        if format != FORMAT {
            return None;
        }
        let k = self.keys.read();
        open(&k.0, aad, body).or_else(|| k.1.as_ref().and_then(|p| open(p, aad, body)))
    }
}

fn derive(material: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    hkdf_sha256(material, SEAL_SALT, b"records", &mut key);
    key
}

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

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    timeouts: AtomicU64,
    errors: AtomicU64,
    seal_failures: AtomicU64,
    breaker_trips: AtomicU64,
    breaker_skips: AtomicU64,
    writes: AtomicU64,
    write_drops: AtomicU64,
    fetches: AtomicU64,
    fetch_drops: AtomicU64,
}

/// Where the store reports breaker changes: `(warning, message)`; messages carry no secrets.
pub type Notify = Box<dyn Fn(bool, &str) + Send + Sync>;

/// Stops calling Redis after `BREAKER_THRESHOLD` consecutive failures, for `backoff`; then lets
/// one call through as a probe, which closes it on success or opens it again on failure.
struct Breaker {
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which Redis is skipped; 0 when closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    backoff: Duration,
    epoch: Instant,
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether a call may go to Redis now (in half-open state only the first caller may).
    fn allow(&self) -> bool {
        let until = self.open_until.load(Relaxed);
        until == 0
            || (self.now_ms() >= until
                && self
                    .probing
                    .compare_exchange(false, true, Relaxed, Relaxed)
                    .is_ok())
    }

    /// True when this success closed an open breaker.
    fn success(&self) -> bool {
        self.failures.store(0, Relaxed);
        self.probing.store(false, Relaxed);
        self.open_until.swap(0, Relaxed) != 0
    }

    /// True when this failure opened the breaker (from closed).
    fn failure(&self) -> bool {
        let until = self.now_ms() + self.backoff.as_millis() as u64;
        if self.probing.swap(false, Relaxed) {
            self.open_until.store(until, Relaxed);
            return false;
        }
        let n = self.failures.fetch_add(1, Relaxed) + 1;
        n >= BREAKER_THRESHOLD
            && self
                .open_until
                .compare_exchange(0, until, Relaxed, Relaxed)
                .is_ok()
    }

    /// An open breaker lets the next call probe now (Redis moved).
    fn probe_now(&self) {
        let until = self.open_until.load(Relaxed);
        if until != 0 {
            let _ = self.open_until.compare_exchange(until, 1, Relaxed, Relaxed);
        }
    }

    fn state(&self) -> u64 {
        match self.open_until.load(Relaxed) {
            0 => 0,
            until if self.now_ms() < until => 1,
            _ => 2,
        }
    }
}

/// How a call to Redis failed.
enum Failure {
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
enum Host {
    /// An IP address or a Unix socket: no resolution.
    Fixed(Addr),
    /// A host name and port, resolved off the handshake path (see `Target`).
    Name(String, u16),
    /// Sentinels (host, port) and the master name: the master's address is asked off the
    /// handshake path (see `Target`).
    Sentinel(Vec<(String, u16)>, String),
}

/// What the lookups and the writer share.
struct Remote {
    host: Host,
    /// AUTH and SELECT for new connections.
    setup: resp::Setup,
    /// `rediss://`: TLS for new connections.
    tls: Option<resp::Tls>,
    shown: String,
    url: String,
    options: RedisOptions,
    vhosts: Vec<String>,
    seal: Arc<SealKeys>,
    breaker: Breaker,
    counters: Counters,
    notify: Option<Notify>,
    /// Invalidation messages received from the fleet (`redis_bus.rs`).
    bus: bus::BusCounters,
    /// Breaker-epoch milliseconds before which repeated warnings stay quiet, and how many
    /// were kept quiet since the last one.
    quiet_until: AtomicU64,
    quieted: AtomicU64,
}

impl Remote {
    fn redis_key(&self, key: &Key) -> String {
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
    fn aad(&self, key: &Key) -> Vec<u8> {
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
    fn failed(&self, pool: &Pool, f: Failure) {
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
    fn warn_now_and_then(&self, message: &str) {
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

    fn warn(&self, message: &str) {
        if let Some(n) = &self.notify {
            n(true, &format!("redis store {}: {message}", self.shown));
        }
    }

    fn succeeded(&self) {
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
    fn fetch(&self, pool: &Pool, key: &str, deadline: Instant) -> Result<Option<Vec<u8>>, Failure> {
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
    fn connect(&self, target: &Target, deadline: Instant) -> Result<Conn, Failure> {
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
            self.options.max_record,
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

    fn fetch_on(
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
        let result = conn.call(&[b"GET", key.as_bytes()], deadline);
        match result {
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
                Err(Failure::Reply(format!("GET answered {other:?}")))
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
    fn lookup(&self, pool: &Pool, key: &Key, now: u64, deadline: Instant) -> Done {
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

    /// Opens a sealed value: `(expires_at, record)`.
    fn unseal(&self, key: &Key, sealed: &[u8]) -> Option<(u64, Vec<u8>)> {
        let plain = self.seal.open(&self.aad(key), sealed)?;
        if plain.len() < 8 {
            return None;
        }
        let expires = u64::from_be_bytes(plain[..8].try_into().ok()?);
        Some((expires, plain[8..].to_vec()))
    }

    fn stats(&self) -> RemoteStats {
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

enum Op {
    Put {
        key: Key,
        record: Arc<[u8]>,
        expires_at: u64,
    },
    /// Removal, tombstone or revocation: written and published to the fleet (`redis_bus.rs`).
    Invalidate {
        kind: bus::Kind,
        key: Key,
        record: Option<Arc<[u8]>>,
        expires_at: u64,
    },
}

/// The background writer: one connection, its own timeouts, the shared breaker.
struct Writer {
    remote: Arc<Remote>,
    pool: Arc<Pool>,
    /// The connection and the address generation it was made under.
    conn: Option<(u64, Conn)>,
}

impl Writer {
    fn run(mut self, ops: Receiver<Op>, closing: Arc<AtomicBool>, done: Arc<AtomicU64>) {
        while let Ok(op) = ops.recv() {
            if closing.load(Relaxed) {
                break;
            }
            if self.remote.breaker.allow() {
                let reused = self.conn.is_some();
                let result = match self.apply(&op) {
                    // The connection died since its last use (a restart): once more, anew.
                    Err(Failure::Error(_)) if reused => {
                        self.conn = None;
                        self.apply(&op)
                    }
                    r => r,
                };
                match result {
                    Ok(wrote) => {
                        self.remote.succeeded();
                        if wrote {
                            self.remote.counters.writes.fetch_add(1, Relaxed);
                        }
                    }
                    Err(f) => {
                        self.remote.counters.write_drops.fetch_add(1, Relaxed);
                        self.remote.failed(&self.pool, f);
                    }
                }
            } else {
                self.remote.counters.breaker_skips.fetch_add(1, Relaxed);
                self.remote.counters.write_drops.fetch_add(1, Relaxed);
            }
            done.fetch_add(1, Relaxed);
        }
    }

    /// Ok(true) when a record was written. A connection that failed is dropped (one that
    /// got an error reply is kept).
    fn apply(&mut self, op: &Op) -> Result<bool, Failure> {
        let r = &self.remote;
        let deadline = Instant::now() + r.options.write_timeout;
        // A record is sealed (and checked) before any connection is made.
        let put = match op {
            Op::Put {
                key,
                record,
                expires_at,
            } => {
                let ttl = expires_at.saturating_sub(unix_now());
                if ttl == 0 {
                    return Ok(false);
                }
                let mut plain = Vec::with_capacity(8 + record.len());
                plain.extend_from_slice(&expires_at.to_be_bytes());
                plain.extend_from_slice(record);
                let sealed = r.seal.seal(&r.aad(key), &plain);
                zeroize(&mut plain);
                if sealed.len() > r.options.max_record {
                    return Err(Failure::Reply(format!(
                        "a record of {} bytes is over max_record ({}): not written",
                        sealed.len(),
                        r.options.max_record
                    )));
                }
                Some((r.redis_key(key), ttl.to_string(), sealed))
            }
            Op::Invalidate { .. } => None,
        };
        let generation = self.pool.target.generation();
        if self.conn.as_ref().is_some_and(|(g, _)| *g != generation) {
            self.conn = None;
        }
        if self.conn.is_none() {
            if !matches!(r.host, Host::Fixed(_)) {
                // The writer may wait for the first resolution (lookups never do).
                self.pool.target.wait_first(deadline);
            }
            self.conn = Some((generation, r.connect(&self.pool.target, deadline)?));
        }
        let (_, conn) = self.conn.as_mut().expect("connected above");
        let result = match (op, put) {
            (_, Some((key, ttl, sealed))) => conn
                .call(
                    &[b"SET", key.as_bytes(), &sealed, b"EX", ttl.as_bytes()],
                    deadline,
                )
                .map(|_| true),
            (
                Op::Invalidate {
                    kind,
                    key,
                    record,
                    expires_at,
                },
                None,
            ) => bus::apply(
                r,
                conn,
                *kind,
                key,
                record.as_deref(),
                *expires_at,
                deadline,
            ),
            (Op::Put { .. }, None) => Ok(false),
        };
        result.map_err(|e| {
            // A replica now (READONLY, a failover): connect anew where the master is.
            if !e.keeps_connection()
                || matches!(&e, RespError::Server(m) if m.starts_with("READONLY"))
            {
                self.conn = None;
            }
            e.into()
        })
    }
}

/// The end of one Redis lookup.
enum Done {
    /// The record and when it expires.
    Found(Value, u64),
    Missing,
    /// Timed out, failed, or skipped.
    Failed,
}

/// Background fetches: queued keys with their deadlines, the wakers of the handshakes waiting
/// for each key, and finished answers waiting for those handshakes' retries.
#[derive(Default)]
struct FetchState {
    queue: VecDeque<(Key, Instant)>,
    waiting: HashMap<Key, Vec<Waker>>,
    done: HashMap<Key, (Instant, Done)>,
    closing: bool,
}

#[derive(Default)]
struct Fetches {
    state: Mutex<FetchState>,
    queued: Condvar,
}

impl Fetches {
    /// One fetcher thread: takes queued keys until the store closes, asks Redis for each
    /// within what is left of its deadline, keeps the answer and wakes whoever waits for it.
    fn run(&self, remote: &Remote, pool: &Pool) {
        loop {
            let (key, deadline) = {
                let mut s = self.state.lock();
                loop {
                    if s.closing {
                        return;
                    }
                    if let Some(job) = s.queue.pop_front() {
                        break job;
                    }
                    self.queued.wait(&mut s);
                }
            };
            let done = remote.lookup(pool, &key, unix_now(), deadline);
            let wakers = {
                let mut s = self.state.lock();
                let now = Instant::now();
                if s.done.len() >= MAX_DONE {
                    s.done.retain(|_, (until, _)| *until > now);
                    if s.done.len() >= MAX_DONE {
                        s.done.clear();
                    }
                }
                s.done.insert(key, (now + DONE_TTL, done));
                s.waiting.remove(&key).unwrap_or_default()
            };
            for w in wakers {
                w.wake();
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Connections open for lookups in this process: idle ones, and how many exist in all (idle
/// or in use; every connection dropped is taken off `open`). And where new ones go.
#[derive(Default)]
struct Pool {
    /// Idle connections with the address generation they were made under.
    idle: Mutex<Vec<(u64, Conn)>>,
    open: AtomicUsize,
    target: Target,
}

impl Pool {
    /// Drops every idle connection (the server went away: they are all dead).
    fn discard_idle(&self) {
        let dropped = std::mem::take(&mut *self.idle.lock());
        self.open.fetch_sub(dropped.len(), Relaxed);
    }

    /// An idle connection to the address in use (older ones are dropped).
    fn take(&self) -> Option<(u64, Conn)> {
        let generation = self.target.generation();
        let mut idle = self.idle.lock();
        while let Some((g, c)) = idle.pop() {
            if g == generation {
                return Some((g, c));
            }
            self.open.fetch_sub(1, Relaxed);
        }
        None
    }

    fn put_back(&self, generation: u64, conn: Conn) {
        self.idle.lock().push((generation, conn));
    }
}

/// The addresses a host name resolved to, kept by a resolver thread of this process (at
/// start, every `RESOLVE_EVERY`, and soon after a connection failed), so that no lookup ever
/// waits for name resolution. Unused for an IP address or a Unix socket.
#[derive(Default)]
struct Target {
    state: Mutex<Resolved>,
    wake: Condvar,
    generation: AtomicU64,
}

#[derive(Default)]
struct Resolved {
    addrs: Vec<Addr>,
    /// The address in use.
    current: usize,
    /// Why there is none.
    why: Option<String>,
    /// Resolve again now.
    refresh: bool,
    /// Connections failed since the last one made: resolve again every `retry`, not `every`.
    unhealthy: bool,
    closing: bool,
}

impl Target {
    fn current(&self) -> Result<Addr, String> {
        let s = self.state.lock();
        match s.addrs.get(s.current) {
            Some(a) => Ok(a.clone()),
            None => Err(s.why.clone().unwrap_or_else(|| "not yet".into())),
        }
    }

    /// Connecting to `addr` failed: the next address, and a fresh resolution.
    fn connect_failed(&self, addr: &Addr) {
        let mut s = self.state.lock();
        if s.addrs.get(s.current) == Some(addr) {
            s.current = (s.current + 1) % s.addrs.len();
        }
        drop(s);
        self.refresh();
    }

    /// A connection was made: back to resolving every `every`.
    fn connected(&self) {
        let mut s = self.state.lock();
        s.unhealthy = false;
    }

    /// Waits until a first resolution ended (for the writer, which may wait), or `deadline`.
    fn wait_first(&self, deadline: Instant) {
        let mut s = self.state.lock();
        while s.addrs.is_empty() && s.why.is_none() && !s.closing {
            if self.wake.wait_until(&mut s, deadline).timed_out() {
                return;
            }
        }
    }

    /// Asks for a fresh resolution soon (a connection failed, or Redis said READONLY: a
    /// failover).
    fn refresh(&self) {
        let mut s = self.state.lock();
        s.unhealthy = true;
        if !s.refresh {
            s.refresh = true;
            self.wake.notify_one();
        }
    }

    /// Bumped whenever the addresses change: connections made before go to a server no
    /// longer in use (a replica after a failover) and are dropped.
    fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// The resolver thread, until the store closes: `resolve` at start, every `every`, and
    /// on request (at most once per `retry`; every `retry` while it fails).
    fn run(
        &self,
        resolve: &dyn Fn() -> Result<Vec<Addr>, String>,
        changed: &dyn Fn(),
        every: Duration,
        retry: Duration,
    ) {
        let mut s = self.state.lock();
        let mut last: Option<Instant> = None;
        loop {
            if let Some(t) = last {
                let not_before = t + retry;
                while !s.closing && Instant::now() < not_before {
                    self.wake.wait_until(&mut s, not_before);
                }
            }
            if s.closing {
                return;
            }
            s.refresh = false;
            last = Some(Instant::now());
            let resolved = parking_lot::MutexGuard::unlocked(&mut s, resolve);
            let next = match resolved {
                Ok(addrs) if !addrs.is_empty() => {
                    if addrs != s.addrs {
                        let first = s.addrs.is_empty();
                        s.addrs = addrs;
                        s.current = 0;
                        self.generation.fetch_add(1, Relaxed);
                        if !first {
                            changed();
                        }
                    }
                    s.why = None;
                    if s.unhealthy {
                        retry
                    } else {
                        every
                    }
                }
                // Addresses resolved before stay in use.
                Ok(_) => {
                    s.why = Some("no address".into());
                    retry
                }
                Err(e) => {
                    s.why = Some(e);
                    retry
                }
            };
            self.wake.notify_all();
            let until = Instant::now() + next;
            while !s.refresh && !s.closing && !self.wake.wait_until(&mut s, until).timed_out() {}
        }
    }
}

/// What the resolver thread runs: host name resolution, or asking the sentinels.
type Resolve = dyn Fn() -> Result<Vec<Addr>, String> + Send;

/// The addresses of `name:port`.
fn resolve(name: &str, port: u16) -> Result<Vec<Addr>, String> {
    std::net::ToSocketAddrs::to_socket_addrs(&(name, port))
        .map(|a| a.map(Addr::Tcp).collect())
        .map_err(|e| e.to_string())
}

/// The master's address as the first sentinel that answers knows it
/// (`SENTINEL get-master-addr-by-name`).
fn ask_sentinels(sentinels: &[(String, u16)], master: &str) -> Result<Vec<Addr>, String> {
    let mut why = Vec::new();
    for (host, port) in sentinels {
        let deadline = Instant::now() + SENTINEL_TIMEOUT;
        let Some(addr) = resolve(host, *port).ok().and_then(|a| a.into_iter().next()) else {
            why.push(format!("sentinel {host}:{port} does not resolve"));
            continue;
        };
        let asked = Conn::connect(&addr, &resp::Setup::default(), None, 4096, deadline).and_then(
            |mut c| {
                c.call(
                    &[b"SENTINEL", b"get-master-addr-by-name", master.as_bytes()],
                    deadline,
                )
            },
        );
        match asked {
            Ok(Reply::Array(a)) => match &a[..] {
                [Reply::Bulk(ip), Reply::Bulk(p)] => {
                    let ip = String::from_utf8_lossy(ip);
                    let p = String::from_utf8_lossy(p).parse::<u16>().unwrap_or(0);
                    match resolve(&ip, p) {
                        Ok(a) if !a.is_empty() && p != 0 => return Ok(a),
                        _ => why.push(format!("sentinel {host}:{port} named {ip}:{p}")),
                    }
                }
                _ => why.push(format!("sentinel {host}:{port}: an unexpected answer")),
            },
            Ok(Reply::Nil) => {
                why.push(format!("sentinel {host}:{port} knows no master {master:?}"))
            }
            Ok(_) => why.push(format!("sentinel {host}:{port}: an unexpected answer")),
            Err(e) => why.push(format!("sentinel {host}:{port}: {e}")),
        }
    }
    Err(why.join("; "))
}

/// Bumped in the child of every fork (`pthread_atfork`): per-process state made under another
/// generation belongs to an ancestor process.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn forked_child() {
    FORK_GENERATION.fetch_add(1, Relaxed);
}

fn watch_forks() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only bumps an atomic (async-signal-safe); glibc
        // unregisters it if this library is unloaded.
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    });
}

/// What one process owns: the writer thread and its queue, the fetcher threads with their
/// fetches, and the lookup connections. Made on the first use in a process; freed by the
/// store's Drop in that process only.
struct ProcessState {
    /// The fork generation it was made under.
    generation: u64,
    /// The next entry of `FORGOTTEN`, once this state is forgotten in a forked child.
    next_forgotten: AtomicPtr<ProcessState>,
    pool: Arc<Pool>,
    ops: Option<SyncSender<Op>>,
    enqueued: AtomicU64,
    done: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
    /// Resolves the host name, when the URL gives one.
    resolver: Option<JoinHandle<()>>,
    /// Background fetching, when `enable_async` turned it on and its threads started.
    fetches: Option<Arc<Fetches>>,
    fetchers: Vec<JoinHandle<()>>,
    /// Applies the fleet's invalidations to the local tier (`redis_bus.rs`).
    _subscriber: Option<bus::Subscriber>,
}

impl ProcessState {
    /// Starts the writer (and the fetchers when `background`). A thread that cannot start is
    /// reported through `notify`: without the writer, writes are dropped and counted; without
    /// fetchers, `get_async` asks Redis on the caller's thread within the budget.
    fn start(
        remote: &Arc<Remote>,
        local: &Arc<MemoryStore>,
        background: bool,
        generation: u64,
    ) -> ProcessState {
        let pool = Arc::new(Pool::default());
        let (tx, rx) = sync_channel(remote.options.queue);
        let mut state = ProcessState {
            generation,
            next_forgotten: AtomicPtr::new(std::ptr::null_mut()),
            pool: pool.clone(),
            ops: Some(tx),
            enqueued: AtomicU64::new(0),
            done: Arc::new(AtomicU64::new(0)),
            closing: Arc::new(AtomicBool::new(false)),
            writer: None,
            resolver: None,
            fetches: None,
            fetchers: Vec::new(),
            _subscriber: bus::Subscriber::start(remote, local, &pool),
        };
        let resolver: Option<Box<Resolve>> = match &remote.host {
            Host::Fixed(_) => None,
            Host::Name(name, port) => {
                let (name, port) = (name.clone(), *port);
                Some(Box::new(move || resolve(&name, port)))
            }
            Host::Sentinel(sentinels, master) => {
                let (sentinels, master) = (sentinels.clone(), master.clone());
                Some(Box::new(move || ask_sentinels(&sentinels, &master)))
            }
        };
        let (every, retry) = match remote.host {
            Host::Sentinel(..) => (SENTINEL_EVERY, SENTINEL_RETRY),
            _ => (RESOLVE_EVERY, RESOLVE_RETRY),
        };
        if let Some(resolver) = resolver {
            let (p, r) = (pool.clone(), remote.clone());
            // A new address (a failover): connections to the old one are dropped (generation)
            // and an open breaker probes the new one at once.
            let changed = move || r.breaker.probe_now();
            match std::thread::Builder::new()
                .name("snicache-redis-resolve".into())
                .spawn(move || p.target.run(&*resolver, &changed, every, retry))
            {
                Ok(h) => state.resolver = Some(h),
                Err(e) => {
                    pool.target.state.lock().why = Some(format!("cannot start a thread: {e}"));
                    remote.warn(&format!("cannot start the resolver thread: {e}"));
                }
            }
        }
        let writer = Writer {
            remote: remote.clone(),
            pool: pool.clone(),
            conn: None,
        };
        let (c, d) = (state.closing.clone(), state.done.clone());
        match std::thread::Builder::new()
            .name("snicache-redis-writer".into())
            .spawn(move || writer.run(rx, c, d))
        {
            Ok(h) => state.writer = Some(h),
            Err(e) => {
                state.ops = None;
                remote.warn(&format!("cannot start the writer thread: {e}"));
            }
        }
        if background {
            let fetches = Arc::new(Fetches::default());
            for i in 0..FETCHERS {
                let (f, r, p) = (fetches.clone(), remote.clone(), pool.clone());
                match std::thread::Builder::new()
                    .name(format!("snicache-redis-fetch-{i}"))
                    .spawn(move || f.run(&r, &p))
                {
                    Ok(h) => state.fetchers.push(h),
                    Err(e) => remote.warn(&format!("cannot start a fetcher thread: {e}")),
                }
            }
            // Set even when only some started, so Drop stops those.
            state.fetches = Some(fetches);
            if state.fetchers.is_empty() {
                state.stop_fetchers();
                state.fetches = None;
            }
        }
        state
    }

    fn stop_fetchers(&mut self) {
        // Fetches still queued are given up; their wakers are dropped unwoken (no handshake
        // can outlive the cache, so none is still waiting).
        if let Some(f) = &self.fetches {
            f.state.lock().closing = true;
            f.queued.notify_all();
        }
        for h in self.fetchers.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for ProcessState {
    fn drop(&mut self) {
        // Queued writes are given up: waiting for them could take a timeout each.
        self.closing.store(true, Relaxed);
        self.ops = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        self.stop_fetchers();
        if let Some(r) = self.resolver.take() {
            self.pool.target.state.lock().closing = true;
            self.pool.target.wake.notify_all();
            let _ = r.join();
        }
    }
}

/// States made in ancestor processes, forgotten in this one (see `forget`): kept reachable from
/// here, so leak checkers count them as still in use rather than lost.
static FORGOTTEN: AtomicPtr<ProcessState> = AtomicPtr::new(std::ptr::null_mut());

/// Leaves `state`, made in an ancestor process, alone for good: its threads do not exist in
/// this process and its locks may have been held at fork time, so it is never dropped (one
/// copy per store per fork; nothing in it is used again).
fn forget(state: *mut ProcessState) {
    let mut head = FORGOTTEN.load(Relaxed);
    loop {
        // SAFETY: `state` is a leaked box that is never freed.
        unsafe { (*state).next_forgotten.store(head, Relaxed) };
        match FORGOTTEN.compare_exchange_weak(head, state, AcqRel, Relaxed) {
            Ok(_) => return,
            Err(now) => head = now,
        }
    }
}

/// The rustls client configuration for `files` (ring, TLS 1.2 and 1.3, no system roots: only
/// the CA file's certificates), and the name the server's certificate must carry: the URL's
/// host (an IP address or a DNS name; connections go to the resolved addresses).
fn tls_config(files: &TlsFiles, host: &Host) -> Result<resp::Tls, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let certs = |path: &std::path::Path| -> Result<Vec<CertificateDer<'static>>, String> {
        let certs: Vec<_> = CertificateDer::pem_file_iter(path)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&files.ca_file)? {
        roots
            .add(c)
            .map_err(|e| format!("ca_file {}: {e}", files.ca_file.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match &files.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            // Never quote the key: only its path and what is wrong with it.
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("key_file {}: not a PEM private key ({e})", key.display()))?;
            builder
                .with_client_auth_cert(certs(cert)?, key)
                .map_err(|e| format!("cert_file/key_file: {e}"))?
        }
    };
    let server_name = match host {
        Host::Fixed(Addr::Tcp(a)) => ServerName::IpAddress(a.ip().into()),
        Host::Name(name, _) => ServerName::try_from(name.clone())
            .map_err(|e| format!("{name} cannot be checked against a certificate: {e}"))?,
        Host::Fixed(Addr::Unix(_)) => return Err("TLS over a Unix socket".into()),
        Host::Sentinel(..) => return Err("TLS with Sentinel is not supported".into()),
    };
    Ok(resp::Tls {
        config: Arc::new(config),
        server_name,
    })
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

    /// This process's state, made on first use (and after a fork). No lock: one atomic load
    /// of the fork generation and one of the pointer.
    fn process(&self) -> &ProcessState {
        let seen = self.process.load(Acquire);
        // SAFETY: a non-null `self.process` is a box from `start_process`, freed only by Drop
        // (`&mut self`) and replaced only after a fork, the old one being forgotten, never
        // freed: it outlives `&self`.
        match unsafe { seen.as_ref() } {
            Some(p) if p.generation == FORK_GENERATION.load(Relaxed) => p,
            _ => self.start_process(seen),
        }
    }

    /// Makes and installs this process's state in place of `seen` (null, or an ancestor's).
    /// Threads racing here each start one; all but the first stop theirs again.
    #[cold]
    fn start_process(&self, mut seen: *mut ProcessState) -> &ProcessState {
        let generation = FORK_GENERATION.load(Relaxed);
        if !seen.is_null() {
            // Made before a fork, in a process that may have been probing Redis: this one
            // starts its own probe.
            self.remote.breaker.probing.store(false, Relaxed);
        }
        let fresh = Box::into_raw(Box::new(ProcessState::start(
            &self.remote,
            &self.local,
            self.background,
            generation,
        )));
        loop {
            match self.process.compare_exchange(seen, fresh, AcqRel, Acquire) {
                Ok(_) => {
                    // `seen` (if any) belongs to an ancestor process.
                    if !seen.is_null() {
                        forget(seen);
                    }
                    // SAFETY: `fresh` is the box just installed; only Drop frees it.
                    return unsafe { &*fresh };
                }
                Err(now) => {
                    // SAFETY: as in `process`.
                    if let Some(p) = unsafe { now.as_ref() } {
                        if p.generation == generation {
                            // Another thread of this process got there first.
                            // SAFETY: `fresh` was never shared.
                            drop(unsafe { Box::from_raw(fresh) });
                            return p;
                        }
                    }
                    seen = now;
                }
            }
        }
    }

    /// The answer of a finished background fetch for `key`, if one is waiting. A found record
    /// moves to the local tier; other answers stay for further retries until they expire.
    fn finished(&self, s: &mut FetchState, key: &Key, now: u64) -> Option<Lookup> {
        let (until, done) = s.done.remove(key)?;
        if until <= Instant::now() {
            return None;
        }
        Some(match done {
            Done::Found(value, expires_at) if expires_at > now => {
                let _ = self.local.put(*key, value.clone(), expires_at);
                Lookup::Hit(value)
            }
            Done::Found(..) => Lookup::Expired,
            Done::Missing => {
                s.done.insert(*key, (until, Done::Missing));
                Lookup::Miss
            }
            Done::Failed => {
                s.done.insert(*key, (until, Done::Failed));
                Lookup::Unavailable
            }
        })
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

    /// The local-miss path with background fetching: a finished answer, or `Pending` with
    /// `waker` registered on the (new or running) fetch of `key`.
    fn get_background(&self, f: &Fetches, key: &Key, now: u64, waker: &Waker) -> Lookup {
        let r = &self.remote;
        let mut s = f.state.lock();
        if let Some(answer) = self.finished(&mut s, key, now) {
            return answer;
        }
        if let Some(waiting) = s.waiting.get_mut(key) {
            if !waiting.iter().any(|w| w.will_wake(waker)) {
                waiting.push(waker.clone());
            }
            return Lookup::Pending;
        }
        // Capacity before the breaker: a half-open breaker lets exactly one caller probe, and
        // that caller must then run the probe.
        if s.waiting.len() >= MAX_FETCHES {
            r.counters.fetch_drops.fetch_add(1, Relaxed);
            return Lookup::Unavailable;
        }
        if !r.breaker.allow() {
            r.counters.breaker_skips.fetch_add(1, Relaxed);
            return Lookup::Unavailable;
        }
        s.waiting.insert(*key, vec![waker.clone()]);
        s.queue
            .push_back((*key, Instant::now() + r.options.async_budget));
        r.counters.fetches.fetch_add(1, Relaxed);
        drop(s);
        f.queued.notify_one();
        Lookup::Pending
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        let p = *self.process.get_mut();
        // SAFETY: as in `process`; the box is freed here, once, by the process that made it.
        match unsafe { p.as_ref() } {
            None => {}
            Some(s) if s.generation == FORK_GENERATION.load(Relaxed) => {
                drop(unsafe { Box::from_raw(p) })
            }
            // Made in an ancestor process and never replaced here.
            Some(_) => forget(p),
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
        // (with the writer), so revocations from the fleet reach the local set from then on.
        self.process();
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

    fn remote(&self) -> Option<RemoteStats> {
        Some(self.remote.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact("redis://user:s3cret@10.0.0.1:6379/2"),
            "redis://***@10.0.0.1:6379/2"
        );
        assert_eq!(redact("redis://:pw@h:1"), "redis://***@h:1");
        assert_eq!(redact("redis://h:1/0?x=a@b"), "redis://h:1/0?x=a@b");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        let err = RedisSpec::parse("redis://u:topsecret@h:1?pool=0").unwrap_err();
        assert!(!err.contains("topsecret") && err.contains("pool"), "{err}");
        let err = RedisSpec::parse("redis://u:topsecret@h:1?nope=1").unwrap_err();
        assert!(!err.contains("topsecret"), "{err}");
        let spec = RedisSpec::parse("redis://u:topsecret@h:1").unwrap();
        assert!(!format!("{spec:?}").contains("topsecret"));
        assert_eq!(
            scrub(
                "AUTH failed for u:topsecret (topsecret)",
                "redis://u:topsecret@h:1"
            ),
            "AUTH failed for *** (***)"
        );
    }

    #[test]
    fn options_parse() {
        let s =
            RedisSpec::parse("redis://127.0.0.1:6379/1?budget_ms=3&pool=2&backoff_ms=50").unwrap();
        assert_eq!(s.options.budget, Duration::from_millis(3));
        assert_eq!(s.options.pool, 2);
        assert_eq!(s.options.backoff, Duration::from_millis(50));
        assert_eq!(s.url, "redis://127.0.0.1:6379/1");
        for bad in [
            "redis://h:1?budget_ms=0",
            "redis://h:1?budget_ms=x",
            "redis://h:1?queue=0",
        ] {
            assert!(RedisSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sentinel_urls_parse() {
        let s = RedisSpec::parse(
            "redis+sentinel://u:pw@10.0.0.1:26379,s2:26380,s3,[::1]:5/mymaster/2?budget_ms=7",
        )
        .unwrap();
        let (sentinels, master) = s.sentinel.clone().unwrap();
        assert_eq!(
            sentinels,
            vec![
                ("10.0.0.1".into(), 26379),
                ("s2".into(), 26380),
                ("s3".into(), 26379),
                ("::1".into(), 5)
            ]
        );
        assert_eq!(master, "mymaster");
        assert_eq!(s.options.budget, Duration::from_millis(7));
        assert!(!format!("{s:?}").contains("pw") && s.shown().contains("***@10.0.0.1"));
        let info = s.url.as_str().into_connection_info().unwrap();
        assert_eq!(info.redis.db, 2);
        assert_eq!(info.redis.password.as_deref(), Some("pw"));
        for bad in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel://h:x/m",
            "redis+sentinel://:1/m",
        ] {
            assert!(RedisSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seal_keys_rotate_and_keep_the_previous_for_opening() {
        let k = SealKeys::new(&[1; 32], false);
        let old = k.seal(b"aad", b"record");
        k.rotate(&[2; 32]);
        let new = k.seal(b"aad", b"record");
        assert_eq!(k.open(b"aad", &old).as_deref(), Some(&b"record"[..]));
        assert_eq!(k.open(b"aad", &new).as_deref(), Some(&b"record"[..]));
        assert_eq!(k.open(b"other", &new), None);
        k.rotate(&[3; 32]);
        assert_eq!(k.open(b"aad", &old), None, "two rotations ago");
        assert!(k.open(b"aad", &new).is_some());
    }

    #[test]
    fn breaker_opens_after_failures_and_probes_once() {
        let b = Breaker {
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            backoff: Duration::from_millis(30),
            epoch: Instant::now(),
        };
        assert!(b.allow());
        assert!(!b.failure());
        assert!(!b.failure());
        assert!(b.failure(), "third failure opens");
        assert_eq!(b.state(), 1);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.state(), 2);
        assert!(b.allow(), "one probe");
        assert!(!b.allow(), "only one");
        assert!(!b.failure(), "a failed probe reopens without a new trip");
        assert_eq!(b.state(), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        assert!(b.success(), "a good probe closes");
        assert_eq!(b.state(), 0);
        assert!(b.allow() && b.allow());
    }
}
