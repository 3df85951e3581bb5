//! The provider may come up after the gateway: until discovery and keys are loaded,
//! `/readyz` is 503 and login answers 503; then the gateway retries and becomes ready
//! by itself.

mod common;

use portcullis::dev_idp::{DevIdp, Settings};
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_gateway_waits_for_the_provider_and_becomes_ready_when_it_appears() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let settings = Settings::demo("http://localhost:8080");
    let issuer = format!("http://127.0.0.1:{port}/{}", settings.user_pool_id);
    let gateway = common::TestGateway::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\npublic_url = \"http://localhost:8080\"\n\
         [provider]\nkind = \"cognito\"\nissuer = \"{issuer}\"\ndomain = \"http://127.0.0.1:{port}\"\nclient_id = \"portcullis-demo\"\n\
         [session]\ncookie_keys = [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\ninsecure_dev_cookies = true\n\
         [[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:1\"\n"
    ))
    .await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(common::get(&gateway.admin_url("/readyz"), &[]).await.status, 503);
    let login = common::get(&gateway.url("/auth/login"), &[("accept", "application/json")]).await;
    assert_eq!((login.status.as_u16(), login.json()["error"].clone()), (503, "provider_not_ready".into()));
    let page =
        common::get(&gateway.url("/auth/login"), &[("accept", "text/html"), ("sec-fetch-mode", "navigate")]).await;
    assert_eq!(page.status, 503);
    assert!(page.text().contains("Signing in is not available yet"), "{}", page.text());

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let idp = DevIdp::serve_on(listener, settings).unwrap();
    assert_eq!(idp.issuer(), issuer);
    let started = Instant::now();
    gateway.ready().await;
    assert!(started.elapsed() < Duration::from_secs(10), "retried within seconds: {:?}", started.elapsed());
    let login = common::get(&gateway.url("/auth/login"), &[]).await;
    assert_eq!(login.status, 302);
    assert!(login.header("location").unwrap().starts_with(&format!("http://127.0.0.1:{port}/oauth2/authorize?")));
}
