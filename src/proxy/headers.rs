//! Header rules on the way through the proxy.
//!
//! 1. Hop-by-hop headers describe one connection, not the message, so they never cross
//!    the proxy in either direction (RFC 9110 §7.6.1): `Connection`, every header it
//!    names, and the fixed list below (`Proxy-*` included so proxy credentials never
//!    reach an application).
//! 2. `X-Forwarded-For/-Proto/-Host` tell the upstream who really called. A client can
//!    send its own, so by default they are replaced; only behind a trusted load balancer
//!    (`server.trust_forwarded_headers`) are incoming values kept and extended. The
//!    standard `Forwarded` header follows the same rule.

use http::HeaderMap;
use http::header::{CONNECTION, COOKIE, HeaderName, HeaderValue, UPGRADE};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The hop-by-hop headers that are always removed, named or not in `Connection`.
pub fn is_fixed_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "proxy-connection"
            | "keep-alive"
            | "te"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
    )
}

/// Removes every header whose name `unwanted` picks, and returns their names. One pass
/// over the names a message has (a handful), instead of one hashed lookup for each
/// name it might have; nothing is allocated when none is found.
pub fn remove_where(headers: &mut HeaderMap, unwanted: impl Fn(&HeaderName) -> bool) -> Vec<HeaderName> {
    if !headers.keys().any(&unwanted) {
        return Vec::new();
    }
    let found: Vec<HeaderName> = headers.keys().filter(|name| unwanted(name)).cloned().collect();
    for name in &found {
        headers.remove(name);
    }
    found
}

pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    remove_connection_named(headers);
    remove_where(headers, is_fixed_hop_by_hop);
}

/// Removes the headers a `Connection` header names.
fn remove_connection_named(headers: &mut HeaderMap) {
    // `Connection: keep-alive` (or `close`) is what nearly every message says; those
    // tokens name nothing beyond the fixed list, so only other tokens are looked up.
    let names_others = |value: &HeaderValue| {
        let value = value.as_bytes();
        !(value.eq_ignore_ascii_case(b"keep-alive") || value.eq_ignore_ascii_case(b"close"))
    };
    if headers.get_all(CONNECTION).iter().any(names_others) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
}

/// The protocol a client asks to switch to (`Connection: upgrade` + `Upgrade: x`).
/// Only WebSocket passes: tunnelling any other protocol (h2c above all) would let a
/// client speak to the upstream past the gateway's per-request rules.
pub fn requested_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let websocket = headers.get(UPGRADE).filter(|p| p.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if asks { websocket.cloned() } else { None }
}

/// Puts back the two headers an upgrade needs after hop-by-hop removal.
pub fn set_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

/// Who called, as the upstream should see it.
pub struct ClientFacts<'a> {
    /// The client's IP, as a header value ([`super::peer::Peer::ip_header`]).
    pub ip: &'a HeaderValue,
    /// The `Host` (or HTTP/2 `:authority`) the client addressed.
    pub host: Option<&'a HeaderValue>,
    pub proto: &'static str,
}

/// Headers the gateway adds to a request on its way upstream. They are not inserted
/// into the request's map (a hashed insert each) but kept aside: written straight
/// into the request head (`bodiless.rs`), or appended to the map for hyper's client.
/// The client's own copies of these names are removed first.
pub type Added = Vec<(HeaderName, HeaderValue)>;

/// Rewrites a request's headers for the upstream in one pass over the names it has.
/// Removed: hop-by-hop headers, the client's `Host` and `X-Request-Id` (the caller
/// adds the gateway's), and the client's forwarding headers unless `trust_incoming`.
/// Into `added`: `X-Forwarded-For` (extending a trusted chain), `-Proto`, `-Host`.
pub fn rewrite_request(headers: &mut HeaderMap, client: &ClientFacts<'_>, trust_incoming: bool, added: &mut Added) {
    remove_connection_named(headers);
    let chain = trust_incoming.then(|| joined(headers, &X_FORWARDED_FOR)).flatten();
    let keep_proto = trust_incoming && headers.contains_key(&X_FORWARDED_PROTO);
    let keep_host = trust_incoming && headers.contains_key(&X_FORWARDED_HOST);
    remove_where(headers, |name| {
        is_fixed_hop_by_hop(name)
            || matches!(name.as_str(), "host" | "x-request-id" | "x-forwarded-for")
            || (!keep_proto && name == X_FORWARDED_PROTO)
            || (!keep_host && name == X_FORWARDED_HOST)
            || (!trust_incoming && is_other_client_address_header(name))
    });
    let ip = client.ip.clone();
    let xff = match chain {
        Some(mut chain) => {
            chain.push_str(", ");
            chain.push_str(ip.to_str().unwrap_or_default());
            HeaderValue::from_str(&chain).unwrap_or(ip)
        }
        None => ip,
    };
    added.push((X_FORWARDED_FOR.clone(), xff));
    if !keep_proto {
        added.push((X_FORWARDED_PROTO.clone(), HeaderValue::from_static(client.proto)));
    }
    if !keep_host && let Some(host) = client.host {
        added.push((X_FORWARDED_HOST.clone(), host.clone()));
    }
}

