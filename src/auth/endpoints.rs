//! The gateway's own endpoints under `/auth/`.
//!
//! - `GET /auth/login?return_to=/path`: starts a login (PKCE S256, state, nonce).
//! - `GET /auth/callback`: finishes it: state against the attempt's cookie, code
//!   exchange, ID-token verification, session cookies, back to `return_to`.
//! - `GET /auth/userinfo`: who is signed in, for the SPA; never a token.
//! - `GET /auth/jwks.json`: the public keys of the identity assertion upstreams receive.
//! - `GET /auth/logout` shows a confirmation form; `POST /auth/logout` (same origin
//!   only, so a cross-site page cannot sign a user out) ends the session, revokes the
//!   refresh token and ends the provider's own session too.
//! - `POST /auth/backchannel-logout`: the provider ends sessions (`backchannel.rs`).

use super::freshness::{self, Freshness};
use super::return_to;
use super::session::Session;
use super::transaction::{self, Transaction};
use super::{Auth, now_secs};
use crate::config::ProviderKind;
use crate::error::GatewayError;
use crate::oidc::verify::verify_id_token;
use crate::oidc::with_query;
use crate::proxy::body::{self, ProxyBody};
use crate::respond::{error_response, escape_html as escape, wants_html};
use base64::Engine;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RequestTokenError, Scope, TokenResponse,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub async fn handle(auth: &Arc<Auth>, request: Request<Incoming>, request_id: &str) -> Response<ProxyBody> {
    if request.method() == Method::POST && request.uri().path() == "/auth/backchannel-logout" {
        return super::backchannel::logout(auth, request, request_id).await;
    }
    let path = request.uri().path();
    let pairs: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let query: HashMap<String, String> = pairs.iter().cloned().collect();
    let headers = request.headers();
    if query.len() != pairs.len() {
        // `code=a&code=b`: which one counts differs between readers; neither does here.
        return login_failed(StatusCode::BAD_REQUEST, "The request repeats a parameter.");
    }
    match (request.method(), path) {
        (&Method::GET, "/auth/login" | "/auth/callback") if auth.provider().is_none() => not_ready(headers),
        (&Method::GET, "/auth/login") => login(auth, headers, &query),
        (&Method::GET, "/auth/callback") => callback(auth, headers, &query, request_id).await,
        (&Method::GET, "/auth/userinfo") => userinfo(auth, headers, request_id).await,
        (&Method::GET, "/auth/jwks.json") => json_response(StatusCode::OK, &auth.identity.assertions.jwks()),
        (&Method::GET, "/auth/logout") => page(StatusCode::OK, "Sign out", CONFIRM_LOGOUT),
        (&Method::POST, "/auth/logout") => logout(auth, headers, request_id).await,
        _ => json_response(StatusCode::NOT_FOUND, &json!({ "error": "not_found" })),
    }
}

/// What a protected route answers without a session: a redirect to log in for a
/// browser navigation (when `redirect_navigations`), a 401 with the login URL for
/// fetch/XHR and API clients.
pub fn unauthenticated(
    headers: &HeaderMap,
    method: &Method,
    path_and_query: &str,
    redirect_navigations: bool,
) -> Response<ProxyBody> {
    let login = format!(
        "/auth/login?return_to={}",
        url::form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect::<String>()
    );
    if redirect_navigations && wants_html(headers) && (method == Method::GET || method == Method::HEAD) {
        return redirect(StatusCode::FOUND, &login, HeaderMap::new());
    }
    json_response(StatusCode::UNAUTHORIZED, &json!({ "error": "unauthenticated", "login_url": login }))
}

fn login(auth: &Auth, headers: &HeaderMap, query: &HashMap<String, String>) -> Response<ProxyBody> {
    let Some(provider) = auth.provider() else { return not_ready(headers) };
    // An absolute URL on the public origin counts as its path: ingress-nginx's
    // `auth-signin` sends `$scheme://$host$request_uri`.
    let requested = query
        .get("return_to")
        .map(|to| to.strip_prefix(auth.public_origin()).filter(|path| path.starts_with('/')).unwrap_or(to));
    let return_to = return_to::or_root(requested);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let scopes = auth.config.provider.scopes.iter().map(|s| Scope::new(s.clone()));
    let (url, state) = provider
        .oauth
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes)
        .set_pkce_challenge(challenge)
        .add_extra_param("nonce", &nonce)
        .url();
    let attempt = Transaction {
        state: state.secret().clone(),
        nonce,
        verifier: verifier.secret().clone(),
        return_to,
        expires_at: now_secs() + transaction::LIFETIME_SECS,
    };
    let mut cookies = HeaderMap::new();
    attempt.write(headers, &mut cookies, &auth.jar, &auth.sealer);
    redirect(StatusCode::FOUND, url.as_str(), cookies)
}

