//! Every way a resumption attempt ends, in one place. The engine decides (a session lookup, a
//! ticket check) and hands the C surface a `Decision`; the C surface acts on it with the host
//! library (decodes the session, copies the ticket's session out) and gives it back to
//! `Engine::commit`, which alone counts, logs and records the connection's outcome. So a
//! resumption is counted as a hit only once the host library has taken the session, and the
//! answer to "why was this session not resumed?" is one `Reason` below. (A ClientHello refused
//! before any resumption, for a malformed or unknown server name, is routing:
//! `Engine::client_hello` in `handshake.rs`.)

use std::any::Any;

use super::handshake::{Conn, Outcome, TicketRef};
use super::stats::{Event, ListenerEvent};
use super::{Engine, Level};
use crate::store::{Key, Value};

/// Why a resumption attempt ends in a full handshake. Each case names the counter it adds to
/// and the log line it writes (`Engine::commit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The vhost keeps no sessions (`no_store`, nginx's `ssl_session_cache off`): nothing is
    /// looked up. Not counted.
    NoStore,
    /// The offered session id is empty or over 32 bytes. `bad_ids`.
    BadId,
    /// No session is stored under the offered id. `misses`, once per connection (OpenSSL looks
    /// the session up again for the second ClientHello after a HelloRetryRequest).
    Miss,
    /// The store held the session, past its lifetime, and dropped it. `misses`, as `Miss`.
    ExpiredInStore,
    /// The store could not answer (down, timed out, garbage, a host status out of range).
    /// `store_errors`, and `misses` as `Miss`.
    StoreError,
    /// The stored record, or the session inside it, does not decode (the host library's
    /// decoder included): the record is dropped. `corrupt`; a warning, at most one a second.
    Corrupt(Key),
    /// A policy rule refused: a built-in rule, or a host's rule after them. A revoked ticket
    /// and a session's tombstone are refused by `invalidated`. The rule's refusal counter,
    /// once per connection for the same rule; logged with the rule's name.
    Rule(u16),
    /// The ticket names a key this vhost does not have (another vhost's, or past its window).
    /// `ticket_unknown_key`, once per connection.
    TicketUnknownKey,
    /// The ticket failed authentication: forged, truncated or altered. `ticket_forged`,
    /// unless its key was unknown (OpenSSL reports both for one ticket; counted as the key).
    TicketForged,
    /// The ticket opened but carries no readable snicache record (OpenSSL: no app data, e.g. a
    /// ticket sealed by the host's own keys before snicache was attached; BoringSSL: a sealed
    /// plaintext without a record in front). `corrupt`, on both libraries: a record that is
    /// missing or does not decode is corrupt wherever it was kept.
    TicketWithoutRecord,
    /// The ticket's session does not fit the buffer the host library gave. Not counted (no
    /// hit either); logged at debug level.
    TicketTooLarge,
    /// The second ClientHello after a HelloRetryRequest changed the server name (RFC 8446
    /// §4.1.2): a fatal alert. `hrr_sni_changed` (listener); a hit of the first ClientHello is
    /// taken back.
    HrrSniChanged,
}

/// One resumption attempt's answer. Give it back to `Engine::commit` once the host acted on it.
#[must_use = "commit the decision with Engine::commit once the host acted on it"]
pub enum Decision {
    /// The policy allows this session; it resumes once the host library takes it.
    Resume(Resume),
    /// A full handshake, for this reason.
    Full(Reason),
    /// The store is still fetching: pause the handshake where the host library can, and ask
    /// again when it is driven again (where it cannot, a full handshake). `pending`.
    Pending,
}

impl Decision {
    pub fn is_resume(&self) -> bool {
        matches!(self, Decision::Resume(_))
    }
    pub fn is_full(&self) -> bool {
        matches!(self, Decision::Full(_))
    }
}

/// A session the policy allows, with its bytes decoded once.
pub struct Resume {
    source: Source,
}

enum Source {
    /// A stored session: its key, and its record, whose tail from `session_at` is the host's
    /// serialized session.
    Stored {
        key: Key,
        value: Value,
        session_at: usize,
    },
    /// A stateless ticket: its revocation reference, whether it is renewed under the current
    /// key (it was sealed under a decrypt-only one), and what was opened: BoringSSL's record
    /// then session (zeroized when dropped), nothing on OpenSSL (the library holds the session).
    Ticket {
        used: Option<TicketRef>,
        renew: bool,
        plain: Vec<u8>,
        session_at: usize,
    },
}

impl Resume {
    pub(super) fn stored(key: Key, value: Value, session_at: usize) -> Resume {
        Resume {
            source: Source::Stored {
                key,
                value,
                session_at,
            },
        }
    }

    pub(super) fn ticket(
        used: Option<TicketRef>,
        renew: bool,
        plain: Vec<u8>,
        session_at: usize,
    ) -> Resume {
        Resume {
            source: Source::Ticket {
                used,
                renew,
                plain,
                session_at,
            },
        }
    }

    /// The host's serialized session (empty for an OpenSSL ticket, which the library decoded).
    pub fn session(&self) -> &[u8] {
        match &self.source {
            Source::Stored {
                value, session_at, ..
            } => &value.bytes[*session_at..],
            Source::Ticket {
                plain, session_at, ..
            } => &plain[*session_at..],
        }
    }

    /// The in-process object a store kept with the session (the host's decoded session).
    pub fn local(&self) -> Option<&(dyn Any + Send + Sync)> {
        match &self.source {
            Source::Stored { value, .. } => value.local.as_deref(),
            Source::Ticket { .. } => None,
        }
    }

