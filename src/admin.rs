//! The admin listener: liveness and readiness for orchestrators, kept off the
//! user-facing port so that neither can be reached (or spoofed) through the proxy.
//!
//! - `GET /healthz`: 200 while the process serves requests at all.
//! - `GET /readyz`: 200 once the gateway can do its job, 503 before that and while it
//!   drains at shutdown, so a load balancer stops sending new traffic first.
//! - `GET /metrics`: Prometheus / OpenMetrics text (see `metrics.rs`).
//! - `POST /sessions/revoke` with `sub=` or `sid=` (form or query): ends every session
//!   of that user, or of that provider session, as a back-channel logout would
//!   (incident response: a stolen laptop, a compromised account). It answers only
//!   requests bearing `server.admin_token` (`Authorization: Bearer …`, compared in
//!   constant time) or, without a token configured, loopback peers (`kubectl exec`, the
//!   `portcullis sessions revoke` command on the same host). The probes and metrics
//!   are open to whoever reaches the listener, which must stay private all the same.

use crate::auth::Auth;
use crate::auth::denylist::Denied;
use crate::metrics::Metrics;
use crate::secret::Secret;
use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the gateway should receive traffic; shared by the server and the probes.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

pub fn router(
    readiness: Readiness,
    metrics: Arc<Metrics>,
    auth: Option<Arc<Auth>>,
    token: Option<Secret<String>>,
) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness)
        .route("/metrics", get(render_metrics).with_state(metrics))
        .route("/sessions/revoke", post(revoke).with_state(Operations { auth, token }))
}

/// What the operations endpoints need: the sessions, and who may act on them.
#[derive(Clone)]
struct Operations {
    auth: Option<Arc<Auth>>,
    token: Option<Secret<String>>,
}

/// Whether a request from `peer` bearing `authorization` may act: the configured
/// token, else a loopback peer.
pub fn may_operate(peer: IpAddr, authorization: Option<&HeaderValue>, token: Option<&Secret<String>>) -> bool {
    match token {
        Some(token) => authorization
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
            .is_some_and(|given| verify_slices_are_equal(given, token.expose().as_bytes()).is_ok()),
        None => peer.is_loopback() || peer.to_canonical().is_loopback(),
    }
}

/// Who `POST /sessions/revoke` names: `sub` (a user) or `sid` (a provider session),
/// exactly one, from the form body or the query.
pub fn revocation_subject(pairs: &[(String, String)]) -> Result<Denied, &'static str> {
    let named: Vec<Denied> = pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .filter_map(|(name, value)| match name.as_str() {
            "sub" => Some(Denied::User(value.clone())),
            "sid" => Some(Denied::ProviderSession(value.clone())),
            _ => None,
        })
        .collect();
    match named.as_slice() {
        [who] => Ok(who.clone()),
        [] => Err("name the sessions to end: sub=<user> or sid=<provider session>"),
        _ => Err("name one user (sub) or one provider session (sid), not several"),
    }
}

async fn revoke(
    State(operations): State<Operations>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> impl IntoResponse {
    if !may_operate(peer.ip(), headers.get(AUTHORIZATION), operations.token.as_ref()) {
        tracing::warn!(peer = %peer.ip(), "a revocation was refused: no valid server.admin_token (or, without one, not from loopback)");
        let detail = match operations.token {
            Some(_) => "send Authorization: Bearer <server.admin_token>",
            None => "without server.admin_token, only loopback peers may revoke sessions",
        };
        return (StatusCode::FORBIDDEN, axum::Json(json!({ "error": "forbidden", "detail": detail })));
    }
    let Some(auth) = operations.auth else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({ "error": "no_provider_configured" })));
    };
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    pairs.extend(url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned());
    let who = match revocation_subject(&pairs) {
        Ok(who) => who,
        Err(why) => return (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": "invalid_request", "detail": why }))),
    };
    match auth.revoke(&who).await {
        Ok(revoked) => {
            tracing::info!(
                by = who.kind(),
                sessions = ?revoked.sessions_ended,
                every_replica = revoked.on_every_replica,
                "sessions revoked by an operator"
            );
            auth.revocations.count("accepted");
            let answer = json!({
                "revoked": { who.kind(): who.id() },
                "sessions_ended": revoked.sessions_ended,
                "on_every_replica": revoked.on_every_replica,
            });
            (StatusCode::OK, axum::Json(answer))
        }
        Err(_) => {
            auth.revocations.count("unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "error": "session_store_unavailable" })))
        }
    }
}

async fn render_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.render())
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    if readiness.is_ready() {
        (StatusCode::OK, axum::Json(json!({ "status": "ready" })))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "not ready" })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_need_the_token_or_else_a_loopback_peer() {
        let outside: IpAddr = "10.1.2.3".parse().unwrap();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(may_operate(loopback, None, None) && may_operate(mapped, None, None));
        assert!(may_operate("::1".parse().unwrap(), None, None));
        assert!(!may_operate(outside, None, None), "no token: loopback only");

        let token = Secret::new("a-long-random-admin-token-123".to_owned());
        let bearer = |value: &str| HeaderValue::from_str(value).unwrap();
        assert!(may_operate(outside, Some(&bearer("Bearer a-long-random-admin-token-123")), Some(&token)));
        for wrong in ["Bearer a-long-random-admin-token-12", "Bearer ", "a-long-random-admin-token-123", "Basic x"] {
            assert!(!may_operate(outside, Some(&bearer(wrong)), Some(&token)), "{wrong}");
        }
        assert!(!may_operate(loopback, None, Some(&token)), "with a token, loopback needs it too");
    }
}
