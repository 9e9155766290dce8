//! Issue 11 items 1-3 on BoringSSL, with real BoringSSL handshakes through snicache's C ABI
//! (`boringssl/host.rs`, the twin of `snicache_ssl.h`'s BoringSSL branch):
//! - every resumed TLS 1.3 connection gets a fresh ticket (a chain of single-use resumptions,
//!   each offering only the newest ticket); TLS 1.2 keeps its ticket under a current key;
//! - server_name is acknowledged only for names that selected a vhost (TLS 1.2 and 1.3);
//! - a second ClientHello (after a HelloRetryRequest) that changes, adds or removes the
//!   server_name gets a fatal illegal_parameter alert: a BoringSSL server on a loopback port
//!   and the hand-built tlslite-ng client of `tests/blackbox/lib/hrr_sni.py`.

#[path = "boringssl/harness.rs"]
mod harness;
#[path = "boringssl/host.rs"]
mod host;

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use boring_sys as ffi;
use harness::*;
use snicache::ffi::cache::snicache_cache_stats_json;
use snicache::ffi::callbacks::{snicache_conn_info, snicache_conn_info_get};
use snicache::ffi::snicache_result;

const CHAIN: usize = 5;

fn opts<'a>(version: u16, sni: Option<&'a str>, offer: Option<&'a Session>) -> Opts<'a> {
    Opts::new(version, sni, offer)
}

/// A full handshake, then `CHAIN` resumptions each offering only the newest session. Returns
/// (resumed, resumptions that handed the client a ticket other than the one it offered).
fn chain(server: &Server, client: &Client, version: u16) -> (usize, usize) {
    let first = server.connect(client, &opts(version, Some("a.test"), None));
    assert!(first.ok && !first.resumed);
    let mut newest = first.session().clone();
    let (mut resumed, mut fresh) = (0, 0);
    for _ in 0..CHAIN {
        let r = server.connect(client, &opts(version, Some("a.test"), Some(&newest)));
        assert!(r.ok);
        resumed += usize::from(r.resumed);
        let next = r.session().clone();
        fresh += usize::from(next.ticket() != newest.ticket());
        newest = next;
    }
    (resumed, fresh)
}

#[test]
fn tls13_resumption_gets_a_fresh_ticket_tls12_keeps_its_own() {
    let server = Server::build(&[vhost("a.test")], true, |_| {});
    let client = Client::new();
    let (resumed, fresh) = chain(&server, &client, TLS1_3);
    println!("TLS 1.3: resumed {resumed} of {CHAIN}, fresh ticket on {fresh}");
    assert_eq!((resumed, fresh), (CHAIN, CHAIN));
    let (resumed, fresh) = chain(&server, &client, TLS1_2);
    println!("TLS 1.2: resumed {resumed} of {CHAIN}, fresh ticket on {fresh}");
    assert_eq!((resumed, fresh), (CHAIN, 0));
    let st = server.stats(None);
    assert_eq!(st.hits, 2 * CHAIN as u64);
    // Renewals of TLS 1.3 tickets are not decrypt-only-key renewals.
    assert_eq!(st.ticket_renewed, 0);
}

thread_local! {
    /// The server sent server_name back on this thread's last connection.
    static ACKED: Cell<bool> = const { Cell::new(false) };
}

fn get16(m: &[u8], p: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *m.get(p)?,
        *m.get(p + 1)?,
    ])))
}

/// Finds extension 0 in a ServerHello (2) or EncryptedExtensions (8) the client read.
fn server_name_in(m: &[u8]) -> Option<bool> {
    let mut p = match *m.first()? {
        2 => {
            let sid = 4 + 2 + 32;
            sid + 1 + usize::from(*m.get(sid)?) + 2 + 1
        }
        8 => 4,
        _ => return Some(false),
    };
    let end = p + 2 + get16(m, p)?;
    p += 2;
    while p + 4 <= end.min(m.len()) {
        if get16(m, p)? == 0 {
            return Some(true);
        }
        p += 4 + get16(m, p + 2)?;
    }
    Some(false)
}

unsafe extern "C" fn client_msg(
    write_p: c_int,
    _version: c_int,
    content_type: c_int,
    buf: *const c_void,
    len: usize,
    _ssl: *mut ffi::SSL,
    _arg: *mut c_void,
) {
    if write_p != 0 || content_type != ffi::SSL3_RT_HANDSHAKE as c_int {
        return;
    }
    // SAFETY: BoringSSL passes `len` readable bytes.
    let m = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
    if server_name_in(m) == Some(true) {
        ACKED.with(|a| a.set(true));
    }
}

