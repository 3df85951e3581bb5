//! Silent refresh against the development provider with 2-4 second access tokens:
//! one refresh per session under concurrency, rotation-safe late requests, clean end on
//! `invalid_grant`, no logout for a provider outage, and the timing edges: kept results
//! that are due themselves, tokens shorter-lived than the skew, a hanging provider.

mod common;

use base64::Engine;
use common::browser::{Browser, Extra, Setup, setup_with};
use common::upstream::seen;
use portcullis::dev_idp::TokenFailure;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

async fn signed_in(ttl_secs: u64, rotate: bool, skew: &str, extra: &str) -> (Setup, Browser) {
    let session = format!("refresh_skew = \"{skew}\"\n{extra}");
    signed_in_with(ttl_secs, rotate, Extra { session: &session, ..Extra::default() }).await
}

async fn signed_in_with(ttl_secs: u64, rotate: bool, extra: Extra<'_>) -> (Setup, Browser) {
    let s = setup_with(
        "cognito",
        |settings| {
            settings.access_token_ttl = Duration::from_secs(ttl_secs);
            settings.id_token_ttl = Duration::from_secs(ttl_secs);
            settings.rotate_refresh_tokens = rotate;
            settings.rotation_grace = Duration::from_secs(30);
        },
        extra,
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
    // 4-second tokens: the refreshed one is not due for 2 s, even in whole seconds.
    let (s, browser) = signed_in(4, false, "2s", "").await;
    tokio::time::sleep(Duration::from_millis(2200)).await; // inside the refresh skew
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
    // The kept refresh must not be due itself when the late request comes (that case
    // is `a_late_request_whose_kept_refresh_has_expired_is_refreshed_again`).
    let (s, mut browser) = signed_in(4, true, "2s", "").await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
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
    let (s, browser) = signed_in(4, false, "2s", "").await;
    let cookies = Browser::cookie_header(&browser.gateway);
    tokio::time::sleep(Duration::from_millis(2200)).await; // due for refresh, not expired
    s.idp.fail_token_requests(Some(TokenFailure::Status(503)));
    assert_eq!(api(&s, &cookies).await.status(), 200, "still-valid token: forwarded");

    tokio::time::sleep(Duration::from_millis(2200)).await; // now expired
    let down = api(&s, &cookies).await;
    assert_eq!(down.status(), 503);
    assert!(down.headers().contains_key("retry-after"));
    assert!(down.headers().get_all("set-cookie").iter().next().is_none(), "the session cookies are kept");

    s.idp.fail_token_requests(None);
    // The provider is asked again once the back-off the 503 announced is over.
    let retry_after: u64 = down.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=15).contains(&retry_after), "Retry-After: {retry_after}");
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
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

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The access token the upstream received, from the echo of a 200.
async fn forwarded_token(reply: reqwest::Response) -> String {
    assert_eq!(reply.status(), 200);
    let echo: serde_json::Value = reply.json().await.unwrap();
    seen(&echo, "authorization").pop().expect("the access token is passed upstream")
}

/// A request with the pre-refresh cookie arrives after the refresh it would be served
/// from has expired too: that kept session is refreshed in turn, on its own refresh
/// token, and the upstream never sees an expired token. With rotation and without (a
/// refresh token that never changes must not make every later refresh look "kept").
#[tokio::test]
async fn a_late_request_whose_kept_refresh_has_expired_is_refreshed_again() {
    for rotate in [true, false] {
        let (s, browser) = signed_in(2, rotate, "1s", "[identity]\npass_access_token = true").await;
        let old = Browser::cookie_header(&browser.gateway);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let first = api(&s, &old).await;
        assert!(exp_of(&forwarded_token(first).await) > now());
        assert_eq!(s.idp.counters().refresh_token, 1, "rotate={rotate}");

        // The refreshed tokens (never stored by this client) live 2 s: past them.
        tokio::time::sleep(Duration::from_millis(2200)).await;
        let sent_at = now();
        let late = api(&s, &old).await;
        assert!(late.headers().get_all("set-cookie").iter().next().is_some(), "the new session rides on the answer");
        let token = forwarded_token(late).await;
        assert!(exp_of(&token) > sent_at, "rotate={rotate}: an expired access token reached the upstream");
        assert_eq!(s.idp.counters().refresh_token, 2, "rotate={rotate}: the kept session was refreshed in turn");
    }
}

