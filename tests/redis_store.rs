//! The Redis store against a real `redis-server` (Debian's package; scripts/deps.sh and .ci/run
//! install it), started by each test on a free loopback port and stopped when the test ends.
//! Nothing is skipped: without redis-server these tests fail.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use snicache::store::memory::MemoryStore;
use snicache::store::redis::{RedisSpec, RedisStore, SealKeys};
use snicache::store::{Key, Lookup, Store, Value};

#[path = "redis/server.rs"]
mod server;
#[path = "redis/store.rs"]
mod store;

use server::RedisServer;
use store::{now, redis_store, seal_keys};

const VHOSTS: [&str; 2] = ["a.test", "b.test"];

fn store(url: &str, seal: &[u8]) -> RedisStore {
    store_with(url, seal_keys(seal))
}

fn store_with(url: &str, seal: Arc<SealKeys>) -> RedisStore {
    redis_store(&RedisSpec::parse(url).unwrap(), &VHOSTS, seal, None).unwrap()
}

fn key(vhost: u32, id: u8) -> Key {
    Key::new(vhost, &[id; 32]).unwrap()
}

fn redis_key(vhost: u32, id: u8) -> String {
    format!("snicache:v1:{}:{}", VHOSTS[vhost as usize], hex::<32>(id))
}

fn hex<const N: usize>(b: u8) -> String {
    format!("{b:02x}").repeat(N)
}

const RECORD: &[u8] = b"a record only snicache can read";

fn put_and_flush(s: &RedisStore, k: Key, expires_at: u64) {
    s.put(k, Value::new(RECORD.to_vec()), expires_at).unwrap();
    assert!(s.flush(Duration::from_secs(5)), "writer did not finish");
}

fn hit_bytes(l: Lookup) -> Option<Vec<u8>> {
    match l {
        Lookup::Hit(v) => Some(v.bytes.to_vec()),
        _ => None,
    }
}

#[test]
fn a_session_stored_by_one_server_resumes_on_another_sealed_with_its_ttl() {
    let r = RedisServer::start();
    let (one, two) = (store(&r.url(), &[7; 32]), store(&r.url(), &[7; 32]));
    let expires = now() + 300;
    put_and_flush(&one, key(0, 1), expires);
    assert_eq!(one.remote_stats().writes, 1);

    let mut c = r.cli().unwrap();
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(redis_key(0, 1))
        .query(&mut c)
        .unwrap();
    assert!(
        !raw.windows(RECORD.len()).any(|w| w == RECORD),
        "record is sealed in Redis"
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(redis_key(0, 1))
        .query(&mut c)
        .unwrap();
    assert!((298..=300).contains(&ttl), "TTL {ttl}");

    assert_eq!(
        hit_bytes(two.get(&key(0, 1), now())).as_deref(),
        Some(RECORD)
    );
    assert_eq!(two.remote_stats().hits, 1);
    assert_eq!(two.usage(None).entries, 1, "kept in the local tier");
    // Answered locally from now on: Redis is not asked again.
    assert!(hit_bytes(two.get(&key(0, 1), now())).is_some());
    assert_eq!(two.remote_stats().hits, 1);
    // Another vhost's key with the same id is a different key.
    assert!(matches!(two.get(&key(1, 1), now()), Lookup::Miss));
    assert_eq!(two.remote_stats().misses, 1);

    // A removal reaches Redis too.
    one.remove(&key(0, 1));
    assert!(one.flush(Duration::from_secs(5)));
    let exists: u32 = redis::cmd("EXISTS")
        .arg(redis_key(0, 1))
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn short_lifetimes_expire_in_redis_and_dead_sessions_are_not_written() {
    let r = RedisServer::start();
    let s = store(&r.url(), &[7; 32]);
    put_and_flush(&s, key(0, 1), now() + 2);
    put_and_flush(&s, key(0, 2), now());
    let mut c = r.cli().unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(redis_key(0, 1))
        .query(&mut c)
        .unwrap();
    assert!((1..=2).contains(&ttl), "TTL {ttl}");
    let exists: u32 = redis::cmd("EXISTS")
        .arg(redis_key(0, 2))
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, 0, "an already expired session is not written");
    std::thread::sleep(Duration::from_millis(3100));
    let exists: u32 = redis::cmd("EXISTS")
        .arg(redis_key(0, 1))
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, 0, "Redis dropped it at its TTL");
}

