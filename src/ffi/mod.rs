//! The C surface: thin exported functions that check pointers, catch panics and translate to
#![allow(non_camel_case_types)]
// Exported functions take raw pointers by design (checked for NULL, documented in the header);
// marking them `unsafe` would change nothing for C callers.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
//! and from the engine. Nothing below this module knows it exists.

pub mod cache;
pub mod callbacks;
pub mod config;
pub mod early_data;
pub mod error;
pub mod hooks;
pub(crate) mod ownership;
pub mod redis;
#[cfg(target_os = "linux")]
pub mod shm;
pub mod tickets;

use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use error::snicache_result;
pub(crate) use ownership::{arg, arg_mut, arg_str};

/// Runs `f`, turning a panic into `default`: no unwinding crosses into C.
pub(crate) fn boundary<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// Like `boundary` for functions that return a result code.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), snicache_result>) -> snicache_result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => snicache_result::Ok,
        Ok(Err(code)) => code,
        Err(_) => snicache_result::Panic,
    }
}

/// Writes an output pointer; outputs are written only on success.
pub(crate) fn out<T>(p: *mut T, value: T, name: &str) -> Result<(), snicache_result> {
    if p.is_null() {
        return Err(error::fail(snicache_result::NullParameter, name));
    }
    // SAFETY: non-NULL and, per the contract, writable.
    unsafe { p.write(value) };
    Ok(())
}

/// The library version, a static NUL-terminated string equal to `SNICACHE_VERSION`.
#[no_mangle]
pub extern "C" fn snicache_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}
