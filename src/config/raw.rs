//! The configuration as written in the file, before validation.
//!
//! Values that need parsing (durations, addresses, URLs) stay strings here so that
//! validation can report every bad value at once instead of stopping at the first.
//! The defaults live here and nowhere else: the example config and the env-override
//! typing (`env.rs`) are both derived from them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawConfig {
    pub server: RawServer,
    pub upstream: RawUpstream,
    pub log: RawLog,
    pub provider: RawProvider,
    pub session: RawSession,
    pub identity: RawIdentity,
    pub bearer: RawBearer,
    pub redis: RawRedis,
    pub forward_auth: RawForwardAuth,
    pub otlp: RawOtlp,
    #[serde(rename = "route")]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawServer {
    pub listen: String,
    pub public_url: String,
    pub admin_listen: String,
    pub admin_token: String,
    pub shutdown_timeout: String,
    pub header_read_timeout: String,
    pub trust_forwarded_headers: bool,
    pub workers: u32,
    pub case_insensitive_routes: bool,
    pub max_header_bytes: u32,
    pub max_headers: u32,
    pub max_cookie_bytes: u32,
    pub max_cookie_count: u32,
    pub tls: RawServerTls,
}

/// `[server.tls]`: both files, or neither (plain HTTP).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawServerTls {
    pub cert_file: String,
    pub key_file: String,
    /// `Strict-Transport-Security` on every answer; empty: none.
    pub hsts: String,
    /// A plain-HTTP listener that only redirects to https; empty: none.
    pub redirect_listen: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            public_url: String::new(),
            admin_listen: "127.0.0.1:9090".into(),
            admin_token: String::new(),
            shutdown_timeout: "30s".into(),
            header_read_timeout: "10s".into(),
            trust_forwarded_headers: false,
            workers: 0,
            case_insensitive_routes: false,
            max_header_bytes: 65536,
            max_headers: 100,
            max_cookie_bytes: 40960,
            max_cookie_count: 180,
            tls: RawServerTls::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawUpstream {
    pub connect_timeout: String,
    pub response_timeout: String,
    pub idle_timeout: String,
    pub pool_idle_timeout: String,
    pub pool_max_idle_per_host: u32,
    pub websocket_idle_timeout: String,
    pub tls: RawUpstreamTls,
}

/// `[upstream.tls]`: what `https://` upstreams are trusted by and shown; a route's own
/// keys of the same names replace these.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawUpstreamTls {
    pub ca_file: String,
    pub client_cert_file: String,
    pub client_key_file: String,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            connect_timeout: "5s".into(),
            response_timeout: "30s".into(),
            idle_timeout: "60s".into(),
            pool_idle_timeout: "90s".into(),
            pool_max_idle_per_host: 256,
            websocket_idle_timeout: "5m".into(),
            tls: RawUpstreamTls::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawLog {
    pub level: String,
    pub format: String,
    pub access_log: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        Self { level: "info".into(), format: "json".into(), access_log: true }
    }
}

/// `[otlp]`: a span per request, exported to an OpenTelemetry collector.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawOtlp {
    /// The collector's OTLP/HTTP traces URL; empty: no export.
    pub endpoint: String,
    pub service_name: String,
}

impl Default for RawOtlp {
    fn default() -> Self {
        Self { endpoint: String::new(), service_name: "portcullis".into() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawForwardAuth {
    /// Answer `/auth/verify` (off: it does not exist).
    pub enabled: bool,
    /// Addresses (CIDR, or a single address) whose calls to `/auth/verify` are
    /// answered: their `X-Forwarded-*` headers pick the route, so its policy.
    pub trusted_proxies: Vec<String>,
}

impl Default for RawForwardAuth {
    fn default() -> Self {
        Self { enabled: false, trusted_proxies: vec!["127.0.0.0/8".into(), "::1/128".into()] }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawRoute {
    pub prefix: String,
    pub upstream: String,
    pub strip_prefix: bool,
    pub preserve_host: bool,
    pub public: bool,
    pub csrf: bool,
    pub allowed_groups: Vec<String>,
    pub required_scopes: Vec<String>,
    pub allowed_email_domains: Vec<String>,
    pub ca_file: String,
    pub client_cert_file: String,
    pub client_key_file: String,
}

impl Default for RawRoute {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            upstream: String::new(),
            strip_prefix: false,
            preserve_host: false,
            public: false,
            csrf: true,
            allowed_groups: vec![],
            required_scopes: vec![],
            allowed_email_domains: vec![],
            ca_file: String::new(),
            client_cert_file: String::new(),
            client_key_file: String::new(),
        }
    }
}

/// API clients presenting access tokens instead of a session cookie.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawBearer {
    pub enabled: bool,
    pub client_ids: Vec<String>,
    pub required_scopes: Vec<String>,
    pub required_groups: Vec<String>,
}

/// The identity provider; the whole section is optional (no `kind`: a plain proxy).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawProvider {
    pub kind: String,
    pub region: String,
    pub user_pool_id: String,
    /// `original` or `updated`: the user pool's issuer form.
    pub cognito_issuer: String,
    pub domain: String,
    pub issuer: String,
    /// Fetch discovery and keys here instead of the issuer's host (tests, the demo).
    pub issuer_endpoint: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub groups_claim: String,
    pub http_timeout: String,
}

impl Default for RawProvider {
    fn default() -> Self {
        Self {
            kind: String::new(),
            region: String::new(),
            user_pool_id: String::new(),
            cognito_issuer: "original".into(),
            domain: String::new(),
            issuer: String::new(),
            issuer_endpoint: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            groups_claim: String::new(),
            http_timeout: "10s".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawSession {
    pub cookie_keys: Vec<String>,
    pub cookie_name: String,
    pub lifetime: String,
    pub refresh_skew: String,
    pub insecure_dev_cookies: bool,
    /// `cookie` or `redis`: where the session lives.
    pub store: String,
}

impl Default for RawSession {
    fn default() -> Self {
        Self {
            cookie_keys: vec![],
            cookie_name: "portcullis".into(),
            lifetime: "12h".into(),
            refresh_skew: "60s".into(),
            insecure_dev_cookies: false,
            store: "cookie".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawIdentity {
    pub user_id_header: String,
    pub username_header: String,
    pub email_header: String,
    pub groups_header: String,
    pub assertion_header: String,
    pub csrf_header: String,
    pub pass_access_token: bool,
}

impl Default for RawIdentity {
    fn default() -> Self {
        Self {
            user_id_header: "x-user-id".into(),
            username_header: "x-user-name".into(),
            email_header: "x-user-email".into(),
            groups_header: "x-user-groups".into(),
            assertion_header: "x-portcullis-identity".into(),
            csrf_header: "x-csrf".into(),
            pass_access_token: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawRedis {
    /// Empty: no Redis.
    pub url: String,
    pub key_prefix: String,
    pub command_timeout: String,
    pub connections: u32,
    /// PEM file of the CAs trusted for `rediss://` (empty: the system's roots).
    pub ca_file: String,
}

impl Default for RawRedis {
    fn default() -> Self {
        Self {
            url: String::new(),
            key_prefix: "portcullis:".into(),
            command_timeout: "250ms".into(),
            connections: 2,
            ca_file: String::new(),
        }
    }
}
