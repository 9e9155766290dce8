//! Sequences of C API calls on the rlib with fuzzer-chosen arguments: NULLs, bad names and
//! sizes, stray flags, short buffers, configs and caches made, used and freed in any order.
//! The host SSL table is a set of Rust stubs over fake `SSL_CTX`s (each a real object with
//! one ex_data slot), enough for configs, caches, attach and stats; no handshake runs.
//!
//! Checked on every call: no panic crosses the boundary (`SNICACHE_RESULT_PANIC`), every code
//! has a message of its own, outputs are written only on success, NUL-terminated buffers stay
//! within their capacity. At the end every object is freed, contexts release their cache
//! reference as OpenSSL's ex_data free callback would, and the leak checker sees the rest.
#![no_main]

use std::ffi::{c_char, c_int, c_long, c_uint, c_void, CString};
use std::ptr::{null, null_mut};

use libfuzzer_sys::fuzz_target;
use snicache::ffi::cache::*;
use snicache::ffi::callbacks::*;
use snicache::ffi::config::*;
use snicache::ffi::error::snicache_result_message;
use snicache::ffi::hooks::*;
use snicache::ffi::snicache_result;
use snicache::ffi::tickets::snicache_cache_rotate_ticket_secret;
use snicache::host::ssl_api::*;

/// A fake `SSL_CTX`: snicache only reaches it through the stubs below.
struct FakeCtx {
    ex: *mut c_void,
    cert: Vec<u8>,
    verify: c_int,
    installs: u32,
}

unsafe extern "C" fn ex_index() -> c_int {
    0
}
unsafe extern "C" fn ssl_get_ex(_: *const c_void, _: c_int) -> *mut c_void {
    null_mut()
}
unsafe extern "C" fn ssl_set_ex(_: *mut c_void, _: c_int, _: *mut c_void) -> c_int {
    0
}
unsafe extern "C" fn ctx_get_ex(ctx: *const c_void, _: c_int) -> *mut c_void {
    unsafe { (*(ctx as *const FakeCtx)).ex }
}
unsafe extern "C" fn ctx_set_ex(ctx: *mut c_void, _: c_int, data: *mut c_void) -> c_int {
    unsafe { (*(ctx as *mut FakeCtx)).ex = data };
    1
}
unsafe extern "C" fn ptr_of_ssl(_: *const c_void) -> *mut c_void {
    null_mut()
}
unsafe extern "C" fn ssl_set_ctx(_: *mut c_void, _: *mut c_void) -> *mut c_void {
    null_mut()
}
unsafe extern "C" fn hello_ext(
    _: *mut c_void,
    _: *const c_void,
    _: c_uint,
    _: *mut *const u8,
    _: *mut usize,
) -> c_int {
    0
}
unsafe extern "C" fn int_of(_: *const c_void) -> c_int {
    0
}
unsafe extern "C" fn servername(_: *const c_void) -> *const c_char {
    null()
}
unsafe extern "C" fn extms(_: *mut c_void) -> c_int {
    -1
}
unsafe extern "C" fn cipher_enabled(_: *const c_void, _: u16) -> c_int {
    1
}
unsafe extern "C" fn cert_der(ctx: *mut c_void, buf: *mut u8, cap: usize) -> c_long {
    let cert = unsafe { &(*(ctx as *const FakeCtx)).cert };
    if !buf.is_null() {
        assert!(cap >= cert.len(), "snicache asked for the length first");
        unsafe { std::ptr::copy_nonoverlapping(cert.as_ptr(), buf, cert.len()) };
    }
    if cert.is_empty() {
        -1
    } else {
        cert.len() as c_long
    }
}
unsafe extern "C" fn verify_mode(ctx: *const c_void) -> c_int {
    unsafe { (*(ctx as *const FakeCtx)).verify }
}
unsafe extern "C" fn set_sid_ctx(_: *mut c_void, _: *const u8, len: c_uint) -> c_int {
    assert!(len <= 32, "SSL_MAX_SID_CTX_LENGTH");
    1
}
unsafe extern "C" fn install(ctx: *mut c_void, flags: u32, _: *mut c_void) -> c_int {
    unsafe { (*(ctx as *mut FakeCtx)).installs |= flags };
    1
}
unsafe extern "C" fn to_der(_: *mut c_void, _: *mut u8, _: usize) -> c_long {
    -1
}
unsafe extern "C" fn from_der(_: *const u8, _: usize) -> *mut c_void {
    null_mut()
}
unsafe extern "C" fn up_ref(_: *mut c_void) -> c_int {
    1
}
unsafe extern "C" fn sess_free(_: *mut c_void) {}
unsafe extern "C" fn sess_bytes(_: *const c_void, len: *mut c_uint) -> *const u8 {
    unsafe { *len = 0 };
    null()
}
unsafe extern "C" fn sess_time(_: *const c_void) -> u64 {
    0
}
unsafe extern "C" fn sess_cipher(_: *const c_void) -> u16 {
    0
}
unsafe extern "C" fn sess_alpn(_: *const c_void, out: *mut *const u8, len: *mut usize) {
    unsafe {
        *out = null();
        *len = 0;
    }
}
unsafe extern "C" fn set_appdata(_: *mut c_void, _: *const u8, _: usize) -> c_int {
    0
}
unsafe extern "C" fn get_appdata(_: *mut c_void, _: *mut *const u8, _: *mut usize) -> c_int {
    0
}
unsafe extern "C" fn pending() -> *mut c_void {
    null_mut()
}
unsafe extern "C" fn ticket_key_init(
    _: *mut c_void,
    _: *mut c_void,
    _: *const u8,
    _: *const u8,
    _: *const u8,
    _: c_int,
) -> c_int {
    0
}

