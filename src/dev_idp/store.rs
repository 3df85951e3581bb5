//! The provider's memory: authorization codes, refresh tokens, sign-in sessions and
//! revocations, plus the counters and failure knobs tests read and set.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What an authorization code stands for until it is redeemed (once, within 5 minutes).
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub username: String,
    pub auth_time: u64,
    pub expires_at: Instant,
}

/// A refresh token's grant. With rotation, a used token keeps working for the grace
/// period after its first use, then stops.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub client_id: String,
    pub username: String,
    pub scopes: Vec<String>,
    /// Shared by every token of one sign-in; revoking the refresh token revokes them all.
    pub origin_jti: String,
    pub auth_time: u64,
    pub expires_at: Instant,
    pub rotated_at: Option<Instant>,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub auth_time: u64,
    pub expires_at: Instant,
}

/// How the token endpoint should misbehave, for tests of a relying party's failure
/// handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFailure {
    /// Answer every token request with this status (e.g. 503).
    Status(u16),
    /// Wait this long before answering normally.
    Delay(Duration),
    /// Answer every token request with `400 invalid_grant`.
    InvalidGrant,
    /// Answer every token request with `400` and this OAuth error (`invalid_client`…).
    Refuse(&'static str),
}

/// How many grants the token endpoint has issued, by type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub authorization_code: u64,
    pub refresh_token: u64,
    pub revocations: u64,
    /// Token requests answered with an error (injected or real).
    pub token_errors: u64,
    /// Times the JWKS was served.
    pub jwks_fetches: u64,
    /// Refresh requests that sent a `scope` (some providers reject those).
    pub refresh_with_scope: u64,
}

#[derive(Default)]
struct Inner {
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RefreshGrant>,
    sessions: HashMap<String, Session>,
    revoked_origins: HashSet<String>,
    token_failure: Option<TokenFailure>,
}

#[derive(Default)]
pub struct Store {
    inner: Mutex<Inner>,
    authorization_code: AtomicU64,
    refresh_token: AtomicU64,
    revocations: AtomicU64,
    token_errors: AtomicU64,
    jwks_fetches: AtomicU64,
    refresh_with_scope: AtomicU64,
}

pub enum Counter {
    AuthorizationCode,
    RefreshToken,
    Revocation,
    TokenError,
    JwksFetch,
    RefreshWithScope,
}

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("store lock")
    }

    pub fn count(&self, counter: Counter) {
        let cell = match counter {
            Counter::AuthorizationCode => &self.authorization_code,
            Counter::RefreshToken => &self.refresh_token,
            Counter::Revocation => &self.revocations,
            Counter::TokenError => &self.token_errors,
            Counter::JwksFetch => &self.jwks_fetches,
            Counter::RefreshWithScope => &self.refresh_with_scope,
        };
        cell.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counters(&self) -> Counters {
        Counters {
            authorization_code: self.authorization_code.load(Ordering::Relaxed),
            refresh_token: self.refresh_token.load(Ordering::Relaxed),
            revocations: self.revocations.load(Ordering::Relaxed),
            token_errors: self.token_errors.load(Ordering::Relaxed),
            jwks_fetches: self.jwks_fetches.load(Ordering::Relaxed),
            refresh_with_scope: self.refresh_with_scope.load(Ordering::Relaxed),
        }
    }

    pub fn set_token_failure(&self, failure: Option<TokenFailure>) {
        self.lock().token_failure = failure;
    }

    pub fn token_failure(&self) -> Option<TokenFailure> {
        self.lock().token_failure
    }

    pub fn insert_code(&self, code: String, grant: CodeGrant) {
        let mut inner = self.lock();
        let now = Instant::now();
        inner.codes.retain(|_, grant| grant.expires_at > now);
        inner.codes.insert(code, grant);
    }

    /// Removes the code: a code is redeemed at most once, whatever the outcome.
    pub fn take_code(&self, code: &str) -> Option<CodeGrant> {
        self.lock().codes.remove(code)
    }

    pub fn insert_refresh(&self, token: String, grant: RefreshGrant) {
        self.lock().refresh.insert(token, grant);
    }

    /// Looks a refresh token up for use; with `rotate`, marks it used (the first use
    /// starts its grace period). Returns None when unknown, revoked, expired or past grace.
    pub fn use_refresh(&self, token: &str, rotate: bool, grace: Duration) -> Option<RefreshGrant> {
        let mut inner = self.lock();
        let now = Instant::now();
        let grant = inner.refresh.get_mut(token)?;
        if grant.revoked || grant.expires_at <= now {
            return None;
        }
        if let Some(rotated_at) = grant.rotated_at
            && now > rotated_at + grace
        {
            return None;
        }
        if rotate && grant.rotated_at.is_none() {
            grant.rotated_at = Some(now);
        }
        Some(grant.clone())
    }

    pub fn refresh_client(&self, token: &str) -> Option<String> {
        self.lock().refresh.get(token).map(|grant| grant.client_id.clone())
    }

    /// Revokes a refresh token and every token of its sign-in (same `origin_jti`).
    pub fn revoke_refresh(&self, token: &str) {
        let mut inner = self.lock();
        let Some(origin) = inner.refresh.get(token).map(|g| g.origin_jti.clone()) else { return };
        for grant in inner.refresh.values_mut().filter(|g| g.origin_jti == origin) {
            grant.revoked = true;
        }
        inner.revoked_origins.insert(origin);
    }

    pub fn is_origin_revoked(&self, origin_jti: &str) -> bool {
        self.lock().revoked_origins.contains(origin_jti)
    }

    pub fn insert_session(&self, id: String, session: Session) {
        let mut inner = self.lock();
        let now = Instant::now();
        inner.sessions.retain(|_, s| s.expires_at > now);
        inner.sessions.insert(id, session);
    }

    pub fn session(&self, id: &str) -> Option<Session> {
        self.lock().sessions.get(id).filter(|s| s.expires_at > Instant::now()).cloned()
    }

    pub fn end_session(&self, id: &str) {
        self.lock().sessions.remove(id);
    }
}
