//! Invalidations between servers sharing Redis: each server's local tier (the memory store in
//! front of Redis) answers first and never asks Redis about a session it holds, so a session
//! retired on one server (a fatal alert, a single-use resumption, a ticket revoked) must be
//! retired in every other server's local tier too. This is done with Redis pub/sub:
//!
//! - The writer thread that stores a tombstone, deletes a session or stores a ticket revocation
//!   publishes it on `CHANNEL` in the same round trip (a pipeline: `SET`/`DEL`, then `PUBLISH`),
//!   so a message is never seen before the key changed in Redis.
//! - Each process that uses the store runs one subscriber thread (started with the writer, on
//!   first use, fork-safe like it), which applies every message to its local tier: a removal
//!   drops the key, a tombstone replaces the session, a revocation joins the local revocation set
//!   that ticket checks consult without any round trip.
//! - Tombstones and revocations travel sealed like stored records (AES-256-GCM bound to the vhost
//!   name and id): one that does not open still removes the key locally, never adds anything.
//!
//! Why pub/sub rather than RESP3 client-side caching (`CLIENT TRACKING`): tracking only tells a
//! client that a key it read changed, and only on the connection that read it. Sessions a server
//! stored itself were never read, so it would need broadcast mode over the whole key prefix,
//! which sends every server a message for every new session of the fleet. And a revoked ticket
//! has no key in any local tier to invalidate: the server must learn the revocation itself,
//! which a tracking message (a key name) does not carry but a published message does.
//!
//! The window: messages are fire-and-forget. A server whose subscription is down (Redis
//! unreachable, restarting) misses what is published meanwhile: until it subscribes again,
//! sessions in its local tier stay resumable there; once it has, its local tier is emptied (the
//! sessions come back from Redis, tombstones included).
//!
//! Revocations a server did not hear of: each is also a Redis key (the store key of the
//! revocation, `snicache:v1:<vhost>:<hex id>`, the id starting with `revocations::TAG`) that
//! lives as long as the ticket would. Each time the subscription is made (a process's first,
//! and after a lost one), once subscribed, the subscriber thread loads them all into the local
//! set (`load_revocations`: `SCAN` with `MATCH` on that tag, then `MGET`, on a connection of its
//! own; at most `LOAD_MAX` of them and `LOAD_TIME`, messages waiting meanwhile). So a server
//! that starts after a revocation, or was cut off when it was published, refuses the ticket
//! too. The first ticket checks of a process wait for that first load, at most the lookup
//! budget (`Subscriber::wait_loaded`); later ones never wait.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, Once};

use parking_lot::lock_api::RawRwLock as _;
use parking_lot::RwLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::resp::{Conn, Reply, RespError};
use super::{unix_now, Pool, Remote};
use crate::store::memory::MemoryStore;
use crate::store::revocations;
use crate::store::{Key, Store, Value, MAX_ID_LEN};

/// Held (shared) by the subscriber thread while it changes the local tier, and exclusively by a
/// thread that forks, from `pthread_atfork`'s prepare until the fork returns: a child never
/// starts with a local-tier shard lock held by a thread it does not have.
static FORK_GUARD: RwLock<()> = parking_lot::const_rwlock(());

extern "C" fn fork_prepare() {
    // SAFETY: taken here and released by exactly one of the two handlers below in each process.
    unsafe { FORK_GUARD.raw().lock_exclusive() };
}

extern "C" fn fork_done() {
    // SAFETY: the forking thread took it exclusively in fork_prepare.
    unsafe { FORK_GUARD.force_unlock_write() };
}

fn guard_forks() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: the handlers only take and release FORK_GUARD.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_done), Some(fork_done)) };
    });
}

/// The channel every server of a fleet publishes on and subscribes to.
pub(super) const CHANNEL: &str = "snicache:v1:invalidations";
/// How often a waiting subscriber looks whether its store is going away.
const POLL: Duration = Duration::from_millis(100);
/// Longest pause between two attempts to subscribe.
const MAX_RETRY: Duration = Duration::from_secs(2);
/// Most revocations one load brings in (the local set keeps at most its own bound anyway).
const LOAD_MAX: u64 = 1 << 20;
/// Longest a load runs: messages from the fleet wait meanwhile.
const LOAD_TIME: Duration = Duration::from_secs(10);
/// Keys one `SCAN` call looks at.
const SCAN_COUNT: &[u8] = b"1000";

