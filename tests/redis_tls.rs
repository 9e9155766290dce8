//! The Redis store over TLS (`rediss://`, rustls: the library links no libssl) against
//! redis-server's own TLS port (Debian's redis 7 is built with TLS), with certificates made here
//! by the openssl command: a CA, a server certificate for 127.0.0.1 and localhost, a client
//! certificate. Sessions go through; a wrong CA or a missing client certificate fails closed
//! (lookups answer unavailable, counted) with a clear message; the password and the key never
//! appear in a message.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use snicache::store::redis::{RedisSpec, RedisStore};
use snicache::store::{Key, Lookup, Store, Value};

#[path = "redis/store.rs"]
mod store;

use store::{now, redis_store, seal_keys};

const PASSWORD: &str = "tls-test-s3cret-pw";

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `<name>.crt`/`<name>.key` signed by `<ca>` (or self-signed when `ca` is None).
fn cert(dir: &Path, name: &str, ca: Option<&str>, ext: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let (key, crt, csr) = (
        format!("{name}.key"),
        format!("{name}.crt"),
        format!("{name}.csr"),
    );
    let subj = format!("/CN={name}");
    match ca {
        None => {
            let mut a = vec!["req", "-x509"];
            a.extend(ec);
            a.extend(["-days", "2", "-subj", &subj, "-keyout", &key, "-out", &crt]);
            a.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
            a.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
            openssl(dir, &a);
        }
        Some(ca) => {
            let mut a = vec!["req"];
            a.extend(ec);
            a.extend(["-subj", &subj, "-keyout", &key, "-out", &csr]);
            openssl(dir, &a);
            let extfile = format!("{name}.ext");
            std::fs::write(dir.join(&extfile), ext).unwrap();
            let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_crt,
                    "-CAkey",
                    &ca_key,
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    &extfile,
                    "-out",
                    &crt,
                ],
            );
        }
    }
}

