//! The browser login through the Cognito-compatible provider: redirect to sign in,
//! callback, session cookies, identity headers upstream, userinfo, logout; and each
//! way it must fail safely (a clear 4xx or a logged-out state, nothing forwarded).

mod common;

use common::upstream::seen;
use portcullis::dev_idp::{Settings, UserSettings};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::BTreeMap;

use common::browser::{Browser, CLIENT, KEY, location, query, setup, setup_kind};

#[tokio::test]
async fn browser_logs_in_and_the_upstream_sees_only_verified_identity() {
    let s = setup(|_| {}, "").await;
    let mut browser = Browser::default();

    let page = browser
        .get(&s, &s.gateway.url("/app/page?tab=2"), &[("accept", "text/html"), ("sec-fetch-mode", "navigate")])
        .await;
    assert_eq!(page.status(), StatusCode::FOUND);
    assert_eq!(location(&page), "/auth/login?return_to=%2Fapp%2Fpage%3Ftab%3D2");
    let api = browser.get(&s, &s.gateway.url("/api/data"), &[("accept", "application/json")]).await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.json::<Value>().await.unwrap()["login_url"], "/auth/login?return_to=%2Fapi%2Fdata");

    let back = browser.log_in(&s, "%2Fapp%2Fpage%3Ftab%3D2").await;
    assert_eq!(back.status(), StatusCode::FOUND);
    assert_eq!(location(&back), "/app/page?tab=2");
    assert!(
        browser.gateway.keys().all(|name| !name.contains("-tx-")),
        "the login attempt cookie is gone: {:?}",
        browser.gateway.keys()
    );
    let session_bytes: usize = browser.gateway.iter().map(|(k, v)| k.len() + v.len() + 1).sum();
    assert!(browser.gateway.keys().any(|k| k.starts_with("portcullis")), "{:?}", browser.gateway.keys());
    eprintln!("session cookies: {:?}, {session_bytes} bytes", browser.gateway.keys().collect::<Vec<_>>());
    assert_eq!(s.idp.counters().authorization_code, 1);

    let echo: Value = browser
        .get(
            &s,
            &s.gateway.url("/app/page"),
            &[("x-user-id", "spoofed"), ("X-User-Groups", "root"), ("x-portcullis-identity", "forged")],
        )
        .await
        .json()
        .await
        .unwrap();
    let sub = Settings::default().users[0].subject();
    assert_eq!(seen(&echo, "x-user-id"), std::slice::from_ref(&sub), "{echo}");
    assert_eq!(seen(&echo, "x-user-name"), ["alice"]);
    assert_eq!(seen(&echo, "x-user-email"), ["alice@example.com"]);
    assert_eq!(seen(&echo, "x-user-groups"), ["admins,users"]);
    assert!(
        seen(&echo, "cookie").iter().all(|c| !c.contains("portcullis")),
        "gateway cookies never go upstream: {echo}"
    );
    assert!(seen(&echo, "authorization").is_empty(), "no token upstream unless pass_access_token");

    // The signed identity assertion verifies with the gateway's published keys.
    let assertion = seen(&echo, "x-portcullis-identity").pop().expect("an identity assertion");
    assert_ne!(assertion, "forged");
    let jwks: jsonwebtoken::jwk::JwkSet =
        s.http.get(s.gateway.url("/auth/jwks.json")).send().await.unwrap().json().await.unwrap();
    let kid = jsonwebtoken::decode_header(&assertion).unwrap().kid.unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).expect("kid published")).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[s.gateway.url("")]);
    validation.set_audience(&["portcullis-upstream"]);
    let claims = jsonwebtoken::decode::<Value>(&assertion, &key, &validation).expect("the assertion verifies").claims;
    assert_eq!(claims["sub"], sub.as_str());
    assert_eq!(claims["groups"], serde_json::json!(["admins", "users"]));
    assert!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap() <= 60);

    let me: Value = browser.get(&s, &s.gateway.url("/auth/userinfo"), &[]).await.json().await.unwrap();
    assert_eq!(me["sub"], sub.as_str());
    assert_eq!(me["username"], "alice");
    assert_eq!(me["groups"], serde_json::json!(["admins", "users"]));
    assert_eq!(me["claims"]["name"], "Alice Example");
    assert_eq!(me["logout_url"], "/auth/logout");
    let text = me.to_string();
    assert!(!text.contains("eyJ"), "userinfo never carries a token: {text}");
}

