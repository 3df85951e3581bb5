//! The reverse proxy: forwards a routed request upstream and streams the answer back.
//!
//! Stages, in order: rewrite the request (hop-by-hop out, forwarded headers and request
//! id in, upstream URI and `Host`) → send it with a response-header deadline → switch
//! to a tunnel on `101 Switching Protocols` → strip hop-by-hop headers from the answer.
//! Bodies stream in both directions under an idle timeout and are never buffered.

pub mod body;
mod client;
pub mod headers;
pub mod routes;
mod upgrade;

use crate::config::{Config, UpstreamConfig};
use crate::error::{BoxError, GatewayError};
use crate::metrics::Metrics;
use body::{IdleTimeout, IdleTimeoutError, ProxyBody};
use headers::ClientFacts;
use http::header::HOST;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use routes::{Route, RouteTable};
use std::net::SocketAddr;
use tokio::sync::watch;

pub static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

pub struct Proxy {
    routes: RouteTable,
    client: client::UpstreamClient,
    timeouts: UpstreamConfig,
    trust_forwarded_headers: bool,
    /// Set when the drain deadline passes; upgraded tunnels end then.
    hard_stop: watch::Receiver<bool>,
}

impl Proxy {
    pub fn new(config: &Config, metrics: &Metrics, hard_stop: watch::Receiver<bool>) -> Self {
        Self {
            routes: RouteTable::new(&config.routes, metrics),
            client: client::build(&config.upstream),
            timeouts: config.upstream.clone(),
            trust_forwarded_headers: config.server.trust_forwarded_headers,
            hard_stop,
        }
    }

    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.find(path)
    }

    pub async fn forward(
        &self,
        route: &Route,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        request_id: &HeaderValue,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let upgrade = headers::requested_upgrade(request.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));

        let (mut parts, body) = request.into_parts();
        let client_host = parts
            .headers
            .get(HOST)
            .cloned()
            .or_else(|| parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
        headers::remove_hop_by_hop(&mut parts.headers);
        if let Some(protocol) = upgrade {
            headers::set_upgrade(&mut parts.headers, protocol);
        }
        let client = ClientFacts { ip: peer.ip(), host: client_host.as_ref(), proto: "http" };
        headers::set_forwarded(&mut parts.headers, &client, self.trust_forwarded_headers);
        parts.headers.insert(X_REQUEST_ID.clone(), request_id.clone());
        let host = match (route.preserve_host, client_host) {
            (true, Some(host)) => host,
            _ => route.upstream_host.clone(),
        };
        parts.headers.insert(HOST, host);
        parts.uri =
            route.upstream_uri(&parts.uri).map_err(|_| GatewayError::Internal("could not build the upstream URI"))?;
        parts.version = Version::HTTP_11;

        let upstream_request = Request::from_parts(parts, IdleTimeout::new(body, self.timeouts.idle_timeout));
        let response = tokio::time::timeout(self.timeouts.response_timeout, self.client.request(upstream_request))
            .await
            .map_err(|_| GatewayError::UpstreamTimeout(self.timeouts.response_timeout))?
            .map_err(|err| self.classify(err))?;

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return self.switch_protocols(response, client_upgrade, request_id);
        }
        let (mut parts, body) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        parts.version = Version::default();
        Ok(Response::from_parts(parts, IdleTimeout::new(body, self.timeouts.idle_timeout).boxed()))
    }

    fn switch_protocols(
        &self,
        mut response: Response<Incoming>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        request_id: &HeaderValue,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let Some(client_upgrade) = client_upgrade else {
            return Err(GatewayError::UpgradeFailed("101 answer to a request that asked for no upgrade".into()));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let request_id = request_id.to_str().unwrap_or_default().to_owned();
        upgrade::tunnel(client_upgrade, upstream_upgrade, request_id, self.hard_stop.clone());
        // Connection and Upgrade stay: the client needs them to complete the switch.
        let (parts, _) = response.into_parts();
        Ok(Response::from_parts(parts, body::empty()))
    }

    /// Sorts a client error by cause: a stalled client body, a connect timeout, a
    /// refused connection, or a broken exchange.
    fn classify(&self, err: hyper_util::client::legacy::Error) -> GatewayError {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&err);
        while let Some(inner) = cause {
            if let Some(idle) = inner.downcast_ref::<IdleTimeoutError>() {
                return GatewayError::ClientBodyTimeout(idle.0);
            }
            if let Some(io) = inner.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
            {
                return GatewayError::UpstreamTimeout(self.timeouts.connect_timeout);
            }
            cause = inner.source();
        }
        let connect = err.is_connect();
        let boxed: BoxError = Box::new(err);
        if connect { GatewayError::UpstreamUnreachable(boxed) } else { GatewayError::UpstreamFailed(boxed) }
    }
}
