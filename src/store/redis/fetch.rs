//! Background fetches for hosts that pause the handshake (`get_async`): the queue, the fetcher
//! threads' loop, the wakers of waiting handshakes and the answers kept for their retries.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::pool::Pool;
use super::remote::Remote;
use super::{unix_now, RedisStore};
use crate::store::{Key, Lookup, Store, Value};

/// Threads running background fetches.
pub(super) const FETCHERS: usize = 2;
/// Background fetches queued or running at once; more answer `Unavailable`.
const MAX_FETCHES: usize = 1024;
/// Finished fetches kept for the retries that ask for them, and for how long.
const MAX_DONE: usize = 4096;
const DONE_TTL: Duration = Duration::from_secs(2);

/// The end of one Redis lookup.
pub(super) enum Done {
    /// The record and when it expires.
    Found(Value, u64),
    Missing,
    /// Timed out, failed, or skipped.
    Failed,
}

/// Background fetches: queued keys with their deadlines, the wakers of the handshakes waiting
/// for each key, and finished answers waiting for those handshakes' retries.
#[derive(Default)]
pub(super) struct FetchState {
    pub(super) queue: VecDeque<(Key, Instant)>,
    pub(super) waiting: HashMap<Key, Vec<Waker>>,
    pub(super) done: HashMap<Key, (Instant, Done)>,
    pub(super) closing: bool,
}

#[derive(Default)]
pub(super) struct Fetches {
    pub(super) state: Mutex<FetchState>,
    pub(super) queued: Condvar,
}

impl Fetches {
    /// One fetcher thread: takes queued keys until the store closes, asks Redis for each
    /// within what is left of its deadline, keeps the answer and wakes whoever waits for it.
    pub(super) fn run(&self, remote: &Remote, pool: &Pool) {
        loop {
            let (key, deadline) = {
                let mut s = self.state.lock();
                loop {
                    if s.closing {
                        return;
                    }
                    if let Some(job) = s.queue.pop_front() {
                        break job;
                    }
                    self.queued.wait(&mut s);
                }
            };
            let done = remote.lookup(pool, &key, unix_now(), deadline);
            let wakers = {
                let mut s = self.state.lock();
                let now = Instant::now();
                if s.done.len() >= MAX_DONE {
                    s.done.retain(|_, (until, _)| *until > now);
                    if s.done.len() >= MAX_DONE {
                        s.done.clear();
                    }
                }
                s.done.insert(key, (now + DONE_TTL, done));
                s.waiting.remove(&key).unwrap_or_default()
            };
            for w in wakers {
                w.wake();
            }
        }
    }
}

impl RedisStore {
    /// The answer of a finished background fetch for `key`, if one is waiting. A found record
    /// moves to the local tier; other answers stay for further retries until they expire.
    pub(super) fn finished(&self, s: &mut FetchState, key: &Key, now: u64) -> Option<Lookup> {
        let (until, done) = s.done.remove(key)?;
        if until <= Instant::now() {
            return None;
        }
        Some(match done {
            Done::Found(value, expires_at) if expires_at > now => {
                let _ = self.local.put(*key, value.clone(), expires_at);
                Lookup::Hit(value)
            }
            Done::Found(..) => Lookup::Expired,
            Done::Missing => {
                s.done.insert(*key, (until, Done::Missing));
                Lookup::Miss
            }
            Done::Failed => {
                s.done.insert(*key, (until, Done::Failed));
                Lookup::Unavailable
            }
        })
    }

    /// The local-miss path with background fetching: a finished answer, or `Pending` with
    /// `waker` registered on the (new or running) fetch of `key`.
    pub(super) fn get_background(&self, f: &Fetches, key: &Key, now: u64, waker: &Waker) -> Lookup {
        let r = &self.remote;
        let mut s = f.state.lock();
        if let Some(answer) = self.finished(&mut s, key, now) {
            return answer;
        }
        if let Some(waiting) = s.waiting.get_mut(key) {
            if !waiting.iter().any(|w| w.will_wake(waker)) {
                waiting.push(waker.clone());
            }
            return Lookup::Pending;
        }
        // Capacity before the breaker: a half-open breaker lets exactly one caller probe, and
        // that caller must then run the probe.
        if s.waiting.len() >= MAX_FETCHES {
            r.counters.fetch_drops.fetch_add(1, Relaxed);
            return Lookup::Unavailable;
        }
        if !r.breaker.allow() {
            r.counters.breaker_skips.fetch_add(1, Relaxed);
            return Lookup::Unavailable;
        }
        s.waiting.insert(*key, vec![waker.clone()]);
        s.queue
            .push_back((*key, Instant::now() + r.options.async_budget));
        r.counters.fetches.fetch_add(1, Relaxed);
        drop(s);
        f.queued.notify_one();
        Lookup::Pending
    }
}