#[test]
fn altered_moved_or_foreign_records_are_counted_misses() {
    let r = RedisServer::start();
    let one = store(&r.url(), &[7; 32]);
    put_and_flush(&one, key(0, 1), now() + 300);
    let mut c = r.cli().unwrap();
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(redis_key(0, 1))
        .query(&mut c)
        .unwrap();

    // Moved to another id of the same vhost, and to the same id of another vhost.
    for (v, id) in [(0, 2), (1, 1)] {
        redis::cmd("SET")
            .arg(redis_key(v, id))
            .arg(&raw)
            .query::<()>(&mut c)
            .unwrap();
    }
    let two = store(&r.url(), &[7; 32]);
    assert!(matches!(two.get(&key(0, 2), now()), Lookup::Miss));
    assert!(matches!(two.get(&key(1, 1), now()), Lookup::Miss));
    assert_eq!(two.remote_stats().seal_failures, 2);

    // One byte of the ciphertext changed in place.
    redis::cmd("SETRANGE")
        .arg(redis_key(0, 1))
        .arg(20)
        .arg(&[raw[20] ^ 1][..])
        .query::<()>(&mut c)
        .unwrap();
    assert!(matches!(two.get(&key(0, 1), now()), Lookup::Miss));
    // Truncated, and plain garbage.
    redis::cmd("SET")
        .arg(redis_key(0, 3))
        .arg(&raw[..10])
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("SET")
        .arg(redis_key(0, 4))
        .arg("garbage")
        .query::<()>(&mut c)
        .unwrap();
    assert!(matches!(two.get(&key(0, 3), now()), Lookup::Miss));
    assert!(matches!(two.get(&key(0, 4), now()), Lookup::Miss));
    assert_eq!(two.remote_stats().seal_failures, 5);
    assert_eq!(two.remote_stats().hits, 0);

    // A server with another seal key cannot open the original either.
    put_and_flush(&one, key(0, 5), now() + 300);
    let stranger = store(&r.url(), &[8; 32]);
    assert!(matches!(stranger.get(&key(0, 5), now()), Lookup::Miss));
    assert_eq!(stranger.remote_stats().seal_failures, 1);
}

#[test]
fn after_rotation_the_previous_key_still_opens() {
    let r = RedisServer::start();
    let old = store(&r.url(), &[1; 32]);
    put_and_flush(&old, key(0, 1), now() + 300);
    let keys = seal_keys(&[1; 32]);
    keys.rotate(&[2; 32]);
    let rotated = store_with(&r.url(), keys.clone());
    assert!(hit_bytes(rotated.get(&key(0, 1), now())).is_some());
    put_and_flush(&rotated, key(0, 2), now() + 300);
    assert!(
        matches!(old.get(&key(0, 2), now()), Lookup::Miss),
        "the old key cannot open records sealed under the new one"
    );
    let new_only = store(&r.url(), &[2; 32]);
    assert!(hit_bytes(new_only.get(&key(0, 2), now())).is_some());
    keys.rotate(&[3; 32]);
    let fresh = store_with(&r.url(), keys);
    assert!(hit_bytes(fresh.get(&key(0, 2), now())).is_some());
    assert!(
        matches!(fresh.get(&key(0, 1), now()), Lookup::Miss),
        "two rotations ago"
    );
}