/// `Forwarded` and the other names proxies use for the client's address or the
/// original URL; a client can send them too, so they are removed unless incoming
/// forwarding headers are trusted.
fn is_other_client_address_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "forwarded"
            | "x-real-ip"
            | "true-client-ip"
            | "x-client-ip"
            | "x-cluster-client-ip"
            | "x-forwarded-port"
            | "x-forwarded-prefix"
            | "x-forwarded-server"
    )
}

/// HTTP/2 may split `Cookie` into one field per cookie; an HTTP/1.1 upstream expects
/// one header, joined with "; " (RFC 9113 §8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    if headers.get_all(COOKIE).iter().nth(1).is_none() {
        return;
    }
    let parts: Vec<&[u8]> = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes).collect();
    if let Ok(value) = HeaderValue::from_bytes(&parts.join(&b"; "[..])) {
        headers.insert(COOKIE, value);
    }
}

/// All values of a header joined with ", ", or None when absent or not text.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut out = String::new();
    for value in headers.get_all(name) {
        let text = value.to_str().ok()?.trim();
        if text.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(text);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn removes_fixed_and_connection_named_headers() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-Hop"),
            ("connection", "x-other"),
            ("x-hop", "1"),
            ("x-other", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("x-end-to-end", "stays"),
        ]);
        remove_hop_by_hop(&mut headers);
        let left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-end-to-end"]);
    }

    #[test]
    fn upgrade_needs_both_headers() {
        assert_eq!(
            requested_upgrade(&map(&[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")])),
            Some(HeaderValue::from_static("websocket"))
        );
        assert_eq!(requested_upgrade(&map(&[("connection", "upgrade"), ("upgrade", "h2c")])), None);
        assert_eq!(requested_upgrade(&map(&[("upgrade", "websocket")])), None);
        assert_eq!(requested_upgrade(&map(&[("connection", "upgrade")])), None);
    }

    #[test]
    fn forwarded_headers_replace_spoofed_values_unless_trusted() {
        let host = HeaderValue::from_static("app.example.com");
        let ip = HeaderValue::from_static("10.1.2.3");
        let client = ClientFacts { ip: &ip, host: Some(&host), proto: "http" };
        let spoofed = || {
            map(&[
                ("host", "app.example.com"),
                ("x-request-id", "from-client"),
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "7.7.7.7"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.example"),
                ("forwarded", "for=6.6.6.6"),
                ("x-real-ip", "6.6.6.6"),
                ("true-client-ip", "6.6.6.6"),
                ("keep-alive", "timeout=5"),
                ("x-app", "stays"),
            ])
        };
        let rewritten = |trust| {
            let mut headers = spoofed();
            let mut added = Added::new();
            rewrite_request(&mut headers, &client, trust, &mut added);
            for (name, value) in added {
                headers.append(name, value);
            }
            headers
        };

        let headers = rewritten(false);
        assert_eq!(headers.get_all("x-forwarded-for").iter().collect::<Vec<_>>(), ["10.1.2.3"]);
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers.get_all("x-forwarded-host").iter().collect::<Vec<_>>(), ["app.example.com"]);
        for gone in ["forwarded", "x-real-ip", "true-client-ip", "host", "x-request-id", "keep-alive"] {
            assert!(!headers.contains_key(gone), "{gone}");
        }
        assert_eq!(headers["x-app"], "stays");

        let headers = rewritten(true);
        assert_eq!(headers.get_all("x-forwarded-for").iter().collect::<Vec<_>>(), ["6.6.6.6, 7.7.7.7, 10.1.2.3"]);
        assert_eq!(headers.get_all("x-forwarded-proto").iter().collect::<Vec<_>>(), ["https"]);
        assert_eq!(headers.get_all("x-forwarded-host").iter().collect::<Vec<_>>(), ["evil.example"]);
        assert!(headers.contains_key("forwarded"));
        assert!(headers.contains_key("x-real-ip"));
        assert!(!headers.contains_key("host") && !headers.contains_key("x-request-id"));
    }

    #[test]
    fn http2_cookie_fields_are_joined() {
        let mut headers = map(&[("cookie", "a=1"), ("cookie", "b=2"), ("x", "y")]);
        join_cookies(&mut headers);
        assert_eq!(headers.get_all("cookie").iter().collect::<Vec<_>>(), ["a=1; b=2"]);
    }
}
