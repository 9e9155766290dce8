//! The BoringSSL proof for stateless tickets, asynchronous store lookups and host rules: real
//! BoringSSL handshakes with snicache's ticket AEAD method (`boringssl/host.rs`, the twin of
//! `snicache_ssl.h`'s `snicache_ssl__ticket_aead`), a host store and host rules, all reached
//! through the C ABI with raw pointers as a C host on BoringSSL does.
//!
//! TLS 1.3 resumption on BoringSSL is ticket-only, so every TLS 1.3 scenario here runs on
//! tickets; TLS 1.2 runs on tickets too, and on session ids for the host store.

#[path = "boringssl/harness.rs"]
mod harness;
#[path = "boringssl/host.rs"]
mod host;

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use boring_sys as ffi;
use harness::*;
use snicache::ffi::callbacks::{
    SNICACHE_OUTCOME_FULL, SNICACHE_OUTCOME_REFUSED, SNICACHE_OUTCOME_RESUMED,
};
use snicache::ffi::config::{
    snicache_config, snicache_config_add_rule, snicache_config_set_log,
    snicache_config_set_store_callbacks, snicache_config_set_ticket_keys,
    snicache_config_set_timeout,
};
use snicache::ffi::hooks::{snicache_log_level, snicache_rule_input, snicache_store_status};
use snicache::ffi::snicache_result;
use snicache::ffi::tickets::snicache_cache_rotate_ticket_secret;

const SECRET_A: [u8; 32] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
    27, 28, 29, 30, 31, 32,
];
const SECRET_B: [u8; 32] = [
    32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9,
    8, 7, 6, 5, 4, 3, 2, 1,
];
/// Length of the key name in front of a snicache ticket.
const NAME_LEN: usize = 16;

fn opts<'a>(version: u16, sni: Option<&'a str>, offer: Option<&'a Session>) -> Opts<'a> {
    Opts::new(version, sni, offer)
}

fn outcome(r: &Outcome) -> u32 {
    r.info.as_ref().expect("snicache state").outcome
}

/// `snicache_config_set_ticket_keys` with a 32-byte secret (None: a random one).
fn ticket_keys(config: *mut snicache_config, secret: Option<&[u8; 32]>, rotation: u32) {
    let (p, n) = secret.map_or((std::ptr::null(), 0), |s| (s.as_ptr(), s.len()));
    assert_eq!(
        snicache_config_set_ticket_keys(config, p, n, rotation),
        snicache_result::Ok
    );
}

fn keyed(secret: Option<&[u8; 32]>, like: Option<&Server>) -> Server {
    Server::build_like(&[vhost("a.test")], true, like, |c| {
        ticket_keys(c, secret, 0)
    })
}

