//! snicache's host table for BoringSSL, written in Rust over boring-sys: the twin of the
//! `OPENSSL_IS_BORINGSSL` branch of `include/snicache_ssl.h`. Tests that fill the table here
//! reach the library exactly as a C host on BoringSSL does: through this table, the exported
//! `snicache_*` functions and the raw `snicache_on_*` callbacks, with raw pointers only.
#![allow(dead_code)]

use std::os::raw::{c_char, c_int, c_long, c_uint, c_void};
use std::ptr;

use boring_sys as ffi;
use snicache::ffi::cache::snicache_hook_release_cache;
use snicache::ffi::callbacks::{
    snicache_hook_free_conn, snicache_on_client_hello, snicache_on_client_hello_again,
    snicache_on_get_session, snicache_on_info, snicache_on_new_session, snicache_on_remove_session,
    snicache_on_servername,
};
use snicache::ffi::tickets::{
    snicache_on_ticket_open, snicache_on_ticket_overhead, snicache_on_ticket_seal,
};
use snicache::host::ssl_api::{
    snicache_ssl_api, SNICACHE_INSTALL_CLIENT_HELLO, SNICACHE_INSTALL_INFO,
    SNICACHE_INSTALL_SERVERNAME, SNICACHE_INSTALL_SESSION_CACHE, SNICACHE_INSTALL_TICKET_KEYS,
    SNICACHE_SSL_API_VERSION, SNICACHE_SSL_LIBRARY_BORINGSSL,
};

/// An ex_data free callback (`CRYPTO_EX_free`) that hands the freed slot's pointer to `$release`.
macro_rules! ex_free {
    ($name:ident, $release:path) => {
        unsafe extern "C" fn $name(
            _parent: *mut c_void,
            ptr: *mut c_void,
            _ad: *mut ffi::CRYPTO_EX_DATA,
            _idx: c_int,
            _argl: c_long,
            _argp: *mut c_void,
        ) {
            $release(ptr);
        }
    };
}
ex_free!(free_conn, snicache_hook_free_conn);
ex_free!(free_cache, snicache_hook_release_cache);

unsafe extern "C" fn ssl_ex_index_new() -> c_int {
    ffi::SSL_get_ex_new_index(0, ptr::null_mut(), ptr::null_mut(), None, Some(free_conn))
}

unsafe extern "C" fn ctx_ex_index_new() -> c_int {
    ffi::SSL_CTX_get_ex_new_index(0, ptr::null_mut(), ptr::null_mut(), None, Some(free_cache))
}

unsafe extern "C" fn ssl_get_ex_data(ssl: *const c_void, idx: c_int) -> *mut c_void {
    ffi::SSL_get_ex_data(ssl.cast(), idx)
}

unsafe extern "C" fn ssl_set_ex_data(ssl: *mut c_void, idx: c_int, data: *mut c_void) -> c_int {
    ffi::SSL_set_ex_data(ssl.cast(), idx, data)
}

unsafe extern "C" fn ctx_get_ex_data(ctx: *const c_void, idx: c_int) -> *mut c_void {
    ffi::SSL_CTX_get_ex_data(ctx.cast(), idx)
}

unsafe extern "C" fn ctx_set_ex_data(ctx: *mut c_void, idx: c_int, data: *mut c_void) -> c_int {
    ffi::SSL_CTX_set_ex_data(ctx.cast(), idx, data)
}

unsafe extern "C" fn ssl_get_ctx(ssl: *const c_void) -> *mut c_void {
    ffi::SSL_get_SSL_CTX(ssl.cast()).cast()
}

unsafe extern "C" fn ssl_set_ctx(ssl: *mut c_void, ctx: *mut c_void) -> *mut c_void {
    ffi::SSL_set_SSL_CTX(ssl.cast(), ctx.cast()).cast()
}