async fn callback(
    auth: &Auth,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    request_id: &str,
) -> Response<ProxyBody> {
    let Some(provider) = auth.provider() else { return not_ready(headers) };
    let mut cookies = HeaderMap::new();
    if let Some(error) = query.get("error") {
        Transaction::clear_all(headers, &mut cookies, &auth.jar);
        tracing::info!(request_id, error, "the identity provider returned an error to the callback");
        return with_cookies(
            login_failed(StatusCode::BAD_REQUEST, &format!("The identity provider reported: {error}.")),
            cookies,
        );
    }
    let now = now_secs();
    let attempt = query
        .get("state")
        .and_then(|state| Transaction::take(headers, &mut cookies, &auth.jar, &auth.sealer, state, now));
    let (Some(attempt), Some(code)) = (attempt, query.get("code")) else {
        return with_cookies(
            login_failed(
                StatusCode::BAD_REQUEST,
                "This sign-in attempt is unknown or has expired (it may have been started in another browser).",
            ),
            cookies,
        );
    };
    let exchanged = provider
        .oauth
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(PkceCodeVerifier::new(attempt.verifier.clone()))
        .request_async(&|request| super::send(auth.http().clone(), request))
        .await;
    let tokens = match exchanged {
        Ok(tokens) => tokens,
        Err(RequestTokenError::ServerResponse(answer)) => {
            tracing::warn!(request_id, error = %answer.error(), "the token endpoint refused the code");
            return with_cookies(
                login_failed(StatusCode::BAD_REQUEST, "The sign-in code was refused (used already, or expired)."),
                cookies,
            );
        }
        Err(err) => {
            tracing::warn!(request_id, error = %err, "code exchange failed");
            return with_cookies(
                login_failed(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The identity provider could not be reached. Please try again.",
                ),
                cookies,
            );
        }
    };
    let Some(id_token) = tokens.extra_fields().id_token.clone() else {
        return with_cookies(login_failed(StatusCode::BAD_GATEWAY, "The identity provider sent no ID token."), cookies);
    };
    let claims = match verify_id_token(&provider.jwks, &id_token, &provider.expect, Some(&attempt.nonce)).await {
        Ok(claims) => with_userinfo(auth, claims, tokens.access_token().secret(), request_id).await,
        Err(err) => {
            tracing::warn!(request_id, error = %err, "ID token rejected at the callback");
            return with_cookies(login_failed(StatusCode::BAD_REQUEST, "The sign-in could not be verified."), cookies);
        }
    };
    let access_lifetime = tokens.expires_in().map_or(3600, |d| d.as_secs());
    let mut session = Session {
        sid: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
        sub: claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_owned(),
        username: None,
        email: None,
        email_verified: None,
        groups: vec![],
        scope: super::scopes::granted(tokens.scopes(), tokens.access_token().secret())
            .unwrap_or_else(|| auth.config.provider.scopes.join(" ")),
        profile: Default::default(),
        access_token: tokens.access_token().secret().clone(),
        refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
        id_token: (auth.config.provider.kind == ProviderKind::Oidc).then_some(id_token),
        access_expires_at: now + access_lifetime,
        access_lifetime,
        expires_at: now + auth.config.session.lifetime.as_secs(),
        signed_in_ms: crate::oidc::now_millis(),
        idp_sid: claims.get("sid").and_then(Value::as_str).map(str::to_owned),
        identity_headers: Default::default(),
    };
    update_from_claims(auth, &mut session, &claims);
    match auth.store.create(&session, headers, &mut cookies, &auth.sealing(), now).await {
        Ok(true) => {}
        Ok(false) => {
            return with_cookies(
                login_failed(StatusCode::INTERNAL_SERVER_ERROR, "The session is too large to keep in cookies."),
                cookies,
            );
        }
        Err(_) => {
            return with_cookies(
                login_failed(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The session could not be saved (the session store is unavailable). Please try again.",
                ),
                cookies,
            );
        }
    }
    tracing::info!(request_id, sub = %session.sub, "signed in");
    redirect(StatusCode::FOUND, &attempt.return_to, cookies)
}

