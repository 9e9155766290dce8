//! `snicache_config`: the builder a host fills before making a cache. Not thread-safe; a
//! config can make any number of caches and is freed independently of them.

use std::os::raw::{c_char, c_void};
use std::sync::Arc;

use super::error::fail;
use super::hooks::{
    snicache_log_cb, snicache_ready_cb, snicache_rule_cb, snicache_store_get_cb,
    snicache_store_put_cb, snicache_store_remove_cb, CLog, CReady, CRule, CStoreCallbacks,
};
use super::ownership;
use super::{arg_mut, arg_str, guard, out, snicache_result};
use crate::engine::policy::{Rule, MAX_LIFETIME};
use crate::engine::vhosts::{NameError, VHostOptions, VHosts};
use crate::engine::{Level, Log};
use crate::host::ssl_api::{self, snicache_ssl_api, HostApi};
use crate::store::spec::StoreSpec;

/// `snicache_config_add_vhost` flag: the vhost for absent or unknown SNI.
pub const SNICACHE_VHOST_DEFAULT: u32 = 1;
/// `snicache_config_add_vhost` flag: a session resumes at most once (RFC 8446 §8.1).
pub const SNICACHE_VHOST_SINGLE_USE: u32 = 2;
/// `snicache_config_add_vhost` flag: resume when neither the session nor the client uses
/// extended master secret (RFC 7627 §5.3 says the server SHOULD abort; refused by default).
pub const SNICACHE_VHOST_ALLOW_NO_EMS: u32 = 4;
/// `snicache_config_add_vhost` flag: sessions are neither stored nor looked up, so only
/// stateless tickets resume (nginx's `ssl_session_cache off`; with tickets off too, nothing does).
pub const SNICACHE_VHOST_NO_STORE: u32 = 8;

/// Default memory bound: 10 MiB, like `ssl_session_cache shared:SSL:10m`.
pub const SNICACHE_DEFAULT_MAX_BYTES: u64 = 10 << 20;
/// Default session lifetime: 5 minutes, OpenSSL's and nginx's default.
pub const SNICACHE_DEFAULT_TIMEOUT: u32 = 300;

/// A cache configuration under construction (opaque).
pub struct snicache_config {
    pub(crate) host: &'static HostApi,
    pub(crate) max_bytes: u64,
    pub(crate) max_entries: u64,
    pub(crate) timeout: u32,
    pub(crate) strict_sni: bool,
    pub(crate) vhosts: VHosts,
    pub(crate) rules: Vec<Arc<dyn Rule>>,
    pub(crate) log: Option<Arc<dyn Log>>,
    /// Ticket master secret; `None` draws a random one per cache.
    pub(crate) ticket_secret: Option<Vec<u8>>,
    pub(crate) ticket_rotation: u32,
    /// Secrets that only open tickets (`snicache_config_add_ticket_secret`).
    pub(crate) ticket_decrypt_only: Vec<Vec<u8>>,
    /// The host's own store, replacing the memory store.
    pub(crate) host_store: Option<CStoreCallbacks>,
    /// The built-in store to use (memory unless set).
    pub(crate) store: StoreSpec,
    /// Secret the remote store's seal key is derived from (`snicache_config_set_seal_key`).
    pub(crate) seal_key: Option<Vec<u8>>,
    /// Asynchronous lookups: the callback telling the host a paused connection may go on.
    pub(crate) ready: Option<CReady>,
    /// Host memory for the shm store (address, length): `snicache_config_set_shm_memory`.
    pub(crate) shm_memory: Option<(usize, usize)>,
    /// The host accepts TLS 1.3 early data (`snicache_config_set_early_data`).
    pub(crate) early_data: bool,
}

impl Drop for snicache_config {
    fn drop(&mut self) {
        if let Some(secret) = &mut self.ticket_secret {
            crate::crypto::zeroize(secret);
        }
        for secret in &mut self.ticket_decrypt_only {
            crate::crypto::zeroize(secret);
        }
        if let Some(key) = &mut self.seal_key {
            crate::crypto::zeroize(key);
        }
    }
}

/// Default ticket key rotation: a key encrypts for 24 h and decrypts for one ticket lifetime
/// more.
pub const SNICACHE_DEFAULT_TICKET_ROTATION: u32 = 24 * 3600;

impl snicache_config {
    /// Adds a policy rule written in Rust; it runs after the built-in rules and earlier ones.
    pub fn push_rule(&mut self, rule: Arc<dyn Rule>) -> Result<(), snicache_result> {
        let builtin = crate::engine::policy::Policy::default()
            .position(rule.name())
            .is_some();
        if builtin || self.rules.iter().any(|r| r.name() == rule.name()) {
            return Err(fail(snicache_result::DuplicateRule, rule.name()));
        }
        self.rules.push(rule);
        Ok(())
    }
}

