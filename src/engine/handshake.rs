//! One connection's decisions: routing its ClientHello, looking up the session it offers,
//! storing the sessions it is issued, and invalidating after a fatal alert. Tickets are in
//! `tickets.rs`; how each attempt ends, and what it counts, in `decision.rs`. Pure Rust: the C
//! surface gathers the facts from the host and acts on the answers.

use std::any::Any;
use std::sync::Arc;
use std::task::Waker;

use super::decision::{Decision, Reason, Resume};
use super::policy::{Facts, MAX_LIFETIME};
use super::stats::{Event, ListenerEvent};
use super::vhosts::{RouteError, ServerName, MAX_NAME};
use super::{Engine, Level};
use crate::record::{self, Meta};
use crate::store::{Key, Lookup, Value};

/// A ticket this connection used or was issued: its revocation key and when it expires.
pub type TicketRef = (Key, u64);

/// How the connection's resumption attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No session offered, or none found.
    Full,
    Resumed,
    /// Refused by the policy rule with this index.
    Refused(u16),
}

const ISSUED: usize = 4;
/// The TLS 1.3 protocol version number.
const TLS1_3: u16 = 0x0304;

/// Per-connection state, kept in the `SSL` object's ex_data. Only the engine writes what was
/// decided (`Engine::commit`).
pub struct Conn {
    pub vhost: u32,
    sni: [u8; MAX_NAME],
    sni_len: u8,
    /// The SNI itself selected the vhost (not the default vhost taking an unknown name or none):
    /// only then is the server_name extension acknowledged (RFC 6066 §3).
    named: bool,
    /// The ClientHello offered extended master secret; `None` when not seen.
    pub client_ems: Option<bool>,
    /// The stored session this connection resumed.
    pub(super) resumed: Option<Key>,
    /// A single-use session this connection took from the store, kept for the library's second
    /// lookup after a HelloRetryRequest.
    pub(super) taken: Option<(Key, Value)>,
    issued: [Option<Key>; ISSUED],
    issued_next: usize,
    /// The stateless ticket this connection resumed with, when it carries an identity.
    pub(super) ticket_used: Option<TicketRef>,
    tickets_issued: [Option<TicketRef>; ISSUED],
    tickets_issued_next: usize,
    pub(super) outcome: Outcome,
    /// The offered ticket named a key this vhost does not have (set by the key lookup, so a
    /// failed decryption is not also counted as a forgery).
    pub(super) ticket_key_unknown: bool,
    /// The offered ticket's key only decrypts now: a resumption with it renews the ticket.
    pub(super) ticket_renew: bool,
    /// A lookup on this connection missed (counted once: OpenSSL looks the session up again
    /// for the second ClientHello after a HelloRetryRequest).
    pub(super) missed: bool,
    /// The ClientHello was paused while the store fetches the offered session (`prefetch`);
    /// the retried ClientHello asks again.
    prefetching: bool,
    /// The ClientHello offered early data (the `early_data` extension).
    pub early_data_offered: bool,
}

impl Conn {
    pub fn sni(&self) -> Option<&str> {
        // Only validated ASCII host names are copied in.
        (self.sni_len > 0)
            .then(|| std::str::from_utf8(&self.sni[..self.sni_len as usize]).unwrap_or(""))
    }

    /// Whether the server acknowledges the client's server_name extension: only when the name
    /// selected the vhost (RFC 6066 §3: the server sends it back only when it used the name).
    pub fn acknowledges_sni(&self) -> bool {
        self.named
    }

    fn issued(&mut self, key: Key) {
        self.issued[self.issued_next % ISSUED] = Some(key);
        self.issued_next += 1;
    }

    /// How the connection's resumption attempt ended, as far as decided.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The ClientHello is paused while the store fetches the offered session.
    pub fn prefetching(&self) -> bool {
        self.prefetching
    }

    pub(super) fn ticket_issued(&mut self, ticket: TicketRef) {
        self.tickets_issued[self.tickets_issued_next % ISSUED] = Some(ticket);
        self.tickets_issued_next += 1;
    }
}

/// Stateful session ids are this long in TLS 1.3 PSK identities (OpenSSL looks up an identity of
/// exactly `SSL_MAX_SSL_SESSION_ID_LENGTH` bytes in its session cache; anything else is a ticket).
const STATEFUL_PSK_ID_LEN: usize = 32;

