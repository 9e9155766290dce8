//! In-process BoringSSL handshakes for the tests: a BoringSSL client and server talking through
//! memory BIOs pumped by hand (so a test can rewrite the ClientHello or corrupt a record on the
//! way), throwaway certificates, and a snicache cache built and attached through the C ABI.
//! The Rust counterpart of `c-tests/harness.c`.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;

use boring::asn1::Asn1Time;
use boring::bn::BigNum;
use boring::ec::{EcGroup, EcKey};
use boring::hash::MessageDigest;
use boring::nid::Nid;
use boring::pkey::PKey;
use boring::x509::{X509NameBuilder, X509};
use boring_sys as ffi;
use snicache::ffi::cache::{
    snicache_cache, snicache_cache_attach, snicache_cache_free, snicache_cache_new,
    snicache_cache_refusals, snicache_cache_stats, snicache_stats,
};
use snicache::ffi::callbacks::{
    snicache_conn_info, snicache_conn_info_get, SNICACHE_OUTCOME_REFUSED,
};
use snicache::ffi::config::{
    snicache_config, snicache_config_add_vhost, snicache_config_free, snicache_config_new,
};
use snicache::ffi::snicache_result;

use super::host;

/// Panics with the call when a snicache function does not return OK.
macro_rules! check_ok {
    ($e:expr) => {{
        let r = $e;
        assert_eq!(r, snicache_result::Ok, "{}", stringify!($e));
    }};
}

pub const TLS1_2: u16 = ffi::TLS1_2_VERSION as u16;
pub const TLS1_3: u16 = ffi::TLS1_3_VERSION as u16;
pub const AD_HANDSHAKE_FAILURE: u8 = 40;
pub const AD_BAD_RECORD_MAC: u8 = 20;
pub const AD_ILLEGAL_PARAMETER: u8 = 47;
pub const AD_UNRECOGNIZED_NAME: u8 = 112;
pub const EXT_SERVER_NAME: u16 = 0;
pub const EXT_EMS: u16 = 23;

thread_local! {
    /// The last fatal alert the client received on this thread.
    static CLIENT_ALERT: Cell<Option<u8>> = const { Cell::new(None) };
    /// Sessions the client got from NewSessionTicket messages on this thread (TLS 1.3).
    static CLIENT_TICKETS: RefCell<Vec<Session>> = const { RefCell::new(Vec::new()) };
}

/// A self-signed P-256 certificate for `cn` and its key, both DER.
fn self_signed(cn: &str) -> (Vec<u8>, Vec<u8>) {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (
        b.build().to_der().unwrap(),
        key.private_key_to_der().unwrap(),
    )
}

/// A server context with a fresh certificate for `cn`, TLS 1.2 and 1.3.
pub fn server_ctx(cn: &str) -> *mut ffi::SSL_CTX {
    let (cert, key) = self_signed(cn);
    // SAFETY: plain BoringSSL calls on a context this function owns.
    unsafe {
        let ctx = ffi::SSL_CTX_new(ffi::TLS_server_method());
        assert!(!ctx.is_null());
        assert_eq!(
            ffi::SSL_CTX_use_certificate_ASN1(ctx, cert.len(), cert.as_ptr()),
            1
        );
        assert_eq!(
            ffi::SSL_CTX_use_PrivateKey_ASN1(ffi::EVP_PKEY_EC, ctx, key.as_ptr(), key.len()),
            1
        );
        assert_eq!(ffi::SSL_CTX_set_min_proto_version(ctx, TLS1_2), 1);
        ctx
    }
}

unsafe extern "C" fn client_info(_ssl: *const ffi::SSL, where_: c_int, ret: c_int) {
    if where_ & ffi::SSL_CB_READ_ALERT == ffi::SSL_CB_READ_ALERT && ret >> 8 == ffi::SSL3_AL_FATAL {
        CLIENT_ALERT.with(|a| a.set(Some((ret & 0xff) as u8)));
    }
}