#[test]
fn server_name_is_acknowledged_only_for_names_that_selected_a_vhost() {
    let server = Server::build(&[vhost("a.test"), vhost("*.example.com")], true, |_| {});
    let client = Client::new();
    // SAFETY: a live client context, before any connection is made from it.
    unsafe { ffi::SSL_CTX_set_msg_callback(client.0, Some(client_msg)) };
    for version in [TLS1_2, TLS1_3] {
        for (sni, vhost, acked) in [
            (Some("a.test"), "a.test", true),
            (Some("x.example.com"), "*.example.com", true),
            (Some("unknown.test"), "a.test", false),
            (None, "a.test", false),
        ] {
            ACKED.with(|a| a.set(false));
            let r = server.connect(&client, &opts(version, sni, None));
            assert!(r.ok, "{version:x} {sni:?}");
            assert_eq!(r.vhost(), Some(vhost), "{version:x} {sni:?}");
            assert_eq!(ACKED.with(Cell::get), acked, "{version:x} {sni:?} acked");
        }
    }
}

/// Serves `GET /` over BoringSSL on a loopback socket until `stop`: answers
/// "vhost=V sni=S resumed=0|1 proto=TLSv1.3" from snicache's decision, as the demo server does.
/// Returns how many handshakes completed.
fn serve(server: &Server, listener: TcpListener, stop: &AtomicBool) -> usize {
    let mut done = 0;
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        // SAFETY: one SSL per accepted socket, used and freed on this thread; the socket
        // outlives the SSL.
        unsafe {
            let ssl = ffi::SSL_new(server.listener);
            assert!(!ssl.is_null());
            ffi::SSL_set_fd(ssl, stream.as_raw_fd());
            if ffi::SSL_accept(ssl) == 1 {
                done += 1;
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = ffi::SSL_read(ssl, buf.as_mut_ptr().cast(), buf.len() as c_int);
                    if n <= 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n as usize]);
                }
                let mut info = std::mem::MaybeUninit::<snicache_conn_info>::uninit();
                assert_eq!(
                    snicache_conn_info_get(ssl.cast(), info.as_mut_ptr()),
                    snicache_result::Ok
                );
                let info = info.assume_init();
                let text = |p: *const std::ffi::c_char, n: usize| {
                    if p.is_null() {
                        "-".to_string()
                    } else {
                        String::from_utf8_lossy(std::slice::from_raw_parts(p.cast(), n))
                            .into_owned()
                    }
                };
                let body = format!(
                    "vhost={} sni={} resumed={} proto=TLSv1.3\n",
                    text(info.vhost, info.vhost_len),
                    text(info.sni, info.sni_len),
                    ffi::SSL_session_reused(ssl)
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                ffi::SSL_write(ssl, resp.as_ptr().cast(), resp.len() as c_int);
                ffi::SSL_shutdown(ssl);
            }
            ffi::ERR_clear_error();
            ffi::SSL_free(ssl);
        }
        drop(stream);
    }
    done
}

fn stats_json(server: &Server) -> String {
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0;
    assert_eq!(
        snicache_cache_stats_json(server.cache, buf.as_mut_ptr().cast(), buf.len(), &mut n),
        snicache_result::Ok
    );
    buf.truncate(n);
    String::from_utf8(buf).unwrap()
}

/// `"key":N` in a JSON text, the first occurrence.
fn counter(json: &str, key: &str) -> u64 {
    let at = json.find(&format!("\"{key}\":")).expect(key) + key.len() + 3;
    json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn server_name_change_across_hello_retry_request_is_refused() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/py/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/deps.sh",
        python.display()
    );
    let server = Arc::new(Server::build(
        &[vhost("a.test"), vhost("b.test")],
        true,
        |_| {},
    ));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
        std::thread::spawn(move || serve(&server, listener, &stop))
    };
    let run = |first: &str, second: &str| {
        let out = Command::new(&python)
            .arg(root.join("tests/blackbox/lib/hrr_sni.py"))
            .args([&port.to_string(), first, second])
            .output()
            .expect("python runs");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success(),
            "hrr_sni.py {first} {second}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let served = "alert=none resumed=1 served=vhost=a.test sni=a.test resumed=1 proto=TLSv1.3 \
                  hellos_with_psk=2";
    let refused = "alert=47 resumed=0 served=- hellos_with_psk=2";
    let results = [
        ("a.test", "a.test", run("a.test", "a.test")),
        ("a.test", "A.TEST", run("a.test", "A.TEST")),
        ("a.test", "b.test", run("a.test", "b.test")),
        ("a.test", "-", run("a.test", "-")),
        ("-", "a.test", run("-", "a.test")),
    ];
    stop.store(true, Ordering::SeqCst);
    let mut wake = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = wake.read(&mut [0u8; 1]);
    let handshakes = thread.join().unwrap();
    for (first, second, got) in &results {
        println!("SNI {first} then {second}: {got}");
    }
    for (i, want) in [served, served, refused, refused, refused]
        .iter()
        .enumerate()
    {
        assert_eq!(
            &results[i].2, want,
            "SNI {} then {}",
            results[i].0, results[i].1
        );
    }
    // Five full handshakes made the sessions; two retries resumed; three were refused.
    assert_eq!(handshakes, 7);
    let json = stats_json(&server);
    assert_eq!(counter(&json, "hrr_sni_changed"), 3, "{json}");
    let st = server.stats(None);
    assert_eq!(st.hits, 2, "only the legitimate retries resumed");
    assert_eq!(server.stats(Some("b.test")).hits, 0);
}
