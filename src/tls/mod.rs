//! TLS with rustls and the aws-lc-rs provider, TLS 1.2 and 1.3: on the main listener
//! (ALPN `h2` and `http/1.1`, the certificate reloaded when its files change:
//! `reload.rs`), and to `https://` upstreams (`upstream.rs`).

pub mod certificate;
pub mod redirect;
pub mod reload;
pub mod upstream;

pub use certificate::{CertificateError, TlsFiles};

use reload::ServedCertificate;
use rustls::crypto::aws_lc_rs;
use std::sync::Arc;
use std::time::SystemTime;

/// The listener's TLS: what accepts handshakes, and the certificate it serves.
#[derive(Clone)]
pub struct ServerTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub served: Arc<ServedCertificate>,
    /// The files as they were just before they were read, for [`reload::follow`].
    pub loaded: reload::Stamp,
}

impl ServerTls {
    /// Loads the certificate of `files` (checked as `check` does).
    pub fn load(files: &TlsFiles) -> Result<Self, CertificateError> {
        let loaded = reload::stamp(files);
        let served = Arc::new(ServedCertificate::new(certificate::load(files, SystemTime::now())?));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(served.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), served, loaded })
    }
}