/// A user federated from Google: a longer ID token (`identities`), one more group. The
/// session still fits two cookies, and the automatic group reaches the upstream.
#[tokio::test]
async fn a_federated_user_signs_in_with_the_automatic_group_in_two_cookies() {
    const PASSWORD: &str = "a password standing in for Google's sign-in";
    let federated = UserSettings {
        username: "Google_109220063452404746097".into(),
        password: PASSWORD.into(),
        email: Some("carol@gmail.com".into()),
        groups: vec!["users".into()],
        attributes: [("name".to_owned(), "Carol Example".to_owned())].into(),
        sub: None,
        identity_provider: Some("Google".into()),
    };
    let s = setup(|idp| idp.users.push(federated), "").await;
    let mut browser = Browser::default();
    let callback = browser.until_callback_as(&s, "%2F", "Google_109220063452404746097", PASSWORD).await;
    let back = browser.get(&s, &callback, &[]).await;
    assert_eq!(back.status(), StatusCode::FOUND);

    let session: Vec<&String> = browser.gateway.keys().filter(|k| k.starts_with("portcullis")).collect();
    let bytes: usize = browser.gateway.iter().map(|(k, v)| k.len() + v.len() + 1).sum();
    assert_eq!(session.len(), 2, "a federated session fits two cookies: {session:?}, {bytes} bytes");
    assert!(browser.gateway.values().all(|v| v.len() < 4000), "every cookie under the browser's limit");

    let echo: Value = browser.get(&s, &s.gateway.url("/app"), &[]).await.json().await.unwrap();
    let group = format!("{}_Google", Settings::default().user_pool_id);
    assert_eq!(seen(&echo, "x-user-groups"), [format!("users,{group}")], "{echo}");
    assert_eq!(seen(&echo, "x-user-name"), ["Google_109220063452404746097"]);
    let me: Value = browser.get(&s, &s.gateway.url("/auth/userinfo"), &[]).await.json().await.unwrap();
    assert_eq!(me["claims"]["identities"][0]["providerName"], "Google", "{me}");
}

