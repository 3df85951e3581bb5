//! The gateway's request handler: every request on the main listener enters here.
//!
//! It gives the request an id, finds its route, hands it to the proxy, turns any error
//! into a response (`respond.rs`), and writes one access-log line. The log line names
//! the path without its query string: queries can carry codes and tokens.

use crate::auth::refresh::Outcome;
use crate::auth::session::Session;
use crate::auth::{self, Auth, bearer, csrf};
use crate::config::Config;
use crate::error::{ErrorSource, GatewayError};
use crate::metrics::{Metrics, NO_ROUTE, RouteMetrics};
use crate::proxy::Proxy;
use crate::proxy::body::ProxyBody;
use crate::proxy::routes::Route;
use crate::request_id::{self, X_REQUEST_ID};
use crate::respond;
use crate::shutdown::ShutdownSignals;
use http::{HeaderMap, HeaderValue};
use http::{Method, Request, Response};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub struct Gateway {
    proxy: Proxy,
    auth: Option<Arc<Auth>>,
    metrics: Arc<Metrics>,
    unrouted: RouteMetrics,
    auth_endpoints: RouteMetrics,
    access_log: bool,
}

/// The metrics and log label of the gateway's own `/auth/` endpoints.
const AUTH_ROUTE: &str = "/auth/";

