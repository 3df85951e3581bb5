//! Configuration: one TOML file, overridden key by key from `PORTCULLIS_*` environment
//! variables, turned into typed values once at startup.
//!
//! Loading runs in four steps, and every step names the key it complains about:
//! 1. parse the file as TOML;
//! 2. apply environment overrides (`env.rs`), typed after the defaults in `raw.rs`;
//! 3. deserialize into the raw structs, collecting every unknown key (typos are errors);
//! 4. validate (`validate.rs`): parse durations, addresses and URLs, collecting every problem.
//!
//! The inside of the gateway only ever sees the typed [`Config`].

mod env;
mod problem;
mod raw;
mod validate;

use crate::secret::Secret;
pub use env::PREFIX as ENV_PREFIX;
pub use problem::{ConfigError, Problem};
pub use raw::RawConfig;

use http::uri::{Authority, Scheme};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub log: LogConfig,
    /// In file order; the route table sorts them for matching.
    pub routes: Vec<RouteConfig>,
    /// Login and sessions; `None` without a `[provider]`: a plain reverse proxy.
    pub auth: Option<AuthConfig>,
    pub forward_auth: ForwardAuthConfig,
    /// Span export; `None`: off.
    pub otlp: Option<OtlpConfig>,
}

/// `[otlp]`: where the spans of requests go.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The collector's OTLP/HTTP traces URL (`http://collector:4318/v1/traces`).
    pub endpoint: url::Url,
    pub service_name: String,
}

/// `/auth/verify`, asked by the proxy a team already runs (see `forward_auth.rs`).
#[derive(Debug, Clone)]
pub struct ForwardAuthConfig {
    /// `/auth/verify` is answered; off, it does not exist.
    pub enabled: bool,
    /// Only these peers are answered: the forwarded headers they send pick the route
    /// whose policy applies.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The origin the browser sees (`https://app.example.com`); the redirect URI is
    /// this plus `/auth/callback`.
    pub public_url: url::Url,
    pub provider: ProviderConfig,
    pub session: SessionConfig,
    pub identity: IdentityConfig,
    pub bearer: BearerConfig,
    /// Shared by the replicas: the session store (`session.store = "redis"`), and the
    /// refresh single flight and sign-outs for either store.
    pub redis: Option<RedisConfig>,
}

/// Where the sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Sealed into the browser's cookies.
    Cookie,
    /// In Redis; the browser holds a sealed handle.
    Redis,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` (TLS), user and password included: a secret.
    pub url: Secret<String>,
    pub key_prefix: String,
    /// Bound on every command; a slower Redis counts as down.
    pub command_timeout: Duration,
    /// Multiplexed connections, taken in turn.
    pub connections: usize,
    /// The CAs trusted for `rediss://` instead of the system's roots (PEM, read at start).
    pub ca_pem: Option<Vec<u8>>,
}

/// `Authorization: Bearer` access tokens from API clients (off by default).
#[derive(Debug, Clone)]
pub struct BearerConfig {
    pub enabled: bool,
    /// App clients whose access tokens are accepted: the gateway's own, plus these.
    pub client_ids: Vec<String>,
    /// Every one of these scopes must be granted.
    pub required_scopes: Vec<String>,
    /// At least one of these groups, when any are listed.
    pub required_groups: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Cognito,
    Oidc,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// The `iss` every token must carry; discovery is read at `{issuer}/.well-known/`.
    pub issuer: String,
    /// Cognito: discovery and keys are fetched from this origin instead of the
    /// issuer's host (tests and the demo, against the development provider).
    pub issuer_endpoint: Option<String>,
    /// Cognito's Hosted UI origin (authorize, token, logout live there).
    pub domain: Option<String>,
    pub client_id: String,
    pub client_secret: Option<Secret<String>>,
    pub scopes: Vec<String>,
    /// The claim listing the user's groups (`cognito:groups` for Cognito).
    pub groups_claim: String,
    /// Bound on every back-channel request (discovery, JWKS, token, revoke).
    pub http_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Decoded keys; the first seals, all open.
    pub cookie_keys: Vec<Secret<Vec<u8>>>,
    /// Base name; the browser sees `__Host-{name}` unless `insecure_dev_cookies`.
    pub cookie_name: String,
    /// Absolute session lifetime from login.
    pub lifetime: Duration,
    /// Refresh when the access token expires within this.
    pub refresh_skew: Duration,
    pub insecure_dev_cookies: bool,
    pub store: StoreKind,
}

