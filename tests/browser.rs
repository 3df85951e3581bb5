//! Portcullis in a real headless Chromium (Debian `chromium` + `chromium-driver`,
//! installed by `.ci/run`): the demo page behind the gateway, signed in through the
//! Cognito-compatible provider's form, as a person would. If Chromium or its driver is
//! missing, this fails loudly: it never skips.

mod common;

use common::chrome::{chromedriver, chromium};
use common::free_port;
use fantoccini::{Client, Locator};
use portcullis::dev_idp::{DevIdp, Settings};
use serde_json::{Value, json};
use std::time::Duration;

/// The demo, in-process: provider (3-second access tokens), demo app, gateway on
/// http://localhost:PORT with login; with `tls` (certificate and key PEM files),
/// https://localhost:PORT.
async fn demo(tls: Option<(&std::path::Path, &std::path::Path)>) -> (DevIdp, common::TestGateway, String) {
    let port = free_port();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let origin = format!("{scheme}://localhost:{port}");
    let tls = tls.map_or(String::new(), |(cert, key)| {
        format!(
            "[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        )
    });
    let mut settings = Settings::demo(&origin);
    settings.access_token_ttl = Duration::from_secs(3);
    settings.id_token_ttl = Duration::from_secs(3);
    let idp = DevIdp::start(settings).await.unwrap();
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = app.local_addr().unwrap();
    tokio::spawn(portcullis::demo::serve_app(app));
    let gateway = common::TestGateway::start(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\npublic_url = \"{origin}\"\n{tls}\
         [provider]\nkind = \"cognito\"\nissuer = \"{}\"\ndomain = \"{}\"\nclient_id = \"portcullis-demo\"\n\
         [session]\ncookie_keys = [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\nrefresh_skew = \"1s\"\n\
         [[route]]\nprefix = \"/\"\nupstream = \"http://{app_addr}\"\n",
        idp.issuer(),
        idp.base_url()
    ))
    .await;
    gateway.ready().await;
    (idp, gateway, format!("{origin}/"))
}

async fn sign_in(browser: &Client, password: &str) {
    let username = browser.wait().at_most(common::BOUND).for_element(Locator::Id("signInFormUsername")).await.unwrap();
    username.send_keys("alice").await.unwrap();
    browser.find(Locator::Id("signInFormPassword")).await.unwrap().send_keys(password).await.unwrap();
    browser.find(Locator::Css("button[name=signInSubmitButton]")).await.unwrap().click().await.unwrap();
}