/// BoringSSL has no `SSL_client_hello_get0_ext`: extensions are read from the
/// `SSL_CLIENT_HELLO` the select-certificate callback got.
unsafe extern "C" fn client_hello_ext(
    _ssl: *mut c_void,
    hello: *const c_void,
    ext_type: c_uint,
    out: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    c_int::from(
        !hello.is_null()
            && ffi::SSL_early_callback_ctx_extension_get(
                hello.cast(),
                ext_type as u16,
                out,
                out_len,
            ) == 1,
    )
}

unsafe extern "C" fn ssl_version(ssl: *const c_void) -> c_int {
    ffi::SSL_version(ssl.cast())
}

unsafe extern "C" fn ssl_servername(ssl: *const c_void) -> *const c_char {
    ffi::SSL_get_servername(ssl.cast(), ffi::TLSEXT_NAMETYPE_host_name as c_int)
}

/// BoringSSL answers from the handshake in progress, never -1.
unsafe extern "C" fn ssl_extms(ssl: *mut c_void) -> c_int {
    ffi::SSL_get_extms_support(ssl.cast())
}

unsafe extern "C" fn ssl_tickets_enabled(ssl: *const c_void) -> c_int {
    c_int::from(ffi::SSL_get_options(ssl.cast()) & ffi::SSL_OP_NO_TICKET as u32 == 0)
}

unsafe extern "C" fn ssl_session(ssl: *const c_void) -> *mut c_void {
    ffi::SSL_get_session(ssl.cast()).cast()
}

unsafe extern "C" fn ctx_cipher_enabled(ctx: *const c_void, id: u16) -> c_int {
    // As in snicache_ssl.h: TLS 1.3 suites are not in SSL_CTX_get_ciphers, and BoringSSL has
    // no reader for a context's TLS 1.3 list (SSL_CTX_set1_tls13_ciphers is write-only; a
    // connection keeps the listener's list anyway). BoringSSL resumes TLS 1.3 only with the
    // suite it negotiates.
    if (0x1301..=0x1303).contains(&id) {
        return 1;
    }
    let sk = ffi::SSL_CTX_get_ciphers(ctx.cast()) as *const ffi::OPENSSL_STACK;
    if sk.is_null() {
        return 0;
    }
    for i in 0..ffi::OPENSSL_sk_num(sk) {
        let c = ffi::OPENSSL_sk_value(sk, i) as *const ffi::SSL_CIPHER;
        if ffi::SSL_CIPHER_get_protocol_id(c) == id {
            return 1;
        }
    }
    0
}

unsafe extern "C" fn ctx_cert_der(ctx: *mut c_void, buf: *mut u8, cap: usize) -> c_long {
    let cert = ffi::SSL_CTX_get0_certificate(ctx.cast());
    if cert.is_null() {
        return 0;
    }
    let n = ffi::i2d_X509(cert, ptr::null_mut());
    if n <= 0 || buf.is_null() {
        return n as c_long;
    }
    if n as usize > cap {
        return -1;
    }
    let mut p = buf;
    ffi::i2d_X509(cert, &mut p) as c_long
}

unsafe extern "C" fn ctx_verify_mode(ctx: *const c_void) -> c_int {
    ffi::SSL_CTX_get_verify_mode(ctx.cast())
}

unsafe extern "C" fn ctx_set_sid_ctx(ctx: *mut c_void, sid: *const u8, len: c_uint) -> c_int {
    ffi::SSL_CTX_set_session_id_context(ctx.cast(), sid, len as usize)
}

unsafe extern "C" fn session_to_der(sess: *mut c_void, buf: *mut u8, cap: usize) -> c_long {
    let n = ffi::i2d_SSL_SESSION(sess.cast(), ptr::null_mut());
    if n <= 0 || buf.is_null() {
        return n as c_long;
    }
    if n as usize > cap {
        return -1;
    }
    let mut p = buf;
    ffi::i2d_SSL_SESSION(sess.cast(), &mut p) as c_long
}

unsafe extern "C" fn session_from_der(der: *const u8, len: usize) -> *mut c_void {
    if der.is_null() || len == 0 || len > 0x7fff_ffff {
        return ptr::null_mut();
    }
    let mut p = der;
    ffi::d2i_SSL_SESSION(ptr::null_mut(), &mut p, len as c_long).cast()
}

