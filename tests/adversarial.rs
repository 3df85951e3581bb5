//! Hostile input, table-driven: well over 150 requests a gateway guarding identity is
//! sent sooner or later, each with the one outcome it must end in. Every request goes
//! over a raw socket, byte for byte as written here (no client library tidies it up),
//! to a real gateway in front of a recording upstream, with the development provider
//! behind it.
//!
//! Beyond each case's own outcome, every case must also: get an answer (no hang), never
//! a 5xx, and never put a client-chosen identity in front of the upstream.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::browser::{Browser, CLIENT, KEY, Setup, location};
use common::free_port;
use portcullis::dev_idp::{ClientSettings, DevIdp, KeyUse, Settings};
use portcullis::session::{chunks, seal::Sealer};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SESSION: &str = "__Host-portcullis";
const CLI: &str = "cli";
const IDENTITY_HEADERS: [&str; 5] =
    ["x-user-id", "x-user-name", "x-user-email", "x-user-groups", "x-portcullis-identity"];

/// What a case must end in.
#[derive(Debug, Clone)]
enum Expect {
    /// Answered with exactly this status by the gateway; nothing forwarded.
    Status(u16),
    /// Answered with one of these statuses (the HTTP parser's choice); nothing forwarded.
    OneOf(&'static [u16]),
    /// A logged-out user asking for an API: 401, nothing forwarded.
    SignedOut,
    /// Signed in but refused by the route's policy: 403 naming this rule, no claims.
    Forbidden(&'static str),
    /// Forwarded; with `as_alice`, carrying exactly the real session's identity,
    /// otherwise no identity headers at all. `uri`: the path the upstream must see.
    Forwarded { as_alice: bool, uri: Option<&'static str> },
    /// A refused sign-in callback: a 4xx, no session cookie set, nothing forwarded.
    NoSession,
    /// A redirect whose target starts with this and never mentions `evil`.
    RedirectTo(String),
    /// Checked while the case was built (a whole login flow); nothing to send.
    Done(Result<(), String>),
}

struct Case {
    name: String,
    request: Vec<u8>,
    expect: Expect,
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn sets_session(&self) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.starts_with(SESSION) && !v.contains("Max-Age=0"))
    }
}

struct Suite {
    s: Setup,
    forwarded: Arc<AtomicUsize>,
    host: String,
    alice_sub: String,
    /// Alice's session cookies, as a Cookie header.
    alice: String,
    /// Alice's access token, for Bearer cases.
    access_token: String,
    cases: Vec<Case>,
}

/// A request as raw bytes; `Host` (unless given), `Accept: application/json` and
/// `Connection: close` are added.
fn raw(method: &str, target: &str, host: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut text = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        text.push_str(&format!("Host: {host}\r\n"));
    }
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("accept")) {
        text.push_str("Accept: application/json\r\n");
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("Connection: close\r\n\r\n");
    text.into_bytes()
}

impl Suite {
    fn case(&mut self, name: impl Into<String>, request: Vec<u8>, expect: Expect) {
        self.cases.push(Case { name: name.into(), request, expect });
    }

    fn get(&mut self, name: impl Into<String>, target: &str, headers: &[(&str, &str)], expect: Expect) {
        let request = raw("GET", target, &self.host, headers);
        self.case(name, request, expect);
    }

    async fn send(&self, request: &[u8]) -> Result<Answer, String> {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(self.s.gateway.addr).await.map_err(|e| e.to_string())?;
            stream.write_all(request).await.map_err(|e| e.to_string())?;
            let mut bytes = Vec::new();
            // A reset after the answer (the gateway closing on a half-read request) is fine.
            let _ = stream.read_to_end(&mut bytes).await;
            Ok::<_, String>(bytes)
        };
        let bytes = tokio::time::timeout(common::BOUND, exchange).await.map_err(|_| "no answer in time")??;
        parse(&bytes)
    }

    async fn run(&self, case: &Case) -> Result<(), String> {
        if let Expect::Done(result) = &case.expect {
            return result.clone();
        }
        let before = self.forwarded.load(Ordering::SeqCst);
        let answer = self.send(&case.request).await?;
        let forwarded = self.forwarded.load(Ordering::SeqCst) - before;
        let body = String::from_utf8_lossy(&answer.body).into_owned();
        let fail = |why: &str| Err(format!("{why}: status {}, forwarded {forwarded}, body {body:.300}", answer.status));
        if answer.status >= 500 {
            return fail("a 5xx");
        }
        let planted = answer
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.contains("portcullis") && v.contains("planted"));
        if planted {
            return fail("the upstream set a gateway cookie in the browser");
        }
        if forwarded > 0 {
            let echo = answer.json();
            if !echo["headers"].is_array() {
                return fail("forwarded, but the answer is not the upstream's");
            }
            // Also as `x_user_id`: CGI-style frameworks read it as `x-user-id`.
            let pairs = echo["headers"].as_array().cloned().unwrap_or_default();
            for pair in pairs {
                let name = pair[0].as_str().unwrap_or_default().replace('_', "-");
                if IDENTITY_HEADERS.contains(&name.as_str()) && pair[1].as_str().unwrap_or_default().contains("spoof") {
                    return fail(&format!("a client-chosen {} reached the upstream", pair[0]));
                }
            }
        }
        let not_forwarded = forwarded == 0;
        match &case.expect {
            Expect::Status(status) if answer.status != *status || !not_forwarded => fail(&format!("expected {status}")),
            Expect::OneOf(statuses) if !statuses.contains(&answer.status) || !not_forwarded => {
                fail(&format!("expected one of {statuses:?}"))
            }
            Expect::SignedOut if answer.status != 401 || !not_forwarded => fail("expected signed out (401)"),
            Expect::Forbidden(rule) => {
                let json = answer.json();
                if answer.status != 403 || !not_forwarded || json["rule"] != *rule {
                    return fail(&format!("expected 403 for rule {rule}"));
                }
                if body.contains("alice") || body.contains("admins") || body.contains("example.") {
                    return fail("the refusal leaks claims");
                }
                Ok(())
            }
            Expect::Forwarded { as_alice, uri } => {
                if answer.status != 200 || forwarded != 1 {
                    return fail("expected forwarded once");
                }
                let echo = answer.json();
                if let Some(uri) = uri
                    && echo["uri"] != *uri
                {
                    return fail(&format!("the upstream saw {} instead of {uri}", echo["uri"]));
                }
                let ids = common::upstream::seen(&echo, "x-user-id");
                let others = IDENTITY_HEADERS.iter().map(|n| common::upstream::seen(&echo, n).len()).sum::<usize>();
                match as_alice {
                    true if ids != [self.alice_sub.clone()] => fail("expected exactly alice's identity"),
                    false if others > 0 => fail("expected no identity headers"),
                    _ => Ok(()),
                }
            }
            Expect::NoSession if !(400..500).contains(&answer.status) || !not_forwarded || answer.sets_session() => {
                fail("expected a 4xx without a session")
            }
            Expect::RedirectTo(prefix) => {
                let target = answer.header("location").unwrap_or_default();
                if !(300..400).contains(&answer.status)
                    || !target.starts_with(prefix.as_str())
                    || target.contains("evil")
                {
                    return fail(&format!("expected a redirect to {prefix}…, got {target:?}"));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn parse(bytes: &[u8]) -> Result<Answer, String> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| {
        format!("no complete response head: {:?}", String::from_utf8_lossy(&bytes[..bytes.len().min(200)]))
    })?;
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status =
        status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = bytes[end + 4..].to_vec();
    if headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Ok(Answer { status, headers, body })
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < line_end + 2 + size {
            break;
        }
        out.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
        rest = &rest[(line_end + 4 + size).min(rest.len())..];
    }
    out
}

