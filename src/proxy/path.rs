//! One normalized request path for every decision: routing, authorization policy and
//! the path the upstream receives all use the same string, so a spelling the gateway
//! reads one way cannot reach an upstream that reads it another way.
//!
//! Normalized (RFC 3986 §6.2.2): percent-encoded unreserved characters are decoded
//! (`/%61pi` is `/api`), the remaining escapes get upper-case hex, repeated slashes are
//! merged (`//admin` is `/admin`, as nginx does).
//!
//! Refused, because upstreams disagree on what they mean: dot segments (also encoded,
//! and with `;` parameters: Tomcat reads `..;` as `..`), encoded slashes, backslashes
//! (some servers read them as `/`), encoded control characters, malformed escapes, and
//! escapes that do not decode to UTF-8 (overlong forms such as `%C0%AE` for `.`).
//! Browsers never send any of these: they resolve dot segments before sending.
//! The query string is left alone.
//!
//! Refused as well, with the same errors: what an upstream that decodes the path again
//! would read as one of these. Some servers and frameworks decode twice (IIS did:
//! CVE-2001-0333; so does an app that decodes what its server already decoded), and
//! `/public/%252e%252e/admin` is `/public/../admin` to them. So the decoded path is
//! decoded up to [`MORE_DECODES`] more times, each round as leniently as such a server
//! does (a `%` without two hex digits stays a `%`, so `/100%25` passes), and must still
//! be UTF-8 with no dot segment and no escape of `/`, `\` or a control character.
//! Any spelling and case counts: `%252E`, `%25%32%65` (the gateway decodes `%32%65`
//! itself), `..%253b`, `%25252e`. A double-encoded dot inside a name (`a%252eb`) passes,
//! as `a%2eb` does: it is no segment to any reader. Double-encoded characters that are
//! harmless once decoded (`%2520`, a space) pass unchanged.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path has a \".\" or \"..\" segment")]
    DotSegment,
    #[error("the path has an encoded slash (%2F)")]
    EncodedSlash,
    #[error("the path has a backslash")]
    Backslash,
    #[error("the path has a control character")]
    ControlCharacter,
    #[error("the path has a malformed percent-escape")]
    MalformedEscape,
    #[error("the path's percent-escapes are not UTF-8")]
    NotUtf8,
}

impl PathError {
    /// What the client is told: the rule, in words a developer can act on.
    pub fn public_message(self) -> &'static str {
        match self {
            PathError::DotSegment => "The request path must not contain \".\" or \"..\" segments.",
            PathError::EncodedSlash => "The request path must not contain an encoded slash (%2F).",
            PathError::Backslash => "The request path must not contain a backslash.",
            PathError::ControlCharacter => "The request path must not contain control characters.",
            PathError::MalformedEscape => "The request path has a malformed percent-escape.",
            PathError::NotUtf8 => "The request path's percent-escapes must encode UTF-8.",
        }
    }
}

/// Replaces `uri`'s path by its normalized form ([`normalize`]); its query (and any
/// scheme and authority) stay. Untouched when the path already is normal.
pub fn normalize_uri(uri: &mut http::Uri) -> Result<(), PathError> {
    let normal = match normalize(uri.path())? {
        Cow::Borrowed(_) => return Ok(()),
        Cow::Owned(normal) => normal,
    };
    let mut parts = uri.clone().into_parts();
    let path_and_query = match uri.query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal,
    };
    // A normalized path only loses or decodes characters, so it always parses again.
    parts.path_and_query = Some(path_and_query.parse().expect("a normalized path is a valid path"));
    *uri = http::Uri::from_parts(parts).expect("the same URI with another path");
    Ok(())
}

