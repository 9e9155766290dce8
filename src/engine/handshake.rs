//! One connection's decisions: routing its ClientHello, looking up the session it offers,
//! storing the sessions it is issued, checking tickets, and invalidating after a fatal alert.
//! Pure Rust: the C surface gathers the facts from the host and acts on the answers.

use std::any::Any;
use std::sync::Arc;
use std::task::Waker;

use super::policy::{Facts, MAX_LIFETIME};
use super::stats::{Event, ListenerEvent};
use super::vhosts::{parse_server_name, RouteError, MAX_NAME};
use super::{Engine, Level};
use crate::record::{self, Meta, TICKET_ID_LEN};
use crate::store::{Key, Lookup, Value};

/// Length of a revocation key's id: `REVOCATION_TAG` then the ticket's random identity. No
/// session id the engine stores is this long with this tag (OpenSSL and BoringSSL make 32-byte
/// ids; a host's own store gets any id, but a collision needs a 2^-128 chance).
const REVOCATION_ID_LEN: usize = REVOCATION_TAG.len() + TICKET_ID_LEN;
/// `rv2`: the id is the identity itself (`rv1` was a SHA-256 digest of it).
const REVOCATION_TAG: &[u8; 4] = b"\xffrv2";

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

/// Per-connection state, kept in the `SSL` object's ex_data.
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
    pub resumed: Option<Key>,
    issued: [Option<Key>; ISSUED],
    issued_next: usize,
    /// The stateless ticket this connection resumed with, when it carries an identity.
    pub ticket_used: Option<TicketRef>,
    tickets_issued: [Option<TicketRef>; ISSUED],
    tickets_issued_next: usize,
    pub outcome: Outcome,
    /// The offered ticket named a key this vhost does not have (set by the key lookup, so a
    /// failed decryption is not also counted as a forgery).
    pub ticket_key_unknown: bool,
    /// A lookup on this connection missed (counted once: OpenSSL looks the session up again
    /// for the second ClientHello after a HelloRetryRequest).
    missed: bool,
    /// The ClientHello was paused while the store fetches the offered session (`prefetch`);
    /// the retried ClientHello asks again.
    pub prefetching: bool,
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

    fn ticket_issued(&mut self, ticket: TicketRef) {
        self.tickets_issued[self.tickets_issued_next % ISSUED] = Some(ticket);
        self.tickets_issued_next += 1;
    }
}

/// The answer to a session lookup.
pub enum Found {
    Resume(Value),
    Full,
    Pending,
}

