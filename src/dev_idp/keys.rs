//! Signing keys, as a Cognito user pool has them: two RSA keys published in the JWKS,
//! one for ID tokens and one for access tokens (different `kid`s), RS256 only.
//! Keys are generated at startup and can be rotated on demand, so tests can exercise a
//! relying party's refetch-on-unknown-`kid`.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use std::sync::{Arc, RwLock};

/// Which token a key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    Id,
    Access,
}

struct SigningKey {
    kid: String,
    pair: RsaKeyPair,
}

impl SigningKey {
    fn generate() -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let kid = B64.encode(rand::random::<[u8; 30]>());
        Self { kid, pair }
    }

    fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "alg": "RS256",
            "e": B64.encode(public.exponent().big_endian_without_leading_zero()),
            "kid": self.kid,
            "kty": "RSA",
            "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
            "use": "sig",
        })
    }
}

struct KeySet {
    id: Arc<SigningKey>,
    access: Arc<SigningKey>,
    /// Earlier keys, still published so tokens they signed stay verifiable.
    retired: Vec<Arc<SigningKey>>,
}

pub struct Keys {
    set: RwLock<KeySet>,
    rng: SystemRandom,
}

impl Keys {
    pub fn generate() -> Self {
        let set =
            KeySet { id: Arc::new(SigningKey::generate()), access: Arc::new(SigningKey::generate()), retired: vec![] };
        Self { set: RwLock::new(set), rng: SystemRandom::new() }
    }

    /// New keys sign from now on; with `keep_old`, the previous ones stay in the JWKS.
    pub fn rotate(&self, keep_old: bool) {
        let mut set = self.set.write().expect("keys lock");
        let old = [set.id.clone(), set.access.clone()];
        set.id = Arc::new(SigningKey::generate());
        set.access = Arc::new(SigningKey::generate());
        if keep_old {
            set.retired.extend(old);
        } else {
            set.retired.clear();
        }
    }

    pub fn jwks(&self) -> Value {
        let set = self.set.read().expect("keys lock");
        let keys: Vec<Value> =
            [&set.id, &set.access].into_iter().chain(set.retired.iter()).map(|key| key.jwk()).collect();
        json!({ "keys": keys })
    }

    fn current(&self, key_use: KeyUse) -> Arc<SigningKey> {
        let set = self.set.read().expect("keys lock");
        match key_use {
            KeyUse::Id => set.id.clone(),
            KeyUse::Access => set.access.clone(),
        }
    }

    /// A compact RS256 JWS of `claims`, signed with the current key for `key_use`.
    pub fn sign(&self, key_use: KeyUse, claims: &Value) -> String {
        self.sign_with_header(key_use, &json!({}), claims)
    }

    /// As [`Keys::sign`], with more header fields (`typ`, for tests of typed tokens).
    pub fn sign_with_header(&self, key_use: KeyUse, more: &Value, claims: &Value) -> String {
        let key = self.current(key_use);
        let mut header = json!({ "kid": key.kid, "alg": "RS256" });
        if let (Some(header), Some(more)) = (header.as_object_mut(), more.as_object()) {
            header.extend(more.clone());
        }
        let mut token = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let mut signature = vec![0; key.pair.public_modulus_len()];
        key.pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, token.as_bytes(), &mut signature).expect("RSA signing");
        token.push('.');
        token.push_str(&B64.encode(signature));
        token
    }

    /// The claims of a token this provider signed with a published key, if the
    /// signature is good. Expiry and revocation are the caller's to check.
    pub fn verify(&self, token: &str) -> Option<Value> {
        let mut parts = token.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&B64.decode(header).ok()?).ok()?;
        if header["alg"] != "RS256" {
            return None;
        }
        let kid = header["kid"].as_str()?;
        let set = self.set.read().expect("keys lock");
        let key = [&set.id, &set.access].into_iter().chain(set.retired.iter()).find(|key| key.kid == kid)?;
        let public = UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, key.pair.public_key().as_ref());
        let signed = &token[..header_len(token)?];
        public.verify(signed.as_bytes(), &B64.decode(signature).ok()?).ok()?;
        serde_json::from_slice(&B64.decode(claims).ok()?).ok()
    }
}

/// Length of `header.claims`, the signed part of a compact JWS.
fn header_len(token: &str) -> Option<usize> {
    token.rfind('.')
}
