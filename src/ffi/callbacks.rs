//! The raw callbacks. `snicache_cache_attach` installs them through the header's trampolines;
//! hosts that chain their own callbacks call them directly. None of them panics into C: each
//! answers a documented default (a full handshake) when anything goes wrong.

use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::boundary;
use super::cache::snicache_cache;
use crate::engine::handshake::{offered_session_id, Conn, Found, HostFacts, NewSession, Outcome};
use crate::engine::vhosts::{RouteError, MAX_NAME};
use crate::engine::{Engine, Level};
use crate::host::ssl_api::{self, host_call, HostApi, SNICACHE_SSL_LIBRARY_OPENSSL};
use crate::host::HostSession;
use crate::record;

/// `SSL_AD_ILLEGAL_PARAMETER`.
const ALERT_ILLEGAL_PARAMETER: c_int = 47;
/// `SSL_AD_UNRECOGNIZED_NAME`.
const ALERT_UNRECOGNIZED_NAME: c_int = 112;
/// `SSL_AD_INTERNAL_ERROR`.
const ALERT_INTERNAL_ERROR: c_int = 80;
/// `SSL_CB_ALERT`, the same in OpenSSL and BoringSSL.
const CB_ALERT: c_int = 0x4000;
/// `SSL3_AL_FATAL`.
const AL_FATAL: c_int = 2;
/// `SSL_TLSEXT_ERR_OK` and `SSL_TLSEXT_ERR_NOACK`, the same in OpenSSL and BoringSSL.
const TLSEXT_ERR_OK: c_int = 0;
const TLSEXT_ERR_NOACK: c_int = 3;
/// `TLS1_3_VERSION`.
const TLS1_3_VERSION: c_int = 0x0304;
const EXT_SERVER_NAME: c_uint = 0;
const EXT_EMS: c_uint = 23;
const EXT_SESSION_TICKET: c_uint = 35;
const EXT_PRE_SHARED_KEY: c_uint = 41;
const EXT_EARLY_DATA: c_uint = 42;
const EXT_SUPPORTED_VERSIONS: c_uint = 43;

/// `snicache_on_client_hello` answer: pause the handshake (OpenSSL `SSL_CLIENT_HELLO_RETRY`)
/// until the ready callback names this connection, then drive it again.
pub const SNICACHE_CLIENT_HELLO_RETRY: c_int = 2;
/// Memory a decoded host session holds beyond its DER, charged against the bound (estimate
/// for OpenSSL 3's `SSL_SESSION` with its peer-certificate and ticket fields empty).
const HOST_SESSION_COST: usize = 640;

/// What ex_data of an `SSL` holds: the connection's state and the cache deciding for it.
pub(crate) struct ConnBox {
    pub(crate) cache: Arc<snicache_cache>,
    pub(crate) conn: Conn,
}

/// Frees a connection's state. Called only by the `SSL` ex_data free callback that
/// `snicache_ssl.h` registers, with the pointer stored in snicache's index (NULL is accepted).
#[no_mangle]
pub extern "C" fn snicache_hook_free_conn(ptr: *mut c_void) {
    boundary((), || free_conn(ptr))
}

