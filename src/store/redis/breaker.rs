//! The circuit breaker: after a few consecutive failures Redis is skipped for a while, then one
//! call probes it. Shared by lookups, the writer and `take`; per process after a fork.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Consecutive failures that open the circuit breaker.
const BREAKER_THRESHOLD: u32 = 3;

/// Stops calling Redis after `BREAKER_THRESHOLD` consecutive failures, for `backoff`; then lets
/// one call through as a probe, which closes it on success or opens it again on failure.
pub(super) struct Breaker {
    pub(super) failures: AtomicU32,
    /// Milliseconds since `epoch` until which Redis is skipped; 0 when closed.
    pub(super) open_until: AtomicU64,
    pub(super) probing: AtomicBool,
    pub(super) backoff: Duration,
    pub(super) epoch: Instant,
}

impl Breaker {
    pub(super) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether a call may go to Redis now (in half-open state only the first caller may).
    pub(super) fn allow(&self) -> bool {
        let until = self.open_until.load(Relaxed);
        until == 0
            || (self.now_ms() >= until
                && self
                    .probing
                    .compare_exchange(false, true, Relaxed, Relaxed)
                    .is_ok())
    }

    /// True when this success closed an open breaker.
    pub(super) fn success(&self) -> bool {
        self.failures.store(0, Relaxed);
        self.probing.store(false, Relaxed);
        self.open_until.swap(0, Relaxed) != 0
    }

    /// True when this failure opened the breaker (from closed).
    pub(super) fn failure(&self) -> bool {
        let until = self.now_ms() + self.backoff.as_millis() as u64;
        if self.probing.swap(false, Relaxed) {
            self.open_until.store(until, Relaxed);
            return false;
        }
        let n = self.failures.fetch_add(1, Relaxed) + 1;
        n >= BREAKER_THRESHOLD
            && self
                .open_until
                .compare_exchange(0, until, Relaxed, Relaxed)
                .is_ok()
    }

    /// An open breaker lets the next call probe now (Redis moved).
    pub(super) fn probe_now(&self) {
        let until = self.open_until.load(Relaxed);
        if until != 0 {
            let _ = self.open_until.compare_exchange(until, 1, Relaxed, Relaxed);
        }
    }

    pub(super) fn state(&self) -> u64 {
        match self.open_until.load(Relaxed) {
            0 => 0,
            until if self.now_ms() < until => 1,
            _ => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_failures_and_probes_once() {
        let b = Breaker {
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            backoff: Duration::from_millis(30),
            epoch: Instant::now(),
        };
        assert!(b.allow());
        assert!(!b.failure());
        assert!(!b.failure());
        assert!(b.failure(), "third failure opens");
        assert_eq!(b.state(), 1);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.state(), 2);
        assert!(b.allow(), "one probe");
        assert!(!b.allow(), "only one");
        assert!(!b.failure(), "a failed probe reopens without a new trip");
        assert_eq!(b.state(), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        assert!(b.success(), "a good probe closes");
        assert_eq!(b.state(), 0);
        assert!(b.allow() && b.allow());
    }
}
