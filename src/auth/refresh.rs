//! Silent refresh: new tokens before the access token expires, once per session however
//! many requests arrive at the same time. When a refresh is due is `freshness.rs`'s
//! rule; this module runs the exchange.
//!
//! Rules (issue: "sessions that die" is the top complaint against the peers):
//! 1. Single flight: concurrent requests of one session state (keyed by a hash of its
//!    refresh and access tokens, never the tokens themselves) share one refresh and its
//!    result, across workers. The refresh runs in a task of its own, so it finishes and
//!    is kept even when every request waiting for it is gone.
//! 2. Rotation-safe: a result is kept for [`LATE_REQUEST_GRACE`] under the old state's
//!    key, so a late request still carrying the pre-refresh cookie (another tab, a slow
//!    request) gets the new session instead of presenting a rotated token again, which
//!    makes some providers revoke the whole grant. The key includes the access token:
//!    without rotation the refresh token never changes, and a key of it alone would hand
//!    the same kept (and by then due) result to the refreshed session too.
//! 3. The provider's refresh token is kept when it returns none (Cognito without
//!    rotation), replaced when it returns one.
//! 4. `invalid_grant` ends the session. Anything else is `Unavailable`, never a logout:
//!    a network error, a timeout or a 5xx (the provider is down or slow), and the other
//!    OAuth errors (`invalid_client`, `unauthorized_client`…), which are the operator's
//!    configuration, not the user's doing: those are logged as errors naming the setting.
//! 5. Back-off: after a failed exchange, the session's next requests are answered
//!    `Unavailable` at once, without asking the provider, for [`FIRST_BACKOFF`],
//!    doubling with each failure in a row up to [`MAX_BACKOFF`]. A hanging provider
//!    then costs one request per back-off the full `provider.http_timeout`, not every one.
//! 6. Every exchange is counted by outcome (`portcullis_refresh_total{outcome}`).
//! 7. Across replicas (with `[redis]`): the exchange runs once in the cluster
//!    (`cluster/single_flight.rs`), its result (sealed) kept in Redis for late requests
//!    on any replica. With the Redis store, the new record is written before the result
//!    is shared, and a Redis outage means no refresh (a rotated refresh token must
//!    never live in one process only); with cookie sessions it means the refresh is
//!    coordinated in this process alone, logged.

use super::session::Session;
use super::{Auth, now_secs};
use crate::cluster::single_flight::{self, Shared};
use crate::config::StoreKind;
use crate::metrics::Outcomes;
use crate::oidc::verify::verify_id_token;
use crate::session::seal::Sealer;
use oauth2::basic::BasicErrorResponseType;
use oauth2::{RefreshToken, RequestTokenError, TokenResponse};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

pub const LATE_REQUEST_GRACE: Duration = Duration::from_secs(60);
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(15);

/// What a request is told about its session's refresh.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `kept`: the result of an earlier refresh, kept for late requests (it may have
    /// become due itself since), rather than of the exchange this request waited for.
    Refreshed { session: Arc<Session>, kept: bool },
    /// The provider says the grant is over (`invalid_grant`): log the user out.
    Ended,
    /// Not refreshed this time (the provider is down, slow, or refuses the gateway's
    /// configuration): the session is kept, and its provider is asked again once
    /// `retry_after` has passed.
    Unavailable { retry_after: Duration },
    /// Not refreshed: the session store (Redis) did not answer.
    StoreDown,
}

/// What one exchange with the provider came to.
#[derive(Debug, Clone)]
pub enum Exchanged {
    Refreshed(Arc<Session>),
    Ended,
    /// No usable answer: unreachable, timed out, 5xx, a malformed answer.
    Unavailable,
    /// Refused for the gateway's own configuration (`invalid_client`…).
    RefusedConfig,
    /// Another replica's refresh of this session state, read from Redis.
    Theirs(Arc<Session>),
    /// Redis, needed to refresh, did not answer: the provider was not asked.
    StoreUnavailable,
}

