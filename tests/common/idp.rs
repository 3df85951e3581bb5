//! Tokens straight from the development provider, for tests that need real ones
//! without a browser flow through the gateway.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis::dev_idp::{DevIdp, Settings};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

const VERIFIER: &str = "a-verifier-that-is-long-enough-to-satisfy-rfc-7636-rules-0123456789";

/// Signs alice in for `client_id` (its callback: `callback`) with `nonce`; returns the
/// token response.
pub async fn tokens(idp: &DevIdp, callback: &str, client_id: &str, nonce: &str) -> Value {
    let http = portcullis::oidc::back_channel(Duration::from_secs(10));
    let challenge = B64.encode(Sha256::digest(VERIFIER.as_bytes()));
    let mut url = url::Url::parse(&format!("{}/login", idp.base_url())).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", callback)
        .append_pair("scope", "openid email")
        .append_pair("nonce", nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let password = Settings::default().users[0].password.clone();
    let signed_in =
        http.post(url).form(&[("username", "alice"), ("password", password.as_str())]).send().await.unwrap();
    let location = url::Url::parse(signed_in.headers()["location"].to_str().unwrap()).unwrap();
    let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    http.post(format!("{}/oauth2/token", idp.base_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", &code),
            ("redirect_uri", callback),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