#[test]
fn a_down_redis_opens_the_breaker_and_a_probe_closes_it_when_it_is_back() {
    let r = RedisServer::start();
    let url = format!("{}?budget_ms=5&backoff_ms=300", r.url());
    let s = store(&url, &[7; 32]);
    put_and_flush(&s, key(0, 9), now() + 300);
    let port = r.stop();

    for id in 10..20 {
        let t = Instant::now();
        assert!(matches!(s.get(&key(0, id), now()), Lookup::Unavailable));
        assert!(
            // Refused connections answer at once; the bound leaves room for a loaded machine.
            t.elapsed() < Duration::from_millis(250),
            "lookup took {:?}",
            t.elapsed()
        );
    }
    let st = s.remote_stats();
    assert_eq!(st.errors, 3, "three failures open the breaker: {st:?}");
    assert_eq!((st.breaker_state, st.breaker_trips), (1, 1));
    assert_eq!(st.breaker_skips, 7);
    // Writes while it is open are dropped and counted; the local tier still has them.
    put_and_flush(&s, key(0, 1), now() + 300);
    assert_eq!(s.remote_stats().write_drops, 1);
    assert!(hit_bytes(s.get(&key(0, 1), now())).is_some());

    let r = RedisServer::start_on(port);
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(s.remote_stats().breaker_state, 2, "half-open");
    // The probe: Redis answers (empty after the restart), the breaker closes.
    assert!(matches!(s.get(&key(0, 30), now()), Lookup::Miss));
    assert_eq!(s.remote_stats().breaker_state, 0);
    put_and_flush(&s, key(0, 2), now() + 300);
    let other = store(&url, &[7; 32]);
    assert!(
        hit_bytes(other.get(&key(0, 2), now())).is_some(),
        "{:?} {:?}",
        s.remote_stats(),
        other.remote_stats()
    );
    drop(r);
}

#[test]
fn a_slow_redis_costs_a_lookup_no_more_than_its_budget() {
    let r = RedisServer::start();
    let url = format!("{}?budget_ms=5&backoff_ms=200", r.url());
    let s = store(&url, &[7; 32]);
    put_and_flush(&s, key(0, 1), now() + 300);
    let other = store(&url, &[7; 32]);
    // Warm one pooled connection so the slow part is the reply, not the connect.
    assert!(matches!(other.get(&key(0, 2), now()), Lookup::Miss));

    let sleeper = r.stall(1);
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        assert!(matches!(other.get(&key(0, 1), now()), Lookup::Unavailable));
        worst = worst.max(t.elapsed());
    }
    assert!(
        // A 1 s stall against a 5 ms budget: far below the stall, with room for a loaded
        // machine's scheduling delays.
        worst < Duration::from_millis(250),
        "worst lookup {worst:?} with a 5 ms budget"
    );
    let st = other.remote_stats();
    assert!(st.timeouts >= 1 && st.breaker_trips == 1, "{st:?}");
    sleeper.join().unwrap();
    std::thread::sleep(Duration::from_millis(250));
    assert!(
        hit_bytes(other.get(&key(0, 1), now())).is_some(),
        "back once Redis answers again"
    );
}

#[test]
fn credentials_in_the_url_reach_redis_and_no_message() {
    let r = RedisServer::start();
    let mut c = r.cli().unwrap();
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("fleet")
        .arg("on")
        .arg(">hunter2-secret")
        .arg("~snicache:*")
        .arg("+getrange")
        .arg("+set")
        .arg("+del")
        .arg("+ping")
        .arg("+client")
        .arg("+hello")
        .query::<()>(&mut c)
        .unwrap();
    let good = format!("redis://fleet:hunter2-secret@127.0.0.1:{}/0", r.port);
    let s = store(&good, &[7; 32]);
    put_and_flush(&s, key(0, 1), now() + 300);
    assert_eq!(s.remote_stats().writes, 1, "{:?}", s.remote_stats());
    let other = store(&good, &[7; 32]);
    assert!(hit_bytes(other.get(&key(0, 1), now())).is_some());

    let messages = Arc::new(Mutex::new(Vec::<String>::new()));
    let m = messages.clone();
    let bad = format!("redis://fleet:wrong-secret@127.0.0.1:{}/0", r.port);
    let spec = RedisSpec::parse(&bad).unwrap();
    assert!(!format!("{spec:?}").contains("wrong-secret"));
    let s = RedisStore::new(
        &spec,
        MemoryStore::new(1 << 20, 100, 2),
        VHOSTS.iter().map(|s| s.to_string()).collect(),
        Arc::new(SealKeys::new(&[7; 32], false)),
        Some(Box::new(move |_, msg: &str| {
            m.lock().unwrap().push(msg.to_owned())
        })),
    )
    .unwrap();
    for id in 0..3 {
        assert!(matches!(s.get(&key(0, id), now()), Lookup::Unavailable));
    }
    let messages = messages.lock().unwrap();
    assert!(!messages.is_empty(), "the breaker opening is reported");
    for m in messages.iter() {
        assert!(
            !m.contains("wrong-secret") && m.contains("redis://***@127.0.0.1"),
            "{m}"
        );
    }
}

