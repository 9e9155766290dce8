//! `snicache_cache`: the immutable, shareable cache made from a config, attached to listener
//! contexts, and its stats.

use std::os::raw::{c_char, c_void};

use super::config::snicache_config;
use super::error::fail;
use super::ownership;
use super::{arg, arg_str, guard, out, snicache_result};
use crate::crypto::ticket_keys::TicketKeys;
use crate::engine::policy::Policy;
use crate::engine::stats::Stats;
use crate::engine::{session_id_context, Engine};
use crate::host::ssl_api::{
    host_call, HostApi, SNICACHE_INSTALL_CLIENT_HELLO, SNICACHE_INSTALL_EARLY_DATA,
    SNICACHE_INSTALL_INFO, SNICACHE_INSTALL_SERVERNAME, SNICACHE_INSTALL_SESSION_CACHE,
    SNICACHE_INSTALL_TICKET_CHECK, SNICACHE_INSTALL_TICKET_KEYS,
};
use crate::store::memory::MemoryStore;
use crate::store::spec::StoreSpec;

/// `snicache_cache_attach` flags: everything (the default when 0 is passed).
pub const SNICACHE_ATTACH_ALL: u32 = SNICACHE_INSTALL_CLIENT_HELLO
    | SNICACHE_INSTALL_SESSION_CACHE
    | SNICACHE_INSTALL_TICKET_KEYS
    | SNICACHE_INSTALL_SERVERNAME
    | SNICACHE_INSTALL_INFO
    | SNICACHE_INSTALL_TICKET_CHECK
    | SNICACHE_INSTALL_EARLY_DATA;

/// A session cache (opaque). Thread-safe: every function taking a `const snicache_cache *` may
/// be called from any thread.
pub struct snicache_cache {
    pub(crate) engine: Engine,
    pub(crate) host: &'static HostApi,
    /// Session id context of each vhost, by vhost index.
    pub(crate) sid_ctx: Vec<[u8; 32]>,
    pub(crate) tickets: TicketKeys,
    /// The host's ready callback, when lookups may pause the handshake.
    pub(crate) ready: Option<super::hooks::CReady>,
}

impl snicache_cache {
    /// The vhosts whose context carries this session id context (several when vhosts share
    /// one `SSL_CTX`, like the names of one nginx server block).
    pub(crate) fn vhosts_by_sid_ctx<'a>(&'a self, sid: &'a [u8]) -> impl Iterator<Item = u32> + 'a {
        self.sid_ctx
            .iter()
            .enumerate()
            .filter(move |(_, s)| s[..] == *sid)
            .map(|(i, _)| i as u32)
    }

    /// A waker telling the host that `ssl` may go on, when asynchronous lookups are on.
    pub(crate) fn waker(&self, ssl: *const c_void) -> Option<std::task::Waker> {
        self.ready.map(|r| r.waker(ssl))
    }
}

/// Releases a context's reference to a cache. Called only by the `SSL_CTX` ex_data free
/// callback that `snicache_ssl.h` registers, with the pointer stored in snicache's index.
#[no_mangle]
pub extern "C" fn snicache_hook_release_cache(ptr: *mut c_void) {
    // SAFETY: per the contract, ptr comes from snicache's own ctx ex_data slot.
    super::boundary((), || unsafe { ownership::ctx_release(ptr) })
}