    /// The host library could not decode the session: a full handshake.
    pub fn undecodable(self) -> Decision {
        Decision::Full(match &self.source {
            Source::Stored { key, .. } => Reason::Corrupt(*key),
            Source::Ticket { .. } => Reason::TicketWithoutRecord,
        })
    }

    /// The session does not fit the host library's buffer: a full handshake.
    pub fn too_large(self) -> Decision {
        Decision::Full(Reason::TicketTooLarge)
    }
}

impl Drop for Resume {
    fn drop(&mut self) {
        if let Source::Ticket { plain, .. } = &mut self.source {
            crate::crypto::zeroize(plain);
        }
    }
}

impl Engine {
    /// Commits a decision the host acted on (for `Resume`: the host library took the session):
    /// the only place a resumption attempt is counted, logged and recorded on the connection.
    pub fn commit(&self, conn: &mut Conn, decision: Decision) {
        match decision {
            Decision::Resume(r) => self.resumed(conn, r),
            Decision::Full(reason) => self.refused(conn, reason),
            Decision::Pending => self.stats.count(conn.vhost, Event::Pending),
        }
    }

    fn resumed(&self, conn: &mut Conn, mut r: Resume) {
        // Once per connection: the library may look the session up (or open the ticket) again
        // for the second ClientHello after a HelloRetryRequest.
        let first = conn.outcome != Outcome::Resumed;
        if first {
            self.stats.count(conn.vhost, Event::Hit);
        }
        conn.outcome = Outcome::Resumed;
        match &mut r.source {
            Source::Stored { key, value, .. } => {
                conn.resumed = Some(*key);
                // A single-use session was taken from the store by `lookup` already; the
                // connection keeps it for a repeated lookup (HelloRetryRequest).
                if self.vhosts.get(conn.vhost).options.single_use {
                    if first {
                        self.stats.count(conn.vhost, Event::SingleUse);
                    }
                    conn.taken = Some((*key, value.clone()));
                }
            }
            Source::Ticket { used, renew, .. } => {
                conn.ticket_used = used.take();
                if *renew && first {
                    self.stats.count(conn.vhost, Event::TicketRenewed);
                }
            }
        }
    }

    fn refused(&self, conn: &mut Conn, reason: Reason) {
        let vhost = conn.vhost;
        match reason {
            Reason::NoStore | Reason::TicketTooLarge => {}
            Reason::BadId => self.stats.count(vhost, Event::BadId),
            Reason::Miss | Reason::ExpiredInStore => self.missed(conn),
            Reason::StoreError => {
                self.stats.count(vhost, Event::StoreError);
                self.missed(conn);
            }
            Reason::Corrupt(key) => {
                self.store.remove(&key);
                self.stats.count(vhost, Event::Corrupt);
            }
            Reason::Rule(rule) if conn.outcome == Outcome::Refused(rule) => return,
            Reason::Rule(rule) => {
                conn.outcome = Outcome::Refused(rule);
                self.stats.refuse(vhost, usize::from(rule));
            }
            Reason::TicketUnknownKey if conn.ticket_key_unknown => return,
            Reason::TicketUnknownKey => {
                conn.ticket_key_unknown = true;
                self.stats.count(vhost, Event::TicketUnknownKey);
            }
            Reason::TicketForged if conn.ticket_key_unknown => {}
            Reason::TicketForged => self.stats.count(vhost, Event::TicketForged),
            Reason::TicketWithoutRecord => self.stats.count(vhost, Event::Corrupt),
            Reason::HrrSniChanged => {
                self.stats.count_listener(ListenerEvent::HrrSniChanged);
                // The first ClientHello's session was counted as a hit; this connection
                // resumes nothing.
                if conn.outcome == Outcome::Resumed {
                    self.stats.uncount(vhost, Event::Hit);
                }
                conn.outcome = Outcome::Full;
            }
        }
        self.log_refusal(conn, reason);
    }

    /// Counts a miss once per connection, as hits are.
    fn missed(&self, conn: &mut Conn) {
        if !conn.missed {
            self.stats.count(conn.vhost, Event::Miss);
        }
        conn.missed = true;
    }

    /// The log line of each reason.
    fn log_refusal(&self, conn: &Conn, reason: Reason) {
        let name = &self.vhosts.get(conn.vhost).name;
        match reason {
            Reason::Corrupt(_) => self.warn_limited(&self.corrupt_warnings, || {
                format!("vhost {name}: corrupt stored session dropped")
            }),
            Reason::Rule(rule) => self.log(Level::Info, || {
                format!(
                    "vhost {name} sni {:?}: resumption refused ({}); full handshake",
                    conn.sni(),
                    self.policy.name(usize::from(rule))
                )
            }),
            Reason::TicketWithoutRecord => self.log(Level::Info, || {
                format!("vhost {name}: ticket without snicache data refused; full handshake")
            }),
            Reason::TicketTooLarge => self.log(Level::Debug, || {
                format!("vhost {name}: ticket session larger than the host's buffer; full handshake")
            }),
            Reason::HrrSniChanged => self.log(Level::Info, || {
                format!(
                    "vhost {name}: server_name changed across HelloRetryRequest (first {:?}) refused with illegal_parameter",
                    conn.sni()
                )
            }),
            Reason::NoStore
            | Reason::BadId
            | Reason::Miss
            | Reason::ExpiredInStore
            | Reason::StoreError
            | Reason::TicketUnknownKey
            | Reason::TicketForged => {}
        }
    }
}
