//! The one place where errors become responses: JSON for API callers, a small HTML
//! page for browser navigations. The client gets a generic message and the request id;
//! the detail goes to the log.

use crate::error::{ErrorSource, GatewayError};
use crate::proxy::body::{self, ProxyBody};
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Response};

/// Whether the caller is a browser navigation (wants a page) rather than fetch/XHR or
/// an API client (wants JSON). `Sec-Fetch-Mode: navigate` is authoritative where sent;
/// otherwise an `Accept` that names `text/html` means a page.
pub fn wants_html(headers: &HeaderMap) -> bool {
    // Named once: a `&str` name is parsed and validated again on every lookup.
    static SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
    static X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");
    if let Some(mode) = headers.get(&SEC_FETCH_MODE) {
        return mode.as_bytes() == b"navigate";
    }
    if headers.contains_key(&X_REQUESTED_WITH) {
        return false;
    }
    headers.get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|accept| accept.contains("text/html"))
}

pub fn error_response(err: &GatewayError, html: bool, request_id: &str) -> Response<ProxyBody> {
    match err.source_kind() {
        ErrorSource::Client => tracing::debug!(request_id, error = %err.detail(), "request refused"),
        ErrorSource::Upstream => tracing::warn!(request_id, error = %err.detail(), "upstream error"),
        ErrorSource::Provider => tracing::warn!(request_id, error = %err.detail(), "identity provider error"),
        ErrorSource::Store => tracing::warn!(request_id, error = %err.detail(), "session store error"),
        ErrorSource::Internal => tracing::error!(request_id, error = %err.detail(), "internal error"),
    }
    let status = err.status();
    let (content_type, text) = if html {
        let title = status.canonical_reason().unwrap_or("Error");
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} {title}</title>\n\
             <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}\
             small{{color:#666}}</style></head>\n<body><h1>{title}</h1><p>{message}</p>\
             <p><small>Request id: {request_id}</small></p></body></html>\n",
            code = status.as_u16(),
            message = err.public_message(),
            request_id = escape_html(request_id),
        );
        ("text/html; charset=utf-8", page)
    } else {
        let mut json = serde_json::json!({
            "error": err.code(),
            "message": err.public_message(),
            "request_id": request_id,
        });
        if let Some(rule) = err.rule() {
            json["rule"] = rule.into();
        }
        ("application/json", json.to_string())
    };
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == http::StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from(err.retry_after_secs()));
    }
    response
}

/// Text made safe for HTML content and attribute values.
pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn navigation_wants_html_and_fetch_wants_json() {
        assert!(wants_html(&headers(&[("accept", "text/html,application/xhtml+xml")])));
        assert!(wants_html(&headers(&[("sec-fetch-mode", "navigate"), ("accept", "*/*")])));
        assert!(!wants_html(&headers(&[("sec-fetch-mode", "cors"), ("accept", "text/html")])));
        assert!(!wants_html(&headers(&[("accept", "application/json")])));
        assert!(!wants_html(&headers(&[("x-requested-with", "XMLHttpRequest"), ("accept", "text/html")])));
        assert!(!wants_html(&headers(&[])));
    }
}