/// The normalized form of `path`; borrowed when it already is normal (the common case).
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    let mut plain = true;
    for (i, &byte) in bytes.iter().enumerate() {
        match byte {
            b'\\' => return Err(PathError::Backslash),
            b'%' => plain = false,
            b'/' if bytes.get(i + 1) == Some(&b'/') => plain = false,
            _ if byte.is_ascii_control() => return Err(PathError::ControlCharacter),
            _ => {}
        }
    }
    if plain {
        check_segments(bytes)?;
        return Ok(Cow::Borrowed(path));
    }

    let mut normal = String::with_capacity(path.len());
    // Every escape decoded, to check UTF-8 and dot segments as an upstream would see them.
    let mut decoded = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let value = bytes.get(i + 1..i + 3).and_then(hex_pair).ok_or(PathError::MalformedEscape)?;
            match value {
                b'/' => return Err(PathError::EncodedSlash),
                b'\\' => return Err(PathError::Backslash),
                _ if value.is_ascii_control() => return Err(PathError::ControlCharacter),
                _ if is_unreserved(value) => normal.push(value as char),
                _ => {
                    normal.push('%');
                    normal.push(HEX[usize::from(value >> 4)] as char);
                    normal.push(HEX[usize::from(value & 0xf)] as char);
                }
            }
            decoded.push(value);
            i += 3;
            continue;
        }
        if byte == b'/' && normal.ends_with('/') {
            i += 1;
            continue;
        }
        // Copy the run of plain bytes up to the next escape or slash in one go (keeps
        // multi-byte UTF-8 characters whole).
        let end = bytes[i + 1..].iter().position(|&b| b == b'%' || b == b'/').map_or(bytes.len(), |p| p + i + 1);
        normal.push_str(&path[i..end]);
        decoded.extend_from_slice(&bytes[i..end]);
        i = end;
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(PathError::NotUtf8);
    }
    check_segments(&decoded)?;
    if decoded.contains(&b'%') {
        check_decoded_again(decoded)?;
    }
    Ok(if normal == path { Cow::Borrowed(path) } else { Cow::Owned(normal) })
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// How many more decodes of an accepted path are checked. Bounded because each is a
/// pass over the path; three cover double decoding with room to spare.
pub const MORE_DECODES: usize = 3;

/// Decodes `decoded` again, up to [`MORE_DECODES`] times or until nothing changes, and
/// applies the rules to each result.
fn check_decoded_again(mut decoded: Vec<u8>) -> Result<(), PathError> {
    for _ in 0..MORE_DECODES {
        let mut again = Vec::with_capacity(decoded.len());
        let mut i = 0;
        while i < decoded.len() {
            let escape = if decoded[i] == b'%' { decoded.get(i + 1..i + 3).and_then(hex_pair) } else { None };
            match escape {
                Some(b'/') => return Err(PathError::EncodedSlash),
                Some(b'\\') => return Err(PathError::Backslash),
                Some(value) if value.is_ascii_control() => return Err(PathError::ControlCharacter),
                Some(value) => {
                    again.push(value);
                    i += 3;
                }
                None => {
                    again.push(decoded[i]);
                    i += 1;
                }
            }
        }
        if again.len() == decoded.len() {
            break;
        }
        if std::str::from_utf8(&again).is_err() {
            return Err(PathError::NotUtf8);
        }
        check_segments(&again)?;
        decoded = again;
    }
    Ok(())
}

fn hex_pair(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
}

