//! Path-prefix routing: the longest matching prefix wins.
//!
//! Prefixes match at segment boundaries so `/api` never captures `/apiary`: a prefix
//! ending in `/` matches everything below it, any other prefix matches itself and
//! everything below `prefix/`. With `case_insensitive_routes`, prefixes match in any
//! ASCII case, for upstreams that read `/ADMIN/` as `/admin/`: otherwise such a path
//! would slip past a protected `/admin/` route into a more permissive one.

use crate::config::{RouteConfig, RoutePolicy, UpstreamTarget};
use crate::metrics::{Metrics, RouteMetrics};
use http::HeaderValue;
use http::uri::{PathAndQuery, Uri};

#[derive(Debug)]
pub struct Route {
    pub prefix: String,
    /// Where requests go; `None` for a route that only says who may reach its paths
    /// (asked through `/auth/verify`), which forwards nothing.
    pub upstream: Option<Upstream>,
    pub strip_prefix: bool,
    pub preserve_host: bool,
    /// Served without a session.
    pub public: bool,
    /// Unsafe methods must prove they come from the app's own pages.
    pub csrf: bool,
    pub policy: RoutePolicy,
    case_insensitive: bool,
    pub metrics: RouteMetrics,
}

/// A route's upstream.
#[derive(Debug)]
pub struct Upstream {
    pub target: UpstreamTarget,
    /// The index of `target`'s scheme and authority among the table's distinct
    /// upstreams: the upstream connection pool's list for it.
    pub index: usize,
    /// The upstream's authority as a `Host` value, built once.
    pub host: HeaderValue,
    /// For `https://`: the TLS client and the name (SNI) to verify.
    pub tls: Option<UpstreamTls>,
}