#[tokio::test]
async fn public_routes_need_no_session_but_lose_spoofed_identity() {
    let s = setup(|_| {}, "").await;
    let reply = s
        .http
        .get(s.gateway.url("/public/x"))
        .header("x-user-id", "admin")
        .header("x-user-email", "boss@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let echo: Value = reply.json().await.unwrap();
    assert!(seen(&echo, "x-user-id").is_empty() && seen(&echo, "x-user-email").is_empty(), "{echo}");
}

#[tokio::test]
async fn logout_ends_the_session_revokes_and_ends_the_provider_session() {
    let s = setup(|_| {}, "").await;
    let mut browser = Browser::default();
    browser.log_in(&s, "%2F").await;
    let cookies = Browser::cookie_header(&browser.gateway);

    let cross_site = s
        .http
        .post(s.gateway.url("/auth/logout"))
        .header("cookie", &cookies)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(s.idp.counters().revocations, 0);

    let logout = s
        .http
        .post(s.gateway.url("/auth/logout"))
        .header("cookie", &cookies)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    Browser::store(&mut browser.gateway, &logout);
    assert!(browser.gateway.is_empty(), "every gateway cookie is expired: {:?}", browser.gateway);
    let target = location(&logout);
    let params = query(&target);
    assert!(target.starts_with(&format!("{}/logout?", s.idp.base_url())), "{target}");
    assert_eq!(params["client_id"], CLIENT);
    assert_eq!(params["logout_uri"], s.gateway.url("/"));
    assert_eq!(s.idp.counters().revocations, 1, "the refresh token was revoked");

    // The provider's own session ends too: the next login shows the form again.
    let ended = browser.get(&s, &target, &[]).await;
    assert_eq!(ended.status(), StatusCode::FOUND);
    let login = browser.get(&s, &s.gateway.url("/auth/login"), &[]).await;
    let authorize = browser.get(&s, &location(&login), &[]).await;
    assert!(location(&authorize).starts_with("/login?"), "signed out at the provider too");
    let after = browser.get(&s, &s.gateway.url("/api/x"), &[("accept", "application/json")]).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unsafe_return_paths_land_on_the_root() {
    let s = setup(|_| {}, "").await;
    for return_to in ["%2F%2Fevil.example", "%2F%5Cevil.example", "https%3A%2F%2Fevil.example", "javascript%3Aalert(1)"]
    {
        let mut browser = Browser::default();
        let back = browser.log_in(&s, return_to).await;
        assert_eq!(location(&back), "/", "{return_to}");
    }
    // An absolute URL counts only on the public origin itself (ingress-nginx's
    // auth-signin sends one), as its path.
    let origin = s.gateway.url("");
    let encode = |url: String| url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>();
    for (return_to, lands) in [
        (format!("{origin}/app/page?tab=2"), "/app/page?tab=2"),
        (format!("{origin}.evil.example/x"), "/"),
        (format!("{origin}//evil.example/x"), "/"),
        ("http://evil.example/x".to_owned(), "/"),
    ] {
        let mut browser = Browser::default();
        let back = browser.log_in(&s, &encode(return_to.clone())).await;
        assert_eq!(location(&back), lands, "{return_to}");
    }
}

/// A `Cookie` header that is not UTF-8 (an app's cookie holding Latin-1 bytes, say)
/// still has the gateway's cookies taken out before it goes upstream, on public and
/// protected routes, and the session in it still counts.
#[tokio::test]
async fn gateway_cookies_never_go_upstream_even_beside_bytes_that_are_not_text() {
    let s = setup(|_| {}, "").await;
    let mut browser = Browser::default();
    browser.log_in(&s, "%2F").await;
    let mut header = b"theme=\xe9t\xe9; ".to_vec();
    header.extend_from_slice(Browser::cookie_header(&browser.gateway).as_bytes());
    let header = reqwest::header::HeaderValue::from_bytes(&header).unwrap();
    for (path, status) in [("/public/x", 200), ("/api/x", 200)] {
        let reply = s.http.get(s.gateway.url(path)).header("cookie", header.clone()).send().await.unwrap();
        assert_eq!(reply.status(), status, "{path}");
        let echo: Value = reply.json().await.unwrap();
        let cookies = seen(&echo, "cookie");
        assert_eq!(cookies.len(), 1, "{path}: {echo}");
        assert!(cookies[0].starts_with("theme=") && !cookies[0].contains("portcullis"), "{path}: {cookies:?}");
    }
}

#[tokio::test]
async fn broken_session_cookies_are_a_logged_out_user() {
    let s = setup(|_| {}, "").await;
    let mut browser = Browser::default();
    browser.log_in(&s, "%2F").await;
    let good = browser.gateway.clone();
    let name = good.keys().find(|k| !k.contains('.')).or_else(|| good.keys().next()).unwrap().clone();

    let mut variants: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut tampered = good.clone();
    tampered.entry(name.clone()).and_modify(|v| v.replace_range(10..11, if &v[10..11] == "A" { "B" } else { "A" }));
    variants.push(("tampered".into(), tampered));
    let mut truncated = good.clone();
    truncated.entry(name.clone()).and_modify(|v| v.truncate(v.len() / 2));
    variants.push(("truncated".into(), truncated));
    variants.push(("garbage".into(), good.keys().map(|k| (k.clone(), "not%20base64!".to_owned())).collect()));
    if good.len() > 1 {
        let mut missing = good.clone();
        missing.remove(good.keys().last().unwrap());
        variants.push(("missing chunk".into(), missing));
        let mut reordered = good.clone();
        let values: Vec<String> = good.values().cloned().collect();
        for (slot, value) in reordered.values_mut().zip(values.iter().rev()) {
            *slot = value.clone();
        }
        variants.push(("reordered chunks".into(), reordered));
    }
    for (what, jar) in variants {
        let reply = s
            .http
            .get(s.gateway.url("/api/x"))
            .header("cookie", Browser::cookie_header(&jar))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED, "{what}");
    }
    let ok = s.http.get(s.gateway.url("/api/x")).header("cookie", Browser::cookie_header(&good)).send().await.unwrap();
    assert_eq!(ok.status(), 200, "the untouched session still works");
}

#[tokio::test]
async fn callback_refuses_unknown_state_reused_codes_and_provider_errors() {
    let s = setup(|_| {}, "").await;
    let mut browser = Browser::default();
    let back = browser.log_in(&s, "%2F").await;
    assert_eq!(back.status(), StatusCode::FOUND);

    // No attempt cookie for this state: refused without contacting the provider.
    let forged = s.http.get(s.gateway.url("/auth/callback?code=abc&state=0123456789abcdef0123")).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(forged.text().await.unwrap().contains("unknown or has expired"));

    // Replaying the whole callback (same code, same state) after it was used.
    let mut second = Browser::default();
    let callback = second.until_callback(&s, "%2F").await;
    let tx_cookies = Browser::cookie_header(&second.gateway);
    let first = s.http.get(&callback).header("cookie", &tx_cookies).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::FOUND);
    let replay = s.http.get(&callback).header("cookie", &tx_cookies).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "a replayed callback is refused");

    let denied = s.http.get(s.gateway.url("/auth/callback?error=access_denied&state=x")).send().await.unwrap();
    assert_eq!(denied.status(), StatusCode::BAD_REQUEST);
    assert!(denied.text().await.unwrap().contains("access_denied"));
    let injected =
        s.http.get(s.gateway.url("/auth/callback?error=%3Cscript%3Ealert(1)%3C%2Fscript%3E")).send().await.unwrap();
    assert!(!injected.text().await.unwrap().contains("<script>"), "the error is escaped");
}

