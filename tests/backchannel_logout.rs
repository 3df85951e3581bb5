//! Sessions the provider or an operator ends: `POST /auth/backchannel-logout` with
//! logout tokens signed by the development provider's own keys (genuine and forged),
//! `POST /sessions/revoke` on the admin listener, and `portcullis sessions revoke`,
//! with either session store, on one replica and on two sharing a real redis-server.
//! (The same against a third-party provider's real back-channel logout is in
//! tests/oidc_provider.rs.)

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::TestGateway;
use common::browser::{Browser, CLIENT, Extra, Setup, setup_with};
use common::redis::RedisServer;
use portcullis::dev_idp::KeyUse;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn now() -> u64 {
    portcullis::auth::now_secs()
}

/// A gateway (one replica; with `[redis]` when given) in front of the development
/// provider, with `store`.
async fn gateway(store: &str, redis: Option<&RedisServer>) -> Setup {
    let session = format!("store = \"{store}\"");
    let sections = redis.map(RedisServer::section).unwrap_or_default();
    setup_with("cognito", |_| {}, Extra { session: &session, sections: &sections, ..Extra::default() }).await
}

/// Signs `username` in; returns the gateway's cookies and the user's `sub`.
async fn signed_in(s: &Setup, username: &str) -> (String, String) {
    let password =
        portcullis::dev_idp::Settings::default().users.into_iter().find(|u| u.username == username).unwrap().password;
    let mut browser = Browser::default();
    let callback = browser.until_callback_as(s, "%2F", username, &password).await;
    assert_eq!(browser.get(s, &callback, &[]).await.status(), 302);
    let cookies = Browser::cookie_header(&browser.gateway);
    let sub = s.sub(&cookies).await;
    (cookies, sub)
}

async fn api(s: &Setup, gateway: &TestGateway, cookies: &str) -> reqwest::Response {
    let request = s.http.get(gateway.url("/api/x")).header("cookie", cookies);
    request.header("accept", "application/json").send().await.unwrap()
}

/// The claims of a genuine logout token for `sub`.
fn claims(s: &Setup, sub: &str) -> Value {
    json!({
        "iss": s.idp.issuer(),
        "aud": CLIENT,
        "iat": now(),
        "exp": now() + 120,
        "jti": B64.encode(rand::random::<[u8; 16]>()),
        "events": { EVENT: {} },
        "sub": sub,
    })
}

fn signed(s: &Setup, claims: &Value) -> String {
    s.idp.sign_with_header(KeyUse::Id, &json!({ "typ": "logout+jwt" }), claims)
}

async fn deliver(s: &Setup, gateway: &TestGateway, form: &[(&str, &str)]) -> reqwest::Response {
    s.http.post(gateway.url("/auth/backchannel-logout")).form(form).send().await.unwrap()
}