/// A waker that counts its wakes.
struct Wakes(std::sync::atomic::AtomicU32);

impl std::task::Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn wakes() -> (Arc<Wakes>, std::task::Waker) {
    let w = Arc::new(Wakes(std::sync::atomic::AtomicU32::new(0)));
    (w.clone(), std::task::Waker::from(w))
}

/// Waits (10 s at most: the machine may be loaded) until `what` holds.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn background_fetches_answer_pending_then_wake_with_the_answer() {
    let r = RedisServer::start();
    let one = store(&r.url(), &[7; 32]);
    put_and_flush(&one, key(0, 1), now() + 300);
    let mut two = store(
        &format!("{}?async_ms=300&backoff_ms=100", r.url()),
        &[7; 32],
    );
    two.enable_async();
    let woken = |w: &Arc<Wakes>| w.0.load(std::sync::atomic::Ordering::SeqCst);

    // Found: pending at once, woken, then the answer (and it is in the local tier).
    let (w, waker) = wakes();
    assert!(matches!(
        two.get_async(&key(0, 1), now(), &waker),
        Lookup::Pending
    ));
    wait_until("the fetch woke its waiter", || woken(&w) == 1);
    assert_eq!(
        hit_bytes(two.get_async(&key(0, 1), now(), &waker)).as_deref(),
        Some(RECORD)
    );
    assert_eq!(two.usage(None).entries, 1);
    assert!(hit_bytes(two.get(&key(0, 1), now())).is_some());

    // Missing: the answer waits for the retries (async and not) instead of a second fetch.
    let (w, waker) = wakes();
    assert!(matches!(
        two.get_async(&key(0, 2), now(), &waker),
        Lookup::Pending
    ));
    wait_until("the miss woke its waiter", || woken(&w) == 1);
    assert!(matches!(
        two.get_async(&key(0, 2), now(), &waker),
        Lookup::Miss
    ));
    assert!(matches!(two.get(&key(0, 2), now()), Lookup::Miss));
    let st = two.remote_stats();
    assert_eq!((st.fetches, st.hits, st.misses), (2, 1, 1), "{st:?}");

    // Redis stalled: the call returns at once; the fetch gives up after async_ms and wakes.
    let sleeper = r.stall(1);
    let (w, waker) = wakes();
    let t = Instant::now();
    assert!(matches!(
        two.get_async(&key(0, 3), now(), &waker),
        Lookup::Pending
    ));
    let call = t.elapsed();
    wait_until("the stalled fetch gave up", || woken(&w) == 1);
    let woke = t.elapsed();
    assert!(matches!(
        two.get_async(&key(0, 3), now(), &waker),
        Lookup::Unavailable
    ));
    sleeper.join().unwrap();
    assert!(call < Duration::from_millis(200), "the call took {call:?}");
    assert!(
        woke >= Duration::from_millis(250) && two.remote_stats().timeouts >= 1,
        "woken after {woke:?}: {:?}",
        two.remote_stats()
    );

    // Redis down: full answers (pending then unavailable, or unavailable at once), never stuck.
    drop(r);
    for id in 10..16 {
        let (w, waker) = wakes();
        if matches!(two.get_async(&key(0, id), now(), &waker), Lookup::Pending) {
            wait_until("a fetch against a down Redis ended", || woken(&w) == 1);
            assert!(matches!(
                two.get_async(&key(0, id), now(), &waker),
                Lookup::Unavailable
            ));
        }
    }
    let st = two.remote_stats();
    assert!(st.errors >= 1 && st.breaker_trips >= 1, "{st:?}");
}

