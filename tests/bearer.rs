//! API clients with `Authorization: Bearer <access token>`: accepted only when enabled,
//! only genuine access tokens of accepted app clients, with the route's scope and group
//! requirements; the upstream sees the same identity headers as for a session.

mod common;

use common::upstream::{self, seen};
use portcullis::dev_idp::{ClientSettings, DevIdp, Settings};
use serde_json::Value;

const GATEWAY_CLIENT: &str = "gateway";
const CLI_CLIENT: &str = "cli";
const STRANGER: &str = "stranger";
const CALLBACK: &str = "http://localhost:8080/auth/callback";
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

async fn setup(bearer: &str) -> (DevIdp, common::TestGateway) {
    let client = |id: &str| ClientSettings {
        client_id: id.into(),
        client_secret: None,
        callback_urls: vec![CALLBACK.into()],
        logout_urls: vec![],
        allowed_scopes: vec!["openid".into(), "email".into(), "profile".into()],
    };
    let idp = DevIdp::start(Settings {
        clients: vec![client(GATEWAY_CLIENT), client(CLI_CLIENT), client(STRANGER)],
        ..Settings::default()
    })
    .await
    .unwrap();
    let app = upstream::echo().await;
    let gateway = common::TestGateway::start(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
public_url = "http://localhost:8080"
[provider]
kind = "cognito"
issuer = "{}"
domain = "{}"
client_id = "{GATEWAY_CLIENT}"
[session]
cookie_keys = ["{KEY}"]
insecure_dev_cookies = true
[bearer]
{bearer}
[[route]]
prefix = "/"
upstream = "http://{app}"
"#,
        idp.issuer(),
        idp.base_url()
    ))
    .await;
    gateway.ready().await;
    (idp, gateway)
}

async fn call(gateway: &common::TestGateway, token: &str) -> common::Reply {
    common::get(
        &gateway.url("/api/me"),
        &[("authorization", &format!("Bearer {token}")), ("accept", "application/json")],
    )
    .await
}

#[tokio::test]
async fn access_tokens_of_accepted_clients_pass_with_identity_headers() {
    let (idp, gateway) = setup("enabled = true\nclient_ids = [\"cli\"]").await;
    let tokens = common::idp::tokens(&idp, CALLBACK, CLI_CLIENT, "n").await;
    let reply = call(&gateway, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.json();
    assert_eq!(seen(&echo, "x-user-id"), [Settings::default().users[0].subject()]);
    assert_eq!(seen(&echo, "x-user-name"), ["alice"]);
    assert_eq!(seen(&echo, "x-user-groups"), ["admins,users"]);

    let own = common::idp::tokens(&idp, CALLBACK, GATEWAY_CLIENT, "n").await;
    assert_eq!(call(&gateway, own["access_token"].as_str().unwrap()).await.status, 200, "the gateway's own client too");
}

#[tokio::test]
async fn anything_but_a_genuine_accepted_access_token_is_401() {
    let (idp, gateway) = setup("enabled = true").await;
    let stranger = common::idp::tokens(&idp, CALLBACK, STRANGER, "n").await;
    let own = common::idp::tokens(&idp, CALLBACK, GATEWAY_CLIENT, "n").await;
    let access = own["access_token"].as_str().unwrap();
    let tampered = {
        let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
        let flipped = if &parts[1][5..6] == "A" { "B" } else { "A" };
        parts[1].replace_range(5..6, flipped);
        parts.join(".")
    };
    for (what, token) in [
        ("another app client's token", stranger["access_token"].as_str().unwrap().to_owned()),
        ("an ID token", own["id_token"].as_str().unwrap().to_owned()),
        ("a tampered token", tampered),
        ("garbage", "not-a-jwt".to_owned()),
    ] {
        let reply = call(&gateway, &token).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text());
        assert_eq!(reply.header("www-authenticate"), Some("Bearer error=\"invalid_token\""), "{what}");
    }
}

#[tokio::test]
async fn bearer_tokens_are_ignored_unless_enabled() {
    let (idp, gateway) = setup("enabled = false").await;
    let own = common::idp::tokens(&idp, CALLBACK, GATEWAY_CLIENT, "n").await;
    let reply = call(&gateway, own["access_token"].as_str().unwrap()).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"], "unauthenticated");
}

#[tokio::test]
async fn required_scopes_and_groups_are_enforced() {
    let (idp, gateway) = setup("enabled = true\nrequired_scopes = [\"email\"]\nrequired_groups = [\"admins\"]").await;
    let own = common::idp::tokens(&idp, CALLBACK, GATEWAY_CLIENT, "n").await;
    assert_eq!(call(&gateway, own["access_token"].as_str().unwrap()).await.status, 200);

    let (idp, gateway) = setup("enabled = true\nrequired_scopes = [\"phone\"]").await;
    let own = common::idp::tokens(&idp, CALLBACK, GATEWAY_CLIENT, "n").await;
    let reply = call(&gateway, own["access_token"].as_str().unwrap()).await;
    assert_eq!((reply.status.as_u16(), reply.json()["error"].clone()), (403, Value::from("insufficient_scope")));

    let (idp, gateway) = setup("enabled = true\nrequired_groups = [\"auditors\"]").await;
    let own = common::idp::tokens(&idp, CALLBACK, GATEWAY_CLIENT, "n").await;
    assert_eq!(call(&gateway, own["access_token"].as_str().unwrap()).await.status, 403);
}