/// Keeps the sessions of a TLS 1.3 client's NewSessionTicket messages: BoringSSL's
/// `SSL_get1_session` gives a non-resumable session in TLS 1.3.
unsafe extern "C" fn client_new_session(_ssl: *mut ffi::SSL, sess: *mut ffi::SSL_SESSION) -> c_int {
    CLIENT_TICKETS.with(|t| t.borrow_mut().push(Session(sess)));
    1 // the reference is ours now
}

/// A client context that verifies nothing and keeps no session cache of its own.
pub struct Client(pub *mut ffi::SSL_CTX);

// SAFETY: an SSL_CTX may be shared by threads that make connections from it.
unsafe impl Send for Client {}
// SAFETY: as above.
unsafe impl Sync for Client {}

impl Client {
    pub fn new() -> Client {
        // SAFETY: plain BoringSSL calls on a context this function owns.
        unsafe {
            let ctx = ffi::SSL_CTX_new(ffi::TLS_client_method());
            assert!(!ctx.is_null());
            ffi::SSL_CTX_set_verify(ctx, ffi::SSL_VERIFY_NONE, None);
            ffi::SSL_CTX_set_session_cache_mode(
                ctx,
                ffi::SSL_SESS_CACHE_CLIENT | ffi::SSL_SESS_CACHE_NO_INTERNAL,
            );
            ffi::SSL_CTX_sess_set_new_cb(ctx, Some(client_new_session));
            ffi::SSL_CTX_set_info_callback(ctx, Some(client_info));
            Client(ctx)
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // SAFETY: the context was made by Client::new and is freed once.
        unsafe { ffi::SSL_CTX_free(self.0) }
    }
}

/// One reference to a client `SSL_SESSION`.
pub struct Session(pub *mut ffi::SSL_SESSION);

// SAFETY: sessions are reference-counted atomically and immutable once made.
unsafe impl Send for Session {}
// SAFETY: as above.
unsafe impl Sync for Session {}

impl Session {
    /// A copy made through the DER encoding: what an attacker's client replays, free of any
    /// in-memory state BoringSSL keeps on the original.
    pub fn copy(&self) -> Session {
        // SAFETY: self holds a live session; the buffer is sized by the first call.
        unsafe {
            let n = ffi::i2d_SSL_SESSION(self.0, ptr::null_mut());
            assert!(n > 0);
            let mut der = vec![0u8; n as usize];
            let mut p = der.as_mut_ptr();
            assert_eq!(ffi::i2d_SSL_SESSION(self.0, &mut p), n);
            let mut q = der.as_ptr();
            let s = ffi::d2i_SSL_SESSION(ptr::null_mut(), &mut q, n.into());
            assert!(!s.is_null());
            Session(s)
        }
    }

    /// The ticket the client would send (empty when it has none).
    pub fn ticket(&self) -> Vec<u8> {
        let (mut p, mut n) = (ptr::null(), 0usize);
        // SAFETY: self holds a live session; the ticket bytes live as long as it.
        unsafe {
            ffi::SSL_SESSION_get0_ticket(self.0, &mut p, &mut n);
            if p.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(p, n).to_vec()
            }
        }
    }

    /// A copy whose ticket is `edit`ed: a forged or truncated ticket as a client would send it.
    pub fn with_ticket(&self, edit: impl FnOnce(&mut Vec<u8>)) -> Session {
        let copy = self.copy();
        let mut ticket = self.ticket();
        assert!(!ticket.is_empty(), "the session has a ticket");
        edit(&mut ticket);
        // SAFETY: copy holds the only reference to a fresh session.
        assert_eq!(
            unsafe { ffi::SSL_SESSION_set_ticket(copy.0, ticket.as_ptr(), ticket.len()) },
            1
        );
        copy
    }
}

impl Clone for Session {
    fn clone(&self) -> Session {
        // SAFETY: self holds a reference, so the session is live.
        unsafe { ffi::SSL_SESSION_up_ref(self.0) };
        Session(self.0)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: releases this wrapper's reference.
        unsafe { ffi::SSL_SESSION_free(self.0) }
    }
}

