//! The checks a token must pass before the gateway believes a word of it.
//!
//! ID tokens (OIDC Core §3.1.3.7): signature by a provider key with an asymmetric
//! algorithm the key allows (never `none`, never HMAC: an HMAC "signed" with the
//! public key is the classic confusion attack), `iss` exactly, `aud` containing the
//! client id (and `azp` equal to it when there are several audiences), `exp`, `iat`
//! and `nbf` with a small leeway, the login's `nonce`, and for Cognito `token_use=id`.
//!
//! Access tokens presented by API clients (what aws-jwt-verify checks for Cognito):
//! signature, `iss`, `exp`, and for Cognito `token_use=access` and a `client_id` among
//! the accepted app clients (Cognito access tokens have no `aud`); for other providers
//! an `aud` among them.
//!
//! Keys named by the token itself (`jku`, `x5u`, `jwk`, `x5c`) are never used: keys
//! come only from the provider's JWKS.

use super::jwks::JwksCache;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde_json::{Map, Value};
use std::time::Duration;

const ASYMMETRIC: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
];

pub type Claims = Map<String, Value>;

/// Claims only an ID token carries (OpenID Connect Core §2, §3.3.2.11; Keycloak's `typ`
/// is checked separately).
const ID_TOKEN_ONLY: [&str; 3] = ["nonce", "at_hash", "c_hash"];

/// What tokens of this provider and client must say.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub issuer: String,
    pub client_id: String,
    pub leeway: Duration,
    /// Cognito's `token_use` and access-token `client_id` rules apply.
    pub cognito: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("not a signed JWT")]
    Malformed,
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    #[error("token has no kid")]
    NoKeyId,
    #[error("no provider key has this kid")]
    UnknownKey,
    #[error("signature or standard claims invalid: {0}")]
    Rejected(String),
    #[error("claim {0} is missing or wrong")]
    Claim(&'static str),
}

pub async fn verify_id_token(
    jwks: &JwksCache,
    token: &str,
    expect: &Expectations,
    nonce: Option<&str>,
) -> Result<Claims, TokenError> {
    let claims = verify_signed(jwks, token, expect, &[expect.client_id.as_str()], USER_TOKEN_CLAIMS).await?;
    if let Some(Value::Array(audiences)) = claims.get("aud")
        && audiences.len() > 1
        && claims.get("azp").and_then(Value::as_str) != Some(expect.client_id.as_str())
    {
        return Err(TokenError::Claim("azp"));
    }
    if let Some(expected) = nonce {
        let given = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
        if aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), expected.as_bytes()).is_err() {
            return Err(TokenError::Claim("nonce"));
        }
    }
    if expect.cognito && claims.get("token_use").and_then(Value::as_str) != Some("id") {
        return Err(TokenError::Claim("token_use"));
    }
    Ok(claims)
}

/// `clients`: the app clients whose access tokens are accepted.
pub async fn verify_access_token(
    jwks: &JwksCache,
    token: &str,
    expect: &Expectations,
    clients: &[String],
) -> Result<Claims, TokenError> {
    let audiences: Vec<&str> = if expect.cognito { vec![] } else { clients.iter().map(String::as_str).collect() };
    let claims = verify_signed(jwks, token, expect, &audiences, USER_TOKEN_CLAIMS).await?;
    if expect.cognito {
        if claims.get("token_use").and_then(Value::as_str) != Some("access") {
            return Err(TokenError::Claim("token_use"));
        }
        let client = claims.get("client_id").and_then(Value::as_str).unwrap_or_default();
        if !clients.iter().any(|allowed| allowed == client) {
            return Err(TokenError::Claim("client_id"));
        }
    } else if ID_TOKEN_ONLY.iter().any(|claim| claims.contains_key(*claim))
        || claims.get("typ").and_then(Value::as_str).is_some_and(|typ| typ.eq_ignore_ascii_case("id"))
    {
        // An ID token is addressed to the gateway's own client, so it passes the `aud`
        // check: it must not pass for an access token. Generic providers have no
        // `token_use`; these claims appear only in ID tokens.
        return Err(TokenError::Claim("token_use"));
    }
    Ok(claims)
}

/// The claims every ID and access token must carry (`aud` too, where it is checked).
const USER_TOKEN_CLAIMS: &[&str] = &["exp", "iat", "iss", "sub"];

/// `audiences`: accepted `aud` values; empty skips the audience check (Cognito access
/// tokens, which have none). `required`: claims that must be present (`exp` is checked
/// whenever present).
pub(super) async fn verify_signed(
    jwks: &JwksCache,
    token: &str,
    expect: &Expectations,
    audiences: &[&str],
    required: &[&str],
) -> Result<Claims, TokenError> {
    let check_audience = !audiences.is_empty();
    let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
    if !ASYMMETRIC.contains(&header.alg) {
        return Err(TokenError::Algorithm(header.alg));
    }
    let kid = header.kid.as_deref().ok_or(TokenError::NoKeyId)?;
    let key = jwks.key(kid).await.ok_or(TokenError::UnknownKey)?;
    if key.algorithm.is_some_and(|declared| declared != header.alg) {
        return Err(TokenError::Algorithm(header.alg));
    }
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&expect.issuer]);
    if check_audience {
        validation.set_audience(audiences);
    } else {
        validation.validate_aud = false;
    }
    validation.leeway = expect.leeway.as_secs();
    validation.validate_nbf = true;
    let mut required = required.to_vec();
    if check_audience {
        required.push("aud");
    }
    validation.set_required_spec_claims(&required);
    let claims =
        decode::<Claims>(token, &key.key, &validation).map_err(|err| TokenError::Rejected(err.to_string()))?.claims;

    let now = super::now_secs();
    let issued = claims.get("iat").and_then(Value::as_u64).ok_or(TokenError::Claim("iat"))?;
    if issued > now + expect.leeway.as_secs() {
        return Err(TokenError::Claim("iat"));
    }
    Ok(claims)
}