/// A forked child (a prefork worker) of a process that already used the store: its writer,
/// fetchers and connections are the parent's and do not exist there, so it starts its own and
/// the parent's keep working. Before the fix the child's writes sat in a queue nobody read.
#[test]
fn a_forked_child_writes_and_fetches_through_its_own_threads() {
    let r = RedisServer::start();
    // Budgets for a loaded machine (or valgrind): each process's first lookup also connects.
    let url = format!("{}?budget_ms=1000&async_ms=5000", r.url());
    let one = store(&url, &[7; 32]);
    let mut two = store(&url, &[7; 32]);
    two.enable_async();
    // The parent's state: a writer with a connection, fetchers, a pooled lookup connection.
    put_and_flush(&two, key(0, 1), now() + 300);
    assert!(matches!(two.get(&key(0, 9), now()), Lookup::Miss));
    put_and_flush(&one, key(0, 3), now() + 300);
    put_and_flush(&one, key(0, 4), now() + 300);

    // SAFETY: the child only uses the store, waits with sleeps and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            two.put(key(0, 2), Value::new(RECORD.to_vec()), now() + 300)
                .unwrap();
            if !two.flush(Duration::from_secs(5)) {
                return 2;
            }
            let (w, waker) = wakes();
            if !matches!(two.get_async(&key(0, 3), now(), &waker), Lookup::Pending) {
                return 3;
            }
            let end = Instant::now() + Duration::from_secs(10);
            while w.0.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                if Instant::now() > end {
                    return 4;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            if hit_bytes(two.get_async(&key(0, 3), now(), &waker)).as_deref() != Some(RECORD) {
                return 5;
            }
            if hit_bytes(two.get(&key(0, 4), now())).as_deref() != Some(RECORD) {
                return 6;
            }
            0
        }))
        .unwrap_or(1);
        // The child's own threads stop here; the parent's state stays forgotten.
        drop(two);
        drop(one);
        // SAFETY: ends the child without running the parent's exit handlers or destructors
        // (the Redis server's would stop it).
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed at step {} (status {status:#x})",
        libc::WEXITSTATUS(status)
    );
    // What the child wrote is in Redis; the parent's own threads still work.
    assert_eq!(
        hit_bytes(one.get(&key(0, 2), now())).as_deref(),
        Some(RECORD)
    );
    put_and_flush(&two, key(0, 5), now() + 300);
    assert_eq!(
        hit_bytes(one.get(&key(0, 5), now())).as_deref(),
        Some(RECORD)
    );
    let (w, waker) = wakes();
    assert!(matches!(
        two.get_async(&key(0, 4), now(), &waker),
        Lookup::Pending
    ));
    wait_until("the parent's fetch woke its waiter", || {
        w.0.load(std::sync::atomic::Ordering::SeqCst) == 1
    });
    assert!(hit_bytes(two.get_async(&key(0, 4), now(), &waker)).is_some());
    assert_eq!(two.remote_stats().writes, 2, "the parent's own writes");
}