/// Rewrites the client's first flight (one ClientHello record).
pub type Rewrite<'a> = &'a dyn Fn(&[u8]) -> Vec<u8>;

/// How one connection is made.
#[derive(Default)]
pub struct Opts<'a> {
    /// The SNI the client sends (None: no SNI).
    pub sni: Option<&'a str>,
    /// The session the client offers, whatever name or vhost it was made under.
    pub offer: Option<&'a Session>,
    /// Client protocol version, min and max (0: the library default).
    pub version: u16,
    /// After the handshake, corrupt the client's application-data record so the server
    /// answers with a fatal bad_record_mac alert.
    pub corrupt_after: bool,
    /// After the handshake, corrupt the server's application-data record so the client sends
    /// a fatal bad_record_mac alert.
    pub corrupt_server_after: bool,
    /// Corrupt the server's first flight (in a resumption it ends with the server's Finished),
    /// so the client sends a fatal alert in place of its Finished.
    pub corrupt_server_flight: bool,
    /// The client's TLS 1.2 cipher list.
    pub cipher_list: Option<&'a str>,
    /// Rewrites the client's first flight (one ClientHello record) on its way to the server.
    pub rewrite_hello: Option<Rewrite<'a>>,
    /// Called with the server `SSL` each time its handshake stops with
    /// `SSL_ERROR_PENDING_SESSION`; the server handshake is then driven again. None: such a
    /// stop ends the connection.
    pub on_pending: Option<&'a dyn Fn(*mut ffi::SSL)>,
}

impl<'a> Opts<'a> {
    /// A connection at `version` (min and max; 0: the library default) with SNI `sni` (None:
    /// none), offering `offer`; nothing else set.
    pub fn new(version: u16, sni: Option<&'a str>, offer: Option<&'a Session>) -> Opts<'a> {
        Opts {
            sni,
            offer,
            version,
            ..Opts::default()
        }
    }
}

/// What snicache decided for the server connection (`snicache_conn_info_get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub vhost: String,
    pub sni: Option<String>,
    pub outcome: u32,
    pub reason: Option<String>,
}

/// How one connection went.
pub struct Outcome {
    /// Both sides completed the handshake.
    pub ok: bool,
    /// `SSL_session_reused` on the server.
    pub resumed: bool,
    /// The fatal alert the client received, if any.
    pub alert: Option<u8>,
    /// The client's session after the handshake.
    pub session: Option<Session>,
    pub info: Option<Info>,
    /// CN of the certificate the client saw.
    pub peer_cn: Option<String>,
    /// IANA id of the cipher suite the server negotiated (0 when none).
    pub cipher: u16,
    /// Times the server handshake returned `SSL_ERROR_PENDING_SESSION`.
    pub pending: u32,
}

impl Outcome {
    pub fn reason(&self) -> Option<&str> {
        self.info.as_ref().and_then(|i| i.reason.as_deref())
    }

    pub fn vhost(&self) -> Option<&str> {
        self.info.as_ref().map(|i| i.vhost.as_str())
    }

    pub fn session(&self) -> &Session {
        self.session.as_ref().expect("the client has a session")
    }
}

fn bytes(p: *const c_char, len: usize) -> Option<String> {
    // SAFETY: snicache_conn_info strings are `len` bytes, live while the SSL is.
    (!p.is_null())
        .then(|| unsafe { String::from_utf8_lossy(std::slice::from_raw_parts(p.cast(), len)) })
        .map(|s| s.into_owned())
}

/// Everything pending in `from`, as it would cross the wire.
unsafe fn drain(from: *mut ffi::BIO) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = ffi::BIO_read(from, buf.as_mut_ptr().cast(), buf.len() as c_int);
        if n <= 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

unsafe fn feed(to: *mut ffi::BIO, data: &[u8]) {
    if !data.is_empty() {
        assert_eq!(
            ffi::BIO_write(to, data.as_ptr().cast(), data.len() as c_int),
            data.len() as c_int
        );
    }
}

unsafe fn pump(from: *mut ffi::BIO, to: *mut ffi::BIO) {
    feed(to, &drain(from));
}