fn tickets_stay_with_their_name_and_vhost(version: u16) {
    let server = Server::build(
        &[vhost("a.test"), vhost("b.test"), vhost("*.example.com")],
        true,
        |_| {},
    );
    let client = Client::new();
    let o = |sni, offer| opts(version, sni, offer);

    let a = server.connect(&client, &o(Some("a.test"), None));
    assert!(a.ok && !a.resumed);
    assert!(!a.session().ticket().is_empty(), "a ticket was issued");
    let own = server.connect(&client, &o(Some("a.test"), Some(a.session())));
    assert!(own.ok && own.resumed, "{version:x}: same name resumes");
    assert_eq!(outcome(&own), SNICACHE_OUTCOME_RESUMED);

    // Vhost A's ticket under vhost B: B's keys cannot open it.
    let cross = server.connect(&client, &o(Some("b.test"), Some(a.session())));
    assert!(cross.ok && !cross.resumed, "{version:x}: another vhost");
    assert_eq!(cross.vhost(), Some("b.test"));
    assert_eq!(cross.peer_cn.as_deref(), Some("b.test"));
    assert_eq!(outcome(&cross), SNICACHE_OUTCOME_FULL);
    assert_eq!(server.stats(Some("b.test")).ticket_unknown_key, 1);

    // A wildcard vhost's ticket under another name of that vhost: refused as `sni`.
    let w1 = server.connect(&client, &o(Some("x.example.com"), None));
    let wown = server.connect(&client, &o(Some("x.example.com"), Some(w1.session())));
    assert!(wown.ok && wown.resumed);
    server.connect_refused(
        &client,
        &o(Some("y.example.com"), Some(w1.session())),
        "*.example.com",
        "sni",
        1,
        &format!("{version:x}: other name"),
    );

    // No SNI: the default vhost, whose key opens the ticket, but the name differs.
    server.connect_refused(
        &client,
        &o(None, Some(a.session())),
        "a.test",
        "sni",
        1,
        &format!("{version:x}: no SNI"),
    );

    let st = server.stats(None);
    assert_eq!(
        (st.hits, st.refusals, st.ticket_unknown_key),
        (2, 2, 1),
        "{st:?}"
    );
    assert_eq!(server.refusals(None, "sni"), 2);
    assert_eq!((st.ticket_forged, st.ticket_renewed), (0, 0));

    // Control: BoringSSL's own ticket keys resume the a.test ticket under b.test and no SNI.
    let plain = server_ctx("plain");
    let made = connect(plain, &client, &o(Some("a.test"), None));
    for sni in [Some("b.test"), None] {
        let r = connect(plain, &client, &o(sni, Some(made.session())));
        assert!(
            r.ok && r.resumed,
            "{version:x}: BoringSSL alone under {sni:?}"
        );
    }
    // SAFETY: made by server_ctx, freed once.
    unsafe { ffi::SSL_CTX_free(plain) };
}

#[test]
fn tls12_tickets_stay_with_their_name_and_vhost() {
    tickets_stay_with_their_name_and_vhost(TLS1_2);
}

#[test]
fn tls13_tickets_stay_with_their_name_and_vhost() {
    tickets_stay_with_their_name_and_vhost(TLS1_3);
}

fn forged_and_truncated_tickets(version: u16) {
    let server = keyed(Some(&SECRET_A), None);
    let client = Client::new();
    let o = |offer| opts(version, Some("a.test"), offer);
    let first = server.connect(&client, &o(None));
    assert!(first.ok && !first.resumed);
    let len = first.session().ticket().len();

    let full = |offer: &Session, what: &str| {
        let r = server.connect(&client, &opts(version, Some("a.test"), Some(offer)));
        assert!(r.ok && !r.resumed, "{version:x}: {what} resumed");
        assert_eq!(outcome(&r), SNICACHE_OUTCOME_FULL, "{what}");
    };
    full(
        &first.session().with_ticket(|t| t[len - 1] ^= 1),
        "tag byte flipped",
    );
    full(
        &first.session().with_ticket(|t| t[NAME_LEN + 3] ^= 1),
        "nonce byte flipped",
    );
    full(
        &first.session().with_ticket(|t| t[len / 2] ^= 1),
        "ciphertext byte flipped",
    );
    full(
        &first.session().with_ticket(|t| t.truncate(len - 1)),
        "one byte short",
    );
    full(
        &first.session().with_ticket(|t| t.truncate(NAME_LEN + 4)),
        "truncated to 20",
    );
    let st = server.stats(None);
    assert_eq!((st.ticket_forged, st.ticket_unknown_key), (5, 0), "{st:?}");
    full(
        &first.session().with_ticket(|t| t[0] ^= 1),
        "key name flipped",
    );
    assert_eq!(server.stats(None).ticket_unknown_key, 1);

    let again = server.connect(&client, &o(Some(first.session())));
    assert!(
        again.ok && again.resumed,
        "the genuine ticket still resumes"
    );
    let st = server.stats(None);
    assert_eq!(
        (st.hits, st.ticket_forged, st.refusals),
        (1, 5, 0),
        "{st:?}"
    );
}

#[test]
fn tls12_forged_and_truncated_tickets_give_full_handshakes() {
    forged_and_truncated_tickets(TLS1_2);
}

#[test]
fn tls13_forged_and_truncated_tickets_give_full_handshakes() {
    forged_and_truncated_tickets(TLS1_3);
}