unsafe extern "C" fn client_hello_session_id(
    _: *mut c_void,
    _: *const c_void,
    _: *mut *const u8,
) -> usize {
    0
}

fn table() -> snicache_ssl_api {
    snicache_ssl_api {
        version: SNICACHE_SSL_API_VERSION,
        size: std::mem::size_of::<snicache_ssl_api>() as u32,
        library: SNICACHE_SSL_LIBRARY_OPENSSL,
        ssl_ex_index_new: Some(ex_index),
        ctx_ex_index_new: Some(ex_index),
        ssl_get_ex_data: Some(ssl_get_ex),
        ssl_set_ex_data: Some(ssl_set_ex),
        ctx_get_ex_data: Some(ctx_get_ex),
        ctx_set_ex_data: Some(ctx_set_ex),
        ssl_get_ctx: Some(ptr_of_ssl),
        ssl_set_ctx: Some(ssl_set_ctx),
        client_hello_ext: Some(hello_ext),
        ssl_version: Some(int_of),
        ssl_servername: Some(servername),
        ssl_extms: Some(extms),
        ssl_tickets_enabled: Some(int_of),
        ssl_session: Some(ptr_of_ssl),
        ctx_cipher_enabled: Some(cipher_enabled),
        ctx_cert_der: Some(cert_der),
        ctx_verify_mode: Some(verify_mode),
        ctx_set_sid_ctx: Some(set_sid_ctx),
        ctx_install: Some(install),
        session_to_der: Some(to_der),
        session_from_der: Some(from_der),
        session_up_ref: Some(up_ref),
        session_free: Some(sess_free),
        session_id: Some(sess_bytes),
        session_id_context: Some(sess_bytes),
        session_time: Some(sess_time),
        session_version: Some(int_of),
        session_cipher: Some(sess_cipher),
        session_alpn: Some(sess_alpn),
        session_set_appdata: Some(set_appdata),
        session_get_appdata: Some(get_appdata),
        pending_session: Some(pending),
        ticket_key_init: Some(ticket_key_init),
        client_hello_session_id: Some(client_hello_session_id),
    }
}

