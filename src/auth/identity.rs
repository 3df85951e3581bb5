//! Identity headers to the upstream: strip, then set.
//!
//! Every incoming copy of a header the gateway owns is removed first, whatever its case
//! (header names are case-insensitive, and `http` stores them lowercased), and the
//! attempt is logged; then the headers are set only from the verified session.

use super::assertion::Assertions;
use super::session::Session;
use crate::config::IdentityConfig;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};

pub struct IdentityHeaders {
    names: [HeaderName; 5],
    pass_access_token: bool,
    pub assertions: Assertions,
}

impl IdentityHeaders {
    pub fn new(config: &IdentityConfig, assertions: Assertions) -> Self {
        Self {
            names: [
                config.user_id.clone(),
                config.username.clone(),
                config.email.clone(),
                config.groups.clone(),
                config.assertion.clone(),
            ],
            pass_access_token: config.pass_access_token,
            assertions,
        }
    }

    /// Removes client-sent copies; returns whether any were present (a spoofing attempt).
    /// Spellings with `_` for `-` go too: CGI, WSGI, Rack and PHP turn both into the
    /// same variable (`HTTP_X_USER_ID`), so `x_user_id` would pass for `x-user-id`.
    pub fn strip(&self, headers: &mut HeaderMap, request_id: &str) -> bool {
        let mut spoofed = false;
        for name in &self.names {
            if headers.remove(name).is_some() {
                spoofed = true;
                tracing::warn!(request_id, header = %name, "removed an identity header sent by the client");
            }
        }
        let disguised: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().contains('_') && self.names.iter().any(|own| same_for_cgi(name, own)))
            .cloned()
            .collect();
        for name in disguised {
            headers.remove(&name);
            spoofed = true;
            tracing::warn!(request_id, header = %name, "removed an identity header sent by the client");
        }
        spoofed
    }

    pub fn set(&self, headers: &mut HeaderMap, who: &Identity<'_>) {
        let [user_id, username, email, groups, assertion] = &self.names;
        let mut put = |name: &HeaderName, value: &str| {
            // Claims are text from the provider; anything a header cannot carry is left out.
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.insert(name.clone(), value);
            }
        };
        put(user_id, who.sub);
        if let Some(name) = who.username {
            put(username, name);
        }
        if let Some(address) = who.email {
            put(email, address);
        }
        if !who.groups.is_empty() {
            put(groups, &who.groups.join(","));
        }
        if let Some(value) = self.assertions.header_value(who, super::now_secs()) {
            headers.insert(assertion.clone(), value);
        }
        if self.pass_access_token
            && let Some(token) = who.access_token
            && let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}"))
        {
            headers.insert(AUTHORIZATION, bearer);
        }
    }
}

/// Whether two header names become the same CGI variable (`-` and `_` alike; both are
/// lower case already).
fn same_for_cgi(a: &HeaderName, b: &HeaderName) -> bool {
    let fold = |byte: &u8| if *byte == b'_' { b'-' } else { *byte };
    a.as_str().len() == b.as_str().len()
        && a.as_str().bytes().map(|b| fold(&b)).eq(b.as_str().bytes().map(|b| fold(&b)))
}

/// Who a request is from, verified: from a session cookie or a Bearer access token.
pub struct Identity<'a> {
    pub sub: &'a str,
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
    /// The provider's `email_verified`, when it sent one.
    pub email_verified: Option<bool>,
    pub groups: &'a [String],
    /// Granted scopes, space-separated as OAuth writes them.
    pub scope: &'a str,
    /// The session's access token, passed upstream when configured.
    pub access_token: Option<&'a str>,
    /// What the signed assertion may be cached under, and its version: the session id
    /// or the Bearer token's signature, with the access token's expiry.
    pub assertion_key: Option<(&'a str, u64)>,
}

impl Session {
    pub fn identity(&self) -> Identity<'_> {
        Identity {
            sub: &self.sub,
            username: self.username.as_deref(),
            email: self.email.as_deref(),
            email_verified: self.email_verified,
            groups: &self.groups,
            scope: &self.scope,
            assertion_key: Some((&self.sid, self.access_expires_at)),
            access_token: Some(&self.access_token),
        }
    }
}
