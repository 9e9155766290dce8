//! Result codes and their messages. Every exported function that can fail returns a
//! `snicache_result`; `snicache_result_message` turns a code into text, and the thread's last
//! detailed error (which vhost, which value) is appended when it belongs to that code.

use std::cell::RefCell;
use std::os::raw::c_char;

/// Results of snicache functions. 0 is success; errors start at 7000.
#[repr(u32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum snicache_result {
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 7000,
    /// An argument is out of range or malformed (see the message for which).
    InvalidParameter = 7001,
    /// A size string is not a number with an optional k/m/g suffix, or is out of range.
    InvalidSize = 7002,
    /// The SSL table was filled by a `snicache_ssl.h` of another version.
    SslApiVersion = 7003,
    /// The SSL table has a NULL entry.
    SslApiIncomplete = 7004,
    /// The host library refused an ex_data index.
    SslExIndex = 7005,
    /// A vhost name is not a valid DNS name or `*.` wildcard.
    InvalidVhostName = 7006,
    /// A vhost with this name was added already.
    DuplicateVhost = 7007,
    /// A second vhost was marked default.
    SecondDefault = 7008,
    /// The config has no vhost.
    NoVhosts = 7009,
    /// No vhost with that name.
    UnknownVhost = 7010,
    /// No refusal reason with that name.
    UnknownReason = 7011,
    /// The caller's buffer is too small; nothing was written.
    BufferTooSmall = 7012,
    /// A host SSL call failed (see the message).
    HostCallFailed = 7013,
    /// A rule with this name exists already.
    DuplicateRule = 7014,
    /// The store could not be set up: the platform refused the shared mapping or its locks
    /// (see the message).
    StoreFailed = 7015,
    /// A panic was caught at the boundary: a bug in snicache.
    Panic = 7099,
}

impl snicache_result {
    fn text(self) -> &'static str {
        use snicache_result::*;
        match self {
            Ok => "success",
            NullParameter => "a required pointer argument was NULL",
            InvalidParameter => "an argument is out of range or malformed",
            InvalidSize => "size must be a number with an optional k, m or g suffix",
            SslApiVersion => "the SSL table comes from a snicache_ssl.h of another version",
            SslApiIncomplete => "the SSL table has a NULL function pointer",
            SslExIndex => "the host SSL library refused an ex_data index",
            InvalidVhostName => "vhost name is not a valid DNS name or *. wildcard",
            DuplicateVhost => "a vhost with this name exists already",
            SecondDefault => "only one vhost can be the default",
            NoVhosts => "the config has no vhost",
            UnknownVhost => "no vhost with that name",
            UnknownReason => "no refusal reason with that name",
            BufferTooSmall => "the buffer is too small",
            HostCallFailed => "a call into the host SSL library failed",
            DuplicateRule => "a rule with this name exists already",
            StoreFailed => "the store could not be set up",
            Panic => "internal error: a panic was caught (please report it)",
        }
    }
}

thread_local! {
    static LAST: RefCell<Option<(snicache_result, String)>> = const { RefCell::new(None) };
}

/// Records the detail of an error for this thread and returns its code.
pub(crate) fn fail(code: snicache_result, detail: impl Into<String>) -> snicache_result {
    LAST.with(|l| *l.borrow_mut() = Some((code, detail.into())));
    code
}

/// Writes the message for `result` (and, when it is this thread's last error, its detail) into
/// `buf` as a NUL-terminated string, truncated to fit, and returns the length written without
/// the NUL. `buf` may be NULL or `len` 0 to learn nothing but that nothing was written (0).
/// Safe from any thread.
#[no_mangle]
pub extern "C" fn snicache_result_message(result: u32, buf: *mut c_char, len: usize) -> usize {
    crate::ffi::boundary(0, || {
        if buf.is_null() || len == 0 {
            return 0;
        }
        let code = all().into_iter().find(|c| *c as u32 == result);
        let mut text = match code {
            Some(c) => c.text().to_owned(),
            None => format!("unknown result code {result}"),
        };
        if let Some(c) = code {
            LAST.with(|l| {
                if let Some((last, detail)) = &*l.borrow() {
                    if *last == c && !detail.is_empty() {
                        text = format!("{text}: {detail}");
                    }
                }
            });
        }
        let n = text.len().min(len - 1);
        // SAFETY: the caller gives `len` writable bytes at `buf`; we write n + 1 <= len.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf as *mut u8, n);
            *buf.add(n) = 0;
        }
        n
    })
}

fn all() -> [snicache_result; 18] {
    use snicache_result::*;
    [
        Ok,
        NullParameter,
        InvalidParameter,
        InvalidSize,
        SslApiVersion,
        SslApiIncomplete,
        SslExIndex,
        InvalidVhostName,
        DuplicateVhost,
        SecondDefault,
        NoVhosts,
        UnknownVhost,
        UnknownReason,
        BufferTooSmall,
        HostCallFailed,
        DuplicateRule,
        StoreFailed,
        Panic,
    ]
}
