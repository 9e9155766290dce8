//! The shm store's unit tests: sizes, expiry, eviction, repairs after garbage and killed
//! writers, forked children sharing entries, and host memory inherited or taken over.

use super::shard::Shard;
use super::*;

impl ShmStore {
    fn with_timeout(mut self, timeout: Duration) -> ShmStore {
        self.timeout = timeout;
        self
    }
}

fn key(v: u32, n: u32) -> Key {
    let mut id = [7u8; 32];
    id[..4].copy_from_slice(&n.to_be_bytes());
    Key::new(v, &id).unwrap()
}

fn value(len: usize, fill: u8) -> Value {
    Value::new((0..len).map(|i| fill ^ i as u8).collect())
}

fn hit(s: &ShmStore, k: &Key, now: u64) -> Option<Vec<u8>> {
    match s.get(k, now) {
        Lookup::Hit(v) => Some(v.bytes.to_vec()),
        _ => None,
    }
}

#[test]
fn put_get_remove_and_sizes() {
    let s = ShmStore::new(1 << 20, 2, 0).unwrap();
    assert!(s.header_ok());
    for len in [1, HEAD_PAYLOAD, HEAD_PAYLOAD + 1, 300, 1000, 5000] {
        let v = value(len, len as u8);
        s.put(key(0, len as u32), v.clone(), 100).unwrap();
        assert_eq!(
            hit(&s, &key(0, len as u32), 50).as_deref(),
            Some(&v.bytes[..])
        );
    }
    assert!(
        hit(&s, &key(1, 300), 50).is_none(),
        "another vhost's key misses"
    );
    assert_eq!(s.usage(Some(0)).entries, 6);
    assert!(s.remove(&key(0, 300)));
    assert!(!s.remove(&key(0, 300)));
    assert!(matches!(s.get(&key(0, 300), 50), Lookup::Miss));
    for len in [1, HEAD_PAYLOAD, HEAD_PAYLOAD + 1, 1000, 5000] {
        assert!(s.remove(&key(0, len as u32)));
    }
    let u = s.usage(None);
    assert_eq!((u.entries, u.bytes), (0, 0));
    assert_eq!(s.health_counters(), Health::default());
    let h = Store::health(&s);
    assert_eq!(h.section, "shm");
    assert_eq!(h.get("shm", "mapped_bytes"), s.mapped_bytes() as u64);
    assert_eq!(h.get("remote", "mapped_bytes"), 0, "another section's name");
}

#[test]
fn too_small_and_too_large() {
    assert!(matches!(
        ShmStore::new(4096, 1, 0),
        Err(ShmError::TooSmall { .. })
    ));
    assert!(matches!(
        ShmStore::new(1 << 50, 1, 0),
        Err(ShmError::TooLarge)
    ));
    let s = ShmStore::new(MIN_BYTES, 1, 0).unwrap();
    assert!(s.mapped_bytes() as u64 <= MIN_BYTES);
    assert_eq!(
        s.put(key(0, 1), value(64 * 1024, 1), 9).err(),
        Some(StoreError::TooLarge)
    );
}

#[test]
fn expiry_is_lazy_and_counted() {
    let s = ShmStore::new(1 << 20, 1, 0).unwrap();
    s.put(key(0, 1), value(10, 1), 100).unwrap();
    assert!(matches!(s.get(&key(0, 1), 100), Lookup::Expired));
    assert!(matches!(s.get(&key(0, 1), 50), Lookup::Miss));
    let u = s.usage(Some(0));
    assert_eq!((u.entries, u.expirations, u.bytes), (0, 1, 0));
}

#[test]
fn replacing_keeps_one_entry() {
    let s = ShmStore::new(1 << 20, 1, 0).unwrap();
    s.put(key(0, 1), value(10, 1), 9).unwrap();
    s.put(key(0, 1), value(400, 2), 9).unwrap();
    let u = s.usage(None);
    assert_eq!((u.entries, u.bytes, u.evictions), (1, 2 * SLOT as u64, 0));
    assert_eq!(hit(&s, &key(0, 1), 0).unwrap().len(), 400);
}

