//! Pointer ownership across the C boundary, in one place (the shape of rustls-ffi's `Castable`
//! layer). Each type C holds by pointer declares how it is owned (`Arc` or `Box`), and only the
//! functions here turn such pointers, and the ones snicache keeps in the host's ex_data slots,
//! into references, `Arc`s or `Box`es and back. A borrow lives as long as the pointer variable
//! it is taken from or the closure it is passed to, never longer.

use std::ffi::CStr;
use std::os::raw::{c_char, c_void};
use std::sync::Arc;

use super::cache::snicache_cache;
use super::callbacks::ConnBox;
use super::config::snicache_config;
use super::error::fail;
use super::snicache_result;
use crate::host::ssl_api::{self, host_call, HostApi};

/// C holds the object as `Arc::into_raw`: several holders, each releasing its own reference.
pub(crate) enum OwnedByArc {}
/// C holds the object as `Box::into_raw`: one owner, who frees it.
pub(crate) enum OwnedByBox {}

/// A type C holds by pointer, and how.
pub(crate) trait Castable {
    type Ownership;
}

impl Castable for snicache_cache {
    type Ownership = OwnedByArc;
}

impl Castable for snicache_config {
    type Ownership = OwnedByBox;
}

/// In the `SSL`'s ex_data slot.
impl Castable for ConnBox {
    type Ownership = OwnedByBox;
}

/// A new shared object, as the pointer to one reference that C now holds.
pub(crate) fn arc_into_ptr<T: Castable<Ownership = OwnedByArc>>(value: T) -> *const T {
    Arc::into_raw(Arc::new(value))
}

/// One more reference to the shared object at `p`, for Rust to hold (`None` for NULL).
///
/// # Safety
/// `p` is NULL or came from `arc_into_ptr`, and some holder's reference is still live.
pub(crate) unsafe fn arc_clone<T: Castable<Ownership = OwnedByArc>>(p: *const T) -> Option<Arc<T>> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per the contract, `p` is a live Arc pointer; the count taken is given to the Arc.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

/// Takes one more reference to the object at `p` for C to hold (an ex_data slot).
///
/// # Safety
/// As for `arc_clone`, with `p` not NULL.
unsafe fn arc_retain<T: Castable<Ownership = OwnedByArc>>(p: *const T) {
    // SAFETY: per the contract.
    unsafe { Arc::increment_strong_count(p) }
}

/// Gives back one reference C held (NULL is ignored).
///
/// # Safety
/// `p` is NULL or a reference from `arc_into_ptr` or `arc_retain` that is not used again.
pub(crate) unsafe fn arc_release<T: Castable<Ownership = OwnedByArc>>(p: *const T) {
    if !p.is_null() {
        // SAFETY: per the contract, this reference is ours to drop.
        drop(unsafe { Arc::from_raw(p) });
    }
}

/// A new object, as the pointer C now owns.
pub(crate) fn box_into_ptr<T: Castable<Ownership = OwnedByBox>>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Frees an object C owned (NULL is ignored).
///
/// # Safety
/// `p` is NULL or came from `box_into_ptr` and is not used again.
pub(crate) unsafe fn box_free<T: Castable<Ownership = OwnedByBox>>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: per the contract.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// Gives `ssl` its connection state, in snicache's ex_data slot. False (the state freed) when
/// the host library refused it.
///
/// # Safety
/// `ssl` is a live `SSL` whose slot holds no state yet.
pub(crate) unsafe fn conn_attach(host: &HostApi, ssl: *mut c_void, conn: ConnBox) -> bool {
    let p = box_into_ptr(conn);
    // SAFETY: per the contract; the slot takes ownership of `p` only on success.
    let set = unsafe { host_call!(host, ssl_set_ex_data(ssl, host.ssl_ex_index, p.cast())) } == 1;
    if !set {
        // SAFETY: `p` is ours again.
        unsafe { box_free(p) };
    }
    set
}

/// Frees a connection's state: the `SSL` ex_data free callback's pointer (NULL is ignored).
///
/// # Safety
/// `ptr` is what snicache's slot held, and the slot is being freed.
pub(crate) unsafe fn conn_free(ptr: *mut c_void) {
    // SAFETY: the slot only ever holds `conn_attach`'s boxes.
    unsafe { box_free(ptr.cast::<ConnBox>()) }
}