/// With the default 60 s skew and 6-second tokens, a browser that keeps its cookies is
/// not refreshed on every request: not before half the token's life, then once.
#[tokio::test]
async fn a_token_shorter_lived_than_the_skew_is_not_refreshed_on_every_request() {
    let (s, mut browser) = signed_in(6, true, "60s", "").await;
    let signed_in_at = Instant::now();
    for request in 0..10 {
        let reply = api(&s, &Browser::cookie_header(&browser.gateway)).await;
        assert_eq!(reply.status(), 200);
        assert!(reply.headers().get_all("set-cookie").iter().next().is_none(), "request {request}: a new cookie");
        Browser::store(&mut browser.gateway, &reply);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(signed_in_at.elapsed() < Duration::from_millis(1900), "the ten requests took too long to mean anything");
    assert_eq!(s.idp.counters().refresh_token, 0, "no refresh in the first half of the token's life");

    // Token times are whole seconds: 3.1 s after the sign-in is past half its life.
    tokio::time::sleep(Duration::from_millis(3100).saturating_sub(signed_in_at.elapsed())).await;
    for _ in 0..5 {
        let reply = api(&s, &Browser::cookie_header(&browser.gateway)).await;
        assert_eq!(reply.status(), 200);
        Browser::store(&mut browser.gateway, &reply);
    }
    assert_eq!(s.idp.counters().refresh_token, 1, "one refresh in the second half, then the new token is not due");
}

/// `/auth/userinfo` goes through the same freshness step as a proxied request.
#[tokio::test]
async fn userinfo_refreshes_an_expired_session() {
    let (s, mut browser) = signed_in(2, true, "1s", "").await;
    tokio::time::sleep(Duration::from_millis(2200)).await; // expired
    let asked_at = now();
    let info = s
        .http
        .get(s.gateway.url("/auth/userinfo"))
        .header("cookie", Browser::cookie_header(&browser.gateway))
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200);
    assert!(info.headers().get_all("set-cookie").iter().next().is_some(), "the refreshed session is saved");
    Browser::store(&mut browser.gateway, &info);
    let body: serde_json::Value = info.json().await.unwrap();
    assert!(body["access_token_expires_at"].as_u64().unwrap() > asked_at, "{body}");
    assert_eq!(s.idp.counters().refresh_token, 1);

    let next = api(&s, &Browser::cookie_header(&browser.gateway)).await;
    assert_eq!(next.status(), 200);
    assert_eq!(s.idp.counters().refresh_token, 1, "the cookies userinfo set were the refreshed session");
}

#[tokio::test]
async fn userinfo_of_a_session_that_cannot_be_refreshed() {
    let (s, browser) = signed_in(2, false, "1s", "").await;
    let cookies = Browser::cookie_header(&browser.gateway);
    let userinfo = || s.http.get(s.gateway.url("/auth/userinfo")).header("cookie", &cookies).send();
    tokio::time::sleep(Duration::from_millis(2200)).await; // expired

    s.idp.fail_token_requests(Some(TokenFailure::Status(503)));
    let down = userinfo().await.unwrap();
    assert_eq!(down.status(), 503, "the provider is down and the token expired");
    assert!(down.headers().contains_key("retry-after"));
    assert!(down.headers().get_all("set-cookie").iter().next().is_none(), "the session is kept");

    s.idp.fail_token_requests(Some(TokenFailure::InvalidGrant));
    let retry_after: u64 = down.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let ended = userinfo().await.unwrap();
    assert_eq!(ended.status(), 401, "the grant is over");
    let cleared: Vec<_> =
        ended.headers().get_all("set-cookie").iter().map(|c| c.to_str().unwrap().to_owned()).collect();
    assert!(!cleared.is_empty() && cleared.iter().all(|c| c.contains("Max-Age=0")), "{cleared:?}");
}