#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub user_id: http::HeaderName,
    pub username: http::HeaderName,
    pub email: http::HeaderName,
    pub groups: http::HeaderName,
    /// The signed identity assertion (ES256 JWT; keys at `/auth/jwks.json`).
    pub assertion: http::HeaderName,
    /// A request carrying this header (value `1`) passes the CSRF check: browsers do
    /// not let another site set custom headers without a CORS preflight.
    pub csrf: http::HeaderName,
    /// Also send the access token upstream as `Authorization: Bearer`.
    pub pass_access_token: bool,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Health, readiness (and later metrics) listen here, away from user traffic.
    pub admin_listen: SocketAddr,
    /// The bearer token the admin listener's operations (`POST /sessions/revoke`)
    /// require; without one, they answer loopback peers only.
    pub admin_token: Option<crate::secret::Secret<String>>,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
    /// A client must send its complete request head within this time (slowloris guard).
    pub header_read_timeout: Duration,
    /// Keep and extend incoming `X-Forwarded-*` headers (behind a trusted load balancer)
    /// instead of replacing them.
    pub trust_forwarded_headers: bool,
    /// Connection-serving threads, each with its own runtime and upstream pool.
    pub workers: usize,
    /// Route prefixes match in any ASCII case (for upstreams that treat `/Admin` as `/admin`).
    pub case_insensitive_routes: bool,
    pub limits: RequestLimits,
    /// HTTPS on `listen` (`[server.tls]`); `None`: plain HTTP.
    pub tls: Option<ServerTlsConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerTlsConfig {
    pub files: crate::tls::TlsFiles,
    /// `Strict-Transport-Security` on every answer.
    pub hsts: Option<http::HeaderValue>,
    /// A plain-HTTP listener answering every request with a redirect to https.
    pub redirect_listen: Option<SocketAddr>,
}

/// Bounds on what a client may send before the gateway looks at it; beyond them, 431.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// The whole request head (request line and headers).
    pub header_bytes: usize,
    pub headers: usize,
    /// All `Cookie` headers together.
    pub cookie_bytes: usize,
    pub cookie_count: usize,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    /// Time from sending the request to receiving the upstream's response headers.
    pub response_timeout: Duration,
    /// Longest silence allowed inside a streaming request or response body.
    pub idle_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    /// Longest silence, both directions together, allowed in a WebSocket tunnel.
    pub websocket_idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A `tracing` filter directive, e.g. `info` or `portcullis=debug,hyper=info`.
    pub level: String,
    pub format: LogFormat,
    pub access_log: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Starts with `/`. Matches at segment boundaries: `/api` matches `/api` and
    /// `/api/x` but not `/apix`; `/api/` matches only below `/api/`.
    pub prefix: String,
    /// `None`: the route only says who may reach the path, for `/auth/verify`; a
    /// request to the gateway itself there is not forwarded.
    pub upstream: Option<UpstreamTarget>,
    /// Remove the prefix before forwarding (`/api/users` → `/users`).
    pub strip_prefix: bool,
    /// Send the client's `Host` upstream instead of the upstream's own authority.
    pub preserve_host: bool,
    /// Served without a session (when a provider is configured; otherwise all are).
    pub public: bool,
    /// Refuse cross-site unsafe requests carried by the session cookie (see `auth/csrf.rs`).
    pub csrf: bool,
    /// Who may use the route, beyond having signed in (see `auth/policy.rs`).
    pub policy: RoutePolicy,
    /// For an `https://` upstream: what its connections trust and present.
    pub upstream_tls: Option<crate::tls::upstream::UpstreamTlsClient>,
}

