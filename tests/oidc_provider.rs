//! Interop with a certified third-party OpenID provider: the npm package
//! `oidc-provider`, started on loopback from `tests/oidc-provider/server.mjs`
//! (dependencies pinned by its package-lock.json; `.ci/run` installs them with npm ci).
//! Through Portcullis as a generic `oidc` provider, in a real Chromium: discovery, login
//! with PKCE (confidential and public clients), identity headers upstream, refresh with
//! oidc-provider's rotating refresh tokens (concurrent and late requests must never
//! present a rotated token again: oidc-provider would revoke the whole grant),
//! RP-initiated logout with end_session_endpoint, revocation, and back-channel logout
//! (the session ended at the provider ends at the gateway, on every replica).

mod common;

use common::chrome::{chromedriver, chromium};
use common::free_port;
use common::upstream;
use fantoccini::{Client, Locator};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// oidc-provider on a free port for a gateway at `gateway_origin`; killed on drop.
async fn oidc_provider(gateway_origin: &str) -> (common::ChildGuard, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider");
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "oidc-provider is not installed: run ./.ci/run (it runs npm ci in tests/oidc-provider)"
    );
    let port = free_port();
    let (child, lines) = common::spawn_with_lines(
        std::process::Command::new("node").arg(dir.join("server.mjs")).arg(port.to_string()).arg(gateway_origin),
    );
    let ready = lines.recv_timeout(common::BOUND).expect("oidc-provider starts (is Node.js installed?)");
    assert!(ready.starts_with("listening"), "{ready}");
    (child, format!("http://127.0.0.1:{port}"))
}

async fn gateway(port: u16, issuer: &str, client: &str, secret: &str) -> common::TestGateway {
    let gateway = common::TestGateway::start(&config(port, issuer, client, secret, "").await).await;
    gateway.ready().await;
    gateway
}

/// A gateway's configuration at `http://localhost:{port}`, with `extra` lines after
/// `[session]`'s.
async fn config(port: u16, issuer: &str, client: &str, secret: &str, extra: &str) -> String {
    let app = upstream::echo().await;
    let secret = if secret.is_empty() { String::new() } else { format!("client_secret = \"{secret}\"\n") };
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\npublic_url = \"http://localhost:{port}\"\n\
         [provider]\nkind = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"{client}\"\n{secret}groups_claim = \"groups\"\n\
         [session]\ncookie_keys = [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\ninsecure_dev_cookies = true\nrefresh_skew = \"1s\"\n\
         {extra}\n[[route]]\nprefix = \"/\"\nupstream = \"http://{app}\"\n"
    )
}

/// oidc-provider's development login, then its consent page.
async fn sign_in(browser: &Client) {
    sign_in_as(browser, "alice").await;
}

async fn sign_in_as(browser: &Client, username: &str) {
    let login = browser.wait().at_most(common::BOUND).for_element(Locator::Css("input[name=login]")).await.unwrap();
    login.send_keys(username).await.unwrap();
    browser.find(Locator::Css("input[name=password]")).await.unwrap().send_keys("any password").await.unwrap();
    browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let consent =
        browser.wait().at_most(common::BOUND).for_element(Locator::Css("input[name=prompt][value=consent]")).await;
    consent.expect("the consent page");
    browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
}

async fn counters(issuer: &str) -> Value {
    reqwest::get(format!("{issuer}/test/counters")).await.unwrap().json().await.unwrap()
}

