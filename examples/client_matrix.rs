//! The Rust clients of the client matrix (`tests/blackbox/clients.sh`): N sequential HTTPS
//! connections to one server, each client keeping its sessions its own way, one line per
//! connection with the client's own "resumed" indication and the first line of the response body.
//!
//! ```text
//! client_matrix boring|rustls PORT SNI COUNT
//! ```
//!
//! - `boring`: BoringSSL as Chrome uses it: sessions come from the new-session callback (TLS 1.3
//!   tickets after the handshake), the newest is offered, a TLS 1.3 session is used once (removed
//!   when offered), at most two are kept. Resumed: `SSL_session_reused`.
//! - `rustls`: rustls with its default resumption (in-memory store, TLS 1.3 tickets used once,
//!   TLS 1.2 session ids and tickets). Resumed: `handshake_kind() == Resumed`.
//!
//! Certificates are not verified (the test's certificates are self-signed): this is a test client.
//! Output lines: `conn=I resumed=0|1 proto=TLSv1.x body=FIRST_BODY_LINE`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn request(sni: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n")
}

/// The first non-empty line after the headers.
fn body_line(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    body.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("-")
        .trim()
        .to_string()
}

fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.set_write_timeout(Some(Duration::from_secs(10))).ok();
    s
}

fn boring_client(port: u16, sni: &str, count: usize) {
    use boring::ssl::{
        Ssl, SslContext, SslMethod, SslSession, SslSessionCacheMode, SslVerifyMode, SslVersion,
    };
    let store: Arc<Mutex<Vec<SslSession>>> = Arc::new(Mutex::new(Vec::new()));
    let mut b = SslContext::builder(SslMethod::tls()).expect("ctx");
    b.set_verify(SslVerifyMode::NONE);
    b.set_session_cache_mode(SslSessionCacheMode::CLIENT);
    let keep = Arc::clone(&store);
    b.set_new_session_callback(move |_, session| {
        let mut s = keep.lock().unwrap();
        s.push(session);
        // Chrome keeps a couple of tickets per origin: the newest two.
        while s.len() > 2 {
            s.remove(0);
        }
    });
    let ctx = b.build();
    for i in 1..=count {
        let mut ssl = Ssl::new(&ctx).expect("ssl");
        ssl.set_hostname(sni).expect("sni");
        {
            let mut s = store.lock().unwrap();
            if let Some(newest) = s.last().cloned() {
                // SAFETY: the session was made by a connection on this same context.
                unsafe { ssl.set_session(&newest).expect("set_session") };
                if newest.protocol_version() == SslVersion::TLS1_3 {
                    s.pop(); // single use, as BoringSSL's SSL_SESSION_should_be_single_use
                }
            }
        }
        let mut stream = match ssl.connect(tcp(port)) {
            Ok(s) => s,
            Err(e) => {
                println!("conn={i} resumed=0 proto=- body=handshake-failed:{e}");
                continue;
            }
        };
        let resumed = stream.ssl().session_reused();
        let proto = stream.ssl().version_str().to_string();
        let mut response = Vec::new();
        let _ = stream.write_all(request(sni).as_bytes());
        let _ = stream.read_to_end(&mut response);
        let _ = stream.shutdown();
        println!(
            "conn={i} resumed={} proto={proto} body={}",
            u8::from(resumed),
            body_line(&response)
        );
    }
}

mod rustls_client {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use std::sync::Arc;

    /// Accepts any certificate (self-signed test certificates), checks the handshake signatures.
    #[derive(Debug)]
    pub struct AnyCert(pub Arc<CryptoProvider>);

    impl ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

fn rustls_client(port: u16, sni: &str, count: usize) {
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, HandshakeKind, StreamOwned};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(rustls_client::AnyCert(provider)))
        .with_no_client_auth();
    // config.resumption is left at its default: the in-memory ticket and session store.
    let config = Arc::new(config);
    let name = ServerName::try_from(sni.to_string()).expect("server name");
    for i in 1..=count {
        let conn = ClientConnection::new(Arc::clone(&config), name.clone()).expect("conn");
        let mut stream = StreamOwned::new(conn, tcp(port));
        let mut response = Vec::new();
        let mut failed = None;
        if let Err(e) = stream.write_all(request(sni).as_bytes()) {
            failed = Some(e);
        } else if let Err(e) = stream.read_to_end(&mut response) {
            // A server that closes without close_notify: keep what was read.
            if response.is_empty() {
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            println!("conn={i} resumed=0 proto=- body=failed:{e}");
            continue;
        }
        let resumed = stream.conn.handshake_kind() == Some(HandshakeKind::Resumed);
        let proto = match stream.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "-",
        };
        stream.conn.send_close_notify();
        let _ = stream.flush();
        println!(
            "conn={i} resumed={} proto={proto} body={}",
            u8::from(resumed),
            body_line(&response)
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: client_matrix boring|rustls PORT SNI COUNT");
        std::process::exit(2);
    }
    let port: u16 = args[2].parse().expect("PORT");
    let count: usize = args[4].parse().expect("COUNT");
    match args[1].as_str() {
        "boring" => boring_client(port, &args[3], count),
        "rustls" => rustls_client(port, &args[3], count),
        other => {
            eprintln!("client_matrix: unknown client {other}");
            std::process::exit(2);
        }
    }
}
