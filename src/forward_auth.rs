//! `/auth/verify`: Portcullis as the login and session service behind the proxy a team
//! already runs (nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`,
//! Envoy `ext_authz`). The proxy describes the browser's request; the answer is the
//! decision the gateway would take on it (`auth/admission.rs`), without forwarding:
//!
//! - **200**: the identity headers for the proxy to copy upstream (every name, empty
//!   when the user has no such claim, so the copy always replaces a client's), and the
//!   cookies of a refresh in `Set-Cookie`; the same cookies again, one a header, as
//!   `X-Portcullis-Set-Cookie-1`, `-2`, …, because nginx's `$upstream_http_set_cookie`
//!   holds only the first of several. Only on a 200, which no documented proxy hands to
//!   the browser: readable headers must never carry a session to scripts. Never the
//!   access token (`identity.pass_access_token` is for the reverse-proxy mode).
//! - **401** without a session (nginx's `auth_request` passes on only 2xx, 401 and
//!   403); with `?redirect=true` or `X-Portcullis-Redirect: true`, a browser navigation
//!   gets a **302** to log in instead (Traefik, Caddy and Envoy hand it to the browser),
//!   to an absolute URL on the public origin.
//! - **403** naming the policy rule or the CSRF check of the route the original path
//!   matches; a path no route matches needs a session and nothing more.
//! - **403** too for a caller outside `forward_auth.trusted_proxies`: the forwarded
//!   headers pick the route, so they count only from the proxies themselves. The
//!   documented proxy configurations also refuse `/auth/verify` from browsers, whose
//!   requests arrive through the proxy, from a trusted address.
//!
//! The original request is `X-Forwarded-Uri` (Traefik, Caddy), `X-Original-URI`
//! (nginx), the path of `X-Original-URL` (ingress-nginx), or the path after
//! `/auth/verify/` (Envoy appends the original path to its prefix); every one of these
//! that is present must agree, so a client-sent copy the proxy did not replace cannot
//! pick a more lenient route. Its method is `X-Forwarded-Method` or
//! `X-Original-Method` (ingress-nginx), else the method of the check itself (Envoy's).

use crate::auth::admission::{self, Admission, Asked};
use crate::auth::store::Presented;
use crate::auth::{self, Auth};
use crate::config::{ForwardAuthConfig, RoutePolicy};
use crate::error::GatewayError;
use crate::metrics::{Metrics, RouteMetrics};
use crate::proxy::Proxy;
use crate::proxy::body::{self, ProxyBody};
use crate::proxy::path;
use crate::proxy::peer::Peer;
use http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, Uri};
use std::sync::Arc;

/// The check's path; `/auth/verify/<original path>` is Envoy's form.
pub const VERIFY: &str = "/auth/verify";

static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_PORTCULLIS_REDIRECT: HeaderName = HeaderName::from_static("x-portcullis-redirect");

/// The policy of a path that no route matches: signed in, nothing more.
static NO_POLICY: RoutePolicy = RoutePolicy { groups: Vec::new(), scopes: Vec::new(), email_domains: Vec::new() };

pub struct ForwardAuth {
    trusted: Vec<ipnet::IpNet>,
    /// The checks' requests, counted apart from the other `/auth/` endpoints.
    pub metrics: RouteMetrics,
}

impl ForwardAuth {
    pub fn new(config: &ForwardAuthConfig, metrics: &Metrics) -> Self {
        Self { trusted: config.trusted_proxies.clone(), metrics: metrics.for_route(VERIFY) }
    }

