//! Counters per virtual host (relaxed atomics: no lock on the handshake path), summed on read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Engine events counted per vhost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A session was handed back for resumption (session id or ticket).
    Hit,
    /// No session for the offered id.
    Miss,
    /// A session was stored.
    Store,
    /// The store refused or failed a put.
    StoreError,
    /// A stored record failed to decode (or the host could not decode its session).
    Corrupt,
    /// An offered id was unusable (over 32 bytes).
    BadId,
    /// A session was invalidated because its connection ended with a fatal alert.
    Invalidation,
    /// A session was removed because it is single-use.
    SingleUse,
    /// A ticket named a key this vhost does not have (another vhost's, or expired).
    TicketUnknownKey,
    /// A ticket failed authentication (forged, truncated or corrupted).
    TicketForged,
    /// A ticket sealed under a decrypt-only key was accepted and renewed.
    TicketRenewed,
    /// The store answered "pending"; the handshake was paused (or, where the host library
    /// cannot pause, went on as a full handshake).
    Pending,
}

const EVENTS: usize = 12;

/// Counters of one vhost: events, then one per policy rule.
pub struct VhostCounters {
    events: [AtomicU64; EVENTS],
    refusals: Box<[AtomicU64]>,
}

impl VhostCounters {
    fn new(rules: usize) -> VhostCounters {
        VhostCounters {
            events: Default::default(),
            refusals: (0..rules).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// Events that happen before a vhost is known.
#[derive(Default)]
pub struct ListenerCounters {
    pub malformed_sni: AtomicU64,
    pub unknown_sni: AtomicU64,
}

pub struct Stats {
    vhosts: Box<[VhostCounters]>,
    pub listener: ListenerCounters,
}

impl Stats {
    pub fn new(vhosts: usize, rules: usize) -> Stats {
        Stats {
            vhosts: (0..vhosts).map(|_| VhostCounters::new(rules)).collect(),
            listener: ListenerCounters::default(),
        }
    }

    pub fn count(&self, vhost: u32, event: Event) {
        self.vhosts[vhost as usize].events[event as usize].fetch_add(1, Relaxed);
    }

    pub fn refuse(&self, vhost: u32, rule: usize) {
        self.vhosts[vhost as usize].refusals[rule].fetch_add(1, Relaxed);
    }

    fn sum(&self, vhost: Option<u32>, read: impl Fn(&VhostCounters) -> u64) -> u64 {
        match vhost {
            Some(v) => read(&self.vhosts[v as usize]),
            None => self.vhosts.iter().map(read).sum(),
        }
    }

    /// An event's count for one vhost, or all with `None`.
    pub fn event(&self, vhost: Option<u32>, event: Event) -> u64 {
        self.sum(vhost, |c| c.events[event as usize].load(Relaxed))
    }

    /// Refusals by one rule.
    pub fn refusals(&self, vhost: Option<u32>, rule: usize) -> u64 {
        self.sum(vhost, |c| c.refusals[rule].load(Relaxed))
    }

    /// Refusals by every rule.
    pub fn all_refusals(&self, vhost: Option<u32>) -> u64 {
        self.sum(vhost, |c| c.refusals.iter().map(|r| r.load(Relaxed)).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_vhosts() {
        let s = Stats::new(2, 3);
        s.count(0, Event::Hit);
        s.count(1, Event::Hit);
        s.count(1, Event::Miss);
        s.refuse(0, 2);
        s.refuse(1, 2);
        s.refuse(1, 0);
        assert_eq!(s.event(None, Event::Hit), 2);
        assert_eq!(s.event(Some(1), Event::Miss), 1);
        assert_eq!(s.event(Some(0), Event::Miss), 0);
        assert_eq!(s.refusals(None, 2), 2);
        assert_eq!(s.all_refusals(Some(1)), 2);
        assert_eq!(s.all_refusals(None), 3);
    }
}
