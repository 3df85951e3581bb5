//! A Cognito-compatible identity provider, **for tests and the demo only**.
//!
//! Real Cognito cannot be reached from a test machine, and no emulator implements its
//! Hosted UI OAuth endpoints, so Portcullis carries this small, faithful stand-in. It
//! serves one user pool over plain HTTP with in-memory state and passwords from its
//! settings: never put it in front of real users.
//!
//! What it reproduces (see `docs/dev-idp.md` for the full contract):
//! - discovery and JWKS under `/{userPoolId}/.well-known/`, issuer
//!   `{base_url}/{userPoolId}` or, with `cognito_issuer`, Cognito's original or updated
//!   issuer of the pool, two RSA keys (ID and access tokens use different `kid`s);
//! - `/oauth2/authorize` → `/login` sign-in form, a `cognito` session cookie that signs
//!   the next authorize in silently, errors redirected as `?error=` the way Cognito does;
//! - `/oauth2/token` (authorization code with PKCE S256, refresh with or without
//!   rotation), `/oauth2/revoke`, `/logout`, `/oauth2/userInfo`, with Cognito's error
//!   bodies;
//! - knobs for tests: token lifetimes, rotation and grace, token-endpoint failures,
//!   key rotation, and counters of the grants issued.

mod authorize;
mod client_auth;
mod discovery;
mod keys;
mod logout;
mod pages;
mod revoke;
pub mod settings;
mod store;
mod token;
mod tokens;
mod userinfo;

pub use keys::KeyUse;
pub use settings::{ClientSettings, Settings, UserSettings};
pub use store::{Counters, TokenFailure};

use axum::Router;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Everything the handlers share.
pub struct Provider {
    settings: Settings,
    /// `http://host:port` the provider is reached at.
    base_url: String,
    issuer: String,
    keys: keys::Keys,
    store: store::Store,
    /// `(grant_type, traceparent)` of each token request that carried a traceparent.
    traced: std::sync::Mutex<Vec<(String, String)>>,
}

impl Provider {
    fn client(&self, client_id: &str) -> Option<&ClientSettings> {
        self.settings.clients.iter().find(|c| c.client_id == client_id)
    }

    fn user(&self, username: &str) -> Option<&UserSettings> {
        self.settings.users.iter().find(|u| u.username == username)
    }
}

/// A running provider: its address, and the knobs and counters tests use.
#[derive(Clone)]
pub struct DevIdp {
    provider: Arc<Provider>,
    addr: SocketAddr,
}

impl DevIdp {
    /// Starts the provider on a free loopback port; it serves until the process ends.
    pub async fn start(settings: Settings) -> std::io::Result<DevIdp> {
        Self::serve_on(TcpListener::bind("127.0.0.1:0").await?, settings)
    }

    /// Serves on `listener` in a background task.
    pub fn serve_on(listener: TcpListener, settings: Settings) -> std::io::Result<DevIdp> {
        settings.validate().map_err(std::io::Error::other)?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let issuer = match settings.cognito_issuer {
            Some(form) => form.issuer(&settings.region, &settings.user_pool_id),
            None => format!("{base_url}/{}", settings.user_pool_id),
        };
        let provider = Arc::new(Provider {
            settings,
            base_url,
            issuer,
            keys: keys::Keys::generate(),
            store: Default::default(),
            traced: Default::default(),
        });
        let app = router(provider.clone());
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "dev identity provider stopped");
            }
        });
        Ok(DevIdp { provider, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the Hosted UI endpoints are: `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.provider.base_url
    }

    /// The `iss` of every token: `{base_url}/{userPoolId}`, or Cognito's own issuer
    /// of the pool with `cognito_issuer` set (discovery is served here all the same).
    pub fn issuer(&self) -> &str {
        &self.provider.issuer
    }

    pub fn settings(&self) -> &Settings {
        &self.provider.settings
    }

    pub fn counters(&self) -> Counters {
        self.provider.store.counters()
    }

    /// `(grant_type, traceparent)` of every token request that carried a
    /// `traceparent`, in order: what a tracing system would link.
    pub fn traced_token_requests(&self) -> Vec<(String, String)> {
        self.provider.traced.lock().expect("traced lock").clone()
    }

    /// Makes the token endpoint misbehave until called again with `None`.
    pub fn fail_token_requests(&self, failure: Option<TokenFailure>) {
        self.provider.store.set_token_failure(failure);
    }

    /// Signs `claims` with the provider's current key for `key_use`: for tests that need
    /// tokens the real key signed but with claims the provider would never issue.
    pub fn sign(&self, key_use: keys::KeyUse, claims: &serde_json::Value) -> String {
        self.provider.keys.sign(key_use, claims)
    }

    /// As [`DevIdp::sign`], with more JWT header fields.
    pub fn sign_with_header(
        &self,
        key_use: keys::KeyUse,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> String {
        self.provider.keys.sign_with_header(key_use, header, claims)
    }

    /// Signs with new keys from now on; `keep_old` keeps the previous keys published.
    pub fn rotate_keys(&self, keep_old: bool) {
        self.provider.keys.rotate(keep_old);
    }
}

fn router(provider: Arc<Provider>) -> Router {
    let pool = provider.settings.user_pool_id.clone();
    Router::new()
        .route("/", get(pages::index))
        .route(&format!("/{pool}/.well-known/openid-configuration"), get(discovery::openid_configuration))
        .route(&format!("/{pool}/.well-known/jwks.json"), get(discovery::jwks))
        .route("/oauth2/authorize", get(authorize::authorize))
        .route("/login", get(authorize::login_form).post(authorize::login_submit))
        .route("/error", get(authorize::error_page))
        .route("/oauth2/token", post(token::token))
        .route("/oauth2/revoke", post(revoke::revoke))
        .route("/oauth2/userInfo", get(userinfo::userinfo).post(userinfo::userinfo))
        .route("/logout", get(logout::logout))
        .with_state(provider)
}
