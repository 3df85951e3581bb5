//! OpenID discovery and JWKS, with the fields Cognito publishes. Like Cognito, the
//! document does not advertise PKCE (`code_challenge_methods_supported`), though the
//! provider enforces S256 when a challenge is sent.

use super::Provider;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use std::sync::Arc;

pub async fn openid_configuration(State(provider): State<Arc<Provider>>) -> Json<Value> {
    let base = &provider.base_url;
    Json(json!({
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "end_session_endpoint": format!("{base}/logout"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "issuer": provider.issuer,
        "jwks_uri": format!("{}/.well-known/jwks.json", provider.issuer),
        "response_types_supported": ["code", "token"],
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "scopes_supported": ["openid", "email", "phone", "profile"],
        "subject_types_supported": ["public"],
        "token_endpoint": format!("{base}/oauth2/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "userinfo_endpoint": format!("{base}/oauth2/userInfo"),
    }))
}

pub async fn jwks(State(provider): State<Arc<Provider>>) -> Json<Value> {
    provider.store.count(super::store::Counter::JwksFetch);
    Json(provider.keys.jwks())
}
