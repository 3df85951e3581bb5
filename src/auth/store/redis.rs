//! The Redis store: the browser holds a sealed handle (one cookie of about 100 bytes),
//! the session record lives in Redis under `{prefix}session:{sid}`.
//!
//! Rules:
//! 1. The handle is sealed like a session cookie (same keys, same cookie name), so a
//!    forged or tampered handle is refused without a round trip, and a handle that has
//!    passed its session's end is refused by its own `exp`.
//! 2. The record is sealed with the cookie keys too (a Redis dump holds no usable
//!    token) and expires with the session (`PX` = its remaining lifetime).
//! 3. Records read are cached in this process, so a repeat request makes no round
//!    trip. The cache is only trusted while this replica follows the other replicas'
//!    events (`cluster/events.rs`): a record changed or deleted elsewhere is dropped from
//!    it within the event's delivery, and without the subscription every request reads
//!    Redis. A read that raced with an event is not cached (the `epoch`).
//! 4. A refreshed record is written only if it still exists (`SET … XX`): a refresh
//!    that finishes after a sign-out does not bring the session back.
//! 5. Redis unreachable or slow: `StoreUnavailable` (a 503), never a logout.
//! 6. Each session is also listed under its user and its provider session
//!    (`{prefix}sessions_of:{sub|sid}:{id}`, written with the record in one
//!    transaction), so a back-channel logout or a revocation finds the records to delete.

