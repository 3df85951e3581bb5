//! Tokens are believed only after every check: tested with real tokens from the
//! development provider, and with forgeries built from them.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis::dev_idp::{ClientSettings, DevIdp, Settings};
use portcullis::oidc::jwks::JwksCache;
use portcullis::oidc::metadata;
use portcullis::oidc::verify::{Expectations, TokenError, verify_access_token, verify_id_token};
use serde_json::{Value, json};
use std::time::Duration;

const CLIENT: &str = "gateway-client";
const OTHER: &str = "other-client";
const CALLBACK: &str = "http://localhost:8080/auth/callback";

fn settings(access_ttl: Duration) -> Settings {
    let client = |id: &str| ClientSettings {
        client_id: id.into(),
        client_secret: None,
        callback_urls: vec![CALLBACK.into()],
        logout_urls: vec![],
        allowed_scopes: vec!["openid".into(), "email".into()],
    };
    Settings {
        clients: vec![client(CLIENT), client(OTHER)],
        access_token_ttl: access_ttl,
        id_token_ttl: access_ttl,
        ..Settings::default()
    }
}

async fn setup(access_ttl: Duration) -> (DevIdp, JwksCache, Expectations) {
    let idp = DevIdp::start(settings(access_ttl)).await.unwrap();
    let http = portcullis::oidc::back_channel(Duration::from_secs(10));
    let meta = metadata::cognito(&http, idp.issuer(), idp.base_url(), None).await.unwrap();
    assert_eq!(meta.token_endpoint, format!("{}/oauth2/token", idp.base_url()));
    let jwks = JwksCache::new(http, meta.jwks_uri, Duration::from_secs(30));
    assert_eq!(jwks.refresh().await.unwrap(), 2);
    let expect =
        Expectations { issuer: idp.issuer().into(), client_id: CLIENT.into(), leeway: Duration::ZERO, cognito: true };
    (idp, jwks, expect)
}

/// The token with its claims replaced and the signature kept (so it cannot verify).
fn with_claims(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    edit(&mut claims);
    format!("{}.{}.{}", parts[0], B64.encode(claims.to_string()), parts[2])
}

fn with_header(token: &str, header: Value, signature: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{signature}", B64.encode(header.to_string()), parts[1])
}

#[tokio::test]
async fn genuine_tokens_pass_and_say_who_signed_in() {
    let (idp, jwks, expect) = setup(Duration::from_secs(3600)).await;
    let body = common::idp::tokens(&idp, CALLBACK, CLIENT, "n-1").await;
    let id = verify_id_token(&jwks, body["id_token"].as_str().unwrap(), &expect, Some("n-1")).await.unwrap();
    assert_eq!(id["cognito:username"], "alice");
    let access = verify_access_token(&jwks, body["access_token"].as_str().unwrap(), &expect, &[CLIENT.to_owned()])
        .await
        .unwrap();
    assert_eq!(access["username"], "alice");
}

#[tokio::test]
async fn every_wrong_claim_is_refused() {
    let (idp, jwks, expect) = setup(Duration::from_secs(3600)).await;
    let body = common::idp::tokens(&idp, CALLBACK, CLIENT, "n-1").await;
    let id = body["id_token"].as_str().unwrap();
    let access = body["access_token"].as_str().unwrap();

    assert_eq!(verify_id_token(&jwks, id, &expect, Some("other-nonce")).await, Err(TokenError::Claim("nonce")));
    let other_issuer = Expectations { issuer: format!("{}x", expect.issuer), ..expect.clone() };
    assert!(matches!(verify_id_token(&jwks, id, &other_issuer, Some("n-1")).await, Err(TokenError::Rejected(_))));
    let other_client = common::idp::tokens(&idp, CALLBACK, OTHER, "n-1").await;
    assert!(
        matches!(
            verify_id_token(&jwks, other_client["id_token"].as_str().unwrap(), &expect, Some("n-1")).await,
            Err(TokenError::Rejected(_))
        ),
        "an ID token for another client"
    );
    assert_eq!(
        verify_access_token(&jwks, other_client["access_token"].as_str().unwrap(), &expect, &[CLIENT.to_owned()]).await,
        Err(TokenError::Claim("client_id")),
        "an access token for another client"
    );
    assert!(verify_id_token(&jwks, access, &expect, None).await.is_err(), "an access token is not an ID token");
    assert_eq!(
        verify_access_token(&jwks, id, &expect, &[CLIENT.to_owned()]).await,
        Err(TokenError::Claim("token_use")),
        "nor the reverse"
    );

    // Edited claims break the signature.
    for edit in [
        Box::new(|c: &mut Value| c["cognito:username"] = json!("mallory")) as Box<dyn FnOnce(&mut Value)>,
        Box::new(|c: &mut Value| c["exp"] = json!(u64::MAX / 2)),
        Box::new(|c: &mut Value| c["cognito:groups"] = json!(["admins", "root"])),
    ] {
        let forged = with_claims(id, edit);
        assert!(matches!(verify_id_token(&jwks, &forged, &expect, Some("n-1")).await, Err(TokenError::Rejected(_))));
    }
}

