//! Portcullis: an OAuth2/OIDC backend-for-frontend gateway. It sits in front of a
//! single-page app and its APIs as a reverse proxy, so the browser never holds a token.
//!
//! Map of the crate:
//! - [`config`]: the TOML file and `PORTCULLIS_*` overrides, validated into typed values.
//! - [`server`]: listeners, HTTP/1.1 + HTTP/2, graceful shutdown; `workers`: one
//!   single-threaded runtime per core serving the accepted connections.
//! - `gateway`: the per-request handler (request id, routing, errors, access log).
//! - [`proxy`]: forwarding upstream with streaming bodies, header rules, WebSockets.
//! - [`respond`] and [`error`]: the one place errors become responses.
//! - [`admin`] and [`metrics`]: `/healthz`, `/readyz`, `/metrics` on their own listener.
//! - [`demo`]: the built-in demo application behind `portcullis demo`.
//! - [`sessions_command`]: `portcullis sessions revoke`.

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod dev_idp;
pub mod error;
mod forward_auth;
mod gateway;
pub mod metrics;
pub mod oidc;
pub mod otlp;
pub mod proxy;
pub mod request_id;
pub mod respond;
pub mod secret;
pub mod server;
pub mod session;
pub mod sessions_command;
mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod trace_context;
mod workers;

pub use config::Config;
pub use server::{Portcullis, RunError, StartError};
