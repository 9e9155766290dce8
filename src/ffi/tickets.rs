//! Stateless tickets with per-vhost keys (`crypto::ticket_keys`): OpenSSL's ticket key callback
//! and BoringSSL's ticket AEAD method, installed by `snicache_cache_attach`, plus run-time
//! rotation of the master secret. A ticket sealed for one vhost never opens on another (R10);
//! keys rotate with a decrypt-only window (R8).

use std::os::raw::{c_int, c_void};

use super::boundary;
use super::cache::snicache_cache;
use super::callbacks::{conn_and_host, host_facts, now, policy_ctx};
use super::error::fail;
use super::{arg, guard, snicache_result};
use crate::crypto::ticket_keys::NAME_LEN;
use crate::crypto::{self, NONCE_LEN, TAG_LEN};
use crate::engine::stats::Event;
use crate::engine::Engine;
use crate::host::ssl_api::host_call;

/// `SSL_version` of TLS 1.3.
const TLS1_3: c_int = 0x0304;

/// Bytes a BoringSSL ticket grows by when sealed: key name, nonce, tag.
const OVERHEAD: usize = NAME_LEN + NONCE_LEN + TAG_LEN;
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
        // SAFETY: called by OpenSSL with a live ssl, a 16-byte key name and an IV buffer of
        // EVP_MAX_IV_LENGTH (16) bytes.
        unsafe {
            let Some((host, b)) = conn_and_host(ssl) else {
                return if enc == 1 { -1 } else { 0 };
            };
            let cache = &b.cache;
            let vhost = cache.engine.vhosts.get(b.conn.vhost);
            let now = now();
            let (key, renew) = if enc == 1 {
                let key = cache.tickets.encrypting(vhost.index, &vhost.name, now);
                std::ptr::copy_nonoverlapping(key.name.as_ptr(), key_name, NAME_LEN);
                crypto::random(std::slice::from_raw_parts_mut(iv, IV_LEN));
                (key, false)
            } else {
                let name = std::slice::from_raw_parts(key_name, NAME_LEN);
                match cache
                    .tickets
                    .decrypting(vhost.index, &vhost.name, name, now)
                {
                    Some(found) => found,
                    None => {
                        cache.engine.ticket_key_unknown(&mut b.conn);
                        return 0;
                    }
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
            if renew {
                cache.engine.stats.count(vhost.index, Event::TicketRenewed);
                return 2;
            }
            if enc != 1 && Engine::renews_ticket(host_call!(host, ssl_version(ssl)) as u16) {
                return 2;
            }
            1
        }
    })
}

/// BoringSSL's ticket AEAD `max_overhead`.
#[no_mangle]
pub extern "C" fn snicache_on_ticket_overhead(ssl: *mut c_void) -> usize {
    let _ = ssl;
    OVERHEAD + crate::record::MAX_APPDATA
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
        if out.is_null() || out_len.is_null() || (in_.is_null() && in_len > 0) {
            return 0;
        }
        // SAFETY: called by BoringSSL with live buffers of the given lengths.
        unsafe {
            let Some((host, b)) = conn_and_host(ssl) else {
                return 0;
            };
            let session = host_call!(host, ssl_session(ssl));
            let mut plain = if session.is_null() {
                return 0;
            } else {
                super::callbacks::ticket_record(host, ssl, b, session)
            };
            let session_bytes = if in_len == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(in_, in_len)
            };
            plain.extend_from_slice(session_bytes);
            let vhost = b.cache.engine.vhosts.get(b.conn.vhost);
            if b.cache.engine.early_data && host_call!(host, ssl_version(ssl)) == TLS1_3 {
                // The ticket's identity: the session it carries (its own resumption secret).
                b.cache
                    .engine
                    .early_data_issue(vhost.index, session_bytes, now());
            }
            let key = b.cache.tickets.encrypting(vhost.index, &vhost.name, now());
            let sealed = crypto::seal(&key.aes, &key.name, &plain);
            crypto::zeroize(&mut plain);
            if NAME_LEN + sealed.len() > max_out {
                return 0;
            }
            std::ptr::copy_nonoverlapping(key.name.as_ptr(), out, NAME_LEN);
            std::ptr::copy_nonoverlapping(sealed.as_ptr(), out.add(NAME_LEN), sealed.len());
            *out_len = NAME_LEN + sealed.len();
            1
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
        if out.is_null() || out_len.is_null() || in_.is_null() {
            return -1;
        }
        // SAFETY: called by BoringSSL with live buffers of the given lengths.
        unsafe {
            let Some((host, b)) = conn_and_host(ssl) else {
                return 0;
            };
            let ticket = std::slice::from_raw_parts(in_, in_len);
            let vhost = b.cache.engine.vhosts.get(b.conn.vhost);
            let index = vhost.index;
            if ticket.len() < OVERHEAD {
                b.cache.engine.stats.count(index, Event::TicketForged);
                return 0;
            }
            let (name, sealed) = ticket.split_at(NAME_LEN);
            let Some((key, renew)) = b.cache.tickets.decrypting(index, &vhost.name, name, now())
            else {
                b.cache.engine.ticket_key_unknown(&mut b.conn);
                return 0;
            };
            let Some(mut plain) = crypto::open(&key.aes, &key.name, sealed) else {
                b.cache.engine.stats.count(index, Event::TicketForged);
                return 0;
            };
            let Some(split) = crate::record::split_appdata(&plain) else {
                crypto::zeroize(&mut plain);
                b.cache.engine.stats.count(index, Event::TicketForged);
                return 0;
            };
            let ctx = policy_ctx(host, ssl, b) as *const c_void;
            let enabled = |c: u16| host_call!(host, ctx_cipher_enabled(ctx, c)) == 1;
            let facts = host_facts(host, ssl, &enabled);
            let allowed = b
                .cache
                .engine
                .check_ticket(&mut b.conn, Some(&plain[..split]), &facts);
            let session = &plain[split..];
            let fits = session.len() <= max_out;
            let mut answer = c_int::from(allowed && fits);
            if allowed && fits {
                std::ptr::copy_nonoverlapping(session.as_ptr(), out, session.len());
                *out_len = session.len();
                if renew {
                    b.cache.engine.stats.count(index, Event::TicketRenewed);
                }
                if b.cache.engine.early_data
                    && b.conn.early_data_offered
                    && !b.cache.engine.early_data_take(index, session)
                {
                    answer = SNICACHE_TICKET_OPEN_NO_EARLY_DATA;
                }
            }
            crypto::zeroize(&mut plain);
            answer
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
        let c = arg(cache, "cache")?;
        if secret.is_null() {
            return Err(fail(snicache_result::NullParameter, "secret"));
        }
        // SAFETY: the caller gives `len` readable bytes at `secret`.
        let bytes = unsafe { std::slice::from_raw_parts(secret, len) };
        c.tickets.rotate_secret(bytes, now()).map_err(|_| {
            fail(
                snicache_result::InvalidParameter,
                format!("ticket secret of {len} bytes (32 to 80 needed)"),
            )
        })?;
        // A remote store's seal key derived from the ticket secret follows it.
        if let Some(seal) = c.seal.as_ref().filter(|s| s.from_ticket_secret) {
            seal.rotate(bytes);
        }
        Ok(())
    })
}
