//! `/metrics` on the admin listener counts requests by route and status class, times
//! them, and counts upstream failures by kind.

mod common;

use common::{ConfigBuilder, closed_port, get};

fn value_of(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no series {series} in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn requests_and_upstream_errors_are_counted() {
    let app = common::upstream::echo().await;
    let gateway = ConfigBuilder::new().route("/app/", app).route("/down/", closed_port()).start().await;

    for _ in 0..3 {
        assert_eq!(get(&gateway.url("/app/x"), &[]).await.status, 200);
    }
    assert_eq!(get(&gateway.url("/down/x"), &[]).await.status, 502);
    assert_eq!(get(&gateway.url("/nowhere"), &[]).await.status, 404);

    let reply = get(&gateway.admin_url("/metrics"), &[]).await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    let metrics = reply.text();
    assert_eq!(value_of(&metrics, r#"portcullis_http_requests_total{route="/app/",status="2xx"}"#), 3.0);
    assert_eq!(value_of(&metrics, r#"portcullis_http_requests_total{route="/down/",status="5xx"}"#), 1.0);
    assert_eq!(value_of(&metrics, r#"portcullis_http_requests_total{route="-",status="4xx"}"#), 1.0);
    assert_eq!(value_of(&metrics, r#"portcullis_http_request_duration_seconds_count{route="/app/"}"#), 3.0);
    assert_eq!(value_of(&metrics, r#"portcullis_upstream_errors_total{kind="upstream_unreachable"}"#), 1.0);
    // A connection held open is counted.
    let _held = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let deadline = std::time::Instant::now() + common::BOUND;
    loop {
        let metrics = get(&gateway.admin_url("/metrics"), &[]).await.text();
        if value_of(&metrics, "portcullis_open_connections") >= 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "an open connection is never counted");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
