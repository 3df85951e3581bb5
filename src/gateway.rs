//! The gateway's request handler: every request on the main listener enters here.
//!
//! It gives the request an id, finds its route, hands it to the proxy, turns any error
//! into a response (`respond.rs`), and writes one access-log line. The log line names
//! the path without its query string: queries can carry codes and tokens.

use crate::config::Config;
use crate::error::{ErrorSource, GatewayError};
use crate::metrics::{Metrics, NO_ROUTE, RouteMetrics};
use crate::proxy::Proxy;
use crate::proxy::body::ProxyBody;
use crate::request_id::{self, X_REQUEST_ID};
use crate::respond;
use http::{Request, Response};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

pub struct Gateway {
    proxy: Proxy,
    metrics: Arc<Metrics>,
    unrouted: RouteMetrics,
    access_log: bool,
}

impl Gateway {
    pub fn new(config: &Config, metrics: Arc<Metrics>, hard_stop: watch::Receiver<bool>) -> Self {
        Self {
            proxy: Proxy::new(config, &metrics, hard_stop),
            unrouted: metrics.for_route(NO_ROUTE),
            metrics,
            access_log: config.log.access_log,
        }
    }

    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let started = Instant::now();
        let request_id = request_id::for_request(request.headers());
        let wants_html = respond::wants_html(request.headers());
        let logged = self.access_log.then(|| (request.method().clone(), request.uri().path().to_owned()));

        let route = self.proxy.route(request.uri().path());
        let result = match route {
            Some(route) => self.proxy.forward(route, request, peer, &request_id).await,
            None => Err(GatewayError::NoRoute),
        };
        let id = request_id.to_str().unwrap_or_default();
        let mut response = result.unwrap_or_else(|err| {
            if err.source_kind() == ErrorSource::Upstream {
                self.metrics.upstream_error(err.code());
            }
            respond::error_response(&err, wants_html, id)
        });
        response.headers_mut().insert(X_REQUEST_ID.clone(), request_id.clone());
        let elapsed = started.elapsed();
        route.map_or(&self.unrouted, |r| &r.metrics).record(response.status(), elapsed);

        if let Some((method, path)) = logged {
            tracing::info!(
                target: "access",
                method = %method,
                path,
                route = route.map_or(NO_ROUTE, |r| r.prefix.as_str()),
                status = response.status().as_u16(),
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                request_id = id,
                client = %peer.ip(),
                "request"
            );
        }
        Ok(response)
    }
}