    /// Whether `path` (under `/auth/`) asks for a decision.
    pub fn asks(path: &str) -> bool {
        path.strip_prefix(VERIFY).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// The decision on the request `head` describes, whose cookies presented
    /// `presented`, asked by `peer`.
    pub async fn verify(
        &self,
        auth: &Arc<Auth>,
        proxy: &Proxy,
        mut head: Parts,
        presented: Presented,
        peer: &Peer,
        request_id: &str,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let caller = peer.addr.ip().to_canonical();
        if !self.trusted.iter().any(|network| network.contains(&caller)) {
            tracing::warn!(
                request_id,
                client = %caller,
                "refused /auth/verify from an address outside forward_auth.trusted_proxies"
            );
            return Err(GatewayError::UntrustedForwardAuthCaller(caller));
        }
        let original = Original::described(&head)?;
        let route = proxy.route(original.uri.path());
        // The answer's identity headers come from the session alone, as upstream.
        auth.identity.strip(&mut head.headers, request_id);

        let mut cookies = HeaderMap::new();
        let mut session = None;
        if !route.is_some_and(|route| route.public) {
            let asked = Asked {
                method: &original.method,
                target: original.uri.path_and_query().map_or("/", |pq| pq.as_str()),
                csrf: route.is_none_or(|route| route.csrf),
                policy: route.map_or(&NO_POLICY, |route| &route.policy),
                redirect_navigations: original.redirect,
            };
            let now = auth::now_secs();
            match admission::admit(auth, asked, presented, &mut head.headers, &mut cookies, now, request_id).await? {
                Admission::Session(live) => session = Some(live),
                Admission::Bearer => {}
                Admission::Answer(refusal) => return Ok(absolute_location(auth, refusal)),
            }
        }
        let mut response = Response::new(body::empty());
        auth.identity.answer(response.headers_mut(), session.as_deref(), &head.headers);
        response.headers_mut().extend(cookies);
        response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(with_numbered_cookies(response))
    }
}

/// The browser's request, as the calling proxy describes it.
struct Original {
    method: Method,
    /// Path (normalized as the gateway's own) and query.
    uri: Uri,
    /// A navigation without a session is redirected to log in.
    redirect: bool,
}

impl Original {
    fn described(head: &Parts) -> Result<Self, GatewayError> {
        let headers = &head.headers;
        // Envoy's form: the original path and query follow the check's path.
        let appended = head
            .uri
            .path_and_query()
            .and_then(|pq| pq.as_str().strip_prefix(VERIFY))
            .filter(|rest| rest.starts_with('/'));
        // ingress-nginx's `X-Original-URL` is absolute: its path and query count.
        let original_url = single(headers, &X_ORIGINAL_URL)?.map(|url| {
            let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
            after_scheme.find('/').map_or("/", |path| &after_scheme[path..])
        });
        let mut described: Option<&str> = None;
        let candidates =
            [single(headers, &X_FORWARDED_URI)?, single(headers, &X_ORIGINAL_URI)?, original_url, appended];
        for candidate in candidates {
            match (described, candidate) {
                (Some(seen), Some(other)) if seen != other => {
                    return Err(GatewayError::UnknownOriginalRequest("the descriptions of the original URI disagree"));
                }
                (None, Some(first)) => described = Some(first),
                _ => {}
            }
        }
        let described = described.ok_or(GatewayError::UnknownOriginalRequest(
            "none of X-Forwarded-Uri, X-Original-URI or a path after /auth/verify/",
        ))?;
        let mut uri: Uri = described
            .parse()
            .ok()
            .filter(|uri: &Uri| uri.scheme().is_none() && uri.path().starts_with('/'))
            .ok_or(GatewayError::UnknownOriginalRequest("the original URI is not a path"))?;
        // As the gateway normalizes its own requests: routes match alike both ways.
        path::normalize_uri(&mut uri)?;
        let method = match (single(headers, &X_FORWARDED_METHOD)?, single(headers, &X_ORIGINAL_METHOD)?) {
            (Some(one), Some(other)) if one != other => {
                return Err(GatewayError::UnknownOriginalRequest("the descriptions of the original method disagree"));
            }
            (Some(method), _) | (None, Some(method)) => method
                .parse()
                .map_err(|_| GatewayError::UnknownOriginalRequest("the original method is not a method"))?,
            (None, None) => head.method.clone(),
        };
        // In Envoy's form the check's query is the original's, so only the header asks.
        let asked_in_query = appended.is_none()
            && head.uri.query().is_some_and(|query| {
                url::form_urlencoded::parse(query.as_bytes()).any(|(key, value)| key == "redirect" && value == "true")
            });
        let redirect = asked_in_query || headers.get(&X_PORTCULLIS_REDIRECT).is_some_and(|v| v.as_bytes() == b"true");
        Ok(Self { method, uri, redirect })
    }
}

/// The one value of `name`, if sent; sent twice, or not as text, it describes nothing.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, GatewayError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => {
            value.to_str().map(Some).map_err(|_| GatewayError::UnknownOriginalRequest("a forwarded header is not text"))
        }
        (Some(_), Some(_)) => Err(GatewayError::UnknownOriginalRequest("a forwarded header is repeated")),
    }
}