/// A route's authorization rules; an empty list is no rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePolicy {
    /// Member of at least one.
    pub groups: Vec<String>,
    /// Granted every one.
    pub scopes: Vec<String>,
    /// A verified email address in one of these domains (lower case, no `@`).
    pub email_domains: Vec<String>,
}

/// Where a route forwards to: `http(s)://host:port` plus an optional base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    pub scheme: Scheme,
    pub authority: Authority,
    /// Prepended to the forwarded path; empty or starting with `/`, never ending with `/`.
    pub base_path: String,
}

impl Config {
    /// Reads `path` and applies overrides from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        // Non-UTF-8 variables cannot be ours (names and values are text); reading them
        // with `vars()` would panic, so they are passed as lossy text and a bad
        // PORTCULLIS_ value is reported like any other.
        let env =
            std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()));
        Self::from_sources(&text, path, env)
    }

    /// The whole loading pipeline with the environment passed in, so tests can use a map.
    pub fn from_sources(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut doc: toml::Table = toml::from_str(text).map_err(|err| ConfigError::Syntax {
            path: path.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        let mut problems = Vec::new();
        let origins = env::apply(&mut doc, &env_defaults(), env, &mut problems);

        let raw = deserialize(doc, &mut problems);
        let config = raw.and_then(|raw| validate::validate(&raw, &mut problems));
        for problem in &mut problems {
            if problem.env_var.is_none() {
                problem.env_var = origin_of(&problem.key, &origins);
            }
        }
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid(problems)),
        }
    }
}

/// The variable that set `key`, or a key below it (an unknown section set only by the
/// environment is reported as the section).
fn origin_of(key: &str, origins: &std::collections::HashMap<String, String>) -> Option<String> {
    origins.get(key).cloned().or_else(|| {
        let mut below: Vec<&String> = origins
            .iter()
            .filter(|(set, _)| set.starts_with(&format!("{key}.")) || set.starts_with(&format!("{key}[")))
            .map(|(_, var)| var)
            .collect();
        below.sort();
        below.first().map(|var| var.to_string())
    })
}

/// The defaults as a TOML table, with one default route so that env overrides of
/// route keys are typed too.
fn env_defaults() -> toml::Table {
    let raw = RawConfig { routes: vec![Default::default()], ..Default::default() };
    toml::Table::try_from(raw).expect("defaults serialize to TOML")
}

/// Deserializes the merged document, reporting every unknown key, and the first
/// value of the wrong type (serde stops there).
fn deserialize(doc: toml::Table, problems: &mut Vec<Problem>) -> Option<RawConfig> {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result = serde_ignored::deserialize(serde_path_to_error::Deserializer::new(doc, &mut track), |path| {
        unknown.push(ignored_key(&path))
    });
    problems.extend(unknown.into_iter().map(|key| Problem::new(key, "unknown key")));
    match result {
        Ok(raw) => Some(raw),
        Err(err) => {
            problems.push(Problem::new(track.path().to_string(), err.to_string()));
            None
        }
    }
}

/// serde_ignored's path (`route.0.upstrem`) in the form problems use (`route[0].upstrem`).
fn ignored_key(path: &serde_ignored::Path<'_>) -> String {
    let mut segments = Vec::new();
    let mut at = path;
    loop {
        match at {
            serde_ignored::Path::Root => break,
            serde_ignored::Path::Seq { parent, index } => {
                segments.push(index.to_string());
                at = parent;
            }
            serde_ignored::Path::Map { parent, key } => {
                segments.push(key.clone());
                at = parent;
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => at = parent,
        }
    }
    segments.reverse();
    env::key_path(&segments)
}