fn free_conn(ptr: *mut c_void) {
    if !ptr.is_null() {
        // SAFETY: our SSL ex_data index only ever holds Box::into_raw of a ConnBox.
        drop(unsafe { Box::from_raw(ptr as *mut ConnBox) });
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The connection state in `ssl`'s ex_data.
///
/// # Safety
/// `ssl` is a live `SSL` of the host library, used by this thread only during the callback.
unsafe fn conn_of<'a>(host: &HostApi, ssl: *const c_void) -> Option<&'a mut ConnBox> {
    if ssl.is_null() {
        return None;
    }
    // SAFETY: per the contract; the slot holds a ConnBox or NULL.
    unsafe { (host_call!(host, ssl_get_ex_data(ssl, host.ssl_ex_index)) as *mut ConnBox).as_mut() }
}

/// The host table and the connection state of `ssl`, when snicache routed it.
///
/// # Safety
/// As for `conn_of`.
pub(crate) unsafe fn conn_and_host<'a>(
    ssl: *const c_void,
) -> Option<(&'static HostApi, &'a mut ConnBox)> {
    let host = ssl_api::get()?;
    // SAFETY: per the contract.
    unsafe { conn_of(host, ssl) }.map(|b| (host, b))
}

/// The cache for a connection that has no state yet: `arg` when given, else the one attached
/// to the connection's current context.
unsafe fn cache_for(
    host: &HostApi,
    ssl: *mut c_void,
    arg: *mut c_void,
) -> Option<Arc<snicache_cache>> {
    let p = if arg.is_null() {
        // SAFETY: ssl is live; the ctx slot holds an Arc'd cache or NULL.
        unsafe {
            host_call!(
                host,
                ctx_get_ex_data(host_call!(host, ssl_get_ctx(ssl)), host.ctx_ex_index)
            )
        }
    } else {
        arg
    } as *const snicache_cache;
    if p.is_null() {
        return None;
    }
    // SAFETY: p is a live cache (attach keeps a reference in the ctx); take one more.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

/// Reads a ClientHello extension through the table.
unsafe fn client_hello_ext<'a>(
    host: &HostApi,
    ssl: *mut c_void,
    hello: *const c_void,
    ext: c_uint,
) -> Option<&'a [u8]> {
    let mut data: *const u8 = std::ptr::null();
    let mut len = 0usize;
    // SAFETY: ssl/hello are live for the ClientHello callback; data borrows the ClientHello.
    unsafe {
        if host_call!(host, client_hello_ext(ssl, hello, ext, &mut data, &mut len)) != 1 {
            return None;
        }
        Some(if data.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts(data, len)
        })
    }
}

/// Routes a connection and stores its state; `Err` is the fatal alert to send.
unsafe fn start(
    host: &HostApi,
    ssl: *mut c_void,
    cache: Arc<snicache_cache>,
    sni: Option<&[u8]>,
    client_ems: Option<bool>,
) -> Result<(), c_int> {
    let conn = cache
        .engine
        .client_hello(sni, client_ems)
        .map_err(|e| match e {
            RouteError::Malformed => ALERT_ILLEGAL_PARAMETER,
            RouteError::Unknown => ALERT_UNRECOGNIZED_NAME,
        })?;
    let target = cache.engine.vhosts.get(conn.vhost).ctx as *mut c_void;
    // SAFETY: ssl is live; target is the vhost's live SSL_CTX.
    unsafe {
        if !target.is_null()
            && host_call!(host, ssl_get_ctx(ssl)) != target
            && host_call!(host, ssl_set_ctx(ssl, target)).is_null()
        {
            cache
                .engine
                .log(Level::Error, || "SSL_set_SSL_CTX failed".into());
            return Err(ALERT_INTERNAL_ERROR);
        }
        let boxed = Box::into_raw(Box::new(ConnBox { cache, conn }));
        if host_call!(
            host,
            ssl_set_ex_data(ssl, host.ssl_ex_index, boxed as *mut c_void)
        ) != 1
        {
            free_conn(boxed as *mut c_void);
            return Err(ALERT_INTERNAL_ERROR);
        }
    }
    Ok(())
}