impl Exchanged {
    /// The `outcome` label of `portcullis_refresh_total`, for an exchange this replica
    /// made with the provider.
    pub fn label(&self) -> Option<&'static str> {
        match self {
            Exchanged::Refreshed(_) => Some("refreshed"),
            Exchanged::Ended => Some("ended"),
            Exchanged::Unavailable => Some("unavailable"),
            Exchanged::RefusedConfig => Some("refused_config"),
            Exchanged::Theirs(_) | Exchanged::StoreUnavailable => None,
        }
    }

    /// The result as shared with the other replicas, and for how long; failures are
    /// not shared. Sealed (it holds tokens) under a name that binds in the refresh's
    /// `id`: a result copied under another session's key by someone with write access
    /// to Redis does not open there.
    fn shared(&self, id: &str, sealer: &Sealer) -> Option<(Vec<u8>, Duration)> {
        let bytes = match self {
            Exchanged::Refreshed(session) => {
                let plain = serde_json::to_vec(&**session).expect("a session serializes");
                let sealed = sealer.seal(&format!("{SHARED}:{id}"), &plain);
                [b"R".as_slice(), sealed.as_bytes()].concat()
            }
            Exchanged::Ended => b"E".to_vec(),
            _ => return None,
        };
        Some((bytes, LATE_REQUEST_GRACE))
    }

    /// A shared result for the refresh `id` of `before`; one of another sign-in is
    /// refused even when it opens.
    fn from_shared(bytes: &[u8], id: &str, before: &Session, sealer: &Sealer) -> Option<Exchanged> {
        match bytes.split_first()? {
            (b'E', []) => Some(Exchanged::Ended),
            (b'R', sealed) => {
                let plain = sealer.open(&format!("{SHARED}:{id}"), std::str::from_utf8(sealed).ok()?)?;
                let session: Session = serde_json::from_slice(&plain).ok()?;
                (session.sid == before.sid && session.sub == before.sub).then(|| Exchanged::Theirs(Arc::new(session)))
            }
            _ => None,
        }
    }
}

/// The name shared refresh results are sealed under.
const SHARED: &str = "portcullis-refresh-result";

type Key = [u8; 32];

/// One lock over the maps: a request must see a refresh either still in flight or
/// already recent, never in between (with two maps locked apart, a request arriving
/// as a refresh ended found neither and refreshed again, with a rotated-out token).
#[derive(Default)]
pub struct Refresher {
    state: Arc<Mutex<State>>,
    outcomes: Outcomes,
}

#[derive(Default)]
struct State {
    /// Refreshes running, each in its own task, with the channel its outcome comes on.
    in_flight: HashMap<Key, watch::Receiver<Option<Outcome>>>,
    /// Refreshed or ended sessions, for late requests.
    recent: HashMap<Key, (Instant, Outcome)>,
    /// Sessions whose last exchange failed: not asked again before `until`.
    backoff: HashMap<Key, Backoff>,
}

#[derive(Clone, Copy)]
struct Backoff {
    until: Instant,
    failures: u32,
}

impl Refresher {
    pub fn new(outcomes: Outcomes) -> Self {
        Self { state: Default::default(), outcomes }
    }

    pub async fn refresh(auth: &Arc<Auth>, session: &Session, request_id: &str) -> Outcome {
        let Some(refresh_token) = session.refresh_token.clone() else { return Outcome::Ended };
        let key: Key = Sha256::new()
            .chain_update(refresh_token.as_bytes())
            .chain_update([0])
            .chain_update(session.access_token.as_bytes())
            .finalize()
            .into();
        let (owner, session, request_id) = (auth.clone(), session.clone(), request_id.to_owned());
        let exchange = async move {
            let here = || Box::pin(exchange_and_save(&owner, &session, &refresh_token, &request_id));
            let Some(cluster) = owner.cluster() else { return here().await };
            let mut here = Some(here);
            let id: String = key.iter().map(|byte| format!("{byte:02x}")).collect();
            let shared = single_flight::once(
                cluster,
                &id,
                owner.refresh_bound(),
                |bytes| Exchanged::from_shared(bytes, &id, &session, &owner.sealer),
                || here.take().expect("the exchange is asked for once")(),
                |exchanged| exchanged.shared(&id, &owner.sealer),
            )
            .await;
            match (shared, owner.config.session.store) {
                (Ok(Shared::Ours(exchanged) | Shared::Theirs(exchanged)), _) => exchanged,
                (Err(err), StoreKind::Redis) => {
                    tracing::warn!(request_id, error = %err, "no refresh: Redis did not answer");
                    Exchanged::StoreUnavailable
                }
                (Err(err), StoreKind::Cookie) => match here.take() {
                    Some(here) => {
                        tracing::warn!(
                            request_id,
                            error = %err,
                            "Redis did not answer: this refresh is coordinated in this process only"
                        );
                        here().await
                    }
                    None => Exchanged::Unavailable,
                },
            }
        };
        auth.refresher.once(key, || exchange).await
    }

