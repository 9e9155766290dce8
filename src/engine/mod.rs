//! The engine: virtual hosts, the resumption policy, per-connection decisions and stats, over a
//! store. Safe Rust, no SSL objects: the C surface feeds it facts read through the host table.
//! Every way a resumption attempt ends, and what it counts, is in `decision.rs`.

pub mod decision;
pub mod early_data;
pub mod handshake;
pub mod policy;
pub mod stats;
pub mod tickets;
pub mod vhosts;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::store::Store;
use policy::Policy;
use stats::Stats;
use vhosts::VHosts;

/// Log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

/// Where log lines go (the host's log through a C callback, or a Rust logger).
pub trait Log: Send + Sync {
    fn enabled(&self, level: Level) -> bool;
    fn write(&self, level: Level, message: &str);
}

pub struct Engine {
    pub vhosts: VHosts,
    pub policy: Policy,
    pub store: Box<dyn Store>,
    pub stats: Stats,
    /// Refuse unknown SNI with `unrecognized_name` instead of using the default vhost.
    pub strict_sni: bool,
    pub log: Option<Arc<dyn Log>>,
    /// The host accepts TLS 1.3 early data: tickets get single-use entries (`early_data`).
    pub early_data: bool,
    /// Rate limits for warnings that can repeat on every handshake (a failing store).
    store_warnings: WarnLimit,
    corrupt_warnings: WarnLimit,
}

/// At most one warning of a kind per second; the ones dropped are counted and reported with the
/// next one written.
#[derive(Default)]
pub struct WarnLimit {
    last: std::sync::atomic::AtomicU64,
    dropped: std::sync::atomic::AtomicU64,
}

impl Engine {
    pub fn new(
        vhosts: VHosts,
        policy: Policy,
        store: Box<dyn Store>,
        strict_sni: bool,
        log: Option<Arc<dyn Log>>,
    ) -> Engine {
        let stats = Stats::new(vhosts.len(), policy.len());
        Engine::with_stats(vhosts, policy, store, stats, strict_sni, log)
    }

    /// An engine counting into `stats` (for example cells in shared memory, see
    /// `Stats::with_cells`), sized for these vhosts and this policy.
    pub fn with_stats(
        vhosts: VHosts,
        policy: Policy,
        store: Box<dyn Store>,
        stats: Stats,
        strict_sni: bool,
        log: Option<Arc<dyn Log>>,
    ) -> Engine {
        Engine {
            vhosts,
            policy,
            store,
            stats,
            strict_sni,
            log,
            store_warnings: WarnLimit::default(),
            corrupt_warnings: WarnLimit::default(),
            early_data: false,
        }
    }

