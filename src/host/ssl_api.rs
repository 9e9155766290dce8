//! The host SSL table: every call on an `SSL*`, `SSL_CTX*` or `SSL_SESSION*` goes through these
//! function pointers, which the host fills from its own OpenSSL or BoringSSL headers
//! (`include/snicache_ssl.h`). The library links no SSL library of its own for host objects.
//!
//! One process has one SSL library, so the first complete table given to `snicache_config_new`
//! is kept for the life of the process; the callbacks, which OpenSSL calls without any argument
//! of ours, find it here.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_long, c_uint, c_void};

use once_cell::sync::OnceCell;

/// Version of the `snicache_ssl_api` layout. `snicache_ssl.h` fills this in.
/// 2: `client_hello_session_id` added.
pub const SNICACHE_SSL_API_VERSION: u32 = 2;

/// `snicache_ssl_api.library` for OpenSSL (1.1.1 or 3.x).
pub const SNICACHE_SSL_LIBRARY_OPENSSL: u32 = 1;
/// `snicache_ssl_api.library` for BoringSSL.
pub const SNICACHE_SSL_LIBRARY_BORINGSSL: u32 = 2;

/// `ctx_install` flag: the ClientHello callback (BoringSSL: select-certificate callback, and the
/// message callback, where BoringSSL shows the second ClientHello after a HelloRetryRequest).
pub const SNICACHE_INSTALL_CLIENT_HELLO: u32 = 1;
/// `ctx_install` flag: new/get/remove session callbacks and an external-only server cache.
pub const SNICACHE_INSTALL_SESSION_CACHE: u32 = 2;
/// `ctx_install` flag: the servername (SNI) callback.
pub const SNICACHE_INSTALL_SERVERNAME: u32 = 4;
/// `ctx_install` flag: the info callback that sees fatal alerts.
pub const SNICACHE_INSTALL_INFO: u32 = 8;
/// `ctx_install` flag: the ticket generate/decrypt check (OpenSSL `SSL_CTX_set_session_ticket_cb`).
pub const SNICACHE_INSTALL_TICKET_CHECK: u32 = 16;

/// `ctx_install` flag: per-vhost ticket keys (OpenSSL ticket key callback; BoringSSL ticket
/// AEAD method).
pub const SNICACHE_INSTALL_TICKET_KEYS: u32 = 32;

/// `ctx_install` flag: the allow-early-data callback (OpenSSL `SSL_CTX_set_allow_early_data_cb`;
/// BoringSSL decides in the ticket AEAD method's open and needs nothing here).
pub const SNICACHE_INSTALL_EARLY_DATA: u32 = 64;

