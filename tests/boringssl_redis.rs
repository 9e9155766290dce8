//! Asynchronous lookups on BoringSSL against a real `redis-server`: real BoringSSL handshakes
//! through the C ABI (as `boringssl.rs`), two caches sharing one Redis like two servers of a
//! fleet. With `snicache_config_set_async_lookup`, a lookup the local tier cannot answer returns
//! `SSL_ERROR_PENDING_SESSION` at once, the ready callback names the paused `SSL` from
//! snicache's fetcher thread, and the handshake driven again goes on with the answer.

#[path = "boringssl/harness.rs"]
mod harness;
#[path = "boringssl/host.rs"]
mod host;
#[path = "redis/server.rs"]
mod server;

use std::ffi::CString;
use std::os::raw::c_void;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use boring_sys as ffi;
use harness::*;
use server::RedisServer;
use snicache::ffi::callbacks::{SNICACHE_OUTCOME_FULL, SNICACHE_OUTCOME_RESUMED};
use snicache::ffi::config::{
    snicache_config, snicache_config_set_async_lookup, snicache_config_set_store,
};
use snicache::ffi::redis::{snicache_cache_set_seal_key, snicache_config_set_seal_key};
use snicache::ffi::snicache_result;

/// Tokens the ready callback was called with, and when.
static READY: Mutex<Vec<(usize, Instant)>> = Mutex::new(Vec::new());
static READY_CHANGED: Condvar = Condvar::new();

unsafe extern "C" fn on_ready(userdata: *mut c_void, ssl: *const c_void) {
    assert!(userdata.is_null());
    READY.lock().unwrap().push((ssl as usize, Instant::now()));
    READY_CHANGED.notify_all();
}

/// Waits (10 s at most) until the ready callback named `ssl` after `since`.
fn wait_ready(ssl: *mut ffi::SSL, since: Instant) -> Instant {
    let end = Instant::now() + Duration::from_secs(10);
    let mut ready = READY.lock().unwrap();
    loop {
        if let Some(&(_, at)) = ready
            .iter()
            .find(|&&(t, at)| t == ssl as usize && at >= since)
        {
            return at;
        }
        let left = end
            .checked_duration_since(Instant::now())
            .expect("the ready callback never named the paused connection");
        ready = READY_CHANGED.wait_timeout(ready, left).unwrap().0;
    }
}

fn redis_store(config: *mut snicache_config, url: &str, ready: bool) {
    let spec = CString::new(url).unwrap();
    assert_eq!(
        snicache_config_set_store(config, spec.as_ptr()),
        snicache_result::Ok
    );
    let key = [9u8; 32];
    assert_eq!(
        snicache_config_set_seal_key(config, key.as_ptr(), key.len()),
        snicache_result::Ok
    );
    if ready {
        assert_eq!(
            snicache_config_set_async_lookup(config, Some(on_ready), std::ptr::null_mut()),
            snicache_result::Ok
        );
    }
}

fn tls12<'a>(
    offer: Option<&'a Session>,
    on_pending: Option<&'a dyn Fn(*mut ffi::SSL)>,
) -> Opts<'a> {
    Opts {
        sni: Some("a.test"),
        offer,
        version: TLS1_2,
        on_pending,
        ..Opts::default()
    }
}

fn outcome(o: &Outcome) -> u32 {
    o.info.as_ref().expect("snicache state").outcome
}

/// A session made on `one`, once Redis holds it (the writer is asynchronous).
fn session_in_redis(one: &Server, client: &Client, r: &RedisServer) -> Session {
    let mut c = r.cli().unwrap();
    let before: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    let made = one.connect(client, &tls12(None, None));
    assert!(made.ok && !made.resumed);
    let end = Instant::now() + Duration::from_secs(10);
    while redis::cmd("DBSIZE").query::<u64>(&mut c).unwrap() <= before {
        assert!(Instant::now() < end, "the session never reached Redis");
        std::thread::sleep(Duration::from_millis(5));
    }
    made.session.expect("a session")
}

