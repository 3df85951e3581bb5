//! The Cognito preset without the `issuer` override: `provider.cognito_issuer` picks the
//! issuer form, original (`https://cognito-idp.{region}.amazonaws.com/{pool}`) or updated
//! (`https://issuer-cognito-idp.{region}.amazonaws.com/{pool}`), and the expected `iss`,
//! the discovery address and the key set's address all follow from it. In these tests
//! `provider.issuer_endpoint` sends those fetches to the development provider on
//! loopback; it moves where they go, never what `iss` must say.

mod common;

use base64::Engine;
use common::browser::{Browser, Extra, KEY, location, setup_provider};
use common::upstream::seen;
use portcullis::dev_idp::{ClientSettings, DevIdp, Settings};
use portcullis::oidc::metadata::{self, CognitoIssuer};
use serde_json::Value;
use std::time::Duration;

const REGION: &str = "eu-west-1";

fn pool() -> String {
    Settings::default().user_pool_id
}

/// The gateway's `[provider]` lines for a pool whose issuer is `form`, with no `issuer`.
fn preset(form: &str, idp: &DevIdp) -> String {
    format!(
        "kind = \"cognito\"\nregion = \"{REGION}\"\nuser_pool_id = \"{}\"\ncognito_issuer = \"{form}\"\n\
         issuer_endpoint = \"{}\"",
        pool(),
        idp.base_url()
    )
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn both_issuer_forms_sign_in_end_to_end_without_the_issuer_override() {
    for (form, name, host) in [
        (CognitoIssuer::Original, "original", "cognito-idp"),
        (CognitoIssuer::Updated, "updated", "issuer-cognito-idp"),
    ] {
        let tweak = |idp: &mut Settings| {
            idp.cognito_issuer = Some(form);
            // A public client too, to take tokens straight from the provider.
            let public = ClientSettings { client_id: "cli".into(), client_secret: None, ..idp.clients[0].clone() };
            idp.clients.push(public);
        };
        let s = setup_provider(tweak, Extra::default(), |idp| preset(name, idp)).await;
        let expected = format!("https://{host}.{REGION}.amazonaws.com/{}", pool());
        assert_eq!(s.idp.issuer(), expected, "{name}: the development provider issues this form");

        let discovery: Value = s
            .http
            .get(format!("{}/{}/.well-known/openid-configuration", s.idp.base_url(), pool()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(discovery["issuer"], expected.as_str(), "{name}");
        assert_eq!(discovery["jwks_uri"], format!("{expected}/.well-known/jwks.json"), "{name}");
        let callback = s.gateway.url("/auth/callback");
        let tokens = common::idp::tokens(&s.idp, &callback, "cli", "n").await;
        for token in ["access_token", "id_token"] {
            assert_eq!(claims(tokens[token].as_str().unwrap())["iss"], expected.as_str(), "{name}: {token}");
        }

        let mut browser = Browser::default();
        let back = browser.log_in(&s, "%2Fapp").await;
        assert_eq!(back.status(), 302, "{name}: the callback verified the ID token");
        assert_eq!(location(&back), "/app");
        let echo: Value = browser.get(&s, &s.gateway.url("/app"), &[]).await.json().await.unwrap();
        assert_eq!(seen(&echo, "x-user-name"), ["alice"], "{name}: {echo}");
    }
}

/// The gateway says original, the pool issues updated: discovery names another issuer,
/// so the provider is never loaded, and the reason names both issuers.
#[tokio::test]
async fn a_gateway_expecting_the_other_form_never_loads_and_says_why() {
    let idp = DevIdp::start(Settings {
        cognito_issuer: Some(CognitoIssuer::Updated),
        ..Settings::demo("http://localhost:8080")
    })
    .await
    .unwrap();
    let original = CognitoIssuer::Original.issuer(REGION, &pool());
    let http = portcullis::oidc::back_channel(common::BOUND);
    let err = metadata::cognito(&http, &original, idp.base_url(), Some(idp.base_url())).await.unwrap_err().to_string();
    assert!(err.contains(&original) && err.contains(idp.issuer()), "{err}");

    let gateway = common::TestGateway::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\npublic_url = \"http://localhost:8080\"\n\
         [provider]\n{}\ndomain = \"{}\"\nclient_id = \"portcullis-demo\"\n\
         [session]\ncookie_keys = [\"{KEY}\"]\n[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:1\"\n",
        preset("original", &idp),
        idp.base_url()
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(common::get(&gateway.admin_url("/readyz"), &[]).await.status, 503);
    let login = common::get(&gateway.url("/auth/login"), &[("accept", "application/json")]).await;
    assert_eq!((login.status.as_u16(), login.json()["error"].clone()), (503, "provider_not_ready".into()));
}
