//! `/oauth2/revoke`: revokes a refresh token and every access token of the same
//! sign-in, as AWS's page "The token revocation endpoint" describes it. `200` with an
//! empty body, also for a token that is already revoked or unknown; `401
//! invalid_client` for bad client credentials; `400 unsupported_token_type` for a token
//! that is not a refresh token (an access or ID token); `400 unauthorized_client` for
//! another client's token.

use super::Provider;
use super::client_auth::authenticate;
use super::store::Counter;
use super::token::parse_form;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

pub async fn revoke(State(provider): State<Arc<Provider>>, headers: HeaderMap, body: Bytes) -> Response {
    let refuse = |error: &'static str| (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": error }))).into_response();
    let form = match parse_form(&headers, &body) {
        Ok(form) => form,
        Err(error) => return refuse(error),
    };
    let client = match authenticate(&provider, &headers, &form) {
        Ok(client) => client,
        Err(error) => return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": error }))).into_response(),
    };
    let Some(token) = form.get("token") else { return refuse("invalid_request") };
    // Refresh tokens are five-part JWEs; three parts are a signed JWT (access or ID).
    if token.split('.').count() == 3 {
        return refuse("unsupported_token_type");
    }
    if provider.store.refresh_client(token).is_some_and(|owner| owner != client.client_id) {
        return refuse("unauthorized_client");
    }
    provider.store.revoke_refresh(token);
    provider.store.count(Counter::Revocation);
    StatusCode::OK.into_response()
}
