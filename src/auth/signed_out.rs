//! Cookie sessions signed out, refused until they would have ended anyway.
//!
//! A cookie session lives in the browser, so logout alone cannot take back a copy
//! somebody kept: without this list, a replayed cookie would work until its access
//! token expired. The list holds the session ids (`Session::sid`) of sign-outs, each
//! until that session's end, in memory; with `[redis]` the cookie store fills it with
//! the other replicas' sign-outs too (`store/cookie.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Beyond this many live entries, the one ending soonest makes room.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct SignedOut {
    /// Entries in `ended`, read without the lock: the usual answer is "none".
    len: AtomicUsize,
    /// Session id → the session's end (Unix seconds).
    ended: Mutex<HashMap<String, u64>>,
}

impl SignedOut {
    pub fn insert(&self, sid: &str, until: u64, now: u64) {
        let mut ended = self.ended.lock().expect("signed-out lock");
        if ended.len() >= MAX_ENTRIES {
            ended.retain(|_, end| *end > now);
        }
        if ended.len() >= MAX_ENTRIES
            && let Some(soonest) = ended.iter().min_by_key(|(_, end)| **end).map(|(sid, _)| sid.clone())
        {
            ended.remove(&soonest);
        }
        ended.insert(sid.to_owned(), until);
        self.len.store(ended.len(), Ordering::Relaxed);
    }

    pub fn contains(&self, sid: &str, now: u64) -> bool {
        if self.len.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.ended.lock().expect("signed-out lock").get(sid).is_some_and(|end| *end > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_until_the_session_would_have_ended() {
        let list = SignedOut::default();
        assert!(!list.contains("a", 100));
        list.insert("a", 200, 100);
        assert!(list.contains("a", 150));
        assert!(!list.contains("b", 150));
        assert!(!list.contains("a", 200), "over by itself");
    }

    #[test]
    fn bounded_by_dropping_what_ends_soonest() {
        let list = SignedOut::default();
        for i in 0..MAX_ENTRIES as u64 {
            list.insert(&i.to_string(), 1_000 + i, 0);
        }
        list.insert("new", 5_000_000, 0);
        assert_eq!(list.len.load(Ordering::Relaxed), MAX_ENTRIES);
        assert!(!list.contains("0", 1), "the soonest-ending entry made room");
        assert!(list.contains("1", 1) && list.contains("new", 1));
    }
}
