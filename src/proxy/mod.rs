//! The reverse proxy: forwards a routed request upstream and streams the answer back.
//!
//! Stages, in order: rewrite the request (hop-by-hop out, forwarded headers and request
//! id in, upstream URI and `Host`) → send it with a response-header deadline → switch
//! to a tunnel on `101 Switching Protocols` → strip hop-by-hop headers from the answer.
//! Bodies stream in both directions under an idle timeout and are never buffered.
//! GET and HEAD requests without a body take the gateway's own HTTP/1.1 exchange
//! (`bodiless.rs`), every other request hyper's client (`client.rs`).

mod bodiless;
pub mod body;
mod client;
pub mod headers;
pub mod path;
pub mod peer;
pub mod routes;
mod upgrade;

/// For `fuzz/`: an upstream answer read the way the gateway's own exchange reads it.
#[doc(hidden)]
pub use bodiless::read_answer;

use crate::config::{Config, UpstreamConfig};
use crate::error::{BoxError, GatewayError};
use crate::metrics::Metrics;
use crate::shutdown::ShutdownSignals;
use body::{ClientBodyError, IdleTimeout, IdleTimeoutError, ProxyBody, RequestBody};
use headers::{Added, ClientFacts};
use http::header::HOST;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use peer::Peer;
use routes::{Route, RouteTable};

/// Completes when an upgraded connection must close (its session ended).
pub type CloseWhen = std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

pub static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

pub struct Proxy {
    routes: RouteTable,
    client: client::UpstreamClient,
    timeouts: UpstreamConfig,
    trust_forwarded_headers: bool,
    shutdown: ShutdownSignals,
}

