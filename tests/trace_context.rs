//! W3C trace context across the gateway: the trace a request carries (or the one the
//! gateway starts) is the one the upstream sees, the one the provider's token endpoint
//! sees for the code exchange and for a refresh, and the one in the access-log line.

mod common;

use common::browser::{Browser, setup};
use common::upstream::seen;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The log lines of this test process (nextest runs each test in its own), as JSON.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install() -> Self {
        let captured = Self::default();
        let writer = captured.clone();
        tracing_subscriber::fmt().json().flatten_event(true).with_writer(move || writer.clone()).init();
        captured
    }

    /// The trace id of the access-log line of the request `request_id`.
    fn access_trace_id(&self, request_id: &str) -> String {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        let line = text
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .find(|line| line["target"] == "access" && line["request_id"] == request_id)
            .unwrap_or_else(|| panic!("no access line for {request_id}"));
        line["trace_id"].as_str().expect("the access line names the trace").to_owned()
    }
}

/// The trace id of a `traceparent` value, checked to be well formed.
fn trace_id(traceparent: &str) -> &str {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert!(parts[1].len() == 32 && parts[2].len() == 16, "{traceparent}");
    parts[1]
}

#[tokio::test]
async fn the_upstream_the_provider_and_the_access_log_share_the_trace() {
    let logs = Captured::install();
    let s = setup(|settings| settings.access_token_ttl = Duration::from_secs(4), "").await;
    let mut browser = Browser::default();

    // The callback's code exchange at the provider carries the callback's trace.
    let callback = browser.until_callback(&s, "%2F").await;
    let first = "00-11111111111111111111111111111111-1111111111111111-01";
    let signed_in = browser.get(&s, &callback, &[("traceparent", first)]).await;
    assert_eq!(signed_in.status(), 302);
    let request_id = signed_in.headers()["x-request-id"].to_str().unwrap().to_owned();
    let traced = s.idp.traced_token_requests();
    assert_eq!(traced[0].0, "authorization_code");
    assert_eq!(trace_id(&traced[0].1), "11111111111111111111111111111111");
    assert_eq!(logs.access_trace_id(&request_id), "11111111111111111111111111111111");

    // A proxied request: continued, with the gateway as the upstream's parent.
    let second = "00-22222222222222222222222222222222-2222222222222222-01";
    let reply = browser.get(&s, &s.gateway.url("/app"), &[("traceparent", second), ("tracestate", "vendor=1")]).await;
    let request_id = reply.headers()["x-request-id"].to_str().unwrap().to_owned();
    let echo: serde_json::Value = reply.json().await.unwrap();
    let sent = seen(&echo, "traceparent");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(trace_id(&sent[0]), "22222222222222222222222222222222");
    assert_ne!(sent[0].split('-').nth(2), Some("2222222222222222"), "the gateway's own span is the parent");
    assert_eq!(seen(&echo, "tracestate"), ["vendor=1"]);
    assert_eq!(logs.access_trace_id(&request_id), "22222222222222222222222222222222");

    // Without a trace, the gateway starts one: the upstream and the log agree on it.
    let reply = browser.get(&s, &s.gateway.url("/app"), &[]).await;
    let request_id = reply.headers()["x-request-id"].to_str().unwrap().to_owned();
    let echo: serde_json::Value = reply.json().await.unwrap();
    let started = seen(&echo, "traceparent");
    assert_eq!(trace_id(&started[0]), logs.access_trace_id(&request_id));

    // A refresh runs in a task of its own, still under the trace of the request that
    // needed it.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let third = "00-33333333333333333333333333333333-3333333333333333-00";
    let reply = browser.get(&s, &s.gateway.url("/app"), &[("traceparent", third)]).await;
    let request_id = reply.headers()["x-request-id"].to_str().unwrap().to_owned();
    let echo: serde_json::Value = reply.json().await.unwrap();
    let traced = s.idp.traced_token_requests();
    // The last refresh: on a slow machine an earlier request may have refreshed too.
    let refresh = traced.iter().rfind(|(grant, _)| grant == "refresh_token").expect("the refresh carried a trace");
    assert_eq!(trace_id(&refresh.1), "33333333333333333333333333333333");
    assert!(refresh.1.ends_with("-00"), "the caller's flags: {}", refresh.1);
    assert_eq!(trace_id(&seen(&echo, "traceparent")[0]), "33333333333333333333333333333333");
    assert_eq!(logs.access_trace_id(&request_id), "33333333333333333333333333333333");
}