/// Makes a config with defaults (10m, no entry limit, 300 s, default SNI fallback on).
///
/// `api` is the host SSL table filled by `snicache_ssl_api_init()`; it is copied. The first
/// table a process gives is kept for its whole life (one SSL library per process).
/// On success `*out` owns a new config; free it with `snicache_config_free`.
#[no_mangle]
pub extern "C" fn snicache_config_new(
    api: *const snicache_ssl_api,
    out_config: *mut *mut snicache_config,
) -> snicache_result {
    guard(|| {
        let api = super::arg(&api, "api")?;
        if out_config.is_null() {
            return Err(fail(snicache_result::NullParameter, "out"));
        }
        // SAFETY: the contract of this function: a table from snicache_ssl.h.
        let host = unsafe { ssl_api::install(api) }.map_err(|e| match e {
            ssl_api::ApiError::Version => fail(
                snicache_result::SslApiVersion,
                format!(
                    "table version {}, expected {}",
                    api.version,
                    ssl_api::SNICACHE_SSL_API_VERSION
                ),
            ),
            ssl_api::ApiError::Incomplete => fail(snicache_result::SslApiIncomplete, ""),
            ssl_api::ApiError::ExIndex => fail(snicache_result::SslExIndex, ""),
        })?;
        let config = ownership::box_into_ptr(snicache_config {
            host,
            max_bytes: SNICACHE_DEFAULT_MAX_BYTES,
            max_entries: u64::MAX,
            timeout: SNICACHE_DEFAULT_TIMEOUT,
            early_data: false,
            strict_sni: false,
            vhosts: VHosts::default(),
            rules: Vec::new(),
            log: None,
            ticket_secret: None,
            ticket_rotation: SNICACHE_DEFAULT_TICKET_ROTATION,
            ticket_decrypt_only: Vec::new(),
            host_store: None,
            store: StoreSpec::Memory(None),
            seal_key: None,
            ready: None,
            shm_memory: None,
        });
        out(out_config, config, "out")
    })
}

/// Frees a config. NULL is accepted. Caches made from it are not affected.
#[no_mangle]
pub extern "C" fn snicache_config_free(config: *mut snicache_config) {
    super::boundary((), || {
        // SAFETY: made by snicache_config_new and, per the contract, not used after this.
        unsafe { ownership::box_free(config) }
    })
}

/// Sets the memory bound from an nginx-style size: "10m", "512k", "1g" or bytes.
/// The bound covers records and per-entry overhead; the oldest sessions are evicted past it.
#[no_mangle]
pub extern "C" fn snicache_config_set_size(
    config: *mut snicache_config,
    size: *const c_char,
) -> snicache_result {
    guard(|| {
        let config = arg_mut(&config, "config")?;
        let text = arg_str(&size, "size")?;
        let bytes = crate::size::parse(text)
            .ok_or_else(|| fail(snicache_result::InvalidSize, format!("{text:?}")))?;
        if bytes < 16 * 1024 {
            return Err(fail(
                snicache_result::InvalidSize,
                format!("{text:?} is below the 16k minimum"),
            ));
        }
        config.max_bytes = bytes;
        Ok(())
    })
}

/// Caps the number of stored sessions (0 means no cap besides the memory bound).
#[no_mangle]
pub extern "C" fn snicache_config_set_max_entries(
    config: *mut snicache_config,
    max_entries: u64,
) -> snicache_result {
    guard(|| {
        arg_mut(&config, "config")?.max_entries = if max_entries == 0 {
            u64::MAX
        } else {
            max_entries
        };
        Ok(())
    })
}

/// Sets the default session lifetime in seconds, 1 to 86400 (RFC 5246 §F.1.4's 24 h ceiling),
/// for vhosts added with timeout 0.
#[no_mangle]
pub extern "C" fn snicache_config_set_timeout(
    config: *mut snicache_config,
    seconds: u32,
) -> snicache_result {
    guard(|| {
        let config = arg_mut(&config, "config")?;
        if seconds == 0 || seconds > MAX_LIFETIME {
            return Err(fail(
                snicache_result::InvalidParameter,
                format!("timeout {seconds} s is not in 1..=86400"),
            ));
        }
        config.timeout = seconds;
        Ok(())
    })
}