fn fleet(version: u16) {
    let one = keyed(Some(&SECRET_A), None);
    let two = keyed(Some(&SECRET_A), Some(&one));
    let other = keyed(Some(&SECRET_B), Some(&one));
    let random = keyed(None, Some(&one));
    let client = Client::new();
    let o = |offer| opts(version, Some("a.test"), offer);

    let first = one.connect(&client, &o(None));
    assert!(first.ok && !first.resumed);
    let on_two = two.connect(&client, &o(Some(first.session())));
    assert!(on_two.ok && on_two.resumed, "{version:x}: same secret");
    let back = one.connect(&client, &o(Some(on_two.session())));
    assert!(back.ok && back.resumed, "{version:x}: and back");
    let on_other = other.connect(&client, &o(Some(first.session())));
    assert!(
        on_other.ok && !on_other.resumed,
        "{version:x}: other secret"
    );
    assert_eq!(other.stats(None).ticket_unknown_key, 1);
    let on_random = random.connect(&client, &o(Some(first.session())));
    assert!(
        on_random.ok && !on_random.resumed,
        "{version:x}: random secret"
    );
    assert_eq!(random.stats(None).ticket_unknown_key, 1);
    assert_eq!((one.stats(None).hits, two.stats(None).hits), (1, 1));
}

#[test]
fn tls12_servers_sharing_a_secret_open_each_others_tickets() {
    fleet(TLS1_2);
}

#[test]
fn tls13_servers_sharing_a_secret_open_each_others_tickets() {
    fleet(TLS1_3);
}

fn key_name(s: &Session) -> Vec<u8> {
    s.ticket()[..NAME_LEN].to_vec()
}

fn secret_rotation(version: u16) {
    let server = keyed(Some(&SECRET_A), None);
    let client = Client::new();
    let o = |offer| opts(version, Some("a.test"), offer);
    let first = server.connect(&client, &o(None));
    assert!(first.ok);
    assert_eq!(
        snicache_cache_rotate_ticket_secret(server.cache, SECRET_B.as_ptr(), SECRET_B.len()),
        snicache_result::Ok
    );
    assert_eq!(
        snicache_cache_rotate_ticket_secret(server.cache, SECRET_B.as_ptr(), 8),
        snicache_result::InvalidParameter
    );
    let renewed = server.connect(&client, &o(Some(first.session())));
    assert!(
        renewed.ok && renewed.resumed,
        "{version:x}: the old ticket opens"
    );
    assert_eq!(server.stats(None).ticket_renewed, 1);
    if version == TLS1_3 {
        // Every TLS 1.3 handshake ends with new tickets, sealed under the new secret.
        assert_ne!(key_name(renewed.session()), key_name(first.session()));
        let fresh = server.connect(&client, &o(Some(renewed.session())));
        assert!(fresh.ok && fresh.resumed);
        assert_eq!(server.stats(None).ticket_renewed, 1, "no renewal needed");
    } else {
        // BoringSSL's ticket AEAD method has no way to ask for a TLS 1.2 ticket renewal
        // (only its ticket key callback has): the client keeps the old ticket.
        assert_eq!(renewed.session().ticket(), first.session().ticket());
        let fresh = server.connect(&client, &o(None));
        assert_ne!(key_name(fresh.session()), key_name(first.session()));
        let again = server.connect(&client, &o(Some(fresh.session())));
        assert!(again.ok && again.resumed);
        assert_eq!(
            server.stats(None).ticket_renewed,
            1,
            "a new ticket needs no renewal"
        );
    }
}

#[test]
fn tls12_secret_rotation_keeps_old_tickets_opening() {
    secret_rotation(TLS1_2);
}

#[test]
fn tls13_secret_rotation_keeps_old_tickets_opening_and_reissues() {
    secret_rotation(TLS1_3);
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn sleep_until(t: f64) {
    let d = t - now_s();
    if d > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(d));
    }
}