#[test]
fn error_replies_keep_the_pool_and_the_breaker_closed() {
    // Issue 12.1: every error reply used to drop the idle connections without freeing their
    // slots; with pool=1 the second lookup then found no free connection, for good.
    let r = RedisServer::start();
    let s = store(&format!("{}?pool=1&budget_ms=200", r.url()), &[7; 32]);
    let mut c = r.cli().unwrap();
    redis::cmd("HSET")
        .arg(redis_key(0, 9))
        .arg("f")
        .arg("v")
        .query::<()>(&mut c)
        .unwrap();
    for _ in 0..20 {
        assert!(matches!(s.get(&key(0, 9), now()), Lookup::Unavailable));
    }
    let st = s.remote_stats();
    assert_eq!(
        (st.errors, st.breaker_trips, st.timeouts),
        (20, 0, 0),
        "{st:?}"
    );
    // Writes refused (NOPERM): counted, dropped; the lookup connections and the breaker
    // untouched.
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg("-set")
        .query::<()>(&mut c)
        .unwrap();
    s.put(key(0, 1), Value::new(RECORD.to_vec()), now() + 300)
        .unwrap();
    assert!(s.flush(Duration::from_secs(5)));
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg("+set")
        .query::<()>(&mut c)
        .unwrap();
    let st = s.remote_stats();
    assert_eq!((st.write_drops, st.breaker_trips), (1, 0), "{st:?}");
    // The one pooled connection still serves, and writes go through again.
    let other = store(&r.url(), &[7; 32]);
    put_and_flush(&other, key(0, 2), now() + 300);
    assert!(hit_bytes(s.get(&key(0, 2), now())).is_some());
    assert_eq!(s.remote_stats().errors, 21);
}

#[test]
fn a_value_over_max_record_is_refused_from_its_length() {
    let r = RedisServer::start();
    let s = store(&format!("{}?pool=1&budget_ms=200", r.url()), &[7; 32]);
    let mut c = r.cli().unwrap();
    redis::cmd("SET")
        .arg(redis_key(0, 1))
        .arg(vec![0u8; 10 << 20])
        .query::<()>(&mut c)
        .unwrap();
    for _ in 0..5 {
        let t = Instant::now();
        assert!(matches!(s.get(&key(0, 1), now()), Lookup::Unavailable));
        // Reading 10 MB took ~29 ms; the length header alone is one small read. Generous for
        // a loaded machine: the benchmark shows the figures.
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
    }
    let st = s.remote_stats();
    assert_eq!((st.errors, st.breaker_trips), (5, 0), "{st:?}");
    // The connection that saw the header was dropped and its slot freed: pool=1 still works.
    put_and_flush(&s, key(0, 2), now() + 300);
    let other = store(&format!("{}?pool=1", r.url()), &[7; 32]);
    assert!(hit_bytes(other.get(&key(0, 2), now())).is_some());
    assert!(RedisSpec::parse("redis://h:1?max_record=512").is_err());
    assert!(RedisSpec::parse("redis://h:1?max_record=17m").is_err());
    assert_eq!(
        RedisSpec::parse("redis://h:1?max_record=1m")
            .unwrap()
            .options
            .max_record,
        1 << 20
    );
}

#[test]
fn host_names_resolve_off_the_lookup_path() {
    // A name that never resolves (RFC 6761 .invalid): every lookup is answered at once.
    let s = store(
        "redis://snicache-test.invalid:6379?budget_ms=5&backoff_ms=10",
        &[7; 32],
    );
    for _ in 0..20 {
        let t = Instant::now();
        assert!(matches!(s.get(&key(0, 1), now()), Lookup::Unavailable));
        assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
    }
    // A name that resolves (localhost) is used once the resolver thread has it.
    let r = RedisServer::start();
    let url = r.url().replace("127.0.0.1", "localhost");
    let writer = store(&r.url(), &[7; 32]);
    put_and_flush(&writer, key(0, 1), now() + 300);
    let s = store(&format!("{url}?backoff_ms=10"), &[7; 32]);
    let end = Instant::now() + Duration::from_secs(10);
    while hit_bytes(s.get(&key(0, 1), now())).is_none() {
        assert!(Instant::now() < end, "{:?}", s.remote_stats());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn take_removes_from_redis_once_on_the_store_connections() {
    let r = RedisServer::start();
    let (one, two) = (store(&r.url(), &[7; 32]), store(&r.url(), &[7; 32]));
    put_and_flush(&one, key(0, 1), now() + 300);
    assert!(two.take(&key(0, 1)), "the first take removes the key");
    assert!(
        !one.take(&key(0, 1)),
        "a second take, from another server, does not"
    );
    assert_eq!(two.remote_stats().errors, 0);
}