use super::super::denylist::Denied;
use super::super::refresh::Exchanged;
use super::super::session::Session;
use super::{Presented, Sealing, StoreUnavailable};
use crate::auth::cookies::RequestCookies;
use crate::cluster::events::Event;
use crate::cluster::{Cluster, When, set_command};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Records kept in memory per process (each a few kilobytes: a Cognito session is
/// about 4 KB), which bounds the cache at about 16 MiB.
const CACHED_RECORDS: usize = 4096;
/// The name records are sealed under (the seal binds it in: a record never opens as a
/// cookie, nor a cookie as a record).
const RECORD: &str = "portcullis-session-record";

/// What the session cookie holds with this store.
#[derive(Serialize, Deserialize)]
struct Handle {
    sid: String,
    /// The session's end (Unix seconds).
    exp: u64,
}

pub struct RedisStore {
    cluster: Arc<Cluster>,
    cache: quick_cache::sync::Cache<String, Arc<Session>>,
    /// Bumped by every invalidation (rule 3).
    epoch: AtomicU64,
}

impl RedisStore {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        Self { cluster, cache: quick_cache::sync::Cache::new(CACHED_RECORDS), epoch: AtomicU64::new(0) }
    }

    pub fn presented(&self, cookies: &RequestCookies, sealing: &Sealing, now: u64) -> Presented {
        let Some(parts) = Session::sealed(cookies, sealing.jar) else { return Presented::Nothing };
        let Some(plain) = sealing.sealer.open(sealing.jar.session_name(), &parts.concat()) else {
            return Presented::Nothing;
        };
        let Ok(handle) = serde_json::from_slice::<Handle>(&plain) else { return Presented::Nothing };
        if handle.exp <= now {
            return Presented::Nothing;
        }
        if self.cluster.following()
            && let Some(session) = self.cache.get(&handle.sid)
        {
            return if session.is_live(now) { Presented::Session(session) } else { Presented::Nothing };
        }
        Presented::Handle(handle.sid)
    }

    /// The record of `sid`: `None` when it has ended or was signed out.
    pub async fn fetch(
        &self,
        sid: &str,
        sealing: &Sealing<'_>,
        now: u64,
    ) -> Result<Option<Arc<Session>>, StoreUnavailable> {
        let (epoch, following) = (self.epoch.load(Ordering::Acquire), self.cluster.following());
        let record = self.cluster.get(&self.cluster.key("session", sid)).await.map_err(|err| {
            tracing::warn!(error = %err, "could not read a session from Redis");
            StoreUnavailable
        })?;
        let Some(record) = record else { return Ok(None) };
        let session = std::str::from_utf8(&record)
            .ok()
            .and_then(|sealed| sealing.sealer.open(RECORD, sealed))
            .and_then(|plain| serde_json::from_slice::<Session>(&plain).ok());
        let Some(session) = session.filter(|session| session.sid == sid && session.is_live(now)) else {
            // Sealed under keys no longer configured, or not a record of ours.
            tracing::debug!("a session record in Redis does not open under the cookie keys");
            return Ok(None);
        };
        let session = Arc::new(session);
        if following && self.epoch.load(Ordering::Acquire) == epoch {
            self.cache.insert(sid.to_owned(), session.clone());
        }
        Ok(Some(session))
    }

    /// Writes the record of a session just signed in, lists it under its user and its
    /// provider session (rule 6), and puts its handle into `response`.
    pub async fn create(
        &self,
        session: &Session,
        request: &HeaderMap,
        response: &mut HeaderMap,
        sealing: &Sealing<'_>,
        now: u64,
    ) -> Result<bool, StoreUnavailable> {
        let lifetime = session.expires_at.saturating_sub(now);
        let ttl = Duration::from_secs(lifetime.max(1));
        let record = self.cluster.key("session", &session.sid);
        let mut pipeline = ::redis::pipe();
        pipeline.atomic();
        pipeline
            .add_command(set_command(&record, self.sealed(session, sealing).as_bytes(), ttl, When::Absent))
            .ignore();
        let user = Denied::User(session.sub.clone());
        let provider_session = session.idp_sid.clone().map(Denied::ProviderSession);
        for named in std::iter::once(&user).chain(provider_session.as_ref()) {
            let index = self.index(named);
            pipeline.cmd("SADD").arg(&index).arg(&session.sid).ignore();
            // Every session lives as long (`session.lifetime`): the newest sets the end.
            pipeline.cmd("PEXPIRE").arg(&index).arg(ttl.as_millis() as u64).ignore();
        }
        self.cluster.run_pipeline::<()>("set", &pipeline).await.map_err(|err| {
            tracing::error!(error = %err, "could not write a session to Redis");
            StoreUnavailable
        })?;
        let handle = serde_json::to_vec(&Handle { sid: session.sid.clone(), exp: session.expires_at })
            .expect("a handle serializes");
        let sealed = sealing.sealer.seal(sealing.jar.session_name(), &handle);
        Ok(Session::write_sealed(&sealed, request, response, sealing.jar, lifetime))
    }

    /// Deletes the records of every session listed under `who` (rule 6); how many there
    /// were. A session signed in meanwhile is listed after this read, so it stays.
    pub async fn revoke(&self, who: &Denied) -> Result<usize, StoreUnavailable> {
        let unavailable = |err: crate::cluster::ClusterError| {
            tracing::error!(error = %err, "could not revoke sessions in Redis");
            StoreUnavailable
        };
        let index = self.index(who);
        let sids: Vec<String> =
            self.cluster.run("smembers", ::redis::cmd("SMEMBERS").arg(&index)).await.map_err(unavailable)?;
        if sids.is_empty() {
            return Ok(0);
        }
        let records: Vec<String> = sids.iter().map(|sid| self.cluster.key("session", sid)).collect();
        let mut pipeline = ::redis::pipe();
        pipeline.atomic().cmd("DEL").arg(&records).cmd("SREM").arg(&index).arg(&sids).ignore();
        let (deleted,): (usize,) = self.cluster.run_pipeline("del", &pipeline).await.map_err(unavailable)?;
        for sid in &sids {
            self.forget(sid);
            self.announce(sid).await;
        }
        Ok(deleted)
    }

    /// Whether the record of `session` is gone (a Redis that does not answer ends
    /// nothing).
    pub async fn has_ended(&self, session: &Session, sealing: &Sealing<'_>, now: u64) -> bool {
        if !session.is_live(now) {
            return true;
        }
        if self.cluster.following() && self.cache.get(&session.sid).is_some() {
            return false;
        }
        matches!(self.fetch(&session.sid, sealing, now).await, Ok(None))
    }

    /// Saves what a refresh this replica made came to (rule 4), for every replica.
    pub async fn settle_refresh(&self, before: &Session, exchanged: Exchanged, sealing: &Sealing<'_>) -> Exchanged {
        match exchanged {
            Exchanged::Refreshed(session) => match self.rewrite(&session, sealing).await {
                Ok(true) => {
                    self.announce(&session.sid).await;
                    Exchanged::Refreshed(session)
                }
                Ok(false) => {
                    tracing::info!(sub = %before.sub, "the session was signed out during its refresh");
                    Exchanged::Ended
                }
                Err(_) => {
                    // The provider has answered (and may have rotated the refresh token):
                    // this request goes on with it, the other replicas cannot see it.
                    tracing::error!("a refreshed session could not be saved in Redis; only this request has it");
                    Exchanged::Refreshed(session)
                }
            },
            Exchanged::Ended => {
                if self.end(before).await.is_err() {
                    tracing::warn!("an ended session's record could not be deleted; it expires by itself");
                }
                Exchanged::Ended
            }
            other => other,
        }
    }

    /// Deletes the record: every copy of the handle is a signed-out request from now
    /// on, on every replica.
    pub async fn end(&self, session: &Session) -> Result<(), StoreUnavailable> {
        self.forget(&session.sid);
        self.cluster.del(&self.cluster.key("session", &session.sid)).await.map_err(|err| {
            tracing::error!(error = %err, "could not delete a session from Redis");
            StoreUnavailable
        })?;
        self.announce(&session.sid).await;
        Ok(())
    }

    pub fn event(&self, event: Event) {
        if let Event::Session { sid } = event {
            self.forget(&sid);
        }
    }

    /// The subscription was (re)made: anything cached may have changed meanwhile.
    pub fn resync(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.clear();
    }

    fn forget(&self, sid: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.remove(sid);
    }

    /// `{prefix}sessions_of:{kind:id}`: the sessions of a user or a provider session.
    fn index(&self, who: &Denied) -> String {
        self.cluster.key("sessions_of", &who.encode())
    }

    fn sealed(&self, session: &Session, sealing: &Sealing<'_>) -> String {
        let plain = serde_json::to_vec(session).expect("a session serializes");
        sealing.sealer.seal(RECORD, &plain)
    }

    /// A refreshed record: `SET {prefix}session:{sid} <sealed record> PX <rest of the
    /// session> XX` (rule 4); whether the record was still there.
    async fn rewrite(&self, session: &Session, sealing: &Sealing<'_>) -> Result<bool, ()> {
        let sealed = self.sealed(session, sealing);
        let lifetime = Duration::from_secs(session.expires_at.saturating_sub(crate::oidc::now_secs()).max(1));
        let key = self.cluster.key("session", &session.sid);
        self.cluster.set(&key, sealed.as_bytes(), lifetime, When::Present).await.map_err(|err| {
            tracing::error!(error = %err, "could not write a session to Redis");
        })
    }

    /// Tells the other replicas to drop their copy (best effort: a replica that misses
    /// it has lost its subscription, and then trusts no cached record).
    async fn announce(&self, sid: &str) {
        if let Err(err) = self.cluster.publish(&Event::Session { sid: sid.to_owned() }).await {
            tracing::warn!(error = %err, "could not tell the other replicas about a session change");
        }
    }
}
