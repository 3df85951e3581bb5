//! Session cookie reassembly and decryption together, as `Auth::session` does when its
//! per-thread cache misses: `cookies::read` on the request's `Cookie` headers,
//! `chunks::join` for `__Host-portcullis`, `Sealer::open` with a fixed key. First input byte picks the mode:
//! - odd: the rest is `Cookie` header text (one header per line). Checks: no panic, and
//!   nothing opens except the genuine value `make_seeds` sealed (its plaintext is the
//!   only one ever sealed under the key; chunks may be reordered or respelled, but the
//!   sealed bytes cannot change). Nothing opens under the round-trip key at all.
//! - even: the rest is a plaintext, sealed, split into chunks, carried in `Cookie`
//!   headers (bit 1: chunks in reverse order, bit 2: one header each) and read back.
//!   Checks: it opens to exactly the plaintext, and not under the other key.
#![no_main]

#[path = "../common/cookie.rs"]
mod cookie;

use cookie::SESSION;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis::auth::cookies;
use portcullis::session::chunks;
use portcullis::session::seal::Sealer;
use std::sync::LazyLock;

const _: () = assert!(cookie::MODE_HEADER % 2 == 1, "the seeds' header mode must be odd");

static SEALER: LazyLock<Sealer> = LazyLock::new(|| Sealer::new(&[cookie::KEY.to_vec()]).unwrap());
static ROUND_TRIP: LazyLock<Sealer> = LazyLock::new(|| Sealer::new(&[cookie::ROUND_TRIP_KEY.to_vec()]).unwrap());
static GENUINE: LazyLock<Vec<u8>> = LazyLock::new(cookie::genuine_plaintext);

/// `Session::sealed` joined, then the first half of `Session::open` (before the JSON).
fn open_session(headers: &HeaderMap, sealer: &Sealer) -> Option<Vec<u8>> {
    let all = cookies::read(headers);
    let value = chunks::join(SESSION, |name| all.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))?;
    sealer.open(SESSION, &value)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 1 {
        let mut headers = HeaderMap::new();
        for line in rest.split(|&b| b == b'\n') {
            if let Ok(value) = HeaderValue::from_bytes(line) {
                headers.append(COOKIE, value);
            }
        }
        if let Some(plain) = open_session(&headers, &SEALER) {
            assert!(*plain == **GENUINE, "a forged session opened: {:?}", String::from_utf8_lossy(&plain));
        }
        assert!(
            open_session(&headers, &ROUND_TRIP).is_none(),
            "opened under a key nothing in the input was sealed with"
        );
        return;
    }

    let sealed = ROUND_TRIP.seal(SESSION, rest);
    let Some(mut parts) = chunks::split(SESSION, &sealed) else {
        assert!(sealed.len() > chunks::CHUNK_LEN * chunks::MAX_CHUNKS - 2, "{} sealed bytes refused", sealed.len());
        return;
    };
    assert!(parts.iter().all(|(_, v)| v.len() <= chunks::CHUNK_LEN), "a chunk is over CHUNK_LEN");
    if mode & 2 != 0 {
        parts.reverse();
    }
    let pairs: Vec<String> = parts.iter().map(|(name, value)| format!("{name}={value}")).collect();
    let mut headers = HeaderMap::new();
    if mode & 4 != 0 {
        for pair in &pairs {
            headers.append(COOKIE, HeaderValue::from_str(pair).expect("sealed cookies are header-safe"));
        }
    } else {
        headers.insert(COOKIE, HeaderValue::from_str(&pairs.join("; ")).expect("sealed cookies are header-safe"));
    }
    assert_eq!(open_session(&headers, &ROUND_TRIP).as_deref(), Some(rest), "round trip in {} chunk(s)", parts.len());
    assert!(open_session(&headers, &SEALER).is_none(), "opened under the wrong key");
});