/// The ClientHello callback (OpenSSL `SSL_CTX_set_client_hello_cb`; BoringSSL select-certificate
/// callback, with `hello` its `SSL_CLIENT_HELLO *`). Validates the SNI, picks the vhost, switches
/// `ssl` to the vhost's `SSL_CTX` and keeps (vhost, SNI) for the later callbacks.
///
/// `arg` is the cache, or NULL to use the one attached to `ssl`'s current context.
/// Returns 1 to go on, or 0 with `*alert` set: `illegal_parameter` (47) for a malformed SNI,
/// `unrecognized_name` (112) for an unknown name in strict mode or without a default vhost.
/// With asynchronous lookups (`snicache_config_set_async_lookup`) on OpenSSL, it may return
/// `SNICACHE_CLIENT_HELLO_RETRY` while the store fetches the offered session: answer
/// `SSL_CLIENT_HELLO_RETRY` and drive the handshake again once the ready callback named `ssl`
/// (OpenSSL then calls this callback again, which goes on when the answer is there).
/// A connection without any attached cache goes on untouched.
#[no_mangle]
pub extern "C" fn snicache_on_client_hello(
    ssl: *mut c_void,
    hello: *const c_void,
    alert: *mut c_int,
    arg: *mut c_void,
) -> c_int {
    let fail_with = |a: c_int| {
        if !alert.is_null() {
            // SAFETY: the library passes a writable alert slot.
            unsafe { *alert = a };
        }
        0
    };
    // `*alert` is written only when the ClientHello is refused (or a panic was caught).
    let decision = boundary(Err(ALERT_INTERNAL_ERROR), || {
        let Some(host) = ssl_api::get() else {
            return Ok(false);
        };
        if ssl.is_null() {
            return Ok(false);
        }
        // SAFETY: called by the host library with a live ssl (and hello) for this callback.
        unsafe {
            if let Some(b) = conn_of(host, ssl) {
                // A paused ClientHello asks again; a second ClientHello after HelloRetryRequest
                // keeps the first decision, if it names the same server.
                if b.conn.prefetching {
                    return Ok(prefetch(host, ssl, hello, b));
                }
                again(host, ssl, hello, b)?;
                return Ok(false);
            }
            let Some(cache) = cache_for(host, ssl, arg) else {
                return Ok(false);
            };
            let sni = client_hello_ext(host, ssl, hello, EXT_SERVER_NAME);
            let ems = client_hello_ext(host, ssl, hello, EXT_EMS).is_some();
            let early = client_hello_ext(host, ssl, hello, EXT_EARLY_DATA).is_some();
            start(host, ssl, cache, sni, Some(ems))?;
            if let Some(b) = conn_of(host, ssl) {
                b.conn.early_data_offered = early;
            }
            Ok(conn_of(host, ssl).is_some_and(|b| prefetch(host, ssl, hello, b)))
        }
    });
    match decision {
        Ok(false) => 1,
        Ok(true) => SNICACHE_CLIENT_HELLO_RETRY,
        Err(a) => fail_with(a),
    }
}

/// A further ClientHello on a connection already routed: in TLS 1.3 the second one, after a
/// HelloRetryRequest, whose server_name must be the first one's (the engine decides). TLS 1.2
/// renegotiation keeps the first decision, as before. `Err` is the alert to send.
///
/// # Safety
/// `ssl` (and `hello`) are live for the ClientHello callback.
unsafe fn again(
    host: &HostApi,
    ssl: *mut c_void,
    hello: *const c_void,
    b: &mut ConnBox,
) -> Result<(), c_int> {
    // SAFETY: per the contract.
    unsafe {
        if host_call!(host, ssl_version(ssl)) != TLS1_3_VERSION {
            return Ok(());
        }
        let sni = client_hello_ext(host, ssl, hello, EXT_SERVER_NAME);
        b.cache
            .engine
            .second_client_hello(&mut b.conn, sni)
            .map_err(|_| ALERT_ILLEGAL_PARAMETER)
    }
}

/// A ClientHello seen where the host library shows every handshake message but no callback
/// runs: BoringSSL's message callback (`SSL_CTX_set_msg_callback`), which `snicache_ssl.h`
/// installs with `SNICACHE_INSTALL_CLIENT_HELLO` and which parses the message with
/// `SSL_parse_client_hello` into `hello` (an `SSL_CLIENT_HELLO *`). BoringSSL runs its
/// select-certificate callback on the first ClientHello only; this is where the second one,
/// after a HelloRetryRequest, is checked. The first ClientHello (no snicache state yet) and
/// connections without a cache go on untouched.
///
/// Returns 1 to go on, or 0 with `*alert` set (illegal_parameter, 47: the second ClientHello
/// names another server, adds or removes the name, or carries a malformed one): the host sends
/// that fatal alert (BoringSSL: `SSL_send_fatal_alert`, after which the handshake fails when it
/// next writes). OpenSSL hosts need not call it: OpenSSL runs the ClientHello callback again.
#[no_mangle]
pub extern "C" fn snicache_on_client_hello_again(
    ssl: *mut c_void,
    hello: *const c_void,
    alert: *mut c_int,
) -> c_int {
    let decision = boundary(Err(ALERT_INTERNAL_ERROR), || {
        let Some(host) = ssl_api::get() else {
            return Ok(());
        };
        if ssl.is_null() {
            return Ok(());
        }
        // SAFETY: called by the host library with a live ssl and hello for this message.
        unsafe {
            match conn_of(host, ssl) {
                Some(b) if !b.conn.prefetching => again(host, ssl, hello, b),
                _ => Ok(()),
            }
        }
    });
    match decision {
        Ok(()) => 1,
        Err(a) => {
            if !alert.is_null() {
                // SAFETY: the host passes a writable alert slot.
                unsafe { *alert = a };
            }
            0
        }
    }
}