#[test]
fn session_cookies_are_host_prefixed_secure_httponly_lax() {
    // Without insecure_dev_cookies: every attribute the browser needs to protect them.
    let jar = portcullis::auth::cookies::CookieJar::new("portcullis", false);
    let mut headers = http::HeaderMap::new();
    jar.set(&mut headers, jar.session_name(), "v", 10);
    let set = headers["set-cookie"].to_str().unwrap();
    for part in ["__Host-portcullis=v", "Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Domain"), "{set}");
}

/// A second gateway in front of the same provider with other cookie keys.
async fn gateway_with_keys(s: &common::browser::Setup, keys: &[&str]) -> common::TestGateway {
    let app = common::upstream::echo().await;
    let keys: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    let gateway = common::TestGateway::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n\
         [provider]\nkind = \"cognito\"\nissuer = \"{}\"\ndomain = \"{}\"\nclient_id = \"{CLIENT}\"\n\
         [session]\ncookie_keys = [{}]\ninsecure_dev_cookies = true\n[[route]]\nprefix = \"/\"\nupstream = \"http://{app}\"\n",
        s.idp.issuer(),
        s.idp.base_url(),
        keys.join(", ")
    ))
    .await;
    gateway.ready().await;
    gateway
}

#[tokio::test]
async fn cookie_keys_rotate_without_logging_anyone_out() {
    let s = setup(|_| {}, "").await;
    let mut browser = Browser::default();
    browser.log_in(&s, "%2F").await;
    let cookies = Browser::cookie_header(&browser.gateway);
    const NEW_KEY: &str = "bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleSE=";

    let rotated = gateway_with_keys(&s, &[NEW_KEY, KEY]).await;
    let reply = common::get(&rotated.url("/api/x"), &[("cookie", &cookies), ("accept", "application/json")]).await;
    assert_eq!(reply.status, 200, "a session sealed with the old key opens while it is listed");
    let retired = gateway_with_keys(&s, &[NEW_KEY]).await;
    let reply = common::get(&retired.url("/api/x"), &[("cookie", &cookies), ("accept", "application/json")]).await;
    assert_eq!(reply.status, 401, "a wrong key is a logged-out user, not an error");
}

