//! Where the provider's endpoints are.
//!
//! - Generic OIDC: discovery at `{issuer}/.well-known/openid-configuration`; the
//!   document's `issuer` must equal the configured one exactly (OIDC Discovery §4.3),
//!   or a compromised document could make the gateway trust tokens of another issuer.
//! - Cognito: the issuer is `https://cognito-idp.{region}.amazonaws.com/{userPoolId}`
//!   (`IssuerConfiguration` `ORIGINAL`) or
//!   `https://issuer-cognito-idp.{region}.amazonaws.com/{userPoolId}` (`UPDATED`), see
//!   the Cognito API reference, `IssuerConfigurationType`; the Hosted UI endpoints live
//!   on the pool's domain. Discovery is still read for the JWKS URI, but the
//!   authorize/token/logout endpoints come from the domain, and `/logout` is Cognito's
//!   own (not OIDC RP-initiated logout).
//! - An `endpoint` (tests, the demo) moves where the issuer's documents are fetched,
//!   keeping their paths; the issuer the document and the tokens must name stays.

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
    /// Whether the provider sends logout tokens (Back-Channel Logout 1.0 §2.1); Cognito
    /// does not.
    #[serde(default)]
    pub backchannel_logout_supported: bool,
}

pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<ProviderMetadata, ProviderError> {
    discover_via(http, issuer, None).await
}

/// [`discover`], fetching from `endpoint` instead of the issuer's host when one is given.
async fn discover_via(
    http: &reqwest::Client,
    issuer: &str,
    endpoint: Option<&str>,
) -> Result<ProviderMetadata, ProviderError> {
    let url = via(endpoint, &format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')));
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

/// A user pool's issuer form (`IssuerConfigurationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CognitoIssuer {
    /// `https://cognito-idp.{region}.amazonaws.com/{userPoolId}`.
    #[default]
    Original,
    /// `https://issuer-cognito-idp.{region}.amazonaws.com/{userPoolId}`, region being
    /// the pool's primary region; AWS recommends it for all pools.
    Updated,
}

impl CognitoIssuer {
    /// `"original"` or `"updated"`, as the settings spell it.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "original" => Some(Self::Original),
            "updated" => Some(Self::Updated),
            _ => None,
        }
    }

    /// The issuer of `user_pool_id` in this form.
    pub fn issuer(self, region: &str, user_pool_id: &str) -> String {
        let host = match self {
            Self::Original => "cognito-idp",
            Self::Updated => "issuer-cognito-idp",
        };
        format!("https://{host}.{region}.amazonaws.com/{user_pool_id}")
    }
}

/// `url` with its origin replaced by `endpoint`, when one is given.
fn via(endpoint: Option<&str>, url: &str) -> String {
    match (endpoint, url::Url::parse(url)) {
        (Some(endpoint), Ok(parsed)) => {
            format!("{}{}", endpoint.trim_end_matches('/'), &parsed[url::Position::BeforePath..])
        }
        _ => url.to_owned(),
    }
}

/// Cognito metadata: the JWKS from discovery, the Hosted UI endpoints from `domain`
/// (`https://{prefix}.auth.{region}.amazoncognito.com` or a custom domain). With an
/// `endpoint`, discovery and the key set are fetched there, at their own paths.
pub async fn cognito(
    http: &reqwest::Client,
    issuer: &str,
    domain: &str,
    endpoint: Option<&str>,
) -> Result<ProviderMetadata, ProviderError> {
    let discovered = discover_via(http, issuer, endpoint).await?;
    let domain = domain.trim_end_matches('/');
    Ok(ProviderMetadata {
        issuer: discovered.issuer,
        authorization_endpoint: format!("{domain}/oauth2/authorize"),
        token_endpoint: format!("{domain}/oauth2/token"),
        jwks_uri: via(endpoint, &discovered.jwks_uri),
        userinfo_endpoint: Some(format!("{domain}/oauth2/userInfo")),
        end_session_endpoint: Some(format!("{domain}/logout")),
        revocation_endpoint: Some(format!("{domain}/oauth2/revoke")),
        backchannel_logout_supported: false,
    })
}