unsafe extern "C" fn log_cb(_: *mut c_void, _: snicache_log_level, msg: *const c_char, len: usize) {
    assert!(!msg.is_null() || len == 0);
}
unsafe extern "C" fn rule_cb(_: *mut c_void, _: *const snicache_rule_input) -> c_int {
    0
}
unsafe extern "C" fn store_get(
    _: *mut c_void,
    _: *const c_char,
    _: usize,
    _: *const u8,
    _: usize,
    _: *mut u8,
    _: usize,
    _: *mut usize,
) -> u32 {
    snicache_store_status::Missing as u32
}
unsafe extern "C" fn store_put(
    _: *mut c_void,
    _: *const c_char,
    _: usize,
    _: *const u8,
    _: usize,
    _: *const u8,
    _: usize,
    _: u64,
) -> c_int {
    0
}
unsafe extern "C" fn store_remove(
    _: *mut c_void,
    _: *const c_char,
    _: usize,
    _: *const u8,
    _: usize,
) -> c_int {
    0
}

/// Reads the fuzzer's bytes as a stream of choices; past the end everything is zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }
    /// A length-prefixed byte string (up to 255 bytes, cut at a NUL so it stays a C string).
    fn bytes(&mut self) -> Vec<u8> {
        let n = self.byte() as usize;
        let n = n.min(self.0.len());
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        s.iter().copied().take_while(|&b| b != 0).collect()
    }
    /// NULL, a well-known string or fuzzer bytes.
    fn string(&mut self, known: &[&str]) -> Option<CString> {
        match self.byte() % 4 {
            0 => None,
            1 => {
                let k = self.byte() as usize % known.len();
                Some(CString::new(known[k]).unwrap())
            }
            _ => Some(CString::new(self.bytes()).unwrap()),
        }
    }
}

const NAMES: &[&str] = &[
    "a.example.com",
    "*.example.net",
    "A.EXAMPLE.COM",
    "b.test",
    "x..y",
    "",
];
const SIZES: &[&str] = &[
    "10m",
    "16k",
    "15k",
    "1g",
    "0",
    "64k",
    "1m",
    "99999999999999999999g",
];
const SPECS: &[&str] = &[
    "memory",
    "memory:1m",
    "memory:",
    "shm:64k",
    "shm:1m",
    "shm",
    "redis://",
    "disk:1m",
];
const REASONS: &[&str] = &["vhost", "sni", "expired", "cipher", "ems", "nope"];

fn cstr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(null(), |s| s.as_ptr())
}

/// Every code snicache returns has its own message.
fn check(r: snicache_result) {
    assert_ne!(r, snicache_result::Panic, "a panic reached the boundary");
    let mut buf = [0 as c_char; 128];
    let n = snicache_result_message(r as u32, buf.as_mut_ptr(), buf.len());
    assert!(n < buf.len() && buf[n] == 0);
    let text = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    assert!(
        !text.starts_with("unknown result code"),
        "{r:?} has no message: {text}"
    );
}

struct Config {
    ptr: *mut snicache_config,
    /// The last store it accepted: redis:// caches are not made (they would dial out).
    redis: bool,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let api = table();
    let mut bad_api = table();
    bad_api.version = 99;
    let mut incomplete = table();
    incomplete.session_free = None;
    let mut ctxs: Vec<Box<FakeCtx>> = (0..3)
        .map(|i| {
            Box::new(FakeCtx {
                ex: null_mut(),
                cert: vec![i as u8; i * 100],
                verify: i as c_int,
                installs: 0,
            })
        })
        .collect();
    let mut configs: Vec<Config> = Vec::new();
    let mut caches: Vec<*const snicache_cache> = Vec::new();

