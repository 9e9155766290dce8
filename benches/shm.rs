//! Shared-memory store vs memory store: ns per get and per put, in 1 and 2 processes, and memory
//! per session. Prints figures only; never a pass/fail test. Run: `cargo bench --bench shm`
//! (`-- --quick` for a short run).
//!
//! Both stores hold 100k entries of 200–300 byte records (2 vhosts, 32-byte ids) with room to
//! spare (no eviction). "1" is one thread of this process. "2" is two forked processes on the
//! one mapping for shm, and two threads on the one store for memory (a memory store cannot be
//! shared by processes; threads are what it serves). ns/op is each worker's wall time over its
//! own operations, the median of several rounds, the two workers averaged; rounds interleave the
//! two stores. The ratio is shm / memory.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Instant;

use snicache::store::memory::{MemoryStore, ENTRY_OVERHEAD};
use snicache::store::shm::ShmStore;
use snicache::store::{Key, Lookup, Store, Value};

const ENTRIES: usize = 100_000;
const RECORD_MIN: usize = 200;
const RECORD_MAX: usize = 300;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Get,
    Put,
}

fn batch(store: &dyn Store, keys: &[Key], values: &[Value], op: Op, idx: &[usize]) -> u64 {
    let start = Instant::now();
    for &i in idx {
        match op {
            Op::Get => {
                black_box(matches!(store.get(&keys[i], 0), Lookup::Hit(_)));
            }
            Op::Put => {
                // A shm lock wait past its 5 ms bound (a preempted holder on a busy machine)
                // fails the put; rare, and counted in the store's health, not here.
                black_box(store.put(keys[i], values[i].clone(), u64::MAX).is_ok());
            }
        }
    }
    start.elapsed().as_nanos() as u64
}

/// A small shared area for the forked workers' start flag and results.
struct Shared {
    base: *mut AtomicU64,
}

impl Shared {
    fn new() -> Shared {
        // SAFETY: a fresh anonymous shared mapping of one page, checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Shared { base: p.cast() }
    }
    fn at(&self, i: usize) -> &AtomicU64 {
        assert!(i < 512);
        // SAFETY: inside the page, 8-aligned, zero-initialised, used only as atomics.
        unsafe { &*self.base.add(i) }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new().
        unsafe { libc::munmap(self.base.cast(), 4096) };
    }
}

/// ns/op of `workers` workers running `op` at once: threads, or forked processes.
fn run(
    store: &dyn Store,
    keys: &[Key],
    values: &[Value],
    op: Op,
    workers: usize,
    fork: bool,
    sets: &[Vec<usize>],
) -> f64 {
    let ops = sets[0].len() as f64;
    if workers == 1 {
        return batch(store, keys, values, op, &sets[0]) as f64 / ops;
    }
    if !fork {
        let barrier = Barrier::new(workers);
        let total: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = sets
                .iter()
                .map(|set| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        batch(store, keys, values, op, set)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("thread")).sum()
        });
        return total as f64 / workers as f64 / ops;
    }
    let shared = Shared::new();
    let mut pids = Vec::new();
    for (w, set) in sets.iter().enumerate() {
        // SAFETY: the child only runs store operations on inherited memory and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            shared.at(0).fetch_add(1, Ordering::SeqCst);
            while shared.at(0).load(Ordering::SeqCst) < workers as u64 {
                std::hint::spin_loop();
            }
            let ns = batch(store, keys, values, op, set);
            shared.at(1 + w).store(ns, Ordering::SeqCst);
            // SAFETY: leave the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        pids.push(pid);
    }
    for pid in pids {
        let mut status = 0;
        // SAFETY: our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    let total: u64 = (0..workers)
        .map(|w| shared.at(1 + w).load(Ordering::SeqCst))
        .sum();
    total as f64 / workers as f64 / ops
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (ops, rounds) = if quick { (50_000, 3) } else { (200_000, 9) };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let keys: Vec<Key> = (0..ENTRIES)
        .map(|i| {
            let mut id = [0u8; 32];
            for c in id.chunks_mut(8) {
                c.copy_from_slice(&rng.next().to_le_bytes());
            }
            Key::new((i % 2) as u32, &id).expect("32-byte id")
        })
        .collect();
    let values: Vec<Value> = (0..ENTRIES)
        .map(|_| {
            Value::new(vec![
                0xa5;
                RECORD_MIN + rng.below(RECORD_MAX - RECORD_MIN + 1)
            ])
        })
        .collect();
    let memory = MemoryStore::new(
        2 * (ENTRIES * (RECORD_MAX + ENTRY_OVERHEAD)) as u64,
        2 * ENTRIES as u64,
        2,
    );
    let shm_bytes = 2 * ENTRIES as u64 * 2 * 260;
    let shm = ShmStore::new(shm_bytes, 2, 0).expect("mapping");
    for (k, v) in keys.iter().zip(&values) {
        memory.put(*k, v.clone(), u64::MAX).expect("fits");
        shm.put(*k, v.clone(), u64::MAX).expect("fits");
    }
    println!(
        "shm vs memory store: {ENTRIES} entries, records {RECORD_MIN}-{RECORD_MAX} B, 32-byte ids, 2 vhosts, no eviction"
    );
    println!("median of {rounds} rounds x {ops} ops per worker; 2 = two processes (shm) / two threads (memory)");
    println!();
    println!("| op | workers | memory ns/op | shm ns/op | shm / memory |");
    println!("|----|--------:|-------------:|----------:|-------------:|");
    for op in [Op::Get, Op::Put] {
        for workers in [1usize, 2] {
            let (mut m, mut s) = (Vec::new(), Vec::new());
            for round in 0..=rounds {
                let mut r = Rng(0x1234 + round as u64 * 7919);
                let sets: Vec<Vec<usize>> = (0..workers)
                    .map(|_| (0..ops).map(|_| r.below(ENTRIES)).collect())
                    .collect();
                let a = run(&memory, &keys, &values, op, workers, false, &sets);
                let b = run(&shm, &keys, &values, op, workers, true, &sets);
                if round > 0 {
                    // Round 0 warms up.
                    m.push(a);
                    s.push(b);
                }
            }
            let (m, s) = (median(m), median(s));
            println!(
                "| {} | {workers} | {m:.0} | {s:.0} | {:.2}x |",
                if op == Op::Get { "get" } else { "put" },
                s / m
            );
        }
    }
    let mu = memory.usage(None);
    let su = shm.usage(None);
    assert_eq!((mu.entries, su.entries), (ENTRIES as u64, ENTRIES as u64));
    assert_eq!(su.evictions, 0);
    let avg_record = values.iter().map(|v| v.bytes.len()).sum::<usize>() as f64 / ENTRIES as f64;
    println!();
    println!("memory per session (average record {avg_record:.0} B):");
    println!(
        "- memory store: {:.0} B charged (record + {ENTRY_OVERHEAD} B estimated overhead per entry)",
        mu.bytes as f64 / mu.entries as f64
    );
    println!(
        "- shm store: {:.0} B of slots per session; with buckets and shard headers {:.0} B of mapping per slot pair \
         ({} B mapped for {} slots)",
        su.bytes as f64 / su.entries as f64,
        2.0 * shm.mapped_bytes() as f64 / shm.slots() as f64,
        shm.mapped_bytes(),
        shm.slots()
    );
}