/// Keys rotate every second and then decrypt for the session lifetime (3 s) more, so a ticket
/// lives as long as its session, past two rotations; then its key is gone. The first ticket is
/// issued just after an epoch boundary to keep the timing exact.
fn time_rotation(version: u16) {
    let server = Server::build(&[vhost("a.test")], true, |c| {
        ticket_keys(c, Some(&SECRET_A), 1);
        assert_eq!(snicache_config_set_timeout(c, 3), snicache_result::Ok);
    });
    let client = Client::new();
    let o = |offer| opts(version, Some("a.test"), offer);
    let t0 = (now_s() as u64 + 1) as f64 + 0.1;
    sleep_until(t0);
    let first = server.connect(&client, &o(None));
    assert!(first.ok);
    sleep_until(t0 + 1.1);
    let renewed = server.connect(&client, &o(Some(first.session())));
    assert!(renewed.ok && renewed.resumed, "{version:x}: decrypt window");
    assert_eq!(server.stats(None).ticket_renewed, 1);
    sleep_until(t0 + 2.5);
    let older = server.connect(&client, &o(Some(first.session())));
    assert!(older.ok && older.resumed, "{version:x}: past two rotations");
    if version == TLS1_3 {
        // The ticket issued in the window still opens.
        let fresh = server.connect(&client, &o(Some(renewed.session())));
        assert!(fresh.ok && fresh.resumed);
    }
    sleep_until(t0 + 4.0);
    let late = server.connect(&client, &o(Some(first.session())));
    assert!(late.ok && !late.resumed, "{version:x}: after the window");
    assert_eq!(outcome(&late), SNICACHE_OUTCOME_FULL);
    assert_eq!(server.stats(None).ticket_unknown_key, 1);
}

#[test]
fn tls12_ticket_keys_rotate_with_time() {
    time_rotation(TLS1_2);
}

#[test]
fn tls13_ticket_keys_rotate_with_time() {
    time_rotation(TLS1_3);
}

fn expiry(version: u16) {
    let server = Server::build(&LIFETIME_VHOSTS, true, |c| {
        assert_eq!(snicache_config_set_timeout(c, 1), snicache_result::Ok)
    });
    let client = Client::new();
    let names = ["a.test", "b.test", "c.test"];
    let made: Vec<_> = names
        .iter()
        .map(|n| server.connect(&client, &opts(version, Some(n), None)))
        .collect();
    assert!(made.iter().all(|r| r.ok && !r.resumed));
    std::thread::sleep(Duration::from_millis(2100));
    for (name, r, resumes) in [
        (names[0], &made[0], false),
        (names[1], &made[1], false),
        (names[2], &made[2], true),
    ] {
        let again = server.connect(&client, &opts(version, Some(name), Some(r.session())));
        assert!(again.ok, "{name}");
        assert_eq!(again.resumed, resumes, "{version:x} {name}");
        if !resumes {
            assert_eq!(again.reason(), Some("expired"), "{name}");
            assert_eq!(server.refusals(Some(name), "expired"), 1, "{name}");
        }
    }
    assert_eq!(server.stats(None).hits, 1);
}

#[test]
fn tls12_tickets_expire_with_their_vhost_lifetime() {
    expiry(TLS1_2);
}

#[test]
fn tls13_tickets_expire_with_their_vhost_lifetime() {
    expiry(TLS1_3);
}