impl Proxy {
    pub fn new(config: &Config, metrics: &Metrics, shutdown: ShutdownSignals) -> Self {
        let routes = RouteTable::new(&config.routes, config.server.case_insensitive_routes, metrics);
        Self {
            client: client::build(&config.upstream, routes.upstreams()),
            routes,
            timeouts: config.upstream.clone(),
            trust_forwarded_headers: config.server.trust_forwarded_headers,
            shutdown,
        }
    }

    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.find(path)
    }

    /// Forwards `request` with the headers in `added` (the gateway's identity headers,
    /// which the caller removed any client copies of) plus the proxy's own. A tunnel
    /// the request opens is closed when `close_when` completes.
    pub async fn forward(
        &self,
        route: &Route,
        mut request: Request<Incoming>,
        peer: &Peer,
        request_id: &HeaderValue,
        mut added: Added,
        close_when: Option<CloseWhen>,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        // A route for `/auth/verify` only: the gateway itself serves nothing there.
        let Some(upstream) = &route.upstream else { return Err(GatewayError::NoRoute) };
        let upgrade = (request.method() == Method::GET && request.version() == Version::HTTP_11)
            .then(|| headers::requested_upgrade(request.headers()))
            .flatten();
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));

        let (mut parts, body) = request.into_parts();
        let client_host = parts
            .headers
            .get(HOST)
            .cloned()
            .or_else(|| parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
        let client = ClientFacts { ip: &peer.ip_header, host: client_host.as_ref(), proto: peer.proto };
        headers::rewrite_request(&mut parts.headers, &client, self.trust_forwarded_headers, &mut added);
        if parts.version == Version::HTTP_2 {
            headers::join_cookies(&mut parts.headers);
        }
        added.push((X_REQUEST_ID.clone(), request_id.clone()));
        let host = match (route.preserve_host, client_host) {
            (true, Some(host)) => host,
            _ => upstream.host.clone(),
        };
        parts.uri = route
            .upstream_uri(upstream, &parts.uri)
            .map_err(|_| GatewayError::Internal("could not build the upstream URI"))?;
        parts.version = Version::HTTP_11;

        // Not over TLS: the fast path tells an idle connection is still usable by its
        // socket being quiet, which a TLS upstream's session tickets and alerts are not.
        let bodiless = upstream.tls.is_none()
            && bodiless::applies(&parts.method, http_body::Body::is_end_stream(&body), upgrade.is_some());
        if bodiless {
            let exchange = self.client.send_bodiless(upstream, &parts, &host, &added);
            let response = tokio::time::timeout(self.timeouts.response_timeout, exchange)
                .await
                .map_err(|_| GatewayError::UpstreamTimeout(self.timeouts.response_timeout))?
                .map_err(|err| self.classify(err))?;
            return Ok(self.answer(response));
        }
        parts.headers.insert(HOST, host);
        for (name, value) in added {
            parts.headers.append(name, value);
        }
        if let Some(protocol) = upgrade.clone() {
            headers::set_upgrade(&mut parts.headers, protocol);
        }
        let (body, body_sent) = RequestBody::new(IdleTimeout::new(body, self.timeouts.idle_timeout));
        let exchange = self.client.send(upstream, Request::from_parts(parts, body));
        tokio::pin!(exchange);
        // While the request body streams, only the idle timeout applies; the response
        // timeout measures the upstream, from the moment it has the whole request.
        let early = match body_sent {
            Some(sent) => tokio::select! {
                result = &mut exchange => Some(result),
                _ = sent => None,
            },
            None => None,
        };
        let result = match early {
            Some(result) => result,
            None => tokio::time::timeout(self.timeouts.response_timeout, exchange)
                .await
                .map_err(|_| GatewayError::UpstreamTimeout(self.timeouts.response_timeout))?,
        };
        let response = result.map_err(|err| self.classify(err))?;

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return self.switch_protocols(response, client_upgrade.zip(upgrade), request_id, close_when);
        }
        Ok(self.answer(response))
    }

    /// The upstream's answer as the client gets it: without hop-by-hop headers, its
    /// body streamed under the idle timeout.
    fn answer<B>(&self, response: Response<B>) -> Response<ProxyBody>
    where
        B: http_body::Body<Data = bytes::Bytes> + Unpin + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        parts.version = Version::default();
        Response::from_parts(parts, IdleTimeout::new(body, self.timeouts.idle_timeout).boxed())
    }

    /// Joins client and upstream once the upstream agreed to the protocol the client
    /// asked for; anything else is a bad gateway, not a tunnel.
    fn switch_protocols(
        &self,
        mut response: Response<client::PooledBody>,
        requested: Option<(hyper::upgrade::OnUpgrade, HeaderValue)>,
        request_id: &HeaderValue,
        close_when: Option<CloseWhen>,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let Some((client_upgrade, protocol)) = requested else {
            return Err(GatewayError::UpgradeFailed("101 answer to a request that asked for no upgrade".into()));
        };
        let agreed = response
            .headers()
            .get(http::header::UPGRADE)
            .is_some_and(|answered| answered.as_bytes().eq_ignore_ascii_case(protocol.as_bytes()));
        if !agreed {
            return Err(GatewayError::UpgradeFailed("101 answer names another protocol".into()));
        }
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let request_id = request_id.to_str().unwrap_or_default().to_owned();
        upgrade::tunnel(
            client_upgrade,
            upstream_upgrade,
            request_id,
            self.shutdown.clone(),
            self.timeouts.websocket_idle_timeout,
            close_when,
        );
        let (mut parts, _) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        headers::set_upgrade(&mut parts.headers, protocol);
        Ok(Response::from_parts(parts, body::empty()))
    }

    /// Sorts a client error by cause: the client's own body (stalled or aborted), a
    /// connect timeout, a refused connection, or a broken exchange.
    fn classify(&self, err: client::UpstreamError) -> GatewayError {
        let exchange = match err {
            client::UpstreamError::ConnectTimeout { timeout, .. } => return GatewayError::UpstreamTimeout(timeout),
            client::UpstreamError::Connect { .. } => return GatewayError::UpstreamUnreachable(Box::new(err)),
            client::UpstreamError::Tls { .. } => return GatewayError::UpstreamTls(Box::new(err)),
            client::UpstreamError::Exchange(exchange) => exchange,
        };
        let chain: Vec<&(dyn std::error::Error + 'static)> =
            std::iter::successors(Some(&*exchange as &(dyn std::error::Error + 'static)), |e| e.source()).collect();
        if let Some(idle) = chain.iter().find_map(|e| e.downcast_ref::<IdleTimeoutError>()) {
            return GatewayError::ClientBodyTimeout(idle.0);
        }
        if chain.iter().any(|e| e.is::<ClientBodyError>()) {
            return GatewayError::ClientAborted;
        }
        // Under TLS 1.3 an upstream refuses a client certificate after the handshake:
        // its alert arrives with the response.
        let tls_refused = chain.iter().any(|e| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<rustls::Error>())
        });
        if tls_refused {
            return GatewayError::UpstreamTls(exchange);
        }
        let timed_out = chain
            .iter()
            .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut));
        if timed_out {
            return GatewayError::UpstreamTimeout(self.timeouts.response_timeout);
        }
        GatewayError::UpstreamFailed(exchange)
    }
}
