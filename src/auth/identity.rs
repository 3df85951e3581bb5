//! Identity headers to the upstream: strip, then set.
//!
//! Every incoming copy of a header the gateway owns is removed first, whatever its case
//! (header names are case-insensitive, and `http` stores them lowercased), and the
//! attempt is logged; then the headers are set only from the verified session.

use super::assertion::Assertions;
use super::session::Session;
use crate::config::IdentityConfig;
use crate::proxy::headers::{self, Added};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::OnceLock;

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
        let spoofed = headers::remove_where(headers, |name| {
            self.names.contains(name)
                || (name.as_str().contains('_') && self.names.iter().any(|own| same_for_cgi(name, own)))
        });
        for name in &spoofed {
            tracing::warn!(request_id, header = %name, "removed an identity header sent by the client");
        }
        !spoofed.is_empty()
    }

    /// Sets the identity headers of `who` (a Bearer token's identity).
    pub fn set(&self, headers: &mut HeaderMap, who: &Identity<'_>) {
        for (name, value) in self.values(who) {
            headers.insert(name, value);
        }
        self.set_assertion(headers, who);
    }

    /// Adds the identity headers of a session to `added`, the headers the proxy adds
    /// (the client's copies are gone: [`IdentityHeaders::strip`]). Its values are built
    /// on the first request and kept with the opened session, which the worker reuses
    /// for the session's next requests (`opened.rs`).
    pub fn add_for_session(&self, headers: &mut HeaderMap, added: &mut Added, session: &Session) {
        if self.pass_access_token {
            headers.remove(AUTHORIZATION); // the session's token replaces the client's
        }
        let who = session.identity();
        let values = session.identity_headers.0.get_or_init(|| self.values(&who).into_boxed_slice());
        added.extend(values.iter().cloned());
        if let Some(value) = self.assertions.header_value(&who, super::now_secs()) {
            added.push((self.names[4].clone(), value));
        }
    }

    /// The identity headers of a `/auth/verify` answer, for the calling proxy to copy
    /// upstream: from `session`, or else as the admission set them in `request` (a
    /// Bearer token's; none on a public route). Every name the gateway owns is there
    /// once, empty when the user has no such claim, so that the proxy's copy replaces a
    /// client-sent one in every proxy (some copy only the names an answer carries).
    pub fn answer(&self, response: &mut HeaderMap, session: Option<&Session>, request: &HeaderMap) {
        let mut from_session = HeaderMap::new();
        if let Some(session) = session {
            let mut added = Added::with_capacity(self.names.len() + 1);
            self.add_for_session(&mut from_session, &mut added, session);
            from_session.extend(added.into_iter().map(|(name, value)| (Some(name), value)));
        }
        let source = if session.is_some() { &from_session } else { request };
        // Never `Authorization`: the answer may be read by more than the upstream.
        for name in &self.names {
            let value = source.get(name).cloned().unwrap_or_else(|| HeaderValue::from_static(""));
            response.insert(name.clone(), value);
        }
    }

    /// The headers that depend only on who it is: all but the assertion, which is
    /// re-signed as it ages.
    fn values(&self, who: &Identity<'_>) -> Vec<(HeaderName, HeaderValue)> {
        let [user_id, username, email, groups, _] = &self.names;
        let mut values = Vec::with_capacity(5);
        let mut put = |name: &HeaderName, value: &str| {
            // Claims are text from the provider; anything a header cannot carry is left out.
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                values.push((name.clone(), value));
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
        if self.pass_access_token
            && let Some(token) = who.access_token
            && let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}"))
        {
            values.push((AUTHORIZATION, bearer));
        }
        values
    }

    fn set_assertion(&self, headers: &mut HeaderMap, who: &Identity<'_>) {
        if let Some(value) = self.assertions.header_value(who, super::now_secs()) {
            headers.insert(self.names[4].clone(), value);
        }
    }
}

/// A session's identity headers once built ([`IdentityHeaders::add_for_session`]).
#[derive(Debug, Default)]
pub struct IdentityValues(OnceLock<Box<[(HeaderName, HeaderValue)]>>);

impl Clone for IdentityValues {
    /// Empty: a copy is made to be changed (a refresh), and builds its own.
    fn clone(&self) -> Self {
        Self::default()
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
