//! Sessions this worker thread opened recently, kept by their sealed value.
//!
//! Opening a session (base64 over ~4 KB, AES-GCM, JSON) is most of what an
//! authenticated request costs, and a browser sends the same sealed value on every
//! request until its session changes. A value that opened once opens to the same
//! session every time (the keys do not change while the process runs), so the opened
//! session is reused when the **whole** presented value equals the one that was opened:
//! byte equality decides, the slot index only says where to look. Expiry and sign-out
//! are not cached: the caller checks them on every request.
//!
//! Per worker thread, so no request waits on a lock, and per gateway instance, so a
//! value sealed under another gateway's keys can never be found here. Bounded: a fixed
//! number of slots, a newer session replacing an older one in its slot.

use super::session::Session;
use std::cell::RefCell;
// Fx: looked up on every request; the keys (instance numbers, session ids) are not
// the client's choice.
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// Slots per worker thread and gateway; each holds one sealed value (~4 KB for a
/// Cognito session) and its session, so this bounds the cache at about 2 MiB a thread.
const SLOTS: usize = 256;

type Slot = Option<(Box<str>, Arc<Session>)>;

thread_local! {
    /// Gateway instance → slots.
    static SLOTS_BY_INSTANCE: RefCell<FxHashMap<u64, Vec<Slot>>> = RefCell::new(FxHashMap::default());
}

pub struct OpenedSessions {
    instance: u64,
}

impl Default for OpenedSessions {
    fn default() -> Self {
        Self { instance: rand::random() }
    }
}

impl OpenedSessions {
    /// The session sealed in the value `parts` make up together: from this thread's
    /// cache when the same value was opened here before, else from `open` (given the
    /// value joined), whose result is then kept. A value that does not open is not kept
    /// (it would only crowd out real sessions).
    pub fn get_or_open(&self, parts: &[&str], open: impl FnOnce(&str) -> Option<Session>) -> Option<Arc<Session>> {
        let index = slot_index(parts.last()?);
        let hit = SLOTS_BY_INSTANCE.with_borrow(|instances| {
            let (value, session) = instances.get(&self.instance)?[index].as_ref()?;
            is_joined(value, parts).then(|| session.clone())
        });
        if hit.is_some() {
            return hit;
        }
        let sealed = parts.concat();
        let session = Arc::new(open(&sealed)?);
        SLOTS_BY_INSTANCE.with_borrow_mut(|instances| {
            let slots = instances.entry(self.instance).or_insert_with(|| vec![None; SLOTS]);
            slots[index] = Some((sealed.into_boxed_str(), session.clone()));
        });
        Some(session)
    }
}

/// Whether `value` is `parts` joined, compared piece by piece (no copy).
fn is_joined(value: &str, parts: &[&str]) -> bool {
    let mut rest = value.as_bytes();
    for part in parts {
        match rest.split_at_checked(part.len()) {
            Some((head, tail)) if head == part.as_bytes() => rest = tail,
            _ => return false,
        }
    }
    rest.is_empty()
}

impl Drop for OpenedSessions {
    /// Frees this instance's slots on the dropping thread (the others go with their
    /// threads: each gateway's workers end with it).
    fn drop(&mut self) {
        let _ = SLOTS_BY_INSTANCE.try_with(|instances| instances.borrow_mut().remove(&self.instance));
    }
}

/// The slot for a sealed value, from the last bytes of its last piece: the base64 of
/// the AES-GCM tag, which is uniformly random. Anyone can aim at a slot; that only
/// evicts, never hits.
fn slot_index(last_part: &str) -> usize {
    let tail = &last_part.as_bytes()[last_part.len().saturating_sub(8)..];
    let folded = tail.iter().fold(0u64, |acc, &byte| acc.wrapping_mul(31).wrapping_add(u64::from(byte)));
    (folded % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn session(sid: &str) -> Session {
        serde_json::from_value(serde_json::json!({
            "sid": sid, "sub": "s", "username": null, "email": null, "email_verified": null,
            "groups": [], "scope": "", "profile": {}, "access_token": "a", "refresh_token": null,
            "id_token": null, "access_expires_at": 1, "expires_at": 2,
        }))
        .unwrap()
    }

    #[test]
    fn opens_each_value_once_and_only_equal_values_hit() {
        let cache = OpenedSessions::default();
        let opens = &Cell::new(0);
        let open = |sid: &'static str| {
            move |sealed: &str| {
                opens.set(opens.get() + 1);
                Some(session(&format!("{sid}:{sealed}")))
            }
        };
        assert_eq!(cache.get_or_open(&["sealed-", "one"], open("1")).unwrap().sid, "1:sealed-one");
        assert_eq!(cache.get_or_open(&["seal", "ed-", "one"], open("x")).unwrap().sid, "1:sealed-one");
        assert_eq!(opens.get(), 1, "the second request (same value, chunked elsewhere) reused the opened session");

        // Same last bytes (same slot), different value: opened afresh, never the cached one.
        for other_value in
            [&["tampered:", "sealed-one"][..], &["sealed-one"], &["sealed-", "one", ""], &["x", "sealed-one"]]
        {
            let before = opens.get();
            let opened = cache.get_or_open(other_value, open("2")).unwrap();
            assert_eq!(opened.sid, format!("2:{}", other_value.concat()));
            assert_eq!(opens.get(), before + 1);
        }
        assert!(cache.get_or_open(&["garbage"], |_| None).is_none());
        assert!(cache.get_or_open(&["garbage"], |_| None).is_none(), "a failed open is not kept");
        assert!(cache.get_or_open(&[], open("4")).is_none(), "no pieces, no value");

        let other = OpenedSessions::default();
        let opened = other.get_or_open(&["sealed-one"], open("3")).unwrap();
        assert_eq!(opened.sid, "3:sealed-one", "another gateway opens its own");
    }
}
