//! Fork safety: what one process owns (the writer, fetcher, resolver and subscriber threads, the
//! queue and the lookup connections), made on first use in each process, and the copies
//! inherited from an ancestor process, which are forgotten, never freed.

use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed},
};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;

use super::bus;
use super::fetch::{Fetches, FETCHERS};
use super::pool::{
    ask_sentinels, resolve, Pool, Resolve, RESOLVE_EVERY, RESOLVE_RETRY, SENTINEL_EVERY,
    SENTINEL_RETRY,
};
use super::remote::{Host, Remote};
use super::writer::{Op, Writer};
use super::RedisStore;
use crate::store::memory::MemoryStore;

/// Bumped in the child of every fork (`pthread_atfork`): per-process state made under another
/// generation belongs to an ancestor process.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn forked_child() {
    FORK_GENERATION.fetch_add(1, Relaxed);
}

pub(super) fn watch_forks() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only bumps an atomic (async-signal-safe); glibc
        // unregisters it if this library is unloaded.
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    });
}

/// What one process owns: the writer thread and its queue, the fetcher threads with their
/// fetches, and the lookup connections. Made on the first use in a process; freed by the
/// store's Drop in that process only.
pub(super) struct ProcessState {
    /// The fork generation it was made under.
    generation: u64,
    /// The next entry of `FORGOTTEN`, once this state is forgotten in a forked child.
    next_forgotten: AtomicPtr<ProcessState>,
    pub(super) pool: Arc<Pool>,
    pub(super) ops: Option<SyncSender<Op>>,
    pub(super) enqueued: AtomicU64,
    pub(super) done: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
    /// Resolves the host name, when the URL gives one.
    resolver: Option<JoinHandle<()>>,
    /// Background fetching, when `enable_async` turned it on and its threads started.
    pub(super) fetches: Option<Arc<Fetches>>,
    fetchers: Vec<JoinHandle<()>>,
    /// Applies the fleet's invalidations to the local tier (`bus.rs`).
    pub(super) subscriber: Option<bus::Subscriber>,
}

impl ProcessState {
    /// Starts the writer (and the fetchers when `background`). A thread that cannot start is
    /// reported through `notify`: without the writer, writes are dropped and counted; without
    /// fetchers, `get_async` asks Redis on the caller's thread within the budget.
    fn start(
        remote: &Arc<Remote>,
        local: &Arc<MemoryStore>,
        background: bool,
        generation: u64,
    ) -> ProcessState {
        let pool = Arc::new(Pool::default());
        let (tx, rx) = sync_channel(remote.options.queue);
        let mut state = ProcessState {
            generation,
            next_forgotten: AtomicPtr::new(std::ptr::null_mut()),
            pool: pool.clone(),
            ops: Some(tx),
            enqueued: AtomicU64::new(0),
            done: Arc::new(AtomicU64::new(0)),
            closing: Arc::new(AtomicBool::new(false)),
            writer: None,
            resolver: None,
            fetches: None,
            fetchers: Vec::new(),
            subscriber: bus::Subscriber::start(remote, local, &pool),
        };
        let resolver: Option<Box<Resolve>> = match &remote.host {
            Host::Fixed(_) => None,
            Host::Name(name, port) => {
                let (name, port) = (name.clone(), *port);
                Some(Box::new(move || resolve(&name, port)))
            }
            Host::Sentinel(sentinels, master) => {
                let (sentinels, master) = (sentinels.clone(), master.clone());
                Some(Box::new(move || ask_sentinels(&sentinels, &master)))
            }
        };
        let (every, retry) = match remote.host {
            Host::Sentinel(..) => (SENTINEL_EVERY, SENTINEL_RETRY),
            _ => (RESOLVE_EVERY, RESOLVE_RETRY),
        };
        if let Some(resolver) = resolver {
            let (p, r) = (pool.clone(), remote.clone());
            // A new address (a failover): connections to the old one are dropped (generation)
            // and an open breaker probes the new one at once.
            let changed = move || r.breaker.probe_now();
            match std::thread::Builder::new()
                .name("snicache-redis-resolve".into())
                .spawn(move || p.target.run(&*resolver, &changed, every, retry))
            {
                Ok(h) => state.resolver = Some(h),
                Err(e) => {
                    pool.target.state.lock().why = Some(format!("cannot start a thread: {e}"));
                    remote.warn(&format!("cannot start the resolver thread: {e}"));
                }
            }
        }
        let writer = Writer {
            remote: remote.clone(),
            pool: pool.clone(),
            conn: None,
        };
        let (c, d) = (state.closing.clone(), state.done.clone());
        match std::thread::Builder::new()
            .name("snicache-redis-writer".into())
            .spawn(move || writer.run(rx, c, d))
        {
            Ok(h) => state.writer = Some(h),
            Err(e) => {
                state.ops = None;
                remote.warn(&format!("cannot start the writer thread: {e}"));
            }
        }
        if background {
            let fetches = Arc::new(Fetches::default());
            for i in 0..FETCHERS {
                let (f, r, p) = (fetches.clone(), remote.clone(), pool.clone());
                match std::thread::Builder::new()
                    .name(format!("snicache-redis-fetch-{i}"))
                    .spawn(move || f.run(&r, &p))
                {
                    Ok(h) => state.fetchers.push(h),
                    Err(e) => remote.warn(&format!("cannot start a fetcher thread: {e}")),
                }
            }
            // Set even when only some started, so Drop stops those.
            state.fetches = Some(fetches);
            if state.fetchers.is_empty() {
                state.stop_fetchers();
                state.fetches = None;
            }
        }
        state
    }

