//! `rediss://`: the rustls client configuration made from the URL's certificate files.

use std::sync::Arc;

use super::remote::Host;
use super::resp::{self, Addr};
use super::url::TlsFiles;

/// The rustls client configuration for `files` (ring, TLS 1.2 and 1.3, no system roots: only
/// the CA file's certificates), and the name the server's certificate must carry: the URL's
/// host (an IP address or a DNS name; connections go to the resolved addresses).
pub(super) fn tls_config(files: &TlsFiles, host: &Host) -> Result<resp::Tls, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let certs = |path: &std::path::Path| -> Result<Vec<CertificateDer<'static>>, String> {
        let certs: Vec<_> = CertificateDer::pem_file_iter(path)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&files.ca_file)? {
        roots
            .add(c)
            .map_err(|e| format!("ca_file {}: {e}", files.ca_file.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match &files.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            // Never quote the key: only its path and what is wrong with it.
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("key_file {}: not a PEM private key ({e})", key.display()))?;
            builder
                .with_client_auth_cert(certs(cert)?, key)
                .map_err(|e| format!("cert_file/key_file: {e}"))?
        }
    };
    let server_name = match host {
        Host::Fixed(Addr::Tcp(a)) => ServerName::IpAddress(a.ip().into()),
        Host::Name(name, _) => ServerName::try_from(name.clone())
            .map_err(|e| format!("{name} cannot be checked against a certificate: {e}"))?,
        Host::Fixed(Addr::Unix(_)) => return Err("TLS over a Unix socket".into()),
        Host::Sentinel(..) => return Err("TLS with Sentinel is not supported".into()),
    };
    Ok(resp::Tls {
        config: Arc::new(config),
        server_name,
    })
}
