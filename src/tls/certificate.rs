//! The gateway's own certificate: a PEM chain and its private key, read and checked
//! together, so that `check`, startup and a reload refuse the same mistakes and name
//! the file and the problem: unreadable, no certificate or key in it, a key that
//! belongs to another certificate, a certificate outside its validity period.

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the certificate and its key are read from (`[server.tls]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the certificate first, then its chain.
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Which file a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Certificate,
    Key,
    /// A bundle of CA certificates to trust (`tls/upstream.rs`).
    Authorities,
}

#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", .path.display())]
pub struct CertificateError {
    pub which: Which,
    pub path: PathBuf,
    pub problem: String,
}

/// The certificate of `files`, checked at `now`.
pub fn load(files: &TlsFiles, now: SystemTime) -> Result<Arc<CertifiedKey>, CertificateError> {
    load_pair(files, now).map(|(certified, _)| certified)
}

/// As [`load`], with the private key itself (a TLS client's configuration takes it).
pub fn load_pair(
    files: &TlsFiles,
    now: SystemTime,
) -> Result<(Arc<CertifiedKey>, PrivateKeyDer<'static>), CertificateError> {
    let fail = |which, problem: String| {
        let path = match which {
            Which::Key => files.key_file.clone(),
            _ => files.cert_file.clone(),
        };
        CertificateError { which, path, problem }
    };
    let cert_pem = read(&files.cert_file).map_err(|problem| fail(Which::Certificate, problem))?;
    let key_pem = read(&files.key_file).map_err(|problem| fail(Which::Key, problem))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| fail(Which::Certificate, format!("not a PEM certificate chain ({err})")))?;
    let Some(leaf) = chain.first() else {
        return Err(fail(Which::Certificate, "holds no PEM certificate (BEGIN CERTIFICATE)".into()));
    };
    validity(leaf, now).map_err(|problem| fail(Which::Certificate, problem))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|err| fail(Which::Key, format!("holds no usable PEM private key ({err})")))?;
    let signing = aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|err| fail(Which::Key, format!("is not a supported private key ({err})")))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // Unknown: the key type cannot tell its public key; the handshake would.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok((Arc::new(certified), key))
        }
        Err(_) => Err(fail(
            Which::Key,
            format!("does not match the certificate in {} (a key of another certificate?)", files.cert_file.display()),
        )),
    }
}

/// The CA certificates of a PEM bundle.
pub fn load_authorities(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    let fail = |problem: String| CertificateError { which: Which::Authorities, path: path.to_owned(), problem };
    let pem = read(path).map_err(fail)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| fail(format!("not a PEM certificate bundle ({err})")))?;
    if certificates.is_empty() {
        return Err(fail("holds no PEM certificate (BEGIN CERTIFICATE)".into()));
    }
    Ok(certificates)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|err| format!("cannot be read ({err})"))
}

/// The leaf certificate's validity period holds at `now`.
fn validity(leaf: &CertificateDer<'_>, now: SystemTime) -> Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|err| format!("the first certificate does not parse ({err})"))?;
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let validity = cert.validity();
    if now > validity.not_after.timestamp() {
        return Err(format!("the certificate expired on {}", validity.not_after));
    }
    if now < validity.not_before.timestamp() {
        return Err(format!("the certificate is not valid before {}", validity.not_before));
    }
    Ok(())
}