    fn stop_fetchers(&mut self) {
        // Fetches still queued are given up; their wakers are dropped unwoken (no handshake
        // can outlive the cache, so none is still waiting).
        if let Some(f) = &self.fetches {
            f.state.lock().closing = true;
            f.queued.notify_all();
        }
        for h in self.fetchers.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for ProcessState {
    fn drop(&mut self) {
        // Queued writes are given up: waiting for them could take a timeout each.
        self.closing.store(true, Relaxed);
        self.ops = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        self.stop_fetchers();
        if let Some(r) = self.resolver.take() {
            self.pool.target.state.lock().closing = true;
            self.pool.target.wake.notify_all();
            let _ = r.join();
        }
    }
}

/// States made in ancestor processes, forgotten in this one (see `forget`): kept reachable from
/// here, so leak checkers count them as still in use rather than lost.
static FORGOTTEN: AtomicPtr<ProcessState> = AtomicPtr::new(std::ptr::null_mut());

/// Leaves `state`, made in an ancestor process, alone for good: its threads do not exist in
/// this process and its locks may have been held at fork time, so it is never dropped (one
/// copy per store per fork; nothing in it is used again).
fn forget(state: *mut ProcessState) {
    let mut head = FORGOTTEN.load(Relaxed);
    loop {
        // SAFETY: `state` is a leaked box that is never freed.
        unsafe { (*state).next_forgotten.store(head, Relaxed) };
        match FORGOTTEN.compare_exchange_weak(head, state, AcqRel, Relaxed) {
            Ok(_) => return,
            Err(now) => head = now,
        }
    }
}

impl RedisStore {
    /// This process's state, made on first use (and after a fork). No lock: one atomic load
    /// of the fork generation and one of the pointer.
    pub(super) fn process(&self) -> &ProcessState {
        let seen = self.process.load(Acquire);
        // SAFETY: a non-null `self.process` is a box from `start_process`, freed only by Drop
        // (`&mut self`) and replaced only after a fork, the old one being forgotten, never
        // freed: it outlives `&self`.
        match unsafe { seen.as_ref() } {
            Some(p) if p.generation == FORK_GENERATION.load(Relaxed) => p,
            _ => self.start_process(seen),
        }
    }

    /// Makes and installs this process's state in place of `seen` (null, or an ancestor's).
    /// Threads racing here each start one; all but the first stop theirs again.
    #[cold]
    fn start_process(&self, mut seen: *mut ProcessState) -> &ProcessState {
        let generation = FORK_GENERATION.load(Relaxed);
        if !seen.is_null() {
            // Made before a fork, in a process that may have been probing Redis: this one
            // starts its own probe.
            self.remote.breaker.probing.store(false, Relaxed);
        }
        let fresh = Box::into_raw(Box::new(ProcessState::start(
            &self.remote,
            &self.local,
            self.background,
            generation,
        )));
        loop {
            match self.process.compare_exchange(seen, fresh, AcqRel, Acquire) {
                Ok(_) => {
                    // `seen` (if any) belongs to an ancestor process.
                    if !seen.is_null() {
                        forget(seen);
                    }
                    // SAFETY: `fresh` is the box just installed; only Drop frees it.
                    return unsafe { &*fresh };
                }
                Err(now) => {
                    // SAFETY: as in `process`.
                    if let Some(p) = unsafe { now.as_ref() } {
                        if p.generation == generation {
                            // Another thread of this process got there first.
                            // SAFETY: `fresh` was never shared.
                            drop(unsafe { Box::from_raw(fresh) });
                            return p;
                        }
                    }
                    seen = now;
                }
            }
        }
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        let p = *self.process.get_mut();
        // SAFETY: as in `process`; the box is freed here, once, by the process that made it.
        match unsafe { p.as_ref() } {
            None => {}
            Some(s) if s.generation == FORK_GENERATION.load(Relaxed) => {
                drop(unsafe { Box::from_raw(p) })
            }
            // Made in an ancestor process and never replaced here.
            Some(_) => forget(p),
        }
    }
}
