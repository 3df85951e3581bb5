//! Forward-auth: `/auth/verify` asked by the proxy a team already runs. First the
//! answers themselves, then the whole browser journey through real nginx, Caddy,
//! Traefik and Envoy, each running the configuration `docs/forward-auth.md` shows.

mod common;

use common::browser::{Browser, CLIENT, KEY, location};
use common::front_proxy::Front;
use common::upstream::seen;
use portcullis::dev_idp::{ClientSettings, DevIdp, Settings};
use reqwest::StatusCode;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const IDENTITY_HEADERS: [&str; 5] =
    ["x-user-id", "x-user-name", "x-user-email", "x-user-groups", "x-portcullis-identity"];

/// A provider, an echo app and a gateway whose public origin is `origin` (a proxy in
/// front, or the gateway itself), with a route for `/admin/` (group `ops`, which
/// alice is not in) and a public `/public/`, neither with an upstream of its own.
struct Scene {
    idp: DevIdp,
    gateway: common::TestGateway,
    app: std::net::SocketAddr,
    origin: String,
    http: reqwest::Client,
}

async fn scene(origin_port: Option<u16>, access_ttl: Duration, extra: &str) -> Scene {
    let app = common::upstream::echo().await;
    let gateway_port = common::free_port();
    let origin = format!("http://127.0.0.1:{}", origin_port.unwrap_or(gateway_port));
    let mut settings = Settings {
        clients: vec![ClientSettings {
            client_id: CLIENT.into(),
            client_secret: Some("test-secret".into()),
            callback_urls: vec![format!("{origin}/auth/callback")],
            logout_urls: vec![format!("{origin}/")],
            allowed_scopes: vec!["openid".into(), "email".into(), "profile".into()],
        }],
        access_token_ttl: access_ttl,
        ..Settings::default()
    };
    // A session the size of a Cognito one: two cookies, so every proxy must pass on
    // more than one Set-Cookie.
    settings.users[0].attributes.insert("custom:profile".into(), "p".repeat(2500));
    let idp = DevIdp::start(settings).await.unwrap();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{gateway_port}"
admin_listen = "127.0.0.1:0"
public_url = "{origin}"
[provider]
kind = "cognito"
issuer = "{issuer}"
domain = "{domain}"
client_id = "{CLIENT}"
client_secret = "test-secret"
[session]
cookie_keys = ["{KEY}"]
{extra}
[[route]]
prefix = "/admin/"
allowed_groups = ["ops"]
[[route]]
prefix = "/public/"
public = true
"#,
        issuer = idp.issuer(),
        domain = idp.base_url(),
    );
    let gateway = common::TestGateway::start(&config).await;
    gateway.ready().await;
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(common::BOUND).build().unwrap();
    Scene { idp, gateway, app, origin, http }
}

/// A browser on `origin`: one cookie jar for the site, one for the provider.
#[derive(Default)]
struct Jars {
    site: BTreeMap<String, String>,
    idp: BTreeMap<String, String>,
}

impl Scene {
    /// GET `path` on the site with the site's cookies and `headers`; cookies set are kept.
    async fn get(&self, jars: &mut Jars, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.origin) };
        let jar = if url.starts_with(&self.origin) { &mut jars.site } else { &mut jars.idp };
        let mut request = self.http.get(&url).header("cookie", Browser::cookie_header(jar));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        Browser::store(jar, &response);
        response
    }

    /// From a 302 to log in to the page it came from: the sign-in form as alice, the
    /// callback, and the redirect back, which is returned (not yet followed).
    async fn sign_in(&self, jars: &mut Jars, to_login: &str) -> String {
        let login = self.get(jars, to_login, &[]).await;
        assert_eq!(login.status(), StatusCode::FOUND, "{to_login}");
        let to_form = self.get(jars, &location(&login), &[]).await;
        let form = format!("{}{}", self.idp.base_url(), location(&to_form));
        let password = Settings::default().users[0].password.clone();
        let signed_in = self
            .http
            .post(&form)
            .header("cookie", Browser::cookie_header(&jars.idp))
            .form(&[("username", "alice"), ("password", password.as_str())])
            .send()
            .await
            .unwrap();
        let callback = location(&signed_in);
        assert!(callback.starts_with(&format!("{}/auth/callback?", self.origin)), "{callback}");
        let back = self.get(jars, &callback, &[]).await;
        assert_eq!(back.status(), StatusCode::FOUND);
        location(&back)
    }

    async fn sub(&self, jars: &mut Jars) -> String {
        let me: serde_json::Value = self.get(jars, "/auth/userinfo", &[]).await.json().await.unwrap();
        me["sub"].as_str().expect("signed in").to_owned()
    }
}

const NAVIGATION: [(&str, &str); 2] = [("accept", "text/html"), ("sec-fetch-mode", "navigate")];
const FETCH: [(&str, &str); 2] = [("accept", "application/json"), ("sec-fetch-mode", "cors")];
/// Identity headers a client makes up; none may reach the app.
const SPOOFED: [(&str, &str); 3] = [("x-user-id", "evil"), ("x-user-groups", "ops"), ("X-User-Name", "mallory")];

