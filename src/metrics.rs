//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! Handles for each route are created once at startup, so recording a request is a
//! few atomic operations: no label hashing or map lookups on the request path.
//!
//! - `portcullis_http_requests_total{route, status}`: status as a class (`2xx`…),
//!   route as the configured prefix (`-` when no route matched, `/auth/` for the
//!   gateway's own endpoints, `/auth/verify` for forward-auth checks);
//! - `portcullis_http_request_duration_seconds{route}`: time to response headers;
//! - `portcullis_upstream_errors_total{kind}`: unreachable, timeout, bad gateway…;
//! - `portcullis_open_connections`: client connections being served;
//! - `portcullis_refresh_total{outcome}`: token refreshes asked of the provider, by
//!   outcome: `refreshed`, `ended` (`invalid_grant`), `unavailable` (down, slow, 5xx),
//!   `refused_config` (`invalid_client` and the like: the gateway's configuration);
//! - `portcullis_store_errors_total{op}`: Redis commands that failed or timed out;
//! - `portcullis_backchannel_logouts_total{outcome}`: logout tokens from the provider:
//!   `accepted`, `refused` (invalid: a 400), `replayed`, `unavailable` (the store);
//! - `portcullis_revocations_total{outcome}`: operators' revocations (`POST
//!   /sessions/revoke`): `accepted`, `unavailable`.

use http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

/// Where failed Redis commands are counted (`portcullis_store_errors_total`).
#[derive(Debug, Clone, Default)]
pub struct StoreErrors(Family<OpLabel, Counter>);

impl StoreErrors {
    pub fn count(&self, op: &'static str) {
        self.0.get_or_create(&OpLabel { op }).inc();
    }
}

/// Where events are counted by outcome (a handle on `portcullis_refresh_total`, or
/// another counter by outcome); a default one counts for nobody.
#[derive(Debug, Clone, Default)]
pub struct Outcomes(Family<OutcomeLabel, Counter>);

impl Outcomes {
    pub fn count(&self, outcome: &'static str) {
        self.0.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Histogram upper bounds in seconds: 0.5 ms … ~16 s (a local hop to a slow upstream).
const BOUNDS: [f64; 16] = {
    let mut bounds = [0.0005; 16];
    let mut i = 1;
    while i < bounds.len() {
        bounds[i] = bounds[i - 1] * 2.0;
        i += 1;
    }
    bounds
};

pub struct Metrics {
    registry: Registry,
    routes: Arc<RouteShards>,
    upstream_errors: Family<ErrorLabel, Counter>,
    refresh_outcomes: Outcomes,
    backchannel_logouts: Outcomes,
    revocations: Outcomes,
    store_errors: StoreErrors,
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
        let routes = Arc::new(RouteShards::default());
        let upstream_errors = Family::<ErrorLabel, Counter>::default();
        let open_connections = Gauge::default();
        registry.register_collector(Box::new(routes.clone()));
        registry.register("upstream_errors", "Failed upstream exchanges, by kind", upstream_errors.clone());
        registry.register("open_connections", "Client connections being served", open_connections.clone());
        let refresh_outcomes = Outcomes::default();
        registry.register(
            "refresh",
            "Token refreshes asked of the identity provider, by outcome",
            refresh_outcomes.0.clone(),
        );
        let store_errors = StoreErrors::default();
        registry.register(
            "store_errors",
            "Redis commands that failed or timed out, by operation",
            store_errors.0.clone(),
        );
        let backchannel_logouts = Outcomes::default();
        registry.register(
            "backchannel_logouts",
            "Logout tokens the identity provider sent, by outcome",
            backchannel_logouts.0.clone(),
        );
        let revocations = Outcomes::default();
        registry.register("revocations", "Operators' session revocations, by outcome", revocations.0.clone());
        Self {
            registry,
            routes,
            upstream_errors,
            refresh_outcomes,
            backchannel_logouts,
            revocations,
            store_errors,
            open_connections,
        }
    }

    /// The handles one route records into, for one worker: each call makes a new shard
    /// (see [`RouteShards`]). Take them once, at startup.
    pub fn for_route(&self, route: &str) -> RouteMetrics {
        let shard = Arc::new(Shard::default());
        self.routes.shards.lock().expect("metrics lock").push((route.to_owned(), shard.clone()));
        RouteMetrics { shard }
    }

    /// Counts a failed upstream exchange (rare path: a map lookup is fine here).
    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors.get_or_create(&ErrorLabel { kind }).inc();
    }

    /// The counter of refresh outcomes, for the refresher.
    pub fn backchannel_logouts(&self) -> Outcomes {
        self.backchannel_logouts.clone()
    }

    pub fn revocations(&self) -> Outcomes {
        self.revocations.clone()
    }

    pub fn refresh_outcomes(&self) -> Outcomes {
        self.refresh_outcomes.clone()
    }

