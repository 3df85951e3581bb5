//! Logout tokens: how the provider says "this session has ended" over the back channel
//! (OpenID Connect Back-Channel Logout 1.0, §2.4), validated as §2.6 demands.
//!
//! Signature and `iss` as for ID tokens (the same keys, algorithms and refetch rules:
//! `verify.rs`), `aud` naming the client, `iat` recent (within [`MAX_AGE`]) and not in
//! the future, `exp` when present, the back-channel logout event, a `sid` or a `sub`,
//! a `jti`, and no `nonce` (which would make it an ID token). The JWT header's `typ`,
//! when present, is `logout+jwt` (or the generic `JWT` that some providers put on every
//! token; the event and the missing `nonce` are what tell a logout token apart then).

use super::jwks::JwksCache;
use super::verify::{Expectations, TokenError, verify_signed};
use serde_json::Value;
use std::time::Duration;

pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How old a logout token may be: the provider sends it as the session ends.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// What a valid logout token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    /// The provider session that ended (the ID token's `sid`).
    pub sid: Option<String>,
    /// The user whose sessions ended, when no `sid` narrows it.
    pub sub: Option<String>,
    pub jti: String,
    /// Until when a replay of this token could still pass the checks (Unix seconds):
    /// its `jti` is remembered that long.
    pub replayable_until: u64,
}

pub async fn verify_logout_token(
    jwks: &JwksCache,
    token: &str,
    expect: &Expectations,
) -> Result<LogoutToken, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header
        .typ
        .as_deref()
        .is_some_and(|typ| !typ.eq_ignore_ascii_case("logout+jwt") && !typ.eq_ignore_ascii_case("JWT"))
    {
        return Err(TokenError::Claim("typ"));
    }
    let claims = verify_signed(jwks, token, expect, &[expect.client_id.as_str()], &["iat", "iss", "aud"]).await?;
    let now = super::now_secs();
    let leeway = expect.leeway.as_secs();
    let issued = claims.get("iat").and_then(Value::as_u64).ok_or(TokenError::Claim("iat"))?;
    if issued + MAX_AGE.as_secs() + leeway < now {
        return Err(TokenError::Claim("iat"));
    }
    let has_event = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT))
        .is_some_and(Value::is_object);
    if !has_event {
        return Err(TokenError::Claim("events"));
    }
    if claims.contains_key("nonce") {
        return Err(TokenError::Claim("nonce"));
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
    let (sid, sub) = (text("sid"), text("sub"));
    if sid.is_none() && sub.is_none() {
        return Err(TokenError::Claim("sid or sub"));
    }
    let jti = text("jti").ok_or(TokenError::Claim("jti"))?;
    let expires = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
    let replayable_until = expires.max(issued + MAX_AGE.as_secs()) + leeway;
    Ok(LogoutToken { sid, sub, jti, replayable_until })
}
