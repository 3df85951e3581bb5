//! `/oauth2/authorize` and the `/login` form behind it, as Cognito's Hosted UI runs them.
//!
//! Order of checks, like Cognito's: an unknown `client_id` gets an error page; a
//! `redirect_uri` that is not exactly one of the client's callback URLs cannot be
//! trusted, so the browser goes to the provider's own error page,
//! `{domain}/error?error=redirect_mismatch&client_id=…` (AWS: "The redirect and
//! authorization endpoint"); every other problem is redirected to the callback as
//! `?error=…&state=…`, `response_type=token` as `unauthorized_client` (every client
//! here allows only the code grant). A valid `cognito` session cookie signs the user in silently
//! unless `prompt=login`; `prompt=none` without one answers `error=login_required`.
//! PKCE: only `S256`.

use super::pages;
use super::store::{CodeGrant, Session};
use super::tokens::{now_secs, uuid};
use super::{ClientSettings, Provider};
use axum::extract::{Form, RawQuery, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "cognito";
const CODE_LIFETIME: Duration = Duration::from_secs(300);

/// A validated authorize request.
struct Authorize<'a> {
    client: &'a ClientSettings,
    redirect_uri: String,
    state: Option<String>,
    scopes: Vec<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    prompt: Option<String>,
}

/// An error page, the provider's error page elsewhere, or the error sent to the callback.
enum Refusal {
    Page(StatusCode, &'static str),
    Elsewhere(String),
    Redirect { redirect_uri: String, state: Option<String>, error: &'static str, description: &'static str },
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Page(status, message) => pages::error(status, message),
            Refusal::Elsewhere(location) => found(&location),
            Refusal::Redirect { redirect_uri, state, error, description } => {
                let mut params = vec![("error", error), ("error_description", description)];
                if let Some(state) = state.as_deref() {
                    params.push(("state", state));
                }
                found(&with_params(&redirect_uri, &params))
            }
        }
    }
}

fn params(query: &Option<String>) -> HashMap<String, String> {
    query.as_deref().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

fn validate<'a>(provider: &'a Provider, p: &HashMap<String, String>) -> Result<Authorize<'a>, Refusal> {
    let client = p
        .get("client_id")
        .and_then(|id| provider.client(id))
        .ok_or(Refusal::Page(StatusCode::BAD_REQUEST, "Invalid client_id"))?;
    let redirect_uri = p
        .get("redirect_uri")
        .filter(|uri| client.callback_urls.iter().any(|allowed| allowed == *uri))
        .ok_or_else(|| {
            let params = [("error", "redirect_mismatch"), ("client_id", client.client_id.as_str())];
            Refusal::Elsewhere(with_params(&format!("{}/error", provider.base_url), &params))
        })?
        .clone();
    let state = p.get("state").cloned();
    let refuse = |error, description| Refusal::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description,
    };
    match p.get("response_type").map(String::as_str) {
        Some("code") => {}
        None => return Err(refuse("invalid_request", "response_type is required")),
        Some("token") => {
            return Err(refuse("unauthorized_client", "the implicit grant is not allowed for this client"));
        }
        Some(_) => return Err(refuse("unsupported_response_type", "only the authorization code flow is enabled")),
    }
    let requested: Vec<String> = match p.get("scope") {
        Some(scope) => scope.split_whitespace().map(String::from).collect(),
        None => client.allowed_scopes.clone(),
    };
    // A scope the pool knows but the app client is not allowed is left out silently,
    // so the tokens may carry fewer scopes than were asked for (the access token's
    // `scope` claim says which; the token response has no `scope`). A scope the pool
    // does not know at all is an error. (Amazon Cognito Developer Guide, "Authorize
    // endpoint" and "Scopes, M2M, and APIs with resource servers"; the silent part as
    // observed, not stated there.)
    if requested.iter().any(|s| !client.allowed_scopes.contains(s) && !COGNITO_SCOPES.contains(&s.as_str())) {
        return Err(refuse("invalid_scope", "a requested scope does not exist in this user pool"));
    }
    let scopes: Vec<String> = requested.into_iter().filter(|s| client.allowed_scopes.contains(s)).collect();
    if scopes.is_empty() {
        return Err(refuse("invalid_scope", "no requested scope is allowed for this client"));
    }
    let code_challenge = p.get("code_challenge").cloned();
    match (code_challenge.as_deref(), p.get("code_challenge_method").map(String::as_str)) {
        (None, None) => {}
        (Some(challenge), Some("S256")) if is_pkce_value(challenge) => {}
        (Some(_), Some("S256")) => return Err(refuse("invalid_request", "malformed code_challenge")),
        (Some(_), _) => return Err(refuse("invalid_request", "code_challenge_method must be S256")),
        (None, Some(_)) => return Err(refuse("invalid_request", "code_challenge is required")),
    }
    Ok(Authorize {
        client,
        redirect_uri,
        state,
        scopes,
        nonce: p.get("nonce").cloned(),
        code_challenge,
        prompt: p.get("prompt").cloned(),
    })
}

