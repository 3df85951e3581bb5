//! Contract tests of the Cognito-compatible development provider: every endpoint and
//! error, checked over real HTTP on loopback, and tokens checked the way aws-jwt-verify
//! checks Cognito's (issuer form, `token_use`, `client_id`/`aud`, `kid`, RS256).

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use portcullis::dev_idp::{ClientSettings, DevIdp, Settings, TokenFailure, UserSettings};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

const CALLBACK: &str = "http://localhost:8080/auth/callback";
const SIGNED_OUT: &str = "http://localhost:8080/";
const PUBLIC: &str = "public-client";
const CONFIDENTIAL: &str = "confidential-client";
const SECRET: &str = "s3cret-of-the-confidential-client";
/// A client whose credentials need form-encoding in Basic auth (RFC 6749 §2.3.1).
const ENCODED: &str = "encoded:client";
const ENCODED_SECRET: &str = "a+b/c=d%e f";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-some-more-entropy";

fn settings() -> Settings {
    let client = |id: &str, secret: Option<&str>| ClientSettings {
        client_id: id.into(),
        client_secret: secret.map(String::from),
        callback_urls: vec![CALLBACK.into()],
        logout_urls: vec![SIGNED_OUT.into()],
        allowed_scopes: ["openid", "email", "profile"].map(String::from).to_vec(),
    };
    Settings {
        clients: vec![client(PUBLIC, None), client(CONFIDENTIAL, Some(SECRET)), client(ENCODED, Some(ENCODED_SECRET))],
        ..Settings::default()
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

fn authorize_url(idp: &DevIdp, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&format!("{}/oauth2/authorize", idp.base_url())).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("state", "state-123")
        .append_pair("scope", "openid email profile")
        .append_pair("nonce", "nonce-456")
        .append_pair("code_challenge", &challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    url.into()
}

fn location(response: &reqwest::Response) -> url::Url {
    let location = response.headers()["location"].to_str().unwrap();
    url::Url::parse(location).or_else(|_| url::Url::parse("http://idp.invalid").unwrap().join(location)).unwrap()
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Runs authorize → /login form → credentials; returns the callback URL and the
/// provider's session cookie.
async fn sign_in(idp: &DevIdp, client_id: &str, password: &str) -> (url::Url, Option<String>) {
    sign_in_as(idp, client_id, "alice", password).await
}

async fn sign_in_as(idp: &DevIdp, client_id: &str, username: &str, password: &str) -> (url::Url, Option<String>) {
    let http = http();
    let response = http.get(authorize_url(idp, client_id, &[])).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let login = location(&response);
    assert_eq!(login.path(), "/login");
    let login = format!("{}/login?{}", idp.base_url(), login.query().unwrap());
    let form = http.get(&login).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains("id=\"signInFormUsername\""));
    let response = http.post(&login).form(&[("username", username), ("password", password)]).send().await.unwrap();
    if response.status() != StatusCode::FOUND {
        let page = response.text().await.unwrap();
        return (url::Url::parse(&format!("http://page.invalid/?page={}", urlencode(&page))).unwrap(), None);
    }
    let cookie =
        response.headers().get("set-cookie").map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned());
    (location(&response), cookie)
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn token(idp: &DevIdp, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = http().post(format!("{}/oauth2/token", idp.base_url())).form(form).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn redeem(idp: &DevIdp, client_id: &str, code: &str) -> (StatusCode, Value) {
    token(
        idp,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

async fn signed_in_tokens(idp: &DevIdp) -> Value {
    let (callback, _) = sign_in(idp, PUBLIC, &Settings::default().users[0].password).await;
    let (status, body) = redeem(idp, PUBLIC, &query(&callback, "code").unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The checks aws-jwt-verify makes for a Cognito token: kid in the JWKS, RS256,
/// issuer `{base}/{poolId}`, expiry, `token_use`, and `aud` (ID) or `client_id` (access).
async fn verify(idp: &DevIdp, token: &str, token_use: &str, client_id: &str) -> Value {
    let jwks: JwkSet =
        http().get(format!("{}/.well-known/jwks.json", idp.issuer())).send().await.unwrap().json().await.unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("kid is in the JWKS");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[idp.issuer()]);
    if token_use == "id" {
        validation.set_audience(&[client_id]);
    } else {
        validation.validate_aud = false;
    }
    let claims = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("token verifies")
        .claims;
    assert_eq!(claims["token_use"], token_use);
    if token_use == "access" {
        assert_eq!(claims["client_id"], client_id);
        assert!(claims.get("aud").is_none(), "Cognito access tokens have no aud");
    }
    claims
}

#[tokio::test]
async fn discovery_and_jwks_have_cognitos_shape() {
    let idp = DevIdp::start(settings()).await.unwrap();
    let pool = &idp.settings().user_pool_id;
    assert_eq!(idp.issuer(), format!("{}/{pool}", idp.base_url()));
    let discovery: Value = http()
        .get(format!("{}/.well-known/openid-configuration", idp.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], idp.issuer());
    assert_eq!(discovery["authorization_endpoint"], format!("{}/oauth2/authorize", idp.base_url()));
    assert_eq!(discovery["token_endpoint"], format!("{}/oauth2/token", idp.base_url()));
    assert_eq!(discovery["userinfo_endpoint"], format!("{}/oauth2/userInfo", idp.base_url()));
    assert_eq!(discovery["end_session_endpoint"], format!("{}/logout", idp.base_url()));
    assert_eq!(discovery["revocation_endpoint"], format!("{}/oauth2/revoke", idp.base_url()));
    assert_eq!(discovery["jwks_uri"], format!("{}/.well-known/jwks.json", idp.issuer()));
    assert!(discovery.get("code_challenge_methods_supported").is_none(), "Cognito does not advertise PKCE");

    let jwks: Value = http().get(discovery["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0]["kid"], keys[1]["kid"]);
    for key in keys {
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["e"], "AQAB");
        assert_eq!(B64.decode(key["n"].as_str().unwrap()).unwrap().len(), 256, "2048-bit modulus");
    }
}

#[tokio::test]
async fn code_flow_issues_tokens_that_pass_cognito_verification() {
    let idp = DevIdp::start(settings()).await.unwrap();
    let (callback, cookie) = sign_in(&idp, PUBLIC, &Settings::default().users[0].password).await;
    assert_eq!(callback.as_str().split('?').next().unwrap(), CALLBACK);
    assert_eq!(query(&callback, "state").as_deref(), Some("state-123"));
    let cookie = cookie.expect("a cognito session cookie");
    assert!(cookie.starts_with("cognito="));

    let (status, body) = redeem(&idp, PUBLIC, &query(&callback, "code").unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);

    let id = verify(&idp, body["id_token"].as_str().unwrap(), "id", PUBLIC).await;
    let access = verify(&idp, body["access_token"].as_str().unwrap(), "access", PUBLIC).await;
    assert_eq!(id["aud"], PUBLIC);
    assert_eq!(id["nonce"], "nonce-456");
    assert_eq!(id["cognito:username"], "alice");
    assert_eq!(id["email"], "alice@example.com");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["name"], "Alice Example");
    assert_eq!(id["cognito:groups"], serde_json::json!(["admins", "users"]));
    let at_hash = B64.encode(&Sha256::digest(body["access_token"].as_str().unwrap().as_bytes())[..16]);
    assert_eq!(id["at_hash"], at_hash);
    assert_eq!(access["username"], "alice");
    assert_eq!(access["scope"], "openid email profile");
    assert_eq!(access["sub"], id["sub"]);
    assert_eq!(access["origin_jti"], id["origin_jti"]);
    assert_eq!(access["version"], 2);
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    assert_ne!(
        kid(body["id_token"].as_str().unwrap()),
        kid(body["access_token"].as_str().unwrap()),
        "ID and access tokens use different keys"
    );

    let refresh = body["refresh_token"].as_str().unwrap();
    assert_eq!(refresh.split('.').count(), 5, "JWE-shaped");
    assert!((1700..=1900).contains(&refresh.len()), "Cognito-sized refresh token, got {} bytes", refresh.len());
    assert_eq!(idp.counters().authorization_code, 1);
}

#[tokio::test]
async fn authorize_errors_are_pages_or_redirects_as_on_cognito() {
    let idp = DevIdp::start(settings()).await.unwrap();
    let http = http();
    let get = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap() }
    };

    let unknown_client = get(authorize_url(&idp, "nobody", &[])).await;
    assert_eq!(unknown_client.status(), 400);
    // Never to the unregistered redirect_uri: to the provider's own error page.
    let wrong_redirect = get(authorize_url(&idp, PUBLIC, &[]).replace("localhost%3A8080", "evil.example")).await;
    assert_eq!(wrong_redirect.status(), StatusCode::FOUND);
    let target = location(&wrong_redirect);
    assert_eq!(
        target.as_str(),
        format!("{}/error?error=redirect_mismatch&client_id={PUBLIC}", idp.base_url()),
        "on the provider's domain"
    );
    let page = get(target.to_string()).await;
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("redirect_mismatch"));

    let cases: [(&[(&str, &str)], &str); 5] = [
        // Every client here is code-only: the implicit flow is not allowed to it.
        (&[("response_type", "token")], "unauthorized_client"),
        (&[("response_type", "id_token")], "unsupported_response_type"),
        (&[("scope", "openid admin")], "invalid_scope"),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (&[("prompt", "none")], "login_required"),
    ];
    for (extra, expected) in cases {
        // Later duplicates win in the provider's parsing, so `extra` overrides the defaults.
        let response = get(authorize_url(&idp, PUBLIC, extra)).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{extra:?}");
        let target = location(&response);
        assert!(target.as_str().starts_with(CALLBACK), "{target}");
        assert_eq!(query(&target, "error").as_deref(), Some(expected), "{extra:?}");
        assert_eq!(query(&target, "state").as_deref(), Some("state-123"));
        assert!(query(&target, "code").is_none());
    }
}

#[tokio::test]
async fn wrong_password_shows_the_form_again() {
    let idp = DevIdp::start(settings()).await.unwrap();
    let (page, cookie) = sign_in(&idp, PUBLIC, "wrong password").await;
    assert!(cookie.is_none());
    assert!(query(&page, "page").unwrap().contains("Incorrect username or password."));
    assert_eq!(idp.counters().authorization_code, 0);
}

#[tokio::test]
async fn session_cookie_signs_in_silently_until_logout() {
    let idp = DevIdp::start(settings()).await.unwrap();
    let (_, cookie) = sign_in(&idp, PUBLIC, &Settings::default().users[0].password).await;
    let cookie = cookie.unwrap();
    let http = http();

    let silent = http.get(authorize_url(&idp, PUBLIC, &[])).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(silent.status(), StatusCode::FOUND);
    assert!(query(&location(&silent), "code").is_some(), "signed in without the form");

    let forced =
        http.get(authorize_url(&idp, PUBLIC, &[("prompt", "login")])).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(location(&forced).path(), "/login", "prompt=login shows the form");

    let oidc_style = http
        .get(format!("{}/logout?client_id={PUBLIC}&post_logout_redirect_uri={}", idp.base_url(), urlencode(SIGNED_OUT)))
        .send()
        .await
        .unwrap();
    assert_eq!(oidc_style.status(), 400, "Cognito rejects OIDC logout parameters");
    let not_allowed = http
        .get(format!("{}/logout?client_id={PUBLIC}&logout_uri={}", idp.base_url(), urlencode("https://evil.example/")))
        .send()
        .await
        .unwrap();
    assert_eq!(not_allowed.status(), 400);

    let logout = http
        .get(format!("{}/logout?client_id={PUBLIC}&logout_uri={}", idp.base_url(), urlencode(SIGNED_OUT)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::FOUND);
    assert_eq!(location(&logout).as_str(), SIGNED_OUT);
    assert!(logout.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));

    let after = http.get(authorize_url(&idp, PUBLIC, &[])).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(location(&after).path(), "/login", "the old session no longer signs in");
}

#[tokio::test]
async fn token_endpoint_errors() {
    let idp = DevIdp::start(settings()).await.unwrap();
    let password = Settings::default().users[0].password.clone();

    let (callback, _) = sign_in(&idp, PUBLIC, &password).await;
    let code = query(&callback, "code").unwrap();
    let bad_verifier = token(
        &idp,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", PUBLIC),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &"x".repeat(50)),
        ],
    )
    .await;
    assert_eq!(bad_verifier, (StatusCode::BAD_REQUEST, serde_json::json!({ "error": "invalid_grant" })));
    let reused = redeem(&idp, PUBLIC, &code).await;
    assert_eq!(reused.1["error"], "invalid_grant", "a code is burnt by its first use, even a failed one");

    let (callback, _) = sign_in(&idp, PUBLIC, &password).await;
    let code = query(&callback, "code").unwrap();
    let other_redirect = token(
        &idp,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", PUBLIC),
            ("code", &code),
            ("redirect_uri", "http://localhost:8080/other"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(other_redirect.1["error"], "invalid_grant");

    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("grant_type", "authorization_code"), ("client_id", "nobody"), ("code", "x"), ("redirect_uri", CALLBACK)],
            "invalid_client",
        ),
        (
            &[
                ("grant_type", "authorization_code"),
                ("client_id", CONFIDENTIAL),
                ("client_secret", "wrong"),
                ("code", "x"),
                ("redirect_uri", CALLBACK),
            ],
            "invalid_client",
        ),
        (&[("grant_type", "password"), ("client_id", PUBLIC)], "unsupported_grant_type"),
        (&[("client_id", PUBLIC)], "invalid_request"),
        (&[("grant_type", "authorization_code"), ("client_id", PUBLIC), ("redirect_uri", CALLBACK)], "invalid_request"),
    ];
    for (form, expected) in cases {
        let (status, body) = token(&idp, form).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some(expected)), "{form:?}");
    }
    let json_body = http()
        .post(format!("{}/oauth2/token", idp.base_url()))
        .json(&serde_json::json!({"grant_type": "refresh_token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
    let duplicated = http()
        .post(format!("{}/oauth2/token", idp.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=refresh_token&client_id={PUBLIC}&client_id={PUBLIC}"))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicated.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn confidential_client_authenticates_by_basic_or_post() {
    let idp = DevIdp::start(settings()).await.unwrap();
    let password = Settings::default().users[0].password.clone();
    for basic in [true, false] {
        let (callback, _) = sign_in(&idp, CONFIDENTIAL, &password).await;
        let code = query(&callback, "code").unwrap();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ];
        let mut request = http().post(format!("{}/oauth2/token", idp.base_url()));
        if basic {
            request = request.basic_auth(CONFIDENTIAL, Some(SECRET));
        } else {
            form.extend([("client_id", CONFIDENTIAL), ("client_secret", SECRET)]);
        }
        let response = request.form(&form).send().await.unwrap();
        assert_eq!(response.status(), 200, "basic = {basic}");
    }
    // Without its secret, a confidential client is refused.
    let (callback, _) = sign_in(&idp, CONFIDENTIAL, &password).await;
    let (status, body) = redeem(&idp, CONFIDENTIAL, &query(&callback, "code").unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_client")));
}

#[tokio::test]
async fn refresh_without_rotation_keeps_the_refresh_token() {
    let idp = DevIdp::start(settings()).await.unwrap();
    let tokens = signed_in_tokens(&idp).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    for _ in 0..3 {
        let (status, body) =
            token(&idp, &[("grant_type", "refresh_token"), ("client_id", PUBLIC), ("refresh_token", refresh)]).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("refresh_token").is_none(), "no rotation: no new refresh token");
        let id = verify(&idp, body["id_token"].as_str().unwrap(), "id", PUBLIC).await;
        assert!(id.get("nonce").is_none());
        verify(&idp, body["access_token"].as_str().unwrap(), "access", PUBLIC).await;
    }
    assert_eq!(idp.counters().refresh_token, 3);
    assert_eq!(idp.counters().refresh_with_scope, 0);
    let (_, with_scope) = token(
        &idp,
        &[("grant_type", "refresh_token"), ("client_id", PUBLIC), ("refresh_token", refresh), ("scope", "openid")],
    )
    .await;
    assert!(with_scope.get("access_token").is_some(), "Cognito ignores the scope of a refresh");
    assert_eq!(
        idp.counters().refresh_with_scope,
        1,
        "but the provider counts it, so gateway tests can assert none is sent"
    );
    let (_, body) = token(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CONFIDENTIAL),
            ("client_secret", SECRET),
            ("refresh_token", refresh),
        ],
    )
    .await;
    assert_eq!(body["error"], "invalid_grant", "another client's refresh token");
}

/// With rotation, a new refresh token keeps the first one's expiry (it does not slide):
/// a session can never outlive the refresh-token validity of its sign-in.
#[tokio::test]
async fn a_rotated_refresh_token_keeps_the_original_expiry() {
    let ttl = Duration::from_millis(1500);
    let idp = DevIdp::start(Settings {
        rotate_refresh_tokens: true,
        rotation_grace: Duration::ZERO,
        refresh_token_ttl: ttl,
        ..settings()
    })
    .await
    .unwrap();
    let signed_in = std::time::Instant::now();
    let first = signed_in_tokens(&idp).await["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |t: String| {
        let idp = idp.clone();
        async move { token(&idp, &[("grant_type", "refresh_token"), ("client_id", PUBLIC), ("refresh_token", &t)]).await }
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, body) = refresh(first).await;
    assert_eq!(status, 200, "{body}");
    let rotated = body["refresh_token"].as_str().expect("a rotated refresh token").to_owned();
    tokio::time::sleep(
        (signed_in + ttl + Duration::from_millis(200)).saturating_duration_since(std::time::Instant::now()),
    )
    .await;
    let (_, body) = refresh(rotated).await;
    assert_eq!(body["error"], "invalid_grant", "expired with the sign-in's refresh token, not a fresh validity");
}

#[tokio::test]
async fn refresh_with_rotation_honours_the_grace_period() {
    let idp =
        DevIdp::start(Settings { rotate_refresh_tokens: true, rotation_grace: Duration::from_secs(2), ..settings() })
            .await
            .unwrap();
    let tokens = signed_in_tokens(&idp).await;
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |t: String| {
        let idp = idp.clone();
        async move { token(&idp, &[("grant_type", "refresh_token"), ("client_id", PUBLIC), ("refresh_token", &t)]).await }
    };

    let (status, body) = refresh(first.clone()).await;
    assert_eq!(status, 200);
    let second = body["refresh_token"].as_str().expect("rotation returns a new refresh token").to_owned();
    assert_ne!(second, first);
    assert_eq!(refresh(first.clone()).await.0, 200, "the old token works within the grace period");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(refresh(first).await.1["error"], "invalid_grant", "and not after it");
    assert_eq!(refresh(second).await.0, 200, "the new one works");
}

#[tokio::test]
async fn revoke_ends_refresh_and_userinfo() {
    let idp = DevIdp::start(settings()).await.unwrap();
    let tokens = signed_in_tokens(&idp).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let userinfo = |token: Option<&str>| {
        let mut request = http().get(format!("{}/oauth2/userInfo", idp.base_url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let info = userinfo(Some(access)).await.unwrap();
    assert_eq!(info.status(), 200);
    let info: Value = info.json().await.unwrap();
    assert_eq!(info["username"], "alice");
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["email_verified"], "true");
    let anonymous = userinfo(None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    assert_eq!(
        userinfo(Some(tokens["id_token"].as_str().unwrap())).await.unwrap().status(),
        401,
        "an ID token is not an access token"
    );

    let revoke =
        |form: Vec<(&'static str, String)>| http().post(format!("{}/oauth2/revoke", idp.base_url())).form(&form).send();
    let other =
        revoke(vec![("token", refresh.into()), ("client_id", CONFIDENTIAL.into()), ("client_secret", SECRET.into())])
            .await
            .unwrap();
    assert_eq!(other.json::<Value>().await.unwrap()["error"], "unauthorized_client");
    for (what, form) in [
        (
            "wrong secret",
            vec![("token", refresh.to_owned()), ("client_id", CONFIDENTIAL.into()), ("client_secret", "x".into())],
        ),
        ("no secret", vec![("token", refresh.to_owned()), ("client_id", CONFIDENTIAL.into())]),
        ("unknown client", vec![("token", refresh.to_owned()), ("client_id", "nobody".into())]),
    ] {
        let refused = revoke(form).await.unwrap();
        assert_eq!(refused.status(), 401, "{what}");
        assert_eq!(refused.json::<Value>().await.unwrap()["error"], "invalid_client", "{what}");
    }
    for not_refresh in [access, tokens["id_token"].as_str().unwrap()] {
        let refused = revoke(vec![("token", not_refresh.to_owned()), ("client_id", PUBLIC.into())]).await.unwrap();
        assert_eq!(refused.status(), 400);
        assert_eq!(refused.json::<Value>().await.unwrap()["error"], "unsupported_token_type");
    }
    assert_eq!(userinfo(Some(access)).await.unwrap().status(), 200, "refused revocations revoke nothing");
    for _ in 0..2 {
        let revoked = http()
            .post(format!("{}/oauth2/revoke", idp.base_url()))
            .form(&[("token", refresh), ("client_id", PUBLIC)])
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200, "revoking twice is fine");
        assert!(revoked.bytes().await.unwrap().is_empty());
    }
    let (_, body) =
        token(&idp, &[("grant_type", "refresh_token"), ("client_id", PUBLIC), ("refresh_token", refresh)]).await;
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        userinfo(Some(access)).await.unwrap().status(),
        401,
        "access tokens of a revoked sign-in are revoked too"
    );
    assert_eq!(idp.counters().revocations, 2);
}

#[tokio::test]
async fn short_lived_access_tokens_expire() {
    let idp = DevIdp::start(Settings { access_token_ttl: Duration::from_secs(1), ..settings() }).await.unwrap();
    let tokens = signed_in_tokens(&idp).await;
    assert_eq!(tokens["expires_in"], 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = http()
        .get(format!("{}/oauth2/userInfo", idp.base_url()))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn knobs_inject_failures_and_rotate_keys() {
    let idp = DevIdp::start(settings()).await.unwrap();
    let tokens = signed_in_tokens(&idp).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("client_id", PUBLIC), ("refresh_token", refresh)];

    idp.fail_token_requests(Some(TokenFailure::Status(503)));
    assert_eq!(token(&idp, &form).await.0, 503);
    idp.fail_token_requests(Some(TokenFailure::InvalidGrant));
    assert_eq!(token(&idp, &form).await.1["error"], "invalid_grant");
    idp.fail_token_requests(Some(TokenFailure::Delay(Duration::from_millis(300))));
    let started = std::time::Instant::now();
    assert_eq!(token(&idp, &form).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    idp.fail_token_requests(None);
    assert_eq!(token(&idp, &form).await.0, 200);
    let counters = idp.counters();
    assert_eq!((counters.authorization_code, counters.refresh_token, counters.token_errors), (1, 2, 2));

    let kids = |jwks: Value| -> Vec<String> {
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    };
    let jwks_url = format!("{}/.well-known/jwks.json", idp.issuer());
    let before = kids(http().get(&jwks_url).send().await.unwrap().json().await.unwrap());
    idp.rotate_keys(true);
    let kept = kids(http().get(&jwks_url).send().await.unwrap().json().await.unwrap());
    assert_eq!(kept.len(), 4);
    assert!(before.iter().all(|kid| kept.contains(kid)), "old keys stay published");
    let (_, body) = token(&idp, &form).await;
    verify(&idp, body["id_token"].as_str().unwrap(), "id", PUBLIC).await;
    let new_kid = jsonwebtoken::decode_header(body["id_token"].as_str().unwrap()).unwrap().kid.unwrap();
    assert!(!before.contains(&new_kid), "new tokens are signed with a new key");
    idp.rotate_keys(false);
    let replaced = kids(http().get(&jwks_url).send().await.unwrap().json().await.unwrap());
    assert_eq!(replaced.len(), 2);
    assert!(replaced.iter().all(|kid| !kept.contains(kid)));
}

#[tokio::test]
async fn dev_idp_command_serves_its_settings_file() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev-idp.example.toml");
    let (child, lines) = common::spawn_with_lines(
        std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["dev-idp", "--listen", "127.0.0.1:0", "--idp-config"])
            .arg(&example),
    );
    let mut printed = Vec::new();
    while printed.len() < 6 {
        printed.push(lines.recv_timeout(Duration::from_secs(20)).expect("dev-idp prints its settings"));
    }
    let issuer = printed.iter().find_map(|l| l.strip_prefix("issuer: ")).expect("issuer line").to_owned();
    let discovery = http().get(format!("{issuer}/.well-known/openid-configuration")).send().await;
    drop(child);
    let discovery: Value = discovery.expect("the command serves").json().await.unwrap();
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert!(issuer.ends_with("/eu-west-1_Dev0Pool1"), "{issuer}");
    assert!(printed.iter().any(|l| l == "client: portcullis-example (confidential)"), "{printed:?}");
    assert!(printed.iter().any(|l| l.starts_with("user: alice")), "{printed:?}");
}

#[tokio::test]
async fn basic_credentials_are_form_decoded_and_pkce_cannot_be_downgraded() {
    let idp = DevIdp::start(settings()).await.unwrap();
    let password = Settings::default().users[0].password.clone();
    let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();

    let (callback, _) = sign_in(&idp, ENCODED, &password).await;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", encode(ENCODED), encode(ENCODED_SECRET)));
    let code = query(&callback, "code").unwrap();
    let response = http()
        .post(format!("{}/oauth2/token", idp.base_url()))
        .header("authorization", format!("Basic {basic}"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    // Authorize without a challenge, then redeem with a verifier: refused.
    let http = http();
    let mut url = url::Url::parse(&authorize_url(&idp, PUBLIC, &[])).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut().clear().extend_pairs(&pairs);
    let login = http.get(url.as_str()).send().await.unwrap();
    let login = format!("{}/login?{}", idp.base_url(), location(&login).query().unwrap());
    let signed_in =
        http.post(&login).form(&[("username", "alice"), ("password", password.as_str())]).send().await.unwrap();
    let code = query(&location(&signed_in), "code").unwrap();
    let (status, body) = redeem(&idp, PUBLIC, &code).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

#[tokio::test]
async fn settings_that_would_forge_claims_are_refused() {
    let mut forging = settings();
    forging.users[0].attributes.insert("sub".into(), "someone-else".into());
    let err = DevIdp::start(forging).await.err().expect("refused");
    assert!(err.to_string().contains("\"sub\" is a claim the provider sets itself"), "{err}");
}

/// A user who signs in through Google: Cognito names them `Google_{Google's user id}`,
/// puts them in the automatic group `{userPoolId}_Google` and lists the link in the ID
/// token's `identities`.
#[tokio::test]
async fn federated_users_carry_identities_and_the_automatic_group() {
    let mut federated = settings();
    federated.users.push(UserSettings {
        username: "Google_1234567890".into(),
        password: "a password standing in for Google's sign-in".into(),
        email: Some("carol@gmail.com".into()),
        groups: vec!["users".into()],
        attributes: Default::default(),
        sub: None,
        identity_provider: Some("Google".into()),
    });
    let password = federated.users[2].password.clone();
    let idp = DevIdp::start(federated).await.unwrap();
    let (callback, _) = sign_in_as(&idp, PUBLIC, "Google_1234567890", &password).await;
    let (status, tokens) = redeem(&idp, PUBLIC, &query(&callback, "code").unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    let group = format!("{}_Google", idp.settings().user_pool_id);

    let id = verify(&idp, tokens["id_token"].as_str().unwrap(), "id", PUBLIC).await;
    assert_eq!(id["cognito:username"], "Google_1234567890");
    assert_eq!(id["cognito:groups"], serde_json::json!(["users", group]));
    let identities = id["identities"].as_array().expect("identities is an array");
    assert_eq!(identities.len(), 1);
    let identity = &identities[0];
    assert_eq!(identity["userId"], "1234567890");
    assert_eq!(identity["providerName"], "Google");
    assert_eq!(identity["providerType"], "Google");
    assert_eq!(identity["primary"], "true");
    assert!(identity["dateCreated"].as_str().is_some_and(|d| d.parse::<u64>().is_ok()), "{identity}");
    let access = verify(&idp, tokens["access_token"].as_str().unwrap(), "access", PUBLIC).await;
    assert_eq!(access["username"], "Google_1234567890");
    assert_eq!(access["cognito:groups"], serde_json::json!(["users", group]));
    assert!(access.get("identities").is_none(), "only the ID token lists identities");

    // Alice is not federated: no identities, no automatic group.
    let alice = verify(&idp, signed_in_tokens(&idp).await["id_token"].as_str().unwrap(), "id", PUBLIC).await;
    assert!(alice.get("identities").is_none());
    assert_eq!(alice["cognito:groups"], serde_json::json!(["admins", "users"]));

    let mut misnamed = settings();
    misnamed.users[0].identity_provider = Some("Google".into());
    let err = DevIdp::start(misnamed).await.err().expect("refused");
    assert!(err.to_string().contains("Google_"), "{err}");
}