/// What the BoringSSL host does with its TLS 1.3 suites. BoringSSL 5.4 makes them configurable
/// (`SSL_CTX_set1_tls13_ciphers`) but offers no way to read a context's list back, and a
/// connection keeps the list it copied from the listener at `SSL_new`: `SSL_set_SSL_CTX` to the
/// vhost's context does not bring the vhost's list. BoringSSL itself resumes a TLS 1.3 ticket
/// only with the very suite it negotiates.
#[test]
fn tls13_suites_on_boringssl() {
    let client = Client::new();
    let only_aes256 = [ffi::SSL_CIPHER_AES_256_GCM_SHA384 as u16];
    let o = |offer| opts(TLS1_3, Some("a.test"), offer);

    // The vhost's own TLS 1.3 list does not reach its connections.
    let server = keyed(None, None);
    let first = server.connect(&client, &o(None));
    assert_eq!(first.cipher, 0x1301);
    // SAFETY: the vhost's live context; no handshake runs concurrently.
    let set = unsafe {
        ffi::SSL_CTX_set1_tls13_ciphers(server.vhosts[0], only_aes256.as_ptr(), ptr(), 1)
    };
    assert_eq!(set, 1);
    let r = server.connect(&client, &o(Some(first.session())));
    assert!(
        r.ok && r.resumed && r.cipher == 0x1301,
        "BoringSSL ignores the vhost's list"
    );

    // The listener's list does: BoringSSL negotiates AES-256 and will not resume an AES-128
    // session. snicache cannot see that suite through the host table (no reader exists), so
    // only BoringSSL's decision is checked here.
    let server = keyed(None, None);
    let first = server.connect(&client, &o(None));
    // SAFETY: the listener's live context; no handshake runs concurrently.
    let set =
        unsafe { ffi::SSL_CTX_set1_tls13_ciphers(server.listener, only_aes256.as_ptr(), ptr(), 1) };
    assert_eq!(set, 1);
    let r = server.connect(&client, &o(Some(first.session())));
    assert!(r.ok && !r.resumed && r.cipher == 0x1302);
    let fresh = server.connect(&client, &o(Some(r.session())));
    assert!(fresh.ok && fresh.resumed && fresh.cipher == 0x1302);
}

fn ptr() -> *const u32 {
    std::ptr::null()
}

/// (vhost name, session id) → record.
type Records = HashMap<(Vec<u8>, Vec<u8>), Vec<u8>>;

/// A store of the host's own (`snicache_config_set_store_callbacks`) that can answer late.
#[derive(Default)]
struct HostStore {
    map: Mutex<Records>,
    /// 0 answers, 1 pending, 2 error.
    mode: AtomicU32,
    gets: AtomicU32,
    puts: AtomicU32,
}

