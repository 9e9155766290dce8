//! The raw callbacks. `snicache_cache_attach` installs them through the header's trampolines;
//! hosts that chain their own callbacks call them directly. None of them panics into C: each
//! answers a documented default (a full handshake) when anything goes wrong. They read facts
//! through the host table, hand them to the engine, and carry its decisions back to the host
//! library (`engine::decision`); they neither decide nor count. The ticket callbacks are in
//! `tickets.rs`.

use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::boundary;
use super::cache::snicache_cache;
use super::ownership::{self, bytes, with_conn};
use crate::engine::decision::Decision;
use crate::engine::handshake::{offered_session_id, Conn, HostFacts, NewSession, Outcome};
use crate::engine::vhosts::{RouteError, ServerName};
use crate::engine::Level;
use crate::host::ssl_api::{self, host_call, HostApi, SNICACHE_SSL_LIBRARY_OPENSSL};
use crate::host::HostSession;

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
    // SAFETY: per the contract, the pointer snicache's slot held, freed with its SSL.
    boundary((), || unsafe { ownership::conn_free(ptr) })
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The cache for a connection that has no state yet: `arg` when given, else the one attached
/// to the connection's current context.
///
/// # Safety
/// `ssl` is a live `SSL`; `arg` NULL or a live cache pointer (the one `snicache_cache_attach`
/// installed, held by the context).
unsafe fn cache_for(
    host: &HostApi,
    ssl: *mut c_void,
    arg: *mut c_void,
) -> Option<Arc<snicache_cache>> {
    // SAFETY: per the contract.
    unsafe {
        if arg.is_null() {
            ownership::ctx_cache(host, host_call!(host, ssl_get_ctx(ssl)))
        } else {
            ownership::arc_clone(arg.cast_const().cast::<snicache_cache>())
        }
    }
}

/// A ClientHello being processed: the `SSL` and the library's view of the message, live for
/// the callback that was given them. What it reads is borrowed from it.
struct ClientHello<'h> {
    host: &'h HostApi,
    ssl: *mut c_void,
    hello: *const c_void,
}

impl ClientHello<'_> {
    /// The raw bytes of extension `ext`, when present.
    fn ext(&self, ext: c_uint) -> Option<&[u8]> {
        let mut data: *const u8 = std::ptr::null();
        let mut len = 0usize;
        // SAFETY: ssl and hello are live for the callback (`ClientHello` is made only there);
        // `data` borrows the ClientHello, which outlives `self`.
        unsafe {
            if host_call!(
                self.host,
                client_hello_ext(self.ssl, self.hello, ext, &mut data, &mut len)
            ) != 1
            {
                return None;
            }
            Some(if data.is_null() {
                &[]
            } else {
                std::slice::from_raw_parts(data, len)
            })
        }
    }

    /// The server_name extension as the engine reads it.
    fn server_name(&self) -> ServerName<'_> {
        self.ext(EXT_SERVER_NAME)
            .map_or(ServerName::Absent, ServerName::Extension)
    }

    /// The legacy session id.
    fn session_id(&self) -> &[u8] {
        let mut id: *const u8 = std::ptr::null();
        // SAFETY: as in `ext`; the id borrows the ClientHello.
        unsafe {
            let n = host_call!(
                self.host,
                client_hello_session_id(self.ssl, self.hello, &mut id)
            );
            if id.is_null() {
                &[]
            } else {
                std::slice::from_raw_parts(id, n)
            }
        }
    }
}

