//! Silent refresh: new tokens before the access token expires, once per session however
//! many requests arrive at the same time.
//!
//! Rules (issue: "sessions that die" is the top complaint against the peers):
//! 1. Refresh when the access token expires within `session.refresh_skew`.
//! 2. Single flight: concurrent requests of one session (keyed by a hash of its refresh
//!    token, never the token itself) share one refresh and its result, across workers.
//! 3. Rotation-safe: a result is kept for [`LATE_REQUEST_GRACE`] under the old token's
//!    hash, so a late request still carrying the pre-refresh cookie (another tab, a
//!    slow request) gets the new session instead of presenting a rotated token again,
//!    which makes some providers revoke the whole grant.
//! 4. The provider's refresh token is kept when it returns none (Cognito without
//!    rotation), replaced when it returns one.
//! 5. `invalid_grant` ends the session; a network error or 5xx is `Unavailable`, never
//!    a logout: the caller forwards while the old access token is valid, else 503.

use super::session::Session;
use super::{Auth, now_secs};
use crate::oidc::verify::verify_id_token;
use oauth2::{RefreshToken, RequestTokenError, TokenResponse};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

pub const LATE_REQUEST_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub enum Outcome {
    Refreshed(Arc<Session>),
    /// The provider says the grant is over (`invalid_grant`): log the user out.
    Ended,
    /// The provider could not be asked (down, slow, 5xx): try again later.
    Unavailable,
}

type Key = [u8; 32];

#[derive(Default)]
pub struct Refresher {
    in_flight: Mutex<HashMap<Key, Arc<OnceCell<Outcome>>>>,
    recent: Mutex<HashMap<Key, (Instant, Outcome)>>,
}

impl Refresher {
    pub async fn refresh(&self, auth: &Auth, session: &Session, request_id: &str) -> Outcome {
        let Some(refresh_token) = &session.refresh_token else { return Outcome::Ended };
        let key: Key = Sha256::digest(refresh_token.as_bytes()).into();
        if let Some(outcome) = self.recent(&key) {
            return outcome;
        }
        let cell = self.in_flight.lock().expect("refresh lock").entry(key).or_default().clone();
        let outcome = cell.get_or_init(|| exchange(auth, session, refresh_token, request_id)).await.clone();
        {
            let mut in_flight = self.in_flight.lock().expect("refresh lock");
            if in_flight.get(&key).is_some_and(|current| Arc::ptr_eq(current, &cell)) {
                in_flight.remove(&key);
            }
        }
        if !matches!(outcome, Outcome::Unavailable) {
            let mut recent = self.recent.lock().expect("refresh lock");
            recent.retain(|_, (at, _)| at.elapsed() < LATE_REQUEST_GRACE);
            recent.entry(key).or_insert_with(|| (Instant::now(), outcome.clone()));
        }
        outcome
    }

    fn recent(&self, key: &Key) -> Option<Outcome> {
        let recent = self.recent.lock().expect("refresh lock");
        recent.get(key).filter(|(at, _)| at.elapsed() < LATE_REQUEST_GRACE).map(|(_, outcome)| outcome.clone())
    }
}

async fn exchange(auth: &Auth, session: &Session, refresh_token: &str, request_id: &str) -> Outcome {
    let Some(provider) = auth.provider() else { return Outcome::Unavailable };
    let answer = provider
        .oauth
        .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
        .request_async(&|request| super::send(auth.http().clone(), request))
        .await;
    let tokens = match answer {
        Ok(tokens) => tokens,
        Err(RequestTokenError::ServerResponse(error)) if error.error().as_ref() == "invalid_grant" => {
            tracing::info!(request_id, sub = %session.sub, "refresh refused (invalid_grant): the session is over");
            return Outcome::Ended;
        }
        Err(err) => {
            tracing::warn!(request_id, error = %err, "refresh failed; the session is kept");
            return Outcome::Unavailable;
        }
    };
    let now = now_secs();
    let mut refreshed = session.clone();
    refreshed.access_token = tokens.access_token().secret().clone();
    refreshed.access_expires_at = now + tokens.expires_in().map_or(3600, |d| d.as_secs());
    if let Some(scopes) = tokens.scopes() {
        refreshed.scope = super::endpoints::granted_scope(Some(scopes), &[]);
    }
    if let Some(rotated) = tokens.refresh_token() {
        refreshed.refresh_token = Some(rotated.secret().clone());
    }
    if let Some(id_token) = tokens.extra_fields().id_token.as_deref() {
        match verify_id_token(&provider.jwks, id_token, &provider.expect, None).await {
            Ok(claims) if claims.get("sub").and_then(|s| s.as_str()) == Some(session.sub.as_str()) => {
                super::endpoints::update_from_claims(auth, &mut refreshed, &claims);
                if refreshed.id_token.is_some() {
                    refreshed.id_token = Some(id_token.to_owned());
                }
            }
            Ok(_) => {
                tracing::warn!(request_id, "refreshed ID token names another subject: session ended");
                return Outcome::Ended;
            }
            Err(err) => {
                tracing::warn!(request_id, error = %err, "refreshed ID token rejected; the session is kept");
                return Outcome::Unavailable;
            }
        }
    }
    tracing::debug!(request_id, sub = %session.sub, "session refreshed");
    Outcome::Refreshed(Arc::new(refreshed))
}