/// Clicks the page's API button and returns what `/api/echo` answered.
async fn call_api(browser: &Client) -> String {
    browser.execute("document.getElementById('out').textContent = ''", vec![]).await.unwrap();
    browser.find(Locator::Id("call")).await.unwrap().click().await.unwrap();
    let deadline = std::time::Instant::now() + common::BOUND;
    loop {
        let text = browser.find(Locator::Id("out")).await.unwrap().text().await.unwrap();
        if !text.is_empty() {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "the page's API call never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_person_signs_in_uses_the_app_and_signs_out() {
    let (_driver, driver_port) = chromedriver().await;
    let demo = demo(None).await;
    let browser = chromium(driver_port, &[]).await;
    signs_in_uses_the_app_and_signs_out(browser, demo).await;
}

/// The same, over HTTPS terminated by the gateway (`[server.tls]`), with the test CA
/// trusted by Chromium (in the NSS database of its home).
#[tokio::test]
async fn a_person_signs_in_over_https_terminated_by_the_gateway() {
    let ca = common::tls::TestCa::new();
    let home = common::chrome::home_trusting(&ca.pem());
    let (_driver, driver_port) = common::chrome::chromedriver_at_home(Some(home.path())).await;
    let (cert, key) = ca.leaf("localhost", (-1, 30));
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    let demo = demo(Some((&cert_file, &key_file))).await;
    assert!(demo.2.starts_with("https://"));
    let browser = chromium(driver_port, &[]).await;
    signs_in_uses_the_app_and_signs_out(browser, demo).await;
}

async fn signs_in_uses_the_app_and_signs_out(browser: Client, demo: (DevIdp, common::TestGateway, String)) {
    let (idp, gateway, home) = demo;
    let password = idp.settings().users[0].password.clone();

    browser.goto(&home).await.unwrap();
    let form = browser.current_url().await.unwrap();
    assert_eq!(form.path(), "/login", "sent to the provider's sign-in form: {form}");
    sign_in(&browser, &password).await;
    browser.wait().at_most(common::BOUND).for_url(&url::Url::parse(&home).unwrap()).await.unwrap();

    let api = call_api(&browser).await;
    assert!(api.starts_with("200"), "{api}");
    assert!(api.contains("\"x-user-name\": \"alice\""), "{api}");
    let echoed: Value = serde_json::from_str(api.split_once('\n').unwrap().1).unwrap();
    let upstream_cookie = echoed["headers"]["cookie"].as_str().unwrap_or_default();
    assert!(!upstream_cookie.contains("portcullis"), "no gateway cookie reaches the app: {upstream_cookie}");
    assert!(echoed["headers"]["x-portcullis-identity"].as_str().is_some_and(|jwt| jwt.starts_with("eyJ")));

    // No token anywhere the page's JavaScript can read.
    let exposed =
        browser.execute("return [document.cookie, localStorage.length, sessionStorage.length]", vec![]).await.unwrap();
    assert_eq!(exposed, json!(["", 0, 0]));
    let cookies = browser.get_all_cookies().await.unwrap();
    let ours: Vec<_> = cookies.iter().filter(|c| c.name().starts_with("__Host-portcullis")).collect();
    assert!(!ours.is_empty(), "session cookies stored: {cookies:?}");
    for cookie in &ours {
        assert_eq!(cookie.http_only(), Some(true), "{cookie}");
        assert_eq!(format!("{:?}", cookie.same_site()), "Some(Lax)", "{cookie}");
        assert_eq!(cookie.path(), Some("/"), "{cookie}");
        // Production attributes even on http://localhost, a secure context for browsers.
        assert_eq!(cookie.secure(), Some(true), "{cookie}");
    }
    eprintln!(
        "browser cookies after login: {}",
        ours.iter().map(|c| format!("{} ({} bytes)", c.name(), c.value().len())).collect::<Vec<_>>().join(", ")
    );

    // Past the access token's lifetime: the next call still works, through a refresh.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let api = call_api(&browser).await;
    assert!(api.starts_with("200"), "{api}");
    assert!(idp.counters().refresh_token >= 1, "a refresh happened");

    // Sign out: the app's session and the provider's both end.
    browser.find(Locator::Id("logout")).await.unwrap().click().await.unwrap();
    browser.wait().at_most(common::BOUND).for_element(Locator::Id("signInFormUsername")).await.unwrap();
    assert!(idp.counters().revocations >= 1, "the refresh token was revoked");
    browser.goto(&format!("{home}auth/userinfo")).await.unwrap();
    let body = browser.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    let userinfo: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(userinfo["error"], "unauthenticated", "{body}");
    browser.goto(&home).await.unwrap();
    let form = browser.current_url().await.unwrap();
    assert_eq!(form.path(), "/login", "the provider asks for the password again: {form}");
    browser.close().await.unwrap();
    drop(gateway);
}

#[tokio::test]
async fn two_tabs_signing_in_at_once_both_succeed() {
    let (_driver, driver_port) = chromedriver().await;
    let (idp, _gateway, home) = demo(None).await;
    let password = idp.settings().users[0].password.clone();
    let browser = chromium(driver_port, &[]).await;

    // Both tabs reach the sign-in form before either signs in: two login attempts open.
    browser.goto(&home).await.unwrap();
    let first = browser.window().await.unwrap();
    let second = browser.new_window(true).await.unwrap().handle;
    browser.switch_to_window(second.clone()).await.unwrap();
    browser.goto(&home).await.unwrap();
    sign_in(&browser, &password).await;
    browser.wait().at_most(common::BOUND).for_url(&url::Url::parse(&home).unwrap()).await.unwrap();

    browser.switch_to_window(first).await.unwrap();
    sign_in(&browser, &password).await;
    browser.wait().at_most(common::BOUND).for_url(&url::Url::parse(&home).unwrap()).await.unwrap();
    let api = call_api(&browser).await;
    assert!(api.starts_with("200"), "{api}");
    assert_eq!(idp.counters().authorization_code, 2, "each tab completed its own login");
    browser.close().await.unwrap();
}