/// The login redirect as an absolute URL on the public origin: Traefik reads a
/// relative `Location` against the address it asked, which is Portcullis's own.
fn absolute_location(auth: &Auth, mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    let relative = response.headers().get(LOCATION).and_then(|l| l.to_str().ok()).filter(|l| l.starts_with('/'));
    if let Some(absolute) = relative.and_then(|l| HeaderValue::try_from(format!("{}{l}", auth.public_origin())).ok()) {
        response.headers_mut().insert(LOCATION, absolute);
    }
    response
}

/// Adds `X-Portcullis-Set-Cookie-N` for the N-th `Set-Cookie` (see the module's notes).
fn with_numbered_cookies(mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    let numbered: Vec<(HeaderName, HeaderValue)> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .enumerate()
        .filter_map(|(index, value)| {
            let name = HeaderName::try_from(format!("x-portcullis-set-cookie-{}", index + 1)).ok()?;
            Some((name, value.clone()))
        })
        .collect();
    response.headers_mut().extend(numbered);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder().uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_the_check_path_and_below_ask() {
        assert!(ForwardAuth::asks("/auth/verify"));
        assert!(ForwardAuth::asks("/auth/verify/app/page"));
        assert!(!ForwardAuth::asks("/auth/verifyx"));
        assert!(!ForwardAuth::asks("/auth/userinfo"));
    }

    #[test]
    fn the_original_comes_from_any_one_description() {
        let nginx = Original::described(&head("/auth/verify", &[("x-original-uri", "/a/b?c=d")])).unwrap();
        assert_eq!(nginx.uri, "/a/b?c=d");
        assert!(!nginx.redirect);
        let traefik = Original::described(&head(
            "/auth/verify?redirect=true",
            &[("x-forwarded-uri", "/x"), ("x-forwarded-method", "POST")],
        ))
        .unwrap();
        assert_eq!((traefik.uri.path(), traefik.method, traefik.redirect), ("/x", Method::POST, true));
        let envoy = Original::described(&head("/auth/verify/app/page?redirect=true", &[])).unwrap();
        assert_eq!(envoy.uri, "/app/page?redirect=true");
        assert!(!envoy.redirect, "in Envoy's form the query is the original's");
        let asked = Original::described(&head("/auth/verify/p", &[("x-portcullis-redirect", "true")])).unwrap();
        assert!(asked.redirect);
        let ingress = [("x-original-url", "https://app.example.com/a?b=c"), ("x-original-method", "PUT")];
        let ingress = Original::described(&head("/auth/verify", &ingress)).unwrap();
        assert_eq!((ingress.uri, ingress.method), ("/a?b=c".parse::<Uri>().unwrap(), Method::PUT));
    }

    #[test]
    fn descriptions_that_disagree_or_are_missing_are_refused() {
        let disagree = head("/auth/verify", &[("x-forwarded-uri", "/public/"), ("x-original-uri", "/admin/")]);
        assert!(matches!(Original::described(&disagree), Err(GatewayError::UnknownOriginalRequest(_))));
        let envoy_and_header = head("/auth/verify/admin/", &[("x-forwarded-uri", "/public/")]);
        assert!(Original::described(&envoy_and_header).is_err());
        assert!(Original::described(&head("/auth/verify", &[])).is_err());
        let repeated = head("/auth/verify", &[("x-forwarded-uri", "/a"), ("x-forwarded-uri", "/b")]);
        assert!(Original::described(&repeated).is_err());
        assert!(Original::described(&head("/auth/verify", &[("x-forwarded-uri", "http://evil/a")])).is_err());
        let url_and_uri = [("x-original-url", "https://app.example.com/admin/"), ("x-forwarded-uri", "/public/")];
        assert!(Original::described(&head("/auth/verify", &url_and_uri)).is_err());
        let methods = [("x-forwarded-uri", "/a"), ("x-forwarded-method", "GET"), ("x-original-method", "POST")];
        assert!(Original::described(&head("/auth/verify", &methods)).is_err());
    }

    #[test]
    fn the_original_path_is_normalized_like_the_gateways() {
        let spelled = Original::described(&head("/auth/verify", &[("x-forwarded-uri", "//%61dmin/x?q=1")]));
        assert_eq!(spelled.unwrap().uri, "/admin/x?q=1");
        let dotted = Original::described(&head("/auth/verify", &[("x-forwarded-uri", "/public/../admin/x")]));
        assert!(matches!(dotted, Err(GatewayError::BadPath(_))));
        let encoded = Original::described(&head("/auth/verify", &[("x-forwarded-uri", "/public%2F..%2Fadmin")]));
        assert!(matches!(encoded, Err(GatewayError::BadPath(_))));
    }
}
