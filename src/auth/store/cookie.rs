//! The cookie store: the sealed session is the cookie (chunked, `session.rs`).
//!
//! A cookie lives in the browser, so a sign-out cannot take back a copy somebody kept:
//! the session id is refused until the session would have ended anyway
//! (`signed_out.rs`). With `[redis]`, the sign-out is also written to
//! `{prefix}signed_out:{sid}` (expiring with the session) and announced to the other
//! replicas, which refuse it within the event's delivery; a replica that (re)subscribes
//! reads them all again. Without Redis, or while it is down, a sign-out holds in this
//! process only (logged).

use super::super::opened::OpenedSessions;
use super::super::session::Session;
use super::super::signed_out::SignedOut;
use super::{Presented, Sealing, StoreUnavailable};
use crate::auth::cookies::RequestCookies;
use crate::cluster::events::Event;
use crate::cluster::{Cluster, When};
use std::sync::Arc;
use std::time::Duration;

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
        let ttl = Duration::from_secs(session.expires_at.saturating_sub(now).max(1));
        let key = cluster.key("signed_out", &session.sid);
        let shared = async {
            cluster.set(&key, session.expires_at.to_string().as_bytes(), ttl, When::Always).await?;
            cluster.publish(&Event::SignedOut { sid: session.sid.clone(), until: session.expires_at }).await
        };
        // Degraded, not refused: the user is signed out here and the cookies cleared.
        if let Err(err) = shared.await {
            tracing::error!(error = %err, "the sign-out holds on this replica only: Redis is unavailable");
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
        let now = crate::oidc::now_secs();
        let pattern = cluster.key("signed_out", "*");
        let mut cursor = 0u64;
        for _ in 0..MAX_SCAN_ROUNDS {
            let mut scan = ::redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000);
            let (next, keys): (u64, Vec<String>) = match cluster.run("scan", &scan).await {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(error = %err, "could not read the sign-outs of the other replicas");
                    return;
                }
            };
            if !keys.is_empty() {
                let values: Vec<Option<String>> = match cluster.run("mget", ::redis::cmd("MGET").arg(&keys)).await {
                    Ok(values) => values,
                    Err(err) => {
                        tracing::warn!(error = %err, "could not read the sign-outs of the other replicas");
                        return;
                    }
                };
                let prefix = cluster.key("signed_out", "");
                for (key, until) in keys.iter().zip(values) {
                    if let (Some(sid), Some(until)) = (key.strip_prefix(&prefix), until.and_then(|u| u.parse().ok())) {
                        self.signed_out.insert(sid, until, now);
                    }
                }
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}