/// Routes a connection and stores its state; `Err` is the fatal alert to send.
///
/// # Safety
/// `ssl` is live for the callback.
unsafe fn start(
    host: &HostApi,
    ssl: *mut c_void,
    cache: Arc<snicache_cache>,
    sni: ServerName<'_>,
    client_ems: Option<bool>,
    early_data_offered: bool,
) -> Result<(), c_int> {
    let mut conn = cache
        .engine
        .client_hello(sni, client_ems)
        .map_err(|e| match e {
            RouteError::Malformed => ALERT_ILLEGAL_PARAMETER,
            RouteError::Unknown => ALERT_UNRECOGNIZED_NAME,
        })?;
    conn.early_data_offered = early_data_offered;
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
        if !ownership::conn_attach(host, ssl, ConnBox { cache, conn }) {
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
    // `*alert` is written only when the ClientHello is refused (or a panic was caught).
    let decision = boundary(Err(ALERT_INTERNAL_ERROR), || {
        let Some(host) = ssl_api::get() else {
            return Ok(false);
        };
        if ssl.is_null() {
            return Ok(false);
        }
        let ch = ClientHello { host, ssl, hello };
        // SAFETY: called by the host library with a live ssl (and hello) for this callback.
        unsafe {
            // A paused ClientHello asks again; a second ClientHello after HelloRetryRequest
            // keeps the first decision, if it names the same server.
            let routed = with_conn(ssl, |_, b| {
                if b.conn.prefetching() {
                    Ok(prefetch(&ch, b))
                } else {
                    again(&ch, b).map(|()| false)
                }
            });
            if let Some(answer) = routed {
                return answer;
            }
            let Some(cache) = cache_for(host, ssl, arg) else {
                return Ok(false);
            };
            let ems = ch.ext(EXT_EMS).is_some();
            let early = ch.ext(EXT_EARLY_DATA).is_some();
            start(host, ssl, cache, ch.server_name(), Some(ems), early)?;
            Ok(with_conn(ssl, |_, b| prefetch(&ch, b)).unwrap_or(false))
        }
    });
    match decision {
        Ok(false) => 1,
        Ok(true) => SNICACHE_CLIENT_HELLO_RETRY,
        Err(a) => fail_with_alert(alert, a),
    }
}

/// Writes a refused ClientHello's alert into the library's slot; the callback's 0.
fn fail_with_alert(alert: *mut c_int, a: c_int) -> c_int {
    if !alert.is_null() {
        // SAFETY: the library passes a writable alert slot.
        unsafe { *alert = a };
    }
    0
}

/// A further ClientHello on a connection already routed: in TLS 1.3 the second one, after a
/// HelloRetryRequest, whose server_name must be the first one's (the engine decides). TLS 1.2
/// renegotiation keeps the first decision, as before. `Err` is the alert to send.
fn again(ch: &ClientHello<'_>, b: &mut ConnBox) -> Result<(), c_int> {
    // SAFETY: ssl is live for the ClientHello callback.
    if unsafe { host_call!(ch.host, ssl_version(ch.ssl)) } != TLS1_3_VERSION {
        return Ok(());
    }
    b.cache
        .engine
        .second_client_hello(&mut b.conn, ch.server_name())
        .map_err(|_| ALERT_ILLEGAL_PARAMETER)
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
        // SAFETY: called by the host library with a live ssl and hello for this message.
        let checked = unsafe {
            with_conn(ssl, |host, b| {
                if b.conn.prefetching() {
                    return Ok(());
                }
                again(&ClientHello { host, ssl, hello }, b)
            })
        };
        checked.unwrap_or(Ok(()))
    });
    match decision {
        Ok(()) => 1,
        Err(a) => fail_with_alert(alert, a),
    }
}