/// The table of host SSL functions. Fill it with `snicache_ssl_api_init()` from
/// `snicache_ssl.h`, which uses the host's own headers; every pointer must be set.
/// Pointers are `void *` so one library serves OpenSSL and BoringSSL hosts.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct snicache_ssl_api {
    /// `SNICACHE_SSL_API_VERSION` of the header that filled the table.
    pub version: u32,
    /// `sizeof(snicache_ssl_api)` as the host compiled it.
    pub size: u32,
    /// `SNICACHE_SSL_LIBRARY_OPENSSL` or `SNICACHE_SSL_LIBRARY_BORINGSSL`.
    pub library: u32,
    /// Allocates an `SSL` ex_data index whose free callback calls `snicache_hook_free_conn`.
    pub ssl_ex_index_new: Option<unsafe extern "C" fn() -> c_int>,
    /// Allocates an `SSL_CTX` ex_data index whose free callback calls
    /// `snicache_hook_release_cache`.
    pub ctx_ex_index_new: Option<unsafe extern "C" fn() -> c_int>,
    /// `SSL_get_ex_data`.
    pub ssl_get_ex_data:
        Option<unsafe extern "C" fn(ssl: *const c_void, idx: c_int) -> *mut c_void>,
    /// `SSL_set_ex_data`.
    pub ssl_set_ex_data:
        Option<unsafe extern "C" fn(ssl: *mut c_void, idx: c_int, data: *mut c_void) -> c_int>,
    /// `SSL_CTX_get_ex_data`.
    pub ctx_get_ex_data:
        Option<unsafe extern "C" fn(ctx: *const c_void, idx: c_int) -> *mut c_void>,
    /// `SSL_CTX_set_ex_data`.
    pub ctx_set_ex_data:
        Option<unsafe extern "C" fn(ctx: *mut c_void, idx: c_int, data: *mut c_void) -> c_int>,
    /// `SSL_get_SSL_CTX`.
    pub ssl_get_ctx: Option<unsafe extern "C" fn(ssl: *const c_void) -> *mut c_void>,
    /// `SSL_set_SSL_CTX`; returns the context now in use, NULL on failure.
    pub ssl_set_ctx:
        Option<unsafe extern "C" fn(ssl: *mut c_void, ctx: *mut c_void) -> *mut c_void>,
    /// Raw bytes of ClientHello extension `ext_type`. OpenSSL: `SSL_client_hello_get0_ext(ssl)`;
    /// BoringSSL: `SSL_early_callback_ctx_extension_get(hello)`. Returns 1 when present.
    pub client_hello_ext: Option<
        unsafe extern "C" fn(
            ssl: *mut c_void,
            hello: *const c_void,
            ext_type: c_uint,
            out: *mut *const u8,
            out_len: *mut usize,
        ) -> c_int,
    >,
    /// `SSL_version` (the negotiated version once the ClientHello is processed).
    pub ssl_version: Option<unsafe extern "C" fn(ssl: *const c_void) -> c_int>,
    /// `SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)`.
    pub ssl_servername: Option<unsafe extern "C" fn(ssl: *const c_void) -> *const c_char>,
    /// `SSL_get_extms_support`: 1 when this connection negotiated extended master secret, 0
    /// when it did not, -1 when the library cannot tell yet (OpenSSL during the handshake).
    pub ssl_extms: Option<unsafe extern "C" fn(ssl: *mut c_void) -> c_int>,
    /// 1 when the connection issues stateless tickets (`SSL_OP_NO_TICKET` not set).
    pub ssl_tickets_enabled: Option<unsafe extern "C" fn(ssl: *const c_void) -> c_int>,
    /// `SSL_get0_session`.
    pub ssl_session: Option<unsafe extern "C" fn(ssl: *const c_void) -> *mut c_void>,
    /// 1 when the cipher suite with this IANA id is enabled on `ctx`.
    pub ctx_cipher_enabled: Option<unsafe extern "C" fn(ctx: *const c_void, id: u16) -> c_int>,
    /// DER of the context's certificate into `buf` (NULL: length only); returns the length or -1.
    pub ctx_cert_der:
        Option<unsafe extern "C" fn(ctx: *mut c_void, buf: *mut u8, cap: usize) -> c_long>,
    /// `SSL_CTX_get_verify_mode`.
    pub ctx_verify_mode: Option<unsafe extern "C" fn(ctx: *const c_void) -> c_int>,
    /// `SSL_CTX_set_session_id_context`.
    pub ctx_set_sid_ctx:
        Option<unsafe extern "C" fn(ctx: *mut c_void, sid: *const u8, len: c_uint) -> c_int>,
    /// Installs snicache's callbacks (`SNICACHE_INSTALL_*` flags) with `arg` as their argument.
    /// Returns 1 on success, 0 when the host library lacks one of them.
    pub ctx_install:
        Option<unsafe extern "C" fn(ctx: *mut c_void, flags: u32, arg: *mut c_void) -> c_int>,
    /// `i2d_SSL_SESSION`: DER into `buf` (NULL: length only); returns the length or -1.
    pub session_to_der:
        Option<unsafe extern "C" fn(sess: *mut c_void, buf: *mut u8, cap: usize) -> c_long>,
    /// `d2i_SSL_SESSION`: a new session with one reference, or NULL.
    pub session_from_der: Option<unsafe extern "C" fn(der: *const u8, len: usize) -> *mut c_void>,
    /// `SSL_SESSION_up_ref`.
    pub session_up_ref: Option<unsafe extern "C" fn(sess: *mut c_void) -> c_int>,
    /// `SSL_SESSION_free`.
    pub session_free: Option<unsafe extern "C" fn(sess: *mut c_void)>,
    /// `SSL_SESSION_get_id`.
    pub session_id:
        Option<unsafe extern "C" fn(sess: *const c_void, len: *mut c_uint) -> *const u8>,
    /// `SSL_SESSION_get0_id_context`.
    pub session_id_context:
        Option<unsafe extern "C" fn(sess: *const c_void, len: *mut c_uint) -> *const u8>,
    /// `SSL_SESSION_get_time` (seconds since the epoch).
    pub session_time: Option<unsafe extern "C" fn(sess: *const c_void) -> u64>,
    /// `SSL_SESSION_get_protocol_version`.
    pub session_version: Option<unsafe extern "C" fn(sess: *const c_void) -> c_int>,
    /// IANA id of the session's cipher suite (`SSL_CIPHER_get_protocol_id`).
    pub session_cipher: Option<unsafe extern "C" fn(sess: *const c_void) -> u16>,
    /// `SSL_SESSION_get0_alpn_selected`.
    pub session_alpn:
        Option<unsafe extern "C" fn(sess: *const c_void, out: *mut *const u8, len: *mut usize)>,
    /// `SSL_SESSION_set1_ticket_appdata` (OpenSSL only; BoringSSL may leave it a stub returning 0).
    pub session_set_appdata:
        Option<unsafe extern "C" fn(sess: *mut c_void, data: *const u8, len: usize) -> c_int>,
    /// `SSL_SESSION_get0_ticket_appdata`; returns 1 and sets `data`, `len` when present.
    pub session_get_appdata: Option<
        unsafe extern "C" fn(sess: *mut c_void, data: *mut *const u8, len: *mut usize) -> c_int,
    >,
    /// The value a session lookup returns to pause the handshake: BoringSSL's
    /// `SSL_magic_pending_session_ptr()`; NULL on OpenSSL, which cannot pause there.
    pub pending_session: Option<unsafe extern "C" fn() -> *mut c_void>,
    /// OpenSSL ticket key callback support: initializes `cipher_ctx` (`EVP_CIPHER_CTX *`,
    /// AES-256-CBC with `aes` and the 16-byte `iv`, for encryption when `enc` is 1) and `mac_ctx`
    /// (`EVP_MAC_CTX *` on 3.x, `HMAC_CTX *` on 1.1.1: HMAC-SHA256 with `hmac`). Both keys are 32
    /// bytes. Returns 1 on success. BoringSSL hosts may leave a stub returning 0.
    pub ticket_key_init: Option<
        unsafe extern "C" fn(
            cipher_ctx: *mut c_void,
            mac_ctx: *mut c_void,
            aes: *const u8,
            hmac: *const u8,
            iv: *const u8,
            enc: c_int,
        ) -> c_int,
    >,
    /// The legacy session id of the ClientHello being processed into `*out` (borrowed from the
    /// ClientHello); returns its length, 0 when empty. OpenSSL:
    /// `SSL_client_hello_get0_session_id(ssl)`; BoringSSL: `hello->session_id`.
    pub client_hello_session_id: Option<
        unsafe extern "C" fn(ssl: *mut c_void, hello: *const c_void, out: *mut *const u8) -> usize,
    >,
}