    /// Writes a warning unless one of the same kind was written in the last second.
    fn warn_limited(&self, limit: &WarnLimit, message: impl FnOnce() -> String) {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.log.as_ref().is_some_and(|l| l.enabled(Level::Warn)) {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = limit.last.load(Relaxed);
        if now <= last
            || limit
                .last
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_err()
        {
            limit.dropped.fetch_add(1, Relaxed);
            return;
        }
        let dropped = limit.dropped.swap(0, Relaxed);
        self.log(Level::Warn, || match dropped {
            0 => message(),
            n => format!(
                "{} ({n} more like it in the last second not logged)",
                message()
            ),
        });
    }

    /// Formats and writes a line only when the level is enabled.
    pub fn log(&self, level: Level, message: impl FnOnce() -> String) {
        if let Some(log) = &self.log {
            if log.enabled(level) {
                log.write(level, &message());
            }
        }
    }
}

/// The session id context of a vhost: SHA-256 over its name, certificate and client-auth mode,
/// so a change of any of them makes older sessions unusable (R2, R10; nginx does the same).
pub fn session_id_context(name: &str, cert_der: &[u8], verify_mode: i32) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"snicache sid_ctx v1\0");
    h.update(name.as_bytes());
    h.update([0]);
    h.update(cert_der);
    h.update(verify_mode.to_be_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::stats::{BuiltinRule, Event, Group, ListenerEvent};
    use super::*;
    use crate::engine::decision::{Decision, Reason};
    use crate::engine::handshake::{Conn, HostFacts, NewSession, Outcome};
    use crate::engine::vhosts::ServerName;
    use crate::engine::vhosts::{RouteError, VHostOptions};
    use crate::store::memory::MemoryStore;
    use crate::store::Usage;

    fn engine(single_use: bool) -> Engine {
        let mut v = VHosts::default();
        let o = VHostOptions {
            timeout: 300,
            is_default: true,
            single_use,
            allow_no_ems: false,
            no_store: false,
        };
        v.add("a.test", 1, o).unwrap();
        v.add(
            "*.b.test",
            2,
            VHostOptions {
                is_default: false,
                ..o
            },
        )
        .unwrap();
        Engine::new(
            v,
            Policy::default(),
            Box::new(MemoryStore::new(1 << 20, 1000, 2)),
            false,
            None,
        )
    }

    fn sn(ext: Option<&[u8]>) -> ServerName<'_> {
        ext.map_or(ServerName::Absent, ServerName::Extension)
    }

    fn sni_ext(name: &str) -> Vec<u8> {
        let mut e = ((name.len() + 3) as u16).to_be_bytes().to_vec();
        e.push(0);
        e.extend_from_slice(&(name.len() as u16).to_be_bytes());
        e.extend_from_slice(name.as_bytes());
        e
    }

    fn new_session(id: &[u8]) -> NewSession<'_> {
        NewSession {
            id,
            created: 1000,
            version: 0x0303,
            cipher: 0xc02f,
            ems: true,
            alpn: b"",
            der: b"DER",
            local: None,
        }
    }

    const ALL: &dyn Fn(u16) -> bool = &|_| true;

    fn at(now: u64) -> HostFacts<'static> {
        HostFacts {
            now,
            version: 0x0303,
            cipher_enabled: ALL,
        }
    }

    /// Looks `id` up and commits the decision as a host library that takes every session it is
    /// handed: true when the connection resumed.
    fn resumes(e: &Engine, c: &mut Conn, id: &[u8], now: u64) -> bool {
        let d = e.lookup(c, id, &at(now), None);
        let resume = d.is_resume();
        e.commit(c, d);
        resume
    }

    /// As `resumes`, for a decrypted ticket carrying `appdata`.
    fn ticket_resumes(e: &Engine, c: &mut Conn, appdata: Option<&[u8]>, now: u64) -> bool {
        let d = e.check_ticket(c, appdata, &at(now));
        let resume = d.is_resume();
        e.commit(c, d);
        resume
    }

    #[test]
    fn same_name_resumes_other_name_is_refused_and_counted() {
        let e = engine(false);
        let mut c = e
            .client_hello(sn(Some(&sni_ext("x.b.test"))), Some(true))
            .unwrap();
        assert_eq!(c.vhost, 1);
        assert!(e.store_session(&mut c, new_session(b"id1")));
        let mut again = e
            .client_hello(sn(Some(&sni_ext("X.B.TEST"))), Some(true))
            .unwrap();
        assert!(resumes(&e, &mut again, b"id1", 1001));
        assert_eq!(again.outcome, Outcome::Resumed);
        let mut other = e
            .client_hello(sn(Some(&sni_ext("y.b.test"))), Some(true))
            .unwrap();
        assert!(!resumes(&e, &mut other, b"id1", 1001));
        assert_eq!(other.outcome, Outcome::Refused(1));
        assert_eq!(e.stats.refusals(Some(1), 1), 1);
        // Offered again by the second ClientHello after a HelloRetryRequest: counted once.
        assert!(!resumes(&e, &mut other, b"id1", 1001));
        assert_eq!(e.stats.refusals(Some(1), 1), 1);
        let mut cross = e
            .client_hello(sn(Some(&sni_ext("a.test"))), Some(true))
            .unwrap();
        assert!(
            !resumes(&e, &mut cross, b"id1", 1001),
            "another vhost never sees the key"
        );
        assert_eq!(e.snapshot(None).hits, 1);
    }

    /// Stores session `id1` on one connection; a new connection to resume it on.
    fn stored_id1(e: &Engine) -> Conn {
        let mut c = e.client_hello(sn(None), Some(true)).unwrap();
        e.store_session(&mut c, new_session(b"id1"));
        e.client_hello(sn(None), Some(true)).unwrap()
    }

    #[test]
    fn fatal_alert_leaves_a_tombstone() {
        let e = engine(false);
        let mut r = stored_id1(&e);
        assert!(resumes(&e, &mut r, b"id1", 1001));
        e.invalidate(&mut r, 1002);
        let mut again = e.client_hello(sn(None), Some(true)).unwrap();
        assert!(!resumes(&e, &mut again, b"id1", 1003));
        assert_eq!(
            e.stats
                .refusals(None, e.policy.position("invalidated").unwrap()),
            1
        );
    }

    #[test]
    fn single_use_sessions_resume_once() {
        let e = engine(true);
        let mut r = stored_id1(&e);
        assert!(resumes(&e, &mut r, b"id1", 1001));
        let mut r2 = e.client_hello(sn(None), Some(true)).unwrap();
        assert!(!resumes(&e, &mut r2, b"id1", 1001));
        assert_eq!(e.stats.event(None, Event::SingleUse), 1);
    }

    #[test]
    fn a_session_the_host_could_not_take_is_no_hit() {
        let e = engine(false);
        let mut r = stored_id1(&e);
        let Decision::Resume(resume) = e.lookup(&r, b"id1", &at(1001), None) else {
            panic!("the policy allows the session");
        };
        assert_eq!(
            resume.session(),
            b"DER",
            "the record decoded once, session at its tail"
        );
        e.commit(&mut r, resume.undecodable());
        let s = e.snapshot(None);
        assert_eq!((s.hits, s.corrupt, s.entries), (0, 1, 0), "{s:?}");
        assert_eq!(r.outcome(), Outcome::Full);
        // A ticket without snicache's record counts as corrupt too, and as no hit.
        assert!(!ticket_resumes(&e, &mut r, None, 1001));
        assert_eq!(e.snapshot(None).corrupt, 2);
        assert_eq!(e.snapshot(None).hits, 0);
    }

    #[test]
    fn a_single_use_session_offered_twice_at_once_resumes_once() {
        let e = engine(true);
        let mut a = stored_id1(&e);
        let mut b = e.client_hello(sn(None), Some(true)).unwrap();
        // Both look it up before either has resumed: the lookup takes it, so only one may.
        let first = e.lookup(&a, b"id1", &at(1001), None);
        let second = e.lookup(&b, b"id1", &at(1001), None);
        assert!(first.is_resume());
        assert!(!second.is_resume());
        e.commit(&mut a, first);
        e.commit(&mut b, second);
        assert_eq!(e.snapshot(None).hits, 1);
        assert_eq!(e.stats.event(None, Event::SingleUse), 1);
        assert_eq!(e.store.usage(None).entries, 0, "taken");
    }

    #[test]
    fn bad_input_is_counted_not_fatal() {
        let e = engine(false);
        assert_eq!(
            e.client_hello(sn(Some(b"\x00\x05\x00\x00\x02a\0")), None)
                .err(),
            Some(RouteError::Malformed)
        );
        let mut c = e.client_hello(sn(None), None).unwrap();
        assert!(!resumes(&e, &mut c, &[1u8; 33], 0));
        assert!(!resumes(&e, &mut c, &[], 0));
        assert_eq!(e.snapshot(None).bad_ids, 2);
        e.store
            .put(
                crate::store::Key::new(0, b"junk").unwrap(),
                crate::store::Value::new(vec![1, 2, 3]),
                u64::MAX,
            )
            .unwrap();
        assert!(!resumes(&e, &mut c, b"junk", 0));
        assert_eq!(e.snapshot(None).corrupt, 1);
        assert_eq!(e.store.usage(None).entries, 0, "corrupt record dropped");
    }

    /// A store that answers "pending" until released, like a remote store still fetching.
    struct LateStore {
        inner: MemoryStore,
        ready: Arc<std::sync::atomic::AtomicBool>,
    }

    impl crate::store::Store for LateStore {
        fn get(&self, key: &crate::store::Key, now: u64) -> crate::store::Lookup {
            if self.ready.load(std::sync::atomic::Ordering::SeqCst) {
                self.inner.get(key, now)
            } else {
                crate::store::Lookup::Pending
            }
        }
        fn put(
            &self,
            key: crate::store::Key,
            value: crate::store::Value,
            expires_at: u64,
        ) -> Result<(), crate::store::StoreError> {
            self.inner.put(key, value, expires_at)
        }
        fn remove(&self, key: &crate::store::Key) -> bool {
            self.inner.remove(key)
        }
        fn usage(&self, vhost: Option<u32>) -> Usage {
            self.inner.usage(vhost)
        }
    }

    #[test]
    fn a_pending_store_answer_is_passed_on_and_retried() {
        let mut v = VHosts::default();
        v.add(
            "a.test",
            1,
            VHostOptions {
                timeout: 300,
                is_default: true,
                single_use: false,
                allow_no_ems: false,
                no_store: false,
            },
        )
        .unwrap();
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let store = LateStore {
            inner: MemoryStore::new(1 << 20, 100, 1),
            ready: ready.clone(),
        };
        let e = Engine::new(v, Policy::default(), Box::new(store), false, None);
        let mut r = stored_id1(&e);
        let d = e.lookup(&r, b"id1", &at(1001), None);
        assert!(matches!(d, Decision::Pending));
        e.commit(&mut r, d);
        assert_eq!(e.stats.event(None, stats::Event::Pending), 1);
        ready.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(
            resumes(&e, &mut r, b"id1", 1001),
            "the retry finds the session"
        );
    }

    #[test]
    fn the_offered_session_id_is_the_stateful_psk_identity_or_a_tls12_session_id() {
        use crate::engine::handshake::offered_session_id;
        let psk = |id: &[u8]| {
            let mut ids = (id.len() as u16).to_be_bytes().to_vec();
            ids.extend_from_slice(id);
            ids.extend_from_slice(&[0, 0, 0, 1]); // obfuscated_ticket_age
            let mut ext = (ids.len() as u16).to_be_bytes().to_vec();
            ext.extend_from_slice(&ids);
            ext.extend_from_slice(&[0, 33, 32]); // binders
            ext.extend_from_slice(&[0; 32]);
            ext
        };
        let tls13 = [4u8, 3, 4, 3, 3];
        let tls12 = [2u8, 3, 3];
        let (stateful, legacy) = ([7u8; 32], [9u8; 32]);
        let ext = psk(&stateful);
        assert_eq!(
            offered_session_id(Some(&ext), Some(&tls13), false, &legacy),
            Some(&stateful[..])
        );
        let ticket = psk(&[5u8; 200]);
        assert_eq!(
            offered_session_id(Some(&ticket), Some(&tls13), false, &legacy),
            None
        );
        assert_eq!(
            offered_session_id(Some(&ext[..10]), Some(&tls13), false, &legacy),
            None
        );
        assert_eq!(offered_session_id(None, Some(&tls13), false, &legacy), None);
        assert_eq!(
            offered_session_id(None, Some(&tls12), false, &legacy),
            Some(&legacy[..])
        );
        assert_eq!(
            offered_session_id(None, None, false, &legacy),
            Some(&legacy[..])
        );
        assert_eq!(offered_session_id(None, None, false, &[]), None);
        assert_eq!(
            offered_session_id(None, Some(&tls12), true, &legacy),
            None,
            "a ticket decides"
        );
        assert_eq!(
            offered_session_id(None, Some(&[9, 3]), false, &legacy),
            Some(&legacy[..])
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "ticket ids come from BoringSSL (crypto::random)")]
    fn tickets_carry_their_vhost_and_sni() {
        let e = engine(false);
        let mut c = e
            .client_hello(sn(Some(&sni_ext("x.b.test"))), Some(true))
            .unwrap();
        let data = e.ticket_appdata(&mut c, &new_session(b""));
        let mut same = e
            .client_hello(sn(Some(&sni_ext("x.b.test"))), Some(true))
            .unwrap();
        assert!(ticket_resumes(&e, &mut same, Some(&data), 1001));
        let mut other = e
            .client_hello(sn(Some(&sni_ext("a.test"))), Some(true))
            .unwrap();
        assert!(!ticket_resumes(&e, &mut other, Some(&data), 1001));
        assert_eq!(other.outcome, Outcome::Refused(0));
        let mut none = e
            .client_hello(sn(Some(&sni_ext("x.b.test"))), Some(true))
            .unwrap();
        assert!(!ticket_resumes(&e, &mut none, None, 1001));
    }

    #[test]
    #[cfg_attr(miri, ignore = "ticket ids come from BoringSSL (crypto::random)")]
    fn a_fatal_alert_revokes_the_tickets_a_connection_used_or_was_issued() {
        let e = engine(false);
        let invalidated = e.policy.position("invalidated").unwrap();
        let hello = || {
            e.client_hello(sn(Some(&sni_ext("a.test"))), Some(true))
                .unwrap()
        };
        // Two tickets issued on one connection; a third on another.
        let mut born = hello();
        let t1 = e.ticket_appdata(&mut born, &new_session(b""));
        let mut other = hello();
        let t2 = e.ticket_appdata(&mut other, &new_session(b""));
        assert_ne!(t1, t2, "every ticket has its own identity");
        // t1 resumes, then its connection ends with a fatal alert.
        let mut used = hello();
        assert!(ticket_resumes(&e, &mut used, Some(&t1), 1001));
        e.invalidate(&mut used, 1002);
        assert_eq!(e.snapshot(None).invalidations, 1);
        let mut again = hello();
        assert!(!ticket_resumes(&e, &mut again, Some(&t1), 1003));
        assert_eq!(again.outcome, Outcome::Refused(invalidated as u16));
        assert_eq!(e.stats.refusals(None, invalidated), 1);
        // t2 is untouched; a fatal alert on the connection that issued it revokes it.
        assert!(ticket_resumes(&e, &mut hello(), Some(&t2), 1003));
        e.invalidate(&mut other, 1004);
        assert!(!ticket_resumes(&e, &mut hello(), Some(&t2), 1005));
        assert_eq!(e.stats.refusals(None, invalidated), 2);
        // The revocation ends with the ticket's lifetime (created 1000 + 300 s): then `expired`.
        let mut late = hello();
        assert!(!ticket_resumes(&e, &mut late, Some(&t1), 1300));
        assert_eq!(
            late.outcome,
            Outcome::Refused(e.policy.position("expired").unwrap() as u16)
        );
        // A ticket without an identity (format 1) still resumes: nothing to revoke it by.
        let mut meta = crate::record::decode(&t2).unwrap().meta;
        meta.created = 1000;
        let old = crate::record::encode(&meta, &[]).unwrap();
        assert!(ticket_resumes(&e, &mut hello(), Some(&old), 1003));
    }

    #[test]
    fn server_name_is_acknowledged_only_when_it_selected_the_vhost() {
        let e = engine(false);
        let ack = |sni: Option<&str>| {
            let ext = sni.map(sni_ext);
            e.client_hello(sn(ext.as_deref()), None)
                .unwrap()
                .acknowledges_sni()
        };
        assert!(ack(Some("a.test")));
        assert!(ack(Some("x.b.test")));
        assert!(!ack(Some("unknown.test")), "default vhost, unknown name");
        assert!(!ack(None));
    }

    #[test]
    #[cfg_attr(miri, ignore = "ticket ids come from BoringSSL (crypto::random)")]
    fn second_client_hello_must_keep_the_server_name() {
        let e = engine(false);
        let a = sni_ext("a.test");
        let hello = |sni: Option<&[u8]>| e.client_hello(sn(sni), Some(true)).unwrap();
        // The same name, in any letter case, goes on.
        let mut c = hello(Some(&a));
        assert_eq!(e.second_client_hello(&mut c, sn(Some(&a))), Ok(()));
        assert_eq!(
            e.second_client_hello(&mut c, sn(Some(&sni_ext("A.TEST")))),
            Ok(())
        );
        let mut none = hello(None);
        assert_eq!(e.second_client_hello(&mut none, sn(None)), Ok(()));
        // Changed, removed, added, malformed: refused; a hit of the first hello is taken back.
        let data = e.ticket_appdata(&mut c, &new_session(b""));
        assert!(ticket_resumes(&e, &mut c, Some(&data), 1001));
        assert_eq!(e.stats.event(None, Event::Hit), 1);
        assert!(ticket_resumes(&e, &mut c, Some(&data), 1001), "again");
        assert_eq!(e.stats.event(None, Event::Hit), 1, "one hit per connection");
        assert!(e
            .second_client_hello(&mut c, sn(Some(&sni_ext("b.test"))))
            .is_err());
        assert_eq!(c.outcome, Outcome::Full);
        assert_eq!(e.stats.event(None, Event::Hit), 0);
        assert!(e
            .second_client_hello(&mut hello(Some(&a)), sn(None))
            .is_err());
        assert!(e.second_client_hello(&mut none, sn(Some(&a))).is_err());
        assert_eq!(e.stats.listener(ListenerEvent::HrrSniChanged), 3);
        assert!(e
            .second_client_hello(&mut hello(Some(&a)), sn(Some(b"\x00\x01")))
            .is_err());
        assert_eq!(e.stats.listener(ListenerEvent::MalformedSni), 1);
        assert!(Engine::renews_ticket(0x0304) && !Engine::renews_ticket(0x0303));
    }

    #[test]
    fn misses_and_unknown_ticket_keys_count_once_per_connection() {
        let e = engine(false);
        // OpenSSL looks the session up (and decrypts the ticket) again for the second
        // ClientHello after a HelloRetryRequest.
        let mut c = e
            .client_hello(sn(Some(&sni_ext("a.test"))), Some(true))
            .unwrap();
        assert!(!resumes(&e, &mut c, b"nothing", 1001));
        assert!(e
            .second_client_hello(&mut c, sn(Some(&sni_ext("a.test"))))
            .is_ok());
        assert!(!resumes(&e, &mut c, b"nothing", 1001));
        assert_eq!(e.stats.event(None, Event::Miss), 1);
        e.commit(&mut c, Decision::Full(Reason::TicketUnknownKey));
        e.commit(&mut c, Decision::Full(Reason::TicketUnknownKey));
        assert!(c.ticket_key_unknown);
        assert_eq!(e.stats.event(Some(c.vhost), Event::TicketUnknownKey), 1);
        // Another connection counts again.
        let mut d = e
            .client_hello(sn(Some(&sni_ext("a.test"))), Some(true))
            .unwrap();
        assert!(!resumes(&e, &mut d, b"nothing", 1001));
        e.commit(&mut d, Decision::Full(Reason::TicketUnknownKey));
        assert_eq!(e.stats.event(None, Event::Miss), 2);
        assert_eq!(e.stats.event(None, Event::TicketUnknownKey), 2);
    }

    #[test]
    fn stats_json_shows_every_field_in_its_group() {
        let e = engine(false);
        e.stats.count(0, Event::Hit);
        e.stats.count(0, Event::SingleUse);
        e.stats.refuse(0, 1);
        e.stats.count_listener(ListenerEvent::HrrSniChanged);
        let json = e.stats_json();
        let shown = e
            .snapshot(None)
            .fields()
            .filter(|(f, _)| f.group != Group::Remote);
        for (f, _) in shown {
            assert!(
                json.contains(&format!("\"{}\":", f.name)),
                "{} in {json}",
                f.name
            );
        }
        for rule in BuiltinRule::ALL {
            assert!(
                json.contains(&format!("\"{}\":", rule.name())),
                "{rule:?} in {json}"
            );
        }
        assert!(json.starts_with("{\"total\":{\"hits\":1,"), "{json}");
        assert!(
            json.contains("\"refusals\":{\"vhost\":0,\"sni\":1,"),
            "{json}"
        );
        assert!(json.contains("\"single_use\":1}"), "{json}");
        let listener = "\"listener\":{\"unknown_sni\":0,\"malformed_sni\":0,\"hrr_sni_changed\":1}";
        assert!(json.contains(listener), "{json}");
        assert!(
            json.contains("\"vhosts\":{\"a.test\":{\"hits\":1,"),
            "{json}"
        );
        assert!(json.contains("\"*.b.test\":{\"hits\":0,"), "{json}");
        assert!(!json.contains("\"remote\""), "no remote store: {json}");
        let one = e.snapshot(Some(0));
        assert_eq!((one.hits, one.refusals, one.hrr_sni_changed), (1, 1, 0));
    }

    #[test]
    fn sid_ctx_depends_on_name_cert_and_verify_mode() {
        let base = session_id_context("a.test", b"cert", 0);
        assert_ne!(base, session_id_context("b.test", b"cert", 0));
        assert_ne!(base, session_id_context("a.test", b"cert2", 0));
        assert_ne!(base, session_id_context("a.test", b"cert", 1));
        assert_eq!(base, session_id_context("a.test", b"cert", 0));
    }
}
