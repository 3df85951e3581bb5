//! Login and sessions: everything under `/auth/`, and the check in front of every
//! protected route.
//!
//! - `cookies.rs`, `session.rs`, `transaction.rs`: what the browser holds, sealed.
//! - `endpoints.rs`: `/auth/login`, `/auth/callback`, `/auth/userinfo`, `/auth/logout`.
//! - `store/`: where sessions live (cookies, or Redis behind a sealed handle).
//! - `freshness.rs`, `refresh.rs`: when a session's tokens are renewed, and the renewal.
//! - `admission.rs`: whether a request may act as a signed-in user on a route.
//! - `identity.rs`: identity headers to the upstream, strip then set.
//! - `return_to.rs`: where a login may send the browser back to.
//! - `backchannel.rs`, `denylist.rs`, `session_end.rs`: sessions ended by the provider
//!   or an operator, and the connections that end with them.
//!
//! The provider's metadata and keys are loaded at startup with retries; until they
//! are, `/readyz` says not ready and anything needing them answers 503.

pub mod admission;
pub mod assertion;
mod backchannel;
pub mod bearer;
pub mod claims;
pub mod cookies;
pub mod csrf;
pub mod denylist;
mod endpoints;
mod expiring;
pub mod freshness;
pub mod identity;
mod opened;
pub mod policy;
pub mod refresh;
pub mod return_to;
pub mod scopes;
pub mod session;
pub mod session_end;
pub mod store;
pub mod transaction;

pub use endpoints::{handle, unauthenticated};

use crate::cluster::Cluster;
use crate::config::{AuthConfig, ProviderKind, StoreKind};
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
    pub store: store::SessionStore,
    cluster: Option<Arc<Cluster>>,
    /// Logout tokens seen (`backchannel.rs`).
    replays: backchannel::ReplayGuard,
    /// `portcullis_backchannel_logouts_total` and `portcullis_revocations_total`.
    pub backchannel_logouts: crate::metrics::Outcomes,
    pub revocations: crate::metrics::Outcomes,
}

/// Why the login and session machinery cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("session.cookie_keys: {0}")]
    Keys(#[from] KeyError),
    #[error("redis.url: {0}")]
    Redis(#[from] redis::RedisError),
}

impl Auth {
    pub fn new(config: &AuthConfig, metrics: &Metrics) -> Result<Self, AuthError> {
        let keys: Vec<Vec<u8>> = config.session.cookie_keys.iter().map(|k| k.expose().clone()).collect();
        let cluster = match &config.redis {
            Some(redis) => Some(Arc::new(Cluster::new(redis, metrics.store_errors())?)),
            None => None,
        };
        let store = match (config.session.store, &cluster) {
            (StoreKind::Redis, Some(cluster)) => store::SessionStore::Redis(store::RedisStore::new(cluster.clone())),
            _ => store::SessionStore::Cookie(store::CookieStore::new(cluster.clone())),
        };
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
            store,
            cluster,
            replays: backchannel::ReplayGuard::default(),
            backchannel_logouts: metrics.backchannel_logouts(),
            revocations: metrics.revocations(),
            config: config.clone(),
        })
    }

    /// The request's session: it opens, has not ended, and was not signed out.
    pub async fn session(
        &self,
        headers: &http::HeaderMap,
        now: u64,
    ) -> Result<Option<Arc<session::Session>>, store::StoreUnavailable> {
        let presented = self.presented(&cookies::RequestCookies::read(headers, None), now);
        self.resolve(presented, now).await
    }

    /// What cookies already read present, found without I/O: with the cookie store
    /// (and for a record cached from Redis) the session itself.
    pub fn presented(&self, cookies: &cookies::RequestCookies, now: u64) -> store::Presented {
        self.store.presented(cookies, &self.sealing(), now)
    }

    /// The session of what was presented, read from the store when it must be.
    pub async fn resolve(
        &self,
        presented: store::Presented,
        now: u64,
    ) -> Result<Option<Arc<session::Session>>, store::StoreUnavailable> {
        match presented {
            store::Presented::Nothing => Ok(None),
            store::Presented::Session(session) => Ok(Some(session)),
            // Boxed: the Redis read is a large future, on a path the hot one skips.
            store::Presented::Handle(sid) => Box::pin(self.store.fetch(&sid, &self.sealing(), now)).await,
        }
    }

    /// Ends every session `who` names that signed in until now (a back-channel logout,
    /// an operator's revocation), on every replica the store reaches.
    pub async fn revoke(&self, who: &denylist::Denied) -> Result<store::Revoked, store::StoreUnavailable> {
        let now = now_secs();
        // The longest a session signed in until now could last.
        let until = now + self.config.session.lifetime.as_secs();
        self.store.revoke(who, until, now).await
    }

    /// The cookie names and keys, as the stores need them.
    pub fn sealing(&self) -> store::Sealing<'_> {
        store::Sealing { jar: &self.jar, sealer: &self.sealer }
    }

    /// Redis, when `[redis]` is configured.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// How long a refresh may take, so how long another replica waits for it: the
    /// token request and a JWKS fetch, each bounded by `provider.http_timeout`.
    pub fn refresh_bound(&self) -> Duration {
        self.config.provider.http_timeout * 2 + Duration::from_secs(1)
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
        tracing::info!(
            issuer = %metadata.issuer,
            keys,
            backchannel_logout_supported = metadata.backchannel_logout_supported,
            "identity provider loaded"
        );
        if !metadata.backchannel_logout_supported {
            tracing::info!(
                "the provider does not advertise back-channel logout: /auth/backchannel-logout answers, \
                 but sessions it ends centrally end here only at logout, revocation or expiry"
            );
        }
        let _ = self.provider.set(Arc::new(Provider { metadata, jwks, oauth, expect }));
        Ok(())
    }

    /// The back-channel client, for `oauth2` requests ([`send`]) and revocation.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// The other replicas' events reach the store (see `cluster/events.rs`).
impl crate::cluster::events::Follower for Auth {
    async fn resync(&self) {
        self.store.resync().await;
    }

    fn event(&self, event: crate::cluster::events::Event) {
        self.store.event(event);
    }
}

/// Sends an `oauth2` request over the gateway's back-channel client. Owns its client
/// so the future borrows nothing (the connection tasks must be `Send`).
pub async fn send(http: reqwest::Client, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let (mut parts, body) = request.into_parts();
    crate::trace_context::add_current(&mut parts.headers);
    let response = http.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
    let mut answer = http::Response::builder().status(response.status());
    if let Some(headers) = answer.headers_mut() {
        *headers = response.headers().clone();
    }
    let body = response.bytes().await?;
    Ok(answer.body(body.to_vec()).expect("status and headers come from a valid response"))
}

pub use crate::oidc::now_secs;