/// What a message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The session is gone: drop it.
    Remove = 1,
    /// A fatal alert retired the session: the sealed tombstone replaces it.
    Tombstone = 2,
    /// A ticket is revoked until the sealed expiry.
    Revocation = 3,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Remove),
            2 => Some(Kind::Tombstone),
            3 => Some(Kind::Revocation),
            _ => None,
        }
    }
}

/// Counters of the subscriber, per process.
#[derive(Default)]
pub(super) struct BusCounters {
    pub(super) received: AtomicU64,
    pub(super) rejected: AtomicU64,
    /// Loads of the revocations Redis holds that ran to the end, and the revocations they
    /// brought into the local set.
    pub(super) loads: AtomicU64,
    pub(super) loaded: AtomicU64,
}

/// The message: kind, vhost name, id, then (tombstones and revocations) the sealed
/// `expires_at ‖ record`, as Redis holds it.
fn message(r: &Remote, kind: Kind, key: &Key, sealed: Option<&[u8]>) -> Vec<u8> {
    let name = r.vhosts.get(key.vhost as usize).map_or("", String::as_str);
    let mut m = Vec::with_capacity(3 + name.len() + key.id().len() + sealed.map_or(0, <[u8]>::len));
    m.push(kind as u8);
    m.push(name.len().min(255) as u8);
    m.extend_from_slice(&name.as_bytes()[..name.len().min(255)]);
    m.push(key.id().len() as u8);
    m.extend_from_slice(key.id());
    if let Some(s) = sealed {
        m.extend_from_slice(s);
    }
    m
}

/// Applies an invalidation to Redis and publishes it, in one round trip (a pipeline: the key
/// changes before the message goes out). Ok(true) when a record was written.
pub(super) fn apply(
    r: &Remote,
    conn: &mut Conn,
    kind: Kind,
    key: &Key,
    record: Option<&[u8]>,
    expires_at: u64,
    deadline: Instant,
) -> Result<bool, RespError> {
    let redis_key = r.redis_key(key);
    let sealed = match (kind, record) {
        (Kind::Remove, _) | (_, None) => None,
        (_, Some(record)) => {
            let Some((sealed, ttl)) = r.seal_record(key, record, expires_at) else {
                return Ok(false);
            };
            Some((sealed, ttl.to_string()))
        }
    };
    let kind = if sealed.is_none() { Kind::Remove } else { kind };
    let msg = message(r, kind, key, sealed.as_ref().map(|(s, _)| &s[..]));
    let publish: &[&[u8]] = &[b"PUBLISH", CHANNEL.as_bytes(), &msg];
    match &sealed {
        None => conn.call_many(&[&[b"DEL", redis_key.as_bytes()], publish], deadline)?,
        Some((sealed, ttl)) => conn.call_many(
            &[
                &[b"SET", redis_key.as_bytes(), sealed, b"EX", ttl.as_bytes()],
                publish,
            ],
            deadline,
        )?,
    };
    Ok(sealed.is_some())
}

/// Applies one received message to the local tier. False when it was malformed or for a
/// vhost this server does not have.
fn receive(r: &Remote, local: &MemoryStore, payload: &[u8]) -> bool {
    let parse = || -> Option<(Kind, Key, &[u8])> {
        let kind = Kind::from_byte(*payload.first()?)?;
        let name_len = usize::from(*payload.get(1)?);
        let name = std::str::from_utf8(payload.get(2..2 + name_len)?).ok()?;
        let id_len = usize::from(*payload.get(2 + name_len)?);
        if id_len > MAX_ID_LEN {
            return None;
        }
        let id = payload.get(3 + name_len..3 + name_len + id_len)?;
        let vhost = r.vhosts.iter().position(|v| v == name)?;
        let key = Key::new(u32::try_from(vhost).ok()?, id)?;
        Some((kind, key, &payload[3 + name_len + id_len..]))
    };
    let Some((kind, key, sealed)) = parse() else {
        return false;
    };
    let _fork = FORK_GUARD.read();
    let opened = (kind != Kind::Remove)
        .then(|| r.unseal(&key, sealed))
        .flatten()
        .filter(|(expires_at, _)| *expires_at > unix_now());
    match (kind, opened) {
        (Kind::Tombstone, Some((expires_at, record))) => {
            if local.put(key, Value::new(record), expires_at).is_err() {
                local.remove(&key);
            }
        }
        (Kind::Revocation, Some((expires_at, record))) => {
            let _ = local.revoke(key, Value::new(record), expires_at);
        }
        // A removal, or a tombstone that does not open (another seal key, altered, expired):
        // drop the key, add nothing.
        (Kind::Remove | Kind::Tombstone, _) => {
            local.remove(&key);
        }
        (Kind::Revocation, None) => return false,
    }
    true
}