async fn page_json(browser: &Client) -> Value {
    let text = browser.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

async fn cookie_header(browser: &Client) -> String {
    let cookies = browser.get_all_cookies().await.unwrap();
    cookies
        .iter()
        .filter(|c| c.name().starts_with("portcullis"))
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn confidential_client_logs_in_refreshes_with_rotation_and_logs_out() {
    let (_driver, driver_port) = chromedriver().await;
    let port = free_port();
    let home = format!("http://localhost:{port}/");
    let (_provider, issuer) = oidc_provider(&format!("http://localhost:{port}")).await;
    let gateway = gateway(port, &issuer, "confidential", "confidential-secret").await;
    let browser = chromium(driver_port, &[]).await;

    browser.goto(&home).await.unwrap();
    sign_in(&browser).await;
    browser.wait().at_most(common::BOUND).for_url(&url::Url::parse(&home).unwrap()).await.unwrap();
    let echo = page_json(&browser).await;
    assert_eq!(upstream::seen(&echo, "x-user-name"), ["alice"], "{echo}");
    assert_eq!(upstream::seen(&echo, "x-user-email"), ["alice@example.com"]);
    assert_eq!(counters(&issuer).await["authorization_code"], 1);

    // Past the 3-second access token: 50 concurrent requests share one refresh.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let old = cookie_header(&browser).await;
    let http = reqwest::Client::new();
    let calls: Vec<_> = (0..50)
        .map(|_| http.get(gateway.url("/api")).header("cookie", &old).header("accept", "application/json").send())
        .collect();
    for reply in futures_util::future::join_all(calls).await {
        assert_eq!(reply.unwrap().status(), 200);
    }
    assert_eq!(counters(&issuer).await["refresh_token"], 1, "one refresh for 50 concurrent requests");

    // The browser still holds the pre-rotation cookie (a second tab, say).
    browser.goto(&format!("{home}late")).await.unwrap();
    assert_eq!(upstream::seen(&page_json(&browser).await, "x-user-name"), ["alice"]);
    let after = counters(&issuer).await;
    assert_eq!(after["refresh_token"], 1, "the rotated-out refresh token was never presented again");
    assert_eq!(after["grants_revoked"], 0, "no rotated refresh token was reused");

    // RP-initiated logout: the provider asks for confirmation, then returns.
    browser
        .execute(
            "const f = document.createElement('form'); f.method = 'post'; f.action = '/auth/logout'; document.body.appendChild(f); f.submit();",
            vec![],
        )
        .await
        .unwrap();
    let confirm = browser.wait().at_most(common::BOUND).for_element(Locator::Css("button[name=logout]")).await.unwrap();
    confirm.click().await.unwrap();
    browser.wait().at_most(common::BOUND).for_element(Locator::Css("input[name=login]")).await.unwrap();
    let end = counters(&issuer).await;
    assert_eq!(end["revocations"], 1, "the refresh token was revoked: {end}");
    // Revocation and oidc-provider's own end-session each revoke the grant; before the
    // logout none was (checked above).
    assert!(end["grants_revoked"].as_u64().unwrap() >= 1, "{end}");
    let reply = http
        .get(gateway.url("/api"))
        .header("cookie", cookie_header(&browser).await)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    // The provider also sent its logout token, for a session the gateway had ended.
    let statuses = &counters(&issuer).await["backchannel_statuses"];
    assert_eq!(statuses, &serde_json::json!([200]), "{statuses}");
    browser.close().await.unwrap();
}

#[tokio::test]
async fn public_client_logs_in_with_pkce_alone() {
    let (_driver, driver_port) = chromedriver().await;
    let port = free_port();
    let home = format!("http://localhost:{port}/");
    let (_provider, issuer) = oidc_provider(&format!("http://localhost:{port}")).await;
    let _gateway = gateway(port, &issuer, "public", "").await;
    let browser = chromium(driver_port, &[]).await;

    browser.goto(&home).await.unwrap();
    sign_in(&browser).await;
    browser.wait().at_most(common::BOUND).for_url(&url::Url::parse(&home).unwrap()).await.unwrap();
    assert_eq!(upstream::seen(&page_json(&browser).await, "x-user-name"), ["alice"]);
    browser.close().await.unwrap();
}

/// Two replicas sharing Redis behind one origin, with oidc-provider's rotating refresh
/// tokens (a reused one revokes the whole grant): signed in through the first, 30
/// concurrent requests of the expired session spread over both, then a late request
/// with the pre-rotation cookie on the second. One refresh, no grant revoked.
async fn two_replicas_share_one_rotating_refresh(store: &str) {
    let redis = common::redis::RedisServer::start().await;
    let (_driver, driver_port) = chromedriver().await;
    let port = free_port();
    let home = format!("http://localhost:{port}/");
    let (_provider, issuer) = oidc_provider(&format!("http://localhost:{port}")).await;
    let extra = format!("store = \"{store}\"\n{}", redis.section());
    let config = config(port, &issuer, "confidential", "confidential-secret", &extra).await;
    let first = common::TestGateway::start(&config).await;
    let listen = format!("listen = \"127.0.0.1:{port}\"");
    let second = common::TestGateway::start(&config.replace(&listen, "listen = \"127.0.0.1:0\"")).await;
    first.ready().await;
    second.ready().await;
    let browser = chromium(driver_port, &[]).await;
    browser.goto(&home).await.unwrap();
    sign_in(&browser).await;
    browser.wait().at_most(common::BOUND).for_url(&url::Url::parse(&home).unwrap()).await.unwrap();
    assert_eq!(upstream::seen(&page_json(&browser).await, "x-user-name"), ["alice"]);

    tokio::time::sleep(Duration::from_millis(3500)).await; // past the 3-second access token
    let old = cookie_header(&browser).await;
    let http = reqwest::Client::new();
    let calls: Vec<_> = (0..30)
        .map(|i| {
            let gateway = if i % 2 == 0 { &first } else { &second };
            http.get(gateway.url("/api")).header("cookie", &old).header("accept", "application/json").send()
        })
        .collect();
    let statuses: Vec<u16> =
        futures_util::future::join_all(calls).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{store}: {statuses:?}");
    let late = http.get(second.url("/late")).header("cookie", &old).header("accept", "application/json").send();
    assert_eq!(late.await.unwrap().status(), 200, "{store}: the late request on the other replica");
    let after = counters(&issuer).await;
    assert_eq!(after["refresh_token"], 1, "{store}: one refresh for both replicas: {after}");
    assert_eq!(after["grants_revoked"], 0, "{store}: no rotated refresh token was reused: {after}");
    browser.close().await.unwrap();
}

#[tokio::test]
async fn two_replicas_with_cookie_sessions_share_one_rotating_refresh() {
    two_replicas_share_one_rotating_refresh("cookie").await;
}

#[tokio::test]
async fn two_replicas_with_redis_sessions_share_one_rotating_refresh() {
    two_replicas_share_one_rotating_refresh("redis").await;
}

/// The session ends at the provider (its own end-session page, not through the
/// gateway): the provider sends a logout token to the gateway's back-channel URI, and
/// the gateway's old cookie is refused afterwards, on every replica (with Redis);
/// another user's session is untouched.
async fn a_session_ended_at_the_provider_ends_at_the_gateway(store: Option<&str>) {
    let redis = match store {
        Some(_) => Some(common::redis::RedisServer::start().await),
        None => None,
    };
    let (_driver, driver_port) = chromedriver().await;
    let port = free_port();
    let home = format!("http://localhost:{port}/");
    let (_provider, issuer) = oidc_provider(&format!("http://localhost:{port}")).await;
    let extra = match (store, &redis) {
        (Some(store), Some(redis)) => format!("store = \"{store}\"\n{}", redis.section()),
        _ => String::new(),
    };
    let config = config(port, &issuer, "confidential", "confidential-secret", &extra).await;
    let first = common::TestGateway::start(&config).await;
    first.ready().await;
    let mut gateways = vec![first];
    if redis.is_some() {
        let listen = format!("listen = \"127.0.0.1:{port}\"");
        let second = common::TestGateway::start(&config.replace(&listen, "listen = \"127.0.0.1:0\"")).await;
        second.ready().await;
        gateways.push(second);
    }
    let http = reqwest::Client::new();
    let api = |gateway: &common::TestGateway, cookies: &str| {
        http.get(gateway.url("/api")).header("cookie", cookies).header("accept", "application/json").send()
    };
    let mut cookies = vec![];
    for user in ["bob", "alice"] {
        let browser = chromium(driver_port, &[]).await;
        browser.goto(&home).await.unwrap();
        sign_in_as(&browser, user).await;
        browser.wait().at_most(common::BOUND).for_url(&url::Url::parse(&home).unwrap()).await.unwrap();
        assert_eq!(upstream::seen(&page_json(&browser).await, "x-user-name"), [user]);
        cookies.push((user, cookie_header(&browser).await, browser));
    }
    let (_, alice, browser) = cookies.pop().unwrap();
    let (_, bob, bob_browser) = cookies.pop().unwrap();
    for gateway in &gateways {
        assert_eq!(api(gateway, &alice).await.unwrap().status(), 200, "{store:?}: signed in on every replica");
    }

    // Alice signs out at the provider itself.
    browser.goto(&format!("{issuer}/session/end")).await.unwrap();
    let confirm = browser.wait().at_most(common::BOUND).for_element(Locator::Css("button[name=logout]")).await.unwrap();
    confirm.click().await.unwrap();
    browser
        .wait()
        .at_most(common::BOUND)
        .for_url(&url::Url::parse(&format!("{issuer}/session/end/success")).unwrap())
        .await
        .unwrap();
    let sent = counters(&issuer).await;
    assert_eq!(sent["backchannel_statuses"], serde_json::json!([200]), "{store:?}: the gateway took the token: {sent}");

    for gateway in &gateways {
        assert_eq!(api(gateway, &alice).await.unwrap().status(), 401, "{store:?}: refused on every replica");
    }
    for gateway in &gateways {
        assert_eq!(api(gateway, &bob).await.unwrap().status(), 200, "{store:?}: bob is still signed in");
    }
    browser.close().await.unwrap();
    bob_browser.close().await.unwrap();
}

#[tokio::test]
async fn a_session_ended_at_the_provider_ends_at_the_gateway_without_redis() {
    a_session_ended_at_the_provider_ends_at_the_gateway(None).await;
}

#[tokio::test]
async fn a_session_ended_at_the_provider_ends_on_both_replicas_with_cookie_sessions() {
    a_session_ended_at_the_provider_ends_at_the_gateway(Some("cookie")).await;
}

#[tokio::test]
async fn a_session_ended_at_the_provider_ends_on_both_replicas_with_redis_sessions() {
    a_session_ended_at_the_provider_ends_at_the_gateway(Some("redis")).await;
}
