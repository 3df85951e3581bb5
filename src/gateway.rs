//! The gateway's request handler: every request on the main listener enters here.
//!
//! It gives the request an id, finds its route, hands it to the proxy, turns any error
//! into a response (`respond.rs`), and writes one access-log line. The log line names
//! the path without its query string: queries can carry codes and tokens.

use crate::auth::admission::{self, Admission, Asked};
use crate::auth::cookies::{RequestCookies, UpstreamCookies};
use crate::auth::session_end::{EndsWithSession, SessionEnd};
use crate::auth::store::Presented;
use crate::auth::{self, Auth};
use crate::config::{Config, RequestLimits};
use crate::error::{ErrorSource, GatewayError};
use crate::forward_auth::{self, ForwardAuth};
use crate::metrics::{Metrics, NO_ROUTE, RouteMetrics};
use crate::otlp::{RequestSpan, SpanExport};
use crate::proxy::body::ProxyBody;
use crate::proxy::headers::Added;
use crate::proxy::path;
use crate::proxy::peer::Peer;
use crate::proxy::routes::Route;
use crate::proxy::{CloseWhen, Proxy};
use crate::request_id::{self, X_REQUEST_ID};
use crate::respond;
use crate::shutdown::ShutdownSignals;
use crate::trace_context::{self, TraceContext};
use http::{HeaderMap, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

pub struct Gateway {
    proxy: Proxy,
    auth: Option<Arc<Auth>>,
    /// A span per request to the OTLP collector, when `[otlp]` is set.
    spans: Option<Arc<SpanExport>>,
    /// `Strict-Transport-Security` for every answer (`server.tls.hsts`).
    hsts: Option<HeaderValue>,
    /// `/auth/verify`, when `forward_auth.enabled`.
    forward_auth: Option<ForwardAuth>,
    metrics: Arc<Metrics>,
    unrouted: RouteMetrics,
    auth_endpoints: RouteMetrics,
    access_log: bool,
    limits: RequestLimits,
}

/// Headers the gateway may add to a proxied request (at most 11): four identity
/// headers, the assertion, `Authorization`, three `X-Forwarded-*`, `X-Request-Id`,
/// `traceparent`.
const ADDED_HEADERS: usize = 11;

/// The metrics and log label of the gateway's own `/auth/` endpoints.
const AUTH_ROUTE: &str = "/auth/";

impl Gateway {
    pub fn new(
        config: &Config,
        auth: Option<Arc<Auth>>,
        spans: Option<Arc<SpanExport>>,
        metrics: Arc<Metrics>,
        shutdown: ShutdownSignals,
    ) -> Self {
        Self {
            spans,
            hsts: config.server.tls.as_ref().and_then(|tls| tls.hsts.clone()),
            proxy: Proxy::new(config, &metrics, shutdown),
            auth,
            forward_auth: config.forward_auth.enabled.then(|| ForwardAuth::new(&config.forward_auth, &metrics)),
            unrouted: metrics.for_route(NO_ROUTE),
            auth_endpoints: metrics.for_route(AUTH_ROUTE),
            metrics,
            access_log: config.log.access_log,
            limits: config.server.limits,
        }
    }

    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: Arc<Peer>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        // The request's trace is current for everything done for it, the provider's
        // back channel included (`trace_context.rs`).
        let trace = TraceContext::for_request(request.headers(), self.spans.is_some());
        trace.scope(self.serve(request, peer, trace)).await
    }

    async fn serve(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: Arc<Peer>,
        trace: TraceContext,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let started = Instant::now();
        let request_id = request_id::for_request(request.headers());
        let wants_html = respond::wants_html(request.headers());
        let logged = self.access_log.then(|| (request.method().clone(), request.uri().path().to_owned()));
        let span_start = self.spans.as_ref().map(|_| (SystemTime::now(), request.method().clone()));

        let id = request_id.to_str().unwrap_or_default();
        // Taken apart so the cookies, read once here, can borrow the headers while the
        // path is normalized.
        let (mut head, body) = request.into_parts();
        let cookies = RequestCookies::read(&head.headers, Some(&self.limits));
        let refusal = refuse_early(&head.method, &mut head.uri, &head.headers, &cookies);
        let path = head.uri.path();
        let is_auth_endpoint = refusal.is_none() && self.auth.is_some() && path.starts_with("/auth/");
        let verifier = self.forward_auth.as_ref().filter(|_| is_auth_endpoint && ForwardAuth::asks(path));
        let route = if is_auth_endpoint || refusal.is_some() { None } else { self.proxy.route(path) };
        let checked = match (&self.auth, route) {
            (Some(auth), Some(route)) => Some(CookieCheck::of(auth, &cookies, route)),
            _ => None,
        };
        // `/auth/verify`'s session: the cookies borrow the head, which is handed on.
        let verify_presented = match &self.auth {
            Some(auth) if verifier.is_some() => Some(auth.presented(&cookies, auth::now_secs())),
            _ => None,
        };
        let result = if let Some(refusal) = refusal {
            Err(refusal)
        } else if let (Some(verifier), Some(presented), Some(auth)) = (verifier, verify_presented, &self.auth) {
            Box::pin(verifier.verify(auth, &self.proxy, head, presented, &peer, id)).await
        } else if let (true, Some(auth)) = (is_auth_endpoint, &self.auth) {
            let request = Request::from_parts(head, body);
            // Boxed, like the other rare paths below: their futures (token requests
            // through reqwest) are kilobytes, and every request's future would carry
            // that size, copied into hyper's connection on every request.
            Ok(Box::pin(auth::handle(auth, request, id)).await)
        } else {
            let request = Request::from_parts(head, body);
            match route {
                Some(route) => self.authenticate_and_forward(route, request, checked, &peer, &request_id, &trace).await,
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
        if let Some(hsts) = &self.hsts {
            response.headers_mut().insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        let elapsed = started.elapsed();
        // Where the request is counted, and the label its log line and span carry.
        let (metrics, route_label) = match route {
            Some(route) => (&route.metrics, route.prefix.as_str()),
            None if let Some(verifier) = verifier => (&verifier.metrics, forward_auth::VERIFY),
            None if is_auth_endpoint => (&self.auth_endpoints, AUTH_ROUTE),
            None => (&self.unrouted, NO_ROUTE),
        };
        metrics.record(response.status(), elapsed);
        if let (Some(spans), Some((started_at, method))) = (&self.spans, span_start) {
            spans.record(RequestSpan {
                trace: &trace,
                method: method.as_str(),
                route: route_label,
                status: response.status().as_u16(),
                refreshed: trace_context::refreshed(),
                started: started_at,
                ended: started_at + elapsed,
            });
        }

        if let Some((method, path)) = logged {
            tracing::info!(
                target: "access",
                method = %method,
                path,
                route = route_label,
                status = response.status().as_u16(),
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                request_id = id,
                trace_id = %trace.trace_id(),
                client = %peer.addr.ip(),
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
        checked: Option<CookieCheck>,
        peer: &Peer,
        request_id: &HeaderValue,
        trace: &TraceContext,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let mut added = Added::with_capacity(ADDED_HEADERS);
        trace.forward(request.headers_mut(), &mut added);
        if let Some(auth) = &self.auth {
            // Closed, not open: without the check, nothing would strip or authenticate.
            let Some(CookieCheck { presented, upstream_cookies, now }) = checked else {
                return Err(GatewayError::Internal("a routed request's cookies were not checked"));
            };
            let id = request_id.to_str().unwrap_or_default();
            auth.identity.strip(request.headers_mut(), id);
            let mut cookies = HeaderMap::new();
            let mut live_session = None;
            if !route.public {
                // Taken apart, so the method and URI are read while the headers are lent.
                let (mut head, body) = request.into_parts();
                let asked = Asked {
                    method: &head.method,
                    target: head.uri.path_and_query().map_or("/", |pq| pq.as_str()),
                    csrf: route.csrf,
                    policy: &route.policy,
                    redirect_navigations: true,
                };
                match admission::admit(auth, asked, presented, &mut head.headers, &mut cookies, now, id).await? {
                    Admission::Session(session) => {
                        auth.identity.add_for_session(&mut head.headers, &mut added, &session);
                        live_session = Some(session);
                    }
                    Admission::Bearer => {}
                    Admission::Answer(response) => return Ok(response),
                }
                request = Request::from_parts(head, body);
            }
            upstream_cookies.apply(request.headers_mut());
            // A WebSocket opened with a session is closed when the session ends.
            let tunnel_end = live_session
                .as_ref()
                .filter(|_| request.headers().contains_key(http::header::UPGRADE))
                .map(|session| Box::pin(SessionEnd::watch(auth.clone(), session.clone())) as CloseWhen);
            let mut response = self.proxy.forward(route, request, peer, request_id, added, tunnel_end).await?;
            if let Some(session) = live_session.filter(|_| is_event_stream(response.headers())) {
                response = response.map(|body| {
                    let end = SessionEnd::watch(auth.clone(), session);
                    EndsWithSession::new(body, end, id).boxed()
                });
            }
            auth.jar.strip_set_cookies(response.headers_mut(), id);
            // New session cookies from a refresh travel on this same response.
            response.headers_mut().extend(cookies);
            return Ok(response);
        }
        self.proxy.forward(route, request, peer, request_id, added, None).await
    }
}

/// A server-sent events stream: open for as long as the session, so it ends with it.
fn is_event_stream(headers: &HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"))
}

/// What a proxied request's cookies say, when a provider is configured: its session
/// (on a protected route) and what the upstream may see of them.
struct CookieCheck {
    presented: Presented,
    upstream_cookies: UpstreamCookies,
    /// The time the session was checked at.
    now: u64,
}

impl CookieCheck {
    fn of(auth: &Auth, cookies: &RequestCookies, route: &Route) -> Self {
        let now = auth::now_secs();
        let presented = if route.public { Presented::Nothing } else { auth.presented(cookies, now) };
        Self { presented, upstream_cookies: auth.jar.for_upstream(cookies), now }
    }
}

/// Requests refused before routing: methods a gateway in front of an app never
/// proxies (CONNECT would open a tunnel, TRACE reflects headers), a second `Host`, cookies beyond the
/// limits (a cookie bomb would otherwise lock a user out with opaque errors), and paths that
/// upstreams could read differently from the gateway (`proxy/path.rs`). A path that is
/// accepted is replaced by its normalized form, which everything after this decides on
/// and the upstream receives.
fn refuse_early(method: &Method, uri: &mut Uri, headers: &HeaderMap, cookies: &RequestCookies) -> Option<GatewayError> {
    if method == Method::CONNECT || method == Method::TRACE {
        return Some(GatewayError::MethodNotAllowed(method.clone()));
    }
    // RFC 9112 §3.2: which of two Hosts counts is up to each reader, so neither does.
    if headers.get_all(http::header::HOST).iter().nth(1).is_some() {
        return Some(GatewayError::DuplicateHost);
    }
    if cookies.exceeded() {
        return Some(GatewayError::CookiesTooLarge);
    }
    path::normalize_uri(uri).err().map(GatewayError::from)
}
