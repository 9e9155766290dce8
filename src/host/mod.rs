//! The host side: the SSL function table the host fills, and the objects of the host's library
//! that snicache keeps (a decoded session, reference-counted through the table).

pub mod ssl_api;

use std::os::raw::c_void;

use ssl_api::{host_call, HostApi};

/// One reference to a host `SSL_SESSION`, released through the table when dropped.
pub struct HostSession {
    ptr: *mut c_void,
    api: &'static HostApi,
}

// SAFETY: SSL_SESSION reference counts are atomic in OpenSSL and BoringSSL, and a cached
// session is only read after creation, as their own internal caches do across threads.
unsafe impl Send for HostSession {}
// SAFETY: as above; shared access only reads or bumps the reference count.
unsafe impl Sync for HostSession {}

impl HostSession {
    /// Takes a new reference to `ptr`.
    ///
    /// # Safety
    /// `ptr` must be a live `SSL_SESSION` of the table's library.
    pub unsafe fn retain(api: &'static HostApi, ptr: *mut c_void) -> Option<HostSession> {
        // SAFETY: per the contract above.
        (unsafe { host_call!(api, session_up_ref(ptr)) } == 1).then_some(HostSession { ptr, api })
    }

    /// A new reference for a caller that will own it (e.g. OpenSSL after `*copy = 0`).
    pub fn share(&self) -> Option<*mut c_void> {
        // SAFETY: self holds a reference, so the session is live.
        (unsafe { host_call!(self.api, session_up_ref(self.ptr)) } == 1).then_some(self.ptr)
    }
}

impl Drop for HostSession {
    fn drop(&mut self) {
        // SAFETY: releases the reference taken in `retain`.
        unsafe { host_call!(self.api, session_free(self.ptr)) }
    }
}