/// The session id a ClientHello offers for a stateful lookup, from the bodies of its
/// pre_shared_key (41) and supported_versions (43) extensions and its legacy session id:
/// the first PSK identity when it is a stateful id; with no PSK, the legacy session id, unless
/// the client offers TLS 1.3 (then that id is the random compatibility-mode one, or a TLS 1.2
/// session a TLS 1.3 server will not resume) or a TLS 1.2 ticket the server will use instead
/// (`ticket_used`: a non-empty session_ticket extension with tickets on). `None` when nothing
/// is worth fetching.
pub fn offered_session_id<'a>(
    psk: Option<&'a [u8]>,
    versions: Option<&[u8]>,
    ticket_used: bool,
    legacy_id: &'a [u8],
) -> Option<&'a [u8]> {
    if let Some(psk) = psk {
        let ids_len = usize::from(u16::from_be_bytes([*psk.first()?, *psk.get(1)?]));
        let id_len = usize::from(u16::from_be_bytes([*psk.get(2)?, *psk.get(3)?]));
        let id = psk.get(4..4 + id_len)?;
        return (id_len + 6 <= ids_len && id.len() == STATEFUL_PSK_ID_LEN).then_some(id);
    }
    let offers_tls13 = versions.is_some_and(|v| {
        v.get(1..1 + usize::from(*v.first().unwrap_or(&0)))
            .is_some_and(|list| list.chunks_exact(2).any(|p| p == [3, 4]))
    });
    (!offers_tls13
        && !ticket_used
        && !legacy_id.is_empty()
        && legacy_id.len() <= crate::store::MAX_ID_LEN)
        .then_some(legacy_id)
}

/// Facts about the connection at lookup time that only the host library knows.
pub struct HostFacts<'a> {
    pub now: u64,
    pub version: u16,
    pub cipher_enabled: &'a dyn Fn(u16) -> bool,
}

/// A new session to store, described by the host library.
pub struct NewSession<'a> {
    pub id: &'a [u8],
    pub created: u64,
    pub version: u16,
    pub cipher: u16,
    pub ems: bool,
    pub alpn: &'a [u8],
    pub der: &'a [u8],
    /// An in-process object to reuse on hits, and the memory it holds.
    pub local: Option<(Arc<dyn Any + Send + Sync>, usize)>,
}

impl Engine {
    /// Validates the SNI and picks the vhost.
    pub fn client_hello(
        &self,
        server_name: ServerName<'_>,
        client_ems: Option<bool>,
    ) -> Result<Conn, RouteError> {
        let mut sni = [0u8; MAX_NAME];
        let sni_len = server_name.parse(&mut sni).inspect_err(|_| {
            self.stats.count_listener(ListenerEvent::MalformedSni);
            self.log(Level::Info, || {
                "malformed server_name refused with illegal_parameter".into()
            });
        })?;
        let name = std::str::from_utf8(&sni[..sni_len])
            .ok()
            .filter(|s| !s.is_empty());
        let (vhost, named) = self
            .vhosts
            .route_named(name, self.strict_sni)
            .inspect_err(|_| {
                self.stats.count_listener(ListenerEvent::UnknownSni);
                self.log(Level::Info, || {
                    format!("unknown server name {name:?} refused with unrecognized_name")
                });
            })?;
        // A name no vhost has counts whether strict SNI refuses it or the default vhost takes it.
        if name.is_some() && !named {
            self.stats.count_listener(ListenerEvent::UnknownSni);
        }
        Ok(Conn {
            vhost,
            sni,
            sni_len: sni_len as u8,
            named,
            client_ems,
            resumed: None,
            taken: None,
            issued: [None; ISSUED],
            issued_next: 0,
            ticket_used: None,
            tickets_issued: [None; ISSUED],
            tickets_issued_next: 0,
            outcome: Outcome::Full,
            ticket_key_unknown: false,
            ticket_renew: false,
            missed: false,
            prefetching: false,
            early_data_offered: false,
        })
    }

    /// The second ClientHello of a connection, after a HelloRetryRequest. RFC 8446 §4.1.2 lets
    /// it change only key shares, the cookie, early data and the PSK binders and ages: a
    /// server_name that differs from the first one's (another name, or one added or removed;
    /// names compare case-insensitively, as they route) is refused, and so is a malformed one.
    /// Routing and resumption stay those of the first ClientHello. `Err` means a fatal
    /// illegal_parameter alert (`Reason::HrrSniChanged`, committed here: nothing on this
    /// connection counts as resumed), and the session the first ClientHello offered stays
    /// marked as used, so the alert invalidates it like any other (R1).
    pub fn second_client_hello(
        &self,
        conn: &mut Conn,
        server_name: ServerName<'_>,
    ) -> Result<(), RouteError> {
        let mut sni = [0u8; MAX_NAME];
        let sni_len = server_name.parse(&mut sni).inspect_err(|_| {
            self.stats.count_listener(ListenerEvent::MalformedSni);
        })?;
        if sni[..sni_len] == conn.sni[..usize::from(conn.sni_len)] {
            return Ok(());
        }
        self.commit(conn, Decision::Full(Reason::HrrSniChanged));
        Err(RouteError::Malformed)
    }

