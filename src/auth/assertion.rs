//! The signed identity assertion: a short-lived ES256 JWT the gateway puts on every
//! authenticated request, so an upstream can verify that the identity came from the
//! gateway (fetch the public keys from `/auth/jwks.json`) instead of trusting plain
//! headers that anything on the network path could set.
//!
//! The signing key is derived from the first cookie key (every cookie key's public key
//! is published), so every replica signs with the same key without another secret, and
//! rotating cookie keys rotates assertion keys the same way. Claims: `iss` (the public
//! URL), `aud` (`portcullis-upstream`), `sub`, `iat`, `exp` (60 s), `username`, `email`,
//! `groups`. Signed assertions are reused per session for half their life (see
//! [`Assertions::header_value`]).

use super::identity::Identity;
use crate::secret::Secret;
use aws_lc_rs::agreement::{ECDH_P256, PrivateKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::HeaderValue;
use serde_json::{Value, json};
use std::cell::RefCell;
// Fx: looked up on every request; the keys (instance numbers, session ids) are not
// the client's choice.
use rustc_hash::FxHashMap;

pub const AUDIENCE: &str = "portcullis-upstream";
const LIFETIME_SECS: u64 = 60;

struct AssertionKey {
    kid: String,
    pair: EcdsaKeyPair,
    jwk: Value,
}

pub struct Assertions {
    keys: Vec<AssertionKey>,
    issuer: String,
    rng: SystemRandom,
    /// Tells this instance's entries apart in the per-thread cache.
    instance: u64,
}

/// A signed assertion is reused while more than half its life is left: an ECDSA
/// signature costs more than the rest of an authenticated request together.
const REUSE_SECS: u64 = LIFETIME_SECS / 2;
/// Entries per worker thread before the cache starts over.
const CACHE_ENTRIES: usize = 1024;

struct Cached {
    version: u64,
    issued_at: u64,
    value: HeaderValue,
}

thread_local! {
    /// Per worker thread, so requests never wait on each other: instance → key → entry.
    static CACHE: RefCell<FxHashMap<u64, FxHashMap<String, Cached>>> = RefCell::new(FxHashMap::default());
}

impl Assertions {
    pub fn new(cookie_keys: &[Secret<Vec<u8>>], issuer: &str) -> Self {
        let keys = cookie_keys.iter().map(|key| derive(key.expose())).collect();
        Self { keys, issuer: issuer.to_owned(), rng: SystemRandom::new(), instance: rand::random() }
    }

    /// The assertion for `who` as a header value, from the cache when `who` names a
    /// cache key (a session id or a token's signature) whose version (the access token's
    /// expiry: it changes on refresh) still matches.
    pub fn header_value(&self, who: &Identity<'_>, now: u64) -> Option<HeaderValue> {
        let Some((key, version)) = who.assertion_key else {
            return HeaderValue::from_str(&self.sign(who, now)).ok();
        };
        let hit = CACHE.with_borrow(|cache| {
            let entry = cache.get(&self.instance)?.get(key)?;
            (entry.version == version && now < entry.issued_at + REUSE_SECS).then(|| entry.value.clone())
        });
        if hit.is_some() {
            return hit;
        }
        let value = HeaderValue::from_str(&self.sign(who, now)).ok()?;
        CACHE.with_borrow_mut(|cache| {
            let entries = cache.entry(self.instance).or_default();
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(key.to_owned(), Cached { version, issued_at: now, value: value.clone() });
        });
        Some(value)
    }

    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }

    pub fn sign(&self, who: &Identity<'_>, now: u64) -> String {
        let key = &self.keys[0];
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": key.kid });
        let claims = json!({
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": who.sub,
            "iat": now,
            "exp": now + LIFETIME_SECS,
            "username": who.username,
            "email": who.email,
            "groups": who.groups,
        });
        let signing_input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let signature = key.pair.sign(&self.rng, signing_input.as_bytes()).expect("ECDSA signing");
        format!("{signing_input}.{}", B64.encode(signature.as_ref()))
    }
}

/// A P-256 key pair derived from a cookie key (domain-separated hash; re-hashed in the
/// negligible case the digest is not a valid scalar).
fn derive(secret: &[u8]) -> AssertionKey {
    let mut seed = [b"portcullis identity assertion v1:".as_slice(), secret].concat();
    loop {
        let scalar = digest(&SHA256, &seed);
        if let Ok(private) = PrivateKey::from_private_key(&ECDH_P256, scalar.as_ref())
            && let Ok(public) = private.compute_public_key()
            && let Ok(pair) = EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                scalar.as_ref(),
                public.as_ref(),
            )
        {
            let point = pair.public_key().as_ref().to_vec();
            let kid = B64.encode(&digest(&SHA256, &point).as_ref()[..12]);
            let jwk = json!({
                "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
            });
            return AssertionKey { kid, pair, jwk };
        }
        seed = scalar.as_ref().to_vec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(key: Option<(&str, u64)>) -> Identity<'_> {
        Identity {
            sub: "s",
            username: Some("alice"),
            email: None,
            email_verified: None,
            groups: &[],
            scope: "",
            access_token: None,
            assertion_key: key,
        }
    }

    #[test]
    fn reused_for_half_its_life_per_session_and_version() {
        let assertions = Assertions::new(&[Secret::new(vec![1; 32])], "https://app.example");
        let first = assertions.header_value(&who(Some(("sid-1", 100))), 1_000).unwrap();
        assert_eq!(assertions.header_value(&who(Some(("sid-1", 100))), 1_000 + REUSE_SECS - 1).unwrap(), first);
        assert_ne!(assertions.header_value(&who(Some(("sid-1", 100))), 1_000 + REUSE_SECS).unwrap(), first, "stale");
        assert_ne!(assertions.header_value(&who(Some(("sid-1", 101))), 1_000).unwrap(), first, "refreshed");
        assert_ne!(assertions.header_value(&who(Some(("sid-2", 100))), 1_000).unwrap(), first, "another session");
        let other = Assertions::new(&[Secret::new(vec![2; 32])], "https://other.example");
        assert_ne!(other.header_value(&who(Some(("sid-1", 100))), 1_000).unwrap(), first, "another gateway");
        let uncached = assertions.header_value(&who(None), 1_000).unwrap();
        assert_ne!(assertions.header_value(&who(None), 1_000).unwrap(), uncached, "ECDSA signatures are randomized");
    }
}
