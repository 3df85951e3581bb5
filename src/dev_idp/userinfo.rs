//! `/oauth2/userInfo` (capital I, as Cognito spells it): the user's attributes for a
//! valid access token that carries the `openid` scope. Invalid, expired or revoked
//! tokens get `401` with `WWW-Authenticate: Bearer error="invalid_token"`.

use super::Provider;
use super::tokens::now_secs;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

pub async fn userinfo(State(provider): State<Arc<Provider>>, headers: HeaderMap) -> Response {
    let token = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let claims = token.and_then(|token| provider.keys.verify(token.trim()));
    let Some(claims) = claims.filter(|c| is_live_access_token(&provider, c)) else {
        return (
            StatusCode::UNAUTHORIZED,
            [(WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
            axum::Json(json!({ "error": "invalid_token", "error_description": "Access token is not valid" })),
        )
            .into_response();
    };
    let has_openid = claims["scope"].as_str().is_some_and(|s| s.split(' ').any(|s| s == "openid"));
    if !has_openid {
        return (StatusCode::FORBIDDEN, axum::Json(json!({ "error": "insufficient_scope" }))).into_response();
    }
    let Some(user) = claims["username"].as_str().and_then(|name| provider.user(name)) else {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "invalid_token" }))).into_response();
    };
    let mut info = json!({ "sub": user.subject(), "username": user.username });
    if let Some(email) = &user.email {
        info["email"] = json!(email);
        info["email_verified"] = json!("true");
    }
    for (name, value) in &user.attributes {
        info[name] = json!(value);
    }
    axum::Json(info).into_response()
}

fn is_live_access_token(provider: &Provider, claims: &Value) -> bool {
    claims["token_use"] == "access"
        && claims["iss"] == provider.issuer.as_str()
        && claims["exp"].as_u64().is_some_and(|exp| exp > now_secs())
        && claims["origin_jti"].as_str().is_some_and(|origin| !provider.store.is_origin_revoked(origin))
}