/// RFC 3986 §2.3.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Refuses `.` and `..` segments, also when followed by `;` parameters.
fn check_segments(decoded: &[u8]) -> Result<(), PathError> {
    for segment in decoded.split(|&b| b == b'/') {
        let name = segment.split(|&b| b == b';').next().unwrap_or_default();
        if name == b"." || name == b".." {
            return Err(PathError::DotSegment);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normal_paths_are_borrowed_unchanged() {
        for path in
            ["/", "/api/users", "/a/b.c/d..e/...", "/.well-known/x", "/caf\u{e9}", "/a;b=c/d", "/a:b@c!$&'()*+,="]
        {
            assert!(matches!(normalize(path), Ok(Cow::Borrowed(p)) if p == path), "{path}");
        }
    }

    #[test]
    fn spellings_of_the_same_path_become_one() {
        for (path, normal) in [
            ("//admin", "/admin"),
            ("/api//users///1", "/api/users/1"),
            ("/%61pi/%7Euser", "/api/~user"),
            ("/%70ublic/x", "/public/x"),
            ("/a%3bb", "/a%3Bb"),
            ("/a%20b", "/a%20b"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/x%2d%2E%5f", "/x-._"),
            // Double encodings that are harmless when decoded again.
            ("/100%25", "/100%25"),
            ("/100%25/x", "/100%25/x"),
            ("/a%2520b", "/a%2520b"),
            ("/a%25zz", "/a%25zz"),
            ("/report%252epdf", "/report%252epdf"),
            ("/caf%25C3%25A9", "/caf%25C3%25A9"),
            ("/%25%25", "/%25%25"),
        ] {
            assert_eq!(normalize(path).unwrap(), normal, "{path}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for (path, error) in [
            ("/public/../admin", PathError::DotSegment),
            ("/public/%2e%2e/admin", PathError::DotSegment),
            ("/public/.%2E/admin", PathError::DotSegment),
            ("/public/..;/admin", PathError::DotSegment),
            ("/public/..%3b/admin", PathError::DotSegment),
            ("/public/.;x=1/admin", PathError::DotSegment),
            ("/a/.", PathError::DotSegment),
            ("/..", PathError::DotSegment),
            ("//..//admin", PathError::DotSegment),
            ("/public%2fadmin", PathError::EncodedSlash),
            ("/public%2Fadmin", PathError::EncodedSlash),
            ("/public%5cadmin", PathError::Backslash),
            ("/public\\admin", PathError::Backslash),
            ("/a%00b", PathError::ControlCharacter),
            ("/a%0d%0aX:1", PathError::ControlCharacter),
            ("/a%7F", PathError::ControlCharacter),
            ("/a%zz", PathError::MalformedEscape),
            ("/a%4", PathError::MalformedEscape),
            ("/a%", PathError::MalformedEscape),
            ("/%C0%AE%C0%AE/admin", PathError::NotUtf8),
            ("/%FF", PathError::NotUtf8),
            ("/%C3", PathError::NotUtf8),
            // What an upstream decoding again would read as one of the above.
            ("/public/%252e%252e/admin", PathError::DotSegment),
            ("/public/%252E%252E/admin", PathError::DotSegment),
            ("/public/.%252e/admin", PathError::DotSegment),
            ("/public/%252e./admin", PathError::DotSegment),
            ("/public/%252e/admin", PathError::DotSegment),
            ("/public/..%253b/admin", PathError::DotSegment),
            ("/public/%252e%252e%253bx/admin", PathError::DotSegment),
            ("/public/%25%32%65%25%32%65/admin", PathError::DotSegment),
            ("/public/%25%32e%252%45/admin", PathError::DotSegment),
            ("/public/%25252e%25252e/admin", PathError::DotSegment),
            ("/public/%252e%252e", PathError::DotSegment),
            ("/public%252fadmin", PathError::EncodedSlash),
            ("/public%252Fadmin", PathError::EncodedSlash),
            ("/public%25%32%66admin", PathError::EncodedSlash),
            ("/public%255cadmin", PathError::Backslash),
            ("/public%255Cadmin", PathError::Backslash),
            ("/a%2500b", PathError::ControlCharacter),
            ("/a%250d%250aX:1", PathError::ControlCharacter),
            ("/%25C0%25AE%25C0%25AE/admin", PathError::NotUtf8),
        ] {
            assert_eq!(normalize(path), Err(error), "{path}");
        }
    }

    proptest! {
        /// Whatever is accepted is already normal the second time round.
        #[test]
        fn normalization_is_idempotent(path in "(/([a-zA-Z0-9._~;-]|%[0-9a-fA-F]{2}|/){0,12}){1,4}") {
            if let Ok(normal) = normalize(&path) {
                let again = normalize(&normal).expect("a normal path is accepted");
                prop_assert!(matches!(again, Cow::Borrowed(_)), "{normal} changed again to {again}");
            }
        }

        /// An upstream that decodes an accepted path up to four times finds no dot
        /// segment, no slash the gateway did not see and no backslash.
        #[test]
        fn decoding_again_reveals_nothing(path in "(/([a-zA-Z0-9._~;-]|%(25)?(2[eEfF]|5[cC]|3[bB]|[0-9a-fA-F]{2})|/){0,12}){1,4}") {
            if let Ok(normal) = normalize(&path) {
                let mut decoded = normal.as_bytes().to_vec();
                for _ in 0..=MORE_DECODES {
                    decoded = percent_decode(&decoded);
                    let slashes = |bytes: &[u8]| bytes.iter().filter(|&&b| b == b'/').count();
                    prop_assert_eq!(slashes(&decoded), slashes(normal.as_bytes()), "{} decodes to another slash", normal);
                    prop_assert!(!decoded.contains(&b'\\'), "{} decodes to a backslash", normal);
                    prop_assert!(check_segments(&decoded).is_ok(), "{} decodes to a dot segment", normal);
                }
            }
        }

        /// Arbitrary text never panics, and what comes out is a plain path.
        #[test]
        fn any_input_is_answered(path in "/\\PC{0,40}") {
            if let Ok(normal) = normalize(&path) {
                prop_assert!(!normal.contains("//") && !normal.contains('\\'));
            }
        }
    }

    /// One round of percent-decoding, as a lenient server does it: anything that is not
    /// `%` and two hex digits stays as it is.
    fn percent_decode(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes.get(i + 1..i + 3).and_then(hex_pair) {
                Some(value) if bytes[i] == b'%' => {
                    out.push(value);
                    i += 3;
                }
                _ => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        }
        out
    }
}