/// Makes a cache from `config` (which is only read; free it whenever you like).
///
/// Derives each vhost's session id context from its name, certificate and verify mode and sets
/// it on the vhost's `SSL_CTX`, so the contexts must be fully configured first.
/// On success `*out` owns the cache; release it with `snicache_cache_free`. Contexts it is
/// attached to keep their own reference, so it lives until the last of them is freed too.
///
/// With the store `shm:SIZE` this creates the shared mapping (SIZE bytes at most, fixed for the
/// cache's life): call it in the parent before forking the workers, which then use the same
/// cache pointer. Sessions, store usage and every counter in `snicache_cache_stats` live in the
/// mapping, so any worker's stats are the sum over all of them. A size below 64k is
/// `SNICACHE_RESULT_INVALID_PARAMETER`; a mapping or lock the platform refuses is
/// `SNICACHE_RESULT_STORE_FAILED` (Linux only); `snicache_result_message` says which.
#[no_mangle]
pub extern "C" fn snicache_cache_new(
    config: *const snicache_config,
    out_cache: *mut *const snicache_cache,
) -> snicache_result {
    guard(|| {
        let config = arg(&config, "config")?;
        if out_cache.is_null() {
            return Err(fail(snicache_result::NullParameter, "out"));
        }
        if config.vhosts.is_empty() {
            return Err(fail(snicache_result::NoVhosts, ""));
        }
        let host = config.host;
        let mut vhosts = config.vhosts.clone();
        vhosts.fill_timeouts(config.timeout);
        let mut sid_ctx = Vec::with_capacity(vhosts.len());
        for v in vhosts.iter() {
            let ctx = v.ctx as *mut c_void;
            let (cert, mode) = if ctx.is_null() {
                (Vec::new(), 0)
            } else {
                // SAFETY: the vhost's SSL_CTX is live per snicache_config_add_vhost's contract.
                unsafe { (ctx_cert(host, ctx), host_call!(host, ctx_verify_mode(ctx))) }
            };
            // Vhosts sharing a context share its one session id context: derive it from all of
            // their names, so no name's setting silently replaces another's.
            let mut names: Vec<&str> = vhosts
                .iter()
                .filter(|o| o.ctx == v.ctx)
                .map(|o| o.name.as_str())
                .collect();
            names.sort_unstable();
            let sid = session_id_context(&names.join(" "), &cert, mode);
            // SAFETY: as above; sid is 32 bytes (SSL_MAX_SID_CTX_LENGTH).
            if !ctx.is_null()
                && unsafe { host_call!(host, ctx_set_sid_ctx(ctx, sid.as_ptr(), 32)) } != 1
            {
                return Err(fail(
                    snicache_result::HostCallFailed,
                    format!("SSL_CTX_set_session_id_context for {}", v.name),
                ));
            }
            sid_ctx.push(sid);
        }
        let mut policy = Policy::default();
        for rule in &config.rules {
            policy.push(rule.clone());
        }
        // Keys decrypt as long as the longest-lived vhost's sessions, whatever the rotation.
        let ticket_lifetime = vhosts.iter().map(|v| v.options.timeout).max().unwrap_or(1);
        let tickets = TicketKeys::new(
            config.ticket_secret.as_deref(),
            config.ticket_rotation,
            ticket_lifetime,
            vhosts.len(),
        )
        .and_then(|t| {
            for secret in &config.ticket_decrypt_only {
                t.add_decrypt_only(secret)?;
            }
            Ok(t)
        })
        .map_err(|e| {
            fail(
                snicache_result::InvalidParameter,
                format!("ticket keys: {e:?}"),
            )
        })?;
        #[cfg(target_os = "linux")]
        let mut shm_cells = None;
        let store: Box<dyn crate::store::Store> = match &config.host_store {
            Some(cbs) => Box::new(super::hooks::CStore {
                cbs: cbs.clone(),
                vhosts: vhosts.iter().map(|v| v.name.clone()).collect(),
            }),
            None => match &config.store {
                StoreSpec::Memory(_) => Box::new(MemoryStore::new(
                    config.max_bytes,
                    config.max_entries,
                    vhosts.len(),
                )),
                #[cfg(target_os = "linux")]
                StoreSpec::Shm(bytes) => {
                    let s = super::shm::new_store(
                        *bytes,
                        config.shm_memory,
                        vhosts.len(),
                        policy.len(),
                    )?;
                    shm_cells = Some(s.counters());
                    Box::new(s)
                }
                #[cfg(not(target_os = "linux"))]
                StoreSpec::Shm(_) => {
                    return Err(fail(
                        snicache_result::InvalidParameter,
                        "the shm store needs Linux",
                    ))
                }
                StoreSpec::Redis(url) => Box::new(super::redis::new_store(url, config, &vhosts)?),
            },
        };
        let rules = policy.len();
        let stats = Stats::new(vhosts.len(), rules);
        // With a shm store the engine counts in the mapping too, so stats add up across workers.
        #[cfg(target_os = "linux")]
        let stats = match shm_cells {
            Some(cells) => Stats::with_cells(vhosts.len(), rules, Box::new(cells))
                .expect("the mapping reserves Stats::cells_needed"),
            None => stats,
        };
        let mut engine = Engine::with_stats(
            vhosts,
            policy,
            store,
            stats,
            config.strict_sni,
            config.log.clone(),
        );
        engine.early_data = config.early_data;
        out(
            out_cache,
            ownership::arc_into_ptr(snicache_cache {
                engine,
                host,
                sid_ctx,
                tickets,
                ready: config.ready,
            }),
            "out",
        )
    })
}

