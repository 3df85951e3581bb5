//! `server.tls.redirect_listen`: a plain-HTTP listener that sends every request to the
//! same host and path over https (308, so the method and body are kept). Browsers that
//! type the bare host land on HTTPS; the `Strict-Transport-Security` header
//! (`server.tls.hsts`) then keeps them there.

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::header::{HOST, LOCATION};
use http::{HeaderValue, StatusCode, uri::Authority};

/// Answers every request with a redirect to `https://host[:https_port]/path?query`.
pub fn router(https_port: u16) -> Router {
    Router::new().fallback(move |request: Request| async move { to_https(&request, https_port) })
}

fn to_https(request: &Request, https_port: u16) -> Response {
    // The host the browser asked for, without its port; anything else is refused.
    let host = request
        .headers()
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<Authority>().ok())
        .filter(|authority| !authority.as_str().contains('@'));
    let Some(host) = host else {
        return (StatusCode::BAD_REQUEST, "a Host header is needed to redirect to https\n").into_response();
    };
    let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    match HeaderValue::try_from(format!("https://{}{port}{target}", host.host())) {
        Ok(location) => (StatusCode::PERMANENT_REDIRECT, [(LOCATION, location)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}
