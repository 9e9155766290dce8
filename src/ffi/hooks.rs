//! What a host plugs in: a log callback, policy rules and a store, written in C. All are
//! nullable function pointers with `userdata` first.

use std::os::raw::{c_char, c_int, c_void};
use std::sync::Arc;
use std::task::{Wake, Waker};

use crate::engine::policy::{Facts, Rule};
use crate::engine::{Level, Log};
use crate::record::Meta;
use crate::store::{Key, Lookup, Store, StoreError, Usage, Value};

/// The host's callback types below are nullable (`Option<fn>`), as C passes them. Once checked
/// non-null a callback is kept as the function pointer inside, so its signature is written only
/// once, in its public type.
pub(crate) trait Nullable {
    type Given;
}

impl<F> Nullable for Option<F> {
    type Given = F;
}

/// The function pointer of a nullable callback type, once it was checked to be non-null.
pub(crate) type Given<T> = <T as Nullable>::Given;

/// Log levels passed to the log callback.
#[repr(u32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum snicache_log_level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

/// Receives one log line: `message` is `len` bytes, not NUL-terminated, valid only during the
/// call. Called from handshake threads, so it must be thread-safe.
pub type snicache_log_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: snicache_log_level,
        message: *const c_char,
        len: usize,
    ),
>;

pub(crate) struct CLog {
    pub cb: Given<snicache_log_cb>,
    pub userdata: *mut c_void,
    pub max: Level,
}

// SAFETY: the host promises (snicache_config_set_log) that the callback and userdata may be
// used from any thread.
unsafe impl Send for CLog {}
// SAFETY: as above.
unsafe impl Sync for CLog {}

impl Log for CLog {
    fn enabled(&self, level: Level) -> bool {
        level <= self.max
    }
    fn write(&self, level: Level, message: &str) {
        let level = match level {
            Level::Error => snicache_log_level::Error,
            Level::Warn => snicache_log_level::Warn,
            Level::Info => snicache_log_level::Info,
            Level::Debug => snicache_log_level::Debug,
        };
        // SAFETY: the host's callback, with a buffer valid for the call.
        unsafe {
            (self.cb)(
                self.userdata,
                level,
                message.as_ptr() as *const c_char,
                message.len(),
            )
        }
    }
}

/// What a C rule sees of a resumption attempt. Strings are not NUL-terminated and live only
/// during the call; `sni` and `session_sni` are NULL when absent.
#[repr(C)]
pub struct snicache_rule_input {
    /// The virtual host of this connection.
    pub vhost: *const c_char,
    pub vhost_len: usize,
    /// The SNI of this ClientHello.
    pub sni: *const c_char,
    pub sni_len: usize,
    /// The SNI the session was made under.
    pub session_sni: *const c_char,
    pub session_sni_len: usize,
    /// Seconds since the session was made.
    pub age: u64,
    /// Protocol version of the session (0x0303 TLS 1.2, 0x0304 TLS 1.3).
    pub version: u16,
    /// IANA id of the session's cipher suite.
    pub cipher: u16,
    /// ALPN protocol of the session; `alpn_len` 0 when none.
    pub alpn: *const u8,
    pub alpn_len: usize,
}

/// A policy rule: return 0 to allow resumption, anything else to refuse it (full handshake),
/// counted under the rule's name. Called from handshake threads; must be thread-safe and fast.
pub type snicache_rule_cb =
    Option<unsafe extern "C" fn(userdata: *mut c_void, input: *const snicache_rule_input) -> c_int>;

pub(crate) struct CRule {
    pub name: String,
    pub cb: Given<snicache_rule_cb>,
    pub userdata: *mut c_void,
}

// SAFETY: the host promises (snicache_config_add_rule) thread-safe callback and userdata.
unsafe impl Send for CRule {}
// SAFETY: as above.
unsafe impl Sync for CRule {}

fn text(s: Option<&str>) -> (*const c_char, usize) {
    s.map_or((std::ptr::null(), 0), |s| {
        (s.as_ptr() as *const c_char, s.len())
    })
}

