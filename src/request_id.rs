//! Request ids tie a client's report, the gateway's log line and the upstream's log
//! together. An incoming `X-Request-Id` is kept when it looks like an id (so a load
//! balancer's id survives); anything else is replaced, so a client cannot inject log
//! content through it.

use http::{HeaderMap, HeaderName, HeaderValue};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const MAX_LEN: usize = 128;

pub fn for_request(headers: &HeaderMap) -> HeaderValue {
    match headers.get(&X_REQUEST_ID) {
        Some(id) if is_plausible(id.as_bytes()) => id.clone(),
        _ => generate(),
    }
}

fn is_plausible(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.:+=/".contains(c))
}

/// 128 random bits as 32 lower-case hex digits (written by hand: `format!` cost more
/// than the rest of generating an id, on every request without one).
fn generate() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let random: u128 = rand::random();
    let mut id = [0u8; 32];
    for (index, digit) in id.iter_mut().enumerate() {
        *digit = HEX[(random >> (124 - 4 * index)) as usize & 0xf];
    }
    HeaderValue::from_bytes(&id).expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_str(id).unwrap());
        headers
    }

    #[test]
    fn keeps_plausible_ids_and_replaces_others() {
        assert_eq!(for_request(&with("lb-7f3a:42")), "lb-7f3a:42");
        for bad in ["", "has space", "quote\"", &"x".repeat(129)] {
            let id = for_request(&with(bad));
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32);
        }
        let a = for_request(&HeaderMap::new());
        let b = for_request(&HeaderMap::new());
        assert_ne!(a, b, "generated ids are unique");
        assert!(a.as_bytes().iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a:?}");
    }
}
