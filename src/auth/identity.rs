//! Identity headers to the upstream: strip, then set.
//!
//! Every incoming copy of a header the gateway owns is removed first, whatever its case
//! (header names are case-insensitive, and `http` stores them lowercased), and the
//! attempt is logged; then the headers are set only from the verified session.

use super::session::Session;
use crate::config::IdentityConfig;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};

pub struct IdentityHeaders {
    names: [HeaderName; 4],
    pass_access_token: bool,
}

impl IdentityHeaders {
    pub fn new(config: &IdentityConfig) -> Self {
        Self {
            names: [config.user_id.clone(), config.username.clone(), config.email.clone(), config.groups.clone()],
            pass_access_token: config.pass_access_token,
        }
    }

    /// Removes client-sent copies; returns whether any were present (a spoofing attempt).
    pub fn strip(&self, headers: &mut HeaderMap, request_id: &str) -> bool {
        let mut spoofed = false;
        for name in &self.names {
            if headers.remove(name).is_some() {
                spoofed = true;
                tracing::warn!(request_id, header = %name, "removed an identity header sent by the client");
            }
        }
        spoofed
    }

    pub fn set(&self, headers: &mut HeaderMap, session: &Session) {
        let [user_id, username, email, groups] = &self.names;
        let mut put = |name: &HeaderName, value: &str| {
            // Claims are text from the provider; anything a header cannot carry is left out.
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.insert(name.clone(), value);
            }
        };
        put(user_id, &session.sub);
        if let Some(name) = &session.username {
            put(username, name);
        }
        if let Some(address) = &session.email {
            put(email, address);
        }
        if !session.groups.is_empty() {
            put(groups, &session.groups.join(","));
        }
        if self.pass_access_token
            && let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {}", session.access_token))
        {
            headers.insert(AUTHORIZATION, bearer);
        }
    }
}
