//! Silent refresh: new tokens before the access token expires, once per session however
//! many requests arrive at the same time.
//!
//! Rules (issue: "sessions that die" is the top complaint against the peers):
//! 1. Refresh when the access token expires within `session.refresh_skew`.
//! 2. Single flight: concurrent requests of one session (keyed by a hash of its refresh
//!    token, never the token itself) share one refresh and its result, across workers.
//!    The refresh runs in a task of its own, so it finishes and is kept even when every
//!    request waiting for it is gone.
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
use tokio::sync::watch;

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

/// One lock over both maps: a request must see a refresh either still in flight or
/// already recent, never in between (with two maps locked apart, a request arriving
/// as a refresh ended found neither and refreshed again, with a rotated-out token).
#[derive(Default)]
pub struct Refresher {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Refreshes running, each in its own task, with the channel its outcome comes on.
    in_flight: HashMap<Key, watch::Receiver<Option<Outcome>>>,
    recent: HashMap<Key, (Instant, Outcome)>,
}

impl Refresher {
    pub async fn refresh(auth: &Arc<Auth>, session: &Session, request_id: &str) -> Outcome {
        let Some(refresh_token) = session.refresh_token.clone() else { return Outcome::Ended };
        let key: Key = Sha256::digest(refresh_token.as_bytes()).into();
        let (owner, session, request_id) = (auth.clone(), session.clone(), request_id.to_owned());
        let exchange = async move { exchange(&owner, &session, &refresh_token, &request_id).await };
        auth.refresher.once(key, || exchange).await
    }

    /// The outcome of `exchange` for the refresh token hashed to `key`, run once for all
    /// requests in flight and reused by those arriving within [`LATE_REQUEST_GRACE`].
    ///
    /// The exchange runs in a task of its own: when every request waiting for it is
    /// gone (a browser navigating away aborts its fetches), it still finishes and its
    /// outcome is kept. Dropped halfway, the provider could have rotated the refresh
    /// token without the new one being saved anywhere.
    async fn once<F>(&self, key: Key, exchange: impl FnOnce() -> F) -> Outcome
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let (mut outcome, start) = {
            let mut state = self.state.lock().expect("refresh lock");
            if let Some((at, outcome)) = state.recent.get(&key)
                && at.elapsed() < LATE_REQUEST_GRACE
            {
                return outcome.clone();
            }
            match state.in_flight.get(&key) {
                // A closed channel still listed is a task that ended without an answer
                // (it takes itself out before answering): start afresh.
                Some(running) if running.has_changed().is_ok() => (running.clone(), None),
                _ => {
                    let (done, outcome) = watch::channel(None);
                    state.in_flight.insert(key, outcome.clone());
                    (outcome, Some(done))
                }
            }
        };
        if let Some(done) = start {
            let shared = self.state.clone();
            let exchange = exchange();
            tokio::spawn(async move {
                let outcome = exchange.await;
                let mut state = shared.lock().expect("refresh lock");
                state.in_flight.remove(&key);
                if !matches!(outcome, Outcome::Unavailable) {
                    state.recent.retain(|_, (at, _)| at.elapsed() < LATE_REQUEST_GRACE);
                    state.recent.insert(key, (Instant::now(), outcome.clone()));
                }
                drop(state);
                let _ = done.send(Some(outcome));
            });
        }
        let answer = outcome.wait_for(Option::is_some).await.map(|answer| answer.clone());
        match answer {
            Ok(Some(answer)) => answer,
            // The task ended without an answer (it panicked, or its runtime stopped):
            // forget it, so the next request tries again.
            _ => {
                let mut state = self.state.lock().expect("refresh lock");
                if state.in_flight.get(&key).is_some_and(|running| running.same_channel(&outcome)) {
                    state.in_flight.remove(&key);
                }
                Outcome::Unavailable
            }
        }
    }
}

