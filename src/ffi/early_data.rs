//! 0-RTT at most once on OpenSSL hosts (`snicache_config_set_early_data`; the engine's
//! `early_data` module has the mechanism). BoringSSL hosts go through the ticket AEAD method
//! instead (`snicache_on_ticket_seal` / `snicache_on_ticket_open`). A ticket's identity here is
//! its session's resumption secret (`SSL_SESSION_get_master_key`: per ticket in TLS 1.3, the
//! same when the ticket is issued and when it comes back), read by `snicache_ssl.h`.

use std::os::raw::{c_int, c_void};

use super::boundary;
use super::callbacks::{conn_and_host, now};
use crate::host::ssl_api::host_call;

/// `SSL_version` of TLS 1.3.
const TLS1_3: c_int = 0x0304;

unsafe fn bytes<'a>(p: *const u8, len: usize) -> &'a [u8] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the caller passes `len` readable bytes at `p`.
        unsafe { std::slice::from_raw_parts(p, len) }
    }
}

/// OpenSSL issues a ticket (the ticket-generate callback, TLS 1.3 stateless and stateful alike)
/// whose session has the resumption secret `identity`: with early data on, its single-use entry
/// goes into the store.
#[no_mangle]
pub extern "C" fn snicache_on_ticket_issued(ssl: *mut c_void, identity: *const u8, len: usize) {
    boundary((), || {
        // SAFETY: called by the host with a live ssl and `len` bytes at `identity`.
        unsafe {
            let Some((host, b)) = conn_and_host(ssl) else {
                return;
            };
            if !b.cache.engine.early_data || host_call!(host, ssl_version(ssl)) != TLS1_3 {
                return;
            }
            let index = b.cache.engine.vhosts.get(b.conn.vhost).index;
            b.cache
                .engine
                .early_data_issue(index, bytes(identity, len), now());
        }
    })
}

/// OpenSSL's allow-early-data callback (`SSL_CTX_set_allow_early_data_cb`), called when it is
/// about to accept the early data of a resumed session whose resumption secret is `identity`.
/// Returns 1 to accept (the first use: this handshake took the ticket's single-use entry), 0 to
/// reject it (a replay, or an entry never stored: the handshake goes on in 1-RTT). Without
/// `snicache_config_set_early_data`, 1: early data stays the host's business.
#[no_mangle]
pub extern "C" fn snicache_on_allow_early_data(
    ssl: *mut c_void,
    identity: *const u8,
    len: usize,
) -> c_int {
    boundary(0, || {
        // SAFETY: called by the host with a live ssl and `len` bytes at `identity`.
        unsafe {
            let Some((_, b)) = conn_and_host(ssl) else {
                return 0;
            };
            if !b.cache.engine.early_data {
                return 1;
            }
            let index = b.cache.engine.vhosts.get(b.conn.vhost).index;
            c_int::from(b.cache.engine.early_data_take(index, bytes(identity, len)))
        }
    })
}
