//! The cookie store: the sealed session is the cookie (chunked, `session.rs`).
//!
//! A cookie lives in the browser, so ending a session cannot take back a copy somebody
//! kept: sign-outs, back-channel logouts and revocations are entries of the denylist
//! (`denylist.rs`), each until the sessions it names would have ended anyway. With
//! `[redis]`, each entry is also written to `{prefix}denied:{kind:id}` (expiring with
//! it) and announced to the other replicas, which refuse those sessions within the
//! event's delivery; a replica that (re)subscribes reads them all again. Without Redis,
//! an entry holds in this process only; while Redis is down, until it answers again
//! (tried every second, logged).

use super::super::denylist::{Denial, Denied, Denylist};
use super::super::opened::OpenedSessions;
use super::super::session::Session;
use super::{Presented, Sealing};
use crate::auth::cookies::RequestCookies;
use crate::cluster::events::Event;
use crate::cluster::{Cluster, When};
use std::sync::Arc;
use std::time::Duration;

/// How often an entry that could not be shared is tried again.
const RETRY_SHARING: Duration = Duration::from_secs(1);

/// `{prefix}denied:{kind:id}` = `<before_ms> <until>` until the entry's end, and the
/// event for the replicas following now.
async fn share(cluster: &Cluster, denial: &Denial) -> Result<(), crate::cluster::ClusterError> {
    let ttl = Duration::from_secs(denial.until.saturating_sub(crate::oidc::now_secs()).max(1));
    let value = format!("{} {}", denial.before_ms, denial.until);
    cluster.set(&cluster.key("denied", &denial.who.encode()), value.as_bytes(), ttl, When::Always).await?;
    cluster.publish(&Event::Denied(denial.clone())).await
}

/// Bound on the keys read when resynchronizing the denylist (SCAN rounds of 1000).
const MAX_SCAN_ROUNDS: usize = 1000;

pub struct CookieStore {
    opened: OpenedSessions,
    denylist: Denylist,
    cluster: Option<Arc<Cluster>>,
}

impl CookieStore {
    pub fn new(cluster: Option<Arc<Cluster>>) -> Self {
        Self { opened: OpenedSessions::default(), denylist: Denylist::default(), cluster }
    }

    pub fn presented(&self, cookies: &RequestCookies, sealing: &Sealing, now: u64) -> Presented {
        let Some(sealed) = Session::sealed(cookies, sealing.jar) else { return Presented::Nothing };
        let opened = self.opened.get_or_open(&sealed, |sealed| Session::open(sealed, sealing.jar, sealing.sealer));
        match opened {
            Some(session) if !self.has_ended(&session, now) => Presented::Session(session),
            _ => Presented::Nothing,
        }
    }

    pub fn has_ended(&self, session: &Session, now: u64) -> bool {
        !session.is_live(now) || self.denylist.denies(session, now)
    }

    pub async fn end(&self, session: &Session, now: u64) {
        self.deny(Denial::sign_out(session), now).await;
    }

    /// Refuses the sessions `who` names that signed in until now, until `until`;
    /// whether every replica was told.
    pub async fn revoke(&self, who: &Denied, until: u64, now: u64) -> bool {
        let denial = Denial { who: who.clone(), before_ms: crate::oidc::now_millis(), until };
        self.deny(denial, now).await
    }

    /// Whether every replica was told.
    async fn deny(&self, denial: Denial, now: u64) -> bool {
        self.denylist.insert(&denial, now);
        let Some(cluster) = &self.cluster else { return false };
        // Degraded, not refused: the sessions are refused here (and a signed-out user's
        // cookies cleared); the other replicas are told once Redis answers again.
        if let Err(err) = share(cluster, &denial).await {
            tracing::error!(
                error = %err,
                "a session end holds on this replica only until Redis answers again; retrying every second"
            );
            let cluster = cluster.clone();
            tokio::spawn(async move {
                while crate::oidc::now_secs() < denial.until {
                    tokio::time::sleep(RETRY_SHARING).await;
                    if share(&cluster, &denial).await.is_ok() {
                        tracing::info!("a session end made while Redis was unavailable now holds on every replica");
                        return;
                    }
                }
            });
            return false;
        }
        true
    }

    pub fn event(&self, event: Event) {
        if let Event::Denied(denial) = event {
            self.denylist.insert(&denial, crate::oidc::now_secs());
        }
    }

    /// Reads every entry again from Redis.
    pub async fn resync(&self) {
        let Some(cluster) = &self.cluster else { return };
        if let Err(err) = self.read_denials(cluster).await {
            tracing::warn!(error = %err, "could not read the session ends of the other replicas");
        }
    }

    async fn read_denials(&self, cluster: &Cluster) -> Result<(), crate::cluster::ClusterError> {
        let now = crate::oidc::now_secs();
        let (pattern, prefix) = (cluster.key("denied", "*"), cluster.key("denied", ""));
        let mut cursor = 0u64;
        for _ in 0..MAX_SCAN_ROUNDS {
            let mut scan = ::redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000);
            let (next, keys): (u64, Vec<String>) = cluster.run("scan", &scan).await?;
            if !keys.is_empty() {
                let values: Vec<Option<String>> = cluster.run("mget", ::redis::cmd("MGET").arg(&keys)).await?;
                for (key, value) in keys.iter().zip(values) {
                    let denial = key
                        .strip_prefix(&prefix)
                        .zip(value)
                        .and_then(|(who, value)| Denial::decode(&format!("{who} {value}")));
                    if let Some(denial) = denial {
                        self.denylist.insert(&denial, now);
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
