//! The served certificate, replaced when its files change: a Kubernetes Secret update
//! or a cert-manager renewal takes effect without a restart, and open connections keep
//! the certificate they were set up with.
//!
//! The files are looked at every [`EVERY`]: their resolved path (a Secret volume swaps
//! a `..data` symlink), inode, size, and modification and change times (the change time
//! catches a rewrite that keeps the size and mtime, as `cp -p` does). A change is loaded
//! and checked like at startup (`certificate.rs`); files that do not load are logged
//! once and tried again on every look until they do (a certificate issued a moment ago
//! may not be valid yet), while the previous certificate stays in use. A cert and key
//! written one after the other may be caught in between: logged once, loaded next time.

use super::certificate::{self, TlsFiles};
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the files are looked at.
pub const EVERY: Duration = Duration::from_secs(1);

/// What every new handshake is given.
#[derive(Debug)]
pub struct ServedCertificate(ArcSwap<CertifiedKey>);

impl ServedCertificate {
    pub fn new(first: Arc<CertifiedKey>) -> Self {
        Self(ArcSwap::new(first))
    }
}

impl ResolvesServerCert for ServedCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Replaces `served` whenever `files` change from `loaded` (the stamp taken before the
/// served certificate was read); runs until dropped.
pub async fn follow(served: Arc<ServedCertificate>, files: TlsFiles, loaded: Stamp) {
    let mut seen = loaded;
    let mut refused = false;
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = stamp(&files);
        let changed = now != seen;
        if !changed && !refused {
            continue;
        }
        seen = now;
        match certificate::load(&files, SystemTime::now()) {
            Ok(key) => {
                served.0.store(key);
                refused = false;
                tracing::info!(cert_file = %files.cert_file.display(), "TLS certificate reloaded");
            }
            // Logged when the files change, not on every retry.
            Err(err) if changed => {
                refused = true;
                tracing::warn!(
                    error = %err,
                    "the changed TLS certificate or key was refused: still serving the previous certificate"
                );
            }
            Err(_) => {}
        }
    }
}

/// What tells that a file changed, for both files.
pub type Stamp = [Option<(PathBuf, u64, u64, SystemTime, (i64, i64))>; 2];

pub fn stamp(files: &TlsFiles) -> Stamp {
    let of = |path: &PathBuf| {
        let resolved = std::fs::canonicalize(path).ok()?;
        let meta = std::fs::metadata(&resolved).ok()?;
        Some((resolved, meta.ino(), meta.len(), meta.modified().ok()?, (meta.ctime(), meta.ctime_nsec())))
    };
    [of(&files.cert_file), of(&files.key_file)]
}
