//! 0-RTT at most once on OpenSSL hosts (`snicache_config_set_early_data`; the engine's
//! `early_data` module has the mechanism). BoringSSL hosts go through the ticket AEAD method
//! instead (`snicache_on_ticket_seal` / `snicache_on_ticket_open`). A ticket's identity here is
//! its session's resumption secret (`SSL_SESSION_get_master_key`: per ticket in TLS 1.3, the
//! same when the ticket is issued and when it comes back), read by `snicache_ssl.h`.

use std::os::raw::{c_int, c_void};

use super::boundary;
use super::callbacks::now;
use super::ownership::{bytes, with_conn};
use crate::host::ssl_api::host_call;

/// OpenSSL issues a ticket (the ticket-generate callback, TLS 1.3 stateless and stateful alike)
/// whose session has the resumption secret `identity`: with early data on, its single-use entry
/// goes into the store.
#[no_mangle]
pub extern "C" fn snicache_on_ticket_issued(ssl: *mut c_void, identity: *const u8, len: usize) {
    boundary((), || {
        // SAFETY: called by the host with a live ssl and `len` bytes at `identity`.
        unsafe {
            with_conn(ssl, |host, b| {
                let version = host_call!(host, ssl_version(ssl)) as u16;
                b.cache.engine.early_data_ticket_issued(
                    &b.conn,
                    version,
                    bytes(&identity, len),
                    now(),
                );
            });
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
        let allowed = unsafe {
            with_conn(ssl, |_, b| {
                b.cache
                    .engine
                    .early_data_allowed(&b.conn, bytes(&identity, len))
            })
        };
        allowed.map_or(0, c_int::from)
    })
}
