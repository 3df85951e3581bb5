//! `POST /auth/backchannel-logout`: the provider tells the gateway that a session ended
//! centrally (OpenID Connect Back-Channel Logout 1.0): an admin disabled the user, the
//! user logged out in another app of the same provider.
//!
//! 1. The form's one `logout_token` is validated (`oidc/logout_token.rs`); anything wrong
//!    is a 400 with a JSON `error`, never a 5xx, and ends nothing.
//! 2. Its `jti` must not have been seen (here, or on another replica through Redis)
//!    while the token could still pass: a replay is a 400. This matters because a
//!    logout by `sub` ends the sessions signed in before it arrives: replayed later, it
//!    would end newer ones.
//! 3. It ends every session of that provider `sid` or, with only a `sub`, every session
//!    of that user ([`Auth::revoke`]), then answers 200 with `Cache-Control: no-store`.
//!    A session store that cannot answer (the Redis store while Redis is down) is a 503,
//!    and the `jti` is released so the provider may deliver the token again.

use super::denylist::Denied;
use super::{Auth, now_secs};
use crate::cluster::{Cluster, When};
use crate::oidc::logout_token::verify_logout_token;
use crate::proxy::body::{self, ProxyBody};
use base64::Engine;
use http::header::CACHE_CONTROL;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// A logout token is about a kilobyte; a form beyond this is refused unread.
const MAX_BODY: usize = 16 * 1024;
/// How long the provider may take to send the form.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Tokens remembered per process against replays (each lives a few minutes).
const MAX_REMEMBERED: usize = 100_000;

pub async fn logout(auth: &Auth, request: Request<Incoming>, request_id: &str) -> Response<ProxyBody> {
    let Some(provider) = auth.provider() else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(("temporarily_unavailable", "the provider is not loaded")),
        );
    };
    let body = http_body_util::Limited::new(request.into_body(), MAX_BODY).collect();
    let form = match tokio::time::timeout(BODY_TIMEOUT, body).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => return refuse(auth, "refused", request_id, "the request body is too large or was cut off"),
        Err(_) => return refuse(auth, "refused", request_id, "the request body did not arrive in time"),
    };
    let mut tokens = url::form_urlencoded::parse(&form).filter(|(name, _)| name == "logout_token").map(|(_, v)| v);
    let (Some(token), None) = (tokens.next(), tokens.next()) else {
        return refuse(auth, "refused", request_id, "the form must carry exactly one logout_token");
    };
    let claims = match verify_logout_token(&provider.jwks, &token, &provider.expect).await {
        Ok(claims) => claims,
        Err(err) => return refuse(auth, "refused", request_id, &format!("logout token rejected: {err}")),
    };
    let now = now_secs();
    let replay_key = replay_key(&provider.expect.issuer, &claims.jti);
    if !auth.replays.claim(auth.cluster().map(|c| &**c), &replay_key, claims.replayable_until, now).await {
        return refuse(auth, "replayed", request_id, "logout token replayed (its jti was seen before)");
    }
    let who = match (claims.sid, claims.sub) {
        (Some(sid), _) => Denied::ProviderSession(sid),
        (None, Some(sub)) => Denied::User(sub),
        (None, None) => unreachable!("a logout token names a sid or a sub"),
    };
    match auth.revoke(&who).await {
        Ok(revoked) => {
            tracing::info!(
                request_id,
                by = who.kind(),
                sessions = ?revoked.sessions_ended,
                every_replica = revoked.on_every_replica,
                "back-channel logout"
            );
            auth.backchannel_logouts.count("accepted");
            answer(StatusCode::OK, None)
        }
        Err(_) => {
            auth.replays.release(auth.cluster().map(|c| &**c), &replay_key).await;
            tracing::warn!(request_id, "back-channel logout not done: the session store is unavailable");
            auth.backchannel_logouts.count("unavailable");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(("temporarily_unavailable", "the session store is unavailable")),
            )
        }
    }
}

/// A 400 saying `why`, counted under `outcome`.
fn refuse(auth: &Auth, outcome: &'static str, request_id: &str, why: &str) -> Response<ProxyBody> {
    tracing::warn!(request_id, why, "back-channel logout refused");
    auth.backchannel_logouts.count(outcome);
    answer(StatusCode::BAD_REQUEST, Some(("invalid_request", why)))
}

/// The answer to the provider: an empty 200, or an error in the spec's JSON form; never
/// cached.
fn answer(status: StatusCode, error: Option<(&str, &str)>) -> Response<ProxyBody> {
    if let Some((error, description)) = error {
        return super::endpoints::json_response(status, &json!({ "error": error, "error_description": description }));
    }
    let mut response = Response::new(body::empty());
    *response.status_mut() = status;
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A token's `iss` and `jti`, hashed: one short key whatever the provider puts there.
fn replay_key(issuer: &str, jti: &str) -> String {
    let digest = Sha256::new().chain_update(issuer).chain_update([0]).chain_update(jti).finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// The logout tokens seen while they could still pass (rule 2): in this process, and
/// with `[redis]` as `{prefix}logout_jti:{key}` for every replica.
pub struct ReplayGuard {
    seen: super::expiring::ExpiringMap<()>,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self { seen: super::expiring::ExpiringMap::new(MAX_REMEMBERED) }
    }
}

impl ReplayGuard {
    /// Whether `key` is seen for the first time; it is remembered until `until`. Redis
    /// unavailable: this process's memory decides (logged).
    async fn claim(&self, cluster: Option<&Cluster>, key: &str, until: u64, now: u64) -> bool {
        if self.seen.get(key, now).is_some() {
            return false;
        }
        self.seen.upsert(key, (), until, now, |_, _| ());
        let Some(cluster) = cluster else { return true };
        let ttl = Duration::from_secs(until.saturating_sub(now).max(1));
        match cluster.set(&cluster.key("logout_jti", key), b"1", ttl, When::Absent).await {
            Ok(first) => first,
            Err(err) => {
                tracing::warn!(error = %err, "logout token replays are checked on this replica only: Redis did not answer");
                true
            }
        }
    }

    /// Forgets `key`, so the same token may be delivered again.
    async fn release(&self, cluster: Option<&Cluster>, key: &str) {
        self.seen.remove(key);
        if let Some(cluster) = cluster
            && let Err(err) = cluster.del(&cluster.key("logout_jti", key)).await
        {
            tracing::warn!(error = %err, "could not release a logout token's jti in Redis");
        }
    }
}