/// The scopes every user pool has, whether an app client is allowed them or not.
const COGNITO_SCOPES: [&str; 5] = ["openid", "email", "phone", "profile", "aws.cognito.signin.user.admin"];

/// `/error`: the page an untrusted redirect lands on, naming the error.
pub async fn error_page(RawQuery(query): RawQuery) -> Response {
    let error = params(&query).remove("error").unwrap_or_default();
    pages::error(StatusCode::BAD_REQUEST, &error)
}

/// RFC 7636 §4.2: 43 to 128 characters of [A-Za-z0-9-._~].
fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

pub async fn authorize(
    State(provider): State<Arc<Provider>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let p = params(&query);
    let request = match validate(&provider, &p) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let session = session_from(&provider, &headers);
    match (request.prompt.as_deref(), session) {
        (Some("login"), _) => {}
        (_, Some(session)) => return issue_code(&provider, &request, &session.username, session.auth_time),
        (Some("none"), None) => {
            return Refusal::Redirect {
                redirect_uri: request.redirect_uri,
                state: request.state,
                error: "login_required",
                description: "no sign-in session",
            }
            .into_response();
        }
        _ => {}
    }
    found(&format!("/login?{}", query.unwrap_or_default()))
}

pub async fn login_form(State(provider): State<Arc<Provider>>, RawQuery(query): RawQuery) -> Response {
    if let Err(refusal) = validate(&provider, &params(&query)) {
        return refusal.into_response();
    }
    pages::sign_in(&query.unwrap_or_default(), None, "")
}

#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

pub async fn login_submit(
    State(provider): State<Arc<Provider>>,
    RawQuery(query): RawQuery,
    Form(credentials): Form<Credentials>,
) -> Response {
    let request = match validate(&provider, &params(&query)) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let user = provider.user(&credentials.username).filter(|user| {
        aws_lc_rs::constant_time::verify_slices_are_equal(user.password.as_bytes(), credentials.password.as_bytes())
            .is_ok()
    });
    let Some(user) = user else {
        let query = query.unwrap_or_default();
        return pages::sign_in(&query, Some("Incorrect username or password."), &credentials.username);
    };
    let auth_time = now_secs();
    let session_id = uuid();
    let ttl = provider.settings.session_ttl;
    provider.store.insert_session(
        session_id.clone(),
        Session { username: user.username.clone(), auth_time, expires_at: Instant::now() + ttl },
    );
    let mut response = issue_code(&provider, &request, &user.username, auth_time);
    let cookie = format!("{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}", ttl.as_secs());
    response.headers_mut().append(SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie is ASCII"));
    response
}

fn issue_code(provider: &Provider, request: &Authorize<'_>, username: &str, auth_time: u64) -> Response {
    let code = uuid();
    provider.store.insert_code(
        code.clone(),
        CodeGrant {
            client_id: request.client.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scopes: request.scopes.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            username: username.to_owned(),
            auth_time,
            expires_at: Instant::now() + CODE_LIFETIME,
        },
    );
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = request.state.as_deref() {
        params.push(("state", state));
    }
    found(&with_params(&request.redirect_uri, &params))
}

/// The signed-in user of the `cognito` cookie, if any and still valid.
pub fn session_from(provider: &Provider, headers: &HeaderMap) -> Option<Session> {
    session_id(headers).and_then(|id| provider.store.session(&id))
}

pub fn session_id(headers: &HeaderMap) -> Option<String> {
    crate::auth::cookies::RequestCookies::read(headers, None).get(SESSION_COOKIE).map(str::to_owned)
}

pub use crate::oidc::with_query as with_params;

/// A 302, as Cognito answers (axum's `Redirect::to` is a 303).
pub fn found(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}
