//! Cross-site request forgery protection for proxied APIs.
//!
//! The session cookie is sent by the browser on its own, so a state-changing request
//! (POST, PUT, PATCH, DELETE) that rides on it must prove it comes from the app's own
//! pages. One of these suffices:
//! 1. `Sec-Fetch-Site: same-origin` (every current browser sends it);
//! 2. without `Sec-Fetch-Site`: an `Origin` equal to the public origin;
//! 3. the custom header (default `X-CSRF: 1`, as Duende BFF asks): another site cannot
//!    add custom headers to a cross-origin request without a CORS preflight.
//!
//! Anything else gets 403 and is not forwarded. `SameSite=Lax` already keeps the cookie
//! off cross-site POSTs; this also covers same-site attackers (a sibling subdomain) and
//! older browsers. Bearer requests are not affected: nothing sends their token ambiently.
//!
//! A WebSocket handshake is a GET, but it opens a channel both ways with the session's
//! authority, and any page may open one to any host (cross-site WebSocket hijacking):
//! it needs the same proof. Browsers always send `Origin` on it.

use http::header::UPGRADE;
use http::{HeaderMap, HeaderName, Method};

/// Whether the request must prove it comes from the app's own pages. A WebSocket
/// handshake is known by `Upgrade`, or by `Sec-WebSocket-Key` where a proxy asking
/// `/auth/verify` does not pass the hop-by-hop `Upgrade` on (nginx does not); pages
/// cannot set that header themselves.
pub fn needs_proof(method: &Method, headers: &HeaderMap) -> bool {
    static SEC_WEBSOCKET_KEY: http::HeaderName = http::HeaderName::from_static("sec-websocket-key");
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
        || headers.contains_key(UPGRADE)
        || headers.contains_key(&SEC_WEBSOCKET_KEY)
}

pub fn allowed(headers: &HeaderMap, public_origin: &str, custom_header: &HeaderName) -> bool {
    if headers.get(custom_header).is_some_and(|v| v.as_bytes() == b"1") {
        return true;
    }
    match headers.get("sec-fetch-site") {
        Some(site) => site.as_bytes() == b"same-origin",
        None => headers.get("origin").is_some_and(|origin| origin.as_bytes() == public_origin.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn same_origin_or_custom_header_only() {
        let (origin, custom) = ("https://app.example.com", HeaderName::from_static("x-csrf"));
        let ok = |pairs| allowed(&with(pairs), origin, &custom);
        assert!(ok(&[("sec-fetch-site", "same-origin")]));
        assert!(ok(&[("origin", "https://app.example.com")]));
        assert!(ok(&[("x-csrf", "1"), ("sec-fetch-site", "cross-site")]));
        assert!(!ok(&[("sec-fetch-site", "same-site")]), "a sibling subdomain is not the app");
        assert!(!ok(&[("sec-fetch-site", "cross-site"), ("origin", "https://app.example.com")]));
        assert!(!ok(&[("origin", "https://evil.example")]));
        assert!(!ok(&[("origin", "null")]));
        assert!(!ok(&[("x-csrf", "0")]));
        assert!(!ok(&[]), "no evidence at all");
        let none = HeaderMap::new();
        assert!(needs_proof(&Method::DELETE, &none) && !needs_proof(&Method::GET, &none));
        assert!(!needs_proof(&Method::OPTIONS, &none));
        let mut websocket = HeaderMap::new();
        websocket.insert(UPGRADE, http::HeaderValue::from_static("websocket"));
        assert!(needs_proof(&Method::GET, &websocket), "a WebSocket handshake");
    }
}