#[test]
fn a_redis_lookup_pauses_the_handshake_and_the_ready_callback_resumes_it() {
    let r = RedisServer::start();
    let one = Server::new(&[vhost("a.test")], |c| redis_store(c, &r.url(), false));
    let url = format!("{}?async_ms=250&backoff_ms=200", r.url());
    let two = Server::build_like(&[vhost("a.test")], false, Some(&one), |c| {
        redis_store(c, &url, true)
    });
    let client = Client::new();

    // Found in Redis: SSL_ERROR_PENDING_SESSION, the ready callback names this SSL, resumed.
    let session = session_in_redis(&one, &client, &r);
    let start = Instant::now();
    let paused = Mutex::new(Vec::new());
    let wait = |ssl: *mut ffi::SSL| {
        let at = Instant::now();
        paused.lock().unwrap().push((ssl as usize, at - start));
        wait_ready(ssl, start);
    };
    let resumed = two.connect(&client, &tls12(Some(&session), Some(&wait)));
    assert!(resumed.ok && resumed.resumed, "resumed after the wake");
    assert_eq!(outcome(&resumed), SNICACHE_OUTCOME_RESUMED);
    assert_eq!(resumed.pending, 1, "paused once");
    let st = two.stats(None);
    assert_eq!(
        (st.pending, st.hits, st.remote_hits, st.remote_fetches),
        (1, 1, 1, 1),
        "{st:?}"
    );
    // Now in two's local tier: no pause.
    let again = two.connect(&client, &tls12(Some(&session), None));
    assert!(again.ok && again.resumed && again.pending == 0);

    // Redis stalled for 1 s: the handshake call returns pending at once (the thread is not
    // blocked), the fetch gives up after async_ms and wakes the connection: a full handshake.
    let session = session_in_redis(&one, &client, &r);
    let sleeper = r.stall(1);
    paused.lock().unwrap().clear();
    let start = Instant::now();
    let wait = |ssl: *mut ffi::SSL| {
        paused.lock().unwrap().push((ssl as usize, start.elapsed()));
        wait_ready(ssl, start);
    };
    let stalled = two.connect(&client, &tls12(Some(&session), Some(&wait)));
    let total = start.elapsed();
    sleeper.join().unwrap();
    let first_pause = paused.lock().unwrap()[0].1;
    eprintln!("stalled Redis: handshake call returned pending after {first_pause:?}; handshake done after {total:?}");
    assert!(stalled.ok && !stalled.resumed && stalled.alert.is_none());
    assert_eq!(outcome(&stalled), SNICACHE_OUTCOME_FULL);
    assert_eq!(stalled.pending, 1);
    assert!(
        first_pause < Duration::from_millis(500),
        "the handshake call blocked for {first_pause:?} of a 1 s stall"
    );
    assert!(
        total >= Duration::from_millis(200),
        "async_ms is 250: {total:?}"
    );
    assert!(two.stats(None).remote_timeouts >= 1);

    // Redis down: every handshake completes, full, never an error.
    let sessions: Vec<_> = (0..4)
        .map(|_| session_in_redis(&one, &client, &r))
        .collect();
    drop(r);
    let start = Instant::now();
    let wait = |ssl: *mut ffi::SSL| {
        wait_ready(ssl, start);
    };
    for s in &sessions {
        let o = two.connect(&client, &tls12(Some(s), Some(&wait)));
        assert!(o.ok && !o.resumed && o.alert.is_none());
        assert_eq!(outcome(&o), SNICACHE_OUTCOME_FULL);
    }
    let st = two.stats(None);
    assert!(
        st.remote_errors >= 1 && st.remote_breaker_trips >= 1,
        "{st:?}"
    );
}

/// A seal key installed at run time (`snicache_cache_set_seal_key`, which reaches the keys
/// through the cache's store): another server's records sealed under it open at once. A cache
/// without a remote store refuses it.
#[test]
fn a_seal_key_installed_at_run_time_opens_the_fleets_records() {
    let r = RedisServer::start();
    let one = Server::new(&[vhost("a.test")], |c| redis_store(c, &r.url(), false));
    // Another seal key, and a lookup budget a loaded machine does not miss.
    let url = format!("{}?budget_ms=1000", r.url());
    let two = Server::build_like(&[vhost("a.test")], false, Some(&one), |c| {
        redis_store(c, &url, false);
        let other = [8u8; 32];
        assert_eq!(
            snicache_config_set_seal_key(c, other.as_ptr(), other.len()),
            snicache_result::Ok
        );
    });
    let client = Client::new();
    let session = session_in_redis(&one, &client, &r);
    let refused = two.connect(&client, &tls12(Some(&session), None));
    assert!(refused.ok && !refused.resumed);
    assert_eq!(two.stats(None).remote_seal_failures, 1);

    let key = [9u8; 32];
    assert_eq!(
        snicache_cache_set_seal_key(two.cache, key.as_ptr(), key.len()),
        snicache_result::Ok
    );
    let resumed = two.connect(&client, &tls12(Some(&session), None));
    assert!(resumed.ok && resumed.resumed);
    assert_eq!(outcome(&resumed), SNICACHE_OUTCOME_RESUMED);
    assert_eq!(two.stats(None).remote_hits, 1);

    let memory = Server::new(&[vhost("a.test")], |_| {});
    assert_eq!(
        snicache_cache_set_seal_key(memory.cache, key.as_ptr(), key.len()),
        snicache_result::InvalidParameter
    );
}
