//! The gateway's cookies: how they are written, read, and kept from the upstream.
//!
//! Every gateway cookie is `__Host-` prefixed, `Secure`, `HttpOnly`, `SameSite=Lax`,
//! `Path=/` (the prefix makes the browser refuse it without Secure, with a Domain, or
//! with another Path, so no subdomain can plant or overwrite one). Only
//! `session.insecure_dev_cookies`, for http://localhost development, drops the prefix
//! and `Secure`.

use crate::config::RequestLimits;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

#[derive(Debug, Clone)]
pub struct CookieJar {
    /// Every gateway cookie name starts with this (`__Host-portcullis`).
    pub prefix: String,
    secure: bool,
}

impl CookieJar {
    pub fn new(name: &str, insecure_dev_cookies: bool) -> Self {
        let prefix = if insecure_dev_cookies { name.to_owned() } else { format!("__Host-{name}") };
        Self { prefix, secure: !insecure_dev_cookies }
    }

    pub fn session_name(&self) -> &str {
        &self.prefix
    }

    /// `Set-Cookie` for a value living `max_age` seconds.
    pub fn set(&self, headers: &mut HeaderMap, name: &str, value: &str, max_age: u64) {
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}; Max-Age={max_age}");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(SET_COOKIE, value);
        }
    }

    pub fn expire(&self, headers: &mut HeaderMap, name: &str) {
        self.set(headers, name, "", 0);
    }

    pub fn is_ours(&self, name: &str) -> bool {
        name.starts_with(&self.prefix)
    }

    /// What the upstream may see of a request's cookies (`pairs`, from [`read`]):
    /// every cookie but the gateway's, so it never sees session or login state. Two
    /// steps (this, then [`UpstreamCookies::apply`]), so a caller that reads the
    /// cookies for the session too reads them once.
    pub fn for_upstream(&self, pairs: &[(&str, &str)]) -> UpstreamCookies {
        if !pairs.iter().any(|(name, _)| self.is_ours(name)) {
            return UpstreamCookies::AsSent;
        }
        let mut kept = String::new();
        for (name, value) in pairs.iter().filter(|(name, _)| !self.is_ours(name)) {
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(name);
            kept.push('=');
            kept.push_str(value);
        }
        UpstreamCookies::Only(HeaderValue::from_str(&kept).ok().filter(|_| !kept.is_empty()))
    }
}

/// The `Cookie` header the upstream gets ([`CookieJar::for_upstream`]).
pub enum UpstreamCookies {
    /// None of the gateway's cookies were sent: the header passes as it is.
    AsSent,
    /// The other cookies, if any.
    Only(Option<HeaderValue>),
}

impl UpstreamCookies {
    pub fn apply(self, headers: &mut HeaderMap) {
        if let Self::Only(kept) = self {
            match kept {
                Some(kept) => headers.insert(COOKIE, kept),
                None => headers.remove(COOKIE),
            };
        }
    }
}

impl CookieJar {
    /// Removes `Set-Cookie` headers of an upstream response that would set or clear one
    /// of the gateway's cookies: an upstream (a public one above all) must not plant a
    /// session of its choosing in the browser, nor end one.
    pub fn strip_set_cookies(&self, headers: &mut HeaderMap, request_id: &str) {
        if !headers.contains_key(SET_COOKIE) {
            return;
        }
        let all: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
        let (theirs, ours): (Vec<_>, Vec<_>) = all.into_iter().partition(|value| {
            let name = value.as_bytes().split(|&b| b == b'=').next().unwrap_or_default();
            !self.is_ours(String::from_utf8_lossy(name).trim())
        });
        if ours.is_empty() {
            return;
        }
        tracing::warn!(request_id, count = ours.len(), "removed the upstream's Set-Cookie for gateway cookies");
        headers.remove(SET_COOKIE);
        for value in theirs {
            headers.append(SET_COOKIE, value);
        }
    }
}

/// Every (name, value) pair of the request's `Cookie` headers, in order, borrowed from
/// the headers (a session is several kilobytes: not copied just to look at it).
pub fn read(headers: &HeaderMap) -> Vec<(&str, &str)> {
    RequestCookies::read(headers).pairs
}