/// OpenSSL with asynchronous lookups: its session lookup cannot pause, so the session the
/// ClientHello offers is fetched here, where the handshake can. True to pause the ClientHello.
///
/// # Safety
/// `ssl` (and `hello`) are live for the ClientHello callback.
unsafe fn prefetch(
    host: &HostApi,
    ssl: *mut c_void,
    hello: *const c_void,
    b: &mut ConnBox,
) -> bool {
    if host.raw.library != SNICACHE_SSL_LIBRARY_OPENSSL {
        return false; // BoringSSL pauses in the session lookup itself
    }
    let Some(waker) = b.cache.waker(ssl) else {
        return false;
    };
    let mut legacy: *const u8 = std::ptr::null();
    // SAFETY: per the contract; the id borrows the ClientHello.
    let (psk, versions, ticket_used, legacy) = unsafe {
        let n = host_call!(host, client_hello_session_id(ssl, hello, &mut legacy));
        (
            client_hello_ext(host, ssl, hello, EXT_PRE_SHARED_KEY),
            client_hello_ext(host, ssl, hello, EXT_SUPPORTED_VERSIONS),
            client_hello_ext(host, ssl, hello, EXT_SESSION_TICKET).is_some_and(|t| !t.is_empty())
                && host_call!(host, ssl_tickets_enabled(ssl)) == 1,
            if legacy.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(legacy, n)
            },
        )
    };
    b.conn.prefetching = offered_session_id(psk, versions, ticket_used, legacy)
        .is_some_and(|id| b.cache.engine.prefetch(&b.conn, id, now(), &waker));
    b.conn.prefetching
}

/// The servername callback. With the ClientHello callback installed it only answers whether
/// the server_name extension is acknowledged: 0 (`SSL_TLSEXT_ERR_OK`) when the name selected
/// the vhost, 3 (`SSL_TLSEXT_ERR_NOACK`) when the default vhost took an unknown name (RFC 6066
/// §3: the server returns the extension only when it used the name). On its own (hosts that
/// cannot use the ClientHello callback) it routes by `SSL_get_servername` and answers the same,
/// or 2 (`SSL_TLSEXT_ERR_ALERT_FATAL`) with `*alert` set when the name is refused.
/// `arg` as for `snicache_on_client_hello`.
#[no_mangle]
pub extern "C" fn snicache_on_servername(
    ssl: *mut c_void,
    alert: *mut c_int,
    arg: *mut c_void,
) -> c_int {
    boundary(0, || {
        let Some(host) = ssl_api::get() else { return 0 };
        // SAFETY: called by the host library with a live ssl.
        unsafe {
            if ssl.is_null() {
                return 0;
            }
            if let Some(b) = conn_of(host, ssl) {
                return ack(&b.conn);
            }
            let Some(cache) = cache_for(host, ssl, arg) else {
                return 0;
            };
            let name = host_call!(host, ssl_servername(ssl));
            let mut ext = [0u8; MAX_NAME + 5];
            let sni = if name.is_null() {
                None
            } else {
                let bytes = std::ffi::CStr::from_ptr(name).to_bytes();
                let n = bytes.len().min(MAX_NAME + 1);
                ext[..2].copy_from_slice(&((n + 3) as u16).to_be_bytes());
                ext[3..5].copy_from_slice(&(n as u16).to_be_bytes());
                ext[5..5 + n.min(MAX_NAME)].copy_from_slice(&bytes[..n.min(MAX_NAME)]);
                Some(&ext[..5 + n.min(MAX_NAME)])
            };
            match start(host, ssl, cache, sni, None) {
                Ok(()) => conn_of(host, ssl).map_or(0, |b| ack(&b.conn)),
                Err(a) => {
                    if !alert.is_null() {
                        *alert = a;
                    }
                    2
                }
            }
        }
    })
}

/// The servername callback's answer for a routed connection.
fn ack(conn: &Conn) -> c_int {
    if conn.acknowledges_sni() {
        TLSEXT_ERR_OK
    } else {
        TLSEXT_ERR_NOACK
    }
}

