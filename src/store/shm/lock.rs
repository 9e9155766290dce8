//! The shard lock: one `AtomicU64` in the mapping, 0 when free, else the holder's thread id in
//! the high half and a generation in the low half. It is ours, not a pthread mutex, so no byte
//! of the mapping is ever interpreted by libc: any value the word can hold is handled here.
//! A holder that died is found with `kill(tid, 0)` (ESRCH) and its lock taken over; a word
//! naming no possible thread is garbage and taken over at once; a word that stays the same for
//! `STUCK` (garbage naming a live process, or a holder stopped by a debugger) is broken. Waits
//! are bounded on CLOCK_MONOTONIC (`Instant`). Owns nothing else of the mapping.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long one word may stay unchanged while others wait before it is broken.
pub(super) const STUCK: Duration = Duration::from_millis(200);
/// Linux never hands out a thread id above this (PID_MAX_LIMIT).
const TID_MAX: u64 = 1 << 22;

/// How the lock was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taken {
    /// It was free.
    Free,
    /// Its holder had died.
    FromDead,
    /// The word was garbage, or stuck for `STUCK`: the shard may be inconsistent.
    Broken,
}

/// What one process remembers of a word it timed out on, to notice a stuck one.
#[derive(Default)]
pub(super) struct StuckNote {
    word: AtomicU64,
    since: AtomicU64,
}

/// Forks seen by this process (bumped in the child), so a thread's cached id is re-read in a
/// forked child, where the thread has another id.
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn forked() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// This thread's id, cached: a system call per lock would cost more than the lock.
fn tid() -> u64 {
    static HOOK: std::sync::Once = std::sync::Once::new();
    thread_local!(static CACHED: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((u64::MAX, 0)) });
    HOOK.call_once(|| {
        // SAFETY: registers a child handler that only bumps an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(forked)) };
    });
    let forks = FORKS.load(Ordering::Relaxed);
    CACHED.with(|c| {
        let (seen, id) = c.get();
        if seen == forks {
            return id;
        }
        // SAFETY: gettid has no preconditions.
        let id = (unsafe { libc::syscall(libc::SYS_gettid) }) as u64;
        c.set((forks, id));
        id
    })
}

fn alive(tid: u64) -> bool {
    // SAFETY: signal 0 only checks that the thread exists (tid is in 1..TID_MAX).
    let rc = unsafe { libc::kill(tid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// This thread's next lock word: its tid and a generation never 0, so no two acquisitions
/// write the same word and a late unlock cannot free a lock taken over since.
fn next_word() -> u64 {
    static GEN: AtomicU32 = AtomicU32::new(0);
    let g = GEN.fetch_add(1, Ordering::Relaxed).max(1);
    tid() << 32 | u64::from(g)
}

fn since_start(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

/// Takes the lock in `word`, waiting at most `timeout`. Returns the word written (to unlock
/// with) and how it was taken, or `None` on a timeout.
pub(super) fn acquire(
    word: &AtomicU64,
    timeout: Duration,
    note: &StuckNote,
    epoch: Instant,
) -> Option<(u64, Taken)> {
    let me = next_word();
    let mine = me >> 32;
    let mut start = None;
    let mut tries = 0u32;
    loop {
        let cur = word.load(Ordering::Relaxed);
        let taken = if cur == 0 {
            Some(Taken::Free)
        } else {
            let holder = cur >> 32;
            if holder == 0 || holder >= TID_MAX || holder == mine {
                // No thread has this id, or it is this thread, which never holds two locks.
                Some(Taken::Broken)
            } else if tries % 16 == 15 && !alive(holder) {
                Some(Taken::FromDead)
            } else {
                None
            }
        };
        if let Some(how) = taken {
            if word
                .compare_exchange(cur, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Some((me, how));
            }
            continue;
        }
        let started = *start.get_or_insert_with(Instant::now);
        if started.elapsed() >= timeout {
            let now = since_start(epoch);
            if note.word.load(Ordering::Relaxed) == cur {
                let first = note.since.load(Ordering::Relaxed);
                if now.saturating_sub(first) >= STUCK.as_nanos() as u64
                    && word
                        .compare_exchange(cur, me, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    note.word.store(0, Ordering::Relaxed);
                    return Some((me, Taken::Broken));
                }
            } else {
                note.word.store(cur, Ordering::Relaxed);
                note.since.store(now, Ordering::Relaxed);
            }
            return None;
        }
        tries += 1;
        if tries < 64 {
            std::hint::spin_loop();
        } else if tries < 128 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

/// Frees the lock if it still holds `me`; false when it was taken over (or scribbled on)
/// meanwhile, which the caller counts.
pub(super) fn release(word: &AtomicU64, me: u64) -> bool {
    word.compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_garbage_and_dead_holders() {
        let epoch = Instant::now();
        let note = StuckNote::default();
        let w = AtomicU64::new(0);
        let (me, how) = acquire(&w, Duration::from_millis(5), &note, epoch).unwrap();
        assert_eq!(how, Taken::Free);
        assert!(release(&w, me));
        assert!(!release(&w, me), "a released word is not released twice");
        for garbage in [u64::MAX, 1, 0xa5a5_a5a5_a5a5_a5a5, tid() << 32 | 7] {
            w.store(garbage, Ordering::Relaxed);
            let (me, how) = acquire(&w, Duration::from_millis(5), &note, epoch).unwrap();
            assert_eq!(how, Taken::Broken, "{garbage:#x}");
            assert!(release(&w, me));
        }
        // A child that exits: its tid is free (ESRCH) once reaped.
        // SAFETY: the child only exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: leaving the forked child at once.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: our child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        w.store((pid as u64) << 32 | 3, Ordering::Relaxed);
        let (_, how) = acquire(&w, Duration::from_millis(50), &note, epoch).unwrap();
        assert_eq!(how, Taken::FromDead);
    }

    #[test]
    fn a_live_but_stuck_word_is_broken_after_stuck() {
        let epoch = Instant::now();
        let note = StuckNote::default();
        // Process 1 is alive and never takes our locks.
        let w = AtomicU64::new(1 << 32 | 9);
        let t0 = Instant::now();
        let mut timeouts = 0;
        let how = loop {
            match acquire(&w, Duration::from_millis(2), &note, epoch) {
                Some((_, how)) => break how,
                None => timeouts += 1,
            }
            assert!(t0.elapsed() < Duration::from_secs(5));
        };
        assert_eq!(how, Taken::Broken);
        assert!(timeouts > 0 && t0.elapsed() >= STUCK);
    }

    #[test]
    fn a_forked_child_has_its_own_id() {
        let parent = tid();
        // SAFETY: the child only compares ids and leaves with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: getpid has no preconditions; _exit leaves the child at once.
            let ok = tid() == unsafe { libc::getpid() } as u64 && tid() != parent;
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(tid(), parent);
    }
}
