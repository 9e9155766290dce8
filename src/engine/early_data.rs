//! 0-RTT accepted at most once (RFC 8446 §8, rule R6). When the host accepts early data
//! (`snicache_config_set_early_data`), every TLS 1.3 ticket issued puts a single-use entry in
//! the store, keyed by a digest of the ticket's identity; a ClientHello that offers early data
//! under a ticket takes that entry, and early data is accepted only when the take removed it.
//! The store's take is atomic (memory and shm remove under their lock; Redis `DEL` answers 1
//! for one caller only), so one ticket's early data is accepted once across workers, and across
//! servers sharing Redis; every later attempt resumes in 1-RTT with its early data rejected.

use sha2::{Digest, Sha256};

use super::handshake::Conn;
use super::stats::Event;
use super::Engine;
use crate::store::{Key, Value};

/// The TLS 1.3 protocol version number: only TLS 1.3 has early data.
const TLS1_3: u16 = 0x0304;

/// The store key of a ticket's single-use entry: a domain-separated digest of its identity
/// (the bytes that identify one ticket: its sealed session on BoringSSL, its resumption secret
/// on OpenSSL), so it never collides with a session id.
fn entry_key(vhost: u32, identity: &[u8]) -> Key {
    let mut h = Sha256::new();
    h.update(b"snicache early data v1\0");
    h.update(identity);
    Key::new(vhost, &h.finalize()).expect("a 32-byte digest is a valid id")
}

impl Engine {
    /// A ticket with the identity `identity` was issued on this connection, which negotiated
    /// `version`: with early data on, in TLS 1.3, its single-use entry goes into the store.
    pub fn early_data_ticket_issued(&self, conn: &Conn, version: u16, identity: &[u8], now: u64) {
        if self.early_data && version == TLS1_3 {
            self.early_data_issue(conn.vhost, identity, now);
        }
    }

    /// Whether the early data of this connection, resuming under the ticket `identity`, is
    /// accepted: without `early_data` (the host's business then) always; with it, only by the
    /// connection whose take removed the ticket's entry (`early_data_take`).
    pub fn early_data_allowed(&self, conn: &Conn, identity: &[u8]) -> bool {
        !self.early_data || self.early_data_take(conn.vhost, identity)
    }

    /// As `early_data_allowed` on a host that decides while opening the ticket (BoringSSL):
    /// true when the ClientHello offered early data that is refused (a replay).
    pub fn early_data_replayed(&self, conn: &Conn, identity: &[u8]) -> bool {
        self.early_data && conn.early_data_offered && !self.early_data_take(conn.vhost, identity)
    }

    /// A ticket that allows early data was issued under `vhost` at `now`: its single-use entry
    /// lives as long as the vhost's sessions.
    pub fn early_data_issue(&self, vhost: u32, identity: &[u8], now: u64) {
        if identity.is_empty() {
            return;
        }
        let lifetime = self
            .vhosts
            .get(vhost)
            .options
            .timeout
            .min(super::policy::MAX_LIFETIME);
        let expires = now + u64::from(lifetime);
        if self
            .store
            .put(entry_key(vhost, identity), Value::new(vec![1]), expires)
            .is_err()
        {
            // Without its entry the ticket's early data is rejected: safe, only slower.
            self.stats.count(vhost, Event::StoreError);
        }
    }

    /// A ClientHello offers early data under the ticket `identity`: true (counted as
    /// `early_data_accepted`) for the one caller whose take removed the entry, false (counted as
    /// `early_data_replayed`) for every other: the host then rejects the early data.
    pub fn early_data_take(&self, vhost: u32, identity: &[u8]) -> bool {
        let taken = !identity.is_empty() && self.store.take(&entry_key(vhost, identity));
        self.stats.count(
            vhost,
            if taken {
                Event::EarlyDataAccepted
            } else {
                Event::EarlyDataReplayed
            },
        );
        if !taken {
            self.log(super::Level::Info, || {
                format!(
                    "early data refused on {}: this ticket's early data was already used (replay)",
                    self.vhosts.get(vhost).name
                )
            });
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::policy::Policy;
    use crate::engine::vhosts::{VHostOptions, VHosts};
    use crate::store::memory::MemoryStore;

    #[test]
    fn early_data_is_taken_once() {
        let mut vhosts = VHosts::default();
        let options = VHostOptions {
            timeout: 300,
            is_default: true,
            single_use: false,
            allow_no_ems: false,
            no_store: false,
        };
        vhosts.add("a.test", 0, options).unwrap();
        let engine = Engine::new(
            vhosts,
            Policy::default(),
            Box::new(MemoryStore::new(1 << 20, 0, 1)),
            false,
            None,
        );
        engine.early_data_issue(0, b"ticket one", 1000);
        assert!(engine.early_data_take(0, b"ticket one"));
        assert!(!engine.early_data_take(0, b"ticket one"));
        assert!(!engine.early_data_take(0, b"never issued"));
        let s = engine.snapshot(None);
        assert_eq!((s.early_data_accepted, s.early_data_replayed), (1, 2));
    }
}
