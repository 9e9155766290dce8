//! Lookup latency of the Redis store: local-tier hits, local misses answered by Redis, and
//! misses in both, each against the memory store's hit in the same run; then lookups under
//! faults with the default 5 ms budget (a bound: budget + 1 ms): Redis stalled (SIGSTOP), a
//! 10 MB value under the session key, a host name that does not resolve. Starts its own
//! redis-servers on free loopback ports (fails without them). Figures only.
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

type Figures = (f64, f64, f64, f64);

/// p50, p99, p99.9 and max of `f` over `ids`, in microseconds.
fn measure(ids: std::ops::Range<u32>, mut f: impl FnMut(u32) -> bool) -> Figures {
    let mut t: Vec<Duration> = ids
        .map(|n| {
            let start = Instant::now();
            assert!(f(n), "unexpected lookup answer for {n}");
            start.elapsed()
        })
        .collect();
    figures(&mut t)
}

/// As `measure`, with a pause (not timed) before each call, so that each one finds the
/// breaker half-open and goes to Redis. Also times a 5 ms sleep right after each call, so the
/// machine's own lateness under the same fault (Redis copying a huge value on one core, the
/// closer tearing a connection down on another) is measured beside the lookups.
fn measure_paced(
    ids: std::ops::Range<u32>,
    pause: Duration,
    mut f: impl FnMut(u32) -> bool,
) -> (Figures, Figures) {
    let (mut t, mut s): (Vec<Duration>, Vec<Duration>) = ids
        .map(|n| {
            std::thread::sleep(pause);
            let start = Instant::now();
            assert!(f(n), "unexpected lookup answer for {n}");
            let took = start.elapsed();
            let start = Instant::now();
            std::thread::sleep(Duration::from_millis(5));
            (took, start.elapsed())
        })
        .unzip();
    (figures(&mut t), figures(&mut s))
}

fn figures(t: &mut [Duration]) -> Figures {
    t.sort();
    let us = |d: Duration| d.as_nanos() as f64 / 1000.0;
    let at = |p: f64| us(t[((t.len() - 1) as f64 * p) as usize]);
    (at(0.5), at(0.99), at(0.999), us(*t.last().unwrap()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn redis_server(port: u16) -> std::process::Child {
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (Debian package redis-server) is needed for this benchmark");
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn cli(port: u16, args: &[&str]) {
    let ok = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "redis-cli {args:?}");
}

fn main() {
    let n: u32 = if std::env::args().any(|a| a == "--quick") {
        2_000
    } else {
        20_000
    };
    let port = free_port();
    let mut redis = redis_server(port);
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

    // Faults, with the default budget (5 ms). The breaker lets a probe through every 10 ms:
    // lookups paced 11 ms apart each go to Redis.
    let faults = n / 10;
    let pause = Duration::from_millis(11);
    let unavailable = |l: Lookup| matches!(l, Lookup::Unavailable);
    // A 10 MB value under the session key: Redis sends max_record + 1 bytes of it (GETRANGE), refused.
    std::fs::write(
        std::env::temp_dir().join("snicache-bench-huge"),
        vec![b'x'; 10 << 20],
    )
    .unwrap();
    let huge = key(9 * n);
    let huge_key = format!(
        "snicache:v1:a.test:{}",
        huge.id()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "redis-cli -p {port} -x set {huge_key} <{} >/dev/null",
            std::env::temp_dir().join("snicache-bench-huge").display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_file(std::env::temp_dir().join("snicache-bench-huge"));
    let big = store(&format!("redis://127.0.0.1:{port}?backoff_ms=10"));
    let (huge_value, huge_sleep) =
        measure_paced(0..faults, pause, |_| unavailable(big.get(&huge, now)));
    let big_stats = big.remote_stats();
    let _ = redis.kill();
    let _ = redis.wait();
    // The machine's own wakeup latency, as a baseline for the timed-out lookups: a 5 ms sleep.
    let (sleep_5ms, _) = measure_paced(0..faults, pause, |_| {
        std::thread::sleep(Duration::from_millis(5));
        true
    });
    // A host name that does not resolve (RFC 6761 .invalid).
    let nowhere = store("redis://snicache-bench.invalid:6379?backoff_ms=10");
    let no_name = measure(0..faults, |i| unavailable(nowhere.get(&key(i), now)));
    // Redis stalled (SIGSTOP), with connections pooled before.
    let stalled_port = free_port();
    let mut stalled = redis_server(stalled_port);
    cli(stalled_port, &["ping"]);
    let slow = store(&format!("redis://127.0.0.1:{stalled_port}?backoff_ms=10"));
    for i in 0..8 {
        assert!(matches!(slow.get(&key(3 * n + i), now), Lookup::Miss));
    }
    let pid = stalled.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let (stalled_lookups, stalled_sleep) =
        measure_paced(0..faults, pause, |i| unavailable(slow.get(&key(i), now)));
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    let slow_stats = slow.remote_stats();
    let _ = stalled.kill();
    let _ = stalled.wait();

    println!("redis store lookup latency ({n} lookups each, 1200-byte records, redis-server on loopback, one thread)");
    println!();
    println!("| lookup | p50 µs | p99 µs | p99.9 µs | max µs |");
    println!("|---|---:|---:|---:|---:|");
    for (name, (p50, p99, p999, max)) in [
        ("memory store hit (baseline)", memory_hit),
        ("redis store, local-tier hit", local_hit),
        (
            "redis store, local miss, Redis hit (GETRANGE + open)",
            remote_hit,
        ),
        ("redis store, local miss, Redis miss", both_miss),
    ] {
        println!("| {name} | {p50:.2} | {p99:.2} | {p999:.2} | {max:.1} |");
    }
    println!();
    println!("under faults, budget_ms=5 (bound: 6000 µs), backoff_ms=10, {faults} lookups each, 11 ms apart:");
    println!();
    println!("| fault | p50 µs | p99 µs | p99.9 µs | max µs | lookups |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, (p50, p99, p999, max), reached) in [
        (
            "baseline: a 5 ms sleep (this machine's wakeup latency)",
            sleep_5ms,
            "-".to_owned(),
        ),
        (
            "Redis stalled (SIGSTOP)",
            stalled_lookups,
            format!(
                "{} timed out, {} skipped",
                slow_stats.timeouts, slow_stats.breaker_skips
            ),
        ),
        (
            "  a 5 ms sleep right after each of those lookups",
            stalled_sleep,
            "-".to_owned(),
        ),
        (
            "10 MB value under the key",
            huge_value,
            format!(
                "{} refused by length, {} timed out, {} skipped",
                big_stats.errors, big_stats.timeouts, big_stats.breaker_skips
            ),
        ),
        (
            "  a 5 ms sleep right after each of those lookups",
            huge_sleep,
            "-".to_owned(),
        ),
        (
            "host name does not resolve (.invalid)",
            no_name,
            format!("{} answered at once (no address)", faults),
        ),
    ] {
        println!("| {name} | {p50:.2} | {p99:.2} | {p999:.2} | {max:.1} | {reached} |");
    }
}
