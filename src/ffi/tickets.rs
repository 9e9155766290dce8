//! Stateless tickets, every ticket callback of both libraries: OpenSSL's ticket key callback
//! and its ticket generate/decrypt check, BoringSSL's ticket AEAD method, installed by
//! `snicache_cache_attach`, plus run-time rotation of the master secret. Keys are per vhost
//! (`crypto::ticket_keys`): a ticket sealed for one vhost never opens on another (R10); keys
//! rotate with a decrypt-only window (R8). The engine opens, checks and counts
//! (`engine::tickets`, `engine::decision`); these translate.

use std::os::raw::{c_int, c_void};

use super::boundary;
use super::cache::snicache_cache;
use super::callbacks::{now, ticket_record, with_host_facts, ConnBox};
use super::error::fail;
use super::ownership::{bytes, bytes_mut, with_conn};
use super::{arg, guard, snicache_result};
use crate::crypto;
use crate::crypto::ticket_keys::NAME_LEN;
use crate::engine::decision::{Decision, Reason};
use crate::engine::tickets::SEAL_OVERHEAD;
use crate::engine::Engine;
use crate::host::ssl_api::host_call;

/// AES-256-CBC IV length for OpenSSL's ticket format.
const IV_LEN: usize = 16;

/// OpenSSL's ticket key callback (`SSL_CTX_set_tlsext_ticket_key_evp_cb`, or the HMAC_CTX one
/// on 1.1.1): `enc` 1 picks this vhost's current key, writes its name and a random IV and
/// initializes the cipher and MAC contexts through the table; `enc` 0 finds the key named
/// `key_name` among this vhost's keys. Returns 1 (use), 2 (use and renew the ticket: its key
/// only decrypts now, or the connection is TLS 1.3, where every resumption gets a new ticket),
/// 0 (unknown key: full handshake), or -1 (error).
#[no_mangle]
pub extern "C" fn snicache_on_ticket_key(
    ssl: *mut c_void,
    key_name: *mut u8,
    iv: *mut u8,
    cipher_ctx: *mut c_void,
    mac_ctx: *mut c_void,
    enc: c_int,
) -> c_int {
    boundary(-1, || {
        if key_name.is_null() || iv.is_null() {
            return -1;
        }
        let mut iv = iv;
        let mut key_name = key_name;
        // SAFETY: called by OpenSSL with a live ssl, a 16-byte key name and an IV buffer of
        // EVP_MAX_IV_LENGTH (16) bytes.
        unsafe {
            with_conn(ssl, |host, b| {
                let now = now();
                let ConnBox { cache, conn } = b;
                let (key, renew) = if enc == 1 {
                    let vhost = cache.engine.vhosts.get(conn.vhost);
                    let key = cache.tickets.encrypting(vhost.index, &vhost.name, now);
                    bytes_mut(&mut key_name, NAME_LEN).copy_from_slice(&key.name);
                    crypto::random(bytes_mut(&mut iv, IV_LEN));
                    (key, false)
                } else {
                    let name_ptr = key_name.cast_const();
                    let name = bytes(&name_ptr, NAME_LEN);
                    match cache.engine.ticket_key(conn, &cache.tickets, name, now) {
                        Some(found) => found,
                        None => return 0,
                    }
                };
                if host_call!(
                    host,
                    ticket_key_init(
                        cipher_ctx,
                        mac_ctx,
                        key.aes.as_ptr(),
                        key.hmac.as_ptr(),
                        iv,
                        enc
                    )
                ) != 1
                {
                    return -1;
                }
                let tls13 = Engine::renews_ticket(host_call!(host, ssl_version(ssl)) as u16);
                if renew || (enc != 1 && tls13) {
                    2
                } else {
                    1
                }
            })
            .unwrap_or(if enc == 1 { -1 } else { 0 })
        }
    })
}

