//! A scripted browser for login tests: a cookie jar per origin, and the sign-in through
//! the development provider's form.

use portcullis::dev_idp::{ClientSettings, DevIdp, Settings};
use reqwest::StatusCode;
use std::collections::BTreeMap;

pub const CLIENT: &str = "portcullis-test";
pub const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes, base64

/// A browser: a cookie jar per origin (names only, no paths: everything is Path=/).
#[derive(Default)]
pub struct Browser {
    pub gateway: BTreeMap<String, String>,
    pub idp: BTreeMap<String, String>,
}

pub struct Setup {
    pub idp: DevIdp,
    pub gateway: crate::common::TestGateway,
    pub http: reqwest::Client,
    /// The gateway's configuration, for [`Setup::replica`].
    pub config: String,
}

impl Setup {
    /// The `sub` of the session `cookies` present, as `/auth/userinfo` says.
    pub async fn sub(&self, cookies: &str) -> String {
        let reply = self.http.get(self.gateway.url("/auth/userinfo")).header("cookie", cookies).send().await.unwrap();
        let me: serde_json::Value = reply.json().await.unwrap();
        me["sub"].as_str().expect("signed in").to_owned()
    }

    /// Another gateway with the same configuration (keys, provider, public URL) on a
    /// port of its own: a second replica behind the same origin.
    pub async fn replica(&self) -> crate::common::TestGateway {
        let listen = format!("listen = \"{}\"", self.gateway.addr);
        assert!(self.config.contains(&listen));
        let replica =
            crate::common::TestGateway::start(&self.config.replace(&listen, "listen = \"127.0.0.1:0\"")).await;
        replica.ready().await;
        replica
    }
}

/// The provider (settings adjusted by `tweak`) and a gateway in front of an echo
/// upstream with login; `session` adds lines to the gateway's `[session]`.
pub async fn setup(tweak: impl FnOnce(&mut Settings), session: &str) -> Setup {
    setup_kind("cognito", tweak, session).await
}

/// As [`setup`], with the gateway's `provider.kind` ("cognito" or "oidc").
pub async fn setup_kind(kind: &str, tweak: impl FnOnce(&mut Settings), session: &str) -> Setup {
    setup_with(kind, tweak, Extra { session, ..Extra::default() }).await
}

/// Lines a test adds to the gateway's configuration of [`setup_with`].
#[derive(Default)]
pub struct Extra<'a> {
    pub provider: &'a str,
    pub session: &'a str,
    /// `[[route]]` tables, before the standard ones (`/`, `/nocsrf/`, `/public/`);
    /// `{app}` in them stands for the echo upstream's address.
    pub routes: &'a str,
    /// Whole sections, after `[session]` (e.g. `[redis]`).
    pub sections: &'a str,
}

/// As [`setup_kind`], with lines added to `[provider]`, `[session]` and the routes.
pub async fn setup_with(kind: &str, tweak: impl FnOnce(&mut Settings), extra: Extra<'_>) -> Setup {
    setup_provider(tweak, extra, |idp| format!("kind = \"{kind}\"\nissuer = \"{}\"", idp.issuer())).await
}

/// As [`setup_with`], with the `[provider]` lines that say where the issuer is
/// (`provider` writes them for the started provider); the domain and the client are
/// set here.
pub async fn setup_provider(
    tweak: impl FnOnce(&mut Settings),
    extra: Extra<'_>,
    provider: impl FnOnce(&DevIdp) -> String,
) -> Setup {
    let Extra { provider: provider_lines, session, routes, sections } = extra;
    let port = crate::common::free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let mut settings = Settings { clients: vec![client_at(&origin)], ..Settings::default() };
    tweak(&mut settings);
    let idp = DevIdp::start(settings).await.unwrap();
    let app = crate::common::upstream::echo().await;
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:0"
public_url = "{origin}"
[provider]
{provider}
domain = "{domain}"
client_id = "{CLIENT}"
client_secret = "test-secret"
{provider_lines}
[session]
cookie_keys = ["{KEY}"]
insecure_dev_cookies = true
{session}
{sections}
{routes}
[[route]]
prefix = "/"
upstream = "http://{app}"
[[route]]
prefix = "/nocsrf/"
upstream = "http://{app}"
csrf = false
[[route]]
prefix = "/public/"
upstream = "http://{app}"
public = true
"#,
        provider = provider(&idp),
        domain = idp.base_url(),
        routes = routes.replace("{app}", &app.to_string()),
    );
    let gateway = crate::common::TestGateway::start(&config).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(crate::common::BOUND)
        .build()
        .unwrap();
    gateway.ready().await;
    Setup { idp, gateway, http, config }
}

/// The test client of a gateway whose public origin is `origin`.
pub fn client_at(origin: &str) -> ClientSettings {
    ClientSettings {
        client_id: CLIENT.into(),
        client_secret: Some("test-secret".into()),
        callback_urls: vec![format!("{origin}/auth/callback")],
        logout_urls: vec![format!("{origin}/")],
        allowed_scopes: vec!["openid".into(), "email".into(), "profile".into()],
    }
}

impl Browser {
    pub fn cookie_header(jar: &BTreeMap<String, String>) -> String {
        jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub fn store(jar: &mut BTreeMap<String, String>, response: &reqwest::Response) {
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub async fn get(&mut self, s: &Setup, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let to_gateway = url.starts_with(&s.gateway.url(""));
        let jar = if to_gateway { &mut self.gateway } else { &mut self.idp };
        let mut request = s.http.get(url).header("cookie", Self::cookie_header(jar));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        Self::store(jar, &response);
        response
    }

    /// Follows a login from `/auth/login?return_to=…` to the gateway's answer to the
    /// callback; returns that answer.
    pub async fn log_in(&mut self, s: &Setup, return_to: &str) -> reqwest::Response {
        let callback = self.until_callback(s, return_to).await;
        self.get(s, &callback, &[]).await
    }

    /// Starts a login and signs in at the provider; returns the callback URL the
    /// provider redirects to, not yet visited (the attempt cookie is in the jar).
    pub async fn until_callback(&mut self, s: &Setup, return_to: &str) -> String {
        let password = Settings::default().users[0].password.clone();
        self.until_callback_as(s, return_to, "alice", &password).await
    }

    /// As [`Browser::until_callback`], signing in as `username`.
    pub async fn until_callback_as(&mut self, s: &Setup, return_to: &str, username: &str, password: &str) -> String {
        let login = self.get(s, &s.gateway.url(&format!("/auth/login?return_to={return_to}")), &[]).await;
        assert_eq!(login.status(), StatusCode::FOUND);
        let authorize = location(&login);
        assert!(authorize.starts_with(&format!("{}/oauth2/authorize?", s.idp.base_url())), "{authorize}");
        let params = query(&authorize);
        assert_eq!(params["code_challenge_method"], "S256");
        assert_eq!(params["code_challenge"].len(), 43);
        assert!(params["state"].len() >= 16 && params["nonce"].len() >= 32);
        assert_eq!(params["redirect_uri"], s.gateway.url("/auth/callback"));

        let to_form = self.get(s, &authorize, &[]).await;
        let form_url = format!("{}{}", s.idp.base_url(), location(&to_form));
        let signed_in = s
            .http
            .post(&form_url)
            .header("cookie", Self::cookie_header(&self.idp))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .unwrap();
        Self::store(&mut self.idp, &signed_in);
        let callback = location(&signed_in);
        assert!(callback.starts_with(&s.gateway.url("/auth/callback?")), "{callback}");
        callback
    }
}

pub fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

pub fn query(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}