/// A request's `Cookie` headers, read once for everything that looks at them: the
/// limits, the session, and what the upstream may see.
///
/// Runs on every request over ~4.5 KB of session, so it scans them once, with the
/// SIMD searches of `memchr` and `simdutf8` (the standard library's go a word at a
/// time, which made this half the cost of the whole authenticated check).
pub struct RequestCookies<'a> {
    /// The (name, value) pairs, in order. A header that is not UTF-8 gives none.
    pub pairs: Vec<(&'a str, &'a str)>,
    /// `;`-separated entries, pairs or not, of every header: what a cookie bomb inflates.
    pub entries: usize,
    /// Bytes of every `Cookie` header.
    pub bytes: usize,
}

impl<'a> RequestCookies<'a> {
    pub fn read(headers: &'a HeaderMap) -> Self {
        let mut cookies = Self { pairs: Vec::with_capacity(8), entries: 0, bytes: 0 };
        for value in headers.get_all(COOKIE) {
            let value = value.as_bytes();
            cookies.bytes += value.len();
            let text = simdutf8::basic::from_utf8(value).ok();
            let mut start = 0;
            for end in memchr::memchr_iter(b';', value).chain([value.len()]) {
                cookies.entries += 1;
                if let Some((name, value)) = text.and_then(|text| text[start..end].split_once('=')) {
                    cookies.pairs.push((name.trim(), value.trim()));
                }
                start = end + 1;
            }
        }
        cookies
    }

    /// Whether they are larger or more numerous than `limits` allow.
    pub fn exceed(&self, limits: &RequestLimits) -> bool {
        self.bytes > limits.cookie_bytes || self.entries > limits.cookie_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_and_stripping() {
        let jar = CookieJar::new("portcullis", false);
        let mut out = HeaderMap::new();
        jar.set(&mut out, "__Host-portcullis", "v", 60);
        assert_eq!(out[SET_COOKIE], "__Host-portcullis=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60");

        let mut request = HeaderMap::new();
        request.insert(
            COOKIE,
            HeaderValue::from_static("app=1; __Host-portcullis.0=x; __Host-portcullis-tx-ab=y; other=2"),
        );
        let upstream = jar.for_upstream(&read(&request));
        upstream.apply(&mut request);
        assert_eq!(request[COOKIE], "app=1; other=2");

        let mut only_ours = HeaderMap::new();
        only_ours.insert(COOKIE, HeaderValue::from_static("__Host-portcullis=x"));
        let upstream = jar.for_upstream(&read(&only_ours));
        upstream.apply(&mut only_ours);
        assert!(!only_ours.contains_key(COOKIE));

        let mut pairs = HeaderMap::new();
        pairs.append(COOKIE, HeaderValue::from_static(" a=1;b = 2 ;;novalue; c=x=y;"));
        pairs.append(COOKIE, HeaderValue::from_bytes(b"skipped=\xff").unwrap());
        pairs.append(COOKIE, HeaderValue::from_bytes("d=caf\u{e9}".as_bytes()).unwrap());
        assert_eq!(read(&pairs), [("a", "1"), ("b", "2"), ("c", "x=y"), ("d", "caf\u{e9}")]);

        let read = RequestCookies::read(&pairs);
        assert_eq!(read.entries, 8, "every `;`-separated entry counts, pairs or not, UTF-8 or not");
        assert_eq!(read.bytes, 28 + 9 + 7);
        let limits = |cookie_bytes, cookie_count| RequestLimits {
            header_bytes: 1 << 16,
            headers: 100,
            cookie_bytes,
            cookie_count,
        };
        assert!(!read.exceed(&limits(44, 8)));
        assert!(read.exceed(&limits(43, 8)));
        assert!(read.exceed(&limits(44, 7)));

        let dev = CookieJar::new("portcullis", true);
        let mut out = HeaderMap::new();
        dev.set(&mut out, "portcullis", "v", 60);
        assert_eq!(out[SET_COOKIE], "portcullis=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60");
    }
}
