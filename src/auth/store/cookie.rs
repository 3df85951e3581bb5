//! The cookie store: the sealed session is the cookie (chunked, `session.rs`).
//!
//! A cookie lives in the browser, so a sign-out cannot take back a copy somebody kept:
//! the session id is refused until the session would have ended anyway
//! (`signed_out.rs`). With `[redis]`, the sign-out is also written to
//! `{prefix}signed_out:{sid}` (expiring with the session) and announced to the other
//! replicas, which refuse it within the event's delivery; a replica that (re)subscribes
//! reads them all again. Without Redis, a sign-out holds in this process only; while
//! Redis is down, until it answers again (tried every second, logged).

use super::super::opened::OpenedSessions;
use super::super::session::Session;
use super::super::signed_out::SignedOut;
use super::{Presented, Sealing, StoreUnavailable};
use crate::auth::cookies::RequestCookies;
use crate::cluster::events::Event;
use crate::cluster::{Cluster, When};
use std::sync::Arc;
use std::time::Duration;

/// How often a sign-out that could not be shared is tried again.
const RETRY_SIGN_OUT: Duration = Duration::from_secs(1);

/// `{prefix}signed_out:{sid}` until the session's end, and the event for the replicas
/// following now.
async fn share_sign_out(cluster: &Cluster, sid: &str, until: u64) -> Result<(), crate::cluster::ClusterError> {
    let ttl = Duration::from_secs(until.saturating_sub(crate::oidc::now_secs()).max(1));
    cluster.set(&cluster.key("signed_out", sid), until.to_string().as_bytes(), ttl, When::Always).await?;
    cluster.publish(&Event::SignedOut { sid: sid.to_owned(), until }).await
}

/// Bound on the keys read when resynchronizing sign-outs (SCAN rounds of 1000).
const MAX_SCAN_ROUNDS: usize = 1000;

pub struct CookieStore {
    opened: OpenedSessions,
    signed_out: SignedOut,
    cluster: Option<Arc<Cluster>>,
}

impl CookieStore {
    pub fn new(cluster: Option<Arc<Cluster>>) -> Self {
        Self { opened: OpenedSessions::default(), signed_out: SignedOut::default(), cluster }
    }

    pub fn presented(&self, cookies: &RequestCookies, sealing: &Sealing, now: u64) -> Presented {
        let Some(sealed) = Session::sealed(cookies, sealing.jar) else { return Presented::Nothing };
        let opened = self.opened.get_or_open(&sealed, |sealed| Session::open(sealed, sealing.jar, sealing.sealer));
        match opened {
            Some(session) if session.is_live(now) && !self.signed_out.contains(&session.sid, now) => {
                Presented::Session(session)
            }
            _ => Presented::Nothing,
        }
    }

    pub async fn end(&self, session: &Session, now: u64) -> Result<(), StoreUnavailable> {
        self.signed_out.insert(&session.sid, session.expires_at, now);
        let Some(cluster) = &self.cluster else { return Ok(()) };
        // Degraded, not refused: the user is signed out here and the cookies cleared;
        // the other replicas are told once Redis answers again.
        if let Err(err) = share_sign_out(cluster, &session.sid, session.expires_at).await {
            tracing::error!(
                error = %err,
                "the sign-out holds on this replica only until Redis answers again; retrying every second"
            );
            let (cluster, sid, until) = (cluster.clone(), session.sid.clone(), session.expires_at);
            tokio::spawn(async move {
                while crate::oidc::now_secs() < until {
                    tokio::time::sleep(RETRY_SIGN_OUT).await;
                    if share_sign_out(&cluster, &sid, until).await.is_ok() {
                        tracing::info!("a sign-out made while Redis was unavailable now holds on every replica");
                        return;
                    }
                }
            });
        }
        Ok(())
    }

    pub fn event(&self, event: Event) {
        if let Event::SignedOut { sid, until } = event {
            self.signed_out.insert(&sid, until, crate::oidc::now_secs());
        }
    }

    /// Reads every sign-out again from Redis.
    pub async fn resync(&self) {
        let Some(cluster) = &self.cluster else { return };
        if let Err(err) = self.read_sign_outs(cluster).await {
            tracing::warn!(error = %err, "could not read the sign-outs of the other replicas");
        }
    }

    async fn read_sign_outs(&self, cluster: &Cluster) -> Result<(), crate::cluster::ClusterError> {
        let now = crate::oidc::now_secs();
        let (pattern, prefix) = (cluster.key("signed_out", "*"), cluster.key("signed_out", ""));
        let mut cursor = 0u64;
        for _ in 0..MAX_SCAN_ROUNDS {
            let mut scan = ::redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000);
            let (next, keys): (u64, Vec<String>) = cluster.run("scan", &scan).await?;
            if !keys.is_empty() {
                let values: Vec<Option<String>> = cluster.run("mget", ::redis::cmd("MGET").arg(&keys)).await?;
                for (key, until) in keys.iter().zip(values) {
                    if let (Some(sid), Some(until)) = (key.strip_prefix(&prefix), until.and_then(|u| u.parse().ok())) {
                        self.signed_out.insert(sid, until, now);
                    }
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(())
    }
}
