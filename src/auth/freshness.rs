//! The freshness step: the session a request may act with, its access token renewed
//! first when it is due. Every user of a session goes through it (a proxied request,
//! `/auth/userinfo`), so none of them can hand out an expired token.
//!
//! Rules:
//! 1. Due: the access token expires within `session.refresh_skew`, but never earlier
//!    than halfway through its life as issued. Without the second half of the rule, a
//!    token that lives shorter than the skew (60 s by default) would be refreshed on
//!    every request: one grant at the provider per request, and a new 2–4 KB cookie on
//!    every response.
//! 2. A due session is refreshed (`refresh.rs`: once per session state). A result kept
//!    for late requests is checked by the same rule: it may be due, or expired, by now,
//!    and is then refreshed in turn, on its own refresh token. Bounded by
//!    [`MAX_REFRESHES`] a request.
//! 3. The refreshed session's cookies go on the response; an ended one's are cleared.
//! 4. A provider that cannot refresh never logs anyone out: the token is used while it
//!    is still valid, then `ProviderDown` (503 with `Retry-After`) until it can. The
//!    same for a session store (Redis) that does not answer: `StoreDown`.

use super::Auth;
use super::refresh::{Outcome, Refresher};
use super::session::Session;
use http::HeaderMap;
use std::sync::Arc;
use std::time::Duration;

/// Refreshes one request may make: the session's own and, at most, those of kept
/// results that were themselves due.
const MAX_REFRESHES: usize = 3;

pub enum Freshness {
    Valid(Arc<Session>),
    Missing,
    Ended,
    /// The token has expired and cannot be refreshed now; try again after this long.
    ProviderDown {
        retry_after: Duration,
    },
    /// The token has expired and the session store, needed to refresh it, is down.
    StoreDown,
}

/// Whether `session`'s access token should be refreshed at `now` (rule 1).
pub fn is_due(session: &Session, now: u64, skew: Duration) -> bool {
    let mut skew = skew.as_secs();
    if session.access_lifetime > 0 {
        skew = skew.min(session.access_lifetime / 2);
    }
    session.access_expires_at <= now.saturating_add(skew)
}

/// The session to act with at `now` (see the module's rules); new or cleared cookies go
/// into `cookies`, for the response.
pub async fn fresh(
    auth: &Arc<Auth>,
    session: Arc<Session>,
    request_headers: &HeaderMap,
    cookies: &mut HeaderMap,
    now: u64,
    request_id: &str,
) -> Freshness {
    let skew = auth.config.session.refresh_skew;
    if !is_due(&session, now, skew) {
        return Freshness::Valid(session);
    }
    let (mut current, mut now, mut refreshed) = (session, now, false);
    for _ in 0..MAX_REFRESHES {
        if !is_due(&current, now, skew) || current.refresh_token.is_none() {
            break;
        }
        let outcome = Box::pin(Refresher::refresh(auth, &current, request_id)).await;
        // The refresh may have waited for the provider: the token may have expired since.
        now = super::now_secs();
        match outcome {
            Outcome::Refreshed { session, kept } => {
                current = session;
                refreshed = true;
                crate::trace_context::note_refresh();
                if !kept {
                    // Just issued: fresh, even where whole-second expiry times make a
                    // token of a few seconds look due already.
                    break;
                }
            }
            Outcome::Ended => {
                Session::clear(request_headers, cookies, &auth.jar);
                return Freshness::Ended;
            }
            Outcome::Unavailable { retry_after } if current.access_expires_at <= now => {
                return Freshness::ProviderDown { retry_after };
            }
            Outcome::StoreDown if current.access_expires_at <= now => return Freshness::StoreDown,
            // Never a logout for an outage: the token while it lasts.
            Outcome::Unavailable { .. } | Outcome::StoreDown => break,
        }
    }
    if current.access_expires_at <= now {
        // Expired without a refresh token (nothing can renew it), or the provider
        // keeps answering with tokens that are already due.
        return if current.refresh_token.is_none() {
            Freshness::Ended
        } else {
            Freshness::ProviderDown { retry_after: super::refresh::FIRST_BACKOFF }
        };
    }
    if refreshed && !auth.store.refreshed_cookies(&current, request_headers, cookies, &auth.sealing(), now) {
        tracing::error!(request_id, "the refreshed session no longer fits in cookies; it is not saved");
    }
    Freshness::Valid(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(access_expires_at: u64, access_lifetime: u64) -> Session {
        let mut session: Session = serde_json::from_value(serde_json::json!({
            "sid": "s", "sub": "s", "username": null, "email": null, "email_verified": null,
            "groups": [], "scope": "", "profile": {}, "access_token": "a", "refresh_token": "r",
            "id_token": null, "access_expires_at": access_expires_at, "expires_at": u64::MAX,
        }))
        .unwrap();
        session.access_lifetime = access_lifetime;
        session
    }

    #[test]
    fn due_within_the_skew_but_never_before_half_the_tokens_life() {
        let skew = Duration::from_secs(60);
        // An hour-long token: the skew decides.
        assert!(!is_due(&session(1000 + 61, 3600), 1000, skew));
        assert!(is_due(&session(1000 + 60, 3600), 1000, skew));
        // A 4-second token issued at 1000: not due before 1002, whatever the skew.
        assert!(!is_due(&session(1004, 4), 1000, skew));
        assert!(!is_due(&session(1004, 4), 1001, skew));
        assert!(is_due(&session(1004, 4), 1002, skew));
        // A 60-second token (oidc-provider's default) is not due at once either.
        assert!(!is_due(&session(1060, 60), 1000, skew));
        assert!(is_due(&session(1060, 60), 1030, skew));
        // A session sealed before the lifetime was kept: the skew alone, as before.
        assert!(is_due(&session(1004, 0), 1000, skew));
        // Expired is always due, even with a zero skew.
        assert!(is_due(&session(1000, 3600), 1000, Duration::ZERO));
        assert!(!is_due(&session(1001, 3600), 1000, Duration::ZERO));
    }
}