/// Every forgery is a 400 naming what is wrong, and ends nothing.
#[tokio::test]
async fn forged_logout_tokens_are_refused_and_end_nothing() {
    let s = gateway("cookie", None).await;
    let (cookies, sub) = signed_in(&s, "alice").await;
    let genuine = claims(&s, &sub);
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut claims = claims(&s, &sub);
        edit(&mut claims);
        signed(&s, &claims)
    };
    let token = signed(&s, &genuine);
    let [header, body, _signature] = token.split('.').collect::<Vec<_>>()[..] else { unreachable!() };
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    // HS256 "signed" with the provider's public key as the HMAC secret.
    let jwks: Value =
        reqwest::get(format!("{}/.well-known/jwks.json", s.idp.issuer())).await.unwrap().json().await.unwrap();
    let hs_header = B64.encode(json!({ "alg": "HS256", "kid": kid }).to_string());
    let hs_input = format!("{hs_header}.{body}");
    let hmac_key =
        aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, jwks["keys"][0]["n"].as_str().unwrap().as_bytes());
    let hs256 = format!("{hs_input}.{}", B64.encode(aws_lc_rs::hmac::sign(&hmac_key, hs_input.as_bytes()).as_ref()));
    let none = format!("{}.{body}.", B64.encode(json!({ "alg": "none", "kid": kid }).to_string()));
    let oversized = "x".repeat(20_000);

    let cases: Vec<(&str, String, &str)> = vec![
        ("unsigned", format!("{header}.{body}."), "signature"),
        ("alg none", none, "not a signed JWT"),
        ("HS256 with the public key", hs256, "HS256"),
        ("signed by an unknown key", s.idp.sign_with_header(KeyUse::Id, &json!({ "kid": "other" }), &genuine), "kid"),
        (
            "claims edited after signing",
            format!("{header}.{}.{_signature}", B64.encode(json!({ "sub": "bob" }).to_string())),
            "signature",
        ),
        ("wrong iss", edited(&|c| c["iss"] = json!("https://evil.example.com")), "Issuer"),
        ("wrong aud", edited(&|c| c["aud"] = json!("another-client")), "Audience"),
        (
            "expired",
            edited(&|c| {
                c["iat"] = json!(now() - 900);
                c["exp"] = json!(now() - 600)
            }),
            "Expired",
        ),
        (
            "issued long ago, no exp",
            edited(&|c| {
                c["iat"] = json!(now() - 3600);
                c.as_object_mut().unwrap().remove("exp");
            }),
            "iat",
        ),
        ("issued in the future", edited(&|c| c["iat"] = json!(now() + 3600)), "iat"),
        ("with a nonce (an ID token)", edited(&|c| c["nonce"] = json!("n")), "nonce"),
        (
            "without events",
            edited(&|c| {
                c.as_object_mut().unwrap().remove("events");
            }),
            "events",
        ),
        ("another event", edited(&|c| c["events"] = json!({ "http://schemas.openid.net/event/other": {} })), "events"),
        (
            "without sid and sub",
            edited(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
            "sid or sub",
        ),
        (
            "without jti",
            edited(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "jti",
        ),
        ("typed as an access token", s.idp.sign_with_header(KeyUse::Id, &json!({ "typ": "at+jwt" }), &genuine), "typ"),
        ("oversized", oversized, "too large"),
    ];
    for (case, token, why) in &cases {
        let reply = deliver(&s, &s.gateway, &[("logout_token", token)]).await;
        assert_eq!(reply.status(), 400, "{case}");
        assert_eq!(reply.headers()["cache-control"], "no-store", "{case}");
        let answer: Value = reply.json().await.unwrap();
        assert_eq!(answer["error"], "invalid_request", "{case}");
        let description = answer["error_description"].as_str().unwrap();
        assert!(description.contains(why), "{case}: {description}");
    }
    for (case, form) in [
        ("no logout_token", vec![("other", "x")]),
        ("two logout_tokens", vec![("logout_token", token.as_str()), ("logout_token", token.as_str())]),
    ] {
        let reply = deliver(&s, &s.gateway, &form).await;
        assert_eq!(reply.status(), 400, "{case}");
    }
    assert_eq!(api(&s, &s.gateway, &cookies).await.status(), 200, "nothing ended");

    // The genuine token, then the same again: a replay is refused.
    assert_eq!(deliver(&s, &s.gateway, &[("logout_token", &token)]).await.status(), 200);
    let replayed = deliver(&s, &s.gateway, &[("logout_token", &token)]).await;
    assert_eq!(replayed.status(), 400);
    assert!(replayed.text().await.unwrap().contains("replayed"));

    let metrics = reqwest::get(s.gateway.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    let refused = cases.len() + 2;
    for line in [
        format!("portcullis_backchannel_logouts_total{{outcome=\"refused\"}} {refused}"),
        "portcullis_backchannel_logouts_total{outcome=\"replayed\"} 1".into(),
        "portcullis_backchannel_logouts_total{outcome=\"accepted\"} 1".into(),
    ] {
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

/// A logout token by `sub` ends that user's sessions (every one of them), not other
/// users'; the refused request clears the cookies; the user can sign in again.
async fn a_logout_token_ends_the_users_sessions(store: &str, redis: Option<&RedisServer>) {
    let s = gateway(store, redis).await;
    let (alice, sub) = signed_in(&s, "alice").await;
    let (alice_elsewhere, _) = signed_in(&s, "alice").await;
    let (bob, _) = signed_in(&s, "bob").await;
    for cookies in [&alice, &alice_elsewhere, &bob] {
        assert_eq!(api(&s, &s.gateway, cookies).await.status(), 200, "{store}");
    }
    let reply = deliver(&s, &s.gateway, &[("logout_token", &signed(&s, &claims(&s, &sub)))]).await;
    assert_eq!(reply.status(), 200, "{store}");
    assert_eq!(reply.headers()["cache-control"], "no-store");
    for cookies in [&alice, &alice_elsewhere] {
        let refused = api(&s, &s.gateway, cookies).await;
        assert_eq!(refused.status(), 401, "{store}");
        let cleared: Vec<_> = refused.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
        assert!(!cleared.is_empty() && cleared.iter().all(|c| c.contains("Max-Age=0")), "{store}: {cleared:?}");
    }
    assert_eq!(api(&s, &s.gateway, &bob).await.status(), 200, "{store}: another user's session is untouched");
    let (again, _) = signed_in(&s, "alice").await;
    assert_eq!(api(&s, &s.gateway, &again).await.status(), 200, "{store}: signed in after the logout");
}

#[tokio::test]
async fn cookie_sessions_a_logout_token_ends_the_users_sessions() {
    a_logout_token_ends_the_users_sessions("cookie", None).await;
}

#[tokio::test]
async fn redis_sessions_a_logout_token_ends_the_users_sessions() {
    let redis = RedisServer::start().await;
    a_logout_token_ends_the_users_sessions("redis", Some(&redis)).await;
    let listed = redis.keys("portcullis:sessions_of:*").await;
    assert!(!listed.is_empty(), "sessions are listed by user: {listed:?}");
}

/// With `[redis]`, the replica that did not receive the logout token (or the revocation)
/// refuses the session too, and so does one started afterwards; the `jti` is known to
/// every replica, so the token cannot be replayed on another one.
async fn every_replica_follows(store: &str) {
    let redis = RedisServer::start().await;
    let s = gateway(store, Some(&redis)).await;
    let replica = s.replica().await;
    let (alice, sub) = signed_in(&s, "alice").await;
    let (bob, bob_sub) = signed_in(&s, "bob").await;
    for gateway in [&s.gateway, &replica] {
        assert_eq!(api(&s, gateway, &alice).await.status(), 200, "{store}: cached on both");
    }
    let token = signed(&s, &claims(&s, &sub));
    assert_eq!(deliver(&s, &s.gateway, &[("logout_token", &token)]).await.status(), 200);
    let started = Instant::now();
    while api(&s, &replica, &alice).await.status() != 401 {
        assert!(started.elapsed() < Duration::from_secs(2), "{store}: the other replica still accepts it");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("{store}: the other replica refused the session {:?} after the logout token", started.elapsed());
    assert_eq!(deliver(&s, &replica, &[("logout_token", &token)]).await.status(), 400, "{store}: replayed elsewhere");
    assert_eq!(api(&s, &replica, &bob).await.status(), 200, "{store}");

    // An operator revokes bob on the admin listener of the second replica.
    let revoke = s.http.post(replica.admin_url("/sessions/revoke")).form(&[("sub", &bob_sub)]).send().await.unwrap();
    assert_eq!(revoke.status(), 200, "{store}");
    let answer: Value = revoke.json().await.unwrap();
    assert_eq!(answer["on_every_replica"], true, "{store}: {answer}");
    if store == "redis" {
        assert_eq!(answer["sessions_ended"], 1, "{answer}");
    }
    let started = Instant::now();
    while api(&s, &s.gateway, &bob).await.status() != 401 {
        assert!(started.elapsed() < Duration::from_secs(2), "{store}: the first replica still accepts bob");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let later = s.replica().await;
    for cookies in [&alice, &bob] {
        assert_eq!(api(&s, &later, cookies).await.status(), 401, "{store}: a replica started later refuses it");
    }
}

#[tokio::test]
async fn cookie_sessions_every_replica_follows_a_logout_token_and_a_revocation() {
    every_replica_follows("cookie").await;
}

#[tokio::test]
async fn redis_sessions_every_replica_follows_a_logout_token_and_a_revocation() {
    every_replica_follows("redis").await;
}

/// The admin endpoint refuses what names nobody (or several), and with the Redis store
/// down answers 503 and ends nothing; so does the back-channel endpoint, which then
/// takes the same token again once Redis is back.
#[tokio::test]
async fn revocations_that_cannot_be_done_say_so() {
    let redis = RedisServer::start().await;
    let s = gateway("redis", Some(&redis)).await;
    let (alice, sub) = signed_in(&s, "alice").await;
    let admin = s.gateway.admin_url("/sessions/revoke");
    for form in [vec![], vec![("sub", "")], vec![("sub", "a"), ("sid", "b")], vec![("user", "a")]] {
        let reply = s.http.post(&admin).form(&form).send().await.unwrap();
        assert_eq!(reply.status(), 400, "{form:?}");
    }
    redis.freeze();
    let reply = s.http.post(&admin).form(&[("sub", &sub)]).send().await.unwrap();
    assert_eq!(reply.status(), 503);
    let token = signed(&s, &claims(&s, &sub));
    assert_eq!(deliver(&s, &s.gateway, &[("logout_token", &token)]).await.status(), 503);
    redis.thaw();
    assert_eq!(api(&s, &s.gateway, &alice).await.status(), 200, "nothing ended while Redis hung");
    assert_eq!(deliver(&s, &s.gateway, &[("logout_token", &token)]).await.status(), 200, "delivered again");
    assert_eq!(api(&s, &s.gateway, &alice).await.status(), 401);
}

/// `portcullis sessions revoke --sub X --config FILE`: through Redis (no gateway needed
/// for it to reach) and, without Redis, through the running gateway's admin listener.
#[tokio::test]
async fn the_revoke_command_ends_sessions_with_either_store() {
    let redis = RedisServer::start().await;
    for (store, redis) in [("redis", Some(&redis)), ("cookie", Some(&redis)), ("cookie", None)] {
        let s = gateway(store, redis).await;
        let (alice, sub) = signed_in(&s, "alice").await;
        let (bob, _) = signed_in(&s, "bob").await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("portcullis.toml");
        let admin = s.gateway.admin_addr.to_string();
        std::fs::write(
            &config,
            s.config.replace("admin_listen = \"127.0.0.1:0\"", &format!("admin_listen = \"{admin}\"")),
        )
        .unwrap();
        // Off the test's thread, which serves the gateway's admin listener meanwhile.
        let run = |args: &[&str]| {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
            command.args(args).arg("--config").arg(&config).env_remove("PORTCULLIS_CONFIG");
            async move { tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap() }
        };
        let done = run(&["sessions", "revoke", "--sub", &sub]).await;
        let said = String::from_utf8_lossy(&done.stdout).into_owned() + &String::from_utf8_lossy(&done.stderr);
        assert!(done.status.success(), "{store} {}: {said}", redis.is_some());
        assert!(said.contains("revoked sub"), "{said}");
        let started = Instant::now();
        while api(&s, &s.gateway, &alice).await.status() != 401 {
            assert!(started.elapsed() < Duration::from_secs(2), "{store}: still signed in after the command");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(api(&s, &s.gateway, &bob).await.status(), 200);
        let neither = run(&["sessions", "revoke"]).await;
        assert_eq!(neither.status.code(), Some(2), "clap refuses a revocation that names nobody");
    }
}

/// With `server.admin_token`, a revocation needs it (loopback peers too); the command
/// sends it from the configuration.
#[tokio::test]
async fn with_an_admin_token_a_revocation_needs_it() {
    const TOKEN: &str = "an-admin-token-for-the-tests-0123";
    let s = gateway("cookie", None).await;
    let (alice, sub) = signed_in(&s, "alice").await;
    let admin_line = "admin_listen = \"127.0.0.1:0\"";
    let config = s.config.replace(admin_line, &format!("{admin_line}\nadmin_token = \"{TOKEN}\""));
    // A second gateway on the same cookies, with the token: the sessions of this process.
    let guarded =
        TestGateway::start(&config.replace(&format!("listen = \"{}\"", s.gateway.addr), "listen = \"127.0.0.1:0\""))
            .await;
    guarded.ready().await;
    assert_eq!(api(&s, &guarded, &alice).await.status(), 200);
    let revoke = |authorization: Option<&str>| {
        let mut request = s.http.post(guarded.admin_url("/sessions/revoke")).form(&[("sub", &sub)]);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send()
    };
    for refused in [None, Some("Bearer wrong-token"), Some(&*format!("Basic {TOKEN}"))] {
        assert_eq!(revoke(refused).await.unwrap().status(), 403, "{refused:?}");
    }
    assert_eq!(api(&s, &guarded, &alice).await.status(), 200, "nothing ended");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portcullis.toml");
    let admin = format!("admin_listen = \"{}\"", guarded.admin_addr);
    std::fs::write(&file, config.replace(admin_line, &admin)).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command.args(["sessions", "revoke", "--sub", &sub, "--config"]).arg(&file).env_remove("PORTCULLIS_CONFIG");
    let done = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(api(&s, &guarded, &alice).await.status(), 401, "revoked with the configured token");
    assert_eq!(api(&s, &s.gateway, &alice).await.status(), 200, "the other process has no [redis]: untouched");
}
