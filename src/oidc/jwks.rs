//! The provider's signing keys, cached by `kid`.
//!
//! Rules:
//! 1. A token whose `kid` is cached is checked without any fetch.
//! 2. An unknown `kid` triggers a refetch: one fetch in flight for all requests (the
//!    others wait for its result). A refetch that still does not know the `kid` (a
//!    miss) starts a cool-down without refetches; otherwise a flood of tokens with
//!    made-up `kid`s would make the gateway hammer the provider.
//! 3. A failed fetch keeps the cached keys: a provider outage does not stop the gateway
//!    from verifying tokens signed with keys it already knows.

use super::{ProviderError, get_json};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// One verification key, with the algorithm the provider declared for it, if any.
#[derive(Clone)]
pub struct VerifyingKey {
    pub key: DecodingKey,
    pub algorithm: Option<Algorithm>,
}

pub struct JwksCache {
    http: reqwest::Client,
    uri: String,
    cooldown: Duration,
    keys: RwLock<Arc<HashMap<String, VerifyingKey>>>,
    /// Held while fetching; remembers the last miss.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksCache {
    pub fn new(http: reqwest::Client, uri: String, cooldown: Duration) -> Self {
        Self { http, uri, cooldown, keys: RwLock::new(Arc::default()), fetching: tokio::sync::Mutex::new(None) }
    }

    /// Fetches the key set now (at startup, or when readiness is re-checked).
    pub async fn refresh(&self) -> Result<usize, ProviderError> {
        let _fetching = self.fetching.lock().await;
        self.fetch().await
    }

    pub fn len(&self) -> usize {
        self.keys.read().expect("jwks lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key for `kid`, refetching the set once if it is unknown (rules 2 and 3).
    pub async fn key(&self, kid: &str) -> Option<VerifyingKey> {
        if let Some(key) = self.cached(kid) {
            return Some(key);
        }
        let mut last_miss = self.fetching.lock().await;
        // Someone else may have fetched while this request waited for the lock.
        if let Some(key) = self.cached(kid) {
            return Some(key);
        }
        if last_miss.is_some_and(|at| at.elapsed() < self.cooldown) {
            return None;
        }
        if let Err(err) = self.fetch().await {
            tracing::warn!(error = %err, "could not refresh the provider's signing keys; keeping the cached ones");
        }
        let found = self.cached(kid);
        if found.is_none() {
            *last_miss = Some(Instant::now());
        }
        found
    }

    fn cached(&self, kid: &str) -> Option<VerifyingKey> {
        self.keys.read().expect("jwks lock").get(kid).cloned()
    }

    async fn fetch(&self) -> Result<usize, ProviderError> {
        let set: JwkSet = get_json(&self.http, "JWKS", &self.uri).await?;
        let keys: HashMap<String, VerifyingKey> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                let algorithm = jwk.common.key_algorithm.and_then(|alg| Algorithm::from_str(&alg.to_string()).ok());
                Some((kid, VerifyingKey { key, algorithm }))
            })
            .collect();
        if keys.is_empty() {
            return Err(ProviderError::Invalid {
                what: "JWKS",
                url: self.uri.clone(),
                detail: "no usable signing key".into(),
            });
        }
        let count = keys.len();
        *self.keys.write().expect("jwks lock") = Arc::new(keys);
        Ok(count)
    }
}
