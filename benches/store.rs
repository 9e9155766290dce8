//! Memory store micro-benchmark: ns per get / put / remove / get+put at 1 and 2 threads, with
//! 100k and 1M entries of realistic record sizes (200–300 bytes), then the ticket revocation
//! check (the store's `revoked`, and the engine's whole check: the revocation key made from the
//! ticket's identity plus lookup) with 0 to 100k tickets revoked. Prints figures only; it is never a pass/fail
//! test. Run: `cargo bench --bench store` (`-- --quick` for a short run, `-- --revocations` for the
//! revocation check alone).
//!
//! Each figure is the median of several rounds; a round times a batch of operations on random
//! keys of the populated store. With 2 threads both run the same kind of batch at once on the
//! shared store and ns/op is wall time over one thread's operations (latency as a thread sees
//! it); Mops/s is the total over all threads.
//!
//! The keys and values of a round are copied out in operation order before its timer starts,
//! as a caller has them at hand (the engine holds the key on its stack and a freshly built
//! value): what is timed is the store's own work, hashing, locking and its memory accesses,
//! not the benchmark's random reads of its fixture.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

use snicache::store::memory::{MemoryStore, ENTRY_OVERHEAD};
use snicache::store::{Key, Lookup, Store, Value};

const RECORD_MIN: usize = 200;
const RECORD_MAX: usize = 300;

/// xorshift64*: deterministic and cheap enough to stay out of the figures (indices are drawn
/// before the timer starts anyway).
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

struct Fixture {
    store: MemoryStore,
    keys: Vec<Key>,
    values: Vec<Value>,
}

fn fixture(entries: usize) -> Fixture {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ entries as u64);
    let keys: Vec<Key> = (0..entries)
        .map(|i| {
            let mut id = [0u8; 32];
            for chunk in id.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next().to_le_bytes());
            }
            Key::new((i % 2) as u32, &id).expect("32-byte id")
        })
        .collect();
    let values: Vec<Value> = (0..entries)
        .map(|_| {
            let len = RECORD_MIN + rng.below(RECORD_MAX - RECORD_MIN + 1);
            Value::new(vec![0xa5; len])
        })
        .collect();
    // Room for every entry twice over, so the timed puts replace and never evict.
    let bound = 2 * entries as u64 * (RECORD_MAX + ENTRY_OVERHEAD) as u64;
    let store = MemoryStore::new(bound, 2 * entries as u64, 2);
    for (k, v) in keys.iter().zip(&values) {
        store.put(*k, v.clone(), u64::MAX).expect("fits");
    }
    Fixture {
        store,
        keys,
        values,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Get,
    Put,
    GetPut,
    Remove,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::GetPut => "get+put",
            Op::Remove => "remove",
        }
    }
}

/// Runs one batch of `op` over `idx` and returns the elapsed nanoseconds.
fn batch(f: &Fixture, op: Op, idx: &[usize]) -> u128 {
    // In operation order, before the timer: see the module comment.
    let keys: Vec<Key> = idx.iter().map(|&i| f.keys[i]).collect();
    let mut values: Vec<Option<Value>> = match op {
        Op::Put => idx.iter().map(|&i| Some(f.values[i].clone())).collect(),
        Op::GetPut => idx
            .iter()
            .enumerate()
            .map(|(n, &i)| (n % 2 == 1).then(|| f.values[i].clone()))
            .collect(),
        Op::Get | Op::Remove => Vec::new(),
    };
    let mut hits = Vec::with_capacity(idx.len());
    let start = Instant::now();
    match op {
        Op::Get => {
            for k in &keys {
                // The value found is kept, as the engine keeps it while it decodes the record.
                if let Lookup::Hit(v) = f.store.get(k, 0) {
                    hits.push(v);
                }
            }
        }
        Op::Put => {
            for (k, v) in keys.iter().zip(&mut values) {
                let v = v.take().expect("prepared");
                f.store.put(*k, v, u64::MAX).expect("fits");
            }
        }
        Op::GetPut => {
            for (k, v) in keys.chunks_exact(2).zip(values.chunks_exact_mut(2)) {
                if let Lookup::Hit(v) = f.store.get(&k[0], 0) {
                    hits.push(v);
                }
                let v = v[1].take().expect("prepared");
                f.store.put(k[1], v, u64::MAX).expect("fits");
            }
        }
        Op::Remove => {
            for k in &keys {
                black_box(f.store.remove(k));
            }
        }
    }
    let elapsed = start.elapsed().as_nanos();
    black_box(&hits);
    elapsed
}