/// Generic OIDC providers may keep the scope claims (email, profile) out of the ID
/// token and serve them from userinfo (OIDC Core §5.4): fetch them there and add what
/// the ID token lacks, only when userinfo speaks of the same `sub`. Cognito's ID token
/// carries everything, so it is not asked. A failure keeps the ID token's claims.
async fn with_userinfo(
    auth: &Auth,
    mut claims: serde_json::Map<String, Value>,
    access_token: &str,
    request_id: &str,
) -> serde_json::Map<String, Value> {
    let endpoint = match (auth.config.provider.kind, auth.provider().and_then(|p| p.metadata.userinfo_endpoint.clone()))
    {
        (ProviderKind::Oidc, Some(endpoint)) => endpoint,
        _ => return claims,
    };
    let traced = crate::trace_context::current_headers();
    let answer = auth.http().get(&endpoint).headers(traced).bearer_auth(access_token).send().await;
    let info: Option<serde_json::Map<String, Value>> = match answer {
        Ok(response) if response.status().is_success() => response.json().await.ok(),
        Ok(response) => {
            tracing::warn!(
                request_id,
                status = response.status().as_u16(),
                "userinfo refused; using the ID token's claims"
            );
            None
        }
        Err(err) => {
            tracing::warn!(request_id, error = %err, "userinfo failed; using the ID token's claims");
            None
        }
    };
    if let Some(info) = info.filter(|info| info.get("sub") == claims.get("sub")) {
        for (name, value) in info {
            claims.entry(name).or_insert(value);
        }
    }
    claims
}

/// The user's name, email, groups and profile from verified ID-token claims (at login,
/// and again when a refresh brings a new ID token).
pub fn update_from_claims(auth: &Auth, session: &mut Session, claims: &serde_json::Map<String, Value>) {
    // Only what the claims carry is replaced: a refreshed ID token without the scope
    // claims (kept in userinfo by some providers) must not erase them.
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let groups_claim = auth.config.provider.groups_claim.as_str();
    if let Some(groups) = super::claims::groups(claims, groups_claim) {
        session.groups = groups;
    }
    if let Some(username) = text("cognito:username").or_else(|| text("preferred_username")).or_else(|| text("username"))
    {
        session.username = Some(username);
    }
    if let Some(email) = text("email") {
        session.email = Some(email);
        session.email_verified = super::claims::email_verified(claims);
    }
    let identity_claims = ["sub", "cognito:username", "preferred_username", "email", groups_claim];
    session.profile.extend(Session::profile_from(claims, &identity_claims));
}

/// Who is signed in, after the same freshness step as a proxied request: the expiry
/// times it reports are those of tokens that can still be used.
async fn userinfo(auth: &Arc<Auth>, headers: &HeaderMap, request_id: &str) -> Response<ProxyBody> {
    let mut cookies = HeaderMap::new();
    let now = now_secs();
    let fresh = match auth.session(headers, now).await {
        Ok(Some(session)) => freshness::fresh(auth, session, headers, &mut cookies, now, request_id).await,
        Ok(None) => Freshness::Missing,
        Err(_) => Freshness::StoreDown,
    };
    let response = match fresh {
        Freshness::Valid(session) => json_response(
            StatusCode::OK,
            &json!({
                "sub": session.sub,
                "username": session.username,
                "email": session.email,
                "groups": session.groups,
                "claims": session.profile,
                "session_expires_at": session.expires_at,
                "access_token_expires_at": session.access_expires_at,
                "logout_url": "/auth/logout",
            }),
        ),
        Freshness::ProviderDown { retry_after } => {
            error_response(&GatewayError::ProviderUnavailable(retry_after), wants_html(headers), request_id)
        }
        Freshness::StoreDown => error_response(&GatewayError::StoreUnavailable, wants_html(headers), request_id),
        missing @ (Freshness::Missing | Freshness::Ended) => {
            if matches!(missing, Freshness::Missing) {
                // Cookies of a session that ended (signed out elsewhere, revoked) go
                // too; an ended refresh has cleared them already.
                Session::clear(headers, &mut cookies, &auth.jar);
            }
            json_response(StatusCode::UNAUTHORIZED, &json!({ "error": "unauthenticated", "login_url": "/auth/login" }))
        }
    };
    with_cookies(response, cookies)
}