/// Writes one byte of application data on `ssl` and carries its record from `out` to `to`,
/// the record's last byte flipped when `corrupt`.
unsafe fn send_byte(
    ssl: *mut ffi::SSL,
    byte: &[u8; 1],
    out: *mut ffi::BIO,
    to: *mut ffi::BIO,
    corrupt: bool,
) {
    ffi::SSL_write(ssl, byte.as_ptr().cast(), 1);
    let mut record = drain(out);
    if corrupt {
        *record.last_mut().unwrap() ^= 0x5a;
    }
    feed(to, &record);
}

unsafe fn fatal(ssl: *mut ffi::SSL, rc: c_int) -> bool {
    let e = ffi::SSL_get_error(ssl, rc);
    rc <= 0 && e != ffi::SSL_ERROR_WANT_READ && e != ffi::SSL_ERROR_WANT_WRITE
}

unsafe fn peer_cn(c: *mut ffi::SSL) -> Option<String> {
    let cert = ffi::SSL_get_peer_certificate(c);
    if cert.is_null() {
        return None;
    }
    let mut buf = [0 as c_char; 256];
    let n = ffi::X509_NAME_get_text_by_NID(
        ffi::X509_get_subject_name(cert),
        ffi::NID_commonName,
        buf.as_mut_ptr(),
        buf.len() as c_int,
    );
    ffi::X509_free(cert);
    (n > 0).then(|| CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned())
}

