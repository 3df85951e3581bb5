//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! Handles for each route are created once at startup, so recording a request is a
//! few atomic operations: no label hashing or map lookups on the request path.
//!
//! - `portcullis_http_requests_total{route, status}`: status as a class (`2xx`…),
//!   route as the configured prefix (`-` when no route matched);
//! - `portcullis_http_request_duration_seconds{route}`: time to response headers;
//! - `portcullis_upstream_errors_total{kind}`: unreachable, timeout, bad gateway…;
//! - `portcullis_open_connections`: client connections being served.

use http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The label of requests that matched no route.
pub const NO_ROUTE: &str = "-";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    kind: &'static str,
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// `fn() -> Histogram` is the family's default constructor type, fed our buckets.
    durations: Family<RouteLabel, Histogram>,
    upstream_errors: Family<ErrorLabel, Counter>,
    pub open_connections: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        // 0.5 ms … ~16 s: a local hop to a slow upstream.
        let durations = Family::<RouteLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0005, 2.0, 16))) as fn() -> Histogram,
        );
        let upstream_errors = Family::<ErrorLabel, Counter>::default();
        let open_connections = Gauge::default();
        registry.register("http_requests", "Requests answered, by route and status class", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers, by route",
            durations.clone(),
        );
        registry.register("upstream_errors", "Failed upstream exchanges, by kind", upstream_errors.clone());
        registry.register("open_connections", "Client connections being served", open_connections.clone());
        Self { registry, requests, durations, upstream_errors, open_connections }
    }

    /// The handles one route records into; take them once, at startup.
    pub fn for_route(&self, route: &str) -> RouteMetrics {
        let by_class = STATUS_CLASSES
            .map(|status| self.requests.get_or_create_owned(&RequestLabels { route: route.to_owned(), status }));
        let duration = self.durations.get_or_create_owned(&RouteLabel { route: route.to_owned() });
        RouteMetrics { by_class, duration }
    }

    /// Counts a failed upstream exchange (rare path: a map lookup is fine here).
    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors.get_or_create(&ErrorLabel { kind }).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[derive(Debug, Clone)]
pub struct RouteMetrics {
    by_class: [Counter; 5],
    duration: Histogram,
}

impl RouteMetrics {
    pub fn record(&self, status: StatusCode, elapsed: Duration) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].inc();
        self.duration.observe(elapsed.as_secs_f64());
    }
}