unsafe extern "C" fn session_up_ref(sess: *mut c_void) -> c_int {
    ffi::SSL_SESSION_up_ref(sess.cast())
}

unsafe extern "C" fn session_free(sess: *mut c_void) {
    ffi::SSL_SESSION_free(sess.cast())
}

unsafe extern "C" fn session_id(sess: *const c_void, len: *mut c_uint) -> *const u8 {
    ffi::SSL_SESSION_get_id(sess.cast(), len)
}

unsafe extern "C" fn session_id_context(sess: *const c_void, len: *mut c_uint) -> *const u8 {
    ffi::SSL_SESSION_get0_id_context(sess.cast(), len)
}

unsafe extern "C" fn session_time(sess: *const c_void) -> u64 {
    ffi::SSL_SESSION_get_time(sess.cast())
}

unsafe extern "C" fn session_version(sess: *const c_void) -> c_int {
    c_int::from(ffi::SSL_SESSION_get_protocol_version(sess.cast()))
}

unsafe extern "C" fn session_cipher(sess: *const c_void) -> u16 {
    let c = ffi::SSL_SESSION_get0_cipher(sess.cast());
    if c.is_null() {
        0
    } else {
        ffi::SSL_CIPHER_get_protocol_id(c)
    }
}

/// BoringSSL has no `SSL_SESSION_get0_alpn_selected`.
unsafe extern "C" fn session_alpn(_sess: *const c_void, out: *mut *const u8, len: *mut usize) {
    *out = ptr::null();
    *len = 0;
}

/// BoringSSL has no ticket app data; its tickets go through the ticket AEAD method instead.
unsafe extern "C" fn session_set_appdata(
    _sess: *mut c_void,
    _data: *const u8,
    _len: usize,
) -> c_int {
    0
}

unsafe extern "C" fn session_get_appdata(
    _sess: *mut c_void,
    _data: *mut *const u8,
    _len: *mut usize,
) -> c_int {
    0
}

/// What a session lookup returns to pause the handshake (`SSL_ERROR_PENDING_SESSION`).
unsafe extern "C" fn pending_session() -> *mut c_void {
    ffi::SSL_magic_pending_session_ptr().cast()
}

/// OpenSSL's ticket key callback support; BoringSSL tickets use the ticket AEAD method.
unsafe extern "C" fn ticket_key_init(
    _cipher_ctx: *mut c_void,
    _mac_ctx: *mut c_void,
    _aes: *const u8,
    _hmac: *const u8,
    _iv: *const u8,
    _enc: c_int,
) -> c_int {
    0
}

/// The ClientHello's legacy session id (`hello->session_id`).
unsafe extern "C" fn client_hello_session_id(
    _ssl: *mut c_void,
    hello: *const c_void,
    out: *mut *const u8,
) -> usize {
    let h = hello as *const ffi::SSL_CLIENT_HELLO;
    if h.is_null() {
        return 0;
    }
    *out = (*h).session_id;
    (*h).session_id_len
}

/// The select-certificate callback. BoringSSL answers `ssl_select_cert_error` with a
/// handshake_failure alert; sending snicache's alert first makes that one the alert on the wire
/// (BoringSSL sends nothing after a fatal alert).
unsafe extern "C" fn select_cert(
    hello: *const ffi::SSL_CLIENT_HELLO,
) -> ffi::ssl_select_cert_result_t {
    let ssl = (*hello).ssl;
    let mut alert: c_int = 0;
    if snicache_on_client_hello(ssl.cast(), hello.cast(), &mut alert, ptr::null_mut()) == 1 {
        return ffi::ssl_select_cert_result_t::ssl_select_cert_success;
    }
    ffi::SSL_send_fatal_alert(ssl, alert as u8);
    ffi::ssl_select_cert_result_t::ssl_select_cert_error
}