/// One connection from `client` to `listener`: handshake, one byte of application data each way
/// (optionally corrupted), then a clean shutdown.
pub fn connect(listener: *mut ffi::SSL_CTX, client: &Client, o: &Opts<'_>) -> Outcome {
    CLIENT_ALERT.with(|a| a.set(None));
    CLIENT_TICKETS.with(|t| t.borrow_mut().clear());
    // SAFETY: both SSLs and their BIOs are made, used and freed here, on this thread.
    unsafe {
        let c = ffi::SSL_new(client.0);
        let s = ffi::SSL_new(listener);
        assert!(!c.is_null() && !s.is_null());
        let (c_in, c_out) = (
            ffi::BIO_new(ffi::BIO_s_mem()),
            ffi::BIO_new(ffi::BIO_s_mem()),
        );
        let (s_in, s_out) = (
            ffi::BIO_new(ffi::BIO_s_mem()),
            ffi::BIO_new(ffi::BIO_s_mem()),
        );
        ffi::SSL_set_bio(c, c_in, c_out);
        ffi::SSL_set_bio(s, s_in, s_out);
        ffi::SSL_set_connect_state(c);
        ffi::SSL_set_accept_state(s);
        if o.version != 0 {
            ffi::SSL_set_min_proto_version(c, o.version);
            ffi::SSL_set_max_proto_version(c, o.version);
        }
        if let Some(sni) = o.sni {
            let name = CString::new(sni).unwrap();
            assert_eq!(ffi::SSL_set_tlsext_host_name(c, name.as_ptr()), 1, "{sni}");
        }
        if let Some(offer) = o.offer {
            assert_eq!(ffi::SSL_set_session(c, offer.0), 1);
        }
        if let Some(list) = o.cipher_list {
            let list = CString::new(list).unwrap();
            assert_eq!(ffi::SSL_set_strict_cipher_list(c, list.as_ptr()), 1);
        }

        let (mut a, mut b) = (0, 0);
        let mut pending = 0;
        let mut first_flight = true;
        let mut server_flight_seen = false;
        for _ in 0..50 {
            let (mut dead_c, mut dead_s) = (false, false);
            if a != 1 {
                a = ffi::SSL_do_handshake(c);
                dead_c = fatal(c, a);
            }
            let mut flight = drain(c_out);
            if first_flight && !flight.is_empty() {
                first_flight = false;
                if let Some(rewrite) = o.rewrite_hello {
                    flight = rewrite(&flight);
                }
            }
            feed(s_in, &flight);
            if b != 1 {
                b = ffi::SSL_do_handshake(s);
                if b <= 0 && ffi::SSL_get_error(s, b) == ffi::SSL_ERROR_PENDING_SESSION {
                    pending += 1;
                    if let Some(hook) = o.on_pending {
                        hook(s);
                        continue;
                    }
                }
                dead_s = fatal(s, b);
            }
            let mut reply = drain(s_out);
            if o.corrupt_server_flight && !reply.is_empty() && !server_flight_seen {
                *reply.last_mut().unwrap() ^= 0x5a;
            }
            server_flight_seen |= !reply.is_empty();
            feed(c_in, &reply);
            if (a == 1 && b == 1) || dead_c || dead_s {
                break;
            }
        }
        let ok = a == 1 && b == 1;
        let mut byte = 0u8;
        let p = &mut byte as *mut u8 as *mut c_void;
        if ok {
            send_byte(s, b"s", s_out, c_in, o.corrupt_server_after);
            if ffi::SSL_read(c, p, 1) <= 0 {
                // The client's alert reaches the server.
                pump(c_out, s_in);
                ffi::SSL_read(s, p, 1);
            } else {
                send_byte(c, b"c", c_out, s_in, o.corrupt_after);
                if ffi::SSL_read(s, p, 1) <= 0 {
                    pump(s_out, c_in);
                    ffi::SSL_read(c, p, 1);
                } else {
                    ffi::SSL_shutdown(c);
                    pump(c_out, s_in);
                    ffi::SSL_shutdown(s);
                    pump(s_out, c_in);
                    ffi::SSL_shutdown(c);
                }
            }
        } else {
            pump(s_out, c_in);
            ffi::SSL_do_handshake(c);
        }
        ffi::ERR_clear_error();

        let mut raw = std::mem::MaybeUninit::<snicache_conn_info>::uninit();
        let info = (snicache_conn_info_get(s.cast(), raw.as_mut_ptr()) == snicache_result::Ok)
            .then(|| {
                let i = raw.assume_init();
                Info {
                    vhost: bytes(i.vhost, i.vhost_len).unwrap_or_default(),
                    sni: bytes(i.sni, i.sni_len),
                    outcome: i.outcome,
                    reason: bytes(i.reason, i.reason_len),
                }
            });
        let cipher = ffi::SSL_get_current_cipher(s);
        // TLS 1.3: the last NewSessionTicket's session; TLS 1.2: the connection's.
        let ticket = (ffi::SSL_version(c) == c_int::from(TLS1_3))
            .then(|| CLIENT_TICKETS.with(|t| t.borrow_mut().pop()))
            .flatten();
        let session = match ticket {
            Some(t) => {
                let p = t.0;
                std::mem::forget(t);
                p
            }
            None => ffi::SSL_get1_session(c),
        };
        CLIENT_TICKETS.with(|t| t.borrow_mut().clear());
        let out = Outcome {
            ok,
            resumed: ffi::SSL_session_reused(s) == 1,
            alert: CLIENT_ALERT.with(Cell::get),
            session: (!session.is_null()).then_some(Session(session)),
            info,
            peer_cn: peer_cn(c),
            cipher: if cipher.is_null() {
                0
            } else {
                ffi::SSL_CIPHER_get_protocol_id(cipher)
            },
            pending,
        };
        ffi::SSL_free(c);
        ffi::SSL_free(s);
        out
    }
}

/// A vhost of a test server: its name (also its certificate's CN), lifetime and flags.
#[derive(Clone, Copy)]
pub struct VHost<'a> {
    pub name: &'a str,
    pub timeout: u32,
    pub flags: u32,
}

pub const fn vhost(name: &str) -> VHost<'_> {
    VHost {
        name,
        timeout: 0,
        flags: 0,
    }
}

/// The vhosts of the lifetime tests: a.test (the cache's default lifetime), b.test (its own 1 s)
/// and c.test (its own hour).
pub const LIFETIME_VHOSTS: [VHost<'static>; 3] = [
    vhost("a.test"),
    VHost {
        timeout: 1,
        ..vhost("b.test")
    },
    VHost {
        timeout: 3600,
        ..vhost("c.test")
    },
];

