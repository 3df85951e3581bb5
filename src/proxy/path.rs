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
    Ok(if normal == path { Cow::Borrowed(path) } else { Cow::Owned(normal) })
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

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

        /// Arbitrary text never panics, and what comes out is a plain path.
        #[test]
        fn any_input_is_answered(path in "/\\PC{0,40}") {
            if let Ok(normal) = normalize(&path) {
                prop_assert!(!normal.contains("//") && !normal.contains('\\'));
            }
        }
    }
}
