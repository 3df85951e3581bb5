//! API clients that present `Authorization: Bearer <access token>` instead of a session
//! cookie (`[bearer] enabled = true`). The token is checked as aws-jwt-verify checks a
//! Cognito access token (signature from the provider's JWKS, `iss`, `exp`,
//! `token_use=access`, `client_id` among the accepted app clients), then the `[bearer]`
//! gateway-wide scope and group requirements, then the route's policy (`policy.rs`);
//! the upstream gets the same identity headers as for a session. A bad token is a 401
//! with `WWW-Authenticate`, never a login redirect.

use super::Auth;
use super::identity::Identity;
use crate::config::RoutePolicy;
use crate::error::GatewayError;
use crate::oidc::verify::verify_access_token;
use crate::proxy::body::{self, ProxyBody};
use crate::respond;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

/// The bearer token of the request, if it carries one.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// Verifies the bearer token and sets the identity headers; or the refusal to send.
pub async fn authenticate(
    auth: &Auth,
    policy: &RoutePolicy,
    headers: &mut HeaderMap,
    request_id: &str,
) -> Result<(), Response<ProxyBody>> {
    let Some(provider) = auth.provider() else {
        return Err(refusal(StatusCode::SERVICE_UNAVAILABLE, "provider_not_ready", None));
    };
    let token = presented(headers).unwrap_or_default().to_owned();
    let bearer = &auth.config.bearer;
    let claims = match verify_access_token(&provider.jwks, &token, &provider.expect, &bearer.client_ids).await {
        Ok(claims) => claims,
        Err(err) => {
            tracing::info!(request_id, error = %err, "bearer token refused");
            return Err(refusal(StatusCode::UNAUTHORIZED, "invalid_token", Some("Bearer error=\"invalid_token\"")));
        }
    };
    let scopes: Vec<&str> = claims.get("scope").and_then(Value::as_str).unwrap_or_default().split(' ').collect();
    if let Some(missing) = bearer.required_scopes.iter().find(|s| !scopes.contains(&s.as_str())) {
        tracing::info!(request_id, scope = %missing, "bearer token lacks a required scope");
        return Err(refusal(StatusCode::FORBIDDEN, "insufficient_scope", Some("Bearer error=\"insufficient_scope\"")));
    }
    let groups = super::claims::groups(&claims, &auth.config.provider.groups_claim).unwrap_or_default();
    if !bearer.required_groups.is_empty() && !groups.iter().any(|g| bearer.required_groups.contains(g)) {
        return Err(refusal(StatusCode::FORBIDDEN, "not_in_required_group", None));
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let identity = Identity {
        sub: text("sub").unwrap_or_default(),
        username: text("username").or_else(|| text("preferred_username")),
        email: text("email"),
        email_verified: super::claims::email_verified(&claims),
        groups: &groups,
        scope: text("scope").unwrap_or_default(),
        assertion_key: token
            .rsplit('.')
            .next()
            .map(|signature| (signature, claims.get("exp").and_then(Value::as_u64).unwrap_or(0))),
        // The client's own Authorization header already carries its token upstream.
        access_token: None,
    };
    if let Err(rule) = super::policy::check(policy, &identity) {
        return Err(respond::error_response(&GatewayError::Forbidden(rule), false, request_id));
    }
    auth.identity.set(headers, &identity);
    Ok(())
}

fn refusal(status: StatusCode, error: &str, challenge: Option<&'static str>) -> Response<ProxyBody> {
    let mut response = Response::new(body::full(json!({ "error": error }).to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(challenge) = challenge {
        response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    response
}
