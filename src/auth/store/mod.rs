//! Where sessions live: one seam, two stores side by side. The gateway asks for "the
//! session these cookies present", "save this new session", "these are the cookies of
//! a refreshed session", "end this session"; it never learns which store answers.
//!
//! - `cookie.rs` (`session.store = "cookie"`, the default): the sealed session is the
//!   cookie, chunked; sign-outs and revocations are remembered until the sessions
//!   they name would have ended (`denylist.rs`; shared through Redis when `[redis]` is
//!   set).
//! - `redis.rs` (`"redis"`): the browser holds a sealed handle (one cookie, ~110 bytes);
//!   the sealed record lives in Redis, cached per process and kept true by the other
//!   replicas' events; a revocation deletes records.
//!
//! Either way the store only returns sessions that are live and not signed out, and a
//! store that cannot answer says so ([`StoreUnavailable`]): never a logout.

mod cookie;
mod redis;

pub use cookie::CookieStore;
pub use redis::RedisStore;

use super::cookies::{CookieJar, RequestCookies};
use super::denylist::Denied;
use super::refresh::Exchanged;
use super::session::Session;
use crate::cluster::events::Event;
use crate::session::seal::Sealer;
use http::HeaderMap;
use std::sync::Arc;

/// The store (Redis) could not be asked; the session is kept and the request should be
/// tried again shortly.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the session store is unavailable")]
pub struct StoreUnavailable;

/// What a revocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// How many sessions ended: known with the Redis store (cookie sessions live in
    /// browsers, so the store cannot count them).
    pub sessions_ended: Option<usize>,
    /// Whether every replica knows: false without `[redis]` (this process only), or
    /// while Redis is down (shared once it answers again).
    pub on_every_replica: bool,
}

/// What a request's cookies present, found without any I/O.
pub enum Presented {
    Nothing,
    /// A live session, not signed out.
    Session(Arc<Session>),
    /// A valid handle whose record must be read from the store.
    Handle(String),
}

pub enum SessionStore {
    Cookie(CookieStore),
    Redis(RedisStore),
}

/// What both stores need of the gateway: its cookie names and its keys.
pub struct Sealing<'a> {
    pub jar: &'a CookieJar,
    pub sealer: &'a Sealer,
}

impl SessionStore {
    pub fn presented(&self, cookies: &RequestCookies, sealing: &Sealing, now: u64) -> Presented {
        match self {
            SessionStore::Cookie(store) => store.presented(cookies, sealing, now),
            SessionStore::Redis(store) => store.presented(cookies, sealing, now),
        }
    }

    /// The session a [`Presented::Handle`] names (only the Redis store presents those).
    pub async fn fetch(
        &self,
        sid: &str,
        sealing: &Sealing<'_>,
        now: u64,
    ) -> Result<Option<Arc<Session>>, StoreUnavailable> {
        match self {
            SessionStore::Cookie(_) => Ok(None),
            SessionStore::Redis(store) => store.fetch(sid, sealing, now).await,
        }
    }

    /// Saves a session just signed in; its cookies go into `response`. `Ok(false)`:
    /// it does not fit in cookies.
    pub async fn create(
        &self,
        session: &Session,
        request: &HeaderMap,
        response: &mut HeaderMap,
        sealing: &Sealing<'_>,
        now: u64,
    ) -> Result<bool, StoreUnavailable> {
        match self {
            SessionStore::Cookie(_) => Ok(session.write(request, response, sealing.jar, sealing.sealer, now)),
            SessionStore::Redis(store) => store.create(session, request, response, sealing, now).await,
        }
    }

    /// After a refresh this replica made, before its result is shared: the Redis
    /// store writes the new record (or deletes an ended one) for every replica. A
    /// record a sign-out removed meanwhile stays removed: the outcome becomes `Ended`.
    pub async fn settle_refresh(&self, before: &Session, exchanged: Exchanged, sealing: &Sealing<'_>) -> Exchanged {
        match self {
            SessionStore::Cookie(_) => exchanged,
            SessionStore::Redis(store) => store.settle_refresh(before, exchanged, sealing).await,
        }
    }

    /// The cookies of a session refreshed for this request. `false`: it no longer fits.
    pub fn refreshed_cookies(
        &self,
        session: &Session,
        request: &HeaderMap,
        response: &mut HeaderMap,
        sealing: &Sealing,
        now: u64,
    ) -> bool {
        match self {
            SessionStore::Cookie(_) => session.write(request, response, sealing.jar, sealing.sealer, now),
            // The handle does not change; the record was written by the refresh.
            SessionStore::Redis(_) => true,
        }
    }

    /// Ends `session` everywhere the store reaches: its later requests, with any copy
    /// of its cookies, are signed-out requests.
    pub async fn end(&self, session: &Session, now: u64) -> Result<(), StoreUnavailable> {
        match self {
            SessionStore::Cookie(store) => {
                store.end(session, now).await;
                Ok(())
            }
            SessionStore::Redis(store) => store.end(session).await,
        }
    }

    /// Ends every session `who` names that signed in until now, on every replica the
    /// store reaches; `until`: the latest such a session could end.
    pub async fn revoke(&self, who: &Denied, until: u64, now: u64) -> Result<Revoked, StoreUnavailable> {
        match self {
            SessionStore::Cookie(store) => {
                Ok(Revoked { sessions_ended: None, on_every_replica: store.revoke(who, until, now).await })
            }
            SessionStore::Redis(store) => {
                store.revoke(who).await.map(|ended| Revoked { sessions_ended: Some(ended), on_every_replica: true })
            }
        }
    }

    /// Whether `session`, live when a long-lived connection (a WebSocket) opened with
    /// it, has ended since: signed out, revoked, or over. A store that cannot answer
    /// ends nothing.
    pub async fn has_ended(&self, session: &Session, sealing: &Sealing<'_>, now: u64) -> bool {
        match self {
            SessionStore::Cookie(store) => store.has_ended(session, now),
            SessionStore::Redis(store) => store.has_ended(session, sealing, now).await,
        }
    }

    /// Another replica changed something this one holds (see `cluster/events.rs`).
    pub fn event(&self, event: Event) {
        match self {
            SessionStore::Cookie(store) => store.event(event),
            SessionStore::Redis(store) => store.event(event),
        }
    }

    /// Events may have been missed (the subscription was remade): forget or reread.
    pub async fn resync(&self) {
        match self {
            SessionStore::Cookie(store) => store.resync().await,
            SessionStore::Redis(store) => store.resync(),
        }
    }
}