/// Strict SNI (RFC 6066 §3, ALPACA): a ClientHello naming no configured vhost is refused with a
/// fatal `unrecognized_name` alert instead of being served by the default vhost. A ClientHello
/// without SNI still goes to the default vhost.
#[no_mangle]
pub extern "C" fn snicache_config_set_strict_sni(
    config: *mut snicache_config,
    strict: bool,
) -> snicache_result {
    guard(|| {
        arg_mut(&config, "config")?.strict_sni = strict;
        Ok(())
    })
}

/// Tells snicache the host accepts TLS 1.3 early data (0-RTT: `SSL_CTX_set_early_data_enabled`
/// on BoringSSL, `SSL_CTX_set_max_early_data` on OpenSSL), so that it is accepted at most once
/// per ticket (RFC 8446 §8): each TLS 1.3 ticket issued puts a single-use entry in the store, and
/// early data under a ticket is accepted only by the handshake that takes that entry (atomic in
/// every store: across workers with `shm:`, across servers with `redis://`). Every later
/// attempt resumes with its early data rejected (1-RTT), counted as `early_data_replayed`.
/// Off by default (and then snicache leaves early data to the host library).
#[no_mangle]
pub extern "C" fn snicache_config_set_early_data(
    config: *mut snicache_config,
    enabled: bool,
) -> snicache_result {
    guard(|| {
        arg_mut(&config, "config")?.early_data = enabled;
        Ok(())
    })
}

/// Sends log lines up to `max_level` (a `snicache_log_level` value; refusals at INFO, store
/// errors at WARN) to `cb`. Any other level is `SNICACHE_RESULT_INVALID_PARAMETER`.
/// `cb` NULL turns logging off. `cb` and `userdata` must stay valid and be callable from any
/// thread for as long as a cache made from this config lives.
#[no_mangle]
pub extern "C" fn snicache_config_set_log(
    config: *mut snicache_config,
    cb: snicache_log_cb,
    userdata: *mut c_void,
    max_level: u32,
) -> snicache_result {
    guard(|| {
        let config = arg_mut(&config, "config")?;
        let max = match max_level {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            4 => Level::Debug,
            n => {
                return Err(fail(
                    snicache_result::InvalidParameter,
                    format!("log level {n}"),
                ))
            }
        };
        config.log = cb.map(|cb| Arc::new(CLog { cb, userdata, max }) as Arc<dyn Log>);
        Ok(())
    })
}

/// Adds a virtual host: `name` is an exact DNS name or a wildcard `*.example.com` (matching any
/// name below it; the longest wildcard wins, an exact name beats any wildcard). `ssl_ctx` is the
/// host's `SSL_CTX *` for this vhost, or NULL to keep the listener's; it is borrowed and must
/// outlive every cache made from this config, and its certificate and verify mode must be set
/// before `snicache_cache_new`, which derives the vhost's session id context from them.
/// `timeout` is the session lifetime in seconds (0: the config's default; capped at 86400).
/// `flags` combines `SNICACHE_VHOST_*`.
#[no_mangle]
pub extern "C" fn snicache_config_add_vhost(
    config: *mut snicache_config,
    name: *const c_char,
    ssl_ctx: *mut c_void,
    timeout: u32,
    flags: u32,
) -> snicache_result {
    guard(|| {
        let config = arg_mut(&config, "config")?;
        let name = arg_str(&name, "name")?;
        if flags
            & !(SNICACHE_VHOST_DEFAULT
                | SNICACHE_VHOST_SINGLE_USE
                | SNICACHE_VHOST_ALLOW_NO_EMS
                | SNICACHE_VHOST_NO_STORE)
            != 0
        {
            return Err(fail(
                snicache_result::InvalidParameter,
                format!("unknown vhost flags {flags:#x}"),
            ));
        }
        let options = VHostOptions {
            timeout: timeout.min(MAX_LIFETIME),
            is_default: flags & SNICACHE_VHOST_DEFAULT != 0,
            single_use: flags & SNICACHE_VHOST_SINGLE_USE != 0,
            allow_no_ems: flags & SNICACHE_VHOST_ALLOW_NO_EMS != 0,
            no_store: flags & SNICACHE_VHOST_NO_STORE != 0,
        };
        config
            .vhosts
            .add(name, ssl_ctx as usize, options)
            .map(drop)
            .map_err(|e| match e {
                NameError::Invalid => fail(snicache_result::InvalidVhostName, format!("{name:?}")),
                NameError::Duplicate => fail(snicache_result::DuplicateVhost, name),
                NameError::SecondDefault => fail(snicache_result::SecondDefault, name),
            })
    })
}

