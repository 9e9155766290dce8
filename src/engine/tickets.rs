//! Stateless tickets: the record each one carries (vhost, SNI, session facts and a random
//! identity for revocation), BoringSSL's sealed format (key name, then the record and session
//! under AES-256-GCM), the key lookup OpenSSL's ticket key callback asks for, and the decision a
//! ticket gets. How each attempt ends, and what it counts: `decision.rs`.

use std::sync::Arc;

use super::decision::{Decision, Reason, Resume};
use super::handshake::{Conn, HostFacts, NewSession, TicketRef};
use super::Engine;
use crate::crypto::ticket_keys::{TicketKey, TicketKeys, NAME_LEN};
use crate::crypto::{self, NONCE_LEN, TAG_LEN};
use crate::record::{self, TICKET_ID_LEN};
use crate::store::Key;

/// Bytes a sealed (BoringSSL) ticket adds to its record and session: key name, nonce, tag.
pub(crate) const SEAL_OVERHEAD: usize = NAME_LEN + NONCE_LEN + TAG_LEN;

impl Engine {
    /// The record to seal into a stateless ticket issued on this connection (OpenSSL app data,
    /// BoringSSL's sealed prefix): the session's facts and a fresh random identity, remembered
    /// on the connection so a fatal alert on it revokes the ticket.
    pub fn ticket_appdata(&self, conn: &mut Conn, s: &NewSession<'_>) -> Vec<u8> {
        let mut id = [0u8; TICKET_ID_LEN];
        crypto::random(&mut id);
        let meta = self.meta(conn, s);
        let expires = meta.expires_at();
        let Ok(bytes) = record::encode_ticket(&meta, &id, &[]) else {
            return Vec::new();
        };
        let key = self.revocation_key(conn.vhost, &id);
        conn.ticket_issued((key, expires));
        bytes
    }

    /// The store key of a ticket's revocation entry: the vhost and the ticket's sealed identity.
    /// The identity is 16 random bytes drawn for that ticket alone, never any of its secrets:
    /// who reads the store learns nothing that opens or forges a ticket, nor which ticket on the
    /// wire it belongs to (the identity travels sealed). No digest is needed, so the check a
    /// decrypted ticket gets is a copy and a lookup (`benches/store.rs`), and every server of a
    /// fleet derives the same key; the vhost is the store's scope (its name in Redis).
    /// Its layout (a tag, then the identity) is `store::revocations::key`'s.
    pub fn revocation_key(&self, vhost: u32, ticket_id: &[u8; TICKET_ID_LEN]) -> Key {
        crate::store::revocations::key(vhost, ticket_id)
    }

    /// Whether a ticket with this identity was revoked on this vhost (see `Store::revoked`).
    pub fn ticket_revoked(&self, vhost: u32, ticket_id: &[u8; TICKET_ID_LEN], now: u64) -> bool {
        self.store
            .revoked(&self.revocation_key(vhost, ticket_id), now)
    }

    /// OpenSSL's key lookup for a ticket it is about to decrypt: the key named `name` among
    /// this vhost's, and whether the ticket is renewed (its key only decrypts now; the renewal
    /// is counted when the ticket resumes). `None`: an unknown key, committed as a full
    /// handshake.
    pub fn ticket_key(
        &self,
        conn: &mut Conn,
        keys: &TicketKeys,
        name: &[u8],
        now: u64,
    ) -> Option<(Arc<TicketKey>, bool)> {
        let vhost = self.vhosts.get(conn.vhost);
        let found = keys.decrypting(vhost.index, &vhost.name, name, now);
        match &found {
            Some((_, renew)) => conn.ticket_renew = *renew,
            None => self.commit(conn, Decision::Full(Reason::TicketUnknownKey)),
        }
        found
    }

    /// Decides on a ticket the host library decrypted (OpenSSL), carrying `appdata` (`None`
    /// when it has none). Commit the decision once the host acted on it.
    pub fn check_ticket(
        &self,
        conn: &Conn,
        appdata: Option<&[u8]>,
        host: &HostFacts<'_>,
    ) -> Decision {
        let judged = appdata
            .ok_or(Reason::TicketWithoutRecord)
            .and_then(|a| self.judge_ticket(conn, a, host));
        match judged {
            Ok(used) => Decision::Resume(Resume::ticket(used, conn.ticket_renew, Vec::new(), 0)),
            Err(reason) => Decision::Full(reason),
        }
    }