/// The value of `portcullis_refresh_total{outcome}` on the admin listener.
async fn refreshes(s: &Setup, outcome: &str) -> u64 {
    let metrics = common::get(&s.gateway.admin_url("/metrics"), &[]).await.text();
    let line = format!("portcullis_refresh_total{{outcome=\"{outcome}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(line.as_str())).map_or(0, |n| n.trim().parse().unwrap())
}

/// `invalid_client` (a rotated secret) is the operator's configuration, not the
/// user's doing: the session is kept, the outcome counted apart from an outage.
#[tokio::test]
async fn a_refresh_refused_for_the_configuration_keeps_the_session_and_is_counted() {
    let (s, browser) = signed_in(4, false, "2s", "").await;
    let cookies = Browser::cookie_header(&browser.gateway);
    tokio::time::sleep(Duration::from_millis(2200)).await; // due, still valid
    s.idp.fail_token_requests(Some(TokenFailure::Refuse("invalid_client")));
    assert_eq!(api(&s, &cookies).await.status(), 200, "still-valid token: forwarded");
    assert_eq!(refreshes(&s, "refused_config").await, 1);
    assert_eq!(refreshes(&s, "unavailable").await, 0, "not taken for an outage");

    tokio::time::sleep(Duration::from_millis(2200)).await; // expired, back-off over
    let refused = api(&s, &cookies).await;
    assert_eq!(refused.status(), 503, "no usable token, and the user is not signed out");
    assert!(refused.headers().get_all("set-cookie").iter().next().is_none(), "the session cookies are kept");
    assert_eq!(refreshes(&s, "refused_config").await, 2);

    s.idp.fail_token_requests(None);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(api(&s, &cookies).await.status(), 200, "fixed at the provider: the same session works");
    assert_eq!(refreshes(&s, "refreshed").await, 1);
}

/// A provider that accepts connections and never answers: the first request waits
/// `provider.http_timeout`, the next ones are answered at once until the back-off the
/// 503 announced is over; nobody is signed out.
#[tokio::test]
async fn a_hanging_provider_costs_one_timeout_not_one_per_request() {
    let (s, browser) = signed_in_with(
        2,
        false,
        Extra { provider: "http_timeout = \"1s\"", session: "refresh_skew = \"1s\"", ..Extra::default() },
    )
    .await;
    let cookies = Browser::cookie_header(&browser.gateway);
    tokio::time::sleep(Duration::from_millis(2200)).await; // expired
    s.idp.fail_token_requests(Some(TokenFailure::Delay(Duration::from_secs(30))));

    let started = Instant::now();
    let first = api(&s, &cookies).await;
    assert_eq!(first.status(), 503);
    assert!(started.elapsed() >= Duration::from_millis(900), "the first request waited for the provider");
    let retry_after: u64 = first.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    for request in 1..5 {
        let started = Instant::now();
        let next = api(&s, &cookies).await;
        let took = started.elapsed();
        assert_eq!(next.status(), 503, "request {request}");
        assert!(next.headers().contains_key("retry-after"));
        assert!(next.headers().get_all("set-cookie").iter().next().is_none(), "the session cookies are kept");
        assert!(took < Duration::from_millis(500), "request {request} waited {took:?} for a provider known to hang");
    }
    assert_eq!(refreshes(&s, "unavailable").await, 1, "one exchange tried, not five");

    s.idp.fail_token_requests(None);
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(api(&s, &cookies).await.status(), 200, "the provider is asked again after the back-off");
}

/// Cognito leaves out a requested scope the app client is not allowed, and says so only
/// in the access token: a route that requires that scope must refuse.
#[tokio::test]
async fn required_scopes_check_the_granted_scopes_not_the_requested_ones() {
    let s = setup_with(
        "cognito",
        |settings| settings.clients[0].allowed_scopes = vec!["openid".into(), "email".into()],
        Extra {
            routes: "[[route]]\nprefix = \"/profile/\"\nupstream = \"http://{app}\"\nrequired_scopes = [\"profile\"]\n\
                     [[route]]\nprefix = \"/email/\"\nupstream = \"http://{app}\"\nrequired_scopes = [\"email\"]\n",
            ..Extra::default()
        },
    )
    .await;
    let mut browser = Browser::default();
    browser.log_in(&s, "%2F").await;
    let cookies = Browser::cookie_header(&browser.gateway);
    let get = |path: &'static str| {
        s.http.get(s.gateway.url(path)).header("cookie", &cookies).header("accept", "application/json").send()
    };
    let refused = get("/profile/x").await.unwrap();
    assert_eq!(refused.status(), 403, "profile was asked for, not granted");
    assert_eq!(get("/email/x").await.unwrap().status(), 200, "email was granted");
}