    for _ in 0..64 {
        if input.0.is_empty() {
            break;
        }
        let op = input.byte();
        let pick = input.byte() as usize;
        // Mostly a live config (or cache), sometimes NULL.
        let config = if pick % 8 == 7 || configs.is_empty() {
            null_mut()
        } else {
            configs[pick % configs.len()].ptr
        };
        let cache = if pick % 8 == 7 || caches.is_empty() {
            null()
        } else {
            caches[pick % caches.len()]
        };
        let ctx: *mut c_void = match input.byte() % 4 {
            3 => null_mut(),
            k => &mut *ctxs[k as usize] as *mut FakeCtx as *mut c_void,
        };
        match op % 20 {
            0 => {
                let mut out: *mut snicache_config = null_mut();
                let (table_ptr, out_ptr) = match input.byte() % 6 {
                    0 => (null(), &mut out as *mut _),
                    1 => (&api as *const _, null_mut()),
                    2 => (&bad_api as *const _, &mut out as *mut _),
                    3 => (&incomplete as *const _, &mut out as *mut _),
                    _ => (&api as *const _, &mut out as *mut _),
                };
                let r = snicache_config_new(table_ptr, out_ptr);
                check(r);
                assert_eq!(
                    r == snicache_result::Ok,
                    !out.is_null(),
                    "output only on success"
                );
                if !out.is_null() {
                    configs.push(Config {
                        ptr: out,
                        redis: false,
                    });
                }
            }
            1 => {
                if !config.is_null() {
                    configs.retain(|c| c.ptr != config);
                }
                snicache_config_free(config);
            }
            2 => {
                let s = input.string(SIZES);
                check(snicache_config_set_size(config, cstr(&s)));
            }
            3 => check(snicache_config_set_max_entries(config, input.u64())),
            4 => check(snicache_config_set_timeout(config, input.u32())),
            5 => check(snicache_config_set_strict_sni(
                config,
                input.byte() & 1 != 0,
            )),
            6 => {
                // Any level, valid (1 to 4) or not: out-of-range ones must be refused.
                let level = u32::from(input.byte()) % 6;
                let cb: snicache_log_cb = if input.byte() & 1 == 0 {
                    Some(log_cb)
                } else {
                    None
                };
                check(snicache_config_set_log(config, cb, null_mut(), level));
            }
            7 | 8 => {
                let name = input.string(NAMES);
                let timeout = input.u32();
                let flags = match input.byte() % 4 {
                    0 => 0,
                    1 => SNICACHE_VHOST_DEFAULT,
                    2 => input.u32(),
                    _ => SNICACHE_VHOST_SINGLE_USE | SNICACHE_VHOST_ALLOW_NO_EMS,
                };
                check(snicache_config_add_vhost(
                    config,
                    cstr(&name),
                    ctx,
                    timeout,
                    flags,
                ));
            }
            9 => {
                let name = input.string(REASONS);
                let cb: snicache_rule_cb = if input.byte() & 1 == 0 {
                    Some(rule_cb)
                } else {
                    None
                };
                check(snicache_config_add_rule(
                    config,
                    cstr(&name),
                    cb,
                    null_mut(),
                ));
            }
            10 => {
                let secret = input.bytes();
                let rotation = input.u32();
                let p = if input.byte() & 1 == 0 {
                    secret.as_ptr()
                } else {
                    null()
                };
                check(snicache_config_set_ticket_keys(
                    config,
                    p,
                    secret.len(),
                    rotation,
                ));
            }
            11 => {
                let all = input.byte() & 1 == 0;
                check(snicache_config_set_store_callbacks(
                    config,
                    Some(store_get),
                    if all { Some(store_put) } else { None },
                    Some(store_remove),
                    null_mut(),
                ));
            }
            12 => {
                let spec = input.string(SPECS);
                let r = snicache_config_set_store(config, cstr(&spec));
                check(r);
                if r == snicache_result::Ok {
                    let redis = spec
                        .as_ref()
                        .is_some_and(|s| s.as_bytes().starts_with(b"redis"));
                    // A large shm mapping is slow to set up and says nothing new: keep it small.
                    let big_shm = spec.as_ref().is_some_and(|s| {
                        s.to_str()
                            .ok()
                            .and_then(|s| s.strip_prefix("shm:"))
                            .and_then(snicache::size::parse)
                            > Some(16 << 20)
                    });
                    if let Some(c) = configs.iter_mut().find(|c| c.ptr == config) {
                        c.redis = redis || big_shm;
                    }
                }
            }
            13 | 14 => {
                if configs.iter().any(|c| c.ptr == config && c.redis) {
                    continue;
                }
                let mut out: *const snicache_cache = null();
                let out_ptr = if input.byte() % 8 == 0 {
                    null_mut()
                } else {
                    &mut out as *mut _
                };
                let r = snicache_cache_new(config, out_ptr);
                check(r);
                assert_eq!(
                    r == snicache_result::Ok,
                    !out.is_null(),
                    "output only on success"
                );
                if !out.is_null() {
                    caches.push(out);
                }
            }
            15 => {
                if !cache.is_null() {
                    caches.retain(|&c| c != cache);
                }
                snicache_cache_free(cache);
            }
            16 => {
                let flags = match input.byte() % 3 {
                    0 => 0,
                    1 => input.u32(),
                    _ => SNICACHE_INSTALL_SESSION_CACHE | SNICACHE_INSTALL_INFO,
                };
                check(snicache_cache_attach(cache, ctx, flags));
            }
            17 => {
                let vhost = input.string(NAMES);
                let reason = input.string(REASONS);
                let mut stats = snicache_stats::default();
                let out_ptr = if input.byte() % 8 == 0 {
                    null_mut()
                } else {
                    &mut stats as *mut _
                };
                check(snicache_cache_stats(cache, cstr(&vhost), out_ptr));
                let mut count = u64::MAX;
                let r = snicache_cache_refusals(cache, cstr(&vhost), cstr(&reason), &mut count);
                check(r);
                assert_eq!(
                    r == snicache_result::Ok,
                    count != u64::MAX,
                    "output only on success"
                );
            }
            18 => {
                let cap = input.byte() as usize * 16;
                let mut buf = vec![0x55 as c_char; cap + 1];
                let mut len = usize::MAX;
                let buf_ptr = if input.byte() & 1 == 0 {
                    buf.as_mut_ptr()
                } else {
                    null_mut()
                };
                let r = snicache_cache_stats_json(cache, buf_ptr, cap, &mut len);
                check(r);
                assert_eq!(buf[cap], 0x55, "wrote past the capacity");
                if r == snicache_result::Ok && !buf_ptr.is_null() {
                    assert!(len < cap && buf[len] == 0);
                }
            }
            _ => {
                let secret = input.bytes();
                let p = if input.byte() & 1 == 0 {
                    secret.as_ptr()
                } else {
                    null()
                };
                check(snicache_cache_rotate_ticket_secret(cache, p, secret.len()));
                let mut info = std::mem::MaybeUninit::<snicache_conn_info>::uninit();
                let ssl = if input.byte() & 1 == 0 {
                    null_mut()
                } else {
                    ctx
                };
                check(snicache_conn_info_get(ssl, info.as_mut_ptr()));
                let code = input.u32() % 7100;
                let mut buf = [0 as c_char; 8];
                let len = input.byte() as usize % 9;
                let n = snicache_result_message(code, buf.as_mut_ptr(), len);
                assert!(len == 0 && n == 0 || n < len && buf[n] == 0);
            }
        }
    }

    for c in caches {
        snicache_cache_free(c);
    }
    for c in configs {
        snicache_config_free(c.ptr);
    }
    // What OpenSSL's ex_data free callback does when the contexts are freed.
    for ctx in &mut ctxs {
        snicache_hook_release_cache(std::mem::replace(&mut ctx.ex, null_mut()));
    }
});