impl Rule for CRule {
    fn name(&self) -> &str {
        &self.name
    }
    fn allows(&self, s: &Meta<'_>, f: &Facts<'_>) -> bool {
        let (vhost, vhost_len) = text(Some(&f.vhost.name));
        let (sni, sni_len) = text(f.sni);
        let (session_sni, session_sni_len) = text(s.sni);
        let input = snicache_rule_input {
            vhost,
            vhost_len,
            sni,
            sni_len,
            session_sni,
            session_sni_len,
            age: f.now.saturating_sub(s.created),
            version: s.version,
            cipher: s.cipher,
            alpn: s.alpn.as_ptr(),
            alpn_len: s.alpn.len(),
        };
        // SAFETY: the host's callback, with an input valid for the call.
        unsafe { (self.cb)(self.userdata, &input) == 0 }
    }
}

/// Tells the host that a connection it paused may go on: the session lookup that paused it
/// (BoringSSL `SSL_ERROR_PENDING_SESSION`, OpenSSL `SSL_ERROR_WANT_CLIENT_HELLO_CB`) has its
/// answer (found, missing, failed or timed out). Drive that connection's handshake again.
///
/// Called on a snicache background thread, never on the connection's own thread and never
/// while snicache holds a lock the host could need. `ssl` is only a token: the `SSL *` of the
/// paused connection as it was when it paused. The connection may have been closed and freed
/// since, and its address reused by a new connection, so look the token up among the
/// connections the host itself still holds paused and ignore it otherwise; never dereference
/// it. A connection may be woken more than once, and asking again before the wake is harmless
/// (it pauses again).
pub type snicache_ready_cb =
    Option<unsafe extern "C" fn(userdata: *mut c_void, ssl: *const c_void)>;

/// The host's ready callback.
#[derive(Clone, Copy)]
pub(crate) struct CReady {
    pub cb: Given<snicache_ready_cb>,
    pub userdata: *mut c_void,
}

// SAFETY: the host promises (snicache_config_set_async_lookup) a callback and userdata that may
// be used from any thread.
unsafe impl Send for CReady {}
// SAFETY: as above.
unsafe impl Sync for CReady {}

/// Wakes one paused connection through the host's ready callback.
struct ReadyWake {
    ready: CReady,
    /// The connection's `SSL *`, as a number: a token the host matches, never dereferenced here.
    token: usize,
}

impl Wake for ReadyWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // SAFETY: the host's callback, valid while the cache lives (the store that wakes is
        // part of it).
        unsafe { (self.ready.cb)(self.ready.userdata, self.token as *const c_void) }
    }
}

impl CReady {
    /// A waker that tells the host `ssl` may go on.
    pub(crate) fn waker(self, ssl: *const c_void) -> Waker {
        Waker::from(Arc::new(ReadyWake {
            ready: self,
            token: ssl as usize,
        }))
    }
}

/// `snicache_store_get_cb` answers.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum snicache_store_status {
    /// The value was written to the buffer.
    Found = 0,
    /// No value for this key.
    Missing = 1,
    /// The store is fetching it: on BoringSSL the handshake pauses with
    /// `SSL_ERROR_PENDING_SESSION`; drive it again once the store has the answer. On OpenSSL the
    /// handshake goes on as a full one.
    Pending = 2,
    /// The store failed; a full handshake, counted as a store error.
    Error = 3,
}

impl TryFrom<u32> for snicache_store_status {
    type Error = u32;

    fn try_from(n: u32) -> Result<Self, u32> {
        Ok(match n {
            0 => Self::Found,
            1 => Self::Missing,
            2 => Self::Pending,
            3 => Self::Error,
            n => return Err(n),
        })
    }
}

/// Looks up the record stored under (`vhost`, `id`). Write it into `buf` (capacity `cap`,
/// 64 KiB) and its length into `*out_len`, then answer `SNICACHE_STORE_STATUS_FOUND`.
/// `vhost` is the vhost's name as configured (not NUL-terminated); `id` is 1 to 32 bytes.
/// The answer is a `snicache_store_status` value returned as a `uint32_t`; any other number is a
/// store error (a full handshake, counted).
pub type snicache_store_get_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        vhost: *const c_char,
        vhost_len: usize,
        id: *const u8,
        id_len: usize,
        buf: *mut u8,
        cap: usize,
        out_len: *mut usize,
    ) -> u32,
>;

