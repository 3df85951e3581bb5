//! `/oauth2/token`: the `authorization_code` and `refresh_token` grants.
//!
//! Rules, as Cognito applies them:
//! 1. The body is a form; a repeated parameter is `invalid_request`.
//! 2. Errors are `400` with `{"error": "..."}`: `invalid_request`, `invalid_client`,
//!    `invalid_grant` (unknown, used or expired code; redirect URI or PKCE mismatch;
//!    revoked, expired or rotated-out refresh token), `unauthorized_client`,
//!    `unsupported_grant_type`.
//! 3. A code is redeemed once, within 5 minutes, by the client it was issued to.
//! 4. A refresh without rotation returns new ID and access tokens and **no** refresh
//!    token; with rotation, a new refresh token, and the old one keeps working for the
//!    grace period.

use super::client_auth::authenticate;
use super::store::{Counter, RefreshGrant, TokenFailure};
use super::tokens::{self, Grant};
use super::{ClientSettings, Provider};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

pub async fn token(State(provider): State<Arc<Provider>>, headers: HeaderMap, body: Bytes) -> Response {
    match provider.store.token_failure() {
        Some(TokenFailure::Status(status)) => {
            provider.store.count(Counter::TokenError);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return (status, axum::Json(json!({ "message": "injected failure" }))).into_response();
        }
        Some(TokenFailure::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(TokenFailure::InvalidGrant) => return refuse(&provider, "invalid_grant"),
        Some(TokenFailure::Refuse(error)) => return refuse(&provider, error),
        None => {}
    }
    let form = match parse_form(&headers, &body) {
        Ok(form) => form,
        Err(error) => return refuse(&provider, error),
    };
    let client = match authenticate(&provider, &headers, &form) {
        Ok(client) => client,
        Err(error) => return refuse(&provider, error),
    };
    if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        let grant = form.get("grant_type").cloned().unwrap_or_default();
        provider.traced.lock().expect("traced lock").push((grant, traceparent.to_owned()));
    }
    let result = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => authorization_code(&provider, client, &form),
        Some("refresh_token") => refresh_token(&provider, client, &form),
        Some("client_credentials") => Err("unauthorized_client"),
        Some(_) => Err("unsupported_grant_type"),
        None => Err("invalid_request"),
    };
    match result {
        Ok(body) => {
            let mut response = axum::Json(body).into_response();
            let headers = response.headers_mut();
            headers.insert(CACHE_CONTROL, "no-store".parse().expect("static"));
            headers.insert(PRAGMA, "no-cache".parse().expect("static"));
            headers.insert(CONTENT_TYPE, "application/json;charset=UTF-8".parse().expect("static"));
            response
        }
        Err(error) => refuse(&provider, error),
    }
}

/// The form body, refusing non-form content and repeated parameters.
pub fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, &'static str> {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err("invalid_request");
    }
    let mut form = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        if form.insert(key.into_owned(), value.into_owned()).is_some() {
            return Err("invalid_request");
        }
    }
    Ok(form)
}

pub fn refuse(provider: &Provider, error: &'static str) -> Response {
    provider.store.count(Counter::TokenError);
    (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": error }))).into_response()
}

fn authorization_code(
    provider: &Provider,
    client: &ClientSettings,
    form: &HashMap<String, String>,
) -> Result<Value, &'static str> {
    let (Some(code), Some(redirect_uri)) = (form.get("code"), form.get("redirect_uri")) else {
        return Err("invalid_request");
    };
    let grant = provider.store.take_code(code).ok_or("invalid_grant")?;
    if grant.expires_at <= Instant::now() || grant.client_id != client.client_id || grant.redirect_uri != *redirect_uri
    {
        return Err("invalid_grant");
    }
    // A verifier without a challenge is a downgrade attempt (RFC 9700 §2.1.1).
    if grant.code_challenge.is_none() && form.contains_key("code_verifier") {
        return Err("invalid_grant");
    }
    if let Some(challenge) = &grant.code_challenge {
        let verifier = form.get("code_verifier").ok_or("invalid_grant")?;
        let computed = B64.encode(Sha256::digest(verifier.as_bytes()));
        if aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes()).is_err() {
            return Err("invalid_grant");
        }
    }
    let user = provider.user(&grant.username).ok_or("invalid_grant")?;
    let origin_jti = tokens::uuid();
    let minted = mint(provider, user, client, &grant.scopes, grant.nonce.as_deref(), grant.auth_time, &origin_jti);
    let refresh_token = tokens::refresh_token();
    provider.store.insert_refresh(
        refresh_token.clone(),
        RefreshGrant {
            client_id: client.client_id.clone(),
            username: user.username.clone(),
            scopes: grant.scopes.clone(),
            origin_jti,
            auth_time: grant.auth_time,
            expires_at: Instant::now() + provider.settings.refresh_token_ttl,
            rotated_at: None,
            revoked: false,
        },
    );
    provider.store.count(Counter::AuthorizationCode);
    let mut body = response_body(provider, minted);
    body["refresh_token"] = json!(refresh_token);
    Ok(body)
}

fn refresh_token(
    provider: &Provider,
    client: &ClientSettings,
    form: &HashMap<String, String>,
) -> Result<Value, &'static str> {
    let token = form.get("refresh_token").ok_or("invalid_request")?;
    if form.contains_key("scope") {
        provider.store.count(Counter::RefreshWithScope);
    }
    if provider.store.refresh_client(token).is_some_and(|owner| owner != client.client_id) {
        return Err("invalid_grant");
    }
    let settings = &provider.settings;
    let grant = provider
        .store
        .use_refresh(token, settings.rotate_refresh_tokens, settings.rotation_grace)
        .ok_or("invalid_grant")?;
    let user = provider.user(&grant.username).ok_or("invalid_grant")?;
    let minted = mint(provider, user, client, &grant.scopes, None, grant.auth_time, &grant.origin_jti);
    let mut body = response_body(provider, minted);
    if settings.rotate_refresh_tokens {
        let rotated = tokens::refresh_token();
        provider.store.insert_refresh(rotated.clone(), RefreshGrant { rotated_at: None, ..grant });
        body["refresh_token"] = json!(rotated);
    }
    provider.store.count(Counter::RefreshToken);
    Ok(body)
}

fn mint(
    provider: &Provider,
    user: &super::UserSettings,
    client: &ClientSettings,
    scopes: &[String],
    nonce: Option<&str>,
    auth_time: u64,
    origin_jti: &str,
) -> tokens::Minted {
    let settings = &provider.settings;
    let user_pool_id = &settings.user_pool_id;
    let grant = Grant { user, user_pool_id, client_id: &client.client_id, scopes, nonce, auth_time, origin_jti };
    tokens::mint(&provider.keys, &provider.issuer, &grant, settings.access_token_ttl, settings.id_token_ttl)
}

fn response_body(provider: &Provider, minted: tokens::Minted) -> Value {
    let mut body = json!({
        "access_token": minted.access_token,
        "expires_in": provider.settings.access_token_ttl.as_secs(),
        "token_type": "Bearer",
    });
    if let Some(id_token) = minted.id_token {
        body["id_token"] = json!(id_token);
    }
    body
}