fn certificates() -> Dir {
    let dir = std::env::temp_dir().join(format!(
        "snicache-redis-tls-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    cert(&dir, "ca", None, "");
    cert(&dir, "other-ca", None, "");
    cert(
        &dir,
        "server",
        Some("ca"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    cert(
        &dir,
        "client",
        Some("ca"),
        "subjectAltName=DNS:snicache-client\nextendedKeyUsage=clientAuth\n",
    );
    Dir(dir)
}

struct TlsRedis {
    child: Child,
    port: u16,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// redis-server with only a TLS port, a password, and client certificates required or not.
fn tls_redis(dir: &Path, clients: bool) -> TlsRedis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
        ])
        .args([
            "--tls-cert-file",
            &p("server.crt"),
            "--tls-key-file",
            &p("server.key"),
        ])
        .args(["--tls-ca-cert-file", &p("ca.crt")])
        .args(["--tls-auth-clients", if clients { "yes" } else { "no" }])
        .args([
            "--requirepass",
            PASSWORD,
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (Debian's, built with TLS)");
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < end,
            "redis-server did not open its TLS port"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsRedis { child, port }
}

type Messages = Arc<Mutex<Vec<String>>>;

fn store(url: &str) -> (RedisStore, Messages) {
    let messages: Messages = Arc::default();
    let m = messages.clone();
    let spec = RedisSpec::parse(url).unwrap_or_else(|e| panic!("{e}"));
    let s = redis_store(
        &spec,
        &["a.test"],
        seal_keys(&[7; 32]),
        Some(Box::new(move |_, msg: &str| {
            m.lock().unwrap().push(msg.to_owned())
        })),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (s, messages)
}

fn key(id: u8) -> Key {
    Key::new(0, &[id; 32]).unwrap()
}

fn hit(l: Lookup) -> bool {
    matches!(l, Lookup::Hit(v) if &v.bytes[..] == b"record")
}

fn path(dir: &Dir, f: &str) -> String {
    dir.0.join(f).to_str().unwrap().to_owned()
}

#[test]
fn sessions_go_through_tls_and_a_wrong_ca_fails_closed() {
    let dir = certificates();
    let r = tls_redis(&dir.0, false);
    let url = |host: &str, ca: &str| {
        format!(
            "rediss://:{PASSWORD}@{host}:{}/0?budget_ms=500&ca_file={}",
            r.port,
            path(&dir, ca)
        )
    };
    let (writer, _) = store(&url("127.0.0.1", "ca.crt"));
    writer
        .put(key(1), Value::new(b"record".to_vec()), now() + 300)
        .unwrap();
    assert!(writer.flush(Duration::from_secs(5)));
    assert_eq!(
        writer.remote_stats().writes,
        1,
        "{:?}",
        writer.remote_stats()
    );

    let (reader, _) = store(&url("127.0.0.1", "ca.crt"));
    assert!(
        hit(reader.get(&key(1), now())),
        "{:?}",
        reader.remote_stats()
    );
    // By name: resolved off the lookup path, the certificate checked against the name.
    let (by_name, _) = store(&format!("{}&backoff_ms=10", url("localhost", "ca.crt")));
    let end = Instant::now() + Duration::from_secs(10);
    while !hit(by_name.get(&key(1), now())) {
        assert!(Instant::now() < end, "{:?}", by_name.remote_stats());
        std::thread::sleep(Duration::from_millis(20));
    }

    // A CA that did not sign the server's certificate: nothing is read or written.
    let (wrong, messages) = store(&url("127.0.0.1", "other-ca.crt"));
    for _ in 0..3 {
        assert!(matches!(wrong.get(&key(1), now()), Lookup::Unavailable));
    }
    wrong
        .put(key(2), Value::new(b"record".to_vec()), now() + 300)
        .unwrap();
    assert!(wrong.flush(Duration::from_secs(5)));
    let st = wrong.remote_stats();
    assert!(st.errors >= 3 && st.hits == 0 && st.writes == 0, "{st:?}");
    let messages = messages.lock().unwrap().join("\n");
    eprintln!("wrong CA: {messages}");
    assert!(
        messages.contains("TLS") && messages.contains("certificate"),
        "no clear message: {messages}"
    );
    assert!(!messages.contains(PASSWORD), "{messages}");
    assert!(messages.contains("rediss://***@127.0.0.1"), "{messages}");
}

#[test]
fn client_certificates_from_the_url() {
    let dir = certificates();
    let r = tls_redis(&dir.0, true);
    let base = format!(
        "rediss://:{PASSWORD}@127.0.0.1:{}?budget_ms=500&ca_file={}",
        r.port,
        path(&dir, "ca.crt")
    );
    let (without, messages) = store(&base);
    assert!(matches!(without.get(&key(1), now()), Lookup::Unavailable));
    assert!(without.remote_stats().errors >= 1);
    let (with, _) = store(&format!(
        "{base}&cert_file={}&key_file={}",
        path(&dir, "client.crt"),
        path(&dir, "client.key")
    ));
    with.put(key(1), Value::new(b"record".to_vec()), now() + 300)
        .unwrap();
    assert!(with.flush(Duration::from_secs(5)));
    assert_eq!(with.remote_stats().writes, 1, "{:?}", with.remote_stats());
    // A store with nothing in its local tier: the record comes from Redis.
    let (fresh, _) = store(&format!(
        "{base}&cert_file={}&key_file={}",
        path(&dir, "client.crt"),
        path(&dir, "client.key")
    ));
    assert!(hit(fresh.get(&key(1), now())), "{:?}", fresh.remote_stats());
    assert!(!messages.lock().unwrap().join("\n").contains(PASSWORD));
}

#[test]
fn tls_parameters_are_checked_and_keys_never_quoted() {
    let dir = certificates();
    for (url, says) in [
        ("rediss://127.0.0.1:1".to_owned(), "needs ca_file"),
        (
            format!("redis://127.0.0.1:1?ca_file={}", path(&dir, "ca.crt")),
            "is for rediss://",
        ),
        (
            format!(
                "rediss://127.0.0.1:1?ca_file={}&cert_file={}",
                path(&dir, "ca.crt"),
                path(&dir, "client.crt")
            ),
            "go together",
        ),
    ] {
        let e = RedisSpec::parse(&url).unwrap_err();
        assert!(e.contains(says), "{url}: {e}");
    }
    // A key file that is not a key: its path is named, its content never.
    std::fs::write(dir.0.join("bad.key"), "SECRET-KEY-MATERIAL-not-pem").unwrap();
    let spec = RedisSpec::parse(&format!(
        "rediss://:{PASSWORD}@127.0.0.1:1?ca_file={}&cert_file={}&key_file={}",
        path(&dir, "ca.crt"),
        path(&dir, "client.crt"),
        path(&dir, "bad.key")
    ))
    .unwrap();
    let e = redis_store(&spec, &["a.test"], seal_keys(&[7; 32]), None)
        .err()
        .expect("a bad key file is refused");
    assert!(e.contains("bad.key"), "{e}");
    assert!(
        !e.contains("SECRET-KEY-MATERIAL") && !e.contains(PASSWORD),
        "{e}"
    );
    let e = redis_store(
        &RedisSpec::parse(&format!(
            "rediss://127.0.0.1:1?ca_file={}",
            path(&dir, "missing.crt")
        ))
        .unwrap(),
        &["a.test"],
        seal_keys(&[7; 32]),
        None,
    )
    .err()
    .expect("a missing CA file is refused");
    assert!(e.contains("missing.crt"), "{e}");
}