/// The checked table: every pointer is known to be set, so calls need no unwrap.
pub struct HostApi {
    pub raw: snicache_ssl_api,
    pub ssl_ex_index: c_int,
    pub ctx_ex_index: c_int,
}

static HOST: OnceCell<HostApi> = OnceCell::new();

/// Why a table was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiError {
    Version,
    Incomplete,
    ExIndex,
}

macro_rules! all_set {
    ($t:expr, $($f:ident),*) => { true $(&& $t.$f.is_some())* };
}

impl snicache_ssl_api {
    fn complete(&self) -> bool {
        all_set!(
            self,
            ssl_ex_index_new,
            ctx_ex_index_new,
            ssl_get_ex_data,
            ssl_set_ex_data,
            ctx_get_ex_data,
            ctx_set_ex_data,
            ssl_get_ctx,
            ssl_set_ctx,
            client_hello_ext,
            ssl_version,
            ssl_servername,
            ssl_extms,
            ssl_tickets_enabled,
            ssl_session,
            ctx_cipher_enabled,
            ctx_cert_der,
            ctx_verify_mode,
            ctx_set_sid_ctx,
            ctx_install,
            session_to_der,
            session_from_der,
            session_up_ref,
            session_free,
            session_id,
            session_id_context,
            session_time,
            session_version,
            session_cipher,
            session_alpn,
            session_set_appdata,
            session_get_appdata,
            pending_session,
            ticket_key_init,
            client_hello_session_id
        )
    }
}

/// Installs the process-wide table on first use; later tables only need to be valid.
///
/// # Safety
/// `api` must be a table filled by `snicache_ssl.h` (or equivalent) whose functions stay valid
/// for the life of the process.
pub unsafe fn install(api: &snicache_ssl_api) -> Result<&'static HostApi, ApiError> {
    if api.version != SNICACHE_SSL_API_VERSION
        || (api.size as usize) < std::mem::size_of::<snicache_ssl_api>()
    {
        return Err(ApiError::Version);
    }
    if !api.complete() {
        return Err(ApiError::Incomplete);
    }
    HOST.get_or_try_init(|| {
        let (Some(ssl_index_new), Some(ctx_index_new)) =
            (api.ssl_ex_index_new, api.ctx_ex_index_new)
        else {
            return Err(ApiError::Incomplete);
        };
        // SAFETY: the caller vouches for the table's functions.
        let (ssl_idx, ctx_idx) = unsafe { (ssl_index_new(), ctx_index_new()) };
        if ssl_idx < 0 || ctx_idx < 0 {
            return Err(ApiError::ExIndex);
        }
        Ok(HostApi {
            raw: *api,
            ssl_ex_index: ssl_idx,
            ctx_ex_index: ctx_idx,
        })
    })
}

/// The installed table, if any config was ever created.
pub fn get() -> Option<&'static HostApi> {
    HOST.get()
}

/// What a table entry would answer were it unset, which `install` rules out: 0, NULL or
/// nothing, which every caller already takes as the call's failure. So a call never panics.
pub trait Unset {
    const UNSET: Self;
}

macro_rules! unset_zero {
    ($($t:ty),*) => { $(impl Unset for $t { const UNSET: Self = 0; })* };
}
unset_zero!(i32, i64, u16, u64, usize);

impl Unset for () {
    const UNSET: Self = ();
}

impl<T> Unset for *mut T {
    const UNSET: Self = std::ptr::null_mut();
}

impl<T> Unset for *const T {
    const UNSET: Self = std::ptr::null();
}

/// Calls one table entry (`install` checked every entry is set).
macro_rules! host_call {
    ($api:expr, $f:ident ( $($arg:expr),* )) => {
        match $api.raw.$f {
            Some(f) => f($($arg),*),
            None => $crate::host::ssl_api::Unset::UNSET,
        }
    };
}
pub(crate) use host_call;