/// The provider, a recording echo upstream, and a gateway with production cookies,
/// Bearer tokens on, and routes with each kind of policy.
async fn start() -> (Setup, Arc<AtomicUsize>) {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let idp = DevIdp::start(Settings {
        clients: vec![
            common::browser::client_at(&origin),
            // A public client (a CLI) whose access tokens the gateway accepts as Bearer.
            ClientSettings {
                client_id: CLI.into(),
                client_secret: None,
                callback_urls: vec![format!("{origin}/auth/callback")],
                logout_urls: vec![],
                allowed_scopes: vec!["openid".into(), "email".into()],
            },
        ],
        ..Settings::default()
    })
    .await
    .unwrap();
    let (app, forwarded) = common::upstream::counting_echo().await;
    let route =
        |prefix: &str, extra: &str| format!("[[route]]\nprefix = \"{prefix}\"\nupstream = \"http://{app}\"\n{extra}\n");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\npublic_url = \"{origin}\"\n\
         [provider]\nkind = \"cognito\"\nissuer = \"{issuer}\"\ndomain = \"{domain}\"\nclient_id = \"{CLIENT}\"\n\
         client_secret = \"test-secret\"\n[session]\ncookie_keys = [\"{KEY}\"]\n[bearer]\nenabled = true\nclient_ids = [\"{CLI}\"]\n{routes}",
        issuer = idp.issuer(),
        domain = idp.base_url(),
        routes = [
            route("/", ""),
            route("/public/", "public = true"),
            route("/ops/", "allowed_groups = [\"ops\"]"),
            route("/admins/", "allowed_groups = [\"ops\", \"admins\"]"),
            route("/write/", "required_scopes = [\"api/write\"]"),
            route("/staff/", "allowed_email_domains = [\"example.org\"]"),
            route("/team/", "allowed_email_domains = [\"EXAMPLE.com\"]"),
        ]
        .concat(),
    );
    let gateway = common::TestGateway::start(&config).await;
    gateway.ready().await;
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(common::BOUND).build().unwrap();
    (Setup { idp, gateway, http, config }, forwarded)
}

#[tokio::test]
async fn every_hostile_request_ends_in_its_expected_outcome() {
    let (s, forwarded) = start().await;
    let mut alice = Browser::default();
    assert_eq!(alice.log_in(&s, "%2F").await.status(), 302);
    let tokens = common::idp::tokens(&s.idp, &s.gateway.url("/auth/callback"), CLI, "n").await;
    let mut suite = Suite {
        host: s.gateway.addr.to_string(),
        alice_sub: Settings::default().users[0].subject(),
        alice: Browser::cookie_header(&alice.gateway),
        access_token: tokens["access_token"].as_str().unwrap().to_owned(),
        forwarded,
        cases: Vec::new(),
        s,
    };
    assert!(alice.gateway.keys().any(|k| k == &format!("{SESSION}.1")), "a chunked production session");
    cookie_cases(&mut suite, &alice).await;
    token_cases(&mut suite, &tokens).await;
    callback_cases(&mut suite).await;
    redirect_cases(&mut suite).await;
    header_cases(&mut suite);
    smuggling_cases(&mut suite);
    path_cases(&mut suite);
    policy_cases(&mut suite);
    limit_cases(&mut suite);

    let mut failures = Vec::new();
    for case in &suite.cases {
        if let Err(why) = suite.run(case).await {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    eprintln!("{} hostile cases run", suite.cases.len());
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), suite.cases.len(), failures.join("\n"));
    assert!(suite.cases.len() >= 150, "only {} cases", suite.cases.len());
    // The genuine session and token still work after all of that.
    let cookie = suite.alice.clone();
    suite.cases.clear();
    suite.get(
        "control: alice's session",
        "/api/x",
        &[("Cookie", &cookie)],
        Expect::Forwarded { as_alice: true, uri: None },
    );
    let bearer = format!("Bearer {}", suite.access_token);
    suite.get(
        "control: alice's token",
        "/api/x",
        &[("Authorization", &bearer)],
        Expect::Forwarded { as_alice: true, uri: None },
    );
    for case in &suite.cases {
        suite.run(case).await.unwrap_or_else(|why| panic!("{}: {why}", case.name));
    }
    let theirs = raw("GET", "/public/x", &suite.host, &[("X-Echo-Set-Cookie", "theme=dark")]);
    let answer = suite.send(&theirs).await.unwrap();
    assert_eq!(answer.header("set-cookie"), Some("theme=dark"), "the upstream's own cookies pass");
}