/// The DER of a context's certificate (empty when it has none).
unsafe fn ctx_cert(host: &HostApi, ctx: *mut c_void) -> Vec<u8> {
    // SAFETY: the caller passes a live SSL_CTX; the buffer has the length the host asked for.
    unsafe {
        let n = host_call!(host, ctx_cert_der(ctx, std::ptr::null_mut(), 0));
        if n <= 0 {
            return Vec::new();
        }
        let mut buf = vec![0u8; n as usize];
        let m = host_call!(host, ctx_cert_der(ctx, buf.as_mut_ptr(), buf.len()));
        buf.truncate(m.max(0) as usize);
        buf
    }
}

/// Releases the caller's reference to a cache. NULL is accepted. Contexts the cache is
/// attached to keep it alive until they are freed.
#[no_mangle]
pub extern "C" fn snicache_cache_free(cache: *const snicache_cache) {
    super::boundary((), || {
        // SAFETY: made by snicache_cache_new; the caller gives up its reference.
        unsafe { ownership::arc_release(cache) }
    })
}

/// Stores a reference to `cache` in `ctx`'s ex_data, replacing (and releasing) another cache's.
///
/// # Safety
/// `ctx` is a live `SSL_CTX`; `cache` a live cache whose reference the caller holds.
unsafe fn hold(
    cache: *const snicache_cache,
    host: &HostApi,
    ctx: *mut c_void,
) -> Result<(), snicache_result> {
    // SAFETY: per the contract.
    if unsafe { ownership::ctx_hold(host, ctx, cache) } {
        Ok(())
    } else {
        Err(fail(snicache_result::HostCallFailed, "SSL_CTX_set_ex_data"))
    }
}

/// Attaches the cache to a listener's `SSL_CTX *` (the context connections start on) and to
/// every vhost's context: the ClientHello callback that picks the vhost and switches context,
/// the session new/get/remove callbacks with OpenSSL's internal cache off (external only), the
/// servername callback, the info callback that sees fatal alerts, and the ticket check that
/// refuses another vhost's stateless ticket. `flags` selects parts (`SNICACHE_INSTALL_*`); 0 means
/// all. Hosts that keep their own callbacks leave those parts out and call the matching
/// `snicache_on_*` function from theirs.
///
/// Each context keeps a reference to the cache until it is freed. Call it before the context
/// serves connections, from one thread.
#[no_mangle]
pub extern "C" fn snicache_cache_attach(
    cache: *const snicache_cache,
    ssl_ctx: *mut c_void,
    flags: u32,
) -> snicache_result {
    guard(|| {
        let c = arg(&cache, "cache")?;
        if ssl_ctx.is_null() {
            return Err(fail(snicache_result::NullParameter, "ssl_ctx"));
        }
        if flags & !SNICACHE_ATTACH_ALL != 0 {
            return Err(fail(
                snicache_result::InvalidParameter,
                format!("unknown attach flags {flags:#x}"),
            ));
        }
        let flags = if flags == 0 {
            SNICACHE_ATTACH_ALL
        } else {
            flags
        };
        let host = c.host;
        let arg = cache as *mut c_void;
        // SAFETY: the listener ctx is live per this function's contract.
        unsafe {
            hold(cache, host, ssl_ctx)?;
            if host_call!(host, ctx_install(ssl_ctx, flags, arg)) != 1 {
                return Err(fail(
                    snicache_result::HostCallFailed,
                    "installing callbacks on the listener context",
                ));
            }
        }
        // After the switch to a vhost's context, OpenSSL reads the info and ticket callbacks
        // from that context, and the ClientHello callback for the second ClientHello (after a
        // HelloRetryRequest), whose server_name must be the first one's.
        let per_vhost = flags
            & (SNICACHE_INSTALL_CLIENT_HELLO
                | SNICACHE_INSTALL_INFO
                | SNICACHE_INSTALL_TICKET_CHECK
                | SNICACHE_INSTALL_TICKET_KEYS);
        for v in c
            .engine
            .vhosts
            .iter()
            .filter(|v| v.ctx != 0 && v.ctx != ssl_ctx as usize)
        {
            let ctx = v.ctx as *mut c_void;
            // SAFETY: vhost contexts outlive the cache per snicache_config_add_vhost.
            unsafe {
                hold(cache, host, ctx)?;
                if per_vhost != 0 && host_call!(host, ctx_install(ctx, per_vhost, arg)) != 1 {
                    return Err(fail(
                        snicache_result::HostCallFailed,
                        format!("installing callbacks on vhost {}", v.name),
                    ));
                }
            }
        }
        Ok(())
    })
}