    /// Seals a BoringSSL ticket: `plain` (this connection's ticket record, then the session;
    /// zeroized here) under this vhost's current key. The key name, then the sealed bytes.
    pub fn seal_ticket(
        &self,
        conn: &Conn,
        keys: &TicketKeys,
        mut plain: Vec<u8>,
        now: u64,
    ) -> Vec<u8> {
        let vhost = self.vhosts.get(conn.vhost);
        let key = keys.encrypting(vhost.index, &vhost.name, now);
        let sealed = crypto::seal(&key.aes, &key.name, &plain);
        crypto::zeroize(&mut plain);
        let mut out = Vec::with_capacity(NAME_LEN + sealed.len());
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a BoringSSL ticket sealed by `seal_ticket` with this vhost's keys and decides on
    /// it. A `Resume` carries the session to hand the library. Commit the decision once the
    /// host acted on it.
    pub fn open_ticket(
        &self,
        conn: &Conn,
        keys: &TicketKeys,
        ticket: &[u8],
        host: &HostFacts<'_>,
    ) -> Decision {
        if ticket.len() < SEAL_OVERHEAD {
            return Decision::Full(Reason::TicketForged);
        }
        let (name, sealed) = ticket.split_at(NAME_LEN);
        let vhost = self.vhosts.get(conn.vhost);
        let Some((key, renew)) = keys.decrypting(vhost.index, &vhost.name, name, host.now) else {
            return Decision::Full(Reason::TicketUnknownKey);
        };
        let Some(mut plain) = crypto::open(&key.aes, &key.name, sealed) else {
            return Decision::Full(Reason::TicketForged);
        };
        let Some(split) = record::split_appdata(&plain) else {
            crypto::zeroize(&mut plain);
            return Decision::Full(Reason::TicketWithoutRecord);
        };
        match self.judge_ticket(conn, &plain[..split], host) {
            Ok(used) => Decision::Resume(Resume::ticket(used, renew, plain, split)),
            Err(reason) => {
                crypto::zeroize(&mut plain);
                Decision::Full(reason)
            }
        }
    }

    /// The policy on a ticket's record: the ticket's revocation reference when it may resume.
    fn judge_ticket(
        &self,
        conn: &Conn,
        record: &[u8],
        host: &HostFacts<'_>,
    ) -> Result<Option<TicketRef>, Reason> {
        let rec = record::decode(record).map_err(|_| Reason::TicketWithoutRecord)?;
        // A revoked ticket is refused by the `invalidated` rule, as a stored tombstone is.
        let mut meta = rec.meta;
        let used = rec.ticket_id.map(|id| {
            let key = self.revocation_key(conn.vhost, &id);
            (key, meta.expires_at())
        });
        if let Some((key, _)) = &used {
            meta.invalidated |= self.store.revoked(key, host.now);
        }
        self.judge(conn, &meta, host)?;
        Ok(used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::policy::Policy;
    use crate::engine::stats::Event;
    use crate::engine::vhosts::{ServerName, VHostOptions, VHosts};
    use crate::store::memory::MemoryStore;

    const ALL: &dyn Fn(u16) -> bool = &|_| true;

    fn engine() -> Engine {
        let mut v = VHosts::default();
        let o = VHostOptions {
            timeout: 300,
            is_default: true,
            single_use: false,
            allow_no_ems: false,
            no_store: false,
        };
        v.add("a.test", 1, o).unwrap();
        let other = VHostOptions {
            is_default: false,
            ..o
        };
        v.add("b.test", 2, other).unwrap();
        let store = Box::new(MemoryStore::new(1 << 20, 100, 2));
        Engine::new(v, Policy::default(), store, false, None)
    }

    #[test]
    #[cfg_attr(miri, ignore = "tickets are sealed with BoringSSL")]
    fn a_sealed_ticket_counts_once_the_host_took_it_and_never_when_altered() {
        let e = engine();
        let keys = TicketKeys::new(Some(&[7; 32]), 3600, 300, 2).unwrap();
        let host = HostFacts {
            now: 1001,
            version: 0x0304,
            cipher_enabled: ALL,
        };
        let hello = |name: &[u8]| {
            e.client_hello(ServerName::HostName(name), Some(true))
                .unwrap()
        };
        let session = NewSession {
            id: b"",
            created: 1000,
            version: 0x0304,
            cipher: 0x1301,
            ems: true,
            alpn: b"",
            der: b"",
            local: None,
        };
        let mut issuing = hello(b"a.test");
        let mut plain = e.ticket_appdata(&mut issuing, &session);
        plain.extend_from_slice(b"SESSION");
        let ticket = e.seal_ticket(&issuing, &keys, plain, 1000);

        let mut r = hello(b"a.test");
        let Decision::Resume(resume) = e.open_ticket(&r, &keys, &ticket, &host) else {
            panic!("the ticket opens on its vhost");
        };
        assert_eq!(resume.session(), b"SESSION");
        assert_eq!(e.stats.event(None, Event::Hit), 0, "nothing counted yet");
        e.commit(&mut r, Decision::Resume(resume));
        assert_eq!(e.stats.event(None, Event::Hit), 1);

        // The host could not take it (its buffer is too small): no hit.
        let mut small = hello(b"a.test");
        let Decision::Resume(resume) = e.open_ticket(&small, &keys, &ticket, &host) else {
            panic!("the ticket opens again");
        };
        e.commit(&mut small, resume.too_large());
        assert_eq!(e.stats.event(None, Event::Hit), 1);

        let full = |conn: &mut Conn, t: &[u8]| {
            let d = e.open_ticket(conn, &keys, t, &host);
            let full = d.is_full();
            e.commit(conn, d);
            full
        };
        let mut flipped = ticket.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(full(&mut hello(b"a.test"), &flipped));
        assert!(full(&mut hello(b"a.test"), &ticket[..SEAL_OVERHEAD - 1]));
        assert_eq!(e.stats.event(None, Event::TicketForged), 2);
        assert!(
            full(&mut hello(b"b.test"), &ticket),
            "another vhost has no key"
        );
        assert_eq!(e.stats.event(None, Event::TicketUnknownKey), 1);
        assert_eq!(e.stats.event(None, Event::Hit), 1);
    }
}
