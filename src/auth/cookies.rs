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
        self.is_ours_bytes(name.as_bytes())
    }

    fn is_ours_bytes(&self, name: &[u8]) -> bool {
        name.starts_with(self.prefix.as_bytes())
    }

    /// What the upstream may see of a request's cookies: every cookie but the
    /// gateway's, so it never sees session or login state. Decided on bytes, so a
    /// `Cookie` header that is not UTF-8 loses the gateway's cookies too. Two steps
    /// (this, then [`UpstreamCookies::apply`]), so the cookies are read once.
    pub fn for_upstream(&self, cookies: &RequestCookies) -> UpstreamCookies {
        if !cookies.pairs.iter().any(|(name, _)| self.is_ours_bytes(name)) {
            return UpstreamCookies::AsSent;
        }
        let mut kept = Vec::new();
        for (name, value) in cookies.pairs.iter().filter(|(name, _)| !self.is_ours_bytes(name)) {
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(name);
            kept.push(b'=');
            kept.extend_from_slice(value);
        }
        UpstreamCookies::Only(HeaderValue::from_bytes(&kept).ok().filter(|_| !kept.is_empty()))
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

/// Every (name, value) pair of the request's `Cookie` headers that is text, in order,
/// borrowed from the headers (a session is several kilobytes: not copied just to look
/// at it).
pub fn read(headers: &HeaderMap) -> Vec<(&str, &str)> {
    let text = |bytes| std::str::from_utf8(bytes).ok();
    let cookies = RequestCookies::read(headers, None);
    cookies.pairs.iter().filter_map(|&(name, value)| Some((text(name)?, text(value)?))).collect()
}

/// A request's `Cookie` headers, read once for everything that looks at them: the
/// limits, the session, and what the upstream may see.
///
/// Runs on every request over ~4.5 KB of session, so it scans them once, as bytes, with
/// the SIMD search of `memchr`; only the values looked up ([`RequestCookies::get`]) are
/// checked to be text, with `simdutf8` (the standard library's searches go a word at a
/// time, which made reading cookies half the cost of the whole authenticated check).
pub struct RequestCookies<'a> {
    /// The (name, value) pairs, in order, trimmed. Entries without `=` are left out.
    pairs: Vec<(&'a [u8], &'a [u8])>,
    exceeded: bool,
}

impl<'a> RequestCookies<'a> {
    /// Reads every `Cookie` header; with `limits`, stops as soon as the headers are
    /// larger or hold more `;`-separated entries than allowed ([`Self::exceeded`]): a
    /// cookie bomb costs no more than counting.
    pub fn read(headers: &'a HeaderMap, limits: Option<&RequestLimits>) -> Self {
        let (max_bytes, max_entries) = limits.map_or((usize::MAX, usize::MAX), |l| (l.cookie_bytes, l.cookie_count));
        let mut cookies = Self { pairs: Vec::with_capacity(8), exceeded: false };
        let (mut bytes, mut entries) = (0, 0);
        for header in headers.get_all(COOKIE) {
            let header = header.as_bytes();
            bytes += header.len();
            if bytes > max_bytes {
                cookies.exceeded = true;
                return cookies;
            }
            let mut start = 0;
            for end in memchr::memchr_iter(b';', header).chain([header.len()]) {
                entries += 1;
                if entries > max_entries {
                    cookies.exceeded = true;
                    return cookies;
                }
                let entry = &header[start..end];
                if let Some(equals) = memchr::memchr(b'=', entry) {
                    cookies.pairs.push((entry[..equals].trim_ascii(), entry[equals + 1..].trim_ascii()));
                }
                start = end + 1;
            }
        }
        cookies
    }

    /// Whether the reading stopped at the limits it was given.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// The value of the first cookie called `name`, if it is text.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        let (_, value) = self.pairs.iter().find(|(candidate, _)| *candidate == name.as_bytes())?;
        simdutf8::basic::from_utf8(value).ok()
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

        let upstream_sees = |request: &mut HeaderMap| {
            jar.for_upstream(&RequestCookies::read(request, None)).apply(request);
            request.get_all(COOKIE).iter().map(|v| v.as_bytes().to_vec()).collect::<Vec<_>>()
        };
        let mut request = HeaderMap::new();
        request.insert(
            COOKIE,
            HeaderValue::from_static("app=1; __Host-portcullis.0=x; __Host-portcullis-tx-ab=y; other=2"),
        );
        assert_eq!(upstream_sees(&mut request), [b"app=1; other=2"]);
        let mut only_ours = HeaderMap::new();
        only_ours.insert(COOKIE, HeaderValue::from_static("__Host-portcullis=x"));
        assert!(upstream_sees(&mut only_ours).is_empty());
        let mut not_text = HeaderMap::new();
        not_text.insert(COOKIE, HeaderValue::from_bytes(b"theme=\xe9t\xe9; __Host-portcullis.0=x").unwrap());
        assert_eq!(upstream_sees(&mut not_text), [b"theme=\xe9t\xe9"], "a header that is not UTF-8 loses ours too");
        let mut none = HeaderMap::new();
        none.insert(COOKIE, HeaderValue::from_static("a=1"));
        assert_eq!(upstream_sees(&mut none), [b"a=1"]);

        let mut pairs = HeaderMap::new();
        pairs.append(COOKIE, HeaderValue::from_static(" a=1;b = 2 ;;novalue; c=x=y;"));
        pairs.append(COOKIE, HeaderValue::from_bytes(b"skipped=\xff; e=5").unwrap());
        pairs.append(COOKIE, HeaderValue::from_bytes("d=caf\u{e9}".as_bytes()).unwrap());
        assert_eq!(read(&pairs), [("a", "1"), ("b", "2"), ("c", "x=y"), ("e", "5"), ("d", "caf\u{e9}")]);
        let cookies = RequestCookies::read(&pairs, None);
        assert_eq!(cookies.get("c"), Some("x=y"));
        assert_eq!(cookies.get("skipped"), None, "not text");
        assert_eq!(cookies.get("novalue"), None);

        // 3 headers of 28 + 14 + 7 bytes; 9 `;`-separated entries, pairs or not, text or not.
        let limits = |cookie_bytes, cookie_count| RequestLimits {
            header_bytes: 1 << 16,
            headers: 100,
            cookie_bytes,
            cookie_count,
        };
        assert!(!RequestCookies::read(&pairs, Some(&limits(49, 9))).exceeded());
        assert!(RequestCookies::read(&pairs, Some(&limits(48, 9))).exceeded());
        assert!(RequestCookies::read(&pairs, Some(&limits(49, 8))).exceeded());

        let dev = CookieJar::new("portcullis", true);
        let mut out = HeaderMap::new();
        dev.set(&mut out, "portcullis", "v", 60);
        assert_eq!(out[SET_COOKIE], "portcullis=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60");
    }
}
