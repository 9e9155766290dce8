//! Lookup latency of the Redis store: local-tier hits, local misses answered by Redis, and
//! misses in both, each against the memory store's hit in the same run. Starts its own
//! redis-server on a free loopback port (fails without one). Figures only.
//!   cargo bench --bench redis [-- --quick]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use snicache::store::memory::MemoryStore;
use snicache::store::redis::{RedisSpec, RedisStore, SealKeys};
use snicache::store::{Key, Lookup, Store, Value};

fn key(n: u32) -> Key {
    let mut id = [0x5a; 32];
    id[..4].copy_from_slice(&n.to_be_bytes());
    Key::new(0, &id).unwrap()
}

fn store(url: &str) -> RedisStore {
    RedisStore::new(
        &RedisSpec::parse(url).unwrap(),
        MemoryStore::new(256 << 20, u64::MAX, 1),
        vec!["a.test".into()],
        Arc::new(SealKeys::new(&[9; 32], false)),
        None,
    )
    .unwrap()
}

/// p50, p99 and max of `f` over `ids`, in microseconds.
fn measure(ids: std::ops::Range<u32>, mut f: impl FnMut(u32) -> bool) -> (f64, f64, f64) {
    let mut t: Vec<Duration> = ids
        .map(|n| {
            let start = Instant::now();
            assert!(f(n), "unexpected lookup answer for {n}");
            start.elapsed()
        })
        .collect();
    t.sort();
    let us = |d: Duration| d.as_nanos() as f64 / 1000.0;
    let at = |p: f64| us(t[((t.len() - 1) as f64 * p) as usize]);
    (at(0.5), at(0.99), us(*t.last().unwrap()))
}

fn main() {
    let n: u32 = if std::env::args().any(|a| a == "--quick") {
        2_000
    } else {
        20_000
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (Debian package redis-server) is needed for this benchmark");
    std::thread::sleep(Duration::from_millis(300));
    let url = format!("redis://127.0.0.1:{port}?budget_ms=50&queue=1000000");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let record = vec![7u8; 1200]; // about a TLS 1.2 session with its snicache record
    let writer = store(&url);
    let memory = MemoryStore::new(256 << 20, u64::MAX, 1);
    for i in 0..n {
        writer
            .put(key(i), Value::new(record.clone()), now + 600)
            .unwrap();
        memory
            .put(key(i), Value::new(record.clone()), now + 600)
            .unwrap();
    }
    assert!(
        writer.flush(Duration::from_secs(60)),
        "writes did not finish"
    );
    let reader = store(&url);
    let hit = |l: Lookup| matches!(l, Lookup::Hit(_));
    let memory_hit = measure(0..n, |i| hit(memory.get(&key(i), now)));
    let remote_hit = measure(0..n, |i| hit(reader.get(&key(i), now)));
    let local_hit = measure(0..n, |i| hit(reader.get(&key(i), now)));
    let both_miss = measure(n..2 * n, |i| {
        matches!(reader.get(&key(i), now), Lookup::Miss)
    });
    let st = reader.remote_stats();
    assert_eq!((st.hits, st.misses, st.errors), (n as u64, n as u64, 0));
    let _ = redis.kill();
    let _ = redis.wait();

    println!("redis store lookup latency ({n} lookups each, 1200-byte records, redis-server on loopback, one thread)");
    println!();
    println!("| lookup | p50 µs | p99 µs | max µs |");
    println!("|---|---:|---:|---:|");
    for (name, (p50, p99, max)) in [
        ("memory store hit (baseline)", memory_hit),
        ("redis store, local-tier hit", local_hit),
        (
            "redis store, local miss, Redis hit (GET + open)",
            remote_hit,
        ),
        ("redis store, local miss, Redis miss", both_miss),
    ] {
        println!("| {name} | {p50:.2} | {p99:.2} | {max:.1} |");
    }
}