    /// The outcome of `exchange` for the session state hashed to `key`, run once for all
    /// requests in flight and reused by those arriving within [`LATE_REQUEST_GRACE`]
    /// (or, after a failure, within its back-off).
    ///
    /// The exchange runs in a task of its own: when every request waiting for it is
    /// gone (a browser navigating away aborts its fetches), it still finishes and its
    /// outcome is kept. Dropped halfway, the provider could have rotated the refresh
    /// token without the new one being saved anywhere.
    async fn once<F>(&self, key: Key, exchange: impl FnOnce() -> F) -> Outcome
    where
        F: Future<Output = Exchanged> + Send + 'static,
    {
        let (mut outcome, start) = {
            let mut state = self.state.lock().expect("refresh lock");
            let now = Instant::now();
            if let Some((at, outcome)) = state.recent.get(&key)
                && now.duration_since(*at) < LATE_REQUEST_GRACE
            {
                return match outcome {
                    Outcome::Refreshed { session, .. } => Outcome::Refreshed { session: session.clone(), kept: true },
                    other => other.clone(),
                };
            }
            if let Some(backoff) = state.backoff.get(&key)
                && backoff.until > now
            {
                return Outcome::Unavailable { retry_after: backoff.until - now };
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
            let (shared, outcomes) = (self.state.clone(), self.outcomes.clone());
            let exchange = exchange();
            // Under the request's trace: the provider sees the request that asked.
            tokio::spawn(crate::trace_context::propagate(async move {
                let exchanged = exchange.await;
                if let Some(label) = exchanged.label() {
                    outcomes.count(label);
                }
                let outcome = shared.lock().expect("refresh lock").settle(key, exchanged);
                let _ = done.send(Some(outcome));
            }));
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
                Outcome::Unavailable { retry_after: Duration::ZERO }
            }
        }
    }
}

impl State {
    /// Records a finished exchange: kept for late requests, or a back-off after a
    /// failure (growing with each failure in a row). Returns what its requests are told.
    fn settle(&mut self, key: Key, exchanged: Exchanged) -> Outcome {
        let now = Instant::now();
        self.in_flight.remove(&key);
        let outcome = match exchanged {
            Exchanged::Refreshed(session) => Outcome::Refreshed { session, kept: false },
            // Made elsewhere, maybe a while ago: checked again like a kept result.
            Exchanged::Theirs(session) => Outcome::Refreshed { session, kept: true },
            Exchanged::Ended => Outcome::Ended,
            Exchanged::StoreUnavailable => return Outcome::StoreDown,
            Exchanged::Unavailable | Exchanged::RefusedConfig => {
                // A failure soon after the last back-off ended is one more in a row.
                self.backoff.retain(|_, backoff| backoff.until + MAX_BACKOFF > now);
                let failures = self.backoff.get(&key).map_or(0, |backoff| backoff.failures) + 1;
                let delay = FIRST_BACKOFF.saturating_mul(1 << (failures - 1).min(8)).min(MAX_BACKOFF);
                self.backoff.insert(key, Backoff { until: now + delay, failures });
                return Outcome::Unavailable { retry_after: delay };
            }
        };
        self.backoff.remove(&key);
        self.recent.retain(|_, (at, _)| now.duration_since(*at) < LATE_REQUEST_GRACE);
        self.recent.insert(key, (now, outcome.clone()));
        outcome
    }
}

/// The exchange, and what it came to saved in the session store.
async fn exchange_and_save(auth: &Auth, session: &Session, refresh_token: &str, request_id: &str) -> Exchanged {
    let exchanged = exchange(auth, session, refresh_token, request_id).await;
    auth.store.settle_refresh(session, exchanged, &auth.sealing()).await
}