#[tokio::test]
async fn parallel_login_attempts_cannot_pile_up_cookies() {
    let s = setup(|_| {}, "").await;
    let mut browser = Browser::default();
    for _ in 0..10 {
        let login = browser.get(&s, &s.gateway.url("/auth/login"), &[]).await;
        assert_eq!(login.status(), StatusCode::FOUND);
        let open = browser.gateway.keys().filter(|name| name.contains("-tx-")).count();
        assert!(open <= portcullis::auth::transaction::MAX_OPEN, "{open} login attempt cookies");
    }
}

#[tokio::test]
async fn a_generic_oidc_provider_logs_in_and_out_by_discovery() {
    let s = setup_kind("oidc", |_| {}, "").await;
    let mut browser = Browser::default();
    let back = browser.log_in(&s, "%2F").await;
    assert_eq!(back.status(), StatusCode::FOUND);
    let me: Value = browser.get(&s, &s.gateway.url("/auth/userinfo"), &[]).await.json().await.unwrap();
    assert_eq!(me["username"], "alice");

    let cookies = Browser::cookie_header(&browser.gateway);
    let logout = s
        .http
        .post(s.gateway.url("/auth/logout"))
        .header("cookie", &cookies)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    let params = query(&location(&logout));
    assert_eq!(params["post_logout_redirect_uri"], s.gateway.url("/"), "OIDC RP-initiated logout");
    assert!(params["id_token_hint"].starts_with("eyJ"), "with the ID token as hint");
}

#[tokio::test]
async fn cross_site_writes_riding_on_the_session_cookie_are_refused() {
    let s = setup(|_| {}, "").await;
    let mut browser = Browser::default();
    browser.log_in(&s, "%2F").await;
    let cookies = Browser::cookie_header(&browser.gateway);
    let post = |path: &str, headers: &[(&str, &str)]| {
        let mut request =
            s.http.post(s.gateway.url(path)).header("cookie", &cookies).header("accept", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body("{}").send()
    };
    let origin = s.gateway.url("");
    for (what, headers, expected) in [
        ("cross-site", vec![("sec-fetch-site", "cross-site")], 403),
        ("same-site sibling", vec![("sec-fetch-site", "same-site")], 403),
        ("foreign Origin", vec![("origin", "https://evil.example")], 403),
        ("no evidence", vec![], 403),
        ("same-origin", vec![("sec-fetch-site", "same-origin")], 200),
        ("matching Origin", vec![("origin", origin.as_str())], 200),
        ("X-CSRF: 1", vec![("x-csrf", "1"), ("sec-fetch-site", "cross-site")], 200),
    ] {
        let reply = post("/api/write", &headers).await.unwrap();
        let status = reply.status().as_u16();
        let body: Value = reply.json().await.unwrap();
        assert_eq!(status, expected, "{what}: {body}");
        if expected == 403 {
            assert_eq!(body["error"], "csrf", "{what}: answered by the gateway, not the upstream");
        } else {
            assert_eq!(body["method"], "POST", "{what}: forwarded");
        }
    }
    let opted_out = post("/nocsrf/hook", &[("sec-fetch-site", "cross-site")]).await.unwrap();
    assert_eq!(opted_out.status(), 200, "a route can opt out");
}