/// Session cookies: garbage, tampering, chunk games, wrong keys, replay after logout.
async fn cookie_cases(suite: &mut Suite, alice: &Browser) {
    let garbage = [
        "",
        "x",
        "!!!!",
        "%%%",
        "AAAA",
        "=",
        "a=b",
        "null",
        "{}",
        "\"quoted\"",
        "\u{e9}t\u{e9}",
        "0.",
        "2.abc",
        "9.x",
        "-1.x",
        "1.x",
    ];
    for (i, value) in garbage.iter().enumerate() {
        let cookie = format!("{SESSION}={value}");
        suite.get(format!("cookie garbage {i} {value:?}"), "/api/x", &[("Cookie", &cookie)], Expect::SignedOut);
        let chunked = format!("{SESSION}.0={value}; {SESSION}.1={value}");
        suite.get(format!("cookie garbage chunks {i}"), "/api/x", &[("Cookie", &chunked)], Expect::SignedOut);
    }
    let long = format!("{SESSION}={}", "A".repeat(3000));
    suite.get("cookie long base64", "/api/x", &[("Cookie", &long)], Expect::SignedOut);
    let random = format!("{SESSION}={}", B64.encode(rand::random::<[u8; 32]>().repeat(20)));
    suite.get("cookie random sealed-looking", "/api/x", &[("Cookie", &random)], Expect::SignedOut);

    let jar = &alice.gateway;
    let first = jar[&format!("{SESSION}.0")].clone();
    let second = jar[&format!("{SESSION}.1")].clone();
    let header = |a: &str, b: &str| format!("{SESSION}.0={a}; {SESSION}.1={b}");
    let flip = |value: &str, at: usize| {
        let mut bytes = value.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let mut variants = vec![
        ("truncated half", header(&first[..first.len() / 2], &second)),
        ("truncated by one", header(&first, &second[..second.len() - 1])),
        ("second chunk empty", header(&first, "")),
        ("first chunk only", format!("{SESSION}.0={first}")),
        ("second chunk only", format!("{SESSION}.1={second}")),
        ("swapped chunks", header(&second, &first)),
        ("count says 3", header(&first.replacen("2.", "3.", 1), &second)),
        ("count says 1", header(&first.replacen("2.", "1.", 1), &second)),
        ("count says 99", header(&first.replacen("2.", "99.", 1), &second)),
        ("count missing", header(&first[2..], &second)),
        ("unprefixed names", format!("portcullis.0={first}; portcullis.1={second}")),
        ("chunk doubled", header(&first, &format!("{second}{second}"))),
        ("extra garbage chunk is ignored but tamper is not", header(&first, &flip(&second, 10))),
    ];
    for at in [2, 3, 20, first.len() / 2, first.len() - 1] {
        variants.push(("bit flipped in chunk 0", header(&flip(&first, at), &second)));
    }
    for at in [0, second.len() / 2, second.len() - 1] {
        variants.push(("bit flipped in chunk 1", header(&first, &flip(&second, at))));
    }
    for (what, cookie) in variants {
        suite.get(format!("cookie {what}"), "/api/x", &[("Cookie", &cookie)], Expect::SignedOut);
    }
    // The same sealed value, unchunked, is the same session: nothing gained, nothing lost.
    let whole = format!("{SESSION}={}{second}", &first[2..]);
    suite.get(
        "cookie joined under the plain name",
        "/api/x",
        &[("Cookie", &whole)],
        Expect::Forwarded { as_alice: true, uri: None },
    );
    // Duplicate names: the forged copy first. A reader taking the first copy must not
    // be fooled into anything but a logged-out user.
    let doubled = format!("{SESSION}.0=forged; {}", suite.alice);
    suite.get("cookie duplicated chunk 0, forged first", "/api/x", &[("Cookie", &doubled)], Expect::SignedOut);

    // Well-formed seals of a session the gateway never issued.
    let session = json!({
        "sid": "forged", "sub": "mallory", "username": "mallory", "email": null, "email_verified": null,
        "groups": ["admins"], "scope": "openid", "profile": {}, "access_token": "x", "refresh_token": null,
        "id_token": null, "access_expires_at": u64::MAX / 4, "expires_at": u64::MAX / 4
    })
    .to_string();
    let sealed_cookie = |key: &[u8], name: &str, plain: &str| {
        let sealed = Sealer::new(&[key.to_vec()]).unwrap().seal(name, plain.as_bytes());
        chunks::split(SESSION, &sealed).unwrap().iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    };
    let right_key = base64::engine::general_purpose::STANDARD.decode(KEY).unwrap();
    for (what, cookie) in [
        ("sealed with another key", sealed_cookie(&[7u8; 32], SESSION, &session)),
        ("sealed for another cookie name", sealed_cookie(&right_key, "__Host-other", &session)),
        ("sealed with an all-zero key", sealed_cookie(&[0u8; 32], SESSION, &session)),
    ] {
        suite.get(format!("cookie {what}"), "/api/x", &[("Cookie", &cookie)], Expect::SignedOut);
    }
    let ended = session.replace(&format!("\"expires_at\":{}", u64::MAX / 4), "\"expires_at\":1");
    let not_json = "not a session";
    let no_sid = session.replace("\"sid\":\"forged\",", "");
    for (what, plain) in [("whose session ended", ended.as_str()), ("not JSON", not_json), ("without sid", &no_sid)] {
        let cookie = sealed_cookie(&right_key, SESSION, plain);
        suite.get(format!("cookie sealed right, {what}"), "/api/x", &[("Cookie", &cookie)], Expect::SignedOut);
    }

    // Replayed after logout: a second sign-in, kept, then signed out.
    let mut bob_device = Browser::default();
    bob_device.log_in(&suite.s, "%2F").await;
    let kept = Browser::cookie_header(&bob_device.gateway);
    let out = suite
        .s
        .http
        .post(suite.s.gateway.url("/auth/logout"))
        .header("cookie", &kept)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303, "logout");
    suite.get("cookie replayed after logout", "/api/x", &[("Cookie", &kept)], Expect::SignedOut);
    let userinfo = raw("GET", "/auth/userinfo", &suite.host, &[("Cookie", &kept)]);
    suite.case("cookie replayed after logout, userinfo", userinfo, Expect::Status(401));
}

