//! Header rules: hop-by-hop headers never cross (both directions), forwarded headers
//! are set by the gateway, request ids are kept or generated and returned.

mod common;

use common::upstream::{self, full, seen};
use common::{ConfigBuilder, get};
use http::Response;

#[tokio::test]
async fn hop_by_hop_request_headers_are_removed() {
    let app = upstream::echo().await;
    let gateway = ConfigBuilder::new().route("/", app).start().await;

    let echo = get(
        &gateway.url("/"),
        &[
            ("connection", "keep-alive, X-Hop-One"),
            ("x-hop-one", "secret-for-this-hop"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic cHJveHk6cGFzcw=="),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("x-end-to-end", "kept"),
        ],
    )
    .await
    .json();

    for name in ["x-hop-one", "keep-alive", "te", "proxy-authorization", "proxy-connection", "upgrade"] {
        assert!(seen(&echo, name).is_empty(), "{name} crossed the proxy: {echo}");
    }
    // The client's Connection header must not reach the upstream; the gateway's own
    // upstream connection may carry its own.
    assert!(!seen(&echo, "connection").iter().any(|v| v.to_ascii_lowercase().contains("x-hop-one")), "{echo}");
    assert_eq!(seen(&echo, "x-end-to-end"), ["kept"]);
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_removed() {
    let app = upstream::serve(|_| async {
        Response::builder()
            .header("connection", "x-upstream-hop")
            .header("x-upstream-hop", "1")
            .header("keep-alive", "timeout=99")
            .header("proxy-authenticate", "Basic")
            .header("x-app", "kept")
            .body(full("ok"))
            .unwrap()
    })
    .await;
    let gateway = ConfigBuilder::new().route("/", app).start().await;

    let reply = get(&gateway.url("/"), &[]).await;
    assert_eq!(reply.status, 200);
    for name in ["x-upstream-hop", "keep-alive", "proxy-authenticate"] {
        assert!(reply.header(name).is_none(), "{name} crossed the proxy: {:?}", reply.headers);
    }
    assert_eq!(reply.header("x-app"), Some("kept"));
}

#[tokio::test]
async fn forwarded_headers_replace_what_the_client_sent() {
    let app = upstream::echo().await;
    let gateway = ConfigBuilder::new().route("/", app).start().await;

    let echo = get(
        &gateway.url("/"),
        &[
            ("host", "app.example.com"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6;proto=https"),
            ("x-real-ip", "6.6.6.6"),
            ("true-client-ip", "6.6.6.6"),
            ("x-forwarded-port", "443"),
        ],
    )
    .await
    .json();
    for name in ["x-real-ip", "true-client-ip", "x-forwarded-port"] {
        assert!(seen(&echo, name).is_empty(), "{name} crossed the proxy: {echo}");
    }

    assert_eq!(seen(&echo, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&echo, "x-forwarded-proto"), ["http"]);
    assert_eq!(seen(&echo, "x-forwarded-host"), ["app.example.com"]);
    assert!(seen(&echo, "forwarded").is_empty());
}

#[tokio::test]
async fn forwarded_headers_are_extended_behind_a_trusted_proxy() {
    let app = upstream::echo().await;
    let gateway = ConfigBuilder::new().server("trust_forwarded_headers = true").route("/", app).start().await;

    let echo = get(
        &gateway.url("/"),
        &[("x-forwarded-for", "203.0.113.9"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "app.example.com")],
    )
    .await
    .json();

    assert_eq!(seen(&echo, "x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
    assert_eq!(seen(&echo, "x-forwarded-proto"), ["https"]);
    assert_eq!(seen(&echo, "x-forwarded-host"), ["app.example.com"]);
}

#[tokio::test]
async fn request_id_is_kept_or_generated_and_returned() {
    let app = upstream::echo().await;
    let gateway = ConfigBuilder::new().route("/", app).start().await;

    let reply = get(&gateway.url("/"), &[("x-request-id", "lb-1234-abcd")]).await;
    assert_eq!(reply.header("x-request-id"), Some("lb-1234-abcd"));
    assert_eq!(seen(&reply.json(), "x-request-id"), ["lb-1234-abcd"]);

    let reply = get(&gateway.url("/"), &[("x-request-id", "<script>alert(1)</script>")]).await;
    let generated = reply.header("x-request-id").unwrap().to_owned();
    assert_eq!(generated.len(), 32, "replaced by a generated id");
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(seen(&reply.json(), "x-request-id"), [generated]);

    let reply = get(&gateway.url("/"), &[]).await;
    assert_eq!(seen(&reply.json(), "x-request-id"), [reply.header("x-request-id").unwrap()]);
}

#[tokio::test]
async fn only_websocket_upgrades_are_forwarded() {
    let app = upstream::echo().await;
    let gateway = ConfigBuilder::new().route("/", app).start().await;

    // h2c would let the client talk HTTP/2 straight to the upstream, past the gateway.
    let echo = get(
        &gateway.url("/"),
        &[("connection", "Upgrade, HTTP2-Settings"), ("upgrade", "h2c"), ("http2-settings", "AAMAAABkAAQAAP__")],
    )
    .await
    .json();
    assert!(seen(&echo, "upgrade").is_empty(), "{echo}");
    assert!(seen(&echo, "http2-settings").is_empty(), "{echo}");
    assert!(!seen(&echo, "connection").iter().any(|v| v.to_ascii_lowercase().contains("upgrade")), "{echo}");

    // A WebSocket upgrade on POST is not one.
    let reply = common::send(
        &common::client(),
        http::Request::post(gateway.url("/"))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert!(seen(&reply.json(), "upgrade").is_empty());
}