impl Gateway {
    pub fn new(config: &Config, auth: Option<Arc<Auth>>, metrics: Arc<Metrics>, shutdown: ShutdownSignals) -> Self {
        Self {
            proxy: Proxy::new(config, &metrics, shutdown),
            auth,
            unrouted: metrics.for_route(NO_ROUTE),
            auth_endpoints: metrics.for_route(AUTH_ROUTE),
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

        let id = request_id.to_str().unwrap_or_default();
        let is_auth_endpoint = self.auth.is_some() && request.uri().path().starts_with("/auth/");
        let route = if is_auth_endpoint { None } else { self.proxy.route(request.uri().path()) };
        let result = if let Some(refusal) = refuse_early(&request) {
            Err(refusal)
        } else if let (true, Some(auth)) = (is_auth_endpoint, &self.auth) {
            Ok(auth::handle(auth, request, id).await)
        } else {
            match route {
                Some(route) => self.authenticate_and_forward(route, request, peer, &request_id).await,
                None => Err(GatewayError::NoRoute),
            }
        };
        let mut response = result.unwrap_or_else(|err| {
            if err.source_kind() == ErrorSource::Upstream {
                self.metrics.upstream_error(err.code());
            }
            respond::error_response(&err, wants_html, id)
        });
        response.headers_mut().insert(X_REQUEST_ID.clone(), request_id.clone());
        let elapsed = started.elapsed();
        let metrics = match route {
            Some(route) => &route.metrics,
            None if is_auth_endpoint => &self.auth_endpoints,
            None => &self.unrouted,
        };
        metrics.record(response.status(), elapsed);

        if let Some((method, path)) = logged {
            tracing::info!(
                target: "access",
                method = %method,
                path,
                route = route.map_or(if is_auth_endpoint { AUTH_ROUTE } else { NO_ROUTE }, |r| r.prefix.as_str()),
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

impl Gateway {
    /// With a provider configured: identity headers a client sent are removed on every
    /// route; a protected route needs a valid session, whose identity is then set;
    /// the gateway's own cookies never reach the upstream.
    async fn authenticate_and_forward(
        &self,
        route: &Route,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        request_id: &HeaderValue,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        if let Some(auth) = &self.auth {
            let id = request_id.to_str().unwrap_or_default();
            auth.identity.strip(request.headers_mut(), id);
            let mut cookies = HeaderMap::new();
            if !route.public {
                let now = auth::now_secs();
                let session = Session::read(request.headers(), &auth.jar, &auth.sealer, now);
                let session = match session {
                    Some(session) => self.fresh(auth, session, request.headers(), &mut cookies, now, id).await,
                    None => Freshness::Missing,
                };
                match session {
                    Freshness::Valid(session) => {
                        let forged = route.csrf
                            && csrf::is_unsafe(request.method())
                            && !csrf::allowed(request.headers(), auth.public_origin(), &auth.config.identity.csrf);
                        if forged {
                            return Err(GatewayError::CrossSiteRequest);
                        }
                        auth.identity.set(request.headers_mut(), &session.identity());
                    }
                    Freshness::ProviderDown => return Err(GatewayError::ProviderUnavailable),
                    Freshness::Missing | Freshness::Ended
                        if auth.config.bearer.enabled && bearer::presented(request.headers()).is_some() =>
                    {
                        if let Err(refusal) = bearer::authenticate(auth, request.headers_mut(), id).await {
                            return Ok(refusal);
                        }
                    }
                    Freshness::Missing | Freshness::Ended => {
                        let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str()).to_owned();
                        let mut response = auth::unauthenticated(request.headers(), request.method(), &target);
                        response.headers_mut().extend(cookies);
                        return Ok(response);
                    }
                }
            }
            auth.jar.strip_from(request.headers_mut());
            let mut response = self.proxy.forward(route, request, peer, request_id).await?;
            // New session cookies from a refresh travel on this same response.
            response.headers_mut().extend(cookies);
            return Ok(response);
        }
        self.proxy.forward(route, request, peer, request_id).await
    }

    /// The session, refreshed first when its access token is about to expire (see
    /// `auth/refresh.rs`); new or cleared cookies go into `cookies`.
    async fn fresh(
        &self,
        auth: &Auth,
        session: Session,
        request_headers: &HeaderMap,
        cookies: &mut HeaderMap,
        now: u64,
        request_id: &str,
    ) -> Freshness {
        let skew = auth.config.session.refresh_skew.as_secs();
        if session.access_expires_at > now + skew {
            return Freshness::Valid(Arc::new(session));
        }
        if session.refresh_token.is_none() {
            return if session.access_expires_at > now {
                Freshness::Valid(Arc::new(session))
            } else {
                Freshness::Ended
            };
        }
        match auth.refresher.refresh(auth, &session, request_id).await {
            Outcome::Refreshed(refreshed) => {
                if !refreshed.write(request_headers, cookies, &auth.jar, &auth.sealer, now) {
                    tracing::error!(request_id, "the refreshed session no longer fits in cookies; it is not saved");
                }
                Freshness::Valid(refreshed)
            }
            Outcome::Ended => {
                Session::clear(request_headers, cookies, &auth.jar);
                Freshness::Ended
            }
            // Never a logout for a provider outage: the old token while it lasts.
            Outcome::Unavailable if session.access_expires_at > now => Freshness::Valid(Arc::new(session)),
            Outcome::Unavailable => Freshness::ProviderDown,
        }
    }
}

enum Freshness {
    Valid(Arc<Session>),
    Missing,
    Ended,
    ProviderDown,
}

/// Requests refused before routing: methods a gateway in front of an app never
/// proxies (CONNECT would open a tunnel, TRACE reflects headers), and paths with dot
/// segments, which an upstream could resolve outside the route that matched them.
/// Browsers resolve dot segments before sending, so only hand-made requests have them.
fn refuse_early(request: &Request<Incoming>) -> Option<GatewayError> {
    let method = request.method();
    if method == Method::CONNECT || method == Method::TRACE {
        return Some(GatewayError::MethodNotAllowed(method.clone()));
    }
    has_dot_segment(request.uri().path()).then_some(GatewayError::DotSegments)
}

/// `.` or `..` as a path segment, also percent-encoded (`%2e`, `.%2E`, ...).
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::has_dot_segment;

    #[test]
    fn dot_segments_in_any_spelling() {
        for path in ["/a/../b", "/..", "/a/./b", "/a/%2e%2e/b", "/a/.%2E/b", "/%2E/x", "/a/.."] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in ["/", "/a/b", "/a/..b", "/a/b..", "/.well-known/x", "/a/.../b", "/%2e%2e%2e"] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }
}
