//! Routing by path prefix: longest prefix wins, prefixes match at segment
//! boundaries, optional prefix stripping and upstream base paths, `Host` handling.

mod common;

use common::upstream::{self, seen};
use common::{ConfigBuilder, get};

#[tokio::test]
async fn longest_prefix_wins_and_paths_are_rewritten() {
    let spa = upstream::echo().await;
    let api = upstream::echo().await;
    let admin = upstream::echo().await;
    let gateway = ConfigBuilder::new()
        .route("/", spa)
        .route("/api/", api)
        .route_with("/api/admin", &format!("http://{admin}/internal/"), "strip_prefix = true")
        .start()
        .await;

    let cases = [
        ("/", spa, "/"),
        ("/assets/app.js?v=3", spa, "/assets/app.js?v=3"),
        ("/api/users?page=2", api, "/api/users?page=2"),
        ("/api", spa, "/api"), // `/api/` does not match `/api`
        ("/api/admin", admin, "/internal/"),
        ("/api/admin/keys?x=1", admin, "/internal/keys?x=1"),
        ("/api/administrators", api, "/api/administrators"), // segment boundary
    ];
    for (path, expected_upstream, expected_uri) in cases {
        let reply = get(&gateway.url(path), &[]).await;
        assert_eq!(reply.status, 200, "{path}");
        let echo = reply.json();
        assert_eq!(echo["uri"], expected_uri, "{path} forwarded as");
        assert_eq!(seen(&echo, "host"), [expected_upstream.to_string()], "{path} went to the wrong upstream");
    }
}

#[tokio::test]
async fn unrouted_path_is_404_json_for_apis_and_html_for_pages() {
    let api = upstream::echo().await;
    let gateway = ConfigBuilder::new().route("/api/", api).start().await;

    let reply = get(&gateway.url("/nowhere"), &[("accept", "application/json")]).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "not_found");
    assert_eq!(reply.json()["request_id"], reply.header("x-request-id").unwrap());

    let reply = get(&gateway.url("/nowhere"), &[("accept", "text/html"), ("sec-fetch-mode", "navigate")]).await;
    assert_eq!(reply.status, 404);
    assert!(reply.header("content-type").unwrap().starts_with("text/html"));
    assert!(reply.text().contains("<h1>Not Found</h1>"), "{}", reply.text());
}

#[tokio::test]
async fn host_is_the_upstreams_unless_preserved() {
    let app = upstream::echo().await;
    let gateway = ConfigBuilder::new()
        .route("/", app)
        .route_with("/keep/", &format!("http://{app}"), "preserve_host = true")
        .start()
        .await;

    let echo = get(&gateway.url("/x"), &[("host", "app.example.com")]).await.json();
    assert_eq!(seen(&echo, "host"), [app.to_string()]);
    assert_eq!(seen(&echo, "x-forwarded-host"), ["app.example.com"]);

    let echo = get(&gateway.url("/keep/x"), &[("host", "app.example.com")]).await.json();
    assert_eq!(seen(&echo, "host"), ["app.example.com"]);
}

#[tokio::test]
async fn dot_segments_and_unproxied_methods_are_refused_before_routing() {
    let app = upstream::echo().await;
    let gateway = ConfigBuilder::new()
        .route_with("/docs/", &format!("http://{app}/public/"), "strip_prefix = true")
        .start()
        .await;

    for path in ["/docs/../private/x", "/docs/%2e%2e/private/x", "/docs/.%2E/x", "/docs/./x"] {
        // Sent raw: an HTTP client library would resolve the dot segments first.
        let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nhost: app\r\naccept: application/json\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(common::BOUND, stream.read_to_string(&mut answer)).await.unwrap().unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("bad_path"), "{path}: {answer}");
    }

    let trace = common::send(
        &common::client(),
        http::Request::builder()
            .method("TRACE")
            .uri(gateway.url("/docs/x"))
            .header("accept", "application/json")
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(trace.status, 405);
    assert_eq!(trace.json()["error"], "method_not_allowed");
}