/// # Safety
/// `p`/`n` describe `n` readable bytes (or p NULL with n 0).
unsafe fn bytes<T>(p: *const T, n: usize) -> Vec<u8> {
    if p.is_null() {
        Vec::new()
    } else {
        std::slice::from_raw_parts(p.cast::<u8>(), n).to_vec()
    }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn store_get(
    ud: *mut c_void,
    vhost: *const c_char,
    vhost_len: usize,
    id: *const u8,
    id_len: usize,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> u32 {
    let s = &*(ud as *const HostStore);
    s.gets.fetch_add(1, Ordering::SeqCst);
    match s.mode.load(Ordering::SeqCst) {
        1 => return snicache_store_status::Pending as u32,
        2 => return snicache_store_status::Error as u32,
        _ => {}
    }
    let key = (bytes(vhost, vhost_len), bytes(id, id_len));
    match s.map.lock().unwrap().get(&key) {
        Some(v) if v.len() <= cap => {
            std::ptr::copy_nonoverlapping(v.as_ptr(), buf, v.len());
            *out_len = v.len();
            snicache_store_status::Found as u32
        }
        _ => snicache_store_status::Missing as u32,
    }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn store_put(
    ud: *mut c_void,
    vhost: *const c_char,
    vhost_len: usize,
    id: *const u8,
    id_len: usize,
    value: *const u8,
    value_len: usize,
    _expires_at: u64,
) -> c_int {
    let s = &*(ud as *const HostStore);
    s.puts.fetch_add(1, Ordering::SeqCst);
    let key = (bytes(vhost, vhost_len), bytes(id, id_len));
    s.map.lock().unwrap().insert(key, bytes(value, value_len));
    0
}

unsafe extern "C" fn store_remove(
    ud: *mut c_void,
    vhost: *const c_char,
    vhost_len: usize,
    id: *const u8,
    id_len: usize,
) -> c_int {
    let s = &*(ud as *const HostStore);
    let key = (bytes(vhost, vhost_len), bytes(id, id_len));
    c_int::from(s.map.lock().unwrap().remove(&key).is_some())
}

/// Session ids (TLS 1.2) through a host store; the store outlives the cache (leaked).
fn store_server() -> (Server, &'static HostStore) {
    let store: &'static HostStore = Box::leak(Box::default());
    let server = Server::new(&[vhost("a.test"), vhost("*.example.com")], |c| {
        let ud = store as *const HostStore as *mut c_void;
        assert_eq!(
            snicache_config_set_store_callbacks(
                c,
                Some(store_get),
                Some(store_put),
                Some(store_remove),
                ud
            ),
            snicache_result::Ok
        );
    });
    (server, store)
}

#[test]
fn a_pending_lookup_pauses_the_handshake_until_the_store_answers() {
    let (server, store) = store_server();
    let client = Client::new();
    let o = |sni, offer| opts(TLS1_2, sni, offer);
    let first = server.connect(&client, &o(Some("x.example.com"), None));
    assert!(first.ok && !first.resumed);
    assert_eq!(store.puts.load(Ordering::SeqCst), 1);

    // The store answers late: twice "pending", then the record. Each time the server's
    // SSL_do_handshake stops with SSL_ERROR_PENDING_SESSION and the host drives it again.
    store.mode.store(1, Ordering::SeqCst);
    let paused = AtomicU32::new(0);
    let release = |_| {
        let n = paused.fetch_add(1, Ordering::SeqCst) + 1;
        assert_eq!(store.gets.load(Ordering::SeqCst), n, "asked once per drive");
        if n == 2 {
            store.mode.store(0, Ordering::SeqCst);
        }
    };
    let late = server.connect(
        &client,
        &Opts {
            on_pending: Some(&release),
            ..o(Some("x.example.com"), Some(first.session()))
        },
    );
    assert_eq!(late.pending, 2, "SSL_ERROR_PENDING_SESSION twice");
    assert!(late.ok && late.resumed, "resumed once the store answered");
    assert_eq!(outcome(&late), SNICACHE_OUTCOME_RESUMED);
    assert_eq!(store.gets.load(Ordering::SeqCst), 3);
    let st = server.stats(None);
    assert_eq!((st.pending, st.hits, st.misses), (2, 1, 0), "{st:?}");

    // The policy still decides once the answer arrives: another name of the vhost is refused.
    store.mode.store(1, Ordering::SeqCst);
    let release = |_| store.mode.store(0, Ordering::SeqCst);
    let other = server.connect(
        &client,
        &Opts {
            on_pending: Some(&release),
            ..o(Some("y.example.com"), Some(first.session()))
        },
    );
    assert_eq!(other.pending, 1);
    assert!(other.ok && !other.resumed);
    assert_eq!(other.reason(), Some("sni"));
    assert_eq!(server.stats(None).pending, 3);

    // A failing store: a full handshake, counted.
    store.mode.store(2, Ordering::SeqCst);
    let failing = server.connect(&client, &o(Some("x.example.com"), Some(first.session())));
    assert!(failing.ok && !failing.resumed && failing.pending == 0);
    assert_eq!(outcome(&failing), SNICACHE_OUTCOME_FULL);
    let st = server.stats(None);
    assert_eq!((st.store_errors, st.hits, st.pending), (1, 1, 3), "{st:?}");
    store.mode.store(0, Ordering::SeqCst);
    let again = server.connect(&client, &o(Some("x.example.com"), Some(first.session())));
    assert!(again.ok && again.resumed);
}

#[derive(Default)]
struct RuleData {
    calls: AtomicU32,
    bad_input: AtomicU32,
}

/// # Safety
/// `p`/`n` as given by snicache (NULL when absent).
unsafe fn text(p: *const c_char, n: usize) -> Option<String> {
    (!p.is_null()).then(|| String::from_utf8_lossy(&bytes(p, n)).into_owned())
}

unsafe extern "C" fn no_blocked(ud: *mut c_void, input: *const snicache_rule_input) -> c_int {
    let d = &*(ud as *const RuleData);
    let i = &*input;
    d.calls.fetch_add(1, Ordering::SeqCst);
    if i.vhost.is_null()
        || i.vhost_len == 0
        || !(0x0303..=0x0304).contains(&i.version)
        || i.cipher == 0
    {
        d.bad_input.fetch_add(1, Ordering::SeqCst);
    }
    c_int::from(text(i.session_sni, i.session_sni_len).as_deref() == Some("blocked.test"))
}

unsafe extern "C" fn max_age(ud: *mut c_void, input: *const snicache_rule_input) -> c_int {
    let d = &*(ud as *const RuleData);
    d.calls.fetch_add(1, Ordering::SeqCst);
    c_int::from((*input).age >= 2) // 2, not 1: a fresh session may be 1 s old across a tick
}

unsafe extern "C" fn log_line(
    ud: *mut c_void,
    _level: snicache_log_level,
    msg: *const c_char,
    len: usize,
) {
    let l = &*(ud as *const Mutex<String>);
    let mut l = l.lock().unwrap();
    l.push_str(&text(msg, len).unwrap_or_default());
    l.push('\n');
}

struct RuleMode {
    version: u16,
    server: Server,
    blocked: &'static RuleData,
    age: &'static RuleData,
    log: &'static Mutex<String>,
    old: Session,
}

fn rule_setup(version: u16, tickets: bool, client: &Client) -> RuleMode {
    let blocked: &'static RuleData = Box::leak(Box::default());
    let age: &'static RuleData = Box::leak(Box::default());
    let log: &'static Mutex<String> = Box::leak(Box::default());
    let server = Server::build(&[vhost("a.test"), vhost("blocked.test")], tickets, |c| {
        let ud = |p: *const ()| p as *mut c_void;
        for (name, cb, data) in [
            (
                "no-blocked",
                no_blocked as unsafe extern "C" fn(_, _) -> _,
                blocked,
            ),
            ("max-age", max_age, age),
        ] {
            let name = CString::new(name).unwrap();
            let r = snicache_config_add_rule(c, name.as_ptr(), Some(cb), ud(data as *const _ as _));
            assert_eq!(r, snicache_result::Ok);
        }
        let r = snicache_config_set_log(
            c,
            Some(log_line),
            ud(log as *const _ as _),
            snicache_log_level::Info as u32,
        );
        assert_eq!(r, snicache_result::Ok);
    });
    let o = |sni, offer| opts(version, Some(sni), offer);
    // blocked.test: refused by no-blocked, whatever the age.
    let r = server.connect(client, &o("blocked.test", None));
    assert!(r.ok && !r.resumed);
    let again = server.connect(client, &o("blocked.test", Some(r.session())));
    assert!(again.ok && !again.resumed, "{version:x} tickets={tickets}");
    assert_eq!(outcome(&again), SNICACHE_OUTCOME_REFUSED);
    assert_eq!(again.reason(), Some("no-blocked"));
    assert_eq!(server.refusals(Some("blocked.test"), "no-blocked"), 1);
    assert!(log
        .lock()
        .unwrap()
        .contains("resumption refused (no-blocked)"));
    // a.test: a young session passes both rules and resumes; kept to be offered when old.
    let r = server.connect(client, &o("a.test", None));
    let again = server.connect(client, &o("a.test", Some(r.session())));
    assert!(again.ok && again.resumed, "{version:x} tickets={tickets}");
    RuleMode {
        version,
        server,
        blocked,
        age,
        log,
        old: r.session.unwrap(),
    }
}

fn rule_check_old(m: RuleMode, client: &Client) {
    let r = m
        .server
        .connect(client, &opts(m.version, Some("a.test"), Some(&m.old)));
    let what = format!("{:x}: {:?}", m.version, m.log.lock().unwrap());
    assert!(r.ok && !r.resumed, "{what}");
    assert_eq!(outcome(&r), SNICACHE_OUTCOME_REFUSED, "{what}");
    assert_eq!(r.reason(), Some("max-age"), "{what}");
    let s = &m.server;
    assert_eq!(s.refusals(Some("a.test"), "max-age"), 1);
    assert_eq!(s.refusals(None, "max-age"), 1);
    assert_eq!(s.refusals(None, "no-blocked"), 1);
    assert_eq!(s.stats(None).refusals, 2);
    assert!(
        m.log
            .lock()
            .unwrap()
            .contains("resumption refused (max-age)"),
        "{what}"
    );
    assert!(m.blocked.calls.load(Ordering::SeqCst) >= 3);
    assert_eq!(m.blocked.bad_input.load(Ordering::SeqCst), 0, "{what}");
    assert!(m.age.calls.load(Ordering::SeqCst) >= 2);
}

/// A host policy rule written in C (`snicache_config_add_rule`) on BoringSSL, as
/// c-tests/test_rule.c on OpenSSL: TLS 1.2 session ids, TLS 1.2 tickets, TLS 1.3 tickets.
#[test]
fn host_rules_refuse_by_name_counted_and_logged() {
    let client = Client::new();
    let modes: Vec<_> = [(TLS1_2, false), (TLS1_2, true), (TLS1_3, true)]
        .into_iter()
        .map(|(v, t)| rule_setup(v, t, &client))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    for m in modes {
        rule_check_old(m, &client);
    }
}

/// R1 for BoringSSL's ticket AEAD path: a fatal alert on a connection that used a ticket (sent
/// by the server, by the client, or by the client in place of its Finished) or that was issued
/// one revokes that ticket: offered again, it gets a full handshake refused as `invalidated`.
/// An untouched ticket keeps resuming.
fn revoked_after_fatal_alerts(version: u16) {
    let server = keyed(Some(&SECRET_A), None);
    let client = Client::new();
    fn o(version: u16, offer: Option<&Session>) -> Opts<'_> {
        opts(version, Some("a.test"), offer)
    }
    let keep = server.connect(&client, &o(version, None));
    assert!(keep.ok && !keep.resumed);
    let mut refused = 0;
    type Alert = fn(&mut Opts<'_>);
    let alerts: [(&str, Alert); 3] = [
        ("server alert", |o| o.corrupt_after = true),
        ("client alert", |o| o.corrupt_server_after = true),
        ("client alert in place of Finished", |o| {
            o.corrupt_server_flight = true
        }),
    ];
    for (what, alert) in alerts {
        let born = server.connect(&client, &o(version, None));
        assert!(born.ok && !born.resumed);
        let ticket = born.session().copy();
        let clean = server.connect(&client, &o(version, Some(&ticket)));
        assert!(
            clean.ok && clean.resumed,
            "{version:x} {what}: resumes first"
        );
        let before = server.stats(None).invalidations;
        let offered = ticket.copy();
        let mut bad = o(version, Some(&offered));
        alert(&mut bad);
        let broken = server.connect(&client, &bad);
        assert!(
            broken.resumed,
            "{version:x} {what}: resumed, then the alert"
        );
        assert!(
            server.stats(None).invalidations > before,
            "{version:x} {what}: nothing invalidated"
        );
        let again = server.connect(&client, &o(version, Some(&ticket.copy())));
        assert!(
            again.ok && !again.resumed,
            "{version:x} {what}: revoked ticket resumed"
        );
        assert_eq!(again.reason(), Some("invalidated"), "{version:x} {what}");
        refused += 1;
    }
    // A ticket issued on a connection that then ends with a fatal alert.
    let mut bad = o(version, None);
    bad.corrupt_after = true;
    let born = server.connect(&client, &bad);
    assert!(born.ok && !born.resumed);
    let again = server.connect(&client, &o(version, Some(&born.session().copy())));
    assert!(
        again.ok && !again.resumed,
        "{version:x}: issued ticket resumed"
    );
    assert_eq!(again.reason(), Some("invalidated"));
    refused += 1;

    let kept = server.connect(&client, &o(version, Some(&keep.session().copy())));
    assert!(
        kept.ok && kept.resumed,
        "{version:x}: an untouched ticket resumes"
    );
    assert_eq!(server.refusals(None, "invalidated"), refused);
}

#[test]
fn tls12_tickets_are_revoked_after_fatal_alerts() {
    revoked_after_fatal_alerts(TLS1_2);
}

#[test]
fn tls13_tickets_are_revoked_after_fatal_alerts() {
    revoked_after_fatal_alerts(TLS1_3);
}
