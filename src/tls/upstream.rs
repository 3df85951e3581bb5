//! TLS to `https://` upstreams: the server's certificate verified against the system's
//! roots or a configured CA bundle, SNI from the upstream's host, and optionally a
//! client certificate (mutual TLS). ALPN offers `h2` and `http/1.1`: an upstream that
//! picks `h2` gets one multiplexed connection per worker (`proxy/client.rs`); protocol
//! upgrades go over connections that offer `http/1.1` only ([`http1_only`]).

use super::certificate::{self, CertificateError, TlsFiles};
use rustls::crypto::aws_lc_rs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// What an `https://` route's connections trust and present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTlsFiles {
    /// PEM bundle of the CAs to trust; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The client certificate and key presented to the upstream (mutual TLS).
    pub client: Option<TlsFiles>,
}

/// An `https://` route's TLS client: what it trusts and presents (shared by the routes
/// with the same files), and the name its upstream's certificate must carry.
#[derive(Debug, Clone)]
pub struct UpstreamTlsClient {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

/// The name to verify (and send as SNI) for a URL's `host`: an IP address, brackets
/// of an IPv6 literal removed, or a DNS name.
pub fn server_name(host: &str) -> Option<rustls::pki_types::ServerName<'static>> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    rustls::pki_types::ServerName::try_from(bare.to_owned()).ok()
}

/// The TLS client configuration of `files`; every file read and checked now.
pub fn client_config(files: &UpstreamTlsFiles) -> Result<Arc<rustls::ClientConfig>, CertificateError> {
    let mut roots = rustls::RootCertStore::empty();
    match &files.ca_file {
        Some(path) => {
            for certificate in certificate::load_authorities(path)? {
                roots.add(certificate).map_err(|err| CertificateError {
                    which: certificate::Which::Authorities,
                    path: path.clone(),
                    problem: format!("holds a certificate that cannot be a trust anchor ({err})"),
                })?;
            }
        }
        None => {
            // Unreadable system certificates are skipped, as every TLS client does.
            let (added, _ignored) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                tracing::warn!("no system CA certificates found: https upstreams need upstream.tls.ca_file");
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots);
    let mut config = match &files.client {
        Some(client) => {
            let (certified, key) = certificate::load_pair(client, SystemTime::now())?;
            builder.with_client_auth_cert(certified.cert.clone(), key).map_err(|err| CertificateError {
                which: certificate::Which::Key,
                path: client.key_file.clone(),
                problem: format!("cannot be used as a client certificate ({err})"),
            })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `config`, offering `http/1.1` only.
pub fn http1_only(config: &Arc<rustls::ClientConfig>) -> Arc<rustls::ClientConfig> {
    let mut http1 = (**config).clone();
    http1.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(http1)
}
