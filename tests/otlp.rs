//! OTLP export: a span per request reaches a collector (a fake one here, answering
//! OTLP/HTTP with JSON), in the request's trace, as the parent the upstream saw, with
//! the route, status and whether the session was refreshed; a caller's unsampled trace
//! is not exported.

mod common;

use common::browser::{Browser, Extra, setup_with};
use common::upstream::{full, seen, serve};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A collector that keeps every span it receives.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    let addr = serve(move |request: http::Request<hyper::body::Incoming>| {
        let kept = kept.clone();
        async move {
            use http_body_util::BodyExt;
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let batch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            for resource in batch["resourceSpans"].as_array().into_iter().flatten() {
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        kept.lock().unwrap().push(span.clone());
                    }
                }
            }
            http::Response::builder().header("content-type", "application/json").body(full("{}")).unwrap()
        }
    })
    .await;
    (format!("http://{addr}/v1/traces"), spans)
}

/// The span of trace `trace_id`, waited for (the SDK sends batches every half second).
fn wait_for(spans: &Mutex<Vec<Value>>, trace_id: &str) -> Option<Value> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if let Some(span) = spans.lock().unwrap().iter().find(|span| span["traceId"] == trace_id) {
            return Some(span.clone());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// An attribute's value, whatever its type, as text.
fn attribute(span: &Value, key: &str) -> String {
    let found = span["attributes"].as_array().unwrap().iter().find(|a| a["key"] == key);
    let value = &found.unwrap_or_else(|| panic!("no {key} in {span}"))["value"];
    let inner = value.as_object().unwrap().values().next().unwrap();
    inner.as_str().map_or_else(|| inner.to_string(), str::to_owned)
}

#[tokio::test]
async fn each_request_is_a_span_in_its_trace_with_route_status_and_refresh() {
    let (endpoint, spans) = collector().await;
    let sections = format!("[otlp]\nendpoint = \"{endpoint}\"\nservice_name = \"portcullis-test\"");
    let s = setup_with(
        "cognito",
        |settings| settings.access_token_ttl = Duration::from_secs(4),
        Extra { sections: &sections, ..Extra::default() },
    )
    .await;
    let mut browser = Browser::default();
    browser.log_in(&s, "%2F").await;

    // Continued: the span is the parent the upstream saw, under the caller's span.
    let sampled = "00-44444444444444444444444444444444-4444444444444444-01";
    let reply = browser.get(&s, &s.gateway.url("/app"), &[("traceparent", sampled)]).await;
    let echo: Value = reply.json().await.unwrap();
    let upstream_parent = seen(&echo, "traceparent")[0].split('-').nth(2).unwrap().to_owned();
    let span = tokio::task::spawn_blocking({
        let spans = spans.clone();
        move || wait_for(&spans, "44444444444444444444444444444444")
    })
    .await
    .unwrap()
    .expect("the request's span was exported");
    assert_eq!(span["spanId"], upstream_parent.as_str());
    assert_eq!(span["parentSpanId"], "4444444444444444");
    assert_eq!(attribute(&span, "http.route"), "/");
    assert_eq!(attribute(&span, "http.response.status_code"), "200");
    assert_eq!(attribute(&span, "portcullis.refreshed"), "false");

    // Started here: sampled, and the upstream is told so.
    let reply = browser.get(&s, &s.gateway.url("/app"), &[]).await;
    let echo: Value = reply.json().await.unwrap();
    let started = seen(&echo, "traceparent")[0].clone();
    assert!(started.ends_with("-01"), "a trace the gateway starts is sampled: {started}");
    let trace = started.split('-').nth(1).unwrap().to_owned();
    let spans_now = spans.clone();
    let span = tokio::task::spawn_blocking(move || wait_for(&spans_now, &trace)).await.unwrap();
    assert!(span.expect("exported")["parentSpanId"].as_str().unwrap_or_default().is_empty(), "a root span");

    // A refresh is marked on the span of the request that made it.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let refreshing = "00-55555555555555555555555555555555-5555555555555555-01";
    browser.get(&s, &s.gateway.url("/app"), &[("traceparent", refreshing)]).await;
    assert!(s.idp.counters().refresh_token >= 1);
    let spans_now = spans.clone();
    let span = tokio::task::spawn_blocking(move || wait_for(&spans_now, "55555555555555555555555555555555"))
        .await
        .unwrap()
        .expect("exported");
    assert_eq!(attribute(&span, "portcullis.refreshed"), "true");

    // The caller did not sample its trace: nothing is exported for it.
    let unsampled = "00-66666666666666666666666666666666-6666666666666666-00";
    let reply = browser.get(&s, &s.gateway.url("/app"), &[("traceparent", unsampled)]).await;
    assert_eq!(reply.status(), 200);
    let spans_now = spans.clone();
    let none = tokio::task::spawn_blocking(move || wait_for(&spans_now, "66666666666666666666666666666666"));
    assert!(none.await.unwrap().is_none(), "an unsampled trace is not exported");
}