/// Adds a policy rule written in C, run after the built-in rules and rules added before it.
/// `name` (copied; 1 to 64 bytes of `[a-z0-9_-]`) is the refusal reason in stats and logs.
/// `cb` and `userdata` must stay valid and thread-safe for as long as a cache made from this
/// config lives.
#[no_mangle]
pub extern "C" fn snicache_config_add_rule(
    config: *mut snicache_config,
    name: *const c_char,
    cb: snicache_rule_cb,
    userdata: *mut c_void,
) -> snicache_result {
    guard(|| {
        let config = arg_mut(&config, "config")?;
        let name = arg_str(&name, "name")?;
        let cb = cb.ok_or_else(|| fail(snicache_result::NullParameter, "cb"))?;
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(fail(
                snicache_result::InvalidParameter,
                format!("rule name {name:?}"),
            ));
        }
        config.push_rule(Arc::new(CRule {
            name: name.to_owned(),
            cb,
            userdata,
        }))
    })
}

/// Configures the stateless ticket keys: `secret` (32 to 80 bytes, copied, e.g. an nginx
/// `ssl_session_ticket_key` file's 48 or 80 bytes; NULL draws a random secret per cache, so
/// tickets open only in this process) is the master secret from which each vhost's keys are
/// derived (HKDF-SHA256 over the secret, the vhost name and the time epoch), so servers sharing
/// a secret open each other's tickets and a vhost never opens another's.
/// `rotation_seconds` (1 to 604800; 0 keeps 86400) is how long a key seals new tickets; it then
/// only opens tickets for one ticket lifetime more (the longest vhost timeout), so a ticket
/// lives as long as its session whatever the rotation (RFC 5077 §4).
#[no_mangle]
pub extern "C" fn snicache_config_set_ticket_keys(
    config: *mut snicache_config,
    secret: *const u8,
    len: usize,
    rotation_seconds: u32,
) -> snicache_result {
    guard(|| {
        let config = arg_mut(&config, "config")?;
        if rotation_seconds > 7 * 24 * 3600 {
            return Err(fail(
                snicache_result::InvalidParameter,
                format!("ticket rotation {rotation_seconds} s is over 7 days"),
            ));
        }
        let secret = if secret.is_null() {
            None
        } else {
            if !(32..=80).contains(&len) {
                return Err(fail(
                    snicache_result::InvalidParameter,
                    format!("ticket secret of {len} bytes (32 to 80 needed)"),
                ));
            }
            // SAFETY: the caller gives `len` readable bytes at `secret`.
            Some(unsafe { ownership::bytes(&secret, len) }.to_vec())
        };
        if let Some(old) = &mut config.ticket_secret {
            crate::crypto::zeroize(old);
        }
        config.ticket_secret = secret;
        if rotation_seconds != 0 {
            config.ticket_rotation = rotation_seconds;
        }
        Ok(())
    })
}

/// Adds a decrypt-only ticket master secret (32 to 80 bytes, copied; at most 8): tickets sealed
/// with keys derived from it still open, within the same window as the main secret's, and are
/// renewed under the main secret (`snicache_config_set_ticket_keys`). nginx's second and later
/// `ssl_session_ticket_key` files play this part when keys are rolled out across servers.
#[no_mangle]
pub extern "C" fn snicache_config_add_ticket_secret(
    config: *mut snicache_config,
    secret: *const u8,
    len: usize,
) -> snicache_result {
    guard(|| {
        let config = arg_mut(&config, "config")?;
        if secret.is_null() {
            return Err(fail(snicache_result::NullParameter, "secret"));
        }
        if !(32..=80).contains(&len) {
            return Err(fail(
                snicache_result::InvalidParameter,
                format!("ticket secret of {len} bytes (32 to 80 needed)"),
            ));
        }
        if config.ticket_decrypt_only.len() >= crate::crypto::ticket_keys::MAX_DECRYPT_ONLY {
            return Err(fail(
                snicache_result::InvalidParameter,
                "more than 8 decrypt-only ticket secrets",
            ));
        }
        // SAFETY: the caller gives `len` readable bytes at `secret`.
        let bytes = unsafe { ownership::bytes(&secret, len) }.to_vec();
        config.ticket_decrypt_only.push(bytes);
        Ok(())
    })
}