/// Stores `value` (an opaque, versioned snicache record; copy it) under (`vhost`, `id`) until
/// `expires_at` (seconds since the epoch). Return 0 on success.
pub type snicache_store_put_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        vhost: *const c_char,
        vhost_len: usize,
        id: *const u8,
        id_len: usize,
        value: *const u8,
        value_len: usize,
        expires_at: u64,
    ) -> c_int,
>;

/// Removes what is stored under (`vhost`, `id`). Return 1 when something was removed, 0 when
/// nothing was stored there: single-use sessions, early data accepted at most once and the
/// counters rely on it (a removal answered 1 to two callers lets both resume).
pub type snicache_store_remove_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        vhost: *const c_char,
        vhost_len: usize,
        id: *const u8,
        id_len: usize,
    ) -> c_int,
>;

/// A store whose operations are the host's callbacks.
#[derive(Clone)]
pub(crate) struct CStoreCallbacks {
    pub get: Given<snicache_store_get_cb>,
    pub put: Given<snicache_store_put_cb>,
    pub remove: Given<snicache_store_remove_cb>,
    pub userdata: *mut c_void,
}

// SAFETY: the host promises (snicache_config_set_store_callbacks) thread-safe callbacks.
unsafe impl Send for CStoreCallbacks {}
// SAFETY: as above.
unsafe impl Sync for CStoreCallbacks {}

/// Largest record a host store may return.
const HOST_RECORD_MAX: usize = 64 * 1024;

pub(crate) struct CStore {
    pub cbs: CStoreCallbacks,
    /// Vhost names by index, for the host's keys.
    pub vhosts: Vec<String>,
}

/// The arguments every store callback starts with: `userdata`, `vhost`, `vhost_len`, `id`,
/// `id_len`. The pointers borrow from the store and the key.
type KeyArgs = (*mut c_void, *const c_char, usize, *const u8, usize);

impl CStore {
    fn key_args(&self, key: &Key) -> KeyArgs {
        let n = &self.vhosts[(key.vhost as usize).min(self.vhosts.len() - 1)];
        let id = key.id();
        (
            self.cbs.userdata,
            n.as_ptr() as *const c_char,
            n.len(),
            id.as_ptr(),
            id.len(),
        )
    }
}

impl Store for CStore {
    fn keeps_local(&self) -> bool {
        false
    }

    fn get(&self, key: &Key, _now: u64) -> Lookup {
        let (ud, v, vl, id, id_len) = self.key_args(key);
        let mut buf = vec![0u8; HOST_RECORD_MAX];
        let mut len = 0usize;
        // SAFETY: the host's callback with buffers valid for the call.
        let status =
            unsafe { (self.cbs.get)(ud, v, vl, id, id_len, buf.as_mut_ptr(), buf.len(), &mut len) };
        // Read as a number: a C value outside the enum would be undefined behaviour as one.
        match snicache_store_status::try_from(status) {
            Ok(snicache_store_status::Found) if len <= buf.len() => {
                buf.truncate(len);
                Lookup::Hit(Value::new(buf))
            }
            Ok(snicache_store_status::Missing) => Lookup::Miss,
            Ok(snicache_store_status::Pending) => Lookup::Pending,
            Ok(snicache_store_status::Found | snicache_store_status::Error) | Err(_) => {
                Lookup::Unavailable
            }
        }
    }

    fn put(&self, key: Key, value: Value, expires_at: u64) -> Result<(), StoreError> {
        let (ud, v, vl, id, id_len) = self.key_args(&key);
        let (val, val_len) = (value.bytes.as_ptr(), value.bytes.len());
        // SAFETY: the host's callback with buffers valid for the call.
        let r = unsafe { (self.cbs.put)(ud, v, vl, id, id_len, val, val_len, expires_at) };
        if r == 0 {
            Ok(())
        } else {
            Err(StoreError::Unavailable)
        }
    }

    fn remove(&self, key: &Key) -> bool {
        let (ud, v, vl, id, id_len) = self.key_args(key);
        // SAFETY: the host's callback with buffers valid for the call.
        unsafe { (self.cbs.remove)(ud, v, vl, id, id_len) == 1 }
    }

    fn usage(&self, _vhost: Option<u32>) -> Usage {
        // The host's store keeps its own accounting; snicache only sees what it was handed.
        Usage::default()
    }
}
