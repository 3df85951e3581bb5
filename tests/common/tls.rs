//! A certificate authority for TLS tests (rcgen), and clients that trust it.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;
use tokio_rustls::TlsConnector;

/// A certificate authority for the tests, trusted by their clients.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub der: CertificateDer<'static>,
    /// The CA's certificate, PEM.
    pem: String,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "Portcullis test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { der: cert.der().clone(), pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A certificate for 127.0.0.1 and localhost, named `name`, valid from
    /// `days_from_now.0` to `days_from_now.1` days from now; PEM certificate and key.
    pub fn leaf(&self, name: &str, days_from_now: (i64, i64)) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(days_from_now.0);
        params.not_after = now + time::Duration::days(days_from_now.1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> String {
        self.pem.clone()
    }

    pub fn client(&self, alpn: &[u8]) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        TlsConnector::from(Arc::new(config))
    }
}

/// An upstream over TLS with the certificate `cert_pem`/`key_pem`, answering as
/// [`crate::common::upstream::echo`] does, plus `x-test-client-cert`: the common name of
/// the client's certificate, when it sent one. With `clients_of`, a client certificate
/// from that CA is required. It speaks HTTP/1.1 only. Returns its address and a count
/// of the TLS connections it accepted.
pub async fn echo_over_tls(
    cert_pem: &str,
    key_pem: &str,
    clients_of: Option<&TestCa>,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    echo_over_tls_on("127.0.0.1:0", cert_pem, key_pem, clients_of, false).await
}

/// As [`echo_over_tls`], listening on `bind` (`[::1]:0` for IPv6); with `http2`, it
/// offers `h2` by ALPN too.
pub async fn echo_over_tls_on(
    bind: &str,
    cert_pem: &str,
    key_pem: &str,
    clients_of: Option<&TestCa>,
    http2: bool,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use rustls::pki_types::PrivateKeyDer;
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().unwrap();
    let builder = match clients_of {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der.clone()).unwrap();
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else { return };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let client = stream.get_ref().1.peer_certificates().and_then(|certs| {
                    let (_, parsed) = x509_parser::parse_x509_certificate(certs[0].as_ref()).ok()?;
                    Some(parsed.subject().iter_common_name().next()?.as_str().ok()?.to_owned())
                });
                let service = hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                    if let Some(name) = &client {
                        request.headers_mut().insert("x-test-client-cert", name.parse().unwrap());
                    }
                    async move { Ok::<_, std::convert::Infallible>(crate::common::upstream::describe(&request)) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                let _ = builder.serve_connection(io, service).await;
            });
        }
    });
    (addr, accepted)
}
