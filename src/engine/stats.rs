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
    /// Early data accepted: this ClientHello took its ticket's single-use entry.
    EarlyDataAccepted,
    /// Early data refused: the ticket's single-use entry was gone (a replay).
    EarlyDataReplayed,
}

const EVENTS: usize = 14;

/// Events counted before a vhost is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerEvent {
    MalformedSni,
    UnknownSni,
    /// A second ClientHello (after HelloRetryRequest) named another server than the first.
    HrrSniChanged,
}
const LISTENER_EVENTS: usize = 3;

/// Counter cells: per vhost its events then one per policy rule, then the listener's. Owned by
/// the process, or in a shared mapping (the shm store's) so every worker counts in one place.
pub type Cells = Box<dyn AsRef<[AtomicU64]> + Send + Sync>;

pub struct Stats {
    cells: Cells,
    vhosts: usize,
    stride: usize,
}

impl Stats {
    pub fn new(vhosts: usize, rules: usize) -> Stats {
        let cells: Box<[AtomicU64]> = (0..Stats::cells_needed(vhosts, rules))
            .map(|_| AtomicU64::new(0))
            .collect();
        Stats::with_cells(vhosts, rules, Box::new(cells)).expect("sized by cells_needed")
    }

    /// How many cells `with_cells` needs.
    pub fn cells_needed(vhosts: usize, rules: usize) -> usize {
        vhosts * (EVENTS + rules) + LISTENER_EVENTS
    }

    /// Stats kept in `cells` (for example shared memory); `None` when there are too few.
    pub fn with_cells(vhosts: usize, rules: usize, cells: Cells) -> Option<Stats> {
        if (*cells).as_ref().len() < Stats::cells_needed(vhosts, rules) {
            return None;
        }
        Some(Stats {
            cells,
            vhosts,
            stride: EVENTS + rules,
        })
    }

    fn cell(&self, i: usize) -> &AtomicU64 {
        &(*self.cells).as_ref()[i]
    }

    pub fn count(&self, vhost: u32, event: Event) {
        self.cell(vhost as usize * self.stride + event as usize)
            .fetch_add(1, Relaxed);
    }

    /// Takes back one `count` of this connection's (a hit on a connection that then failed).
    pub fn uncount(&self, vhost: u32, event: Event) {
        self.cell(vhost as usize * self.stride + event as usize)
            .fetch_sub(1, Relaxed);
    }

    pub fn refuse(&self, vhost: u32, rule: usize) {
        self.cell(vhost as usize * self.stride + EVENTS + rule)
            .fetch_add(1, Relaxed);
    }

    pub fn count_listener(&self, event: ListenerEvent) {
        self.cell(self.vhosts * self.stride + event as usize)
            .fetch_add(1, Relaxed);
    }

    pub fn listener(&self, event: ListenerEvent) -> u64 {
        self.cell(self.vhosts * self.stride + event as usize)
            .load(Relaxed)
    }

    fn sum(&self, vhost: Option<u32>, read: impl Fn(usize) -> u64) -> u64 {
        match vhost {
            Some(v) => read(v as usize * self.stride),
            // Wrapping: shared cells may hold anything another process wrote there.
            None => (0..self.vhosts).fold(0u64, |a, v| a.wrapping_add(read(v * self.stride))),
        }
    }

    /// An event's count for one vhost, or all with `None`.
    pub fn event(&self, vhost: Option<u32>, event: Event) -> u64 {
        self.sum(vhost, |row| self.cell(row + event as usize).load(Relaxed))
    }

    /// Refusals by one rule.
    pub fn refusals(&self, vhost: Option<u32>, rule: usize) -> u64 {
        self.sum(vhost, |row| self.cell(row + EVENTS + rule).load(Relaxed))
    }

    /// Refusals by every rule.
    pub fn all_refusals(&self, vhost: Option<u32>) -> u64 {
        self.sum(vhost, |row| {
            (EVENTS..self.stride).fold(0u64, |a, i| {
                a.wrapping_add(self.cell(row + i).load(Relaxed))
            })
        })
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
        s.count_listener(ListenerEvent::UnknownSni);
        assert_eq!(s.listener(ListenerEvent::UnknownSni), 1);
        assert_eq!(s.listener(ListenerEvent::MalformedSni), 0);
        assert_eq!(s.event(None, Event::Hit), 2);
    }

    #[test]
    fn too_few_cells_are_refused() {
        let cells: Box<[AtomicU64]> = (0..Stats::cells_needed(2, 3) - 1)
            .map(|_| AtomicU64::new(0))
            .collect();
        assert!(Stats::with_cells(2, 3, Box::new(cells)).is_none());
    }
}