/// The ticket-generate callback (OpenSSL `SSL_CTX_set_session_ticket_cb`): seals this
/// connection's vhost, SNI and session facts into the ticket's app data. Returns 1.
#[no_mangle]
pub extern "C" fn snicache_on_ticket_generate(ssl: *mut c_void, arg: *mut c_void) -> c_int {
    let _ = arg;
    boundary(1, || {
        // SAFETY: called by the host library with a live ssl whose session is being ticketed.
        unsafe {
            with_conn(ssl, |host, b| {
                // With tickets off, TLS 1.3 "tickets" are stateful session ids: the stored
                // record holds the facts, nothing is sealed into them.
                if host_call!(host, ssl_tickets_enabled(ssl)) != 1 {
                    return;
                }
                let sess = host_call!(host, ssl_session(ssl));
                if sess.is_null() {
                    return;
                }
                let data = ticket_record(host, ssl, b, sess);
                host_call!(host, session_set_appdata(sess, data.as_ptr(), data.len()));
            });
        }
        1
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
        if ssl.is_null() || (decrypted == 1 && sess.is_null()) {
            return 0;
        }
        // SAFETY: called by the host library with live ssl and decrypted session.
        unsafe {
            with_conn(ssl, |host, b| {
                let decision = match decrypted {
                    1 => {
                        let mut data: *const u8 = std::ptr::null();
                        let mut len = 0usize;
                        let found =
                            host_call!(host, session_get_appdata(sess, &mut data, &mut len)) == 1
                                && !data.is_null();
                        let appdata = found.then(|| bytes(&data, len));
                        with_host_facts(host, ssl, b, |facts| {
                            b.cache.engine.check_ticket(&b.conn, appdata, facts)
                        })
                    }
                    -1 => Decision::Full(Reason::TicketForged),
                    _ => return 0,
                };
                let answer = match &decision {
                    Decision::Resume(_)
                        if Engine::renews_ticket(host_call!(host, ssl_version(ssl)) as u16) =>
                    {
                        2
                    }
                    Decision::Resume(_) => 1,
                    _ => 0,
                };
                b.cache.engine.commit(&mut b.conn, decision);
                answer
            })
            .unwrap_or(c_int::from(decrypted == 1))
        }
    })
}

/// Where a BoringSSL ticket AEAD call (`seal`, `open`) writes: `out`, `*out_len`, `max_out`.
#[derive(Clone, Copy)]
struct AeadOut {
    out: *mut u8,
    out_len: *mut usize,
    max_out: usize,
}

impl AeadOut {
    /// Writes `data` and its length; false, writing nothing, when it is longer than `max_out`.
    ///
    /// # Safety
    /// As `aead_args`'s.
    unsafe fn write(self, data: &[u8]) -> bool {
        if data.len() > self.max_out {
            return false;
        }
        let mut out = self.out;
        // SAFETY: `out` has `max_out` writable bytes and `out_len` is writable (aead_args).
        unsafe {
            bytes_mut(&mut out, data.len()).copy_from_slice(data);
            *self.out_len = data.len();
        }
        true
    }
}

/// The buffers of a ticket AEAD call, or `None` when a pointer is NULL that may not be: the
/// outputs never, the input only when it is empty and `null_empty_input` allows that.
///
/// # Safety
/// BoringSSL's contract: `out` has `max_out` writable bytes, `out_len` is writable and `in_`
/// has `in_len` readable bytes, each when not NULL.
unsafe fn aead_args(
    out: *mut u8,
    out_len: *mut usize,
    max_out: usize,
    in_: &*const u8,
    in_len: usize,
    null_empty_input: bool,
) -> Option<(AeadOut, &[u8])> {
    if out.is_null() || out_len.is_null() || (in_.is_null() && !(null_empty_input && in_len == 0)) {
        return None;
    }
    let out = AeadOut {
        out,
        out_len,
        max_out,
    };
    // SAFETY: per the contract.
    Some((out, unsafe { bytes(in_, in_len) }))
}

/// BoringSSL's ticket AEAD `max_overhead`.
#[no_mangle]
pub extern "C" fn snicache_on_ticket_overhead(ssl: *mut c_void) -> usize {
    let _ = ssl;
    SEAL_OVERHEAD + crate::record::MAX_APPDATA
}

