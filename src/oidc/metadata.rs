//! Where the provider's endpoints are.
//!
//! - Generic OIDC: discovery at `{issuer}/.well-known/openid-configuration`; the
//!   document's `issuer` must equal the configured one exactly (OIDC Discovery §4.3),
//!   or a compromised document could make the gateway trust tokens of another issuer.
//! - Cognito: the issuer is `https://cognito-idp.{region}.amazonaws.com/{userPoolId}`
//!   and the Hosted UI endpoints live on the pool's domain. Discovery is still read for
//!   the JWKS URI, but the authorize/token/logout endpoints come from the domain, and
//!   `/logout` is Cognito's own (not OIDC RP-initiated logout).

use super::{ProviderError, get_json};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
}

pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<ProviderMetadata, ProviderError> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let metadata: ProviderMetadata = get_json(http, "discovery", &url).await?;
    if metadata.issuer != issuer {
        return Err(ProviderError::Invalid {
            what: "discovery",
            url,
            detail: format!("issuer is {:?}, expected {issuer:?}", metadata.issuer),
        });
    }
    Ok(metadata)
}

/// Cognito's issuer for a pool.
pub fn cognito_issuer(region: &str, user_pool_id: &str) -> String {
    format!("https://cognito-idp.{region}.amazonaws.com/{user_pool_id}")
}

/// Cognito metadata: the JWKS from discovery, the Hosted UI endpoints from `domain`
/// (`https://{prefix}.auth.{region}.amazoncognito.com` or a custom domain).
pub async fn cognito(http: &reqwest::Client, issuer: &str, domain: &str) -> Result<ProviderMetadata, ProviderError> {
    let discovered = discover(http, issuer).await?;
    let domain = domain.trim_end_matches('/');
    Ok(ProviderMetadata {
        issuer: discovered.issuer,
        authorization_endpoint: format!("{domain}/oauth2/authorize"),
        token_endpoint: format!("{domain}/oauth2/token"),
        jwks_uri: discovered.jwks_uri,
        userinfo_endpoint: Some(format!("{domain}/oauth2/userInfo")),
        end_session_endpoint: Some(format!("{domain}/logout")),
        revocation_endpoint: Some(format!("{domain}/oauth2/revoke")),
    })
}