/// Replaces the memory store with the host's own (a shared cache of its own, a remote store):
/// snicache hands it opaque, versioned records keyed by (vhost name, session id) and still
/// makes every decision. `get` may answer `SNICACHE_STORE_STATUS_PENDING` to pause a BoringSSL
/// handshake until the host has the answer. All three callbacks are required; they and
/// `userdata` must stay valid and be callable from any thread while a cache made from this
/// config lives. The memory bound and entry cap do not apply to the host's store.
#[no_mangle]
pub extern "C" fn snicache_config_set_store_callbacks(
    config: *mut snicache_config,
    get: snicache_store_get_cb,
    put: snicache_store_put_cb,
    remove: snicache_store_remove_cb,
    userdata: *mut c_void,
) -> snicache_result {
    guard(|| {
        let config = arg_mut(&config, "config")?;
        let (Some(get), Some(put), Some(remove)) = (get, put, remove) else {
            return Err(fail(snicache_result::NullParameter, "store callbacks"));
        };
        config.host_store = Some(CStoreCallbacks {
            get,
            put,
            remove,
            userdata,
        });
        Ok(())
    })
}

/// Asynchronous session lookups: a remote store (`redis://`) no longer fetches on the handshake
/// thread. A lookup the local tier cannot answer starts a background fetch (at most
/// `async_ms`, 200 by default, a store URL parameter) and pauses the handshake; `ready` is
/// called with the connection's `SSL *` as a token when the answer is there, and the host then
/// drives that handshake again, which goes on with the answer (resumed, or full when the session
/// was missing, Redis failed or the fetch timed out).
///
/// - BoringSSL: the handshake returns `SSL_ERROR_PENDING_SESSION` (from the session lookup).
/// - OpenSSL: the ClientHello callback reads the offered session id (TLS 1.2 session id, or
///   the TLS 1.3 stateful PSK identity) and returns `SSL_CLIENT_HELLO_RETRY`: the handshake
///   returns `SSL_ERROR_WANT_CLIENT_HELLO_CB`. A host that chains its own ClientHello callback
///   maps `SNICACHE_CLIENT_HELLO_RETRY` from `snicache_on_client_hello` to it.
///
/// In both cases: keep the connection aside (its socket is not what it waits for), and call
/// `SSL_do_handshake` (or `SSL_accept`, `SSL_read`) again after `ready` named it; give it a
/// deadline as for any handshake. `ready` runs on a snicache thread (see `snicache_ready_cb`
/// for what the token means); it and `userdata` must stay valid and callable from any thread
/// while a cache made from this config lives. NULL turns asynchronous lookups off (the
/// default: a local miss asks Redis on the handshake thread within `budget_ms`). Other stores
/// answer at once and never pause; a host store (`snicache_config_set_store_callbacks`)
/// decides itself when to answer "pending" and when to drive the handshake again. The fetcher
/// threads are started by each process on its first lookup: a cache made before `fork` pauses
/// and wakes handshakes in every worker, `ready` running in the worker that paused them.
#[no_mangle]
pub extern "C" fn snicache_config_set_async_lookup(
    config: *mut snicache_config,
    ready: snicache_ready_cb,
    userdata: *mut c_void,
) -> snicache_result {
    guard(|| {
        arg_mut(&config, "config")?.ready = ready.map(|cb| CReady { cb, userdata });
        Ok(())
    })
}

/// Chooses the built-in store from a specification: `memory[:SIZE]` (the default; in-process),
/// `shm:SIZE` (shared memory for prefork servers: make the cache before forking the workers), or
/// `redis://[user:password@]HOST:PORT[/DB]` (a fleet's shared store behind a local memory tier;
/// each process, forked workers included, starts its own writer thread and connections on its
/// first lookup or write).
/// An unknown or malformed specification, or a `shm:` size that cannot hold a store (under 64k,
/// over 1t), is `SNICACHE_RESULT_INVALID_PARAMETER` with a message saying why. It replaces
/// memory given with `snicache_config_set_shm_memory`.
#[no_mangle]
pub extern "C" fn snicache_config_set_store(
    config: *mut snicache_config,
    spec: *const c_char,
) -> snicache_result {
    guard(|| {
        let config = arg_mut(&config, "config")?;
        let text = arg_str(&spec, "spec")?;
        let parsed =
            StoreSpec::parse(text).map_err(|e| fail(snicache_result::InvalidParameter, e.0))?;
        if let StoreSpec::Memory(Some(bytes)) = parsed {
            config.max_bytes = bytes;
        }
        #[cfg(target_os = "linux")]
        if let StoreSpec::Shm(bytes) = parsed {
            crate::store::shm::check_size(bytes)
                .map_err(|e| fail(snicache_result::InvalidParameter, e.to_string()))?;
        }
        config.store = parsed;
        config.shm_memory = None;
        Ok(())
    })
}
