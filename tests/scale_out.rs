//! Two gateway replicas sharing a real `redis-server`, with either session store: the
//! Redis store's small handle and its cached records, one refresh per session across
//! replicas (rotation on, no grace period: a second refresh would end the session),
//! late requests on the other replica, sign-outs that hold on every replica within a
//! second, and a frozen Redis that answers 503, never a logout.

mod common;

use common::TestGateway;
use common::browser::{Browser, Extra, Setup, setup_with};
use common::redis::RedisServer;
use common::upstream::seen;
use portcullis::dev_idp::TokenFailure;
use std::time::{Duration, Instant};

/// A provider with `ttl_secs` access tokens and rotating refresh tokens without a grace
/// period, and two gateway replicas with `store` and `[redis]`; signed in on the first.
async fn two_replicas(redis: &RedisServer, store: &str, ttl_secs: u64, skew: &str) -> (Setup, TestGateway, Browser) {
    let session = format!("store = \"{store}\"\nrefresh_skew = \"{skew}\"");
    let sections = redis.section();
    let s = setup_with(
        "cognito",
        |settings| {
            settings.access_token_ttl = Duration::from_secs(ttl_secs);
            settings.id_token_ttl = Duration::from_secs(ttl_secs);
            settings.rotate_refresh_tokens = true;
            settings.rotation_grace = Duration::ZERO;
        },
        Extra { session: &session, sections: &sections, ..Extra::default() },
    )
    .await;
    let replica = s.replica().await;
    let mut browser = Browser::default();
    let signed_in = browser.log_in(&s, "%2F").await;
    assert_eq!(signed_in.status(), 302);
    (s, replica, browser)
}

async fn api(s: &Setup, gateway: &TestGateway, cookies: &str) -> reqwest::Response {
    s.http
        .get(gateway.url("/api/x"))
        .header("cookie", cookies)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
}

/// `POST /auth/logout` from the app's own page.
async fn logout(s: &Setup, gateway: &TestGateway, cookies: &str) -> reqwest::Response {
    let request = s.http.post(gateway.url("/auth/logout")).header("cookie", cookies);
    request.header("sec-fetch-site", "same-origin").send().await.unwrap()
}

async fn json(reply: reqwest::Response) -> serde_json::Value {
    reply.json().await.unwrap()
}