    /// Whether a resumption under a ticket whose key still encrypts asks the host library for a
    /// new ticket: always in TLS 1.3, where clients use each ticket once (RFC 8446 §C.4) and a
    /// resumed connection without a NewSessionTicket leaves them none; never in TLS 1.2 (a
    /// ticket sealed under a decrypt-only key is renewed by the key lookup in both versions).
    pub fn renews_ticket(version: u16) -> bool {
        version >= TLS1_3
    }

    pub(super) fn lifetime(&self, vhost: u32) -> u32 {
        self.vhosts.get(vhost).options.timeout.min(MAX_LIFETIME)
    }

    fn facts<'a>(&'a self, conn: &'a Conn, host: &'a HostFacts<'a>) -> Facts<'a> {
        Facts {
            vhost: self.vhosts.get(conn.vhost),
            sni: conn.sni(),
            now: host.now,
            version: host.version,
            client_ems: conn.client_ems,
            cipher_enabled: host.cipher_enabled,
        }
    }

    /// Runs the policy: the first rule that refuses is the reason.
    pub(super) fn judge(
        &self,
        conn: &Conn,
        session: &Meta<'_>,
        host: &HostFacts<'_>,
    ) -> Result<(), Reason> {
        self.policy
            .evaluate(session, &self.facts(conn, host))
            .map_err(|rule| Reason::Rule(rule as u16))
    }

    /// Looks up the session id the client offered and decides (commit the decision once the
    /// host acted on it). With `waker`, for a host that can pause the handshake, a store
    /// fetching in the background answers `Pending` at once and wakes it when the answer is
    /// there; the lookup is then repeated when the host drives the handshake again.
    pub fn lookup(
        &self,
        conn: &Conn,
        id: &[u8],
        host: &HostFacts<'_>,
        waker: Option<&Waker>,
    ) -> Decision {
        if self.vhosts.get(conn.vhost).options.no_store {
            return Decision::Full(Reason::NoStore);
        }
        let Some(key) = Key::new(conn.vhost, id) else {
            return Decision::Full(Reason::BadId);
        };
        let answer = match (&conn.taken, waker) {
            (Some((k, v)), _) if *k == key => Lookup::Hit(v.clone()),
            (_, Some(w)) => self.store.get_async(&key, host.now, w),
            (_, None) => self.store.get(&key, host.now),
        };
        let value = match answer {
            Lookup::Hit(v) => v,
            Lookup::Miss => return Decision::Full(Reason::Miss),
            Lookup::Expired => return Decision::Full(Reason::ExpiredInStore),
            Lookup::Pending => return Decision::Pending,
            Lookup::Unavailable => return Decision::Full(Reason::StoreError),
        };
        let Ok(rec) = record::decode(&value.bytes) else {
            return Decision::Full(Reason::Corrupt(key));
        };
        if let Err(reason) = self.judge(conn, &rec.meta, host) {
            return Decision::Full(reason);
        }
        // A single-use session is taken before it resumes: `take` answers true to one caller
        // across everything sharing the store (for a Redis fleet, Redis `DEL` answering 1), so
        // two connections offering it at once, on two servers or one, never both resume it,
        // even where it was found in a server's local tier. The connection that took it keeps
        // it (`Conn::taken`): OpenSSL looks the session up again for the second ClientHello
        // after a HelloRetryRequest, and finds it there.
        let taken_here = matches!(&conn.taken, Some((k, _)) if *k == key);
        if self.vhosts.get(conn.vhost).options.single_use && !taken_here && !self.store.take(&key) {
            return Decision::Full(Reason::Miss);
        }
        // The session is the record's tail.
        let session_at = value.bytes.len() - rec.session.len();
        Decision::Resume(Resume::stored(key, value, session_at))
    }

    /// Starts fetching the session `id` a ClientHello offers (`None`: nothing worth fetching),
    /// for hosts whose session lookup cannot pause but whose ClientHello callback can
    /// (OpenSSL). True while the store is still fetching (`pending`, and `Conn::prefetching`):
    /// pause the ClientHello and ask again once `waker` is woken. The lookup itself comes later
    /// (`lookup`) and finds the answer waiting.
    pub fn prefetch(&self, conn: &mut Conn, id: Option<&[u8]>, now: u64, waker: &Waker) -> bool {
        let key = id
            .filter(|_| !self.vhosts.get(conn.vhost).options.no_store)
            .and_then(|id| Key::new(conn.vhost, id));
        conn.prefetching =
            key.is_some_and(|k| matches!(self.store.get_async(&k, now, waker), Lookup::Pending));
        if conn.prefetching {
            self.stats.count(conn.vhost, Event::Pending);
        }
        conn.prefetching
    }