/// Runs `f` with the host table and the state of `ssl`, when snicache routed it. The state is
/// borrowed for the call of `f` only; `f` must not reach the same `SSL`'s state again.
///
/// # Safety
/// `ssl` is NULL or a live `SSL` of the host library, used by this thread only, for the call.
pub(crate) unsafe fn with_conn<R>(
    ssl: *const c_void,
    f: impl FnOnce(&'static HostApi, &mut ConnBox) -> R,
) -> Option<R> {
    let host = ssl_api::get()?;
    if ssl.is_null() {
        return None;
    }
    // SAFETY: per the contract; the slot holds a `conn_attach` box or NULL, and this thread
    // is the only one using the `SSL`.
    let conn = unsafe {
        host_call!(host, ssl_get_ex_data(ssl, host.ssl_ex_index))
            .cast::<ConnBox>()
            .as_mut()
    }?;
    Some(f(host, conn))
}

/// The cache attached to `ctx`, as a new reference.
///
/// # Safety
/// `ctx` is a live `SSL_CTX` of the host library.
pub(crate) unsafe fn ctx_cache(host: &HostApi, ctx: *const c_void) -> Option<Arc<snicache_cache>> {
    // SAFETY: per the contract; the slot holds `ctx_hold`'s reference or NULL, which lives as
    // long as the context.
    unsafe {
        arc_clone(
            host_call!(host, ctx_get_ex_data(ctx, host.ctx_ex_index)).cast::<snicache_cache>(),
        )
    }
}

/// Stores a reference to `cache` in `ctx`'s ex_data slot, releasing another cache's held there.
/// False when the host library refused it.
///
/// # Safety
/// `ctx` is a live `SSL_CTX`; `cache` a live cache pointer whose reference the caller holds.
pub(crate) unsafe fn ctx_hold(
    host: &HostApi,
    ctx: *mut c_void,
    cache: *const snicache_cache,
) -> bool {
    // SAFETY: per the contract; the slot holds our references only.
    unsafe {
        let old =
            host_call!(host, ctx_get_ex_data(ctx, host.ctx_ex_index)).cast::<snicache_cache>();
        if old.cast_const() == cache {
            return true;
        }
        arc_retain(cache);
        if host_call!(
            host,
            ctx_set_ex_data(ctx, host.ctx_ex_index, cache as *mut c_void)
        ) != 1
        {
            arc_release(cache);
            return false;
        }
        arc_release(old);
    }
    true
}

/// Releases a context's reference to its cache: the `SSL_CTX` ex_data free callback's pointer
/// (NULL is ignored).
///
/// # Safety
/// `ptr` is what snicache's slot held, and the slot is being freed.
pub(crate) unsafe fn ctx_release(ptr: *mut c_void) {
    // SAFETY: the slot only ever holds `ctx_hold`'s references.
    unsafe { arc_release(ptr.cast_const().cast::<snicache_cache>()) }
}

/// The `len` bytes at `*p` (empty for NULL or 0), borrowed as long as the pointer variable.
///
/// # Safety
/// `*p` is NULL or points to `len` readable bytes that stay valid and unchanged while the
/// pointer variable is in scope.
pub(crate) unsafe fn bytes(p: &*const u8, len: usize) -> &[u8] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: per the contract.
        unsafe { std::slice::from_raw_parts(*p, len) }
    }
}

/// The `len` writable bytes at `*p` (empty for NULL or 0), borrowed as the pointer variable.
///
/// # Safety
/// `*p` is NULL or points to `len` writable bytes no one else uses while the pointer variable
/// is in scope.
pub(crate) unsafe fn bytes_mut(p: &mut *mut u8, len: usize) -> &mut [u8] {
    if p.is_null() || len == 0 {
        &mut []
    } else {
        // SAFETY: per the contract.
        unsafe { std::slice::from_raw_parts_mut(*p, len) }
    }
}

/// A borrowed, non-NULL pointer argument of an exported function, for as long as the argument.
pub(crate) fn arg<'a, T>(p: &'a *const T, name: &str) -> Result<&'a T, snicache_result> {
    // SAFETY: the exported function's contract says non-NULL pointers are valid for the call.
    unsafe { p.as_ref() }.ok_or_else(|| fail(snicache_result::NullParameter, name))
}

/// A borrowed, non-NULL, mutable pointer argument, for as long as the argument.
// The `&mut` comes from the C caller's pointer, which the exported function's contract makes
// exclusive for the call; the shared borrow of the pointer variable only bounds its lifetime.
#[allow(clippy::mut_from_ref)]
pub(crate) fn arg_mut<'a, T>(p: &'a *mut T, name: &str) -> Result<&'a mut T, snicache_result> {
    // SAFETY: as in `arg`, and the contract says the object is not used concurrently.
    unsafe { p.as_mut() }.ok_or_else(|| fail(snicache_result::NullParameter, name))
}

/// A NUL-terminated string argument that must be UTF-8, for as long as the argument.
pub(crate) fn arg_str<'a>(p: &'a *const c_char, name: &str) -> Result<&'a str, snicache_result> {
    if p.is_null() {
        return Err(fail(snicache_result::NullParameter, name));
    }
    // SAFETY: non-NULL and, per the contract, NUL-terminated and live for the call.
    unsafe { CStr::from_ptr(*p) }.to_str().map_err(|_| {
        fail(
            snicache_result::InvalidParameter,
            format!("{name} is not UTF-8"),
        )
    })
}