/// BoringSSL's ticket AEAD `seal`: prefixes snicache's record of vhost, SNI and session facts
/// to the session bytes `in_` and seals both with this vhost's current key (AES-256-GCM, the key
/// name as associated data). Writes at most `max_out` bytes. Returns 1, or 0 on failure.
#[no_mangle]
pub extern "C" fn snicache_on_ticket_seal(
    ssl: *mut c_void,
    out: *mut u8,
    out_len: *mut usize,
    max_out: usize,
    in_: *const u8,
    in_len: usize,
) -> c_int {
    boundary(0, || {
        // SAFETY: called by BoringSSL with a live ssl and buffers of the given lengths.
        unsafe {
            let Some((out, session_bytes)) = aead_args(out, out_len, max_out, &in_, in_len, true)
            else {
                return 0;
            };
            with_conn(ssl, |host, b| {
                let session = host_call!(host, ssl_session(ssl));
                if session.is_null() {
                    return 0;
                }
                let mut plain = ticket_record(host, ssl, b, session);
                plain.extend_from_slice(session_bytes);
                let ConnBox { cache, conn } = b;
                // The ticket's identity: the session it carries (its own resumption secret).
                let version = host_call!(host, ssl_version(ssl)) as u16;
                cache
                    .engine
                    .early_data_ticket_issued(conn, version, session_bytes, now());
                let ticket = cache.engine.seal_ticket(conn, &cache.tickets, plain, now());
                c_int::from(out.write(&ticket))
            })
            .unwrap_or(0)
        }
    })
}

/// `snicache_on_ticket_open` answer: resume, but reject the early data the ClientHello carries
/// (its ticket's single-use entry was already taken: a replay). The host calls
/// `SSL_set_early_data_enabled(ssl, 0)` and answers success.
pub const SNICACHE_TICKET_OPEN_NO_EARLY_DATA: c_int = 2;

/// BoringSSL's ticket AEAD `open`: finds this vhost's key by name, opens the ticket, applies the
/// policy to the record inside, and writes the session bytes. Returns 1 (resume), 0 (ignore the
/// ticket: unknown key, forged, refused — a full handshake), -1 (error), or 2 (resume without
/// early data, see `snicache_config_set_early_data`).
#[no_mangle]
pub extern "C" fn snicache_on_ticket_open(
    ssl: *mut c_void,
    out: *mut u8,
    out_len: *mut usize,
    max_out: usize,
    in_: *const u8,
    in_len: usize,
) -> c_int {
    boundary(-1, || {
        // SAFETY: called by BoringSSL with a live ssl and buffers of the given lengths.
        unsafe {
            let Some((out, ticket)) = aead_args(out, out_len, max_out, &in_, in_len, false) else {
                return -1;
            };
            with_conn(ssl, |host, b| {
                let decision = with_host_facts(host, ssl, b, |facts| {
                    b.cache
                        .engine
                        .open_ticket(&b.conn, &b.cache.tickets, ticket, facts)
                });
                let ConnBox { cache, conn } = b;
                let resume = match decision {
                    Decision::Resume(r) => r,
                    full => {
                        cache.engine.commit(conn, full);
                        return 0;
                    }
                };
                let session = resume.session();
                if !out.write(session) {
                    cache.engine.commit(conn, resume.too_large());
                    return 0;
                }
                let replayed = cache.engine.early_data_replayed(conn, session);
                cache.engine.commit(conn, Decision::Resume(resume));
                if replayed {
                    SNICACHE_TICKET_OPEN_NO_EARLY_DATA
                } else {
                    1
                }
            })
            .unwrap_or(0)
        }
    })
}

/// Installs a new ticket master secret (32 to 80 bytes, copied) at run time, e.g. one a fleet
/// shares. New tickets are sealed with keys derived from it at once; tickets sealed under the
/// previous secret still open (and are renewed) for one rotation period plus a ticket lifetime.
/// A remote store whose seal key comes from the ticket secret (no `snicache_config_set_seal_key`)
/// rotates it too, keeping the previous key for opening. Thread-safe.
#[no_mangle]
pub extern "C" fn snicache_cache_rotate_ticket_secret(
    cache: *const snicache_cache,
    secret: *const u8,
    len: usize,
) -> snicache_result {
    guard(|| {
        let c = arg(&cache, "cache")?;
        if secret.is_null() {
            return Err(fail(snicache_result::NullParameter, "secret"));
        }
        // SAFETY: the caller gives `len` readable bytes at `secret`.
        let secret = unsafe { bytes(&secret, len) };
        c.tickets.rotate_secret(secret, now()).map_err(|_| {
            fail(
                snicache_result::InvalidParameter,
                format!("ticket secret of {len} bytes (32 to 80 needed)"),
            )
        })?;
        // A remote store's seal key derived from the ticket secret follows it.
        if let Some(seal) = c.seal().filter(|s| s.from_ticket_secret) {
            seal.rotate(secret);
        }
        Ok(())
    })
}