    /// The counter of failed Redis commands, for the cluster.
    pub fn store_errors(&self) -> StoreErrors {
        self.store_errors.clone()
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// What one worker records for one route. Only that worker's thread writes it, so the
/// request path takes no lock and shares no cache line with another worker (a shared
/// histogram behind a lock, written by every request of every worker, cost measurable
/// throughput); a scrape sums the shards.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    by_class: [AtomicU64; 5],
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct RouteMetrics {
    shard: Arc<Shard>,
}

impl RouteMetrics {
    pub fn record(&self, status: StatusCode, elapsed: Duration) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        let seconds = elapsed.as_secs_f64();
        let bucket = BOUNDS.iter().position(|&bound| seconds <= bound).unwrap_or(BOUNDS.len());
        let shard = &self.shard;
        shard.by_class[class].fetch_add(1, Relaxed);
        shard.buckets[bucket].fetch_add(1, Relaxed);
        shard.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }
}

/// Every shard of every route, encoded as two families when scraped:
/// `http_requests_total{route, status}` and `http_request_duration_seconds{route}`.
#[derive(Default)]
struct RouteShards {
    shards: Mutex<Vec<(String, Arc<Shard>)>>,
}

impl std::fmt::Debug for RouteShards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteShards")
    }
}

/// One route's shards added up.
struct RouteTotals {
    route: String,
    by_class: [u64; 5],
    buckets: [u64; BOUNDS.len() + 1],
    sum_nanos: u64,
}

impl RouteShards {
    /// Per route, in the order routes were first registered.
    fn totals(&self) -> Vec<RouteTotals> {
        let shards = self.shards.lock().expect("metrics lock");
        let mut totals: Vec<RouteTotals> = Vec::new();
        for (route, shard) in shards.iter() {
            let index = match totals.iter().position(|t| t.route == *route) {
                Some(index) => index,
                None => {
                    let zero = RouteTotals {
                        route: route.clone(),
                        by_class: [0; 5],
                        buckets: [0; BOUNDS.len() + 1],
                        sum_nanos: 0,
                    };
                    totals.push(zero);
                    totals.len() - 1
                }
            };
            let total = &mut totals[index];
            for (sum, count) in total.by_class.iter_mut().zip(&shard.by_class) {
                *sum += count.load(Relaxed);
            }
            for (sum, count) in total.buckets.iter_mut().zip(&shard.buckets) {
                *sum += count.load(Relaxed);
            }
            total.sum_nanos += shard.sum_nanos.load(Relaxed);
        }
        totals
    }
}

impl Collector for RouteShards {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = self.totals();
        let mut requests = encoder.encode_descriptor(
            "http_requests",
            "Requests answered, by route and status class",
            None,
            MetricType::Counter,
        )?;
        for total in &totals {
            for (status, count) in STATUS_CLASSES.into_iter().zip(total.by_class) {
                let labels = RequestLabels { route: total.route.clone(), status };
                ConstCounter::new(count).encode(requests.encode_family(&labels)?)?;
            }
        }
        let mut durations = encoder.encode_descriptor(
            "http_request_duration_seconds",
            "Time from request to response headers, by route",
            None,
            MetricType::Histogram,
        )?;
        for total in &totals {
            let labels = RouteLabel { route: total.route.clone() };
            let buckets: Vec<(f64, u64)> = BOUNDS.into_iter().chain([f64::MAX]).zip(total.buckets).collect();
            let count = total.buckets.iter().sum();
            let sum = Duration::from_nanos(total.sum_nanos).as_secs_f64();
            durations.encode_family(&labels)?.encode_histogram::<RouteLabel>(sum, count, &buckets, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_shards_add_up_per_route() {
        let metrics = Metrics::new();
        let (first_worker, second_worker) = (metrics.for_route("/a/"), metrics.for_route("/a/"));
        let other = metrics.for_route("/b/");
        first_worker.record(StatusCode::OK, Duration::from_micros(400));
        second_worker.record(StatusCode::OK, Duration::from_micros(900));
        second_worker.record(StatusCode::BAD_GATEWAY, Duration::from_secs(60));
        other.record(StatusCode::NOT_FOUND, Duration::from_millis(3));
        let text = metrics.render();
        for line in [
            r#"portcullis_http_requests_total{route="/a/",status="2xx"} 2"#,
            r#"portcullis_http_requests_total{route="/a/",status="5xx"} 1"#,
            r#"portcullis_http_requests_total{route="/b/",status="4xx"} 1"#,
            r#"portcullis_http_request_duration_seconds_count{route="/a/"} 3"#,
            r#"portcullis_http_request_duration_seconds_bucket{le="0.0005",route="/a/"} 1"#,
            r#"portcullis_http_request_duration_seconds_bucket{le="0.001",route="/a/"} 2"#,
            r#"portcullis_http_request_duration_seconds_bucket{le="16.384",route="/a/"} 2"#,
            r#"portcullis_http_request_duration_seconds_bucket{le="+Inf",route="/a/"} 3"#,
            r#"portcullis_http_request_duration_seconds_bucket{le="0.002",route="/b/"} 0"#,
            r#"portcullis_http_request_duration_seconds_bucket{le="0.004",route="/b/"} 1"#,
            "# TYPE portcullis_http_request_duration_seconds histogram",
            "# TYPE portcullis_http_requests counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        let sum = text.lines().find(|l| l.starts_with(r#"portcullis_http_request_duration_seconds_sum{route="/a/"}"#));
        let sum: f64 = sum.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).expect("a sum");
        assert!((sum - 60.0013).abs() < 1e-9, "{sum}");
    }
}
