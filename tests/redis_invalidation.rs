//! Invalidations reaching other servers' local tiers (issue 11 item 5), against a real
//! `redis-server` on a free loopback port. Two Redis stores play two servers of a fleet, each
//! with its own local tier and its own subscriber: server two holds a session in its local tier
//! (it resumed it: fetched from Redis), server one retires it (a tombstone after a fatal alert,
//! a single-use removal, a ticket revocation), and server two must stop answering it locally.
//! Propagation times are measured over 50 invalidations of each kind and printed (p50/max);
//! the 100 ms bound of the issue is asserted on the median and on 90% of them, a generous
//! correctness bound (loopback figures are around a millisecond), never a speed target.
//!
//! Revocations a server did not hear of: pub/sub reaches only the servers subscribed when a
//! revocation is published, but each is also a Redis key living as long as the ticket, and a
//! server loads them all each time its subscription is made. So a server that starts after a
//! revocation, or whose subscription was cut when it was published, refuses the ticket too.

use std::time::{Duration, Instant};

use snicache::store::redis::{RedisSpec, RedisStore};
use snicache::store::revocations;
use snicache::store::{Key, Lookup, Store, Value};

#[path = "redis/server.rs"]
mod server;
#[path = "redis/store.rs"]
mod store;

use server::RedisServer;
use store::{now, redis_store, seal_keys};

const VHOSTS: [&str; 2] = ["a.test", "b.test"];
const ROUNDS: usize = 50;
const BOUND: Duration = Duration::from_millis(100);

fn store(url: &str) -> RedisStore {
    sealed_store(url, 9)
}

/// A server whose records are sealed with the key `[seal; 32]`.
fn sealed_store(url: &str, seal: u8) -> RedisStore {
    redis_store(
        &RedisSpec::parse(url).unwrap(),
        &VHOSTS,
        seal_keys(&[seal; 32]),
        None,
    )
    .unwrap()
}

fn key(vhost: u32, n: usize, len: usize) -> Key {
    let mut id = vec![0x5au8; len];
    id[..8].copy_from_slice(&(n as u64).to_le_bytes());
    Key::new(vhost, &id).unwrap()
}

fn bytes(l: Lookup) -> Option<Vec<u8>> {
    match l {
        Lookup::Hit(v) => Some(v.bytes.to_vec()),
        _ => None,
    }
}

/// Waits (with a deadline) until both stores' subscribers listen on the channel.
fn wait_subscribed(r: &RedisServer, n: i64) {
    let mut cli = r.cli().unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("snicache:v1:invalidations")
            .query(&mut cli)
            .unwrap();
        if counts.first().is_some_and(|(_, c)| *c >= n) {
            return;
        }
        assert!(
            Instant::now() < end,
            "subscribers did not subscribe: {counts:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Drops every subscription (`CLIENT KILL TYPE pubsub`); the subscribers come back by themselves.
fn kill_subscriptions(r: &RedisServer) {
    let mut cli = r.cli().unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut cli)
        .unwrap();
}

/// Polls `done` until true (deadline 5 s); the time it took.
fn until(mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(5), "never propagated");
        std::thread::yield_now();
    }
    start.elapsed()
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let p50 = times[times.len() / 2];
    let p90 = times[times.len() * 9 / 10];
    let max = *times.last().unwrap();
    println!(
        "propagation of {what} to another server's local tier over {} rounds: p50 {:.3} ms, p90 {:.3} ms, max {:.3} ms",
        times.len(),
        p50.as_secs_f64() * 1e3,
        p90.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    assert!(
        p50 < BOUND && p90 < BOUND,
        "{what}: p50 {p50:?} p90 {p90:?}"
    );
}

/// Server two resumed the session: it is in its local tier, fetched from Redis.
fn warm(one: &RedisStore, two: &RedisStore, k: Key, record: &[u8], expires: u64) {
    one.put(k, Value::new(record.to_vec()), expires).unwrap();
    assert!(one.flush(Duration::from_secs(5)));
    assert_eq!(bytes(two.get(&k, now())).as_deref(), Some(record));
}

/// Two servers' stores on `r`, each subscribed.
fn two_servers(r: &RedisServer) -> (RedisStore, RedisStore) {
    let (one, two) = (store(&r.url()), store(&r.url()));
    // First use starts each process-side state, subscriber included.
    let _ = one.get(&key(0, 0, 32), now());
    let _ = two.get(&key(0, 0, 32), now());
    wait_subscribed(r, 2);
    (one, two)
}

