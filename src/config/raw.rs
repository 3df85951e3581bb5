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
    #[serde(rename = "route")]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawServer {
    pub listen: String,
    pub admin_listen: String,
    pub shutdown_timeout: String,
    pub header_read_timeout: String,
    pub trust_forwarded_headers: bool,
    pub workers: u32,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            shutdown_timeout: "30s".into(),
            header_read_timeout: "10s".into(),
            trust_forwarded_headers: false,
            workers: 0,
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
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            connect_timeout: "5s".into(),
            response_timeout: "30s".into(),
            idle_timeout: "60s".into(),
            pool_idle_timeout: "90s".into(),
            pool_max_idle_per_host: 256,
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

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawRoute {
    pub prefix: String,
    pub upstream: String,
    pub strip_prefix: bool,
    pub preserve_host: bool,
}
