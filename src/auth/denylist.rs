//! Cookie sessions ended before their time, refused until they would have ended anyway.
//!
//! A cookie session lives in the browser, so ending it cannot take back a copy somebody
//! kept: without this list, a replayed cookie would work until the session's end. An
//! entry names what ended:
//! - a sign-out: one session, by its id (`Session::sid`);
//! - a back-channel logout or an operator's revocation of a provider session, by the
//!   provider's `sid` (`Session::idp_sid`);
//! - a revocation of a user, by `sub`: the sessions signed in before it, not the ones
//!   signed in afterwards.
//!
//! Each entry lives until the longest session it can name would have ended. With
//! `[redis]` the cookie store shares them with the other replicas (`store/cookie.rs`).

use super::expiring::ExpiringMap;
use super::session::Session;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

/// Entries of each kind beyond which the one ending soonest makes room.
const MAX_ENTRIES: usize = 100_000;

/// What an entry names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Denied {
    Session(String),
    ProviderSession(String),
    User(String),
}

impl Denied {
    /// `session`, `sid` or `sub`: the word in events and Redis keys.
    pub fn kind(&self) -> &'static str {
        match self {
            Denied::Session(_) => "session",
            Denied::ProviderSession(_) => "sid",
            Denied::User(_) => "sub",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Denied::Session(id) | Denied::ProviderSession(id) | Denied::User(id) => id,
        }
    }

    /// `kind:base64url(id)`: one word, whatever the provider put in a `sub` or `sid`.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.kind(), B64.encode(self.id()))
    }

    pub fn decode(text: &str) -> Option<Denied> {
        let (kind, id) = text.split_once(':')?;
        let id = String::from_utf8(B64.decode(id).ok()?).ok()?;
        match kind {
            "session" => Some(Denied::Session(id)),
            "sid" => Some(Denied::ProviderSession(id)),
            "sub" => Some(Denied::User(id)),
            _ => None,
        }
    }
}

/// One entry: sessions `who` names that signed in at or before `before_ms` are refused
/// until `until` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub who: Denied,
    pub before_ms: u64,
    pub until: u64,
}

impl Denial {
    /// A sign-out: that session, whenever it signed in, until its end.
    pub fn sign_out(session: &Session) -> Self {
        Denial { who: Denied::Session(session.sid.clone()), before_ms: u64::MAX, until: session.expires_at }
    }

    /// `denied <kind:id> <before_ms> <until>`.
    pub fn encode(&self) -> String {
        format!("{} {} {}", self.who.encode(), self.before_ms, self.until)
    }

    pub fn decode(text: &str) -> Option<Denial> {
        let mut words = text.split(' ');
        let denial = Denial {
            who: Denied::decode(words.next()?)?,
            before_ms: words.next()?.parse().ok()?,
            until: words.next()?.parse().ok()?,
        };
        words.next().is_none().then_some(denial)
    }
}

pub struct Denylist {
    sessions: ExpiringMap<u64>,
    provider_sessions: ExpiringMap<u64>,
    users: ExpiringMap<u64>,
}

impl Default for Denylist {
    fn default() -> Self {
        Self {
            sessions: ExpiringMap::new(MAX_ENTRIES),
            provider_sessions: ExpiringMap::new(MAX_ENTRIES),
            users: ExpiringMap::new(MAX_ENTRIES),
        }
    }
}

impl Denylist {
    pub fn insert(&self, denial: &Denial, now: u64) {
        let map = match &denial.who {
            Denied::Session(_) => &self.sessions,
            Denied::ProviderSession(_) => &self.provider_sessions,
            Denied::User(_) => &self.users,
        };
        map.upsert(denial.who.id(), denial.before_ms, denial.until, now, u64::max);
    }

    /// Whether an entry refuses `session` at `now`.
    pub fn denies(&self, session: &Session, now: u64) -> bool {
        let signed_in_before = |before_ms: u64| session.signed_in_ms <= before_ms;
        self.sessions.get(&session.sid, now).is_some_and(signed_in_before)
            || session
                .idp_sid
                .as_deref()
                .is_some_and(|sid| self.provider_sessions.get(sid, now).is_some_and(signed_in_before))
            || self.users.get(&session.sub, now).is_some_and(signed_in_before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sid: &str, idp_sid: Option<&str>, sub: &str, signed_in_ms: u64) -> Session {
        serde_json::from_value(serde_json::json!({
            "sid": sid, "sub": sub, "username": null, "email": null, "email_verified": null,
            "groups": [], "scope": "", "profile": {}, "access_token": "a", "refresh_token": null,
            "id_token": null, "access_expires_at": 1, "expires_at": 2_000, "signed_in_ms": signed_in_ms,
            "idp_sid": idp_sid,
        }))
        .unwrap()
    }

    #[test]
    fn each_kind_refuses_what_it_names_until_its_end() {
        let list = Denylist::default();
        let alice = session("p1", Some("idp-1"), "alice", 10_000);
        let other = session("p2", Some("idp-2"), "bob", 10_000);
        assert!(!list.denies(&alice, 100));

        list.insert(&Denial::sign_out(&alice), 100);
        assert!(list.denies(&alice, 100) && !list.denies(&other, 100));
        assert!(!list.denies(&alice, 2_000), "over with the session");

        let list = Denylist::default();
        list.insert(&Denial { who: Denied::ProviderSession("idp-2".into()), before_ms: 20_000, until: 500 }, 100);
        assert!(list.denies(&other, 100) && !list.denies(&alice, 100));
        assert!(!list.denies(&session("p3", None, "bob", 10_000), 100), "no provider sid, not named");
    }

    #[test]
    fn a_revoked_user_may_sign_in_again() {
        let list = Denylist::default();
        list.insert(&Denial { who: Denied::User("alice".into()), before_ms: 20_000, until: 500 }, 100);
        assert!(list.denies(&session("old", None, "alice", 19_999), 100));
        assert!(list.denies(&session("sealed-before-the-field", None, "alice", 0), 100));
        assert!(!list.denies(&session("new", None, "alice", 20_001), 100), "signed in after the revocation");
        assert!(!list.denies(&session("b", None, "bob", 1), 100));
        // An older revocation arriving late (a resync) does not shorten a newer one.
        list.insert(&Denial { who: Denied::User("alice".into()), before_ms: 5_000, until: 400 }, 100);
        assert!(list.denies(&session("old", None, "alice", 19_999), 450));
    }

    #[test]
    fn denials_round_trip_as_words_whatever_the_ids_hold() {
        for who in
            [Denied::Session("a_b-1".into()), Denied::ProviderSession("x y:z".into()), Denied::User("é 1".into())]
        {
            let denial = Denial { who, before_ms: u64::MAX, until: 17 };
            assert_eq!(Denial::decode(&denial.encode()), Some(denial));
        }
        for junk in ["", "sub:YQ", "sub:YQ 1", "sub:YQ 1 2 3", "user:YQ 1 2", "sub:*** 1 2", "sub:YQ x 2"] {
            assert_eq!(Denial::decode(junk), None, "{junk:?}");
        }
    }
}
