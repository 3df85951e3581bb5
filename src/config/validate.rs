//! Raw strings to typed values. Every check runs, so one `portcullis check` lists
//! every mistake; each problem names the key and quotes the bad value.

use super::raw::{RawConfig, RawProvider, RawRoute, RawServerTls, RawUpstreamTls};
use super::{
    AuthConfig, BearerConfig, Config, ForwardAuthConfig, IdentityConfig, LogConfig, LogFormat, OtlpConfig, Problem,
    ProviderConfig, ProviderKind, RedisConfig, RequestLimits, RouteConfig, RoutePolicy, ServerConfig, ServerTlsConfig,
    SessionConfig, StoreKind, UpstreamConfig, UpstreamTarget,
};
use crate::oidc::metadata::CognitoIssuer;
use crate::secret::Secret;
use crate::tls::TlsFiles;
use crate::tls::certificate::Which;
use crate::tls::upstream::UpstreamTlsFiles;
use http::Uri;
use http::uri::Scheme;
use std::net::SocketAddr;
use std::time::Duration;

/// Headers an identity header must not be named after: the gateway strips and sets
/// identity headers, which would destroy these.
const RESERVED_HEADERS: [&str; 12] = [
    "authorization",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "upgrade",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
];

/// More threads than this is a typo, not a tuning.
const MAX_WORKERS: u32 = 256;

/// The shortest `server.admin_token` accepted: it stands between anyone who reaches the
/// admin listener and signing every user out.
const MIN_ADMIN_TOKEN: usize = 24;

/// Returns the typed config, or `None` with `problems` filled in.
pub fn validate(raw: &RawConfig, problems: &mut Vec<Problem>) -> Option<Config> {
    let before = problems.len();
    let mut check = Checker { problems, tls_clients: Vec::new() };

    let server = ServerConfig {
        listen: check.socket_addr("server.listen", &raw.server.listen),
        admin_listen: check.socket_addr("server.admin_listen", &raw.server.admin_listen),
        admin_token: match raw.server.admin_token.as_str() {
            "" => None,
            token if token.len() < MIN_ADMIN_TOKEN => {
                check.fail(
                    "server.admin_token",
                    format!("is {} characters; use at least {MIN_ADMIN_TOKEN} random ones", token.len()),
                );
                None
            }
            token => Some(Secret::new(token.to_owned())),
        },
        shutdown_timeout: check.duration("server.shutdown_timeout", &raw.server.shutdown_timeout, true),
        header_read_timeout: check.duration("server.header_read_timeout", &raw.server.header_read_timeout, false),
        trust_forwarded_headers: raw.server.trust_forwarded_headers,
        workers: match raw.server.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n if n <= MAX_WORKERS => n as usize,
            n => {
                check.fail("server.workers", format!("{n} is more than {MAX_WORKERS} (0 = one per CPU core)"));
                1
            }
        },
        case_insensitive_routes: raw.server.case_insensitive_routes,
        limits: RequestLimits {
            header_bytes: check.bounded("server.max_header_bytes", raw.server.max_header_bytes, 8192, 1 << 20),
            headers: check.bounded("server.max_headers", raw.server.max_headers, 16, 1000),
            cookie_bytes: check.bounded("server.max_cookie_bytes", raw.server.max_cookie_bytes, 4096, 1 << 20),
            cookie_count: check.bounded("server.max_cookie_count", raw.server.max_cookie_count, 8, 1000),
        },
        tls: check.tls(&raw.server.tls),
    };
    check.limits_consistent(&server.limits);
    if server.listen == server.admin_listen && server.listen.port() != 0 {
        check.fail("server.admin_listen", format!("{} is also server.listen", server.admin_listen));
    }

    let upstream = UpstreamConfig {
        connect_timeout: check.duration("upstream.connect_timeout", &raw.upstream.connect_timeout, false),
        response_timeout: check.duration("upstream.response_timeout", &raw.upstream.response_timeout, false),
        idle_timeout: check.duration("upstream.idle_timeout", &raw.upstream.idle_timeout, false),
        pool_idle_timeout: check.duration("upstream.pool_idle_timeout", &raw.upstream.pool_idle_timeout, false),
        pool_max_idle_per_host: raw.upstream.pool_max_idle_per_host as usize,
        websocket_idle_timeout: check.duration(
            "upstream.websocket_idle_timeout",
            &raw.upstream.websocket_idle_timeout,
            false,
        ),
    };

    let log = LogConfig {
        level: check.log_level("log.level", &raw.log.level),
        format: match raw.log.format.as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                check.fail("log.format", format!("{other:?} is not a log format (use \"json\" or \"text\")"));
                LogFormat::Json
            }
        },
        access_log: raw.log.access_log,
    };

    let has_provider = !raw.provider.kind.is_empty();
    let forward_auth = raw.forward_auth.enabled;
    if forward_auth && !has_provider {
        check.fail("forward_auth.enabled", "needs a [provider] (set provider.kind): /auth/verify checks sessions");
    }
    // Forward-auth alone needs no route: `/auth/verify` then asks for a session only.
    if raw.routes.is_empty() && !forward_auth {
        check.fail("route", "no [[route]] is defined: add at least one (prefix = \"/\", upstream = \"http://...\")");
    }
    let routes: Vec<RouteConfig> = raw
        .routes
        .iter()
        .enumerate()
        .map(|(i, route)| check.route(i, route, forward_auth, &raw.upstream.tls))
        .collect();
    for (i, route) in routes.iter().enumerate() {
        if let Some(first) = routes[..i].iter().position(|r| r.prefix == route.prefix) {
            check.fail(
                format!("route[{i}].prefix"),
                format!("{:?} is already the prefix of route[{first}]", route.prefix),
            );
        }
    }

    let auth = check.auth(raw);
    if auth.is_none() {
        // Without a provider nobody signs in: a policy would be silently ignored.
        for (i, route) in routes.iter().enumerate() {
            if route.policy != RoutePolicy::default() {
                check.fail(format!("route[{i}]"), "has an authorization policy but no [provider] is configured");
            }
        }
    }
    let forward_auth = ForwardAuthConfig {
        enabled: forward_auth,
        trusted_proxies: raw
            .forward_auth
            .trusted_proxies
            .iter()
            .filter_map(|value| check.network("forward_auth.trusted_proxies", value))
            .collect(),
    };
    let otlp = match raw.otlp.endpoint.as_str() {
        "" => None,
        endpoint => match url::Url::parse(endpoint) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(OtlpConfig { endpoint: url, service_name: raw.otlp.service_name.clone() })
            }
            _ => {
                check.fail(
                    "otlp.endpoint",
                    format!("{endpoint:?} is not an http(s) URL (e.g. \"http://otel-collector:4318/v1/traces\")"),
                );
                None
            }
        },
    };
    (problems.len() == before).then_some(Config { server, upstream, log, routes, auth, forward_auth, otlp })
}