impl Found {
    pub fn is_resume(&self) -> bool {
        matches!(self, Found::Resume(_))
    }
    pub fn is_full(&self) -> bool {
        matches!(self, Found::Full)
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
    /// Validates the SNI (`server_name_ext` is the raw extension body, `None` when absent) and
    /// picks the vhost.
    pub fn client_hello(
        &self,
        server_name_ext: Option<&[u8]>,
        client_ems: Option<bool>,
    ) -> Result<Conn, RouteError> {
        let mut sni = [0u8; MAX_NAME];
        let sni_len = match server_name_ext {
            None => 0,
            Some(ext) => parse_server_name(ext, &mut sni).inspect_err(|_| {
                self.stats.count_listener(ListenerEvent::MalformedSni);
                self.log(Level::Info, || {
                    "malformed server_name refused with illegal_parameter".into()
                });
            })?,
        };
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
            issued: [None; ISSUED],
            issued_next: 0,
            ticket_used: None,
            tickets_issued: [None; ISSUED],
            tickets_issued_next: 0,
            outcome: Outcome::Full,
            ticket_key_unknown: false,
            missed: false,
            prefetching: false,
            early_data_offered: false,
        })
    }

    /// The second ClientHello of a connection, after a HelloRetryRequest (`server_name_ext` as
    /// for `client_hello`). RFC 8446 §4.1.2 lets it change only key shares, the cookie, early
    /// data and the PSK binders and ages: a server_name that differs from the first one's
    /// (another name, or one added or removed; names compare case-insensitively, as they
    /// route) is refused, and so is a malformed one. Routing and resumption stay those of the
    /// first ClientHello. `Err` means a fatal illegal_parameter alert; the outcome is reset so
    /// nothing on this connection counts as resumed, and the session the first ClientHello
    /// offered stays marked as used, so the alert invalidates it like any other (R1).
    pub fn second_client_hello(
        &self,
        conn: &mut Conn,
        server_name_ext: Option<&[u8]>,
    ) -> Result<(), RouteError> {
        let mut sni = [0u8; MAX_NAME];
        let sni_len = match server_name_ext {
            None => 0,
            Some(ext) => parse_server_name(ext, &mut sni).inspect_err(|_| {
                self.stats.count_listener(ListenerEvent::MalformedSni);
            })?,
        };
        if sni[..sni_len] == conn.sni[..usize::from(conn.sni_len)] {
            return Ok(());
        }
        self.stats.count_listener(ListenerEvent::HrrSniChanged);
        // The first ClientHello's session was counted as a hit; this connection resumes nothing.
        if conn.outcome == Outcome::Resumed {
            self.stats.uncount(conn.vhost, Event::Hit);
        }
        conn.outcome = Outcome::Full;
        self.log(Level::Info, || {
            format!(
                "server_name changed across HelloRetryRequest ({:?} then {:?}) refused with illegal_parameter",
                conn.sni(),
                std::str::from_utf8(&sni[..sni_len]).ok().filter(|s| !s.is_empty())
            )
        });
        Err(RouteError::Malformed)
    }

    /// Whether a resumption under a ticket whose key still encrypts asks the host library for a
    /// new ticket: always in TLS 1.3, where clients use each ticket once (RFC 8446 §C.4) and a
    /// resumed connection without a NewSessionTicket leaves them none; never in TLS 1.2 (a
    /// ticket sealed under a decrypt-only key is renewed by the key lookup in both versions).
    pub fn renews_ticket(version: u16) -> bool {
        version >= TLS1_3
    }

    fn lifetime(&self, vhost: u32) -> u32 {
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

    /// Runs the policy; counts and logs a refusal, once per connection for the same rule (the
    /// second ClientHello after a HelloRetryRequest offers the same session again).
    fn judge(&self, conn: &mut Conn, session: &Meta<'_>, host: &HostFacts<'_>) -> bool {
        match self.policy.evaluate(session, &self.facts(conn, host)) {
            Ok(()) => true,
            Err(rule) if conn.outcome == Outcome::Refused(rule as u16) => false,
            Err(rule) => {
                conn.outcome = Outcome::Refused(rule as u16);
                self.stats.refuse(conn.vhost, rule);
                self.log(Level::Info, || {
                    format!(
                        "vhost {} sni {:?}: resumption refused ({}); full handshake",
                        self.vhosts.get(conn.vhost).name,
                        conn.sni(),
                        self.policy.name(rule)
                    )
                });
                false
            }
        }
    }

    /// Looks up the session id the client offered. `Resume` carries the stored value the policy
    /// allows (call `resumed` once the host accepted it); `Full` means a full handshake (miss,
    /// refusal, store failure or bad input, each counted); `Pending` means the store is still
    /// fetching and the lookup should be repeated when the host drives the handshake again.
    pub fn lookup(&self, conn: &mut Conn, id: &[u8], host: &HostFacts<'_>) -> Found {
        self.lookup_with(conn, id, host, None)
    }

    /// As `lookup`, for a host that can pause the handshake: a store fetching in the background
    /// answers `Pending` at once and wakes `waker` when the answer is there.
    pub fn lookup_async(
        &self,
        conn: &mut Conn,
        id: &[u8],
        host: &HostFacts<'_>,
        waker: &Waker,
    ) -> Found {
        self.lookup_with(conn, id, host, Some(waker))
    }

    /// Starts fetching the session `id` a ClientHello offers, for hosts whose session lookup
    /// cannot pause but whose ClientHello callback can (OpenSSL). True while the store is still
    /// fetching: pause the ClientHello and ask again once `waker` is woken. The lookup itself
    /// comes later (`lookup`) and finds the answer waiting.
    pub fn prefetch(&self, conn: &Conn, id: &[u8], now: u64, waker: &Waker) -> bool {
        if self.vhosts.get(conn.vhost).options.no_store {
            return false;
        }
        let Some(key) = Key::new(conn.vhost, id) else {
            return false;
        };
        let pending = matches!(self.store.get_async(&key, now, waker), Lookup::Pending);
        if pending {
            self.stats.count(conn.vhost, Event::Pending);
        }
        pending
    }

    fn lookup_with(
        &self,
        conn: &mut Conn,
        id: &[u8],
        host: &HostFacts<'_>,
        waker: Option<&Waker>,
    ) -> Found {
        if self.vhosts.get(conn.vhost).options.no_store {
            return Found::Full;
        }
        let Some(key) = Key::new(conn.vhost, id) else {
            self.stats.count(conn.vhost, Event::BadId);
            return Found::Full;
        };
        let answer = match waker {
            Some(w) => self.store.get_async(&key, host.now, w),
            None => self.store.get(&key, host.now),
        };
        let value = match answer {
            Lookup::Hit(v) => v,
            Lookup::Miss | Lookup::Expired => {
                self.missed(conn);
                return Found::Full;
            }
            Lookup::Pending => {
                self.stats.count(conn.vhost, Event::Pending);
                return Found::Pending;
            }
            Lookup::Unavailable => {
                self.stats.count(conn.vhost, Event::StoreError);
                self.missed(conn);
                return Found::Full;
            }
        };
        let Ok(rec) = record::decode(&value.bytes) else {
            self.corrupt(conn.vhost, &key);
            return Found::Full;
        };
        if !self.judge(conn, &rec.meta, host) {
            return Found::Full;
        }
        conn.resumed = Some(key);
        Found::Resume(value)
    }

    /// Counts a miss once per connection, as hits are.
    fn missed(&self, conn: &mut Conn) {
        if !conn.missed {
            self.stats.count(conn.vhost, Event::Miss);
        }
        conn.missed = true;
    }

    /// The offered ticket names a key this vhost does not have (a full handshake): counted once
    /// per connection, as hits are (OpenSSL decrypts the ticket again for the second ClientHello
    /// after a HelloRetryRequest), and remembered so the failed decryption is not counted as a
    /// forgery.
    pub fn ticket_key_unknown(&self, conn: &mut Conn) {
        if !conn.ticket_key_unknown {
            self.stats.count(conn.vhost, Event::TicketUnknownKey);
        }
        conn.ticket_key_unknown = true;
    }

    /// The host library took the session `lookup` allowed: count the hit and, on a single-use
    /// vhost, remove the session so it never resumes again.
    pub fn resumed(&self, conn: &mut Conn) {
        // Once per connection: the library may look the session up again for the second
        // ClientHello after a HelloRetryRequest.
        if conn.outcome != Outcome::Resumed {
            self.stats.count(conn.vhost, Event::Hit);
        }
        conn.outcome = Outcome::Resumed;
        if let Some(key) = conn.resumed {
            if self.vhosts.get(conn.vhost).options.single_use && self.store.remove(&key) {
                self.stats.count(conn.vhost, Event::SingleUse);
            }
        }
    }

    /// A stored record (or the session inside it) could not be decoded: drop it, count it.
    pub fn corrupt(&self, vhost: u32, key: &Key) {
        self.store.remove(key);
        self.stats.count(vhost, Event::Corrupt);
        self.warn_limited(&self.corrupt_warnings, || {
            format!(
                "vhost {}: corrupt stored session dropped",
                self.vhosts.get(vhost).name
            )
        });
    }

    fn meta<'a>(&'a self, conn: &'a Conn, s: &NewSession<'a>) -> Meta<'a> {
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

    /// The record to seal into a stateless ticket issued on this connection (OpenSSL app data,
    /// BoringSSL's sealed prefix): the session's facts and a fresh random identity, remembered
    /// on the connection so a fatal alert on it revokes the ticket.
    pub fn ticket_appdata(&self, conn: &mut Conn, s: &NewSession<'_>) -> Vec<u8> {
        let mut id = [0u8; TICKET_ID_LEN];
        crate::crypto::random(&mut id);
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
    pub fn revocation_key(&self, vhost: u32, ticket_id: &[u8; TICKET_ID_LEN]) -> Key {
        let mut id = [0u8; REVOCATION_ID_LEN];
        id[..REVOCATION_TAG.len()].copy_from_slice(REVOCATION_TAG);
        id[REVOCATION_TAG.len()..].copy_from_slice(ticket_id);
        Key::new(vhost, &id).expect("a 20-byte id")
    }

    /// Whether a ticket with this identity was revoked on this vhost (see `Store::revoked`).
    pub fn ticket_revoked(&self, vhost: u32, ticket_id: &[u8; TICKET_ID_LEN], now: u64) -> bool {
        self.store
            .revoked(&self.revocation_key(vhost, ticket_id), now)
    }

    /// Decides whether a decrypted stateless ticket carrying `appdata` may resume here.
    pub fn check_ticket(
        &self,
        conn: &mut Conn,
        appdata: Option<&[u8]>,
        host: &HostFacts<'_>,
    ) -> bool {
        let Some(rec) = appdata.and_then(|a| record::decode(a).ok()) else {
            self.stats.count(conn.vhost, Event::Corrupt);
            self.log(Level::Info, || {
                "ticket without snicache data refused; full handshake".into()
            });
            return false;
        };
        // A revoked ticket is refused by the `invalidated` rule, as a stored tombstone is.
        let mut meta = rec.meta;
        let ticket = rec.ticket_id.map(|id| {
            let key = self.revocation_key(conn.vhost, &id);
            (key, meta.expires_at())
        });
        if let Some((key, _)) = &ticket {
            meta.invalidated |= self.store.revoked(key, host.now);
        }
        if !self.judge(conn, &meta, host) {
            return false;
        }
        conn.ticket_used = ticket;
        // Once per connection: OpenSSL opens the ticket again for the second ClientHello after
        // a HelloRetryRequest.
        if conn.outcome != Outcome::Resumed {
            self.stats.count(conn.vhost, Event::Hit);
        }
        conn.outcome = Outcome::Resumed;
        true
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