/// Indices for one round of one thread. Removals need distinct keys, so every thread takes its
/// own slice of a shuffled order.
fn indices(rng: &mut Rng, entries: usize, ops: usize, op: Op, thread: usize) -> Vec<usize> {
    if op == Op::Remove {
        let mut all: Vec<usize> = (0..entries).collect();
        for i in (1..all.len()).rev() {
            all.swap(i, rng.below(i + 1));
        }
        let start = thread * ops;
        all[start..start + ops].to_vec()
    } else {
        let n = if op == Op::GetPut { 2 * ops } else { ops };
        (0..n).map(|_| rng.below(entries)).collect()
    }
}

struct Figure {
    ns_per_op: f64,
    mops: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn measure(f: &Fixture, op: Op, threads: usize, ops: usize, rounds: usize) -> Figure {
    let entries = f.keys.len();
    // Removals take distinct keys: at most half the store per round, put back afterwards.
    let ops = if op == Op::Remove {
        ops.min(entries / 2 / threads)
    } else {
        ops
    };
    let mut per_op = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let mut rng = Rng(0x1234_5678 + round as u64 * 7919);
        // One shuffle for removals, shared by all threads; fresh random draws otherwise.
        let sets: Vec<Vec<usize>> = if op == Op::Remove {
            let base = indices(&mut rng, entries, ops * threads, op, 0);
            base.chunks(ops).map(<[usize]>::to_vec).collect()
        } else {
            (0..threads)
                .map(|t| indices(&mut rng, entries, ops, op, t))
                .collect()
        };
        let barrier = Barrier::new(threads);
        // The slowest thread's time, each timed from the common start: spawning is not counted.
        let wall = std::thread::scope(|s| {
            let handles: Vec<_> = sets
                .iter()
                .map(|set| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        batch(f, op, set)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("bench thread"))
                .max()
                .unwrap_or(0)
        });
        per_op.push(wall as f64 / ops as f64);
        if op == Op::Remove {
            for &i in sets.iter().flatten() {
                f.store
                    .put(f.keys[i], f.values[i].clone(), u64::MAX)
                    .expect("fits");
            }
        }
    }
    let ns = median(per_op);
    Figure {
        ns_per_op: ns,
        mops: threads as f64 * 1e3 / ns,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (ops, rounds) = if quick { (50_000, 3) } else { (200_000, 9) };
    if std::env::args().any(|a| a == "--revocations") {
        revocation_checks(ops, rounds);
        return;
    }
    println!("memory store: records {RECORD_MIN}-{RECORD_MAX} B, 32-byte ids, 2 vhosts, bound 2x the data (no eviction)");
    println!("median of {rounds} rounds x {ops} ops per thread; ns/op = wall time / ops of one thread; get+put = one get and one put");
    println!();
    let ops_list = [Op::Get, Op::Put, Op::Remove, Op::GetPut];
    let head: Vec<String> = ops_list
        .iter()
        .map(|op| format!("{} ns/op (Mops/s)", op.name()))
        .collect();
    println!("| entries | threads | {} |", head.join(" | "));
    println!("|--------:|--------:|{}", "---:|".repeat(ops_list.len()));
    for entries in [100_000usize, 1_000_000] {
        let f = fixture(entries);
        for threads in [1usize, 2] {
            let cells: Vec<String> = ops_list
                .iter()
                .map(|&op| {
                    // Warm-up round, not counted.
                    measure(&f, op, threads, ops / 4, 1);
                    let r = measure(&f, op, threads, ops, rounds);
                    format!("{:.0} ({:.1})", r.ns_per_op, r.mops)
                })
                .collect();
            println!("| {entries:>7} | {threads:>7} | {} |", cells.join(" | "));
        }
        let u = f.store.usage(None);
        assert_eq!(u.entries as usize, entries, "every key still stored");
        assert_eq!(u.evictions, 0, "the bound held every entry");
    }
    revocation_checks(ops, rounds);
}

/// The check every ticket decryption makes: is this ticket revoked? Keys are drawn at random,
/// half of them revoked (when any are), then only from those not revoked; the 2-thread figure
/// is latency as one thread sees it.
fn revocation_checks(ops: usize, rounds: usize) {
    use snicache::engine::policy::Policy;
    use snicache::engine::vhosts::{VHostOptions, VHosts};
    use snicache::engine::Engine;

    println!();
    println!("ticket revocation check (memory store; revocations kept apart from the sessions)");
    println!("median of {rounds} rounds x {ops} checks per thread; `revoked` = the store's lookup of a revocation key;");
    println!(
        "engine = the whole check of a decrypted ticket: revocation key from its identity + lookup"
    );
    println!("engine, not revoked = the same, only tickets that are not revoked (the common case)");
    println!();
    println!(
        "| tickets revoked | threads | revoked ns/op | engine ns/op | engine, not revoked ns/op |"
    );
    println!("|--------:|--------:|---:|---:|---:|");
    let now = 1_000;
    for revoked in [0usize, 1_000, 100_000] {
        let mut v = VHosts::default();
        v.add(
            "a.test",
            1,
            VHostOptions {
                timeout: 300,
                is_default: true,
                single_use: false,
                allow_no_ems: false,
                no_store: false,
            },
        )
        .expect("vhost");
        let store = MemoryStore::new(1 << 30, 1 << 20, 1);
        let engine = Engine::new(v, Policy::default(), Box::new(store), false, None);
        let mut rng = Rng(0xfeed ^ revoked as u64);
        let ids: Vec<[u8; 16]> = (0..(2 * revoked).max(1024))
            .map(|_| {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&rng.next().to_le_bytes());
                id[8..].copy_from_slice(&rng.next().to_le_bytes());
                id
            })
            .collect();
        let keys: Vec<Key> = ids.iter().map(|id| engine.revocation_key(0, id)).collect();
        for k in keys.iter().take(revoked) {
            engine
                .store
                .revoke(*k, Value::new(b"revoked".to_vec()), u64::MAX)
                .expect("revoke");
        }
        for threads in [1usize, 2] {
            // `fresh`: only tickets that are not revoked, the common case.
            let run = |whole: bool, fresh: bool| {
                let mut per_op = Vec::new();
                for round in 0..=rounds {
                    let mut r = Rng(0x77 + round as u64);
                    // Identities and keys copied out in check order, as the main benchmark does:
                    // a decrypted ticket's identity is at hand, not a random read of a fixture.
                    let from = if fresh { revoked } else { 0 };
                    let picks: Vec<usize> =
                        (0..ops).map(|_| from + r.below(ids.len() - from)).collect();
                    let (ids, keys): (Vec<[u8; 16]>, Vec<Key>) =
                        picks.iter().map(|&i| (ids[i], keys[i])).unzip();
                    let barrier = Barrier::new(threads);
                    let wall = std::thread::scope(|s| {
                        let hs: Vec<_> = (0..threads)
                            .map(|_| {
                                let (barrier, e, ids, keys) = (&barrier, &engine, &ids, &keys);
                                s.spawn(move || {
                                    barrier.wait();
                                    let start = Instant::now();
                                    let mut found = 0usize;
                                    for (id, key) in ids.iter().zip(keys) {
                                        let hit = if whole {
                                            e.ticket_revoked(0, id, now)
                                        } else {
                                            e.store.revoked(key, now)
                                        };
                                        found += usize::from(black_box(hit));
                                    }
                                    black_box(found);
                                    start.elapsed().as_nanos()
                                })
                            })
                            .collect();
                        hs.into_iter()
                            .map(|h| h.join().expect("thread"))
                            .max()
                            .unwrap_or(0)
                    });
                    if round > 0 {
                        per_op.push(wall as f64 / ops as f64);
                    }
                }
                median(per_op)
            };
            let (lookup, whole) = (run(false, false), run(true, false));
            let fresh = run(true, true);
            println!("| {revoked:>7} | {threads:>7} | {lookup:.0} | {whole:.0} | {fresh:.0} |");
        }
    }
}
