//! The authenticated hot path of one request, without the network: read the cookies
//! (limits) → the session from its chunked cookies (join, decrypt, deserialize) → strip
//! client identity headers → check the session (signed out? policy) → set the identity
//! headers and the signed assertion → strip the gateway's cookies. The session is
//! Cognito-sized.
//!
//! Two figures: a session's repeat requests (what a browser sends all day: the opened
//! session comes from the worker's cache, `auth/opened.rs`) and first requests (the
//! value has to be opened: 1024 distinct sessions in turn, more than the cache holds).
//!
//! `cargo bench --bench hot_path` prints the time per request; `bench/callgrind` runs
//! it under valgrind and prints instructions per request, a figure machine noise does
//! not move, checked against `bench/hot_path.baseline`.
//!
//! Env: HOT_PATH_ITERATIONS (default 200000), HOT_PATH_ONLY (`repeat` or `first`: run
//! one of the two loops).

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};
use portcullis::auth::cookies::RequestCookies;
use portcullis::auth::policy;
use portcullis::auth::session::Session;
use portcullis::auth::store::Presented;
use portcullis::auth::{Auth, now_secs};
use portcullis::config::RoutePolicy;
use portcullis::proxy::headers::Added;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

// As in the gateway binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONFIG: &str = r#"
[server]
public_url = "https://app.example.com"
[provider]
kind = "cognito"
region = "eu-west-1"
user_pool_id = "eu-west-1_AbCdEf123"
domain = "https://app.auth.eu-west-1.amazoncognito.com"
client_id = "1example23456789"
[session]
cookie_keys = ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
[[route]]
prefix = "/"
upstream = "http://127.0.0.1:3000"
"#;

fn main() {
    let iterations: u64 = std::env::var("HOT_PATH_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let only = std::env::var("HOT_PATH_ONLY").ok();
    let config = portcullis::Config::from_sources(CONFIG, Path::new("bench.toml"), std::iter::empty()).unwrap();
    let auth = Auth::new(config.auth.as_ref().unwrap(), &portcullis::metrics::Metrics::new()).unwrap();
    let now = now_secs();
    let limits = config.server.limits;
    let policy = RoutePolicy { groups: vec!["users".into()], ..RoutePolicy::default() };
    for (name, sessions) in [("repeat", 1), ("first", 1024)] {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let requests: Vec<HeaderMap> = (0..sessions).map(|i| browser_request(&auth, now, i)).collect();
        let started = Instant::now();
        for i in 0..iterations {
            let mut headers = requests[i as usize % requests.len()].clone();
            // As the gateway does: the cookies read once, before the headers change.
            let cookies = RequestCookies::read(&headers, Some(&limits));
            assert!(!cookies.exceeded());
            let Presented::Session(session) = auth.presented(&cookies, now) else { panic!("the session opens") };
            let upstream_cookies = auth.jar.for_upstream(&cookies);
            auth.identity.strip(&mut headers, "request-id");
            policy::check(&policy, &session.identity()).expect("the policy admits alice");
            let mut added = Added::with_capacity(10);
            auth.identity.add_for_session(&mut headers, &mut added, &session);
            upstream_cookies.apply(&mut headers);
            black_box(added);
            black_box(headers);
        }
        let per_request = started.elapsed() / u32::try_from(iterations).unwrap();
        let cookie_bytes = requests[0][COOKIE].len();
        println!(
            "{name}: {iterations} requests over {sessions} session(s), {per_request:?} per request, \
             Cookie header {cookie_bytes} bytes"
        );
    }
}

/// A browser's request with a Cognito-sized session: access token ~1.1 KB, refresh
/// token ~1.8 KB, ID-token claims kept in the profile.
fn browser_request(auth: &Auth, now: u64, index: usize) -> HeaderMap {
    let filler = |len: usize| "eyJraWQiOiJ".chars().cycle().take(len).collect::<String>();
    let profile = serde_json::json!({ "name": "Alice Example", "email_verified": true, "custom:tenant": "acme" });
    let session = Session {
        sid: format!("3q2-7wAAAAAAAAAAAA{index:04}"),
        sub: "8c1b6a6e-2f5e-4a0e-9a4c-1f1f0e8b7d21".into(),
        username: Some("alice".into()),
        email: Some("alice@example.com".into()),
        email_verified: Some(true),
        groups: vec!["admins".into(), "users".into()],
        scope: "openid email profile".into(),
        profile: profile.as_object().unwrap().clone(),
        access_token: filler(1100),
        refresh_token: Some(filler(1800)),
        id_token: None,
        access_expires_at: now + 3600,
        access_lifetime: 3600,
        expires_at: now + 12 * 3600,
        signed_in_ms: now * 1000,
        idp_sid: None,
        identity_headers: Default::default(),
    };
    let mut set = HeaderMap::new();
    assert!(session.write(&HeaderMap::new(), &mut set, &auth.jar, &auth.sealer, now));
    let cookie = set
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .chain(["_ga=GA1.1.123456789.1700000000".to_owned(), "theme=dark".to_owned()])
        .collect::<Vec<_>>()
        .join("; ");
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "app.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36",
        ),
        ("accept", "application/json"),
        ("accept-language", "en-GB,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-mode", "cors"),
        ("referer", "https://app.example.com/dashboard"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(COOKIE, HeaderValue::from_str(&cookie).unwrap());
    headers
}
