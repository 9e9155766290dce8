//! The RESP client against canned servers: replies, limits, deadlines.

use super::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

/// A one-connection server that answers each request with the next canned reply.
fn serve(replies: Vec<&'static [u8]>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        for r in replies {
            if s.read(&mut buf).unwrap_or(0) == 0 {
                return;
            }
            if s.write_all(r).is_err() {
                return;
            }
        }
        let _ = s.read(&mut buf);
    });
    addr
}

#[test]
fn replies_parse_and_errors_keep_the_connection() {
    let addr = serve(vec![
        b"$5\r\nhello\r\n",
        b"$-1\r\n",
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n",
        b":42\r\n+OK\r\n",
    ]);
    let d = || Instant::now() + Duration::from_secs(5);
    let mut c = Conn::connect(&Addr::Tcp(addr), &Setup::default(), None, 100, d()).unwrap();
    assert_eq!(
        c.call(&[b"GET", b"k"], d()).unwrap(),
        Reply::Bulk(b"hello".to_vec())
    );
    assert_eq!(c.call(&[b"GET", b"k"], d()).unwrap(), Reply::Nil);
    let e = c.call(&[b"GET", b"k"], d()).unwrap_err();
    assert!(
        e.keeps_connection() && e.to_string().contains("WRONGTYPE"),
        "{e}"
    );
    assert_eq!(
        c.call(&[b"SENTINEL"], d()).unwrap(),
        Reply::Array(vec![
            Reply::Bulk(b"127.0.0.1".to_vec()),
            Reply::Bulk(b"6379".to_vec())
        ])
    );
    // Two replies in one segment: each call takes its own.
    assert_eq!(c.call(&[b"X"], d()).unwrap(), Reply::Int(42));
}

#[test]
fn a_bulk_over_the_limit_is_refused_from_its_header() {
    let addr = serve(vec![b"$10485760\r\n"]);
    let d = Instant::now() + Duration::from_secs(5);
    let mut c = Conn::connect(&Addr::Tcp(addr), &Setup::default(), None, 65536, d).unwrap();
    let e = c.call(&[b"GET", b"k"], d).unwrap_err();
    assert!(matches!(e, RespError::TooLarge(10485760)), "{e}");
    assert!(!e.keeps_connection());
}

#[test]
fn a_silent_server_times_out_at_the_deadline() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let start = Instant::now();
    let mut c = Conn::connect(
        &Addr::Tcp(addr),
        &Setup::default(),
        None,
        100,
        start + Duration::from_secs(5),
    )
    .unwrap();
    let t = Instant::now();
    let e = c
        .call(&[b"GET", b"k"], t + Duration::from_millis(5))
        .unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, RespError::Timeout), "{e}");
    assert!(took >= Duration::from_millis(5), "{took:?}");
    drop(l);
}