/// The message callback: BoringSSL runs no callback on the second ClientHello (after a
/// HelloRetryRequest), so its server_name is checked here; the fatal alert also makes the
/// handshake fail at its next write.
unsafe extern "C" fn msg(
    write_p: c_int,
    _version: c_int,
    content_type: c_int,
    buf: *const c_void,
    len: usize,
    ssl: *mut ffi::SSL,
    _arg: *mut c_void,
) {
    let m = std::slice::from_raw_parts(buf.cast::<u8>(), len);
    if write_p != 0
        || content_type != ffi::SSL3_RT_HANDSHAKE as c_int
        || len < 4
        || m[0] != ffi::SSL3_MT_CLIENT_HELLO as u8
    {
        return;
    }
    let mut hello = std::mem::MaybeUninit::<ffi::SSL_CLIENT_HELLO>::zeroed();
    if ffi::SSL_parse_client_hello(ssl, hello.as_mut_ptr(), m[4..].as_ptr(), len - 4) != 1 {
        return;
    }
    let mut alert: c_int = 0;
    if snicache_on_client_hello_again(ssl.cast(), hello.as_ptr().cast(), &mut alert) != 1 {
        ffi::SSL_send_fatal_alert(ssl, alert as u8);
    }
}

unsafe extern "C" fn servername(ssl: *mut ffi::SSL, alert: *mut c_int, arg: *mut c_void) -> c_int {
    snicache_on_servername(ssl.cast(), alert, arg)
}

unsafe extern "C" fn get_session(
    ssl: *mut ffi::SSL,
    id: *const u8,
    id_len: c_int,
    copy: *mut c_int,
) -> *mut ffi::SSL_SESSION {
    snicache_on_get_session(ssl.cast(), id, id_len, copy).cast()
}

unsafe extern "C" fn new_session(ssl: *mut ffi::SSL, sess: *mut ffi::SSL_SESSION) -> c_int {
    snicache_on_new_session(ssl.cast(), sess.cast())
}

unsafe extern "C" fn remove_session(ctx: *mut ffi::SSL_CTX, sess: *mut ffi::SSL_SESSION) {
    snicache_on_remove_session(ctx.cast(), sess.cast())
}

unsafe extern "C" fn info(ssl: *const ffi::SSL, where_: c_int, ret: c_int) {
    if where_ & ffi::SSL_CB_ALERT as c_int != 0 && (ret >> 8) & 0xff == ffi::SSL3_AL_FATAL as c_int
    {
        snicache_on_info(ssl.cast(), where_, ret);
    }
}

unsafe extern "C" fn ticket_overhead(ssl: *mut ffi::SSL) -> usize {
    snicache_on_ticket_overhead(ssl.cast())
}

unsafe extern "C" fn ticket_seal(
    ssl: *mut ffi::SSL,
    out: *mut u8,
    out_len: *mut usize,
    max_out: usize,
    in_: *const u8,
    in_len: usize,
) -> c_int {
    snicache_on_ticket_seal(ssl.cast(), out, out_len, max_out, in_, in_len)
}

unsafe extern "C" fn ticket_open(
    ssl: *mut ffi::SSL,
    out: *mut u8,
    out_len: *mut usize,
    max_out: usize,
    in_: *const u8,
    in_len: usize,
) -> ffi::ssl_ticket_aead_result_t {
    match snicache_on_ticket_open(ssl.cast(), out, out_len, max_out, in_, in_len) {
        1 => ffi::ssl_ticket_aead_result_t::ssl_ticket_aead_success,
        0 => ffi::ssl_ticket_aead_result_t::ssl_ticket_aead_ignore_ticket,
        _ => ffi::ssl_ticket_aead_result_t::ssl_ticket_aead_error,
    }
}

/// snicache's per-vhost ticket keys as BoringSSL's ticket AEAD method (`snicache_ssl__ticket_aead`).
static TICKET_AEAD: ffi::SSL_TICKET_AEAD_METHOD = ffi::SSL_TICKET_AEAD_METHOD {
    max_overhead: Some(ticket_overhead),
    seal: Some(ticket_seal),
    open: Some(ticket_open),
};