/// The whole journey through `front`: sign-in from a navigation and back, the
/// identity upstream once per name (a client's copy never), 401 for fetch without a
/// session, 403 naming the rule, a refresh during a check that reaches the browser,
/// and 401 after logout.
async fn journey(front: Front) {
    let site_port = common::free_port();
    let s = scene(Some(site_port), Duration::from_secs(10), "").await;
    let _proxy = front.start(site_port, s.gateway.addr.port(), s.app.port());
    let mut jars = Jars::default();
    let started = Instant::now();
    loop {
        let ready = s.http.get(format!("{}/auth/jwks.json", s.origin)).send().await;
        if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(started.elapsed() < common::BOUND, "{front:?} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let page = "/app/page?x=1&y=2";
    let first = s.get(&mut jars, page, &NAVIGATION).await;
    assert_eq!(first.status(), StatusCode::FOUND, "{front:?}: a navigation without a session");
    let to_login = location(&first);
    assert_eq!(to_login, format!("{}/auth/login?return_to=%2Fapp%2Fpage%3Fx%3D1%26y%3D2", s.origin), "{front:?}");
    let back = s.sign_in(&mut jars, &to_login).await;
    assert_eq!(back, page, "{front:?}: back to the page");
    let signed_in_at = Instant::now();
    assert!(
        jars.site.contains_key("__Host-portcullis.1"),
        "{front:?}: a session of two cookies: {:?}",
        jars.site.keys()
    );

    let spoofed: Vec<(&str, &str)> = NAVIGATION.iter().chain(&SPOOFED).copied().collect();
    let reply = s.get(&mut jars, page, &spoofed).await;
    assert_eq!(reply.status(), StatusCode::OK, "{front:?}");
    let echo: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(echo["uri"], page, "{front:?}");
    let sub = s.sub(&mut jars).await;
    assert_eq!(seen(&echo, "x-user-id"), [sub], "{front:?}");
    assert_eq!(seen(&echo, "x-user-name"), ["alice"], "{front:?}");
    assert_eq!(seen(&echo, "x-user-email"), ["alice@example.com"], "{front:?}");
    assert_eq!(seen(&echo, "x-user-groups"), ["admins,users"], "{front:?}");
    assert_eq!(seen(&echo, "x-portcullis-identity").len(), 1, "{front:?}");

    // Due halfway through the token's 10 s: the next check refreshes, and its
    // cookies (both) must reach the browser through the proxy.
    let due = Duration::from_secs(5) + Duration::from_millis(300);
    tokio::time::sleep(due.saturating_sub(signed_in_at.elapsed())).await;
    let before = jars.site.clone();
    let refreshed = s.get(&mut jars, "/app/data", &FETCH).await;
    assert_eq!(refreshed.status(), StatusCode::OK, "{front:?}");
    assert_eq!(s.idp.counters().refresh_token, 1, "{front:?}");
    assert_ne!(jars.site.get("__Host-portcullis.0"), before.get("__Host-portcullis.0"), "{front:?}: renewed cookies");
    assert_ne!(jars.site.get("__Host-portcullis.1"), before.get("__Host-portcullis.1"), "{front:?}: renewed cookies");
    let after = s.get(&mut jars, "/app/data", &FETCH).await;
    assert_eq!(after.status(), StatusCode::OK, "{front:?}: the renewed cookies work");
    assert!(after.headers().get("set-cookie").is_none(), "{front:?}: no second refresh");
    assert_eq!(s.idp.counters().refresh_token, 1, "{front:?}");

    let refused = s.get(&mut jars, "/admin/users", &FETCH).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{front:?}");
    let refused: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(refused["rule"], "groups", "{front:?}");

    let public = s.get(&mut Jars::default(), "/public/x", &SPOOFED).await;
    assert_eq!(public.status(), StatusCode::OK, "{front:?}");
    let public: serde_json::Value = public.json().await.unwrap();
    for name in IDENTITY_HEADERS {
        assert!(seen(&public, name).iter().all(String::is_empty), "{front:?}: {name} on a public route");
    }

    let anonymous = s.get(&mut Jars::default(), "/app/data", &FETCH).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{front:?}: fetch without a session");

    let kept = jars.site.clone();
    let logout = s
        .http
        .post(format!("{}/auth/logout", s.origin))
        .header("cookie", Browser::cookie_header(&jars.site))
        .header("origin", &s.origin)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER, "{front:?}");
    let mut old = Jars { site: kept, ..Jars::default() };
    let after_logout = s.get(&mut old, "/app/data", &FETCH).await;
    assert_eq!(after_logout.status(), StatusCode::UNAUTHORIZED, "{front:?}: the old cookies after logout");
}

#[tokio::test]
async fn nginx_auth_request() {
    journey(Front::Nginx).await;
}

#[tokio::test]
async fn caddy_forward_auth() {
    journey(Front::Caddy).await;
}

#[tokio::test]
async fn traefik_forward_auth() {
    journey(Front::Traefik).await;
}

#[tokio::test]
async fn envoy_ext_authz() {
    journey(Front::Envoy).await;
}

#[test]
fn the_docs_show_the_tested_configurations() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/forward-auth.md")).unwrap();
    for front in [Front::Nginx, Front::Caddy, Front::Traefik, Front::Envoy] {
        assert!(docs.contains(front.documented().trim_end()), "docs/forward-auth.md lacks the tested {front:?} config");
    }
}