/// One process's subscriber thread.
pub(super) struct Subscriber {
    closing: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    first_load: Arc<FirstLoad>,
}

/// Whether the first load of revocations in this process is over (done, or given up on), for
/// the ticket checks that wait for it.
#[derive(Default)]
struct FirstLoad {
    over: Mutex<bool>,
    changed: Condvar,
    /// No check waits any more: the load is over or a check has waited its budget.
    settled: AtomicBool,
}

impl FirstLoad {
    fn finish(&self) {
        *self.over.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.changed.notify_all();
    }
}

impl Subscriber {
    /// Starts the thread; None (reported through the store's notify) when it cannot start.
    pub(super) fn start(
        remote: &Arc<Remote>,
        local: &Arc<MemoryStore>,
        pool: &Arc<Pool>,
    ) -> Option<Subscriber> {
        guard_forks();
        let closing = Arc::new(AtomicBool::new(false));
        let first_load = Arc::new(FirstLoad::default());
        let (r, l, p, c) = (remote.clone(), local.clone(), pool.clone(), closing.clone());
        let f = first_load.clone();
        match std::thread::Builder::new()
            .name("snicache-redis-bus".into())
            .spawn(move || run(&r, &l, &p, &c, &f))
        {
            Ok(h) => Some(Subscriber {
                closing,
                thread: Some(h),
                first_load,
            }),
            Err(e) => {
                remote.warn(&format!(
                    "cannot start the invalidation subscriber thread: {e}"
                ));
                None
            }
        }
    }

