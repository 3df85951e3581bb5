//! The session: who signed in and the tokens to act for them, sealed into cookies.
//!
//! The ID token is reduced to the claims the gateway uses once it has been verified;
//! it is kept whole only for providers whose logout needs it as `id_token_hint`
//! (not Cognito), which keeps a Cognito session at two cookies.

use super::cookies::{self, CookieJar, RequestCookies};
use super::identity::IdentityValues;
use crate::session::chunks;
use crate::session::seal::Sealer;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Random id of this sign-in, kept across refreshes (the logout denylist's key).
    pub sid: String,
    pub sub: String,
    pub username: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub groups: Vec<String>,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// ID-token claims worth showing the SPA (name, custom attributes...).
    pub profile: Map<String, Value>,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub access_expires_at: u64,
    /// The access token's lifetime as issued (`expires_in`), which bounds how early it
    /// is refreshed; 0 in sessions sealed before it was kept (then the skew alone).
    #[serde(default)]
    pub access_lifetime: u64,
    /// Absolute end of the session.
    pub expires_at: u64,
    /// When the user signed in (Unix milliseconds): a revocation of the user ends the
    /// sessions signed in before it, not the next one. 0 in sessions sealed before it
    /// was kept (then any revocation of the user ends them).
    #[serde(default)]
    pub signed_in_ms: u64,
    /// The provider's own session id (the ID token's `sid`), which a back-channel
    /// logout names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_sid: Option<String>,
    /// Its identity headers, built on first use (not sealed).
    #[serde(skip)]
    pub identity_headers: IdentityValues,
}

/// Claims that describe the token rather than the user: not copied into `profile`.
const TECHNICAL: [&str; 14] = [
    "aud",
    "iss",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "at_hash",
    "auth_time",
    "jti",
    "origin_jti",
    "event_id",
    "token_use",
    "azp",
    "sid",
];

impl Session {
    pub fn profile_from(claims: &Map<String, Value>, identity_claims: &[&str]) -> Map<String, Value> {
        claims
            .iter()
            .filter(|(name, _)| !TECHNICAL.contains(&name.as_str()) && !identity_claims.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }

    /// The sealed session value among a request's cookies, in pieces (its chunks).
    pub fn sealed<'a>(cookies: &RequestCookies<'a>, jar: &CookieJar) -> Option<Vec<&'a str>> {
        chunks::parts(jar.session_name(), |name| cookies.get(name))
    }

    /// The session sealed in `sealed`, if it opens under the gateway's keys. Whether
    /// it has ended is the caller's check ([`Session::is_live`]).
    pub fn open(sealed: &str, jar: &CookieJar, sealer: &Sealer) -> Option<Session> {
        let plain = sealer.open(jar.session_name(), sealed)?;
        serde_json::from_slice(&plain).ok()
    }

    pub fn is_live(&self, now: u64) -> bool {
        self.expires_at > now
    }

    /// Sets the session cookies on `response` and expires leftovers of a longer one.
    pub fn write(
        &self,
        request: &HeaderMap,
        response: &mut HeaderMap,
        jar: &CookieJar,
        sealer: &Sealer,
        now: u64,
    ) -> bool {
        let plain = serde_json::to_vec(self).expect("a session serializes");
        let sealed = sealer.seal(jar.session_name(), &plain);
        Self::write_sealed(&sealed, request, response, jar, self.expires_at.saturating_sub(now))
    }

    /// Sets `sealed` (a session, or a store's handle) as the session cookies, chunked,
    /// and expires leftovers of a longer value. `false`: it needs too many cookies.
    pub fn write_sealed(
        sealed: &str,
        request: &HeaderMap,
        response: &mut HeaderMap,
        jar: &CookieJar,
        max_age: u64,
    ) -> bool {
        let Some(cookies) = chunks::split(jar.session_name(), sealed) else { return false };
        let present = cookies::read(request);
        for stale in chunks::stale(jar.session_name(), present.iter().map(|(n, _)| *n), &cookies) {
            jar.expire(response, &stale);
        }
        for (name, value) in &cookies {
            jar.set(response, name, value, max_age);
        }
        true
    }

    /// Expires every session cookie the request carries.
    pub fn clear(request: &HeaderMap, response: &mut HeaderMap, jar: &CookieJar) {
        let present = cookies::read(request);
        for stale in chunks::stale(jar.session_name(), present.iter().map(|(n, _)| *n), &[]) {
            jar.expire(response, &stale);
        }
    }
}