async fn logout(auth: &Auth, headers: &HeaderMap, request_id: &str) -> Response<ProxyBody> {
    if !same_origin(auth, headers) {
        return json_response(StatusCode::FORBIDDEN, &json!({ "error": "cross_site_logout" }));
    }
    let now = now_secs();
    // Ended in the store before anything is cleared: a sign-out that cannot reach
    // the store (Redis down) is refused, not half done with a live session left behind.
    let ended = match auth.session(headers, now).await {
        Ok(Some(session)) => auth.store.end(&session, now).await.map(|()| Some(session)),
        Ok(None) => Ok(None),
        Err(unavailable) => Err(unavailable),
    };
    let session = match ended {
        Ok(session) => session,
        Err(_) => return error_response(&GatewayError::StoreUnavailable, wants_html(headers), request_id),
    };
    let mut cookies = HeaderMap::new();
    Session::clear(headers, &mut cookies, &auth.jar);
    Transaction::clear_all(headers, &mut cookies, &auth.jar);
    let provider = auth.provider();
    if let (Some(session), Some(provider)) = (&session, provider) {
        if let (Some(refresh), Some(endpoint)) = (&session.refresh_token, &provider.metadata.revocation_endpoint) {
            revoke(auth, endpoint, refresh, request_id).await;
        }
        tracing::info!(request_id, sub = %session.sub, "signed out");
    }
    let signed_out = format!("{}/", auth.public_origin());
    let target = match (auth.config.provider.kind, provider.and_then(|p| p.metadata.end_session_endpoint.clone())) {
        // Cognito's /logout is not OIDC RP-initiated logout: client_id + logout_uri.
        (ProviderKind::Cognito, Some(endpoint)) => {
            with_query(&endpoint, &[("client_id", &auth.config.provider.client_id), ("logout_uri", &signed_out)])
        }
        (ProviderKind::Oidc, Some(endpoint)) => {
            let hint = session.as_ref().and_then(|s| s.id_token.clone()).unwrap_or_default();
            let mut params = vec![
                ("post_logout_redirect_uri", signed_out.as_str()),
                ("client_id", auth.config.provider.client_id.as_str()),
            ];
            if !hint.is_empty() {
                params.push(("id_token_hint", hint.as_str()));
            }
            with_query(&endpoint, &params)
        }
        _ => signed_out,
    };
    redirect(StatusCode::SEE_OTHER, &target, cookies)
}

/// Best effort: a failed revocation is logged; the session is over either way.
async fn revoke(auth: &Auth, endpoint: &str, refresh_token: &str, request_id: &str) {
    let provider = &auth.config.provider;
    let mut form = vec![("token", refresh_token), ("token_type_hint", "refresh_token")];
    let mut request = auth.http().post(endpoint);
    match &provider.client_secret {
        Some(secret) => {
            let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
            request = request.basic_auth(encode(&provider.client_id), Some(encode(secret.expose())));
        }
        None => form.push(("client_id", &provider.client_id)),
    }
    match request.headers(crate::trace_context::current_headers()).form(&form).send().await {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => {
            tracing::warn!(request_id, status = response.status().as_u16(), "refresh token revocation refused")
        }
        Err(err) => tracing::warn!(request_id, error = %err, "refresh token revocation failed"),
    }
}

/// A state-changing request from this origin: `Sec-Fetch-Site` where the browser sends
/// it, otherwise a matching `Origin`.
fn same_origin(auth: &Auth, headers: &HeaderMap) -> bool {
    match headers.get("sec-fetch-site").map(HeaderValue::as_bytes) {
        Some(b"same-origin") | Some(b"none") => true,
        Some(_) => false,
        None => headers.get("origin").is_none_or(|origin| origin.as_bytes() == auth.public_origin().as_bytes()),
    }
}

fn redirect(status: StatusCode, location: &str, cookies: HeaderMap) -> Response<ProxyBody> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = status;
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, location);
    }
    with_cookies(response, cookies)
}

fn with_cookies(mut response: Response<ProxyBody>, cookies: HeaderMap) -> Response<ProxyBody> {
    response.headers_mut().extend(cookies);
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) fn json_response(status: StatusCode, value: &Value) -> Response<ProxyBody> {
    let mut response = Response::new(body::full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn not_ready(headers: &HeaderMap) -> Response<ProxyBody> {
    let mut response = if wants_html(headers) {
        login_failed(
            StatusCode::SERVICE_UNAVAILABLE,
            "Signing in is not available yet: the identity provider has not been reached. Please try again shortly.",
        )
    } else {
        json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({ "error": "provider_not_ready" }))
    };
    response.headers_mut().insert("retry-after", HeaderValue::from_static("2"));
    response
}

fn login_failed(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = format!("<h1>Sign-in failed</h1><p>{}</p><p><a href=\"/auth/login\">Try again</a></p>", escape(message));
    page(status, "Sign-in failed", &body)
}

fn page(status: StatusCode, title: &str, body: &str) -> Response<ProxyBody> {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}}</style></head>\
         <body>{body}</body></html>\n"
    );
    let mut response = Response::new(body::full(html));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

const CONFIRM_LOGOUT: &str = "<h1>Sign out?</h1><form method=\"post\" action=\"/auth/logout\">\
<button type=\"submit\" id=\"confirm-logout\">Sign out</button></form>";