#[tokio::test]
async fn forged_headers_are_refused() {
    let (idp, jwks, expect) = setup(Duration::from_secs(3600)).await;
    let id = common::idp::tokens(&idp, CALLBACK, CLIENT, "n").await["id_token"].as_str().unwrap().to_owned();
    let kid = jsonwebtoken::decode_header(&id).unwrap().kid.unwrap();

    let none = with_header(&id, json!({"alg": "none", "kid": kid}), "");
    assert!(verify_id_token(&jwks, &none, &expect, Some("n")).await.is_err(), "alg none");

    // HS256 "signed" with the RSA public key as the HMAC secret.
    let jwks_doc: Value =
        reqwest::get(format!("{}/.well-known/jwks.json", idp.issuer())).await.unwrap().json().await.unwrap();
    let public_n = jwks_doc["keys"][0]["n"].as_str().unwrap().to_owned();
    let header = json!({"alg": "HS256", "kid": kid});
    let claims_part = id.split('.').nth(1).unwrap();
    let signing_input = format!("{}.{claims_part}", B64.encode(header.to_string()));
    let hmac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, public_n.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&hmac_key, signing_input.as_bytes());
    let confused = format!("{signing_input}.{}", B64.encode(tag.as_ref()));
    assert_eq!(
        verify_id_token(&jwks, &confused, &expect, Some("n")).await,
        Err(TokenError::Algorithm(jsonwebtoken::Algorithm::HS256))
    );

    let unknown = with_header(&id, json!({"alg": "RS256", "kid": "not-a-key"}), id.split('.').nth(2).unwrap());
    assert_eq!(verify_id_token(&jwks, &unknown, &expect, Some("n")).await, Err(TokenError::UnknownKey));
    let remote = with_header(
        &id,
        json!({"alg": "RS256", "kid": "x", "jku": "https://evil.example/jwks.json"}),
        id.split('.').nth(2).unwrap(),
    );
    assert_eq!(
        verify_id_token(&jwks, &remote, &expect, Some("n")).await,
        Err(TokenError::UnknownKey),
        "jku is never followed"
    );
    let no_kid = with_header(&id, json!({"alg": "RS256"}), id.split('.').nth(2).unwrap());
    assert_eq!(verify_id_token(&jwks, &no_kid, &expect, Some("n")).await, Err(TokenError::NoKeyId));
    for garbage in ["", "a.b", "a.b.c", "....", &"x".repeat(10_000)] {
        assert_eq!(verify_id_token(&jwks, garbage, &expect, None).await, Err(TokenError::Malformed), "{garbage:.20}");
    }
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let (idp, jwks, expect) = setup(Duration::from_secs(1)).await;
    let body = common::idp::tokens(&idp, CALLBACK, CLIENT, "n").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        matches!(verify_id_token(&jwks, body["id_token"].as_str().unwrap(), &expect, Some("n")).await, Err(TokenError::Rejected(e)) if e.contains("Expired"))
    );
    let lenient = Expectations { leeway: Duration::from_secs(60), ..expect };
    assert!(
        verify_id_token(&jwks, body["id_token"].as_str().unwrap(), &lenient, Some("n")).await.is_ok(),
        "leeway applies"
    );
}

#[tokio::test]
async fn rotated_keys_are_fetched_once_and_unknown_kids_do_not_flood_the_provider() {
    let (idp, jwks, expect) = setup(Duration::from_secs(3600)).await;
    let fetches = idp.counters().jwks_fetches;
    idp.rotate_keys(false);
    let body = common::idp::tokens(&idp, CALLBACK, CLIENT, "n").await;

    // 20 concurrent verifications of a token with a new kid share one refetch.
    let jwks = std::sync::Arc::new(jwks);
    let mut checks = Vec::new();
    for _ in 0..20 {
        let (jwks, expect, id) = (jwks.clone(), expect.clone(), body["id_token"].as_str().unwrap().to_owned());
        checks.push(tokio::spawn(async move { verify_id_token(&jwks, &id, &expect, Some("n")).await }));
    }
    for check in checks {
        assert!(check.await.unwrap().is_ok());
    }
    assert_eq!(idp.counters().jwks_fetches, fetches + 1, "one refetch for the new kid");

    // A made-up kid costs one refetch (a miss); the misses after it, within the
    // cool-down, cost none.
    let id = body["id_token"].as_str().unwrap();
    for i in 0..50 {
        let forged =
            with_header(id, json!({"alg": "RS256", "kid": format!("made-up-{i}")}), id.split('.').nth(2).unwrap());
        assert_eq!(verify_id_token(&jwks, &forged, &expect, Some("n")).await, Err(TokenError::UnknownKey));
    }
    assert_eq!(idp.counters().jwks_fetches, fetches + 2, "the cool-down holds after one miss");
}

/// Generic providers have no `token_use`: an ID token, addressed to the gateway's own
/// client, would pass an access token's `aud` check. Its ID-token-only claims give it away.
#[tokio::test]
async fn an_id_token_is_not_an_access_token_for_generic_providers_either() {
    let (idp, jwks, expect) = setup(Duration::from_secs(3600)).await;
    let body = common::idp::tokens(&idp, CALLBACK, CLIENT, "n-1").await;
    let generic = Expectations { cognito: false, ..expect };
    let id = body["id_token"].as_str().unwrap();
    assert_eq!(
        verify_access_token(&jwks, id, &generic, &[CLIENT.to_owned()]).await,
        Err(TokenError::Claim("token_use")),
        "an ID token with nonce and at_hash"
    );
    // The same claims without the ID-token markers but with Keycloak's `typ: ID`.
    let mut claims: Value = serde_json::from_slice(&B64.decode(id.split('.').nth(1).unwrap()).unwrap()).unwrap();
    for marker in ["nonce", "at_hash", "c_hash"] {
        claims.as_object_mut().unwrap().remove(marker);
    }
    let plain = idp.sign(portcullis::dev_idp::KeyUse::Id, &claims);
    assert!(verify_access_token(&jwks, &plain, &generic, &[CLIENT.to_owned()]).await.is_ok(), "control: it verifies");
    claims["typ"] = json!("ID");
    let typed = idp.sign(portcullis::dev_idp::KeyUse::Id, &claims);
    assert_eq!(
        verify_access_token(&jwks, &typed, &generic, &[CLIENT.to_owned()]).await,
        Err(TokenError::Claim("token_use"))
    );
}
