//! `/logout`, Cognito's sign-out: ends the provider's sign-in session (the `cognito`
//! cookie) and redirects.
//!
//! - `client_id` + `logout_uri` (exactly one of the client's sign-out URLs) → 302 there;
//! - `client_id` + `redirect_uri` + `response_type` → 302 to sign in again;
//! - OIDC RP-initiated logout parameters (`id_token_hint`, `post_logout_redirect_uri`)
//!   are an error, as they are on Cognito, although discovery lists `/logout` as the
//!   `end_session_endpoint`.

use super::Provider;
use super::authorize::{SESSION_COOKIE, found, session_id};
use super::pages;
use axum::extract::{RawQuery, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use std::collections::HashMap;
use std::sync::Arc;

pub async fn logout(State(provider): State<Arc<Provider>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let p: HashMap<String, String> =
        query.as_deref().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    if p.contains_key("id_token_hint") || p.contains_key("post_logout_redirect_uri") {
        return pages::error(StatusCode::BAD_REQUEST, "Invalid request: unsupported logout parameters");
    }
    let Some(client) = p.get("client_id").and_then(|id| provider.client(id)) else {
        return pages::error(StatusCode::BAD_REQUEST, "Invalid client_id");
    };
    let target = if let Some(logout_uri) = p.get("logout_uri") {
        if !client.logout_urls.contains(logout_uri) {
            return pages::error(StatusCode::BAD_REQUEST, "Invalid logout_uri: not a sign-out URL of this client");
        }
        logout_uri.clone()
    } else if let (Some(redirect_uri), Some(_)) = (p.get("redirect_uri"), p.get("response_type")) {
        if !client.callback_urls.contains(redirect_uri) {
            return pages::error(StatusCode::BAD_REQUEST, "redirect_mismatch");
        }
        format!("/oauth2/authorize?{}", query.unwrap_or_default())
    } else {
        return pages::error(StatusCode::BAD_REQUEST, "Required parameter 'logout_uri' is not present");
    };
    if let Some(id) = session_id(&headers) {
        provider.store.end_session(&id);
    }
    let mut response = found(&target);
    let expired = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    response.headers_mut().append(SET_COOKIE, HeaderValue::from_str(&expired).expect("cookie is ASCII"));
    response
}
