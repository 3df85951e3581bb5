//! Silent refresh against the development provider with 2-3 second access tokens:
//! one refresh per session under concurrency, rotation-safe late requests, clean end on
//! `invalid_grant`, and no logout for a provider outage.

mod common;

use base64::Engine;
use common::browser::{Browser, Setup, setup};
use common::upstream::seen;
use portcullis::dev_idp::TokenFailure;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

async fn signed_in(ttl_secs: u64, rotate: bool, skew: &str, extra: &str) -> (Setup, Browser) {
    let s = setup(
        |settings| {
            settings.access_token_ttl = Duration::from_secs(ttl_secs);
            settings.id_token_ttl = Duration::from_secs(ttl_secs);
            settings.rotate_refresh_tokens = rotate;
            settings.rotation_grace = Duration::from_secs(30);
        },
        &format!("refresh_skew = \"{skew}\"\n{extra}"),
    )
    .await;
    let mut browser = Browser::default();
    browser.log_in(&s, "%2F").await;
    (s, browser)
}

async fn api(s: &Setup, cookies: &str) -> reqwest::Response {
    s.http
        .get(s.gateway.url("/api/x"))
        .header("cookie", cookies)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
}

async fn fifty_at_once(s: &Setup, cookies: &str) -> Vec<reqwest::Response> {
    let calls: Vec<_> = (0..50).map(|_| api(s, cookies)).collect();
    futures_util::future::join_all(calls).await
}

#[tokio::test]
async fn fifty_concurrent_requests_share_one_refresh() {
    let (s, browser) = signed_in(2, false, "1s", "").await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // inside the refresh skew
    let cookies = Browser::cookie_header(&browser.gateway);
    let replies = fifty_at_once(&s, &cookies).await;
    for reply in &replies {
        assert_eq!(reply.status(), 200);
        assert!(reply.headers().get_all("set-cookie").iter().count() >= 1, "refreshed cookies ride on the response");
    }
    assert_eq!(s.idp.counters().refresh_token, 1, "exactly one refresh for 50 concurrent requests");
    assert_eq!(s.idp.counters().refresh_with_scope, 0, "refresh sends no scope");
}

#[tokio::test]
async fn with_rotation_a_late_request_with_the_old_cookie_still_works() {
    let (s, mut browser) = signed_in(2, true, "1s", "").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let old = Browser::cookie_header(&browser.gateway);
    let replies = fifty_at_once(&s, &old).await;
    assert!(replies.iter().all(|r| r.status() == 200));
    assert_eq!(s.idp.counters().refresh_token, 1);
    Browser::store(&mut browser.gateway, &replies[0]);

    // A second tab, still holding the pre-rotation cookie.
    let late = api(&s, &old).await;
    assert_eq!(late.status(), 200, "the late request is served from the refresh just made");
    assert_eq!(s.idp.counters().refresh_token, 1, "the rotated-out token was not presented again");
    let new = api(&s, &Browser::cookie_header(&browser.gateway)).await;
    assert_eq!(new.status(), 200);
}

#[tokio::test]
async fn invalid_grant_ends_the_session_cleanly() {
    let (s, browser) = signed_in(2, false, "1s", "").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    s.idp.fail_token_requests(Some(TokenFailure::InvalidGrant));
    let cookies = Browser::cookie_header(&browser.gateway);
    let reply = api(&s, &cookies).await;
    assert_eq!(reply.status(), 401);
    let cleared: Vec<String> =
        reply.headers().get_all("set-cookie").iter().map(|c| c.to_str().unwrap().to_owned()).collect();
    assert!(!cleared.is_empty() && cleared.iter().all(|c| c.contains("Max-Age=0")), "{cleared:?}");
    let page = s
        .http
        .get(s.gateway.url("/page"))
        .header("cookie", &cookies)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 302, "a navigation goes to log in again");
}

#[tokio::test]
async fn a_provider_outage_never_logs_the_user_out() {
    let (s, browser) = signed_in(3, false, "2s", "").await;
    let cookies = Browser::cookie_header(&browser.gateway);
    tokio::time::sleep(Duration::from_millis(1200)).await; // due for refresh, not expired
    s.idp.fail_token_requests(Some(TokenFailure::Status(503)));
    assert_eq!(api(&s, &cookies).await.status(), 200, "still-valid token: forwarded");

    tokio::time::sleep(Duration::from_millis(2200)).await; // now expired
    let down = api(&s, &cookies).await;
    assert_eq!(down.status(), 503);
    assert!(down.headers().contains_key("retry-after"));
    assert!(down.headers().get_all("set-cookie").iter().next().is_none(), "the session cookies are kept");

    s.idp.fail_token_requests(None);
    let back = api(&s, &cookies).await;
    assert_eq!(back.status(), 200, "usable again once the provider is back");
}

fn exp_of(bearer: &str) -> u64 {
    let token = bearer.strip_prefix("Bearer ").unwrap();
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap();
    serde_json::from_slice::<serde_json::Value>(&claims).unwrap()["exp"].as_u64().unwrap()
}

#[tokio::test]
async fn continuous_traffic_never_forwards_an_expired_token() {
    let (s, mut browser) = signed_in(2, true, "1s", "[identity]\npass_access_token = true").await;
    let until = std::time::Instant::now() + Duration::from_secs(30);
    let mut checked = 0;
    while std::time::Instant::now() < until {
        let sent_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let reply = api(&s, &Browser::cookie_header(&browser.gateway)).await;
        assert_eq!(reply.status(), 200);
        Browser::store(&mut browser.gateway, &reply);
        let echo: serde_json::Value = reply.json().await.unwrap();
        let bearer = seen(&echo, "authorization").pop().expect("the access token is passed upstream");
        assert!(exp_of(&bearer) > sent_at, "an expired access token reached the upstream");
        checked += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(checked > 150, "{checked} requests");
    assert!(s.idp.counters().refresh_token >= 12, "refreshed along the way: {}", s.idp.counters().refresh_token);
}