#[test]
fn invalidations_reach_another_servers_local_tier_within_100_ms() {
    let r = RedisServer::start();
    let (one, two) = two_servers(&r);
    let expires = now() + 300;

    let hex = |k: Key| {
        k.id()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    // A fatal alert on server one: the tombstone replaces the session in server two's tier.
    let mut times = Vec::new();
    for n in 1..=ROUNDS {
        let k = key(0, n, 32);
        warm(&one, &two, k, b"live session", expires);
        // Server two keeps answering it locally, even with Redis changed behind its back.
        let mut cli = r.cli().unwrap();
        let _: () = redis::cmd("DEL")
            .arg(format!("snicache:v1:a.test:{}", hex(k)))
            .query(&mut cli)
            .unwrap();
        assert_eq!(
            bytes(two.get(&k, now())).as_deref(),
            Some(&b"live session"[..])
        );
        let start = Instant::now();
        one.invalidate(k, Value::new(b"tombstone".to_vec()), expires)
            .unwrap();
        until(|| bytes(two.get(&k, now())).as_deref() == Some(&b"tombstone"[..]));
        times.push(start.elapsed());
    }
    report("tombstones (fatal alert)", times);

    // A single-use removal on server one.
    let mut times = Vec::new();
    for n in 1..=ROUNDS {
        let k = key(1, 1000 + n, 32);
        warm(&one, &two, k, b"single use", expires);
        let start = Instant::now();
        assert!(
            matches!(one.get(&k, now()), Lookup::Hit(_)),
            "round {n}: server one lost it"
        );
        assert!(one.remove(&k));
        until(|| !matches!(two.get(&k, now()), Lookup::Hit(_)));
        times.push(start.elapsed());
    }
    report("removals (single use)", times);

    // A ticket revoked on server one: server two refuses it without asking Redis.
    let mut times = Vec::new();
    for n in 1..=ROUNDS {
        let k = key(0, 2000 + n, 24);
        assert!(!two.revoked(&k, now()));
        let start = Instant::now();
        one.revoke(k, Value::new(b"revoked".to_vec()), expires)
            .unwrap();
        assert!(
            one.revoked(&k, now()),
            "at once on the server that revoked it"
        );
        until(|| two.revoked(&k, now()));
        times.push(start.elapsed());
    }
    report("ticket revocations", times);
    assert!(!two.revoked(&key(0, 9999, 24), now()));

    let (received, rejected) = two.invalidations_received();
    assert!(received >= 3 * ROUNDS as u64, "{received}");
    assert_eq!(rejected, 0);
    // Revocations are kept in Redis too, with the ticket's remaining lifetime.
    let mut cli = r.cli().unwrap();
    let hex = |k: Key| {
        k.id()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("snicache:v1:a.test:{}", hex(key(0, 2001, 24))))
        .query(&mut cli)
        .unwrap();
    assert!(ttl > 250 && ttl <= 300, "{ttl}");
}

#[test]
fn a_tombstone_that_does_not_open_only_removes() {
    let r = RedisServer::start();
    let one = store(&r.url());
    let other_seal = sealed_store(&r.url(), 1);
    let k = key(0, 1, 32);
    let expires = now() + 300;
    one.put(k, Value::new(b"live".to_vec()), expires).unwrap();
    let _ = other_seal.get(&key(0, 2, 32), now());
    wait_subscribed(&r, 2);
    assert!(one.flush(Duration::from_secs(5)));
    // A server with another seal key retires it: ours drops it, and adds nothing it cannot open.
    other_seal
        .invalidate(k, Value::new(b"tombstone".to_vec()), expires)
        .unwrap();
    until(|| !matches!(one.get(&k, now()), Lookup::Hit(_)));
    let rk = key(0, 3, 24);
    other_seal
        .revoke(rk, Value::new(b"revoked".to_vec()), expires)
        .unwrap();
    until(|| one.invalidations_received().1 >= 1);
    assert!(
        !one.revoked(&rk, now()),
        "a revocation that does not open is ignored"
    );
}

#[test]
fn a_server_that_lost_its_subscription_empties_its_local_tier_once_back() {
    let r = RedisServer::start();
    let (one, two) = two_servers(&r);
    let expires = now() + 300;
    let k = key(0, 1, 32);
    warm(&one, &two, k, b"live session", expires);
    // Both subscriptions drop; the tombstone is published while nobody listens.
    kill_subscriptions(&r);
    one.invalidate(k, Value::new(b"tombstone".to_vec()), expires)
        .unwrap();
    assert!(one.flush(Duration::from_secs(5)));
    wait_subscribed(&r, 2);
    // Back: server two's tier was emptied, so the lookup finds the tombstone in Redis.
    until(|| bytes(two.get(&k, now())).as_deref() == Some(&b"tombstone"[..]));
}

fn ticket(n: u8) -> [u8; 16] {
    [n; 16]
}

#[test]
fn a_server_that_starts_later_refuses_tickets_revoked_before() {
    let r = RedisServer::start();
    let one = store(&r.url());
    let expires = now() + 300;
    let revoked: Vec<_> = (1..=50u8)
        .map(|n| revocations::key(u32::from(n % 2), &ticket(n)))
        .collect();
    for k in &revoked {
        one.revoke(*k, Value::new(b"revoked".to_vec()), expires)
            .unwrap();
    }
    // One that expired already is not loaded (Redis drops it anyway, with its TTL).
    let old = revocations::key(0, &ticket(99));
    one.revoke(old, Value::new(b"revoked".to_vec()), now() - 1)
        .unwrap();
    assert!(one.flush(Duration::from_secs(5)));

    // Server two starts now: it heard none of them.
    let two = store(&r.url());
    let start = Instant::now();
    // Its first check starts the subscriber and waits (at most the budget) for the load.
    let first = two.revoked(&revoked[0], now());
    let waited = start.elapsed();
    until(|| two.revocations_loaded().0 >= 1);
    println!(
        "first check on a server started after 50 revocations: {first} after {:.1} ms; loaded {:?}",
        waited.as_secs_f64() * 1e3,
        two.revocations_loaded()
    );
    assert_eq!(two.revocations_loaded(), (1, 50));
    for k in &revoked {
        assert!(two.revoked(k, now()), "{k:?}");
    }
    assert!(!two.revoked(&old, now()));
    assert!(!two.revoked(&revocations::key(0, &ticket(200)), now()));
    assert_eq!(
        two.invalidations_received(),
        (0, 0),
        "learnt from the keys, not from messages"
    );
}

#[test]
fn a_server_whose_subscription_was_cut_refuses_tickets_revoked_meanwhile() {
    let r = RedisServer::start();
    let (one, two) = (store(&r.url()), store(&r.url()));
    let _ = one.revoked(&revocations::key(0, &ticket(0)), now());
    let _ = two.revoked(&revocations::key(0, &ticket(0)), now());
    wait_subscribed(&r, 2);
    let loads = two.revocations_loaded().0;
    let k = revocations::key(1, &ticket(7));
    // Both subscriptions drop; the revocation is published while nobody listens.
    kill_subscriptions(&r);
    one.revoke(k, Value::new(b"revoked".to_vec()), now() + 300)
        .unwrap();
    assert!(one.flush(Duration::from_secs(5)));
    assert!(
        one.revoked(&k, now()),
        "at once on the server that revoked it"
    );
    // Back: server two loaded it from Redis when it subscribed again.
    let took = until(|| two.revoked(&k, now()));
    println!(
        "refused on the cut-off server {:.1} ms after the revocation was in Redis",
        took.as_secs_f64() * 1e3
    );
    assert!(
        two.revocations_loaded().0 > loads,
        "{:?}",
        two.revocations_loaded()
    );
    assert_eq!(two.invalidations_received().1, 0);
}

#[test]
fn revocations_sealed_with_another_key_are_not_loaded() {
    let r = RedisServer::start();
    let other = sealed_store(&r.url(), 1);
    let k = revocations::key(0, &ticket(3));
    other
        .revoke(k, Value::new(b"revoked".to_vec()), now() + 300)
        .unwrap();
    assert!(other.flush(Duration::from_secs(5)));
    // Not a revocation key (no tag): skipped without being read.
    let mut cli = r.cli().unwrap();
    let _: () = redis::cmd("SET")
        .arg("snicache:v1:a.test:ff72763200")
        .arg("junk")
        .query(&mut cli)
        .unwrap();
    let two = store(&r.url());
    let _ = two.revoked(&k, now());
    until(|| two.revocations_loaded().0 >= 1);
    assert_eq!(two.revocations_loaded(), (1, 0));
    assert!(
        !two.revoked(&k, now()),
        "a revocation that does not open is ignored"
    );
    assert_eq!(two.invalidations_received().1, 1, "counted as rejected");
}
