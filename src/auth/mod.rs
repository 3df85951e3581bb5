//! Login and sessions: everything under `/auth/`, and the check in front of every
//! protected route.
//!
//! - `cookies.rs`, `session.rs`, `transaction.rs`: what the browser holds, sealed.
//! - `endpoints.rs`: `/auth/login`, `/auth/callback`, `/auth/userinfo`, `/auth/logout`.
//! - `freshness.rs`, `refresh.rs`: when a session's tokens are renewed, and the renewal.
//! - `identity.rs`: identity headers to the upstream, strip then set.
//! - `return_to.rs`: where a login may send the browser back to.
//!
//! The provider's metadata and keys are loaded at startup with retries; until they
//! are, `/readyz` says not ready and anything needing them answers 503.

pub mod assertion;
pub mod bearer;
pub mod claims;
pub mod cookies;
pub mod csrf;
mod endpoints;
pub mod freshness;
pub mod identity;
mod opened;
pub mod policy;
pub mod refresh;
pub mod return_to;
pub mod scopes;
pub mod session;
pub mod signed_out;
pub mod transaction;

pub use endpoints::{handle, unauthenticated};

use crate::config::{AuthConfig, ProviderKind};
use crate::metrics::Metrics;
use crate::oidc::jwks::JwksCache;
use crate::oidc::metadata::{self, ProviderMetadata};
use crate::oidc::verify::Expectations;
use crate::oidc::{ProviderError, back_channel};
use crate::session::seal::{KeyError, Sealer};
use cookies::CookieJar;
use identity::IdentityHeaders;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{EndpointNotSet, EndpointSet, ExtraTokenFields, StandardRevocableToken, StandardTokenResponse};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The token response's `id_token`, which plain OAuth 2 does not know.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

pub type TokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What is known once the provider has been reached.
pub struct Provider {
    pub metadata: ProviderMetadata,
    pub jwks: JwksCache,
    oauth: OAuthClient,
    pub expect: Expectations,
}

pub struct Auth {
    pub config: AuthConfig,
    pub jar: CookieJar,
    pub sealer: Sealer,
    pub identity: IdentityHeaders,
    http: reqwest::Client,
    provider: tokio::sync::OnceCell<Arc<Provider>>,
    pub refresher: refresh::Refresher,
    pub signed_out: signed_out::SignedOut,
    opened: opened::OpenedSessions,
}

impl Auth {
    pub fn new(config: &AuthConfig, metrics: &Metrics) -> Result<Self, KeyError> {
        let keys: Vec<Vec<u8>> = config.session.cookie_keys.iter().map(|k| k.expose().clone()).collect();
        Ok(Self {
            jar: CookieJar::new(&config.session.cookie_name, config.session.insecure_dev_cookies),
            sealer: Sealer::new(&keys)?,
            identity: IdentityHeaders::new(
                &config.identity,
                assertion::Assertions::new(
                    &config.session.cookie_keys,
                    config.public_url.as_str().trim_end_matches('/'),
                ),
            ),
            http: back_channel(config.provider.http_timeout),
            provider: tokio::sync::OnceCell::new(),
            refresher: refresh::Refresher::new(metrics.refresh_outcomes()),
            signed_out: signed_out::SignedOut::default(),
            opened: opened::OpenedSessions::default(),
            config: config.clone(),
        })
    }

    /// The request's session: it opens, has not ended, and was not signed out here.
    pub fn session(&self, headers: &http::HeaderMap, now: u64) -> Option<Arc<session::Session>> {
        self.session_among(&cookies::RequestCookies::read(headers, None), now)
    }

    /// [`Auth::session`] among cookies already read.
    pub fn session_among(&self, cookies: &cookies::RequestCookies, now: u64) -> Option<Arc<session::Session>> {
        use session::Session;
        let sealed = Session::sealed(cookies, &self.jar)?;
        let session = self.opened.get_or_open(&sealed, |sealed| Session::open(sealed, &self.jar, &self.sealer))?;
        (session.is_live(now) && !self.signed_out.contains(&session.sid, now)).then_some(session)
    }

    pub fn provider(&self) -> Option<&Arc<Provider>> {
        self.provider.get()
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.public_origin())
    }

    /// `https://app.example.com`, without the trailing slash.
    pub fn public_origin(&self) -> &str {
        self.config.public_url.as_str().trim_end_matches('/')
    }

    /// Reaches the provider until it answers: discovery, then the JWKS. Returns once
    /// loaded; logs each failed attempt.
    pub async fn load_with_retry(&self) {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.load().await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?delay, "identity provider not reachable yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    async fn load(&self) -> Result<(), ProviderError> {
        let p = &self.config.provider;
        let metadata = match (p.kind, &p.domain) {
            (ProviderKind::Cognito, Some(domain)) => {
                metadata::cognito(&self.http, &p.issuer, domain, p.issuer_endpoint.as_deref()).await?
            }
            _ => metadata::discover(&self.http, &p.issuer).await?,
        };
        let jwks = JwksCache::new(self.http.clone(), metadata.jwks_uri.clone(), Duration::from_secs(30));
        let keys = jwks.refresh().await?;
        let invalid = |detail: String| ProviderError::Invalid { what: "discovery", url: p.issuer.clone(), detail };
        let mut oauth = oauth2::Client::new(oauth2::ClientId::new(p.client_id.clone()))
            .set_auth_uri(
                oauth2::AuthUrl::new(metadata.authorization_endpoint.clone()).map_err(|e| invalid(e.to_string()))?,
            )
            .set_token_uri(oauth2::TokenUrl::new(metadata.token_endpoint.clone()).map_err(|e| invalid(e.to_string()))?)
            .set_redirect_uri(oauth2::RedirectUrl::new(self.redirect_uri()).map_err(|e| invalid(e.to_string()))?);
        if let Some(secret) = &p.client_secret {
            oauth = oauth.set_client_secret(oauth2::ClientSecret::new(secret.expose().clone()));
        }
        let expect = Expectations {
            issuer: metadata.issuer.clone(),
            client_id: p.client_id.clone(),
            leeway: Duration::from_secs(60),
            cognito: p.kind == ProviderKind::Cognito,
        };
        tracing::info!(issuer = %metadata.issuer, keys, "identity provider loaded");
        let _ = self.provider.set(Arc::new(Provider { metadata, jwks, oauth, expect }));
        Ok(())
    }

    /// The back-channel client, for `oauth2` requests ([`send`]) and revocation.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// Sends an `oauth2` request over the gateway's back-channel client. Owns its client
/// so the future borrows nothing (the connection tasks must be `Send`).
pub async fn send(http: reqwest::Client, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let response = http.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
    let mut answer = http::Response::builder().status(response.status());
    if let Some(headers) = answer.headers_mut() {
        *headers = response.headers().clone();
    }
    let body = response.bytes().await?;
    Ok(answer.body(body.to_vec()).expect("status and headers come from a valid response"))
}

pub use crate::oidc::now_secs;
