//! Where to send the browser after login: only a path on this same origin.
//!
//! Refused (and replaced by `/`): anything not starting with a single `/`
//! (`https://evil.example`, `javascript:…`, `//evil.example`), any backslash
//! (`/\evil.example` is `//evil.example` to some browsers), control characters, and
//! anything that would resolve to another origin. Browsers and the URL standard agree
//! on what is left.

const MAX_LEN: usize = 2048;

pub fn is_safe(return_to: &str) -> bool {
    let base = base();
    return_to.len() <= MAX_LEN
        && return_to.starts_with('/')
        && !return_to.starts_with("//")
        && !return_to.contains('\\')
        && !return_to.chars().any(char::is_control)
        // `/..//evil.example` resolves to the path `//evil.example`: serialized for
        // `Location`, that would name another host. The limit holds for the serialized
        // form too, which percent-encoding can make three times longer.
        && base.join(return_to).is_ok_and(|url| {
            url.origin() == base.origin()
                && !url.path().starts_with("//")
                && url[url::Position::BeforePath..].len() <= MAX_LEN
        })
}

/// `return_to` when safe, else `/`; serialized as the URL standard writes it (non-ASCII
/// and spaces percent-encoded), so it can go into a `Location` header as it is.
pub fn or_root(return_to: Option<&str>) -> String {
    match return_to {
        Some(path) if is_safe(path) => {
            let url = base().join(path).expect("checked by is_safe");
            url[url::Position::BeforePath..].to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn base() -> url::Url {
    url::Url::parse("https://same.origin.invalid/").expect("static URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_paths() {
        for safe in ["/", "/app", "/app/page?x=1#frag", "/a/b/../c", "/%2F%2Fevil.example"] {
            assert!(is_safe(safe), "{safe}");
        }
        for unsafe_ in [
            "",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "http:evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/\tevil",
            "/\r\nSet-Cookie: x=1",
            "///evil.example",
            "/..//evil.example",
            "/a/../..//evil.example?x",
            "/.%2E//evil.example",
            "/\\/evil",
        ] {
            assert!(!is_safe(unsafe_), "{unsafe_:?}");
        }
        assert!(!is_safe(&format!("/{}", "a".repeat(MAX_LEN))));
        // 684 bytes, but 2050 once `>` is written `%3E`.
        let grows = format!("/{}", ">".repeat(683));
        assert!(!is_safe(&grows));
        assert_eq!(or_root(Some(&grows)), "/");
        assert!(is_safe(&format!("/{}", ">".repeat(682))));
        assert_eq!(or_root(Some("//evil.example")), "/");
        assert_eq!(or_root(None), "/");
        assert_eq!(or_root(Some("/caf\u{e9} x?q=\u{e9}#f")), "/caf%C3%A9%20x?q=%C3%A9#f");
    }
}
