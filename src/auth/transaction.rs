//! A login attempt in flight: state, nonce, PKCE verifier and where to return, sealed
//! in its own short-lived cookie named after the state. Several tabs can log in at once;
//! past [`MAX_OPEN`] attempts the older ones are expired, so a loop or an XHR storm
//! cannot pile up cookies until the request headers overflow.

use super::cookies::{self, CookieJar};
use crate::session::seal::Sealer;
use http::HeaderMap;
use serde::{Deserialize, Serialize};

pub const MAX_OPEN: usize = 4;
/// Ten minutes to sign in; Cognito's codes live five.
pub const LIFETIME_SECS: u64 = 600;

#[derive(Debug, Serialize, Deserialize)]
pub struct Transaction {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub return_to: String,
    pub expires_at: u64,
}

fn cookie_prefix(jar: &CookieJar) -> String {
    format!("{}-tx-", jar.prefix)
}

fn cookie_name(jar: &CookieJar, state: &str) -> String {
    // The state is random base64url; 16 characters name the attempt uniquely enough.
    format!("{}{}", cookie_prefix(jar), &state[..state.len().min(16)])
}

impl Transaction {
    pub fn write(&self, request: &HeaderMap, response: &mut HeaderMap, jar: &CookieJar, sealer: &Sealer) {
        let prefix = cookie_prefix(jar);
        let open: Vec<&str> =
            cookies::read(request).into_iter().map(|(name, _)| name).filter(|n| n.starts_with(&prefix)).collect();
        if open.len() >= MAX_OPEN {
            for name in open {
                jar.expire(response, name);
            }
        }
        let name = cookie_name(jar, &self.state);
        let sealed = sealer.seal(&name, &serde_json::to_vec(self).expect("serializes"));
        jar.set(response, &name, &sealed, LIFETIME_SECS);
    }

    /// The attempt for `state`, if its cookie opens, matches and has not expired.
    pub fn take(
        request: &HeaderMap,
        response: &mut HeaderMap,
        jar: &CookieJar,
        sealer: &Sealer,
        state: &str,
        now: u64,
    ) -> Option<Self> {
        if state.len() < 16 {
            return None;
        }
        let name = cookie_name(jar, state);
        let value = cookies::RequestCookies::read(request, None).get(&name)?;
        jar.expire(response, &name);
        let tx: Transaction = serde_json::from_slice(&sealer.open(&name, value)?).ok()?;
        let same = aws_lc_rs::constant_time::verify_slices_are_equal(tx.state.as_bytes(), state.as_bytes()).is_ok();
        (same && tx.expires_at > now).then_some(tx)
    }

    /// Expires every login attempt cookie the request carries.
    pub fn clear_all(request: &HeaderMap, response: &mut HeaderMap, jar: &CookieJar) {
        let prefix = cookie_prefix(jar);
        for (name, _) in cookies::read(request).into_iter().filter(|(n, _)| n.starts_with(&prefix)) {
            jar.expire(response, name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn round_trip(tx: &Transaction, state: &str, now: u64) -> Option<Transaction> {
        let jar = CookieJar::new("p", false);
        let sealer = Sealer::new(&[vec![9; 32]]).unwrap();
        let mut set = HeaderMap::new();
        tx.write(&HeaderMap::new(), &mut set, &jar, &sealer);
        let cookie = set["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let mut request = HeaderMap::new();
        request.insert(http::header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
        Transaction::take(&request, &mut HeaderMap::new(), &jar, &sealer, state, now)
    }

    fn attempt(state: &str) -> Transaction {
        Transaction {
            state: state.into(),
            nonce: "n".into(),
            verifier: "v".into(),
            return_to: "/".into(),
            expires_at: 1000 + LIFETIME_SECS,
        }
    }

    #[test]
    fn an_attempt_is_taken_once_by_its_state_and_only_before_it_expires() {
        let state = "0123456789abcdefXYZ";
        assert!(round_trip(&attempt(state), state, 1000).is_some());
        assert!(round_trip(&attempt(state), state, 1000 + LIFETIME_SECS).is_none(), "expired");
        assert!(round_trip(&attempt(state), "0123456789abcdefOTHER", 1000).is_none(), "same prefix, other state");
        assert!(round_trip(&attempt(state), "short", 1000).is_none());
    }
}