async fn exchange(auth: &Auth, session: &Session, refresh_token: &str, request_id: &str) -> Outcome {
    let Some(provider) = auth.provider() else { return Outcome::Unavailable };
    // Lifetimes count from the asking, as at the callback: the provider's clock started
    // no earlier, so the token is never believed to live longer than it does.
    let asked_at = now_secs();
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
    let mut refreshed = session.clone();
    refreshed.access_token = tokens.access_token().secret().clone();
    refreshed.access_expires_at = asked_at + tokens.expires_in().map_or(3600, |d| d.as_secs());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An exchange that counts itself, waits `millis`, and answers `outcome`.
    fn counted(
        exchanges: &Arc<AtomicUsize>,
        millis: u64,
        outcome: Outcome,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>> + use<> {
        let exchanges = exchanges.clone();
        move || {
            Box::pin(async move {
                exchanges.fetch_add(1, Ordering::SeqCst);
                if millis == 0 {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(Duration::from_millis(millis)).await;
                }
                outcome
            })
        }
    }

    /// Requests of one session on every worker thread, some while the refresh runs and
    /// some just as it ends: one exchange for them all, every round.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_exchange_however_the_requests_fall() {
        for round in 0..2000 {
            let refresher = Arc::new(Refresher::default());
            let exchanges = Arc::new(AtomicUsize::new(0));
            let requests: Vec<_> = (0..16)
                .map(|request| {
                    let (refresher, exchange) = (refresher.clone(), counted(&exchanges, 0, Outcome::Ended));
                    tokio::spawn(async move {
                        for _ in 0..request % 4 {
                            tokio::task::yield_now().await;
                        }
                        refresher.once([7; 32], exchange).await
                    })
                })
                .collect();
            for request in requests {
                assert!(matches!(request.await.unwrap(), Outcome::Ended));
            }
            assert_eq!(exchanges.load(Ordering::SeqCst), 1, "round {round}");
        }
    }

    #[tokio::test]
    async fn an_unavailable_provider_is_asked_again() {
        let refresher = Refresher::default();
        let exchanges = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let outcome = refresher.once([1; 32], counted(&exchanges, 0, Outcome::Unavailable)).await;
            assert!(matches!(outcome, Outcome::Unavailable));
        }
        assert_eq!(exchanges.load(Ordering::SeqCst), 2);
    }

    /// An exchange that ends without an answer while nobody waits (it panicked) is
    /// not taken for a refresh in flight: the next request asks again.
    #[tokio::test]
    async fn a_refresh_that_died_unwatched_is_tried_again() {
        let refresher = Refresher::default();
        let gone = tokio::time::timeout(
            Duration::from_millis(10),
            refresher.once([3; 32], || async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                panic!("the exchange dies (this panic is the test's)")
            }),
        )
        .await;
        assert!(gone.is_err());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let exchanges = Arc::new(AtomicUsize::new(0));
        let again = refresher.once([3; 32], counted(&exchanges, 0, Outcome::Ended)).await;
        assert!(matches!(again, Outcome::Ended), "asked again, not told the dead one was unavailable");
        assert_eq!(exchanges.load(Ordering::SeqCst), 1);
    }

    /// The only request waiting gives up (its client went away) while the provider
    /// answers: the outcome is still kept, and the next request does not ask again.
    #[tokio::test]
    async fn a_refresh_nobody_waits_for_any_more_still_finishes() {
        let refresher = Refresher::default();
        let exchanges = Arc::new(AtomicUsize::new(0));
        let gone = tokio::time::timeout(
            Duration::from_millis(20),
            refresher.once([2; 32], counted(&exchanges, 100, Outcome::Ended)),
        )
        .await;
        assert!(gone.is_err(), "the request gave up before the answer");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let later = refresher.once([2; 32], counted(&exchanges, 0, Outcome::Unavailable)).await;
        assert!(matches!(later, Outcome::Ended), "the kept outcome, not a new exchange");
        assert_eq!(exchanges.load(Ordering::SeqCst), 1);
    }
}
