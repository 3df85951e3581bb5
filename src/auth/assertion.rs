//! The signed identity assertion: a short-lived ES256 JWT the gateway puts on every
//! authenticated request, so an upstream can verify that the identity came from the
//! gateway (fetch the public keys from `/auth/jwks.json`) instead of trusting plain
//! headers that anything on the network path could set.
//!
//! The signing key is derived from the first cookie key (every cookie key's public key
//! is published), so every replica signs with the same key without another secret, and
//! rotating cookie keys rotates assertion keys the same way. Claims: `iss` (the public
//! URL), `aud` (`portcullis-upstream`), `sub`, `iat`, `exp` (60 s), `username`, `email`,
//! `groups`.

use super::identity::Identity;
use crate::secret::Secret;
use aws_lc_rs::agreement::{ECDH_P256, PrivateKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

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
}

impl Assertions {
    pub fn new(cookie_keys: &[Secret<Vec<u8>>], issuer: &str) -> Self {
        let keys = cookie_keys.iter().map(|key| derive(key.expose())).collect();
        Self { keys, issuer: issuer.to_owned(), rng: SystemRandom::new() }
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
