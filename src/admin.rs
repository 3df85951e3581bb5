//! The admin listener: liveness and readiness for orchestrators, kept off the
//! user-facing port so that neither can be reached (or spoofed) through the proxy.
//!
//! - `GET /healthz`: 200 while the process serves requests at all.
//! - `GET /readyz`: 200 once the gateway can do its job, 503 before that and while it
//!   drains at shutdown, so a load balancer stops sending new traffic first.
//! - `GET /metrics`: Prometheus / OpenMetrics text (see `metrics.rs`).
//! - `POST /sessions/revoke` with `sub=` or `sid=` (form or query): ends every session
//!   of that user, or of that provider session, as a back-channel logout would
//!   (incident response: a stolen laptop, a compromised account). Anyone who reaches
//!   this listener can sign users out: it must stay private (see docs/security.md).

use crate::auth::Auth;
use crate::auth::denylist::Denied;
use crate::metrics::Metrics;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::json;
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

pub fn router(readiness: Readiness, metrics: Arc<Metrics>, auth: Option<Arc<Auth>>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness)
        .route("/metrics", get(render_metrics).with_state(metrics))
        .route("/sessions/revoke", post(revoke).with_state(auth))
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

async fn revoke(State(auth): State<Option<Arc<Auth>>>, uri: Uri, body: Bytes) -> impl IntoResponse {
    let Some(auth) = auth else {
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
