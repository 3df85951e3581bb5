//! Authenticated encryption of cookie contents.
//!
//! Rules:
//! 1. AES-256-GCM with a fresh random 96-bit nonce per seal; the cookie's name is the
//!    associated data, so a blob sealed for one cookie (say, a login transaction) is
//!    rejected under another name (the session).
//! 2. A list of keys: the first seals, every one opens, so a key can be rotated in
//!    without logging anyone out and retired once sessions sealed with it have expired.
//! 3. The blob names its key by a one-byte fingerprint, so opening tries only the keys
//!    that can match instead of all of them.
//! 4. Anything that does not open (tampered, truncated, wrong key, other cookie, unknown
//!    version) is simply not a session: `open` returns `None`, never an error to show.
//!
//! Layout, base64url without padding: `version (1) | key fingerprint (1) | nonce (12) |
//! ciphertext | tag (16)`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64_simd::URL_SAFE_NO_PAD as B64;

const VERSION: u8 = 1;
const HEADER_LEN: usize = 2 + NONCE_LEN;
/// Bytes a key must have (AES-256).
pub const KEY_LEN: usize = 32;

struct SealKey {
    fingerprint: u8,
    key: LessSafeKey,
}

/// The cookie keys, first one sealing.
pub struct Sealer {
    keys: Vec<SealKey>,
    rng: SystemRandom,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no cookie key is configured")]
    None,
    #[error("key {index} has {len} bytes; cookie keys need {KEY_LEN} (e.g. `openssl rand -base64 32`)")]
    Length { index: usize, len: usize },
}

impl Sealer {
    pub fn new(keys: &[Vec<u8>]) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::None);
        }
        let keys = keys
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                // Longer input keys are hashed down, so a passphrase-length secret still
                // yields a uniform AES key; shorter ones are refused.
                if bytes.len() < KEY_LEN {
                    return Err(KeyError::Length { index, len: bytes.len() });
                }
                let material =
                    if bytes.len() == KEY_LEN { bytes.clone() } else { digest(&SHA256, bytes).as_ref().to_vec() };
                let fingerprint = digest(&SHA256, &material).as_ref()[0];
                let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &material).expect("32-byte AES key"));
                Ok(SealKey { fingerprint, key })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys, rng: SystemRandom::new() })
    }

    /// Encrypts `plaintext` for the cookie called `name`.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> String {
        let sealing = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("system randomness");
        let mut blob = Vec::with_capacity(HEADER_LEN + plaintext.len() + AES_256_GCM.tag_len());
        blob.push(VERSION);
        blob.push(sealing.fingerprint);
        blob.extend_from_slice(&nonce);
        let mut in_out = plaintext.to_vec();
        sealing
            .key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(name.as_bytes()), &mut in_out)
            .expect("AES-GCM sealing");
        blob.extend_from_slice(&in_out);
        B64.encode_to_string(blob)
    }

    /// Decrypts a value sealed for the cookie called `name`, or `None`. Runs on every
    /// authenticated request: SIMD base64, and decryption in place.
    pub fn open(&self, name: &str, sealed: &str) -> Option<Vec<u8>> {
        let mut blob = B64.decode_to_vec(sealed).ok()?;
        if blob.len() < HEADER_LEN + AES_256_GCM.tag_len() || blob[0] != VERSION {
            return None;
        }
        let fingerprint = blob[1];
        let nonce: [u8; NONCE_LEN] = blob[2..HEADER_LEN].try_into().ok()?;
        let candidates: Vec<&SealKey> = self.keys.iter().filter(|k| k.fingerprint == fingerprint).collect();
        let open = |key: &SealKey, in_out: &mut [u8]| {
            let aad = Aad::from(name.as_bytes());
            key.key.open_in_place(Nonce::assume_unique_for_key(nonce), aad, in_out).ok().map(|plain| plain.len())
        };
        // Two keys sharing a fingerprint byte (rare): each gets its own copy to try.
        let (last, others) = candidates.split_last()?;
        for key in others {
            let mut copy = blob[HEADER_LEN..].to_vec();
            if let Some(len) = open(key, &mut copy) {
                copy.truncate(len);
                return Some(copy);
            }
        }
        let len = open(last, &mut blob[HEADER_LEN..])?;
        blob.copy_within(HEADER_LEN..HEADER_LEN + len, 0);
        blob.truncate(len);
        Some(blob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Vec<u8> {
        vec![byte; KEY_LEN]
    }

    #[test]
    fn round_trip_and_rotation() {
        let old = Sealer::new(&[key(1)]).unwrap();
        let sealed = old.seal("__Host-session", b"claims");
        assert_eq!(old.open("__Host-session", &sealed).as_deref(), Some(&b"claims"[..]));

        let rotated = Sealer::new(&[key(2), key(1)]).unwrap();
        assert_eq!(rotated.open("__Host-session", &sealed).as_deref(), Some(&b"claims"[..]), "old key still opens");
        let resealed = rotated.seal("__Host-session", b"claims");
        assert!(old.open("__Host-session", &resealed).is_none(), "new seals use the new key");
        assert_ne!(rotated.seal("n", b"same"), rotated.seal("n", b"same"), "fresh nonce each time");
    }

    #[test]
    fn anything_altered_does_not_open() {
        let sealer = Sealer::new(&[key(7)]).unwrap();
        let sealed = sealer.seal("a", b"payload");
        assert!(sealer.open("b", &sealed).is_none(), "bound to the cookie name");
        assert!(Sealer::new(&[key(8)]).unwrap().open("a", &sealed).is_none(), "wrong key");
        assert!(sealer.open("a", &sealed[..sealed.len() - 1]).is_none(), "truncated");
        assert!(sealer.open("a", "").is_none());
        assert!(sealer.open("a", "not base64 at all!").is_none());
        let mut bytes = B64.decode_to_vec(&sealed).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x01;
            assert!(sealer.open("a", &B64.encode_to_string(&bytes)).is_none(), "bit {i} flipped");
            bytes[i] ^= 0x01;
        }
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(Sealer::new(&[]).err(), Some(KeyError::None));
        assert_eq!(Sealer::new(&[key(1), vec![0; 16]]).err(), Some(KeyError::Length { index: 1, len: 16 }));
        let long = Sealer::new(&[b"a passphrase that is longer than thirty-two bytes".to_vec()]).unwrap();
        assert!(long.open("n", &long.seal("n", b"x")).is_some());
    }

    proptest::proptest! {
        #[test]
        fn any_payload_round_trips_under_any_name(
            plain in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..5000),
            name in "[A-Za-z0-9_.-]{1,40}",
        ) {
            let sealer = Sealer::new(&[key(3), key(4)]).unwrap();
            let sealed = sealer.seal(&name, &plain);
            proptest::prop_assert_eq!(sealer.open(&name, &sealed), Some(plain));
        }

        #[test]
        fn random_input_never_opens(text in "[A-Za-z0-9_-]{0,300}") {
            let sealer = Sealer::new(&[key(5)]).unwrap();
            proptest::prop_assert!(sealer.open("n", &text).is_none());
        }
    }
}