/// What the host library says about the connection, for the policy.
pub(crate) unsafe fn host_facts<'a>(
    host: &'a HostApi,
    ssl: *mut c_void,
    enabled: &'a dyn Fn(u16) -> bool,
) -> HostFacts<'a> {
    HostFacts {
        now: now(),
        // SAFETY: ssl is live during the callback.
        version: unsafe { host_call!(host, ssl_version(ssl)) } as u16,
        cipher_enabled: enabled,
    }
}

/// The context whose cipher list governs a vhost: its own, or the connection's.
pub(crate) unsafe fn policy_ctx(host: &HostApi, ssl: *mut c_void, b: &ConnBox) -> usize {
    match b.cache.engine.vhosts.get(b.conn.vhost).ctx {
        // SAFETY: ssl is live.
        0 => unsafe { host_call!(host, ssl_get_ctx(ssl)) as usize },
        ctx => ctx,
    }
}

/// The session lookup callback (`SSL_CTX_sess_set_get_cb`). Returns a session for OpenSSL to
/// resume with `*copy` set to 0 (the library owns the returned reference), or NULL for a full
/// handshake: unknown id, an id over 32 bytes, a refusal by the policy, a corrupt record, a store
/// failure. When the store answers "pending", BoringSSL hosts get `SSL_magic_pending_session_ptr()`
/// (the handshake returns `SSL_ERROR_PENDING_SESSION`; drive it again once the store has the
/// answer, which the ready callback of `snicache_config_set_async_lookup` tells for the Redis
/// store) and OpenSSL hosts get NULL (a full handshake; with asynchronous lookups OpenSSL hosts
/// pause in the ClientHello callback instead, and this lookup finds the fetched answer).
#[no_mangle]
pub extern "C" fn snicache_on_get_session(
    ssl: *mut c_void,
    id: *const u8,
    id_len: c_int,
    copy: *mut c_int,
) -> *mut c_void {
    boundary(std::ptr::null_mut(), || {
        let Some(host) = ssl_api::get() else {
            return std::ptr::null_mut();
        };
        // SAFETY: called by the host library with a live ssl and `id_len` bytes at `id`.
        unsafe {
            let Some(b) = conn_of(host, ssl) else {
                return std::ptr::null_mut();
            };
            let id = if id.is_null() || id_len <= 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(id, id_len as usize)
            };
            let ctx = policy_ctx(host, ssl, b) as *const c_void;
            let enabled = |c: u16| host_call!(host, ctx_cipher_enabled(ctx, c)) == 1;
            let facts = host_facts(host, ssl, &enabled);
            let ConnBox { cache, conn } = b;
            let waker = (host.raw.library != SNICACHE_SSL_LIBRARY_OPENSSL)
                .then(|| cache.waker(ssl))
                .flatten();
            let found = match &waker {
                Some(w) => cache.engine.lookup_async(conn, id, &facts, w),
                None => cache.engine.lookup(conn, id, &facts),
            };
            let value = match found {
                Found::Resume(v) => v,
                Found::Full => return std::ptr::null_mut(),
                // BoringSSL pauses the handshake (SSL_ERROR_PENDING_SESSION) and calls again when
                // the host drives it; OpenSSL cannot pause here and gets NULL: a full handshake.
                Found::Pending => return host_call!(host, pending_session()),
            };
            let kept = value
                .local
                .as_ref()
                .and_then(|l| l.downcast_ref::<HostSession>())
                .and_then(HostSession::share);
            let session = match kept {
                Some(s) => s,
                None => {
                    let der = record::decode(&value.bytes)
                        .map(|r| r.session)
                        .unwrap_or(&[]);
                    host_call!(host, session_from_der(der.as_ptr(), der.len()))
                }
            };
            if session.is_null() {
                if let Some(key) = conn.resumed.take() {
                    cache.engine.corrupt(conn.vhost, &key);
                }
                conn.outcome = Outcome::Full;
                return std::ptr::null_mut();
            }
            cache.engine.resumed(conn);
            if !copy.is_null() {
                *copy = 0;
            }
            session
        }
    })
}

