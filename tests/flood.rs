//! Memory flood: 1,000,000 unique sessions pushed into a 10 MB store (memory, and shm on Linux).
//! Resident memory must stay within the bound plus a fixed overhead, and lookups must not slow
//! down as the store churns (printed, not asserted: timings are noisy on shared machines).
//!
//! Ignored by default (it takes a few seconds in a debug build); `scripts/test.sh` runs it with
//! `cargo test --test flood -- --ignored --nocapture --test-threads 1`.

use std::hint::black_box;
use std::time::Instant;

use snicache::record::{self, Meta};
use snicache::store::memory::MemoryStore;
use snicache::store::{Key, Lookup, Store, Value};

const BOUND: u64 = 10 << 20;
const SESSIONS: u64 = 1_000_000;
/// What resident memory may grow by beyond the bound: allocator slack, the shard maps' and slot
/// vectors' capacity, and the test's own buffers. The memory store's ENTRY_OVERHEAD (448 bytes)
/// charges its table and queue slots, so it grows by less than its bound (its doc has the
/// measurement); the shm store by exactly its bound.
const FIXED_OVERHEAD: u64 = 8 << 20;
const PROBE: u64 = 5_000;
/// Sessions pushed before the first timing: the store holds about 22,000, so it is evicting.
const FULL: u64 = 50_000;
const NOW: u64 = 1_700_000_000;

/// Resident set size of this process in bytes (`/proc/self/statm`, second field, in pages).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("statm has a resident field");
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

fn key(n: u64) -> Key {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_be_bytes());
    id[8..16].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    Key::new((n % 2) as u32, &id).expect("32-byte id")
}

/// A realistic record: vhost, SNI, ALPN and 200 to 300 bytes of session.
fn value(n: u64, session: &mut [u8; 300]) -> Value {
    let len = 200 + (n % 101) as usize;
    session[..8].copy_from_slice(&n.to_le_bytes());
    let meta = Meta {
        vhost: if n % 2 == 0 {
            "a.example.com"
        } else {
            "b.example.com"
        },
        sni: Some(if n % 2 == 0 {
            "a.example.com"
        } else {
            "www.b.example.com"
        }),
        created: NOW,
        timeout: 3600,
        version: 0x0303,
        cipher: 0xc02f,
        ems: true,
        invalidated: false,
        alpn: b"http/1.1",
    };
    Value::new(record::encode(&meta, &session[..len]).expect("short fields"))
}

/// Mean ns per lookup of keys `from..to` (each looked up once), and how many hit.
fn lookups(store: &dyn Store, from: u64, to: u64) -> (f64, u64) {
    let start = Instant::now();
    let mut hits = 0;
    for n in from..to {
        if let Lookup::Hit(v) = store.get(&key(n), NOW) {
            hits += 1;
            black_box(v);
        }
    }
    (start.elapsed().as_nanos() as f64 / (to - from) as f64, hits)
}

/// `recent`: the share (in percent) of the last sessions that must still be found.
fn flood(name: &str, store: &dyn Store, before: u64, recent: u64) {
    let mut session = [0x5a_u8; 300];
    // Fill until the store is full and evicting, then time lookups of the newest sessions; the
    // same lookups again after a million sessions must cost about the same.
    for n in 0..FULL {
        store
            .put(key(n), value(n, &mut session), NOW + 3600)
            .unwrap();
    }
    let (early_ns, early_hits) = lookups(store, FULL - PROBE, FULL);
    let start = Instant::now();
    let mut peak = rss();
    let mut full = 0;
    for n in FULL..SESSIONS {
        store
            .put(key(n), value(n, &mut session), NOW + 3600)
            .unwrap();
        if n % 100_000 == 0 {
            let now = rss();
            peak = peak.max(now);
            if n == 100_000 {
                full = now;
            }
        }
    }
    let put_ns = start.elapsed().as_nanos() as f64 / (SESSIONS - FULL) as f64;
    let after = rss();
    peak = peak.max(after);
    // The last PROBE sessions are the most recent: still there after a million evictions.
    let (late_ns, late_hits) = lookups(store, SESSIONS - PROBE, SESSIONS);
    // The first ones were evicted long ago: misses must be as cheap as hits.
    let (miss_ns, stale_hits) = lookups(store, 0, PROBE);
    let usage = store.usage(None);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "flood {name}: {SESSIONS} sessions into {:.0} MiB: RSS {:.1} MiB before, {:.1} MiB after, \
         {:.1} MiB at 100000 sessions, peak {:.1} MiB (growth {:.1} MiB, allowed {:.0} MiB); store holds {} entries, {:.1} MiB, \
         {} evictions; put {:.0} ns; lookup {:.0} ns once full ({FULL} sessions) ({early_hits}/{PROBE} hits), \
         {:.0} ns at the end ({late_hits}/{PROBE} hits), {:.0} ns for evicted keys \
         ({stale_hits} hits), end/start {:.2}",
        mib(BOUND),
        mib(before),
        mib(after),
        mib(full),
        mib(peak),
        mib(peak.saturating_sub(before)),
        mib(BOUND + FIXED_OVERHEAD),
        usage.entries,
        mib(usage.bytes),
        usage.evictions,
        put_ns,
        early_ns,
        late_ns,
        miss_ns,
        late_ns / early_ns,
    );
    assert!(
        usage.bytes <= BOUND,
        "{name}: store counts {} bytes",
        usage.bytes
    );
    assert!(
        peak.saturating_sub(before) <= BOUND + FIXED_OVERHEAD,
        "{name}: RSS grew by {} bytes, over the {BOUND}-byte bound plus {FIXED_OVERHEAD}",
        peak.saturating_sub(before)
    );
    // Once the store is full, more sessions must not cost more memory.
    assert!(
        after.saturating_sub(full) <= 4 << 20,
        "{name}: RSS grew by {} bytes between 100000 and {SESSIONS} sessions",
        after.saturating_sub(full)
    );
    assert!(
        early_hits.min(late_hits) >= PROBE * recent / 100,
        "{name}: only {early_hits} and {late_hits} of the last {PROBE} sessions are found"
    );
}

#[test]
#[ignore = "a million sessions; scripts/test.sh runs it"]
fn flood_memory_store() {
    let before = rss();
    let store = MemoryStore::new(BOUND, u64::MAX, 2);
    flood("memory", &store, before, 90);
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "a million sessions; scripts/test.sh runs it"]
fn flood_shm_store() {
    let before = rss();
    let store = snicache::store::shm::ShmStore::new(BOUND, 2, 0).expect("shm store");
    assert!(
        store.mapped_bytes() as u64 <= BOUND,
        "the mapping is the bound"
    );
    flood("shm", &store, before, 90);
}