/// Waits until every replica answers `status` for `cookies`; returns how long it took.
async fn until_status(s: &Setup, replicas: &[&TestGateway], cookies: &str, status: u16) -> Duration {
    let started = Instant::now();
    for replica in replicas {
        loop {
            if api(s, replica, cookies).await.status() == status {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "never answered {status}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    started.elapsed()
}

#[tokio::test]
async fn the_redis_store_keeps_a_small_handle_in_the_browser_and_its_records_in_memory() {
    let redis = RedisServer::start().await;
    let (s, replica, browser) = two_replicas(&redis, "redis", 3600, "60s").await;
    assert_eq!(browser.gateway.len(), 1, "one cookie: {:?}", browser.gateway.keys());
    let (name, handle) = browser.gateway.iter().next().unwrap();
    assert!(name.len() + handle.len() < 200, "{name}={handle} is {} bytes", name.len() + handle.len());
    let records = redis.keys("portcullis:session:*").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = match redis.command(&["GET", &records[0]]).await.unwrap() {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes).unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(!record.contains("eyJ") && !record.contains("alice"), "the record is sealed: {record}");
    let ttl = redis.command(&["TTL", &records[0]]).await.unwrap();
    assert!(matches!(ttl, redis::Value::Int(t) if (43_000..=43_200).contains(&t)), "TTL = session.lifetime: {ttl:?}");

    let cookies = Browser::cookie_header(&browser.gateway);
    for gateway in [&s.gateway, &replica] {
        let reply = api(&s, gateway, &cookies).await;
        assert_eq!(reply.status(), 200);
        assert_eq!(seen(&json(reply).await, "x-user-name"), ["alice"]);
    }
    // Repeat requests are answered from each replica's cache: no round trip to Redis.
    // (Each replica pings its subscription every 5 s; INFO itself counts one.)
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = redis.commands_processed().await;
    for _ in 0..50 {
        for gateway in [&s.gateway, &replica] {
            assert_eq!(api(&s, gateway, &cookies).await.status(), 200);
        }
    }
    let commands = redis.commands_processed().await - before;
    assert!(commands <= 3, "100 repeat requests made {commands} Redis commands");

    // A forged or tampered handle is refused without asking Redis.
    // One character in the middle changed (the last one may carry only unused bits).
    let middle = handle.len() / 2;
    let swapped = if &handle[middle..=middle] == "A" { "B" } else { "A" };
    let tampered = format!("{name}={}{swapped}{}", &handle[..middle], &handle[middle + 1..]);
    let before = redis.commands_processed().await;
    for forged in [tampered.as_str(), &format!("{name}=AAAA"), &format!("{name}=")] {
        assert_eq!(api(&s, &s.gateway, forged).await.status(), 401, "{forged}");
    }
    assert!(redis.commands_processed().await - before <= 2);

    // /auth/userinfo reads the record too.
    let me = s.http.get(replica.url("/auth/userinfo")).header("cookie", &cookies).send().await.unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(json(me).await["username"], "alice");
}

/// 30 concurrent requests of a due session, spread over both replicas, while the
/// provider takes 300 ms to answer: one refresh grant, 30 successes. With rotation and
/// no grace period, a second refresh would be `invalid_grant`: the session over.
async fn one_refresh_for_thirty_requests_on_two_replicas(store: &str) {
    let redis = RedisServer::start().await;
    let (s, replica, browser) = two_replicas(&redis, store, 4, "2s").await;
    let cookies = Browser::cookie_header(&browser.gateway);
    for gateway in [&s.gateway, &replica] {
        assert_eq!(api(&s, gateway, &cookies).await.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(2200)).await; // due
    s.idp.fail_token_requests(Some(TokenFailure::Delay(Duration::from_millis(300))));
    let calls: Vec<_> = (0..30).map(|i| api(&s, if i % 2 == 0 { &s.gateway } else { &replica }, &cookies)).collect();
    let replies = futures_util::future::join_all(calls).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{store}: {statuses:?}");
    let counters = s.idp.counters();
    assert_eq!(counters.refresh_token, 1, "{store}: one refresh grant for both replicas");
    assert_eq!(counters.token_errors, 0, "{store}: no rotated refresh token presented again");
}

#[tokio::test]
async fn cookie_sessions_one_refresh_for_thirty_requests_on_two_replicas() {
    one_refresh_for_thirty_requests_on_two_replicas("cookie").await;
}

#[tokio::test]
async fn redis_sessions_one_refresh_for_thirty_requests_on_two_replicas() {
    one_refresh_for_thirty_requests_on_two_replicas("redis").await;
}

/// The refresh happens on the first replica; a late request with the pre-refresh cookie
/// arrives at the second, which never saw it: it is served from the shared result.
#[tokio::test]
async fn a_late_request_on_the_other_replica_gets_the_refresh_made_on_the_first() {
    let redis = RedisServer::start().await;
    let (s, replica, browser) = two_replicas(&redis, "cookie", 4, "2s").await;
    let old = Browser::cookie_header(&browser.gateway);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let refreshed = api(&s, &s.gateway, &old).await;
    assert_eq!(refreshed.status(), 200);
    assert!(refreshed.headers().get_all("set-cookie").iter().count() >= 1);
    assert_eq!(s.idp.counters().refresh_token, 1);

    let late = api(&s, &replica, &old).await;
    assert_eq!(late.status(), 200, "served from the first replica's refresh");
    assert!(late.headers().get_all("set-cookie").iter().count() >= 1, "with the refreshed session's cookies");
    let counters = s.idp.counters();
    assert_eq!((counters.refresh_token, counters.token_errors), (1, 0), "the rotated-out token was not presented");
    let mut after = Browser::default();
    Browser::store(&mut after.gateway, &late);
    assert_eq!(api(&s, &replica, &Browser::cookie_header(&after.gateway)).await.status(), 200);
}

/// Signed out on one replica: the old cookie is refused on both within a second, and on
/// a replica started afterwards.
async fn logout_holds_on_every_replica(store: &str) {
    let redis = RedisServer::start().await;
    let (s, replica, browser) = two_replicas(&redis, store, 3600, "60s").await;
    let cookies = Browser::cookie_header(&browser.gateway);
    for gateway in [&s.gateway, &replica] {
        assert_eq!(api(&s, gateway, &cookies).await.status(), 200, "{store}: cached on both");
    }
    let logout = logout(&s, &s.gateway, &cookies).await;
    assert_eq!(logout.status(), 303);
    let took = until_status(&s, &[&replica, &s.gateway], &cookies, 401).await;
    eprintln!("{store}: the old cookie was refused on both replicas {took:?} after the logout answered");
    assert!(took < Duration::from_secs(1), "{store}: refused everywhere after {took:?}");
    let later = s.replica().await;
    assert_eq!(api(&s, &later, &cookies).await.status(), 401, "{store}: a replica started later refuses it");
}

#[tokio::test]
async fn cookie_sessions_logout_holds_on_every_replica() {
    logout_holds_on_every_replica("cookie").await;
}

#[tokio::test]
async fn redis_sessions_logout_holds_on_every_replica() {
    logout_holds_on_every_replica("redis").await;
}

/// Redis hangs (SIGSTOP) while a session's token expires: 503 with Retry-After within
/// the command timeout and a margin, no cookie cleared; thawed, the same cookie works.
#[tokio::test]
async fn a_frozen_redis_is_a_503_never_a_logout() {
    let redis = RedisServer::start().await;
    let (s, replica, browser) = two_replicas(&redis, "redis", 2, "1s").await;
    let cookies = Browser::cookie_header(&browser.gateway);
    assert_eq!(api(&s, &s.gateway, &cookies).await.status(), 200);
    redis.freeze();
    tokio::time::sleep(Duration::from_millis(2200)).await; // expired
    for gateway in [&s.gateway, &replica] {
        let started = Instant::now();
        let reply = api(&s, gateway, &cookies).await;
        let took = started.elapsed();
        assert_eq!(reply.status(), 503);
        assert!(took < Duration::from_millis(1500), "answered within the bound: {took:?}");
        assert!(reply.headers().contains_key("retry-after"));
        assert!(reply.headers().get_all("set-cookie").iter().next().is_none(), "no cookie cleared");
        assert_eq!(json(reply).await["error"], "session_store_unavailable");
    }
    let page =
        s.http.get(replica.url("/page")).header("cookie", &cookies).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status(), 503, "a navigation gets the error page, not a login redirect");
    assert!(page.text().await.unwrap().contains("still signed in"));

    redis.thaw();
    let took = until_status(&s, &[&s.gateway, &replica], &cookies, 200).await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(s.idp.counters().token_errors, 0);
}

/// With cookie sessions, a Redis that hangs only takes the coordination away: the
/// refresh is made in this process, logged, and the user never notices.
#[tokio::test]
async fn with_cookie_sessions_a_frozen_redis_degrades_to_one_process() {
    let redis = RedisServer::start().await;
    let (s, _replica, browser) = two_replicas(&redis, "cookie", 2, "1s").await;
    let cookies = Browser::cookie_header(&browser.gateway);
    redis.freeze();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let reply = api(&s, &s.gateway, &cookies).await;
    assert_eq!(reply.status(), 200);
    assert!(reply.headers().get_all("set-cookie").iter().count() >= 1, "refreshed");
    assert_eq!(s.idp.counters().refresh_token, 1);
    redis.thaw();
}

/// Readiness never depends on Redis (a shared outage must not pull every replica out of
/// its Service at once); a login that cannot save its session says so.
#[tokio::test]
async fn without_redis_the_gateway_is_ready_and_a_login_is_a_503_page() {
    let closed = common::closed_port();
    let sections = format!("[redis]\nurl = \"redis://{closed}/0\"\n");
    let s =
        setup_with("cognito", |_| {}, Extra { session: "store = \"redis\"", sections: &sections, ..Extra::default() })
            .await; // setup waits for /readyz
    let mut browser = Browser::default();
    let callback = browser.log_in(&s, "%2F").await;
    assert_eq!(callback.status(), 503);
    assert!(browser.gateway.is_empty(), "no session cookie: {:?}", browser.gateway.keys());
    let metrics = reqwest::get(s.gateway.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("portcullis_store_errors_total{op=\"set\"}"), "{metrics}");
}

/// `rediss://`: the gateway speaks TLS to Redis, trusting the CA of `redis.ca_file`.
#[tokio::test]
async fn rediss_urls_speak_tls_to_redis_with_a_private_ca() {
    let redis = RedisServer::start_tls().await;
    let ca = redis.ca_file.as_ref().unwrap().to_str().unwrap().to_owned();
    let sections = format!("{}ca_file = \"{ca}\"\n", redis.section());
    assert!(sections.contains("rediss://"));
    let s =
        setup_with("cognito", |_| {}, Extra { session: "store = \"redis\"", sections: &sections, ..Extra::default() })
            .await;
    let mut browser = Browser::default();
    assert_eq!(browser.log_in(&s, "%2F").await.status(), 302);
    assert_eq!(redis.keys("portcullis:session:*").await.len(), 1, "the record went over TLS");
    let reply = api(&s, &s.gateway, &Browser::cookie_header(&browser.gateway)).await;
    assert_eq!(reply.status(), 200);
}

/// With cookie sessions, a sign-out made while Redis hangs holds at once on the replica
/// that made it, and on the others as soon as Redis answers again.
#[tokio::test]
async fn a_sign_out_made_while_redis_hangs_reaches_the_other_replicas_once_it_is_back() {
    let redis = RedisServer::start().await;
    let (s, replica, browser) = two_replicas(&redis, "cookie", 3600, "60s").await;
    let cookies = Browser::cookie_header(&browser.gateway);
    assert_eq!(api(&s, &replica, &cookies).await.status(), 200);
    redis.freeze();
    let logout = logout(&s, &s.gateway, &cookies).await;
    assert_eq!(logout.status(), 303, "signed out here even without Redis");
    assert_eq!(api(&s, &s.gateway, &cookies).await.status(), 401);
    redis.thaw();
    let took = until_status(&s, &[&replica], &cookies, 401).await;
    assert!(took < Duration::from_secs(3), "the other replica refuses it {took:?} after Redis is back");
}