/// Counters, for one vhost or in total: the fields declared in `engine/stats_fields.rs`.
/// build.rs writes the C definition (and `SNICACHE_STATS_FIELDS`, the X-macro of its fields).
pub type snicache_stats = crate::engine::stats::Snapshot;

fn vhost_index(c: &snicache_cache, vhost: *const c_char) -> Result<Option<u32>, snicache_result> {
    if vhost.is_null() {
        return Ok(None);
    }
    let name = arg_str(&vhost, "vhost")?;
    c.engine
        .vhosts
        .by_name(name)
        .map(|v| Some(v.index))
        .ok_or_else(|| fail(snicache_result::UnknownVhost, name))
}

/// Reads the counters of the vhost named `vhost` (as configured, e.g. `*.example.com`), or the
/// totals when `vhost` is NULL, into `*out`.
#[no_mangle]
pub extern "C" fn snicache_cache_stats(
    cache: *const snicache_cache,
    vhost: *const c_char,
    out_stats: *mut snicache_stats,
) -> snicache_result {
    guard(|| {
        let c = arg(&cache, "cache")?;
        let v = vhost_index(c, vhost)?;
        out(out_stats, c.engine.snapshot(v), "out")
    })
}

/// Reads how often the rule named `reason` (`sni`, `vhost`, `expired`, …, or a host rule's
/// name) refused resumption, for one vhost or in total (`vhost` NULL).
#[no_mangle]
pub extern "C" fn snicache_cache_refusals(
    cache: *const snicache_cache,
    vhost: *const c_char,
    reason: *const c_char,
    out_count: *mut u64,
) -> snicache_result {
    guard(|| {
        let c = arg(&cache, "cache")?;
        let v = vhost_index(c, vhost)?;
        let reason = arg_str(&reason, "reason")?;
        let rule = c
            .engine
            .policy
            .position(reason)
            .ok_or_else(|| fail(snicache_result::UnknownReason, reason))?;
        out(out_count, c.engine.stats.refusals(v, rule), "out")
    })
}

/// Writes all stats as JSON (totals, listener counters, each vhost with refusals by reason,
/// and with a `shm:` store its health counters under `"shm"`) into `buf` with a terminating NUL, and its length without the NUL into `*out_len`.
/// With `buf` NULL, only `*out_len` is written. When `cap` is too small nothing is written and
/// the result is `SNICACHE_RESULT_BUFFER_TOO_SMALL`.
#[no_mangle]
pub extern "C" fn snicache_cache_stats_json(
    cache: *const snicache_cache,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> snicache_result {
    guard(|| {
        let c = arg(&cache, "cache")?;
        if out_len.is_null() {
            return Err(fail(snicache_result::NullParameter, "out_len"));
        }
        let json = c.engine.stats_json();
        if !buf.is_null() {
            if json.len() >= cap {
                return Err(fail(
                    snicache_result::BufferTooSmall,
                    format!("{} bytes needed", json.len() + 1),
                ));
            }
            // SAFETY: the caller gives `cap` writable bytes; we write len + 1 <= cap.
            unsafe {
                std::ptr::copy_nonoverlapping(json.as_ptr(), buf as *mut u8, json.len());
                *buf.add(json.len()) = 0;
            }
        }
        out(out_len, json.len(), "out_len")
    })
}
