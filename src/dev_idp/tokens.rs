//! Tokens with Cognito's shapes.
//!
//! - Access token: `sub`, `cognito:groups`, `iss`, `version`, `client_id`,
//!   `origin_jti`, `event_id`, `token_use=access`, `scope`, `auth_time`, `exp`, `iat`,
//!   `jti`, `username`, and **no `aud`**.
//! - ID token: `at_hash`, `sub`, `cognito:groups`, `email_verified`, `iss`,
//!   `cognito:username`, `origin_jti`, `aud`, `event_id`, `token_use=id`, `auth_time`,
//!   `nonce` (when the login sent one), `exp`, `iat`, `jti`, `email`, attributes, and
//!   for a federated user `identities`.
//! - Federated users (`identity_provider`) are named `{provider}_{id}` and carry the
//!   automatic group `{userPoolId}_{provider}` in both tokens.
//! - Refresh token: opaque, shaped and sized like Cognito's JWE (~1.8 KB), so cookie
//!   sizes measured against this provider match production.

use super::keys::{KeyUse, Keys};
use super::settings::UserSettings;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;

pub use crate::oidc::now_secs;

/// A random UUID v4 string, the form Cognito uses for `jti`, `event_id` and codes.
pub fn uuid() -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]) & 0xfff,
        8 | (b[8] & 0x3),
        u16::from_be_bytes([b[9], b[10]]) & 0xfff,
        u64::from_be_bytes([0, 0, b[11], b[12], b[13], b[14], b[15], 0]) >> 8
    )
}

/// What one sign-in carries into every token minted from it.
pub struct Grant<'a> {
    pub user: &'a UserSettings,
    /// For the automatic group of federated users.
    pub user_pool_id: &'a str,
    pub client_id: &'a str,
    pub scopes: &'a [String],
    pub nonce: Option<&'a str>,
    pub auth_time: u64,
    pub origin_jti: &'a str,
}

pub struct Minted {
    pub access_token: String,
    pub id_token: Option<String>,
}

pub fn mint(keys: &Keys, issuer: &str, grant: &Grant<'_>, access_ttl: Duration, id_ttl: Duration) -> Minted {
    let iat = now_secs();
    let event_id = uuid();
    let user = grant.user;
    let sub = user.subject();

    let mut access = json!({
        "sub": sub,
        "iss": issuer,
        "version": 2,
        "client_id": grant.client_id,
        "origin_jti": grant.origin_jti,
        "event_id": event_id,
        "token_use": "access",
        "scope": grant.scopes.join(" "),
        "auth_time": grant.auth_time,
        "exp": iat + access_ttl.as_secs(),
        "iat": iat,
        "jti": uuid(),
        "username": user.username,
    });
    let groups = user.groups_in(grant.user_pool_id);
    if !groups.is_empty() {
        access["cognito:groups"] = json!(groups);
    }
    let access_token = keys.sign(KeyUse::Access, &access);

    let id_token = grant.scopes.iter().any(|s| s == "openid").then(|| {
        let mut id = json!({
            "at_hash": at_hash(&access_token),
            "sub": sub,
            "iss": issuer,
            "cognito:username": user.username,
            "origin_jti": grant.origin_jti,
            "aud": grant.client_id,
            "event_id": event_id,
            "token_use": "id",
            "auth_time": grant.auth_time,
            "exp": iat + id_ttl.as_secs(),
            "iat": iat,
            "jti": uuid(),
        });
        if !groups.is_empty() {
            id["cognito:groups"] = json!(groups);
        }
        if let Some(identities) = user.identities() {
            id["identities"] = identities;
        }
        if let Some(nonce) = grant.nonce {
            id["nonce"] = json!(nonce);
        }
        if let Some(email) = &user.email {
            id["email"] = json!(email);
            id["email_verified"] = json!(true);
        }
        for (name, value) in &user.attributes {
            id[name] = json!(value);
        }
        keys.sign(KeyUse::Id, &id)
    });
    Minted { access_token, id_token }
}

/// OIDC Core §3.1.3.6: base64url of the left half of SHA-256 of the access token.
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    B64.encode(&digest[..16])
}

/// An opaque refresh token in the five-part shape of Cognito's JWE, about 1.8 KB.
pub fn refresh_token() -> String {
    let header = B64.encode(r#"{"cty":"JWT","enc":"A256GCM","alg":"RSA-OAEP"}"#);
    let random = |n: usize| B64.encode((0..n).map(|_| rand::random::<u8>()).collect::<Vec<u8>>());
    format!("{header}.{}.{}.{}.{}", random(256), random(12), random(1000), random(16))
}