/// Reads the facts of a host session.
unsafe fn describe<'a>(
    host: &HostApi,
    ssl: *mut c_void,
    conn: &Conn,
    sess: *mut c_void,
    id: &'a [u8],
    der: &'a [u8],
    alpn: &'a mut (*const u8, usize),
) -> NewSession<'a> {
    // SAFETY: ssl and sess are live during the callback.
    unsafe {
        host_call!(host, session_alpn(sess, &mut alpn.0, &mut alpn.1));
        let ems = match host_call!(host, ssl_extms(ssl)) {
            -1 => conn.client_ems == Some(true),
            n => n == 1,
        };
        NewSession {
            id,
            created: host_call!(host, session_time(sess)),
            version: host_call!(host, session_version(sess)) as u16,
            cipher: host_call!(host, session_cipher(sess)),
            ems,
            alpn: if alpn.0.is_null() {
                &[]
            } else {
                std::slice::from_raw_parts(alpn.0, alpn.1)
            },
            der,
            local: None,
        }
    }
}

/// The record a ticket of this connection carries: vhost, SNI, the session's facts and the
/// ticket's identity (which the connection remembers, to revoke it after a fatal alert).
///
/// # Safety
/// `ssl` and `sess` are live for the duration of the call.
pub(crate) unsafe fn ticket_record(
    host: &HostApi,
    ssl: *mut c_void,
    b: &mut ConnBox,
    sess: *mut c_void,
) -> Vec<u8> {
    let mut alpn = (std::ptr::null(), 0);
    let ConnBox { cache, conn } = b;
    // SAFETY: per the contract.
    let s = unsafe { describe(host, ssl, conn, sess, &[], &[], &mut alpn) };
    cache.engine.ticket_appdata(conn, &s)
}

/// The new-session callback (`SSL_CTX_sess_set_new_cb`). Stores the session under (vhost, id)
/// with its facts. Always returns 0: snicache takes its own reference when it keeps one.
/// TLS 1.3 sessions issued as stateless tickets are not stored (they are never looked up).
#[no_mangle]
pub extern "C" fn snicache_on_new_session(ssl: *mut c_void, sess: *mut c_void) -> c_int {
    boundary(0, || {
        let Some(host) = ssl_api::get() else { return 0 };
        if sess.is_null() {
            return 0;
        }
        // SAFETY: called by the host library with live ssl and sess.
        unsafe {
            let Some(b) = conn_of(host, ssl) else {
                return 0;
            };
            if host_call!(host, ssl_version(ssl)) >= 0x0304
                && host_call!(host, ssl_tickets_enabled(ssl)) == 1
            {
                return 0;
            }
            let mut id_len: c_uint = 0;
            let id_ptr = host_call!(host, session_id(sess, &mut id_len));
            let id = if id_ptr.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(id_ptr, id_len as usize)
            };
            // A stack buffer fits nearly every session (one without a client certificate is a
            // few hundred bytes) and spares the separate length query; a larger one (-1) is
            // measured, then encoded.
            let mut small = [0u8; 2048];
            let mut large = Vec::new();
            let n = host_call!(host, session_to_der(sess, small.as_mut_ptr(), small.len()));
            let der: &[u8] = if n > 0 && n as usize <= small.len() {
                &small[..n as usize]
            } else {
                let n = host_call!(host, session_to_der(sess, std::ptr::null_mut(), 0));
                if n <= 0 {
                    return 0;
                }
                large.resize(n as usize, 0);
                if host_call!(host, session_to_der(sess, large.as_mut_ptr(), large.len())) != n {
                    return 0;
                }
                &large
            };
            let mut alpn = (std::ptr::null(), 0);
            let mut s = describe(host, ssl, &b.conn, sess, id, der, &mut alpn);
            // The host's session object is kept only by stores that keep in-process objects.
            if b.cache.engine.store.keeps_local() {
                s.local = HostSession::retain(host, sess).map(|h| {
                    (
                        Arc::new(h) as Arc<dyn std::any::Any + Send + Sync>,
                        HOST_SESSION_COST + der.len(),
                    )
                });
            }
            let ConnBox { cache, conn } = b;
            cache.engine.store_session(conn, s);
            0
        }
    })
}