async fn exchange(auth: &Auth, session: &Session, refresh_token: &str, request_id: &str) -> Exchanged {
    let Some(provider) = auth.provider() else { return Exchanged::Unavailable };
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
        Err(RequestTokenError::ServerResponse(error)) => {
            let code = error.error();
            let Some(check) = configuration_to_check(code) else {
                if *code == BasicErrorResponseType::InvalidGrant {
                    tracing::info!(request_id, sub = %session.sub, "refresh refused (invalid_grant): the session is over");
                    return Exchanged::Ended;
                }
                tracing::warn!(request_id, error = %code, "refresh failed; the session is kept");
                return Exchanged::Unavailable;
            };
            tracing::error!(
                request_id,
                error = %code,
                check,
                "the identity provider refused to refresh for the gateway's configuration; sessions are kept,                  but none can be refreshed until it is fixed"
            );
            return Exchanged::RefusedConfig;
        }
        Err(err) => {
            tracing::warn!(request_id, error = %err, "refresh failed; the session is kept");
            return Exchanged::Unavailable;
        }
    };
    let mut refreshed = session.clone();
    refreshed.access_token = tokens.access_token().secret().clone();
    refreshed.access_lifetime = tokens.expires_in().map_or(3600, |d| d.as_secs());
    refreshed.access_expires_at = asked_at + refreshed.access_lifetime;
    if let Some(scope) = super::scopes::granted(tokens.scopes(), &refreshed.access_token) {
        refreshed.scope = scope;
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
                return Exchanged::Ended;
            }
            Err(err) => {
                tracing::warn!(request_id, error = %err, "refreshed ID token rejected; the session is kept");
                return Exchanged::Unavailable;
            }
        }
    }
    tracing::debug!(request_id, sub = %session.sub, "session refreshed");
    Exchanged::Refreshed(Arc::new(refreshed))
}

