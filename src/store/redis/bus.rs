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
//! sessions come back from Redis, tombstones included). Tickets revoked meanwhile are not
//! refused there, and a server that starts later does not learn earlier ticket revocations.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Once};

use parking_lot::lock_api::RawRwLock as _;
use parking_lot::RwLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::resp::{Conn, Reply, RespError};
use super::{unix_now, Pool, Remote};
use crate::store::memory::MemoryStore;
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
            let ttl = expires_at.saturating_sub(unix_now());
            if ttl == 0 {
                return Ok(false);
            }
            let mut plain = Vec::with_capacity(8 + record.len());
            plain.extend_from_slice(&expires_at.to_be_bytes());
            plain.extend_from_slice(record);
            let sealed = r.seal.seal(&r.aad(key), &plain);
            crate::crypto::zeroize(&mut plain);
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
        let (r, l, p, c) = (remote.clone(), local.clone(), pool.clone(), closing.clone());
        match std::thread::Builder::new()
            .name("snicache-redis-bus".into())
            .spawn(move || run(&r, &l, &p, &c))
        {
            Ok(h) => Some(Subscriber {
                closing,
                thread: Some(h),
            }),
            Err(e) => {
                remote.warn(&format!(
                    "cannot start the invalidation subscriber thread: {e}"
                ));
                None
            }
        }
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

fn run(r: &Remote, local: &MemoryStore, pool: &Pool, closing: &AtomicBool) {
    let mut retry = POLL;
    let mut lost = false;
    while !closing.load(Relaxed) {
        match subscribe(r, local, pool, closing, lost) {
            Ok(()) => return,
            Err(why) => {
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
/// subscribed again it is emptied, so they are fetched (tombstones included) from Redis.
fn subscribe(
    r: &Remote,
    local: &MemoryStore,
    pool: &Pool,
    closing: &AtomicBool,
    missed: bool,
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

impl super::RedisStore {
    /// Invalidation messages this process received from the fleet, and how many of them it
    /// could not apply (malformed, unknown vhost, a revocation that did not open).
    pub fn invalidations_received(&self) -> (u64, u64) {
        let c = &self.remote.bus;
        (c.received.load(Relaxed), c.rejected.load(Relaxed))
    }
}