#[derive(Clone)]
pub struct UpstreamTls {
    /// Which client it is: connections of different clients (other CAs, another
    /// client certificate) never share a pool list.
    config: std::sync::Arc<rustls::ClientConfig>,
    /// Offers `h2` and `http/1.1`.
    pub connector: tokio_rustls::TlsConnector,
    /// Offers `http/1.1` only: for protocol upgrades (WebSockets).
    pub connector_http1: tokio_rustls::TlsConnector,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl Upstream {
    /// The port to connect to when the URL names none.
    pub fn default_port(&self) -> u16 {
        if self.tls.is_some() { 443 } else { 80 }
    }
}

impl Route {
    fn new(config: &RouteConfig, case_insensitive: bool, metrics: &Metrics) -> Self {
        Self {
            prefix: config.prefix.clone(),
            upstream: config.upstream.as_ref().map(|target| Upstream {
                target: target.clone(),
                index: 0,
                host: HeaderValue::from_str(target.authority.as_str()).expect("an authority is a valid header value"),
                tls: config.upstream_tls.as_ref().map(|client| UpstreamTls {
                    config: client.config.clone(),
                    connector: tokio_rustls::TlsConnector::from(client.config.clone()),
                    connector_http1: tokio_rustls::TlsConnector::from(crate::tls::upstream::http1_only(&client.config)),
                    server_name: client.server_name.clone(),
                }),
            }),
            strip_prefix: config.strip_prefix,
            preserve_host: config.preserve_host,
            public: config.public,
            csrf: config.csrf,
            policy: config.policy.clone(),
            case_insensitive,
            metrics: metrics.for_route(&config.prefix),
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        let prefix = self.prefix.as_bytes();
        let head = &path.as_bytes()[..prefix.len().min(path.len())];
        let starts = if self.case_insensitive { head.eq_ignore_ascii_case(prefix) } else { head == prefix };
        starts
            && (self.prefix.ends_with('/')
                || path.len() == self.prefix.len()
                || path.as_bytes()[self.prefix.len()] == b'/')
    }

    /// The URI to request from `upstream` (this route's) for a client request to `uri`.
    pub fn upstream_uri(&self, upstream: &Upstream, uri: &Uri) -> Result<Uri, http::Error> {
        let base = &upstream.target.base_path;
        if base.is_empty() && !self.strip_prefix {
            // The client's own path and query (shared, not copied), in origin form.
            return Ok(Uri::from(uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"))));
        }
        let path = uri.path();
        let rest = if self.strip_prefix { &path[self.prefix.len()..] } else { path };
        let query = uri.query();

        let mut target = String::with_capacity(base.len() + rest.len() + 2 + query.map_or(0, str::len));
        target.push_str(base);
        if !rest.starts_with('/') {
            target.push('/');
        }
        target.push_str(rest);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        // Origin form: the connection already goes to `target.authority`.
        Ok(Uri::from(PathAndQuery::try_from(target)?))
    }
}

#[derive(Debug)]
pub struct RouteTable {
    /// Longest prefix first, so the first match is the best one.
    routes: Vec<Route>,
    upstreams: usize,
}

impl RouteTable {
    pub fn new(configs: &[RouteConfig], case_insensitive: bool, metrics: &Metrics) -> Self {
        let mut routes: Vec<Route> =
            configs.iter().map(|config| Route::new(config, case_insensitive, metrics)).collect();
        routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        // Connections to one authority share a pool list only with the same TLS client
        // (or none): one route's client certificate never serves another's requests.
        let mut distinct: Vec<(Option<*const rustls::ClientConfig>, http::uri::Authority)> = Vec::new();
        for upstream in routes.iter_mut().filter_map(|route| route.upstream.as_mut()) {
            let client = upstream.tls.as_ref().map(|tls| std::sync::Arc::as_ptr(&tls.config));
            let key = (client, upstream.target.authority.clone());
            upstream.index = match distinct.iter().position(|known| *known == key) {
                Some(index) => index,
                None => {
                    distinct.push(key);
                    distinct.len() - 1
                }
            };
        }
        Self { routes, upstreams: distinct.len() }
    }

    /// How many distinct upstreams (authorities) the routes name.
    pub fn upstreams(&self) -> usize {
        self.upstreams
    }

    pub fn find(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|route| route.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Route {
        fn new_for_test(config: &RouteConfig) -> Self {
            Route::new(config, false, &Metrics::new())
        }
    }

    fn route(prefix: &str, upstream: &str, strip_prefix: bool) -> RouteConfig {
        let uri: Uri = upstream.parse().unwrap();
        RouteConfig {
            prefix: prefix.into(),
            upstream: Some(UpstreamTarget {
                scheme: uri.scheme().unwrap().clone(),
                authority: uri.authority().unwrap().clone(),
                base_path: uri.path().trim_end_matches('/').into(),
            }),
            strip_prefix,
            preserve_host: false,
            public: false,
            csrf: true,
            policy: RoutePolicy::default(),
            upstream_tls: None,
        }
    }

    #[test]
    fn longest_prefix_wins_at_segment_boundaries() {
        let table = RouteTable::new(
            &[
                route("/", "http://spa", false),
                route("/api/", "http://api", false),
                route("/api/admin", "http://admin", false),
                route("/docs", "http://docs", false),
            ],
            false,
            &Metrics::new(),
        );
        let found = |path| table.find(path).map(|r| r.prefix.as_str());
        assert_eq!(found("/"), Some("/"));
        assert_eq!(found("/index.html"), Some("/"));
        assert_eq!(found("/api/users"), Some("/api/"));
        assert_eq!(found("/api"), Some("/"), "`/api/` does not match `/api`");
        assert_eq!(found("/api/admin"), Some("/api/admin"));
        assert_eq!(found("/api/admin/x"), Some("/api/admin"));
        assert_eq!(found("/api/administrator"), Some("/api/"));
        assert_eq!(found("/docs"), Some("/docs"));
        assert_eq!(found("/docsearch"), Some("/"));
    }

    #[test]
    fn routes_to_the_same_authority_share_an_upstream_index() {
        let table = RouteTable::new(
            &[
                route("/", "http://spa:8080", false),
                route("/api/", "http://api", false),
                route("/app/", "http://SPA:8080/base", false),
            ],
            false,
            &Metrics::new(),
        );
        let upstream = |path| table.find(path).unwrap().upstream.as_ref().unwrap().index;
        assert_eq!(table.upstreams(), 2);
        assert_eq!(upstream("/app/x"), upstream("/x"));
        assert_ne!(upstream("/api/x"), upstream("/x"));
        assert!(upstream("/api/x") < 2 && upstream("/x") < 2);
    }

    #[test]
    fn no_match_without_a_catch_all() {
        let table = RouteTable::new(&[route("/api/", "http://api", false)], false, &Metrics::new());
        assert!(table.find("/other").is_none());
    }

    #[test]
    fn case_insensitive_prefixes_on_request() {
        let routes = [route("/", "http://spa", false), route("/admin/", "http://admin", false)];
        let strict = RouteTable::new(&routes, false, &Metrics::new());
        assert_eq!(strict.find("/ADMIN/x").map(|r| r.prefix.as_str()), Some("/"));
        let folded = RouteTable::new(&routes, true, &Metrics::new());
        assert_eq!(folded.find("/ADMIN/x").map(|r| r.prefix.as_str()), Some("/admin/"));
        assert_eq!(folded.find("/Admin/").map(|r| r.prefix.as_str()), Some("/admin/"));
        assert_eq!(folded.find("/Adminx").map(|r| r.prefix.as_str()), Some("/"));
    }

    #[test]
    fn rewrites_path_with_strip_and_base_path() {
        let uri: Uri = "/api/users?page=2".parse().unwrap();
        let rewrite = |route: &Route, uri: &Uri| route.upstream_uri(route.upstream.as_ref().unwrap(), uri).unwrap();
        let keep = Route::new_for_test(&route("/api/", "http://127.0.0.1:3000", false));
        assert_eq!(rewrite(&keep, &uri), "/api/users?page=2");
        let strip = Route::new_for_test(&route("/api/", "http://127.0.0.1:3000", true));
        assert_eq!(rewrite(&strip, &uri), "/users?page=2");
        let based = Route::new_for_test(&route("/api", "http://127.0.0.1:3000/v1/", true));
        assert_eq!(rewrite(&based, &uri), "/v1/users?page=2");
        assert_eq!(rewrite(&based, &"/api".parse().unwrap()), "/v1/");
    }
}