/// A listener context and one context per vhost, with a snicache cache attached, made through
/// the C ABI as a C host does.
pub struct Server {
    pub listener: *mut ffi::SSL_CTX,
    /// Each vhost's context, in the order given.
    pub vhosts: Vec<*mut ffi::SSL_CTX>,
    pub cache: *const snicache_cache,
}

// SAFETY: contexts and the cache are shared by handshake threads, as in a real server.
unsafe impl Send for Server {}
// SAFETY: as above.
unsafe impl Sync for Server {}

/// A config made from the BoringSSL table.
pub fn new_config() -> *mut snicache_config {
    let api = host::api();
    let mut config = ptr::null_mut();
    check_ok!(snicache_config_new(&api, &mut config));
    config
}

impl Server {
    /// Session ids only (`SSL_OP_NO_TICKET`): the first vhost is the default; `tune` adjusts
    /// the config before the cache is made.
    pub fn new(vhosts: &[VHost<'_>], tune: impl FnOnce(*mut snicache_config)) -> Server {
        Server::build(vhosts, false, tune)
    }

    /// As `new`, with stateless tickets left on when `tickets` is true.
    pub fn build(
        vhosts: &[VHost<'_>],
        tickets: bool,
        tune: impl FnOnce(*mut snicache_config),
    ) -> Server {
        Server::build_like(vhosts, tickets, None, tune)
    }

    /// As `build`; with `like`, each vhost uses the certificate and key of `like`'s vhost at
    /// the same position, as servers of one fleet do (the session id context covers the
    /// certificate).
    pub fn build_like(
        vhosts: &[VHost<'_>],
        tickets: bool,
        like: Option<&Server>,
        tune: impl FnOnce(*mut snicache_config),
    ) -> Server {
        let listener = server_ctx("listener");
        let ctxs: Vec<_> = vhosts.iter().map(|v| server_ctx(v.name)).collect();
        if let Some(like) = like {
            for (&ctx, &theirs) in ctxs.iter().zip(&like.vhosts) {
                // SAFETY: live contexts; the certificate and key are reference-counted.
                unsafe {
                    assert_eq!(
                        ffi::SSL_CTX_use_certificate(ctx, ffi::SSL_CTX_get0_certificate(theirs)),
                        1
                    );
                    assert_eq!(
                        ffi::SSL_CTX_use_PrivateKey(ctx, ffi::SSL_CTX_get0_privatekey(theirs)),
                        1
                    );
                }
            }
        }
        if !tickets {
            for &ctx in ctxs.iter().chain([&listener]) {
                // SAFETY: a live context owned by this server.
                unsafe { ffi::SSL_CTX_set_options(ctx, ffi::SSL_OP_NO_TICKET as u32) };
            }
        }
        let config = new_config();
        for (i, (v, &ctx)) in vhosts.iter().zip(&ctxs).enumerate() {
            let name = CString::new(v.name).unwrap();
            let flags = v.flags
                | if i == 0 {
                    snicache::ffi::config::SNICACHE_VHOST_DEFAULT
                } else {
                    0
                };
            check_ok!(snicache_config_add_vhost(
                config,
                name.as_ptr(),
                ctx.cast(),
                v.timeout,
                flags
            ));
        }
        tune(config);
        let mut cache = ptr::null();
        check_ok!(snicache_cache_new(config, &mut cache));
        snicache_config_free(config);
        check_ok!(snicache_cache_attach(cache, listener.cast(), 0));
        Server {
            listener,
            vhosts: ctxs,
            cache,
        }
    }

    pub fn connect(&self, client: &Client, o: &Opts<'_>) -> Outcome {
        connect(self.listener, client, o)
    }

    /// Connects with `o` and asserts a full handshake on `vhost` whose resumption was refused
    /// as `reason`, making `count` such refusals on that vhost. `what` names the case.
    pub fn connect_refused(
        &self,
        client: &Client,
        o: &Opts<'_>,
        vhost: &str,
        reason: &str,
        count: u64,
        what: &str,
    ) -> Outcome {
        let r = self.connect(client, o);
        assert!(r.ok && !r.resumed, "{what}");
        assert_eq!(r.vhost(), Some(vhost), "{what}");
        assert_eq!(
            r.info.as_ref().map(|i| i.outcome),
            Some(SNICACHE_OUTCOME_REFUSED),
            "{what}"
        );
        assert_eq!(r.reason(), Some(reason), "{what}");
        assert_eq!(self.refusals(Some(vhost), reason), count, "{what}");
        r
    }

    /// Counters of one vhost (by configured name) or the totals.
    pub fn stats(&self, vhost: Option<&str>) -> snicache_stats {
        let name = vhost.map(|v| CString::new(v).unwrap());
        let mut st = snicache_stats::default();
        check_ok!(snicache_cache_stats(
            self.cache,
            name.as_ref().map_or(ptr::null(), |n| n.as_ptr()),
            &mut st
        ));
        st
    }

    pub fn refusals(&self, vhost: Option<&str>, reason: &str) -> u64 {
        let name = vhost.map(|v| CString::new(v).unwrap());
        let reason = CString::new(reason).unwrap();
        let mut n = 0;
        check_ok!(snicache_cache_refusals(
            self.cache,
            name.as_ref().map_or(ptr::null(), |n| n.as_ptr()),
            reason.as_ptr(),
            &mut n
        ));
        n
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        snicache_cache_free(self.cache);
        // SAFETY: the contexts were made by Server::build; each holds its own cache reference.
        unsafe {
            ffi::SSL_CTX_free(self.listener);
            for &ctx in &self.vhosts {
                ffi::SSL_CTX_free(ctx);
            }
        }
    }
}

/// Rewrites one extension of a ClientHello record: its body replaced by `body`, or the
/// extension removed when `body` is None. Fixes the extensions-block, handshake and record
/// lengths. Panics when the record is not a single ClientHello carrying that extension.
pub fn rewrite_extension(rec: &[u8], ext: u16, body: Option<&[u8]>) -> Vec<u8> {
    let get16 = |p: usize| usize::from(u16::from_be_bytes([rec[p], rec[p + 1]]));
    assert!(
        rec.len() > 5 + 4 + 2 + 32 && rec[0] == 22 && rec[5] == 1,
        "not a ClientHello"
    );
    let mut p = 5 + 4 + 2 + 32;
    p += 1 + usize::from(rec[p]); // session id
    p += 2 + get16(p); // cipher suites
    p += 1 + usize::from(rec[p]); // compression methods
    let block = p;
    let end = block + 2 + get16(block);
    assert_eq!(end, rec.len(), "one ClientHello record");
    let mut q = block + 2;
    while q + 4 <= end {
        let len = get16(q + 2);
        if get16(q) == usize::from(ext) {
            let mut out = rec[..q].to_vec();
            if let Some(body) = body {
                out.extend_from_slice(&ext.to_be_bytes());
                out.extend_from_slice(&(body.len() as u16).to_be_bytes());
                out.extend_from_slice(body);
            }
            out.extend_from_slice(&rec[q + 4 + len..]);
            let delta = out.len() as isize - rec.len() as isize;
            let fix16 = |out: &mut Vec<u8>, at: usize| {
                let v = (get16(at) as isize + delta) as u16;
                out[at..at + 2].copy_from_slice(&v.to_be_bytes());
            };
            fix16(&mut out, 3);
            fix16(&mut out, block);
            let hs = ((usize::from(rec[6]) << 16 | get16(7)) as isize + delta) as u32;
            out[6..9].copy_from_slice(&hs.to_be_bytes()[1..]);
            return out;
        }
        q += 4 + len;
    }
    panic!("extension {ext} not in the ClientHello");
}

/// A server_name extension body naming `name` (any bytes).
pub fn server_name_ext(name: &[u8]) -> Vec<u8> {
    let mut body = ((name.len() + 3) as u16).to_be_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name);
    body
}