struct Checker<'a> {
    problems: &'a mut Vec<Problem>,
    /// The TLS clients made for https upstreams, by their files (`None`: refused).
    tls_clients: Vec<(UpstreamTlsFiles, Option<std::sync::Arc<rustls::ClientConfig>>)>,
}

impl Checker<'_> {
    fn fail(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(key, message));
    }

    fn socket_addr(&mut self, key: &str, value: &str) -> SocketAddr {
        value.parse().unwrap_or_else(|_| {
            self.fail(key, format!("{value:?} is not an address (expected IP:PORT, e.g. 0.0.0.0:8080)"));
            SocketAddr::from(([0, 0, 0, 0], 0))
        })
    }

    fn duration(&mut self, key: &str, value: &str, zero_ok: bool) -> Duration {
        match humantime::parse_duration(value) {
            Ok(d) if d.is_zero() && !zero_ok => {
                self.fail(key, format!("{value:?} must be longer than zero"));
                Duration::ZERO
            }
            Ok(d) => d,
            Err(_) => {
                self.fail(key, format!("{value:?} is not a duration (e.g. \"500ms\", \"30s\", \"5m\")"));
                Duration::ZERO
            }
        }
    }

    fn log_level(&mut self, key: &str, value: &str) -> String {
        if let Err(err) = tracing_subscriber::EnvFilter::builder().parse(value) {
            self.fail(key, format!("{value:?} is not a log filter ({err}); e.g. \"info\" or \"portcullis=debug\""));
        }
        value.to_owned()
    }

    fn route(&mut self, index: usize, raw: &RawRoute, forward_auth: bool, tls: &RawUpstreamTls) -> RouteConfig {
        let key = |field: &str| format!("route[{index}].{field}");
        if raw.prefix.is_empty() {
            self.fail(key("prefix"), "is required (e.g. \"/\" or \"/api/\")");
        } else if !raw.prefix.starts_with('/') {
            self.fail(key("prefix"), format!("{:?} must start with \"/\"", raw.prefix));
        } else if raw.prefix.contains(['?', '#']) || raw.prefix.contains("//") {
            self.fail(key("prefix"), format!("{:?} must be a plain path (no ?, # or //)", raw.prefix));
        }
        // With forward-auth, a route may only say who may reach a path (`/auth/verify`).
        let upstream =
            (!raw.upstream.is_empty() || !forward_auth).then(|| self.upstream(&key("upstream"), &raw.upstream));
        let upstream_tls = match &upstream {
            Some(target) if target.scheme == Scheme::HTTPS => {
                match crate::tls::upstream::server_name(target.authority.host()) {
                    Some(server_name) => self
                        .upstream_tls(index, raw, tls)
                        .map(|config| crate::tls::upstream::UpstreamTlsClient { config, server_name }),
                    None => {
                        self.fail(key("upstream"), "has a host that cannot be a TLS server name");
                        None
                    }
                }
            }
            _ => {
                for (field, value) in [
                    ("ca_file", &raw.ca_file),
                    ("client_cert_file", &raw.client_cert_file),
                    ("client_key_file", &raw.client_key_file),
                ] {
                    if !value.is_empty() {
                        self.fail(key(field), "is only for an https:// upstream");
                    }
                }
                None
            }
        };
        RouteConfig {
            prefix: raw.prefix.clone(),
            upstream,
            upstream_tls,
            strip_prefix: raw.strip_prefix,
            preserve_host: raw.preserve_host,
            public: raw.public,
            csrf: raw.csrf,
            policy: self.policy(index, raw),
        }
    }

    fn policy(&mut self, index: usize, raw: &RawRoute) -> RoutePolicy {
        let mut email_domains = Vec::new();
        for domain in &raw.allowed_email_domains {
            let domain = domain.strip_prefix('@').unwrap_or(domain).to_ascii_lowercase();
            if domain.is_empty() || domain.contains(['@', ' ', ',']) {
                self.fail(
                    format!("route[{index}].allowed_email_domains"),
                    format!("{domain:?} is not a domain (e.g. \"example.com\")"),
                );
            }
            email_domains.push(domain);
        }
        let policy =
            RoutePolicy { groups: raw.allowed_groups.clone(), scopes: raw.required_scopes.clone(), email_domains };
        if raw.public && policy != RoutePolicy::default() {
            self.fail(
                format!("route[{index}].public"),
                "a public route cannot have allowed_groups, required_scopes or allowed_email_domains",
            );
        }
        policy
    }

    /// A number within `min..=max`.
    fn bounded(&mut self, key: &str, value: u32, min: u32, max: u32) -> usize {
        if !(min..=max).contains(&value) {
            self.fail(key, format!("{value} is outside {min}..={max}"));
        }
        value.clamp(min, max) as usize
    }

    fn limits_consistent(&mut self, limits: &RequestLimits) {
        if limits.cookie_bytes > limits.header_bytes {
            self.fail(
                "server.max_cookie_bytes",
                format!("{} is more than server.max_header_bytes ({})", limits.cookie_bytes, limits.header_bytes),
            );
        }
    }

    /// The `[provider]`, `[session]` and `[identity]` sections, when a provider is set.
    fn auth(&mut self, raw: &RawConfig) -> Option<AuthConfig> {
        let p = &raw.provider;
        let kind = match p.kind.as_str() {
            "" => {
                // Login settings without a provider would be silently ignored: say so.
                if raw.bearer.enabled {
                    self.fail("bearer.enabled", "needs a [provider] (set provider.kind) to verify tokens");
                }
                if !raw.session.cookie_keys.is_empty() {
                    self.fail("session.cookie_keys", "are set but no [provider] is configured (set provider.kind)");
                }
                if !raw.redis.url.is_empty() {
                    self.fail(
                        "redis.url",
                        "is set but no [provider] is configured: Redis holds sessions (set provider.kind)",
                    );
                }
                return None;
            }
            "cognito" => ProviderKind::Cognito,
            "oidc" => ProviderKind::Oidc,
            other => {
                self.fail("provider.kind", format!("{other:?} is not a provider kind (use \"cognito\" or \"oidc\")"));
                return None;
            }
        };
        let (issuer, domain) = match kind {
            ProviderKind::Cognito => {
                self.required("provider.domain", &p.domain);
                let issuer = self.cognito_issuer(p);
                let domain = if p.domain.is_empty() { None } else { self.origin("provider.domain", &p.domain) };
                (issuer, domain.map(|url| url.as_str().trim_end_matches('/').to_owned()))
            }
            ProviderKind::Oidc => {
                self.required("provider.issuer", &p.issuer);
                (p.issuer.clone(), None)
            }
        };
        if !issuer.is_empty() && url::Url::parse(&issuer).is_err() {
            self.fail("provider.issuer", format!("{issuer:?} is not a URL"));
        }
        self.required("provider.client_id", &p.client_id);
        if !p.scopes.iter().any(|s| s == "openid") {
            self.fail(
                "provider.scopes",
                "must include \"openid\" (the ID token is how the gateway learns who signed in)",
            );
        }
        let groups_claim = match (p.groups_claim.as_str(), kind) {
            ("", ProviderKind::Cognito) => "cognito:groups".to_owned(),
            ("", ProviderKind::Oidc) => "groups".to_owned(),
            (claim, _) => claim.to_owned(),
        };
        let provider = ProviderConfig {
            kind,
            issuer,
            issuer_endpoint: self.issuer_endpoint(p, kind),
            domain,
            client_id: p.client_id.clone(),
            client_secret: (!p.client_secret.is_empty()).then(|| Secret::new(p.client_secret.clone())),
            scopes: p.scopes.clone(),
            groups_claim,
            http_timeout: self.duration("provider.http_timeout", &p.http_timeout, false),
        };

        let s = &raw.session;
        if s.cookie_keys.is_empty() {
            self.fail(
                "session.cookie_keys",
                "at least one key is required (32 random bytes, base64: `openssl rand -base64 32`)",
            );
        }
        let mut cookie_keys = Vec::new();
        for (i, key) in s.cookie_keys.iter().enumerate() {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(key.trim()));
            // Never echo a key: name it by position only.
            match decoded {
                Ok(bytes) if bytes.len() >= 32 => cookie_keys.push(Secret::new(bytes)),
                Ok(bytes) => self.fail(
                    format!("session.cookie_keys[{i}]"),
                    format!("decodes to {} bytes; at least 32 are needed", bytes.len()),
                ),
                Err(_) => self.fail(format!("session.cookie_keys[{i}]"), "is not base64"),
            }
        }
        if s.cookie_name.is_empty()
            || !s.cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            self.fail("session.cookie_name", format!("{:?} must be letters, digits, - or _", s.cookie_name));
        }
        let session = SessionConfig {
            cookie_keys,
            cookie_name: s.cookie_name.clone(),
            lifetime: self.duration("session.lifetime", &s.lifetime, false),
            refresh_skew: self.duration("session.refresh_skew", &s.refresh_skew, true),
            insecure_dev_cookies: s.insecure_dev_cookies,
            store: match s.store.as_str() {
                "cookie" => StoreKind::Cookie,
                "redis" => StoreKind::Redis,
                other => {
                    self.fail("session.store", format!("{other:?} is not \"cookie\" or \"redis\""));
                    StoreKind::Cookie
                }
            },
        };
        let redis = self.redis(raw);
        if session.store == StoreKind::Redis && raw.redis.url.is_empty() {
            self.fail("session.store", "is \"redis\", but redis.url is not set (PORTCULLIS_REDIS__URL)");
        }

        let id = &raw.identity;
        let names = [
            ("identity.user_id_header", &id.user_id_header),
            ("identity.username_header", &id.username_header),
            ("identity.email_header", &id.email_header),
            ("identity.groups_header", &id.groups_header),
            ("identity.assertion_header", &id.assertion_header),
        ];
        for (i, (key, name)) in names.iter().enumerate() {
            let lower = name.to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                self.fail(*key, format!("{name:?} is a header the gateway or HTTP itself manages; pick another name"));
            } else if let Some((other, _)) = names[..i].iter().find(|(_, n)| n.eq_ignore_ascii_case(name)) {
                self.fail(*key, format!("{name:?} is already {other}"));
            }
        }
        let identity = IdentityConfig {
            user_id: self.header_name("identity.user_id_header", &id.user_id_header),
            username: self.header_name("identity.username_header", &id.username_header),
            email: self.header_name("identity.email_header", &id.email_header),
            groups: self.header_name("identity.groups_header", &id.groups_header),
            assertion: self.header_name("identity.assertion_header", &id.assertion_header),
            csrf: self.header_name("identity.csrf_header", &id.csrf_header),
            pass_access_token: id.pass_access_token,
        };

        if raw.server.public_url.is_empty() {
            self.fail(
                "server.public_url",
                "is required with a [provider] (the origin browsers use, e.g. \"https://app.example.com\")",
            );
            return None;
        }
        let public_url = self.origin("server.public_url", &raw.server.public_url)?;
        // Browsers treat http://localhost as a secure context and keep Secure, __Host-
        // cookies there; any other plain-http origin would silently lose them.
        let localhost = matches!(public_url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if public_url.scheme() == "http" && !localhost && !session.insecure_dev_cookies {
            self.fail(
                "server.public_url",
                format!(
                    "{:?} is plain http: session cookies are Secure and need https (or http://localhost; session.insecure_dev_cookies = true for other local development only)",
                    raw.server.public_url
                ),
            );
        }
        let b = &raw.bearer;
        let mut client_ids = vec![provider.client_id.clone()];
        client_ids.extend(b.client_ids.iter().filter(|id| **id != provider.client_id).cloned());
        let bearer = BearerConfig {
            enabled: b.enabled,
            client_ids,
            required_scopes: b.required_scopes.clone(),
            required_groups: b.required_groups.clone(),
        };
        Some(AuthConfig { public_url, provider, session, identity, bearer, redis })
    }

    /// The `[redis]` section, when `url` is set. The URL is never quoted back: it may
    /// hold a password.
    fn redis(&mut self, raw: &RawConfig) -> Option<RedisConfig> {
        let r = &raw.redis;
        if r.url.is_empty() {
            return None;
        }
        let command_timeout = self.duration("redis.command_timeout", &r.command_timeout, false);
        if command_timeout > Duration::from_secs(5) {
            self.fail(
                "redis.command_timeout",
                format!(
                    "{:?} is longer than 5s: a request would wait that long for a Redis that is down",
                    r.command_timeout
                ),
            );
        }
        if !(1..=64).contains(&r.connections) {
            self.fail("redis.connections", format!("{} is not between 1 and 64", r.connections));
        }
        if r.key_prefix.is_empty() || r.key_prefix.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            self.fail("redis.key_prefix", format!("{:?} must be non-empty, without spaces", r.key_prefix));
        }
        let ca_pem = match r.ca_file.as_str() {
            "" => None,
            path => match std::fs::read(path) {
                Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => Some(pem),
                Ok(_) => {
                    self.fail("redis.ca_file", format!("{path:?} holds no PEM certificate"));
                    None
                }
                Err(err) => {
                    self.fail("redis.ca_file", format!("cannot read {path:?}: {err}"));
                    None
                }
            },
        };
        match url::Url::parse(&r.url) {
            Ok(url) if matches!(url.scheme(), "redis" | "rediss") && url.host_str().is_some_and(|h| !h.is_empty()) => {
                if ca_pem.is_some() && url.scheme() != "rediss" {
                    self.fail("redis.ca_file", "is set, but redis.url is not rediss:// (TLS)");
                }
                Some(RedisConfig {
                    url: Secret::new(r.url.clone()),
                    key_prefix: r.key_prefix.clone(),
                    command_timeout,
                    connections: r.connections.clamp(1, 64) as usize,
                    ca_pem,
                })
            }
            Ok(_) => {
                self.fail("redis.url", "must be redis://host[:port][/db] or rediss://… (TLS)");
                None
            }
            Err(_) => {
                self.fail("redis.url", "is not a URL (expected redis://host[:port][/db] or rediss://…)");
                None
            }
        }
    }

    fn required(&mut self, key: &str, value: &str) {
        if value.is_empty() {
            self.fail(key, "is required");
        }
    }

    /// The pool's issuer, in the form `provider.cognito_issuer` names, unless
    /// `provider.issuer` overrides it whole.
    fn cognito_issuer(&mut self, p: &RawProvider) -> String {
        let Some(form) = CognitoIssuer::parse(&p.cognito_issuer) else {
            self.fail("provider.cognito_issuer", format!("{:?} is not \"original\" or \"updated\"", p.cognito_issuer));
            return String::new();
        };
        if !p.issuer.is_empty() {
            if form != CognitoIssuer::Original {
                self.fail("provider.cognito_issuer", "has no effect when provider.issuer is set: set one of them");
            }
            return p.issuer.clone();
        }
        self.required("provider.region", &p.region);
        self.required("provider.user_pool_id", &p.user_pool_id);
        form.issuer(&p.region, &p.user_pool_id)
    }

    /// Where the issuer's discovery document and keys are fetched instead of its host.
    fn issuer_endpoint(&mut self, p: &RawProvider, kind: ProviderKind) -> Option<String> {
        if p.issuer_endpoint.is_empty() {
            return None;
        }
        if kind != ProviderKind::Cognito {
            self.fail("provider.issuer_endpoint", "is only for kind = \"cognito\"");
            return None;
        }
        let url = self.origin("provider.issuer_endpoint", &p.issuer_endpoint)?;
        Some(url.as_str().trim_end_matches('/').to_owned())
    }

    /// An origin: scheme and host (and port), nothing else.
    fn origin(&mut self, key: &str, value: &str) -> Option<url::Url> {
        match url::Url::parse(value) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.path() == "/"
                    && url.query().is_none()
                    && url.fragment().is_none() =>
            {
                Some(url)
            }
            _ => {
                self.fail(key, format!("{value:?} must be an origin like \"https://app.example.com\" (no path)"));
                None
            }
        }
    }

    fn header_name(&mut self, key: &str, value: &str) -> http::HeaderName {
        http::HeaderName::from_bytes(value.as_bytes()).unwrap_or_else(|_| {
            self.fail(key, format!("{value:?} is not a header name"));
            http::HeaderName::from_static("x-invalid")
        })
    }

    /// The TLS client of route `index`'s https upstream: its own files, else
    /// `[upstream.tls]`'s; read and checked now, errors named by the key that set them.
    fn upstream_tls(
        &mut self,
        index: usize,
        raw: &RawRoute,
        global: &RawUpstreamTls,
    ) -> Option<std::sync::Arc<rustls::ClientConfig>> {
        let route_key = |field: &str| format!("route[{index}].{field}");
        let (ca_key, ca_file) = match raw.ca_file.as_str() {
            "" => ("upstream.tls.ca_file".to_owned(), global.ca_file.as_str()),
            own => (route_key("ca_file"), own),
        };
        let own_client = !raw.client_cert_file.is_empty() || !raw.client_key_file.is_empty();
        let (cert_key, key_key, cert_file, key_file) = if own_client {
            (route_key("client_cert_file"), route_key("client_key_file"), &raw.client_cert_file, &raw.client_key_file)
        } else {
            (
                "upstream.tls.client_cert_file".to_owned(),
                "upstream.tls.client_key_file".to_owned(),
                &global.client_cert_file,
                &global.client_key_file,
            )
        };
        let client = self.pem_pair((&cert_key, cert_file), (&key_key, key_file)).ok()?;
        let files = UpstreamTlsFiles { ca_file: (!ca_file.is_empty()).then(|| ca_file.into()), client };
        // Routes with the same files share one client, so their connections share a
        // pool; a file's problem is reported once.
        if let Some((_, known)) = self.tls_clients.iter().find(|(known, _)| *known == files) {
            return known.clone();
        }
        let made = crate::tls::upstream::client_config(&files);
        self.tls_clients.push((files, made.as_ref().ok().cloned()));
        match made {
            Ok(config) => Some(config),
            Err(err) => {
                let key = match err.which {
                    Which::Authorities => ca_key,
                    Which::Certificate => cert_key,
                    Which::Key => key_key,
                };
                self.fail(key, err.to_string());
                None
            }
        }
    }

    /// A certificate's file and its key's, both or neither (`Ok(None)`); one alone is a
    /// problem named by the missing one's key. `(key, value)` each.
    fn pem_pair(&mut self, cert: (&str, &str), key: (&str, &str)) -> Result<Option<TlsFiles>, ()> {
        match (cert.1, key.1) {
            ("", "") => Ok(None),
            ("", _) => {
                self.fail(cert.0, format!("is required with {} (the certificate, PEM, chain included)", key.0));
                Err(())
            }
            (_, "") => {
                self.fail(key.0, format!("is required with {} (the certificate's private key, PEM)", cert.0));
                Err(())
            }
            (cert_file, key_file) => Ok(Some(TlsFiles { cert_file: cert_file.into(), key_file: key_file.into() })),
        }
    }

    /// Both files or neither; both are read and checked now, as at startup.
    fn tls(&mut self, raw: &RawServerTls) -> Option<ServerTlsConfig> {
        let pair = self.pem_pair(("server.tls.cert_file", &raw.cert_file), ("server.tls.key_file", &raw.key_file));
        let files = match pair {
            Ok(Some(files)) => files,
            Ok(None) => {
                for (key, value) in
                    [("server.tls.hsts", &raw.hsts), ("server.tls.redirect_listen", &raw.redirect_listen)]
                {
                    if !value.is_empty() {
                        self.fail(key, "needs server.tls.cert_file and key_file (HTTPS on server.listen)");
                    }
                }
                return None;
            }
            Err(()) => return None,
        };
        if let Err(err) = crate::tls::certificate::load(&files, std::time::SystemTime::now()) {
            let key = match err.which {
                Which::Key => "server.tls.key_file",
                Which::Certificate | Which::Authorities => "server.tls.cert_file",
            };
            self.fail(key, err.to_string());
        }
        let hsts = match raw.hsts.as_str() {
            "" => None,
            value => match http::HeaderValue::from_str(value) {
                Ok(header) if value.starts_with("max-age=") => Some(header),
                _ => {
                    self.fail(
                        "server.tls.hsts",
                        format!("{value:?} is not a Strict-Transport-Security value (e.g. \"max-age=31536000\")"),
                    );
                    None
                }
            },
        };
        let redirect_listen = (!raw.redirect_listen.is_empty())
            .then(|| self.socket_addr("server.tls.redirect_listen", &raw.redirect_listen));
        Some(ServerTlsConfig { files, hsts, redirect_listen })
    }

    /// `10.0.0.0/8`, or one address (`10.1.2.3`, `::1`).
    fn network(&mut self, key: &str, value: &str) -> Option<ipnet::IpNet> {
        let parsed =
            value.parse::<ipnet::IpNet>().or_else(|_| value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(network) => Some(network),
            Err(_) => {
                self.fail(key, format!("{value:?} is not an address or network (e.g. \"10.0.0.0/8\" or \"::1\")"));
                None
            }
        }
    }

    fn upstream(&mut self, key: &str, value: &str) -> UpstreamTarget {
        let placeholder = UpstreamTarget {
            scheme: Scheme::HTTP,
            authority: http::uri::Authority::from_static("invalid"),
            base_path: String::new(),
        };
        if value.is_empty() {
            self.fail(
                key,
                "is required (e.g. \"http://127.0.0.1:3000\"); only with forward_auth.enabled may a route have none",
            );
            return placeholder;
        }
        let uri: Uri = match value.parse() {
            Ok(uri) => uri,
            Err(_) => {
                self.fail(key, format!("{value:?} is not a URL (e.g. \"http://127.0.0.1:3000\")"));
                return placeholder;
            }
        };
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            self.fail(key, format!("{value:?} needs a scheme and host (e.g. \"http://127.0.0.1:3000\")"));
            return placeholder;
        };
        if *scheme != Scheme::HTTP && *scheme != Scheme::HTTPS {
            self.fail(key, format!("{value:?}: the scheme must be http or https"));
            return placeholder;
        }
        if authority.as_str().contains('@') {
            self.fail(key, format!("{value:?} must not carry credentials"));
            return placeholder;
        }
        if uri.query().is_some() {
            self.fail(key, format!("{value:?} must not have a query string"));
            return placeholder;
        }
        UpstreamTarget {
            scheme: scheme.clone(),
            authority: authority.clone(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
        }
    }
}