/// The remove-session callback (`SSL_CTX_sess_set_remove_cb`): the library dropped a session
/// (expired, or a fatal alert on its connection). The vhost is found from the session's id
/// context, so `ctx` only needs to carry an attached cache.
#[no_mangle]
pub extern "C" fn snicache_on_remove_session(ctx: *mut c_void, sess: *mut c_void) {
    boundary((), || {
        let Some(host) = ssl_api::get() else { return };
        if ctx.is_null() || sess.is_null() {
            return;
        }
        // SAFETY: called by the host library with live ctx and sess.
        unsafe {
            let cache =
                host_call!(host, ctx_get_ex_data(ctx, host.ctx_ex_index)) as *const snicache_cache;
            let Some(cache) = cache.as_ref() else { return };
            let mut sid_len: c_uint = 0;
            let sid = host_call!(host, session_id_context(sess, &mut sid_len));
            if sid.is_null() {
                return;
            }
            let mut id_len: c_uint = 0;
            let id = host_call!(host, session_id(sess, &mut id_len));
            if id.is_null() {
                return;
            }
            let id = std::slice::from_raw_parts(id, id_len as usize);
            for vhost in cache.vhosts_by_sid_ctx(std::slice::from_raw_parts(sid, sid_len as usize))
            {
                cache.engine.remove(vhost, id);
            }
        }
    })
}

/// The info callback (`SSL_CTX_set_info_callback`): on a fatal alert, sent or received
/// (`where & SSL_CB_ALERT`, level in `ret >> 8`), the session this connection resumed and those
/// it was issued are invalidated (RFC 5246 §7.2.2), in TLS 1.3 too.
#[no_mangle]
pub extern "C" fn snicache_on_info(ssl: *const c_void, where_: c_int, ret: c_int) {
    boundary((), || {
        if where_ & CB_ALERT == 0 || (ret >> 8) & 0xff != AL_FATAL {
            return;
        }
        let Some(host) = ssl_api::get() else { return };
        // SAFETY: called by the host library with a live ssl on its own thread.
        unsafe {
            if let Some(b) = conn_of(host, ssl) {
                let ConnBox { cache, conn } = b;
                cache.engine.invalidate(conn, now());
            }
        }
    })
}

/// The ticket-generate callback (OpenSSL `SSL_CTX_set_session_ticket_cb`): seals this
/// connection's vhost, SNI and session facts into the ticket's app data. Returns 1.
#[no_mangle]
pub extern "C" fn snicache_on_ticket_generate(ssl: *mut c_void, arg: *mut c_void) -> c_int {
    let _ = arg;
    boundary(1, || {
        let Some(host) = ssl_api::get() else { return 1 };
        // SAFETY: called by the host library with a live ssl whose session is being ticketed.
        unsafe {
            let Some(b) = conn_of(host, ssl) else {
                return 1;
            };
            // With tickets off, TLS 1.3 "tickets" are stateful session ids: the stored record
            // holds the facts, nothing is sealed into them.
            if host_call!(host, ssl_tickets_enabled(ssl)) != 1 {
                return 1;
            }
            let sess = host_call!(host, ssl_session(ssl));
            if sess.is_null() {
                return 1;
            }
            let data = ticket_record(host, ssl, b, sess);
            host_call!(host, session_set_appdata(sess, data.as_ptr(), data.len()));
            1
        }
    })
}

/// The ticket-decrypt check (OpenSSL `SSL_CTX_set_session_ticket_cb`), called for a ticket the
/// library decrypted (`decrypted` 1), did not get (0: none offered) or could not decrypt or
/// authenticate (-1: counted as a forged ticket unless its key was unknown). Returns 1 to resume
/// with the ticket's session, 2 to resume and issue a new ticket (every TLS 1.3 resumption:
/// `SSL_TICKET_RETURN_USE_RENEW`), 0 for a full handshake: a ticket of another vhost or SNI,
/// expired, with a cipher no longer enabled, without snicache's app data, or not decrypted.
/// A TLS 1.2 ticket is renewed only when the library reports it so (decrypt-only key:
/// `SSL_TICKET_SUCCESS_RENEW`), which the caller maps from its own status.
#[no_mangle]
pub extern "C" fn snicache_on_ticket_decrypt(
    ssl: *mut c_void,
    sess: *mut c_void,
    decrypted: c_int,
    arg: *mut c_void,
) -> c_int {
    let _ = arg;
    boundary(0, || {
        let Some(host) = ssl_api::get() else { return 0 };
        if ssl.is_null() || (decrypted == 1 && sess.is_null()) {
            return 0;
        }
        // SAFETY: called by the host library with live ssl and decrypted session.
        unsafe {
            let Some(b) = conn_of(host, ssl) else {
                return c_int::from(decrypted == 1);
            };
            if decrypted != 1 || sess.is_null() {
                if decrypted == -1 && !b.conn.ticket_key_unknown {
                    b.cache
                        .engine
                        .stats
                        .count(b.conn.vhost, crate::engine::stats::Event::TicketForged);
                }
                return 0;
            }
            let mut data: *const u8 = std::ptr::null();
            let mut len = 0usize;
            let appdata = (host_call!(host, session_get_appdata(sess, &mut data, &mut len)) == 1
                && !data.is_null())
            .then(|| std::slice::from_raw_parts(data, len));
            let ctx = policy_ctx(host, ssl, b) as *const c_void;
            let enabled = |c: u16| host_call!(host, ctx_cipher_enabled(ctx, c)) == 1;
            let facts = host_facts(host, ssl, &enabled);
            let ConnBox { cache, conn } = b;
            if !cache.engine.check_ticket(conn, appdata, &facts) {
                return 0;
            }
            if Engine::renews_ticket(facts.version) {
                2
            } else {
                1
            }
        }
    })
}