/// Bearer tokens: forged algorithms and keys, header tricks, wrong claims signed with
/// the provider's real key, and malformed values.
async fn token_cases(suite: &mut Suite, tokens: &Value) {
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let id_token = tokens["id_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let parts: Vec<&str> = access.split('.').collect();
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let with_header = |h: Value, signature: &str| format!("{}.{}.{signature}", B64.encode(h.to_string()), parts[1]);

    let jwks: Value = suite
        .s
        .http
        .get(format!("{}/.well-known/jwks.json", suite.s.idp.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let modulus = B64.decode(jwks["keys"][0]["n"].as_str().unwrap()).unwrap();
    let hs256 = |secret: &[u8]| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some(kid.clone());
        jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap()
    };
    let pem_like = jwks["keys"][0].to_string();

    let mut forged: Vec<(&str, String)> = vec![
        ("alg none", with_header(json!({"alg": "none", "kid": kid}), "")),
        ("alg none, no kid", with_header(json!({"alg": "none"}), "")),
        ("alg None", with_header(json!({"alg": "None", "kid": kid}), "")),
        ("alg none with the real signature", with_header(json!({"alg": "none", "kid": kid}), parts[2])),
        ("HS256 keyed with the RSA modulus", hs256(&modulus)),
        ("HS256 keyed with the JWK text", hs256(pem_like.as_bytes())),
        ("HS256 keyed with empty", hs256(b"")),
        ("unknown kid", with_header(json!({"alg": "RS256", "kid": "unknown"}), parts[2])),
        ("no kid", with_header(json!({"alg": "RS256"}), parts[2])),
        ("huge kid", with_header(json!({"alg": "RS256", "kid": "k".repeat(4000)}), parts[2])),
        ("kid path traversal", with_header(json!({"alg": "RS256", "kid": "../../../../dev/null"}), parts[2])),
        ("kid SQL", with_header(json!({"alg": "RS256", "kid": "' OR '1'='1"}), parts[2])),
        ("kid null", with_header(json!({"alg": "RS256", "kid": null}), parts[2])),
        ("kid number", with_header(json!({"alg": "RS256", "kid": 1}), parts[2])),
        (
            "jku to an attacker",
            with_header(json!({"alg": "RS256", "kid": "a", "jku": "http://127.0.0.1:9/k"}), parts[2]),
        ),
        (
            "x5u to an attacker",
            with_header(json!({"alg": "RS256", "kid": "a", "x5u": "http://127.0.0.1:9/c"}), parts[2]),
        ),
        ("embedded jwk", with_header(json!({"alg": "RS256", "jwk": jwks["keys"][0]}), parts[2])),
        ("real kid, ES256 claimed", with_header(json!({"alg": "ES256", "kid": kid}), parts[2])),
        ("real kid, PS256 claimed", with_header(json!({"alg": "PS256", "kid": kid}), parts[2])),
        ("signature stripped", format!("{}.{}.", parts[0], parts[1])),
        ("signature of another token", format!("{}.{}.{}", parts[0], parts[1], id_token.split('.').nth(2).unwrap())),
        ("two parts", format!("{}.{}", parts[0], parts[1])),
        ("four parts", format!("{access}.x")),
        ("not base64", "@@@.@@@.@@@".into()),
        ("empty parts", "..".into()),
        ("ID token as access token", id_token.into()),
        ("refresh token as access token", refresh.into()),
        ("random text", "hello".into()),
    ];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    type Edit = Box<dyn Fn(&mut Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("expired", Box::new(move |c| c["exp"] = json!(now - 3600))),
        ("not yet valid", Box::new(move |c| c["nbf"] = json!(now + 3600))),
        ("wrong issuer", Box::new(|c| c["iss"] = json!("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_evil"))),
        ("issuer with a trailing slash", Box::new(|c| c["iss"] = json!(format!("{}/", c["iss"].as_str().unwrap())))),
        ("token_use id", Box::new(|c| c["token_use"] = json!("id"))),
        ("token_use missing", Box::new(|c| drop(c.as_object_mut().unwrap().remove("token_use")))),
        ("client_id of a stranger", Box::new(|c| c["client_id"] = json!("stranger"))),
        ("client_id missing", Box::new(|c| drop(c.as_object_mut().unwrap().remove("client_id")))),
        ("exp missing", Box::new(|c| drop(c.as_object_mut().unwrap().remove("exp")))),
        ("exp as text", Box::new(move |c| c["exp"] = json!((now + 3600).to_string()))),
        ("sub missing", Box::new(|c| drop(c.as_object_mut().unwrap().remove("sub")))),
        ("iat missing", Box::new(|c| drop(c.as_object_mut().unwrap().remove("iat")))),
        ("iss missing", Box::new(|c| drop(c.as_object_mut().unwrap().remove("iss")))),
    ];
    let names: Vec<String> = edits.iter().map(|(what, _)| format!("signed by the provider, {what}")).collect();
    for ((_, edit), name) in edits.iter().zip(&names) {
        let mut edited = claims.clone();
        edit(&mut edited);
        forged.push((name.as_str(), suite.s.idp.sign(KeyUse::Access, &edited)));
    }
    for (what, token) in forged {
        let value = format!("Bearer {token}");
        suite.get(format!("token {what}"), "/api/x", &[("Authorization", &value)], Expect::Status(401));
    }
    for (what, value) in [
        ("empty bearer", "Bearer "),
        ("bearer without token", "Bearer"),
        ("basic credentials", "Basic YWxpY2U6cGFzcw=="),
        ("unknown scheme", "Token abc"),
    ] {
        suite.get(format!("token {what}"), "/api/x", &[("Authorization", value)], Expect::SignedOut);
    }
    let good = format!("Bearer {access}");
    let bad = "Bearer forged.token.here";
    suite.get(
        "token forged first, genuine second",
        "/api/x",
        &[("Authorization", bad), ("Authorization", &good)],
        Expect::Status(401),
    );
}

/// The sign-in callback: missing, doubled and hostile parameters, foreign states.
async fn callback_cases(suite: &mut Suite) {
    for target in [
        "/auth/callback",
        "/auth/callback?code=abc",
        "/auth/callback?state=abc",
        "/auth/callback?code=&state=",
        "/auth/callback?error=access_denied",
        "/auth/callback?error=access_denied&state=x&error_description=%3Cscript%3E",
        "/auth/callback?error=server_error%0d%0aSet-Cookie:%20x=1&state=x",
        "/auth/callback?code=%E2%80%AE&state=%F0%9F%98%80",
        "/auth/callback?code=a&state=0123456789abcdef0123456789abcdef",
    ] {
        suite.get(format!("callback {target}"), target, &[], Expect::NoSession);
    }
    let long_state = format!("/auth/callback?code=a&state={}", "s".repeat(4000));
    suite.get("callback huge state", &long_state, &[], Expect::NoSession);

    // With a genuine login attempt in progress: change what comes back.
    type Edit = fn(&str, &str) -> String;
    let edits: [(&str, Edit); 10] = [
        ("code doubled", |code, state| format!("code={code}&code=evil&state={state}")),
        ("code doubled, forged first", |code, state| format!("code=evil&code={code}&state={state}")),
        ("state doubled", |code, state| format!("code={code}&state={state}&state=evil")),
        ("state doubled, forged first", |code, state| format!("code={code}&state=evil&state={state}")),
        ("code with CRLF", |code, state| format!("code={code}%0d%0aX:%201&state={state}")),
        ("state with CRLF", |code, state| format!("code={code}&state={state}%0d%0a")),
        ("state changed", |code, state| format!("code={code}&state={}x", &state[..state.len() - 1])),
        ("code changed", |code, state| format!("code={}x&state={state}", &code[..code.len() - 1])),
        ("error with the real state", |_, state| format!("error=access_denied&state={state}")),
        ("code missing", |_, state| format!("state={state}")),
    ];
    for (what, edit) in edits {
        let mut browser = Browser::default();
        let callback = browser.until_callback(&suite.s, "%2F").await;
        let query = common::browser::query(&callback);
        let target = format!("/auth/callback?{}", edit(&query["code"], &query["state"]));
        let cookie = Browser::cookie_header(&browser.gateway);
        suite.get(format!("callback {what}"), &target, &[("Cookie", &cookie)], Expect::NoSession);
    }
    // A genuine callback answered to a browser that did not start the attempt.
    let mut victim = Browser::default();
    let callback = victim.until_callback(&suite.s, "%2F").await;
    let target = callback.trim_start_matches(&suite.s.gateway.url(""));
    suite.get("callback without its attempt cookie (login CSRF)", target, &[], Expect::NoSession);
    let mut attacker = Browser::default();
    attacker.until_callback(&suite.s, "%2F").await;
    let other = Browser::cookie_header(&attacker.gateway);
    suite.get("callback with another browser's attempt", target, &[("Cookie", &other)], Expect::NoSession);
    let tampered: String = Browser::cookie_header(&victim.gateway).replacen('=', "=x", 1);
    suite.get("callback with a tampered attempt cookie", target, &[("Cookie", &tampered)], Expect::NoSession);
}

/// Where the browser is sent after login and logout: only this origin.
async fn redirect_cases(suite: &mut Suite) {
    let unsafe_targets = [
        "%2F%2Fevil.example",
        "%2F%5Cevil.example",
        "%5C%5Cevil.example",
        "https%3A%2F%2Fevil.example",
        "http%3Aevil.example",
        "https%3A%2Fevil.example",
        "javascript%3Aalert(1)",
        "data%3Atext%2Fhtml%2Cevil",
        "evil.example",
        "%2F%09%2Fevil.example",
        "%2F%0D%0ASet-Cookie%3A%20evil%3D1",
        "%2F%2F%2Fevil.example",
        "%20%2F%2Fevil.example",
        "%2F%5C%2Fevil.example",
        "%40evil.example",
        "%2F%2F%2540evil.example",
        "%2F%E2%80%8B%2Fevil.example",
        "%2F%00evil",
        // Found by the return_to fuzz target: these resolve to the path `//evil.example`.
        "%2F..%2F%2Fevil.example",
        "%2Fa%2F..%2F..%2F%2Fevil.example%3Fx",
        "%2F.%252E%2F%2Fevil.example",
    ];
    for target in unsafe_targets {
        let mut browser = Browser::default();
        let back = browser.log_in(&suite.s, target).await;
        let landed = String::from_utf8_lossy(back.headers()["location"].as_bytes()).into_owned();
        // Either the root, or a path that stays on this origin whatever reads it.
        let same_origin = landed.starts_with('/') && !landed.starts_with("//") && !landed.contains('\\');
        let outcome = if back.status() == 302 && same_origin && !landed.contains(['\r', '\n', '\t']) {
            Ok(())
        } else {
            Err(format!("landed on {landed:?} ({})", back.status()))
        };
        suite.case(format!("return_to {target}"), Vec::new(), Expect::Done(outcome));
    }
    for (target, expected) in [("%2Fapp%3Fx%3D1", "/app?x=1"), ("%2F%252F%252Fevil", "/%2F%2Fevil")] {
        let mut browser = Browser::default();
        let landed = location(&browser.log_in(&suite.s, target).await);
        assert_eq!(landed, expected, "a safe return path is kept: {target}");
    }
    // Logout builds its own target: whatever the request says, it ends on this origin.
    let idp_logout = format!("{}/logout?", suite.s.idp.base_url());
    for query in [
        "logout_uri=https%3A%2F%2Fevil.example",
        "post_logout_redirect_uri=https%3A%2F%2Fevil.example",
        "return_to=%2F%2Fevil.example",
        "redirect_uri=https%3A%2F%2Fevil.example&client_id=evil",
    ] {
        let request = raw(
            "POST",
            &format!("/auth/logout?{query}"),
            &suite.host,
            &[("Sec-Fetch-Site", "same-origin"), ("Content-Length", "0")],
        );
        suite.case(format!("logout {query}"), request, Expect::RedirectTo(idp_logout.clone()));
    }
    for (what, headers) in [
        ("cross-site", vec![("Sec-Fetch-Site", "cross-site"), ("Content-Length", "0")]),
        ("foreign origin", vec![("Origin", "https://evil.example"), ("Content-Length", "0")]),
    ] {
        let mut headers = headers;
        headers.push(("Cookie", &suite.alice));
        let request = raw("POST", "/auth/logout", &suite.host, &headers);
        suite.case(format!("logout {what}"), request, Expect::Status(403));
    }
}

/// Identity headers sent by the client, in every spelling, on public and protected
/// routes; client address headers.
fn header_cases(suite: &mut Suite) {
    let alice = suite.alice.clone();
    for name in IDENTITY_HEADERS {
        let title: String =
            name.split('-').map(|w| format!("{}{}", w[..1].to_uppercase(), &w[1..])).collect::<Vec<_>>().join("-");
        for spelling in [name.to_owned(), title, name.to_uppercase()] {
            suite.get(
                format!("spoofed {spelling} on a public route"),
                "/public/x",
                &[(&spelling, "spoof")],
                Expect::Forwarded { as_alice: false, uri: Some("/public/x") },
            );
            suite.get(
                format!("spoofed {spelling} with a session"),
                "/api/x",
                &[(&spelling, "spoof"), ("Cookie", &alice)],
                Expect::Forwarded { as_alice: true, uri: None },
            );
        }
        suite.get(
            format!("spoofed {name} twice with a session"),
            "/api/x",
            &[(name, "spoof"), (name, "spoof-2"), ("Cookie", &alice)],
            Expect::Forwarded { as_alice: true, uri: None },
        );
        suite.get(format!("spoofed {name} without a session"), "/api/x", &[(name, "spoof")], Expect::SignedOut);
    }
    let underscored: Vec<String> = IDENTITY_HEADERS.iter().map(|n| n.replace('-', "_")).collect();
    for name in &underscored {
        let public = Expect::Forwarded { as_alice: false, uri: None };
        suite.get(format!("spoofed {name} on a public route"), "/public/x", &[(name, "spoof")], public);
        let session = Expect::Forwarded { as_alice: true, uri: None };
        suite.get(format!("spoofed {name} with a session"), "/api/x", &[(name, "spoof"), ("Cookie", &alice)], session);
    }
    // An upstream must not plant or end the gateway's session in the browser.
    for cookie in [
        format!("{SESSION}=planted; Path=/; Secure; HttpOnly"),
        format!("{SESSION}.0=planted; Path=/"),
        format!("{SESSION}-tx-abc=planted"),
    ] {
        let expect = Expect::Forwarded { as_alice: false, uri: None };
        suite.get(format!("upstream sets {cookie}"), "/public/x", &[("X-Echo-Set-Cookie", &cookie)], expect);
    }
    // Cross-site WebSocket hijacking: a handshake riding on the session cookie.
    let handshake = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13")];
    for (what, proof) in [
        ("from another origin", ("Origin", "https://evil.example")),
        ("from a sibling site", ("Sec-Fetch-Site", "same-site")),
        ("cross-site", ("Sec-Fetch-Site", "cross-site")),
    ] {
        let mut headers = handshake.to_vec();
        headers.extend([("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Cookie", &alice), proof]);
        suite.get(format!("WebSocket handshake {what}"), "/api/socket", &headers, Expect::Status(403));
    }
    let all: Vec<(&str, &str)> = IDENTITY_HEADERS.iter().map(|n| (*n, "spoof")).collect();
    suite.get(
        "every identity header spoofed, public",
        "/public/x",
        &all,
        Expect::Forwarded { as_alice: false, uri: None },
    );
    for (name, value) in [
        ("X-Forwarded-For", "10.0.0.1"),
        ("X-Real-IP", "10.0.0.1"),
        ("Forwarded", "for=10.0.0.1"),
        ("X-Forwarded-Host", "evil.example"),
    ] {
        suite.get(format!("client sends {name}"), "/api/x", &[(name, value)], Expect::SignedOut);
    }
    suite.get("Host doubled", "/public/x", &[("Host", "a.example"), ("Host", "b.example")], Expect::Status(400));
    suite.get("absolute-form target for another host", "http://evil.example/api/x", &[], Expect::SignedOut);
    for method in ["CONNECT", "TRACE"] {
        let request = raw(method, "/public/x", &suite.host, &[]);
        suite.case(format!("method {method}"), request, Expect::Status(405));
    }
    for method in ["get", "PROPFIND", "X-EVIL"] {
        let request = raw(method, "/api/x", &suite.host, &[]);
        suite.case(format!("method {method} without a session"), request, Expect::SignedOut);
    }
    suite.get("OPTIONS-style asterisk target", "*", &[], Expect::Status(404));
}

/// Framing tricks aimed at desynchronizing the gateway and the upstream. Each is sent to
/// a protected path without a session, with a second request hidden in the body: the
/// upstream must see neither.
fn smuggling_cases(suite: &mut Suite) {
    let host = suite.host.clone();
    let hidden = format!("GET /api/smuggled HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let shapes: Vec<(&str, String, &'static [u16])> = vec![
        ("CL and TE", format!("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"), &[400, 401]),
        ("TE and CL", format!("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n{hidden}"), &[400, 401]),
        ("two different Content-Lengths", format!("Content-Length: 0\r\nContent-Length: 5\r\n\r\n{hidden}"), &[400]),
        ("Content-Length list", format!("Content-Length: 0, 5\r\n\r\n{hidden}"), &[400]),
        ("Content-Length not a number", format!("Content-Length: 5x\r\n\r\n{hidden}"), &[400]),
        ("negative Content-Length", format!("Content-Length: -1\r\n\r\n{hidden}"), &[400]),
        ("plus-signed Content-Length", format!("Content-Length: +0\r\n\r\n{hidden}"), &[400]),
        ("TE xchunked", format!("Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{hidden}"), &[400, 501]),
        (
            "TE chunked then identity",
            format!("Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{hidden}"),
            &[400, 501],
        ),
        ("TE with space before colon", format!("Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n{hidden}"), &[400]),
        ("TE folded", format!("Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n{hidden}"), &[400]),
        ("TE with vertical tab", format!("Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n{hidden}"), &[400]),
        ("bad chunk size", format!("Transfer-Encoding: chunked\r\n\r\nzz\r\n{hidden}"), &[400, 401]),
        ("header with NUL", format!("X-A: a\0b\r\n\r\n{hidden}"), &[400]),
        ("header name with space", format!("X A: b\r\n\r\n{hidden}"), &[400]),
        ("bare LF line", format!("X-A: b\nX-B: c\r\n\r\n{hidden}"), &[400, 401]),
    ];
    for (what, rest, statuses) in shapes {
        let request =
            format!("POST /api/x HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n{rest}").into_bytes();
        suite.case(format!("smuggling: {what}"), request, Expect::OneOf(statuses));
    }
    let http10_te =
        format!("POST /api/x HTTP/1.0\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}");
    suite.case("smuggling: HTTP/1.0 with TE", http10_te.into_bytes(), Expect::OneOf(&[400, 401]));
    let garbage_line = "GARBAGE\r\n\r\n".to_owned();
    suite.case("malformed request line", garbage_line.into_bytes(), Expect::OneOf(&[400]));
}

/// Paths that could be read one way by the gateway and another by the upstream.
fn path_cases(suite: &mut Suite) {
    for path in [
        "/public/../api/x",
        "/public/%2e%2e/api/x",
        "/public/%2E%2E/api/x",
        "/public/.%2e/api/x",
        "/public/..;/api/x",
        "/public/..%3b/api/x",
        "/public/.;x=1/../api/x",
        "/public/%2e%2e%2fapi/x",
        "/public%2f..%2fapi/x",
        "/public%2F..%2Fapi/x",
        "/public%5c..%5capi/x",
        "/public/%00/x",
        "/public/%0d%0aX-Injected:%201",
        "/public/%zz",
        "/public/%4",
        "/public/%C0%AE%C0%AE/api/x",
        "/public/%FF",
        "/public/.",
        "/public/x/..",
        "/public/./x",
        "/auth/../api/x",
        "/public//../api/x",
        "/public/%2e/x",
        // Double-encoded: `..`, `/` or `\` to an upstream that decodes twice.
        "/public/%252e%252e/api/x",
        "/public/%252E%252E/api/x",
        "/public/.%252e/api/x",
        "/public/..%253b/api/x",
        "/public/%25%32%65%25%32%65/api/x",
        "/public/%25252e%25252e/api/x",
        "/public%252f..%252fapi/x",
        "/public%252F..%252Fapi/x",
        "/public%255c..%255capi/x",
        "/public%255C..%255Capi/x",
        "/public/%250d%250aX-Injected:%201",
    ] {
        suite.get(format!("path {path}"), path, &[], Expect::Status(400));
    }
    for (path, uri) in [
        ("/%70ublic/x", "/public/x"),
        ("///public/x", "/public/x"),
        ("/public//x", "/public/x"),
        ("/public/%7euser", "/public/~user"),
        ("/public/a%3bb", "/public/a%3Bb"),
        ("/public/100%25", "/public/100%25"),
        ("/public/a%2520b", "/public/a%2520b"),
        ("/public/report%252epdf", "/public/report%252epdf"),
    ] {
        suite.get(format!("path {path}"), path, &[], Expect::Forwarded { as_alice: false, uri: Some(uri) });
    }
    for path in ["//api/x", "/PUBLIC/x", "/Public/x", "/publicx", "/public", "/%61pi/x", "//public/../api"] {
        let expect = if path.contains("..") { Expect::Status(400) } else { Expect::SignedOut };
        suite.get(format!("path {path}"), path, &[], expect);
    }
    let alice = suite.alice.clone();
    suite.get(
        "path //api/x with a session reaches /api/x",
        "//api/x",
        &[("Cookie", &alice)],
        Expect::Forwarded { as_alice: true, uri: Some("/api/x") },
    );
    let backslash = raw("GET", "/public/..\\api/x", &suite.host, &[]);
    suite.case("path with a raw backslash", backslash, Expect::OneOf(&[400]));
}

/// Route policies, for sessions and Bearer tokens alike, and pages for navigations.
fn policy_cases(suite: &mut Suite) {
    let alice = suite.alice.clone();
    let bearer = format!("Bearer {}", suite.access_token);
    for (who, credential) in [("session", ("Cookie", alice.as_str())), ("bearer", ("Authorization", bearer.as_str()))] {
        let csrf = ("X-CSRF", "1");
        for (path, rule) in [("/ops/x", "groups"), ("/write/x", "scopes"), ("/staff/x", "email_domain")] {
            suite.get(format!("policy {who} {path}"), path, &[credential], Expect::Forbidden(rule));
            let post = raw("POST", path, &suite.host, &[credential, csrf, ("Content-Length", "0")]);
            suite.case(format!("policy {who} POST {path}"), post, Expect::Forbidden(rule));
        }
        let admitted = Expect::Forwarded { as_alice: true, uri: None };
        suite.get(format!("policy {who} /admins/x"), "/admins/x", &[credential], admitted.clone());
        // Cognito access tokens carry no email: an email rule admits sessions only.
        let team = if who == "session" { admitted } else { Expect::Forbidden("email_domain") };
        suite.get(format!("policy {who} /team/x"), "/team/x", &[credential], team);
        suite.get(
            format!("policy {who} /OPS/x (another route)"),
            "/OPS/x",
            &[credential],
            Expect::Forwarded { as_alice: true, uri: None },
        );
        suite.get(
            format!("policy {who} spoofed groups on /ops/"),
            "/ops/x",
            &[credential, ("X-User-Groups", "ops")],
            Expect::Forbidden("groups"),
        );
    }
    suite.get("policy without a session", "/ops/x", &[], Expect::SignedOut);
    suite.get(
        "policy: forged cookie on /admins/",
        "/admins/x",
        &[("Cookie", &format!("{SESSION}=forged"))],
        Expect::SignedOut,
    );
}

/// Sizes: cookies and heads beyond the limits are a 431, not a hang or a 500.
fn limit_cases(suite: &mut Suite) {
    let many: String = (0..181).map(|i| format!("c{i}=1")).collect::<Vec<_>>().join("; ");
    suite.get("181 cookies", "/public/x", &[("Cookie", &many)], Expect::Status(431));
    let big = format!("big={}", "x".repeat(41_000));
    suite.get("41 kB of cookies", "/public/x", &[("Cookie", &big)], Expect::Status(431));
    let split: Vec<String> = (0..12).map(|i| format!("c{i}={}", "y".repeat(3900))).collect();
    let headers: Vec<(&str, &str)> = split.iter().map(|c| ("Cookie", c.as_str())).collect();
    suite.get("cookies over twelve headers", "/public/x", &headers, Expect::Status(431));
    let huge = "h".repeat(70_000);
    suite.get("70 kB header", "/public/x", &[("X-Big", &huge)], Expect::Status(431));
    let long_path = format!("/public/{}", "p".repeat(70_000));
    suite.get("70 kB path", &long_path, &[], Expect::OneOf(&[414, 431]));
    let names: Vec<String> = (0..120).map(|i| format!("X-H{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    suite.get("120 header fields", "/public/x", &headers, Expect::Status(431));
    let fine: String = (0..100).map(|i| format!("c{i}=1")).collect::<Vec<_>>().join("; ");
    suite.get(
        "100 small cookies are fine",
        "/public/x",
        &[("Cookie", &fine)],
        Expect::Forwarded { as_alice: false, uri: None },
    );
}

/// Slowloris: a client that never finishes its request head is cut off after
/// `server.header_read_timeout`, and meanwhile other clients are served.
#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off() {
    let app = common::upstream::echo().await;
    let gateway = common::ConfigBuilder::new().server("header_read_timeout = \"500ms\"").route("/", app).start().await;
    let mut slow = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: ").await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(common::get(&gateway.url("/"), &[]).await.status, 200, "others are served meanwhile");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(common::BOUND, slow.read_to_end(&mut answer)).await.expect("the gateway hangs up");
    let waited = started.elapsed();
    assert!(read.is_err() || answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"), "{answer:?}");
    assert!(waited >= std::time::Duration::from_millis(400), "cut off only after the timeout: {waited:?}");
    assert!(waited < std::time::Duration::from_secs(5), "cut off soon after the timeout: {waited:?}");
}

/// A cookie bomb (another app on the domain filling the jar) gets a page that says
/// what to do, not an opaque failure.
#[tokio::test]
async fn too_many_cookies_get_a_page_that_says_what_to_do() {
    let app = common::upstream::echo().await;
    let gateway = common::ConfigBuilder::new().server("max_cookie_count = 10").route("/", app).start().await;
    let cookies: String = (0..11).map(|i| format!("c{i}=1")).collect::<Vec<_>>().join("; ");
    let page = common::get(&gateway.url("/"), &[("cookie", &cookies), ("accept", "text/html")]).await;
    assert_eq!(page.status, 431);
    assert!(page.text().contains("Clear the cookies for this site"), "{}", page.text());
    let fewer: String = (0..10).map(|i| format!("c{i}=1")).collect::<Vec<_>>().join("; ");
    assert_eq!(common::get(&gateway.url("/"), &[("cookie", &fewer)]).await.status, 200);
}