    pub(super) fn meta<'a>(&'a self, conn: &'a Conn, s: &NewSession<'a>) -> Meta<'a> {
        Meta {
            vhost: &self.vhosts.get(conn.vhost).name,
            sni: conn.sni(),
            created: s.created,
            timeout: self.lifetime(conn.vhost),
            version: s.version,
            cipher: s.cipher,
            ems: s.ems,
            invalidated: false,
            alpn: s.alpn,
        }
    }

    /// Stores a session issued on this connection under (vhost, id).
    pub fn store_session(&self, conn: &mut Conn, s: NewSession<'_>) -> bool {
        if self.vhosts.get(conn.vhost).options.no_store {
            return false;
        }
        let Some(key) = Key::new(conn.vhost, s.id) else {
            self.stats.count(conn.vhost, Event::BadId);
            return false;
        };
        let meta = self.meta(conn, &s);
        let expires = meta.expires_at();
        let result = record::encode(&meta, s.der)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                let mut value = Value::new(bytes);
                if let Some((local, cost)) = s.local {
                    value.local = Some(local);
                    value.local_cost = cost;
                }
                self.store
                    .put(key, value, expires)
                    .map_err(|e| e.to_string())
            });
        match result {
            Ok(()) => {
                self.stats.count(conn.vhost, Event::Store);
                conn.issued(key);
                true
            }
            Err(e) => {
                self.stats.count(conn.vhost, Event::StoreError);
                self.warn_limited(&self.store_warnings, || {
                    format!(
                        "vhost {}: session not stored: {e}",
                        self.vhosts.get(conn.vhost).name
                    )
                });
                false
            }
        }
    }

    /// A fatal alert ended the connection (RFC 5246 §7.2.2): the session it resumed and those it
    /// was issued must never resume again. The resumed one becomes a tombstone that the
    /// `invalidated` rule refuses, so every server sharing the store learns of it; the stateless
    /// tickets it used or was issued are revoked until they expire (`Store::revoke`).
    pub fn invalidate(&self, conn: &mut Conn, now: u64) {
        let mut tickets = [None; ISSUED + 1];
        tickets[0] = conn.ticket_used.take();
        for (slot, t) in tickets[1..].iter_mut().zip(&mut conn.tickets_issued) {
            *slot = t.take();
        }
        for (key, expires) in tickets.into_iter().flatten() {
            if expires <= now {
                continue;
            }
            let meta = Meta {
                vhost: &self.vhosts.get(key.vhost).name,
                sni: conn.sni(),
                created: now,
                timeout: u32::try_from(expires - now).unwrap_or(u32::MAX),
                version: 0,
                cipher: 0,
                ems: false,
                invalidated: true,
                alpn: &[],
            };
            let revoked = record::encode(&meta, &[])
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    self.store
                        .revoke(key, Value::new(bytes), expires)
                        .map_err(|e| e.to_string())
                });
            match revoked {
                Ok(()) => self.stats.count(key.vhost, Event::Invalidation),
                Err(e) => {
                    self.stats.count(key.vhost, Event::StoreError);
                    self.log(Level::Warn, || {
                        format!(
                            "vhost {}: ticket revocation not stored: {e}",
                            self.vhosts.get(key.vhost).name
                        )
                    });
                }
            }
        }
        if let Some(key) = conn.resumed.take() {
            let vhost = self.vhosts.get(key.vhost);
            let meta = Meta {
                vhost: &vhost.name,
                sni: conn.sni(),
                created: now,
                timeout: self.lifetime(key.vhost),
                version: 0,
                cipher: 0,
                ems: false,
                invalidated: true,
                alpn: &[],
            };
            if let Ok(bytes) = record::encode(&meta, &[]) {
                if self
                    .store
                    .invalidate(key, Value::new(bytes), meta.expires_at())
                    .is_err()
                {
                    self.store.remove(&key);
                }
            }
            self.stats.count(key.vhost, Event::Invalidation);
        }
        for key in conn.issued.iter_mut().filter_map(Option::take) {
            if self.store.remove(&key) {
                self.stats.count(key.vhost, Event::Invalidation);
            }
        }
        self.log(Level::Info, || {
            format!(
                "vhost {}: fatal alert; sessions of this connection invalidated",
                self.vhosts.get(conn.vhost).name
            )
        });
    }

    /// Removes a session the host library dropped (expiry or its own alert handling).
    pub fn remove(&self, vhost: u32, id: &[u8]) {
        if let Some(key) = Key::new(vhost, id) {
            self.store.remove(&key);
        }
    }
}