/// `SNICACHE_INSTALL_TICKET_CHECK` is OpenSSL's ticket callback: nothing to install here.
unsafe extern "C" fn ctx_install(ctx: *mut c_void, flags: u32, arg: *mut c_void) -> c_int {
    let ctx = ctx as *mut ffi::SSL_CTX;
    if flags & SNICACHE_INSTALL_CLIENT_HELLO != 0 {
        ffi::SSL_CTX_set_select_certificate_cb(ctx, Some(select_cert));
        ffi::SSL_CTX_set_msg_callback(ctx, Some(msg));
    }
    if flags & SNICACHE_INSTALL_SESSION_CACHE != 0 {
        ffi::SSL_CTX_set_session_cache_mode(
            ctx,
            ffi::SSL_SESS_CACHE_SERVER | ffi::SSL_SESS_CACHE_NO_INTERNAL,
        );
        ffi::SSL_CTX_sess_set_new_cb(ctx, Some(new_session));
        ffi::SSL_CTX_sess_set_get_cb(ctx, Some(get_session));
        ffi::SSL_CTX_sess_set_remove_cb(ctx, Some(remove_session));
    }
    if flags & SNICACHE_INSTALL_SERVERNAME != 0 {
        ffi::SSL_CTX_set_tlsext_servername_callback(ctx, Some(servername));
        ffi::SSL_CTX_set_tlsext_servername_arg(ctx, arg);
    }
    if flags & SNICACHE_INSTALL_INFO != 0 {
        ffi::SSL_CTX_set_info_callback(ctx, Some(info));
    }
    if flags & SNICACHE_INSTALL_TICKET_KEYS != 0 {
        ffi::SSL_CTX_set_ticket_aead_method(ctx, &TICKET_AEAD);
    }
    1
}

/// The table, as `snicache_ssl_api_init()` fills it on a BoringSSL host.
pub fn api() -> snicache_ssl_api {
    snicache_ssl_api {
        version: SNICACHE_SSL_API_VERSION,
        size: std::mem::size_of::<snicache_ssl_api>() as u32,
        library: SNICACHE_SSL_LIBRARY_BORINGSSL,
        ssl_ex_index_new: Some(ssl_ex_index_new),
        ctx_ex_index_new: Some(ctx_ex_index_new),
        ssl_get_ex_data: Some(ssl_get_ex_data),
        ssl_set_ex_data: Some(ssl_set_ex_data),
        ctx_get_ex_data: Some(ctx_get_ex_data),
        ctx_set_ex_data: Some(ctx_set_ex_data),
        ssl_get_ctx: Some(ssl_get_ctx),
        ssl_set_ctx: Some(ssl_set_ctx),
        client_hello_ext: Some(client_hello_ext),
        ssl_version: Some(ssl_version),
        ssl_servername: Some(ssl_servername),
        ssl_extms: Some(ssl_extms),
        ssl_tickets_enabled: Some(ssl_tickets_enabled),
        ssl_session: Some(ssl_session),
        ctx_cipher_enabled: Some(ctx_cipher_enabled),
        ctx_cert_der: Some(ctx_cert_der),
        ctx_verify_mode: Some(ctx_verify_mode),
        ctx_set_sid_ctx: Some(ctx_set_sid_ctx),
        ctx_install: Some(ctx_install),
        session_to_der: Some(session_to_der),
        session_from_der: Some(session_from_der),
        session_up_ref: Some(session_up_ref),
        session_free: Some(session_free),
        session_id: Some(session_id),
        session_id_context: Some(session_id_context),
        session_time: Some(session_time),
        session_version: Some(session_version),
        session_cipher: Some(session_cipher),
        session_alpn: Some(session_alpn),
        session_set_appdata: Some(session_set_appdata),
        session_get_appdata: Some(session_get_appdata),
        pending_session: Some(pending_session),
        ticket_key_init: Some(ticket_key_init),
        client_hello_session_id: Some(client_hello_session_id),
    }
}
