//! `auth::return_to::is_safe` and `or_root` on arbitrary UTF-8. Checks: neither
//! panics; whatever `is_safe` accepts starts with a single `/`, has no `\`, and
//! resolves (per the URL standard, as browsers do) to a URL on the same origin, from
//! the origin's root and from a deeper page; `or_root(Some(s))` is `/` when `s` is not
//! safe, and otherwise `s` as the URL standard serializes it (path onward), which must
//! itself be a safe same-origin path (it goes into `Location` as it is: `//host` there
//! would be an open redirect) and resolve to the same URL as `s`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::auth::return_to::{is_safe, or_root};
use std::sync::LazyLock;
use url::{Position, Url};

static BASES: LazyLock<[Url; 2]> = LazyLock::new(|| {
    [Url::parse("https://app.example/").unwrap(), Url::parse("https://app.example/deep/page?q=1#frag").unwrap()]
});

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let safe = is_safe(s);
    if safe {
        assert!(s.starts_with('/') && !s.starts_with("//"), "{s:?}: safe but not a single leading slash");
        assert!(!s.contains('\\'), "{s:?}: safe but has a backslash");
        for base in BASES.iter() {
            match base.join(s) {
                Ok(url) => assert_eq!(url.origin(), base.origin(), "{s:?}: safe but resolves to {url}"),
                Err(err) => panic!("{s:?}: safe but does not resolve against {base}: {err}"),
            }
        }
    }
    let chosen = or_root(Some(s));
    if !safe {
        assert_eq!(chosen, "/", "{s:?}: not safe, yet or_root chose {chosen:?}");
        return;
    }
    let root = &BASES[0];
    let resolved = root.join(s).expect("checked above");
    assert_eq!(chosen, &resolved[Position::BeforePath..], "{s:?}: or_root is not the URL standard's serialization");
    assert!(
        chosen.starts_with('/') && !chosen.starts_with("//") && !chosen.contains('\\'),
        "{s:?}: or_root chose {chosen:?}, which a browser reads as another origin"
    );
    assert!(is_safe(&chosen), "{s:?}: or_root chose {chosen:?}, which is not safe");
    assert_eq!(root.join(&chosen).ok(), Some(resolved), "{s:?}: or_root chose {chosen:?}, which lands elsewhere");
});