/// For an OAuth error that means the provider will not refresh for this gateway's
/// client at all (RFC 6749 §5.2), the settings an operator should look at.
fn configuration_to_check(code: &BasicErrorResponseType) -> Option<&'static str> {
    match code {
        BasicErrorResponseType::InvalidClient => Some(
            "provider.client_id and provider.client_secret (PORTCULLIS_PROVIDER__CLIENT_SECRET): the secret may have \
             been rotated at the provider",
        ),
        BasicErrorResponseType::UnauthorizedClient | BasicErrorResponseType::UnsupportedGrantType => Some(
            "the app client at the provider: it must be allowed the refresh_token grant (Cognito: see \
             docs/cognito.md, Troubleshooting)",
        ),
        BasicErrorResponseType::InvalidRequest | BasicErrorResponseType::InvalidScope => {
            Some("provider.scopes and the app client's settings at the provider")
        }
        BasicErrorResponseType::InvalidGrant | BasicErrorResponseType::Extension(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An exchange that counts itself, waits `millis`, and answers `outcome`.
    fn counted(
        exchanges: &Arc<AtomicUsize>,
        millis: u64,
        outcome: Exchanged,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Exchanged> + Send>> + use<> {
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
                    let (refresher, exchange) = (refresher.clone(), counted(&exchanges, 0, Exchanged::Ended));
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

    /// A failed exchange is not tried again for its back-off, which doubles with each
    /// failure in a row up to its bound; a success ends it.
    #[tokio::test(start_paused = true)]
    async fn a_failing_provider_is_asked_again_after_a_growing_backoff() {
        let refresher = Refresher::default();
        let exchanges = Arc::new(AtomicUsize::new(0));
        let key = [1; 32];
        let mut expected = FIRST_BACKOFF;
        for failure in 1..=6 {
            let outcome = refresher.once(key, counted(&exchanges, 0, Exchanged::Unavailable)).await;
            let Outcome::Unavailable { retry_after } = outcome else { panic!("{outcome:?}") };
            assert_eq!(retry_after, expected, "failure {failure}");
            assert_eq!(exchanges.load(Ordering::SeqCst), failure);

            // Within the back-off: answered at once, the provider not asked.
            tokio::time::advance(retry_after - Duration::from_millis(1)).await;
            let waiting = refresher.once(key, counted(&exchanges, 0, Exchanged::Ended)).await;
            let Outcome::Unavailable { retry_after: left } = waiting else { panic!("{waiting:?}") };
            assert_eq!(left, Duration::from_millis(1));
            assert_eq!(exchanges.load(Ordering::SeqCst), failure);
            tokio::time::advance(Duration::from_millis(1)).await;
            expected = (expected * 2).min(MAX_BACKOFF);
        }
        assert_eq!(expected, MAX_BACKOFF, "the back-off reached its bound");
        let refused = refresher.once(key, counted(&exchanges, 0, Exchanged::RefusedConfig)).await;
        assert!(matches!(refused, Outcome::Unavailable { retry_after } if retry_after == MAX_BACKOFF));
        tokio::time::advance(MAX_BACKOFF).await;
        let back = refresher.once(key, counted(&exchanges, 0, Exchanged::Ended)).await;
        assert!(matches!(back, Outcome::Ended), "asked again once the back-off is over");
        assert_eq!(exchanges.load(Ordering::SeqCst), 8);

        // Another session is not held back by this one's failures.
        let other = refresher.once([9; 32], counted(&exchanges, 0, Exchanged::Ended)).await;
        assert!(matches!(other, Outcome::Ended));
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
        let again = refresher.once([3; 32], counted(&exchanges, 0, Exchanged::Ended)).await;
        assert!(matches!(again, Outcome::Ended), "asked again, not told the dead one was unavailable");
        assert_eq!(exchanges.load(Ordering::SeqCst), 1);
    }

    fn session(sid: &str) -> Session {
        serde_json::from_value(serde_json::json!({
            "sid": sid, "sub": "s", "username": null, "email": null, "email_verified": null,
            "groups": [], "scope": "", "profile": {}, "access_token": "a", "refresh_token": "r",
            "id_token": null, "access_expires_at": 1, "expires_at": 2,
        }))
        .unwrap()
    }

    /// A result shared through Redis opens only for the refresh and the sign-in it was
    /// made for: one copied under another key, or made for another session, is refused.
    #[test]
    fn a_shared_result_opens_only_for_its_own_refresh() {
        let sealer = Sealer::new(&[vec![7; 32]]).unwrap();
        let (mine, other) = (session("mine"), session("other"));
        let shared = Exchanged::Refreshed(Arc::new(mine.clone())).shared("id-1", &sealer).unwrap().0;
        let opened = Exchanged::from_shared(&shared, "id-1", &mine, &sealer);
        assert!(matches!(opened, Some(Exchanged::Theirs(s)) if s.sid == "mine"));
        assert!(Exchanged::from_shared(&shared, "id-2", &mine, &sealer).is_none(), "copied under another key");
        assert!(Exchanged::from_shared(&shared, "id-1", &other, &sealer).is_none(), "another sign-in's");
        let other_keys = Sealer::new(&[vec![8; 32]]).unwrap();
        assert!(Exchanged::from_shared(&shared, "id-1", &mine, &other_keys).is_none());
        assert!(Exchanged::Unavailable.shared("id-1", &sealer).is_none(), "failures are not shared");
        let ended = Exchanged::Ended.shared("id-1", &sealer).unwrap().0;
        assert!(matches!(Exchanged::from_shared(&ended, "id-1", &mine, &sealer), Some(Exchanged::Ended)));
    }

    /// The only request waiting gives up (its client went away) while the provider
    /// answers: the outcome is still kept, and the next request does not ask again.
    #[tokio::test]
    async fn a_refresh_nobody_waits_for_any_more_still_finishes() {
        let refresher = Refresher::default();
        let exchanges = Arc::new(AtomicUsize::new(0));
        let gone = tokio::time::timeout(
            Duration::from_millis(20),
            refresher.once([2; 32], counted(&exchanges, 100, Exchanged::Ended)),
        )
        .await;
        assert!(gone.is_err(), "the request gave up before the answer");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let later = refresher.once([2; 32], counted(&exchanges, 0, Exchanged::Unavailable)).await;
        assert!(matches!(later, Outcome::Ended), "the kept outcome, not a new exchange");
        assert_eq!(exchanges.load(Ordering::SeqCst), 1);
    }
}