#[test]
fn bounded_with_clock_eviction() {
    let s = ShmStore::new(MIN_BYTES, 1, 0).unwrap();
    let cap = s.slots();
    for n in 0..2000 {
        s.put(key(0, n), value(300, n as u8), u64::MAX).unwrap();
        // Keep entry 0 referenced: CLOCK gives it a second chance every sweep.
        assert!(hit(&s, &key(0, 0), 0).is_some(), "n={n}");
        let u = s.usage(None);
        assert!(u.bytes <= cap * SLOT as u64 && u.entries * 2 <= cap);
    }
    let u = s.usage(None);
    assert!(u.evictions > 1800, "{u:?}");
    assert_eq!(u.entries + u.evictions, 2000);
    assert!(hit(&s, &key(0, 1999), 0).is_some(), "newest survives");
    assert_eq!(s.health_counters(), Health::default());
}

#[test]
fn dirty_shard_is_reset_not_served() {
    let s = ShmStore::new(MIN_BYTES, 1, 0).unwrap();
    for n in 0..10 {
        s.put(key(0, n), value(300, 3), u64::MAX).unwrap();
    }
    // A writer died between begin() and end().
    Shard {
        store: &s,
        base: s.shard_base(0),
    }
    .begin();
    assert!(matches!(s.get(&key(0, 3), 0), Lookup::Miss));
    assert_eq!(s.health_counters().repairs, 1);
    assert_eq!(s.usage(None).entries, 0);
    s.put(key(0, 3), value(300, 3), u64::MAX).unwrap();
    assert!(hit(&s, &key(0, 3), 0).is_some());
}

#[test]
fn flipped_byte_is_a_counted_miss() {
    let s = ShmStore::new(MIN_BYTES, 1, 0).unwrap();
    s.put(key(0, 1), value(300, 3), u64::MAX).unwrap();
    let l = s.lock(0).unwrap();
    let Found::At(i) = l.find(s.key_hash(&key(0, 1)), &key(0, 1)) else {
        panic!("stored")
    };
    let off = l.slot(i) + HEAD_HDR + 5;
    l.set_u8(off, l.u8_at(off) ^ 1);
    drop(l);
    assert!(matches!(s.get(&key(0, 1), 0), Lookup::Unavailable));
    assert!(matches!(s.get(&key(0, 1), 0), Lookup::Miss), "dropped");
    assert_eq!(s.health_counters().corrupt, 1);
    assert_eq!(Store::health(&s).get("shm", "corrupt"), 1);
    assert_eq!(s.usage(None).entries, 0);
}

/// Garbage over everything, header and lock words included: no panic, no crash, nothing
/// returned that was not stored, and the store keeps working afterwards.
#[test]
fn garbage_everywhere_never_serves_garbage() {
    let s = ShmStore::new(MIN_BYTES * 4, 2, 0).unwrap();
    let (base, len) = s.raw().region();
    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..200u32 {
        for n in 0..40 {
            let k = key(n % 2, n);
            let v = value(100 + (n as usize * 37) % 900, n as u8);
            let _ = s.put(k, v.clone(), u64::MAX);
            if let Some(got) = hit(&s, &k, 0) {
                assert_eq!(got, v.bytes.to_vec(), "round {round}");
            }
        }
        for _ in 0..64 {
            let off = (next() as usize) % len;
            // SAFETY: off < len; a misbehaving process's write (header and locks included).
            unsafe { *base.add(off) = next() as u8 };
        }
    }
    let h = s.health_counters();
    assert!(h.repairs + h.corrupt > 0, "{h:?}");
    s.put(key(0, 1), value(300, 9), u64::MAX).unwrap();
    assert!(hit(&s, &key(0, 1), 0).is_some());
}

