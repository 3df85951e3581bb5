//! The admission step: may this request act as a signed-in user on this route?
//!
//! One decision for both ways a request reaches the gateway: proxied (`gateway.rs`)
//! and described by another proxy to `/auth/verify` (`forward_auth.rs`). In order: the
//! session, renewed when due (`freshness.rs`); the CSRF check; the route's policy; a
//! Bearer token when there is no session; and what a request without either is told.

use super::freshness::{self, Freshness};
use super::session::Session;
use super::store::Presented;
use super::{Auth, bearer, csrf, policy};
use crate::config::RoutePolicy;
use crate::error::GatewayError;
use crate::proxy::body::ProxyBody;
use crate::respond;
use http::{HeaderMap, Method, Response};
use std::sync::Arc;

pub enum Admission {
    /// A live session, renewed if it was due (its new cookies are in `cookies`).
    Session(Arc<Session>),
    /// A Bearer access token: its identity headers are set in the request's headers.
    Bearer,
    /// Not admitted: the answer (401, a redirect to log in, 403 naming the policy rule
    /// or the CSRF check, a Bearer refusal), with the cookies to set or clear.
    Answer(Response<ProxyBody>),
}

/// The request being decided on.
pub struct Asked<'a> {
    pub method: &'a Method,
    /// Path and query, where a login would return to.
    pub target: &'a str,
    /// The route's rules.
    pub csrf: bool,
    pub policy: &'a RoutePolicy,
    /// A browser navigation without a session is sent to log in (302), rather than
    /// told 401.
    pub redirect_navigations: bool,
}

/// Admits the request of `asked`, whose headers are `headers` (a Bearer token's
/// identity headers are set there), with what its cookies presented; cookies for the
/// response (renewed or cleared) go into `cookies`.
pub async fn admit(
    auth: &Arc<Auth>,
    asked: Asked<'_>,
    presented: Presented,
    headers: &mut HeaderMap,
    cookies: &mut HeaderMap,
    now: u64,
    request_id: &str,
) -> Result<Admission, GatewayError> {
    let session = match auth.resolve(presented, now).await {
        Ok(Some(session)) => freshness::fresh(auth, session, headers, cookies, now, request_id).await,
        Ok(None) => Freshness::Missing,
        Err(_) => Freshness::StoreDown,
    };
    match session {
        Freshness::Valid(session) => {
            let forged = asked.csrf
                && csrf::needs_proof(asked.method, headers)
                && !csrf::allowed(headers, auth.public_origin(), &auth.config.identity.csrf);
            let refusal = if forged {
                Some(GatewayError::CrossSiteRequest)
            } else {
                policy::check(asked.policy, &session.identity()).err().map(GatewayError::Forbidden)
            };
            match refusal {
                // A refresh may have renewed the session just before: its cookies
                // go with the refusal, or the browser would keep spent tokens.
                Some(refusal) => {
                    let mut response = respond::error_response(&refusal, respond::wants_html(headers), request_id);
                    response.headers_mut().extend(std::mem::take(cookies));
                    Ok(Admission::Answer(response))
                }
                None => Ok(Admission::Session(session)),
            }
        }
        Freshness::ProviderDown { retry_after } => Err(GatewayError::ProviderUnavailable(retry_after)),
        Freshness::StoreDown => Err(GatewayError::StoreUnavailable),
        Freshness::Missing | Freshness::Ended if auth.config.bearer.enabled && bearer::presented(headers).is_some() => {
            // Boxed: token verification is a large future on a rare path.
            match Box::pin(bearer::authenticate(auth, asked.policy, headers, request_id)).await {
                Ok(()) => Ok(Admission::Bearer),
                Err(refusal) => Ok(Admission::Answer(refusal)),
            }
        }
        missing @ (Freshness::Missing | Freshness::Ended) => {
            if matches!(missing, Freshness::Missing) {
                // Cookies of a session that ended (signed out elsewhere, revoked) go
                // too; an ended refresh has cleared them already.
                Session::clear(headers, cookies, &auth.jar);
            }
            let mut response = super::unauthenticated(headers, asked.method, asked.target, asked.redirect_navigations);
            response.headers_mut().extend(std::mem::take(cookies));
            Ok(Admission::Answer(response))
        }
    }
}