/// OpenSSL with asynchronous lookups: its session lookup cannot pause, so the session the
/// ClientHello offers is fetched here, where the handshake can. True to pause the ClientHello.
fn prefetch(ch: &ClientHello<'_>, b: &mut ConnBox) -> bool {
    if ch.host.raw.library != SNICACHE_SSL_LIBRARY_OPENSSL {
        return false; // BoringSSL pauses in the session lookup itself
    }
    let Some(waker) = b.cache.waker(ch.ssl) else {
        return false;
    };
    let ticket_used = ch.ext(EXT_SESSION_TICKET).is_some_and(|t| !t.is_empty())
        // SAFETY: ssl is live for the ClientHello callback.
        && unsafe { host_call!(ch.host, ssl_tickets_enabled(ch.ssl)) } == 1;
    let id = offered_session_id(
        ch.ext(EXT_PRE_SHARED_KEY),
        ch.ext(EXT_SUPPORTED_VERSIONS),
        ticket_used,
        ch.session_id(),
    );
    let ConnBox { cache, conn } = b;
    cache.engine.prefetch(conn, id, now(), &waker)
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
        if ssl.is_null() {
            return 0;
        }
        // SAFETY: called by the host library with a live ssl.
        unsafe {
            if let Some(answer) = with_conn(ssl, |_, b| ack(&b.conn)) {
                return answer;
            }
            let Some(cache) = cache_for(host, ssl, arg) else {
                return 0;
            };
            // The name the library took out of the extension, as the engine checks it.
            let name = host_call!(host, ssl_servername(ssl));
            let sni = if name.is_null() {
                ServerName::Absent
            } else {
                ServerName::HostName(std::ffi::CStr::from_ptr(name).to_bytes())
            };
            match start(host, ssl, cache, sni, None, false) {
                Ok(()) => with_conn(ssl, |_, b| ack(&b.conn)).unwrap_or(0),
                Err(a) => {
                    fail_with_alert(alert, a);
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
///
/// # Safety
/// `ssl` is live during the callback.
pub(crate) unsafe fn host_facts<'a>(
    host: &'a HostApi,
    ssl: *mut c_void,
    enabled: &'a dyn Fn(u16) -> bool,
) -> HostFacts<'a> {
    HostFacts {
        now: now(),
        // SAFETY: per the contract.
        version: unsafe { host_call!(host, ssl_version(ssl)) } as u16,
        cipher_enabled: enabled,
    }
}

/// Runs `f` with the facts of the connection `ssl` for the policy: the time, the version and
/// which cipher suites the vhost's context (its own, or the connection's) enables.
///
/// # Safety
/// `ssl` is live during the callback.
pub(crate) unsafe fn with_host_facts<R>(
    host: &HostApi,
    ssl: *mut c_void,
    b: &ConnBox,
    f: impl FnOnce(&HostFacts<'_>) -> R,
) -> R {
    let ctx = match b.cache.engine.vhosts.get(b.conn.vhost).ctx {
        // SAFETY: per the contract.
        0 => unsafe { host_call!(host, ssl_get_ctx(ssl)) }.cast_const(),
        ctx => ctx as *const c_void,
    };
    // SAFETY: the vhost's context outlives the cache, the connection's the callback.
    let enabled = |c: u16| unsafe { host_call!(host, ctx_cipher_enabled(ctx, c)) } == 1;
    // SAFETY: per the contract.
    f(&unsafe { host_facts(host, ssl, &enabled) })
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
        // SAFETY: called by the host library with a live ssl and `id_len` bytes at `id`.
        unsafe {
            with_conn(ssl, |host, b| {
                let id = bytes(&id, usize::try_from(id_len).unwrap_or(0));
                let waker = (host.raw.library != SNICACHE_SSL_LIBRARY_OPENSSL)
                    .then(|| b.cache.waker(ssl))
                    .flatten();
                let decision = with_host_facts(host, ssl, b, |facts| {
                    b.cache.engine.lookup(&b.conn, id, facts, waker.as_ref())
                });
                let ConnBox { cache, conn } = b;
                let resume = match decision {
                    Decision::Resume(r) => r,
                    // BoringSSL pauses the handshake (SSL_ERROR_PENDING_SESSION) and calls
                    // again when the host drives it; OpenSSL cannot pause here and gets NULL:
                    // a full handshake.
                    Decision::Pending => {
                        cache.engine.commit(conn, Decision::Pending);
                        return host_call!(host, pending_session());
                    }
                    full => {
                        cache.engine.commit(conn, full);
                        return std::ptr::null_mut();
                    }
                };
                let kept = resume
                    .local()
                    .and_then(|l| l.downcast_ref::<HostSession>())
                    .and_then(HostSession::share);
                let session = kept.unwrap_or_else(|| {
                    let der = resume.session();
                    host_call!(host, session_from_der(der.as_ptr(), der.len()))
                });
                if session.is_null() {
                    cache.engine.commit(conn, resume.undecodable());
                    return std::ptr::null_mut();
                }
                cache.engine.commit(conn, Decision::Resume(resume));
                if !copy.is_null() {
                    *copy = 0;
                }
                session
            })
            .unwrap_or(std::ptr::null_mut())
        }
    })
}

/// Reads the facts of a host session.
///
/// # Safety
/// `ssl` and `sess` are live during the callback.
unsafe fn describe<'a>(
    host: &HostApi,
    ssl: *mut c_void,
    conn: &Conn,
    sess: *mut c_void,
    id: &'a [u8],
    der: &'a [u8],
    alpn: &'a mut *const u8,
) -> NewSession<'a> {
    let mut alpn_len = 0usize;
    // SAFETY: per the contract; the ALPN bytes live with the session, which outlives the call.
    unsafe {
        host_call!(host, session_alpn(sess, alpn, &mut alpn_len));
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
            alpn: bytes(alpn, alpn_len),
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
    let mut alpn = std::ptr::null();
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
        if sess.is_null() {
            return 0;
        }
        // SAFETY: called by the host library with live ssl and sess.
        unsafe {
            with_conn(ssl, |host, b| {
                if host_call!(host, ssl_version(ssl)) >= TLS1_3_VERSION
                    && host_call!(host, ssl_tickets_enabled(ssl)) == 1
                {
                    return;
                }
                let mut id_len: c_uint = 0;
                let id_ptr = host_call!(host, session_id(sess, &mut id_len));
                let id = bytes(&id_ptr, id_len as usize);
                // A stack buffer fits nearly every session (one without a client certificate is
                // a few hundred bytes) and spares the separate length query; a larger one (-1)
                // is measured, then encoded.
                let mut small = [0u8; 2048];
                let mut large = Vec::new();
                let n = host_call!(host, session_to_der(sess, small.as_mut_ptr(), small.len()));
                let der: &[u8] = if n > 0 && n as usize <= small.len() {
                    &small[..n as usize]
                } else {
                    let n = host_call!(host, session_to_der(sess, std::ptr::null_mut(), 0));
                    if n <= 0 {
                        return;
                    }
                    large.resize(n as usize, 0);
                    if host_call!(host, session_to_der(sess, large.as_mut_ptr(), large.len())) != n
                    {
                        return;
                    }
                    &large
                };
                let mut alpn = std::ptr::null();
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
            });
        }
        0
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
            let Some(cache) = ownership::ctx_cache(host, ctx) else {
                return;
            };
            let mut sid_len: c_uint = 0;
            let sid = host_call!(host, session_id_context(sess, &mut sid_len));
            let mut id_len: c_uint = 0;
            let id = host_call!(host, session_id(sess, &mut id_len));
            if sid.is_null() || id.is_null() {
                return;
            }
            let id = bytes(&id, id_len as usize);
            for vhost in cache.vhosts_by_sid_ctx(bytes(&sid, sid_len as usize)) {
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
        // SAFETY: called by the host library with a live ssl on its own thread.
        unsafe {
            with_conn(ssl, |_, b| b.cache.engine.invalidate(&mut b.conn, now()));
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
        if ssl_api::get().is_none() {
            return Err(super::error::fail(
                super::snicache_result::InvalidParameter,
                "no config was ever made",
            ));
        }
        // SAFETY: the caller passes a live SSL used by this thread.
        let info = unsafe { with_conn(ssl, |_, b| conn_info(b)) }.ok_or_else(|| {
            super::error::fail(
                super::snicache_result::InvalidParameter,
                "no snicache state on this connection",
            )
        })?;
        super::out(out_info, info, "out")
    })
}

/// What the engine decided for a connection, for C. The strings point into the cache (which
/// the connection holds) and into the connection's state.
fn conn_info(b: &ConnBox) -> snicache_conn_info {
    let vhost = &b.cache.engine.vhosts.get(b.conn.vhost).name;
    let sni = b.conn.sni();
    let (outcome, reason) = match b.conn.outcome() {
        Outcome::Full => (SNICACHE_OUTCOME_FULL, None),
        Outcome::Resumed => (SNICACHE_OUTCOME_RESUMED, None),
        Outcome::Refused(rule) => (
            SNICACHE_OUTCOME_REFUSED,
            Some(b.cache.engine.policy.name(rule as usize)),
        ),
    };
    snicache_conn_info {
        vhost: vhost.as_ptr() as *const c_char,
        vhost_len: vhost.len(),
        sni: sni.map_or(std::ptr::null(), |s| s.as_ptr() as *const c_char),
        sni_len: sni.map_or(0, str::len),
        outcome,
        reason: reason.map_or(std::ptr::null(), |s| s.as_ptr() as *const c_char),
        reason_len: reason.map_or(0, str::len),
    }
}