#[test]
fn stuck_lock_holder_times_out() {
    let s = ShmStore::new(MIN_BYTES, 1, 0)
        .unwrap()
        .with_timeout(Duration::from_millis(20));
    s.put(key(0, 1), value(10, 1), u64::MAX).unwrap();
    let s = Arc::new(s);
    let held = s.lock(0).unwrap();
    let t = {
        let s = s.clone();
        std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            let r = matches!(s.get(&key(0, 1), 0), Lookup::Unavailable);
            (r, t0.elapsed())
        })
    };
    let (unavailable, waited) = t.join().unwrap();
    drop(held);
    assert!(unavailable && waited < Duration::from_secs(1));
    assert_eq!(s.health_counters().lock_timeouts, 1);
    assert!(hit(&s, &key(0, 1), 0).is_some());
}

fn fork(child: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child only runs `child` (store operations) and exits with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(99);
        // SAFETY: leaving the forked child without running the test harness's atexit state.
        unsafe { libc::_exit(code) };
    }
    pid
}

fn wait(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: pid is our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

#[test]
fn children_share_entries_and_counters() {
    // A holder preempted on a loaded machine must not fail a put here.
    let s = ShmStore::new(1 << 20, 2, 4)
        .unwrap()
        .with_timeout(Duration::from_secs(1));
    let c = s.counters();
    let kids: Vec<_> = (0..4u32)
        .map(|w| {
            let s = &s;
            let c = &c;
            fork(move || {
                for n in 0..200 {
                    s.put(key(w % 2, w * 1000 + n), value(300, w as u8), u64::MAX)
                        .unwrap();
                    c.as_ref()[w as usize].fetch_add(1, Relaxed);
                }
                0
            })
        })
        .collect();
    for pid in kids {
        assert_eq!(wait(pid), 0, "{:?}", s.health_counters());
    }
    for w in 0..4u32 {
        assert_eq!(c.as_ref()[w as usize].load(Relaxed), 200);
        for n in 0..200 {
            assert_eq!(hit(&s, &key(w % 2, w * 1000 + n), 0).unwrap().len(), 300);
        }
    }
    assert_eq!(s.usage(None).entries, 800);
    assert_eq!(s.usage(Some(1)).entries, 400);
}

#[test]
fn killed_writers_never_leave_garbage_or_a_dead_lock() {
    let s = ShmStore::new(MIN_BYTES, 1, 0).unwrap();
    let mut rounds = 0;
    for round in 0..30u32 {
        let pid = fork(|| loop {
            for n in 0..50u32 {
                let _ = s.put(key(0, n), value(300 + n as usize, n as u8), u64::MAX);
            }
        });
        std::thread::sleep(Duration::from_micros(200 + 97 * u64::from(round % 10)));
        // SAFETY: our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait(pid);
        let t0 = std::time::Instant::now();
        for n in 0..50u32 {
            if let Some(got) = hit(&s, &key(0, n), 0) {
                assert_eq!(got, value(300 + n as usize, n as u8).bytes.to_vec());
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(1));
        s.put(key(0, 1000), value(10, 1), u64::MAX).unwrap();
        assert!(hit(&s, &key(0, 1000), 0).is_some());
        rounds += 1;
    }
    assert_eq!(rounds, 30);
    assert_eq!(s.health_counters().lock_timeouts, 0);
}

fn resident_pages(base: *mut u8, len: usize) -> usize {
    let pages = len.div_ceil(4096);
    let mut v = vec![0u8; pages];
    // SAFETY: base..base + len is our mapping; v has one byte per page.
    assert_eq!(
        unsafe { libc::mincore(base.cast(), len, v.as_mut_ptr()) },
        0
    );
    v.iter().filter(|b| **b & 1 != 0).count()
}

/// Bytes over the whole mapping, then every byte one value, then all zero: each time the
/// store heals (lock words taken back, shards reset, header rewritten) and the next
/// sessions stored resume.
#[test]
fn wiped_mapping_heals() {
    let s = ShmStore::new(1 << 20, 2, 3).unwrap();
    let (base, len) = s.raw().region();
    for fill in [0xa5u8, 0xff, 0x00, 0x01] {
        for n in 0..50 {
            s.put(key(n % 2, n), value(300, n as u8), u64::MAX).unwrap();
        }
        // SAFETY: our mapping; a misbehaving process's write over all of it.
        unsafe { std::ptr::write_bytes(base, fill, len) };
        let t0 = std::time::Instant::now();
        for n in 100..150 {
            s.put(key(n % 2, n), value(300, n as u8), u64::MAX).unwrap();
        }
        for n in 100..150 {
            assert_eq!(
                hit(&s, &key(n % 2, n), 0),
                Some(value(300, n as u8).bytes.to_vec()),
                "fill {fill:#x}"
            );
        }
        assert!(t0.elapsed() < Duration::from_secs(1), "fill {fill:#x}");
        assert!(s.header_ok(), "fill {fill:#x}");
    }
    assert!(s.health_counters().repairs > 0);
}

/// A fresh store touches its header and nothing else; entries touch pages as they land.
#[test]
fn fresh_store_touches_only_what_it_writes() {
    let s = ShmStore::new(256 << 20, 4, 100).unwrap();
    let (base, len) = s.raw().region();
    let fresh = resident_pages(base, len);
    assert!(fresh <= 2, "{fresh} pages resident");
    for n in 0..1000 {
        s.put(key(0, n), value(300, 1), u64::MAX).unwrap();
    }
    let _ = s.usage(None);
    let used = resident_pages(base, len);
    // 1000 entries of 2 slots and their buckets, and the first page of each shard.
    assert!(used < 1000 + 64 + 2, "{used} pages resident");
}

/// A store over host memory: a second store over the same memory and layout inherits the
/// sessions (a reload); one with another layout starts anew, and the first stops using the
/// memory instead of fighting over it.
#[test]
fn host_memory_is_inherited_or_taken_over() {
    let len = 1 << 20;
    let owner = ShmStore::new(len, 1, 0).unwrap();
    let (base, len) = owner.raw().region();
    // SAFETY: owner's mapping outlives both stores (dropped last).
    let a = unsafe { ShmStore::over(base, len, 2, 5) }.unwrap();
    assert!(!a.inherited());
    a.put(key(1, 1), value(300, 1), u64::MAX).unwrap();
    // SAFETY: as above.
    let b = unsafe { ShmStore::over(base, len, 2, 5) }.unwrap();
    assert!(b.inherited());
    assert_eq!(hit(&b, &key(1, 1), 0), Some(value(300, 1).bytes.to_vec()));
    assert_eq!(b.counters().as_ref().len(), 5);
    // SAFETY: as above.
    let c = unsafe { ShmStore::over(base, len, 3, 5) }.unwrap();
    assert!(!c.inherited());
    assert!(hit(&c, &key(1, 1), 0).is_none());
    c.put(key(1, 2), value(300, 2), u64::MAX).unwrap();
    // The superseded store's counters no longer land in the memory.
    let (ac, cc) = (a.counters(), c.counters());
    ac.as_ref()[0].fetch_add(7, Relaxed);
    assert_eq!(cc.as_ref()[0].load(Relaxed), 0);
    assert_eq!(ac.as_ref()[0].load(Relaxed), 7);
    assert_eq!(
        c.health_counters(),
        Health::default(),
        "nothing written over c's counters"
    );
    assert!(matches!(a.get(&key(1, 2), 0), Lookup::Unavailable));
    assert!(a.put(key(1, 3), value(10, 1), u64::MAX).is_err());
    assert_eq!(hit(&c, &key(1, 2), 0), Some(value(300, 2).bytes.to_vec()));
    assert!(c.header_ok() && !a.header_ok());
    // SAFETY: misaligned on purpose.
    let bad = unsafe { ShmStore::over(base.add(8), len - 64, 1, 0) };
    assert_eq!(bad.err(), Some(ShmError::Misaligned));
    drop((a, b, c));
    drop(owner);
}