    /// Waits, at most `budget`, until the process's first load of the revocations Redis holds
    /// is over, so a server that just started refuses tickets revoked before it did. Only the
    /// first checks wait: once the load is over or a check has waited its whole budget (Redis
    /// slow or down), none does again. One atomic load then.
    pub(super) fn wait_loaded(&self, budget: Duration) {
        let f = &self.first_load;
        if f.settled.load(Relaxed) {
            return;
        }
        let over = f.over.lock().unwrap_or_else(|e| e.into_inner());
        let (over, _) = f
            .changed
            .wait_timeout_while(over, budget, |over| !*over)
            .unwrap_or_else(|e| e.into_inner());
        drop(over);
        f.settled.store(true, Relaxed);
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.closing.store(true, Relaxed);
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

/// Sleeps `d` in slices, returning early (true) when closing.
fn pause(d: Duration, closing: &AtomicBool) -> bool {
    let mut left = d;
    while !left.is_zero() {
        if closing.load(Relaxed) {
            return true;
        }
        let step = left.min(POLL);
        std::thread::sleep(step);
        left -= step;
    }
    closing.load(Relaxed)
}

fn run(r: &Remote, local: &MemoryStore, pool: &Pool, closing: &AtomicBool, first_load: &FirstLoad) {
    let mut retry = POLL;
    let mut lost = false;
    while !closing.load(Relaxed) {
        match subscribe(r, local, pool, closing, lost, first_load) {
            Ok(()) => return,
            Err(why) => {
                // Checks stop waiting for a load that cannot happen now.
                first_load.finish();
                if !lost {
                    r.warn(&format!(
                        "invalidation subscription: {why}; retrying (invalidations published meanwhile are missed here)"
                    ));
                    lost = true;
                }
                if pause(retry, closing) {
                    return;
                }
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

/// Subscribes and applies messages until closing (Ok) or the connection fails (Err). After a
/// lost subscription (`missed`), the local tier may hold sessions retired meanwhile: once
/// subscribed again it is emptied, so they are fetched (tombstones included) from Redis. Once
/// subscribed, the revocations Redis holds are loaded (`load_revocations`).
fn subscribe(
    r: &Remote,
    local: &MemoryStore,
    pool: &Pool,
    closing: &AtomicBool,
    missed: bool,
    first_load: &FirstLoad,
) -> Result<(), String> {
    // Where the writer writes: a new address (a Sentinel failover) means subscribing there.
    let generation = pool.target.generation();
    let deadline = || Instant::now() + r.options.write_timeout;
    // A host name or Sentinel: the first resolution may still be under way.
    if !matches!(r.host, super::Host::Fixed(_)) {
        pool.target.wait_first(deadline());
    }
    let mut conn = r.connect(&pool.target, deadline()).map_err(|f| match f {
        super::Failure::Timeout => "timed out".to_owned(),
        super::Failure::Error(m) | super::Failure::Reply(m) => m,
    })?;
    conn.call(&[b"SUBSCRIBE", CHANNEL.as_bytes()], deadline())
        .map_err(|e| super::scrub(&e.to_string(), &r.url))?;
    if missed {
        let _fork = FORK_GUARD.read();
        local.clear();
        r.warn("invalidation subscription back; local tier emptied (sessions are fetched from Redis again)");
    }
    // Subscribed first: a revocation published from now on arrives as a message, one made
    // before is a key the load finds (both: it is added twice, which changes nothing).
    let load = load_revocations(r, local, pool, closing);
    first_load.finish();
    match load? {
        Load::Done(0) => {}
        Load::Done(n) => r.note(&format!("{n} ticket revocations loaded from Redis")),
        Load::Stopped(n) => r.warn(&format!(
            "{n} ticket revocations loaded from Redis, then stopped (at most {LOAD_MAX} and {} s); the others are not refused here",
            LOAD_TIME.as_secs()
        )),
    }
    loop {
        if closing.load(Relaxed) {
            return Ok(());
        }
        if pool.target.generation() != generation {
            return Err("Redis moved (a new master)".into());
        }
        if !conn
            .readable(Instant::now() + POLL)
            .map_err(|e| e.to_string())?
        {
            continue;
        }
        match conn.next_reply(deadline()) {
            Ok(Reply::Array(m)) => {
                let payload = match &m[..] {
                    [Reply::Bulk(kind), _, Reply::Bulk(payload)] if kind == b"message" => payload,
                    _ => continue,
                };
                let c = &r.bus;
                c.received.fetch_add(1, Relaxed);
                if !receive(r, local, payload) {
                    c.rejected.fetch_add(1, Relaxed);
                }
            }
            Ok(_) => {}
            Err(e) => return Err(super::scrub(&e.to_string(), &r.url)),
        }
    }
}

impl Remote {
    /// Reports what is worth knowing but no warning.
    fn note(&self, message: &str) {
        if let Some(n) = &self.notify {
            n(false, &format!("redis store {}: {message}", self.shown));
        }
    }
}

/// How a load of revocations ended, with how many it brought into the local set.
enum Load {
    Done(u64),
    /// At `LOAD_MAX` or `LOAD_TIME`, or the store is going away.
    Stopped(u64),
}

/// The `SCAN` pattern of every vhost's revocation keys: the key prefix, any vhost name, then
/// an id that starts with the revocation tag.
fn revocation_pattern() -> String {
    let mut p = format!("{}*:", super::remote::KEY_PREFIX);
    for b in revocations::TAG {
        let _ = write!(p, "{b:02x}");
    }
    p.push('*');
    p
}

/// The revocation key a Redis key names (`snicache:v1:<vhost>:<hex id>`, the id a revocation
/// key's), for a vhost this server has.
fn revocation_key(r: &Remote, name: &[u8]) -> Option<Key> {
    let name = std::str::from_utf8(name)
        .ok()?
        .strip_prefix(super::remote::KEY_PREFIX)?;
    let (vhost, hex) = name.rsplit_once(':')?;
    let vhost = u32::try_from(r.vhosts.iter().position(|v| v == vhost)?).ok()?;
    if hex.len() != 2 * revocations::ID_LEN {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut id = [0u8; revocations::ID_LEN];
    for (b, pair) in id.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *b = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    id.starts_with(&revocations::TAG)
        .then(|| Key::new(vhost, &id))
        .flatten()
}

/// Brings the revocations Redis holds (every server's, each kept as long as its ticket lives)
/// into the local set: `SCAN` for their keys, `MGET` their sealed records, and the ones that
/// open and have not expired join the set, as a published revocation does (`receive`). On a
/// connection of its own, each call within the write timeout; at most `LOAD_MAX` revocations
/// and `LOAD_TIME`. Err when Redis fails (the caller subscribes again later, and loads again).
fn load_revocations(
    r: &Remote,
    local: &MemoryStore,
    pool: &Pool,
    closing: &AtomicBool,
) -> Result<Load, String> {
    let start = Instant::now();
    let deadline = || Instant::now() + r.options.write_timeout;
    let failed = |e: RespError| super::scrub(&e.to_string(), &r.url);
    let mut conn = r.connect(&pool.target, deadline()).map_err(|f| match f {
        super::Failure::Timeout => "timed out".to_owned(),
        super::Failure::Error(m) | super::Failure::Reply(m) => m,
    })?;
    let pattern = revocation_pattern();
    let mut cursor = b"0".to_vec();
    let mut loaded = 0u64;
    loop {
        if closing.load(Relaxed) || loaded >= LOAD_MAX || start.elapsed() >= LOAD_TIME {
            return Ok(Load::Stopped(loaded));
        }
        let scan: &[&[u8]] = &[
            b"SCAN",
            &cursor[..],
            b"MATCH",
            pattern.as_bytes(),
            b"COUNT",
            SCAN_COUNT,
        ];
        let (next, names) = match conn.call(scan, deadline()).map_err(failed)? {
            Reply::Array(mut a) if a.len() == 2 => match (a.pop(), a.pop()) {
                (Some(Reply::Array(names)), Some(Reply::Bulk(next))) => (next, names),
                _ => return Err("unexpected SCAN reply".into()),
            },
            _ => return Err("unexpected SCAN reply".into()),
        };
        let found: Vec<(Key, Vec<u8>)> = names
            .into_iter()
            .filter_map(|n| match n {
                Reply::Bulk(n) => revocation_key(r, &n).map(|k| (k, n)),
                _ => None,
            })
            .collect();
        if !found.is_empty() {
            let mut mget: Vec<&[u8]> = Vec::with_capacity(1 + found.len());
            mget.push(b"MGET");
            mget.extend(found.iter().map(|(_, n)| &n[..]));
            let Reply::Array(values) = conn.call(&mget, deadline()).map_err(failed)? else {
                return Err("unexpected MGET reply".into());
            };
            let now = unix_now();
            let _fork = FORK_GUARD.read();
            for ((key, _), value) in found.iter().zip(values) {
                // Nil: it expired since the scan saw it.
                let Reply::Bulk(sealed) = value else { continue };
                match r.unseal(key, &sealed) {
                    Some((expires_at, record)) if expires_at > now => {
                        let _ = local.revoke(*key, Value::new(record), expires_at);
                        loaded += 1;
                    }
                    Some(_) => {}
                    // Another seal key, or altered: nothing is added (as for a message).
                    None => {
                        r.bus.rejected.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        if next == b"0" {
            r.bus.loads.fetch_add(1, Relaxed);
            r.bus.loaded.fetch_add(loaded, Relaxed);
            return Ok(Load::Done(loaded));
        }
        cursor = next;
    }
}

impl super::RedisStore {
    /// Invalidation messages this process received from the fleet, and how many of them it
    /// could not apply (malformed, unknown vhost, a revocation that did not open, also one
    /// found by a load).
    pub fn invalidations_received(&self) -> (u64, u64) {
        let c = &self.remote.bus;
        (c.received.load(Relaxed), c.rejected.load(Relaxed))
    }

    /// Loads of the revocations Redis holds that ran to the end in this process (one per
    /// subscription made), and the revocations they brought into the local set.
    pub fn revocations_loaded(&self) -> (u64, u64) {
        let c = &self.remote.bus;
        (c.loads.load(Relaxed), c.loaded.load(Relaxed))
    }
}
