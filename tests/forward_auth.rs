//! Forward-auth: `/auth/verify` asked by the proxy a team already runs. First the
//! answers themselves, then the whole browser journey through real nginx, Caddy,
//! Traefik and Envoy, each running the configuration `docs/forward-auth.md` shows.

mod common;

use common::browser::{Browser, CLIENT, KEY, client_at, location};
use common::front_proxy::Front;
use common::upstream::seen;
use portcullis::dev_idp::{DevIdp, Settings};
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

/// `session` adds lines to `[session]`, `forward_auth` to `[forward_auth]` (enabled).
async fn scene(origin_port: Option<u16>, access_ttl: Duration, session: &str, forward_auth: &str) -> Scene {
    let app = common::upstream::echo().await;
    let gateway_port = common::free_port();
    let origin = format!("http://127.0.0.1:{}", origin_port.unwrap_or(gateway_port));
    let mut settings =
        Settings { clients: vec![client_at(&origin)], access_token_ttl: access_ttl, ..Settings::default() };
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
{session}
[forward_auth]
enabled = true
{forward_auth}
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
/// Identity headers a client makes up, also in spellings CGI-style apps read as the
/// real ones; none may reach the app.
const SPOOFED: [(&str, &str); 6] = [
    ("x-user-id", "evil"),
    ("x-user-groups", "ops"),
    ("X-User-Name", "mallory"),
    ("x_user_id", "evil"),
    ("X-User_Groups", "ops"),
    ("x_portcullis_identity", "forged"),
];

/// No header the app received is an identity header spelled with `_`.
fn no_spelled_identity(echo: &serde_json::Value, front: Front) {
    for pair in echo["headers"].as_array().unwrap() {
        let name = pair[0].as_str().unwrap();
        let folded = name.replace('_', "-");
        assert!(!(name.contains('_') && IDENTITY_HEADERS.contains(&folded.as_str())), "{front:?} passed {name}");
    }
}

/// The whole journey through `front`: sign-in from a navigation and back, the
/// identity upstream once per name (a client's copy never), 401 for fetch without a
/// session, 403 naming the rule, a refresh during a check that reaches the browser,
/// and 401 after logout.
async fn journey(front: Front) {
    let site_port = common::free_port();
    let s = scene(Some(site_port), Duration::from_secs(10), "", "").await;
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
    no_spelled_identity(&echo, front);

    // The check is the proxy's alone: a page asking it through the proxy learns nothing.
    let probe = [("x-forwarded-uri", "/app/page"), ("x-original-uri", "/app/page")];
    let probe = s.get(&mut jars, "/auth/verify", &probe).await;
    for name in IDENTITY_HEADERS {
        assert!(probe.headers().get(name).is_none(), "{front:?} answered /auth/verify to a browser: {name}");
    }

    // Due halfway through the token's 10 s: the next check refreshes, and its
    // cookies (both) must reach the browser through the proxy.
    let due = Duration::from_secs(5) + Duration::from_millis(300);
    tokio::time::sleep(due.saturating_sub(signed_in_at.elapsed())).await;
    let before = jars.site.clone();
    let refreshed = s.get(&mut jars, "/app/data", &FETCH).await;
    assert_eq!(refreshed.status(), StatusCode::OK, "{front:?}");
    assert_eq!(s.idp.counters().refresh_token, 1, "{front:?}");
    // Compared, not printed: cookie values stay out of test output.
    for chunk in ["__Host-portcullis.0", "__Host-portcullis.1"] {
        assert!(jars.site.get(chunk) != before.get(chunk), "{front:?}: {chunk} renewed");
    }
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
    no_spelled_identity(&public, front);

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

/// The gateway's own origin, signed in as alice.
async fn signed_in(s: &Scene) -> Jars {
    let mut jars = Jars::default();
    let back = s.sign_in(&mut jars, "/auth/login?return_to=%2F").await;
    assert_eq!(back, "/");
    jars
}

impl Scene {
    /// Asks `/auth/verify{rest}` as a proxy on loopback would, with the site's cookies.
    async fn verify(&self, jars: &Jars, rest: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        self.verify_from(&self.http, jars, rest, headers).await
    }

    async fn verify_from(
        &self,
        http: &reqwest::Client,
        jars: &Jars,
        rest: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = http
            .get(self.gateway.url(&format!("/auth/verify{rest}")))
            .header("cookie", Browser::cookie_header(&jars.site));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }
}

fn header(response: &reqwest::Response, name: &str) -> Vec<String> {
    response.headers().get_all(name).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn answers_carry_every_identity_name_and_follow_the_described_routes_policy() {
    let s = scene(None, Duration::from_secs(3600), "[identity]\npass_access_token = true", "").await;
    let jars = signed_in(&s).await;
    let sub = s.sub(&mut Jars { site: jars.site.clone(), ..Jars::default() }).await;

    let allowed = s.verify(&jars, "", &[("x-forwarded-uri", "/app/page"), ("x-user-id", "evil")]).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(header(&allowed, "x-user-id"), [sub], "the session's, never the client's");
    assert_eq!(header(&allowed, "x-user-groups"), ["admins,users"]);
    assert_eq!(header(&allowed, "x-portcullis-identity").len(), 1);
    assert_eq!(header(&allowed, "cache-control"), ["no-store"]);
    assert!(allowed.headers().get("authorization").is_none(), "never the access token");
    assert!(header(&allowed, "set-cookie").is_empty(), "nothing renewed");

    let nginx_form = s.verify(&jars, "", &[("x-original-uri", "/admin/users"), ("accept", "application/json")]).await;
    assert_eq!(nginx_form.status(), StatusCode::FORBIDDEN);
    assert_eq!(nginx_form.json::<serde_json::Value>().await.unwrap()["rule"], "groups");
    let envoy_form = s.verify(&jars, "/admin/users?page=2", &[]).await;
    assert_eq!(envoy_form.status(), StatusCode::FORBIDDEN, "Envoy's appended path picks the route too");

    let public = s.verify(&Jars::default(), "", &[("x-forwarded-uri", "/public/x"), ("x-user-id", "evil")]).await;
    assert_eq!(public.status(), StatusCode::OK);
    for name in IDENTITY_HEADERS {
        assert_eq!(header(&public, name), [""], "{name}: present and empty, to replace a client's copy");
    }

    let anonymous = [("x-forwarded-uri", "/app/page?q=1"), NAVIGATION[0], NAVIGATION[1]];
    let told = s.verify(&Jars::default(), "", &anonymous).await;
    assert_eq!(told.status(), StatusCode::UNAUTHORIZED, "nginx's auth_request takes 401, never a 302");
    assert_eq!(
        told.json::<serde_json::Value>().await.unwrap()["login_url"],
        "/auth/login?return_to=%2Fapp%2Fpage%3Fq%3D1"
    );
    let sent = s.verify(&Jars::default(), "?redirect=true", &anonymous).await;
    assert_eq!(sent.status(), StatusCode::FOUND);
    assert_eq!(location(&sent), format!("{}/auth/login?return_to=%2Fapp%2Fpage%3Fq%3D1", s.origin));
    let fetch = [("x-forwarded-uri", "/app/page"), FETCH[0], FETCH[1]];
    assert_eq!(s.verify(&Jars::default(), "?redirect=true", &fetch).await.status(), StatusCode::UNAUTHORIZED);
    let envoy = s.verify(&Jars::default(), "/app/page", &[NAVIGATION[0], ("x-portcullis-redirect", "true")]).await;
    assert_eq!(location(&envoy), format!("{}/auth/login?return_to=%2Fapp%2Fpage", s.origin));

    let forged = [("x-forwarded-uri", "/app/orders"), ("x-forwarded-method", "POST"), ("sec-fetch-site", "cross-site")];
    let forged = s.verify(&jars, "", &forged).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(forged.json::<serde_json::Value>().await.unwrap()["error"], "csrf");
    let own = [("x-forwarded-uri", "/app/orders"), ("x-forwarded-method", "POST"), ("sec-fetch-site", "same-origin")];
    assert_eq!(s.verify(&jars, "", &own).await.status(), StatusCode::OK);
    // A WebSocket handshake, known by its key where the proxy keeps `Upgrade` to itself.
    let hijack = [
        ("x-forwarded-uri", "/app/ws"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-fetch-site", "cross-site"),
    ];
    assert_eq!(s.verify(&jars, "", &hijack).await.status(), StatusCode::FORBIDDEN);

    assert_eq!(s.verify(&jars, "", &[]).await.status(), StatusCode::BAD_REQUEST, "no original URI");
    let disagree = [("x-forwarded-uri", "/public/x"), ("x-original-uri", "/admin/users")];
    assert_eq!(s.verify(&jars, "", &disagree).await.status(), StatusCode::BAD_REQUEST);

    // Counted apart from the other /auth/ endpoints: allowed (2xx) and refused (4xx).
    let metrics = s.http.get(s.gateway.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    for (line, count) in [
        (r#"portcullis_http_requests_total{route="/auth/verify",status="2xx"} "#, 3),
        (r#"portcullis_http_requests_total{route="/auth/verify",status="3xx"} "#, 2),
        (r#"portcullis_http_requests_total{route="/auth/verify",status="4xx"} "#, 8),
    ] {
        assert!(metrics.contains(&format!("{line}{count}\n")), "{line}{count} in\n{metrics}");
    }
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_address_pick_no_route() {
    let s = scene(None, Duration::from_secs(3600), "", "trusted_proxies = [\"127.0.0.2\"]").await;
    let jars = signed_in(&s).await;
    let proxy = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(common::BOUND)
        .build()
        .unwrap();
    let public = [("x-forwarded-uri", "/public/x")];
    let untrusted = s.verify(&Jars::default(), "", &public).await;
    assert_eq!(untrusted.status(), StatusCode::FORBIDDEN, "127.0.0.1 is not the trusted proxy");
    assert_eq!(untrusted.json::<serde_json::Value>().await.unwrap()["error"], "untrusted_caller");
    let admin = [("x-forwarded-uri", "/admin/users")];
    assert_eq!(s.verify(&jars, "", &admin).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(s.verify_from(&proxy, &Jars::default(), "", &public).await.status(), StatusCode::OK);
    assert_eq!(s.verify_from(&proxy, &jars, "", &[("x-forwarded-uri", "/app")]).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_route_without_an_upstream_forwards_nothing() {
    let s = scene(None, Duration::from_secs(3600), "", "").await;
    let mut jars = signed_in(&s).await;
    assert_eq!(s.get(&mut Jars::default(), "/public/x", &FETCH).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(s.get(&mut jars, "/elsewhere", &FETCH).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(s.get(&mut jars, "/admin/x", &FETCH).await.status(), StatusCode::FORBIDDEN, "policy first");
}

#[tokio::test]
async fn a_refusal_after_a_refresh_keeps_the_renewed_cookies() {
    let s = scene(None, Duration::from_secs(4), "", "").await;
    let mut jars = signed_in(&s).await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let before = jars.site.clone();
    // Alice may not use /admin/: refused, on the proxy path and at /auth/verify alike,
    // after the session was renewed.
    let refused = s.get(&mut jars, "/admin/x", &FETCH).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(s.idp.counters().refresh_token, 1);
    assert!(jars.site != before, "the renewed cookies came with the 403");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let before = jars.site.clone();
    let refused = s.verify(&jars, "", &[("x-forwarded-uri", "/admin/x")]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(s.idp.counters().refresh_token, 2, "renewed on the renewed refresh token");
    assert!(!header(&refused, "set-cookie").is_empty());
    assert!(header(&refused, "x-portcullis-set-cookie-1").is_empty(), "readable copies only on a 200");
    Browser::store(&mut jars.site, &refused);
    assert!(jars.site != before, "renewed cookies");
    assert_eq!(s.verify(&jars, "", &[("x-forwarded-uri", "/app")]).await.status(), StatusCode::OK);
    assert_eq!(s.idp.counters().refresh_token, 2);
}

#[tokio::test]
async fn concurrent_checks_of_a_due_session_refresh_it_once() {
    let s = scene(None, Duration::from_secs(4), "", "").await;
    let jars = signed_in(&s).await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let checks = (0..8).map(|_| s.verify(&jars, "", &[("x-forwarded-uri", "/app")]));
    let answers = futures_util::future::join_all(checks).await;
    assert!(answers.iter().all(|a| a.status() == StatusCode::OK));
    assert_eq!(s.idp.counters().refresh_token, 1, "one refresh for eight checks");
    for answer in &answers {
        let cookies = header(answer, "set-cookie");
        assert!(!cookies.is_empty(), "every check carries the renewed cookies");
        let numbered: Vec<String> =
            (1..=cookies.len()).flat_map(|n| header(answer, &format!("x-portcullis-set-cookie-{n}"))).collect();
        assert!(numbered == cookies, "numbered copies of every Set-Cookie, in order, for nginx");
    }
}

#[tokio::test]
async fn verify_works_with_the_redis_store() {
    let redis = common::redis::RedisServer::start().await;
    let s = scene(None, Duration::from_secs(3600), &format!("store = \"redis\"\n{}", redis.section()), "").await;
    let jars = signed_in(&s).await;
    assert_eq!(jars.site.len(), 1, "one handle cookie: {:?}", jars.site.keys());
    let app = [("x-forwarded-uri", "/app")];
    let allowed = s.verify(&jars, "", &app).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(header(&allowed, "x-user-name"), ["alice"]);
    let logout = s
        .http
        .post(s.gateway.url("/auth/logout"))
        .header("cookie", Browser::cookie_header(&jars.site))
        .header("origin", &s.origin)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(s.verify(&jars, "", &app).await.status(), StatusCode::UNAUTHORIZED, "the old handle after logout");
}

#[tokio::test]
async fn without_forward_auth_enabled_there_is_no_check() {
    let setup = common::browser::setup(|_| {}, "").await;
    let check = setup.http.get(setup.gateway.url("/auth/verify")).header("x-forwarded-uri", "/").send().await.unwrap();
    assert_eq!(check.status(), StatusCode::NOT_FOUND);
    assert!(check.headers().get("x-user-id").is_none());
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