/// `snicache_conn_info.outcome`: no session offered or found; a full handshake.
pub const SNICACHE_OUTCOME_FULL: u32 = 0;
/// `snicache_conn_info.outcome`: the session was resumed.
pub const SNICACHE_OUTCOME_RESUMED: u32 = 1;
/// `snicache_conn_info.outcome`: a policy rule refused resumption (see `reason`).
pub const SNICACHE_OUTCOME_REFUSED: u32 = 2;

/// What snicache decided for one connection. Strings are not NUL-terminated: `vhost` and
/// `reason` live as long as the cache, `sni` as long as the `SSL`.
#[repr(C)]
pub struct snicache_conn_info {
    pub vhost: *const c_char,
    pub vhost_len: usize,
    /// NULL when the client sent no SNI.
    pub sni: *const c_char,
    pub sni_len: usize,
    /// `SNICACHE_OUTCOME_*`.
    pub outcome: u32,
    /// The refusing rule's name when `outcome` is `SNICACHE_OUTCOME_REFUSED`, else NULL.
    pub reason: *const c_char,
    pub reason_len: usize,
}

/// Describes the decisions snicache made for `ssl` into `*out`. Returns
/// `SNICACHE_RESULT_INVALID_PARAMETER` when snicache has no state for this connection (no cache
/// attached, or the ClientHello was not seen yet). Call it from the connection's thread.
#[no_mangle]
pub extern "C" fn snicache_conn_info_get(
    ssl: *const c_void,
    out_info: *mut snicache_conn_info,
) -> super::snicache_result {
    super::guard(|| {
        if ssl.is_null() {
            return Err(super::error::fail(
                super::snicache_result::NullParameter,
                "ssl",
            ));
        }
        let host = ssl_api::get().ok_or_else(|| {
            super::error::fail(
                super::snicache_result::InvalidParameter,
                "no config was ever made",
            )
        })?;
        // SAFETY: the caller passes a live SSL used by this thread.
        let b = unsafe { conn_of(host, ssl) }.ok_or_else(|| {
            super::error::fail(
                super::snicache_result::InvalidParameter,
                "no snicache state on this connection",
            )
        })?;
        let vhost = &b.cache.engine.vhosts.get(b.conn.vhost).name;
        let sni = b.conn.sni();
        let (outcome, reason) = match b.conn.outcome {
            Outcome::Full => (SNICACHE_OUTCOME_FULL, None),
            Outcome::Resumed => (SNICACHE_OUTCOME_RESUMED, None),
            Outcome::Refused(rule) => (
                SNICACHE_OUTCOME_REFUSED,
                Some(b.cache.engine.policy.name(rule as usize)),
            ),
        };
        let info = snicache_conn_info {
            vhost: vhost.as_ptr() as *const c_char,
            vhost_len: vhost.len(),
            sni: sni.map_or(std::ptr::null(), |s| s.as_ptr() as *const c_char),
            sni_len: sni.map_or(0, str::len),
            outcome,
            reason: reason.map_or(std::ptr::null(), |s| s.as_ptr() as *const c_char),
            reason_len: reason.map_or(0, str::len),
        };
        super::out(out_info, info, "out")
    })
}
